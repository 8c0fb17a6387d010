"""Validated, self-describing configuration dataclasses.

Each component has one frozen dataclass of settings. Its fields carry their documentation and
limits in ``metadata`` (built with :func:`param`), so the same declaration

- validates values in the core (``check_config(self)`` in ``__post_init__``),
- becomes ROS 2 parameters with full descriptors (``edge_vision.params.declare_config``), and
- re-validates runtime parameter changes with the same rules.

Example::

    @dataclass(frozen=True)
    class BlurConfig:
        kernel: int = field(default=5, metadata=param('Kernel size in pixels (odd).',
                                                      min=1, max=31))
        mode: str = field(default='gauss', metadata=param('Filter.', choices=('gauss', 'box')))

        def __post_init__(self) -> None:
            check_config(self)
            if self.kernel % 2 == 0:
                raise ConfigError(f'BlurConfig.kernel must be odd, got {self.kernel}')

Supported field types: ``bool``, ``int``, ``float``, ``str`` and tuples of them
(``tuple[float, ...]``), which map to the ROS 2 parameter types.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = ['FieldSpec', 'ParamSpec', 'check_config', 'config_fields', 'config_from_mapping',
           'config_to_mapping', 'param']

T = TypeVar('T')

_META_KEY = 'edge_vision_param'
_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class ParamSpec:
    """Documentation and limits of one configuration field.

    Attributes:
        description: what the value does, in one or two sentences (shown by
            ``ros2 param describe``).
        min, max: inclusive numeric limits (for tuples: of every element), or None.
        choices: the allowed values, or None for any.
        read_only: True when the value can only be set at start-up (e.g. it sizes buffers).
        unit: unit shown in descriptions ('px', 'Hz', 's'...).
    """

    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    read_only: bool = False
    unit: str = ''


@dataclass(frozen=True)
class FieldSpec:
    """One field of a config dataclass, resolved: name, Python type, default and spec."""

    name: str
    type: type
    element_type: type | None  # for tuple fields, the element type
    default: Any
    spec: ParamSpec


def param(description: str, *, min: float | None = None, max: float | None = None,
          choices: tuple[Any, ...] | None = None, read_only: bool = False,
          unit: str = '') -> dict[str, ParamSpec]:
    """Field metadata: ``field(default=..., metadata=param('What it does.', min=0))``."""
    return {_META_KEY: ParamSpec(description, min, max, tuple(choices) if choices else None,
                                 read_only, unit)}


def config_fields(cls: type) -> list[FieldSpec]:
    """The documented fields of a config dataclass, in declaration order."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f'{cls!r} is not a dataclass')
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_META_KEY)
        if spec is None:
            continue
        hint = hints[f.name]
        element = None
        if typing.get_origin(hint) is tuple:
            args = typing.get_args(hint)
            if len(args) != 2 or args[1] is not Ellipsis or args[0] not in _SCALARS:
                raise TypeError(f'{cls.__name__}.{f.name}: tuple fields must be tuple[T, ...] '
                                f'with T in bool/int/float/str, got {hint}')
            element, hint = args[0], tuple
        elif hint not in _SCALARS:
            raise TypeError(f'{cls.__name__}.{f.name}: unsupported config type {hint}')
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f'{cls.__name__}.{f.name} needs a default value')
        out.append(FieldSpec(f.name, hint, element, default, spec))
    return out


def _coerce(owner: str, fs: FieldSpec, value: Any) -> Any:
    def one(v: Any, kind: type) -> Any:
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        wrong_bool = (kind is bool) != isinstance(v, bool)
        if wrong_bool or not isinstance(v, kind):
            raise ConfigError(f'{owner}.{fs.name} must be {kind.__name__}, got '
                              f'{type(v).__name__} {v!r}')
        return v

    if fs.type is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f'{owner}.{fs.name} must be a list of '
                              f'{fs.element_type.__name__}, got {value!r}')
        return tuple(one(v, fs.element_type) for v in value)
    return one(value, fs.type)


def _check_value(owner: str, fs: FieldSpec, value: Any) -> None:
    spec = fs.spec
    values = value if fs.type is tuple else (value,)
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f'{owner}.{fs.name} must be finite, got {v}')
        if spec.min is not None and v < spec.min or spec.max is not None and v > spec.max:
            lo = '-inf' if spec.min is None else spec.min
            hi = 'inf' if spec.max is None else spec.max
            raise ConfigError(f'{owner}.{fs.name} must be in [{lo}, {hi}]{spec.unit and " "}'
                              f'{spec.unit}, got {v}')
        if spec.choices is not None and v not in spec.choices:
            raise ConfigError(f'{owner}.{fs.name} must be one of '
                              f'{", ".join(map(repr, spec.choices))}; got {v!r}')


def check_config(cfg: object) -> None:
    """Validate (and normalise int -> float, list -> tuple) every documented field of ``cfg``.

    Call it first in the dataclass's ``__post_init__``; add cross-field checks after it.

    Raises:
        ConfigError: naming the class, the field, the limit and the value.
    """
    owner = type(cfg).__name__
    for fs in config_fields(type(cfg)):
        value = _coerce(owner, fs, getattr(cfg, fs.name))
        _check_value(owner, fs, value)
        object.__setattr__(cfg, fs.name, value)


def config_from_mapping(cls: type[T], values: Mapping[str, Any], base: T | None = None) -> T:
    """Build ``cls`` from a mapping (YAML, ROS parameters), starting from ``base`` or defaults.

    Raises:
        ConfigError: unknown keys (listing the valid ones) or invalid values.
    """
    names = {fs.name for fs in config_fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f'unknown {cls.__name__} setting(s) {", ".join(unknown)}; valid: '
                          f'{", ".join(sorted(names))}')
    if base is None:
        return cls(**values)
    return dataclasses.replace(base, **values)


def config_to_mapping(cfg: object) -> dict[str, Any]:
    """The fields of a config dataclass as a plain dict (tuples as lists), for JSON and YAML:
    the inverse of :func:`config_from_mapping`."""
    return {f.name: (list(v) if isinstance(v, tuple) else v)
            for f in dataclasses.fields(cfg) for v in [getattr(cfg, f.name)]}
