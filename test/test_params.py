"""ConfigBinding: parameters with descriptors, validated at load and on runtime changes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edge_vision_core import ConfigError
from edge_vision_core.config import check_config, param

pytestmark = pytest.mark.ros


@dataclass(frozen=True)
class Demo:
    rate: float = field(default=10.0, metadata=param('Rate.', min=0.0, max=100.0, unit='Hz'))
    count: int = field(default=3, metadata=param('Count.', min=1, max=9))
    mode: str = field(default='a', metadata=param('Mode.', choices=('a', 'b')))
    fixed: bool = field(default=False, metadata=param('Fixed at start.', read_only=True))
    gains: tuple[float, ...] = field(default=(), metadata=param('Gains.', min=0.0))

    def __post_init__(self) -> None:
        check_config(self)
        if self.mode == 'b' and self.count > 5:
            raise ConfigError('Demo: mode b allows count <= 5')


def make_node(context, overrides=None):
    import rclpy
    from rclpy.parameter import Parameter

    params = [Parameter(k, value=v) for k, v in (overrides or {}).items()]
    return rclpy.create_node('params_demo', context=context, parameter_overrides=params,
                             automatically_declare_parameters_from_overrides=False)


def test_descriptors_carry_description_unit_ranges_and_choices(ros_context):
    from rcl_interfaces.msg import ParameterType

    from edge_vision.params import ConfigBinding

    node = make_node(ros_context)
    binding = ConfigBinding(node, Demo, prefix='demo.')
    desc = {d.name: d for d in node.describe_parameters(binding.parameter_names)}
    assert desc['demo.rate'].description == 'Rate. [Hz]'
    assert desc['demo.rate'].floating_point_range[0].to_value == 100.0
    assert desc['demo.count'].integer_range[0].from_value == 1
    assert 'one of: a, b' in desc['demo.mode'].additional_constraints
    assert desc['demo.fixed'].read_only
    assert desc['demo.gains'].type == ParameterType.PARAMETER_DOUBLE_ARRAY
    assert binding.load() == Demo()
    node.destroy_node()


def test_runtime_changes_are_validated_by_the_dataclass(ros_context):
    from rclpy.parameter import Parameter

    from edge_vision.params import ConfigBinding

    seen = []
    node = make_node(ros_context, {'count': 4})
    binding = ConfigBinding(node, Demo, on_change=lambda cfg, names: seen.append(names))
    assert binding.load().count == 4
    ok = node.set_parameters([Parameter('rate', value=20.0)])[0]
    assert ok.successful and binding.config.rate == 20.0 and seen == [{'rate'}]
    assert node.set_parameters([Parameter('count', value=7)])[0].successful
    bad = node.set_parameters([Parameter('mode', value='b')])[0]
    assert not bad.successful and 'mode b allows count <= 5' in bad.reason
    assert binding.config.mode == 'a' and node.get_parameter('mode').value == 'a'
    out_of_range = node.set_parameters([Parameter('rate', value=500.0)])[0]
    assert not out_of_range.successful
    node.destroy_node()


def test_refused_overrides_are_reported_by_load_not_raised_in_the_constructor(ros_context):
    from edge_vision.params import ConfigBinding

    node = make_node(ros_context, {'rate': 1000.0})
    binding = ConfigBinding(node, Demo)
    with pytest.raises(ConfigError, match='parameter rate'):
        binding.load()
    node.destroy_node()
