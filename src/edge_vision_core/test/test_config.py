"""Self-describing config dataclasses: validation messages and coercion."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edge_vision_core import ConfigError
from edge_vision_core.config import check_config, config_fields, config_from_mapping, param


@dataclass(frozen=True)
class Example:
    rate: float = field(default=30.0, metadata=param('Frames per second.', min=0, max=240,
                                                     unit='Hz'))
    count: int = field(default=3, metadata=param('How many.', min=1))
    mode: str = field(default='fast', metadata=param('Mode.', choices=('fast', 'exact')))
    enabled: bool = field(default=True, metadata=param('On/off.'))
    gains: tuple[float, ...] = field(default=(1.0, 2.0), metadata=param('Gains.', min=0))
    internal: int = 7  # no metadata: not a parameter

    def __post_init__(self) -> None:
        check_config(self)


def test_fields_are_described_in_order():
    specs = config_fields(Example)
    assert [s.name for s in specs] == ['rate', 'count', 'mode', 'enabled', 'gains']
    assert specs[0].spec.unit == 'Hz' and specs[4].element_type is float


def test_ints_become_floats_and_lists_tuples():
    cfg = Example(rate=25, gains=[3, 4.5])
    assert cfg.rate == 25.0 and isinstance(cfg.rate, float)
    assert cfg.gains == (3.0, 4.5)


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'rate': 500.0}, r'Example.rate must be in \[0, 240\] Hz, got 500.0'),
    ({'rate': float('nan')}, 'Example.rate must be finite'),
    ({'count': 0}, r'Example.count must be in \[1, inf\]'),
    ({'count': 2.5}, 'Example.count must be int, got float'),
    ({'count': True}, 'Example.count must be int, got bool'),
    ({'enabled': 1}, 'Example.enabled must be bool, got int'),
    ({'mode': 'slow'}, "Example.mode must be one of 'fast', 'exact'; got 'slow'"),
    ({'gains': 'abc'}, 'Example.gains must be a list of float'),
    ({'gains': [1.0, -1.0]}, r'Example.gains must be in \[0, inf\], got -1.0'),
])
def test_invalid_values_name_field_limit_and_value(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Example(**kwargs)


def test_from_mapping_rejects_unknown_keys_listing_valid_ones():
    assert config_from_mapping(Example, {'rate': 10}).rate == 10.0
    base = Example(count=9)
    assert config_from_mapping(Example, {'mode': 'exact'}, base).count == 9
    with pytest.raises(ConfigError, match='unknown Example setting.*fps.*valid: count, enabled'):
        config_from_mapping(Example, {'fps': 10})
