"""ROS 2 parameters from edge_vision_core config dataclasses.

A :class:`ConfigBinding` declares one parameter per documented field of a config dataclass
(``edge_vision_core.config.param`` metadata), with a full ``ParameterDescriptor``: description
(plus unit and allowed values), ``read_only``, and integer / floating-point ranges, so
``ros2 param describe`` tells the user everything. It builds the config from the parameter
values and validates runtime changes (``ros2 param set``) with the dataclass's own validator:
an invalid value is rejected with the validator's message and the old value stays.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from edge_vision_core import ConfigError
from edge_vision_core.config import FieldSpec, config_fields

__all__ = ['ConfigBinding', 'describe']

C = TypeVar('C')

_SCALAR_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
                 float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
_ARRAY_TYPES = {bool: ParameterType.PARAMETER_BOOL_ARRAY,
                int: ParameterType.PARAMETER_INTEGER_ARRAY,
                float: ParameterType.PARAMETER_DOUBLE_ARRAY,
                str: ParameterType.PARAMETER_STRING_ARRAY}
_PARAM_TYPES = {ParameterType.PARAMETER_BOOL_ARRAY: Parameter.Type.BOOL_ARRAY,
                ParameterType.PARAMETER_INTEGER_ARRAY: Parameter.Type.INTEGER_ARRAY,
                ParameterType.PARAMETER_DOUBLE_ARRAY: Parameter.Type.DOUBLE_ARRAY,
                ParameterType.PARAMETER_STRING_ARRAY: Parameter.Type.STRING_ARRAY}
_INT64 = (-(2**63), 2**63 - 1)


def describe(fs: FieldSpec, name: str) -> ParameterDescriptor:
    """The ParameterDescriptor of one config field."""
    spec = fs.spec
    ptype = _ARRAY_TYPES[fs.element_type] if fs.type is tuple else _SCALAR_TYPES[fs.type]
    text = spec.description
    if spec.unit:
        text += f' [{spec.unit}]'
    desc = ParameterDescriptor(name=name, type=ptype, description=text,
                               read_only=spec.read_only)
    constraints = []
    if spec.choices is not None:
        constraints.append('one of: ' + ', '.join(str(c) for c in spec.choices))
    if fs.type is tuple and (spec.min is not None or spec.max is not None):
        constraints.append(f'every element in [{spec.min}, {spec.max}]')
    desc.additional_constraints = '; '.join(constraints)
    if fs.type in (int, float) and (spec.min is not None or spec.max is not None):
        if fs.type is int:
            lo = _INT64[0] if spec.min is None else int(math.ceil(spec.min))
            hi = _INT64[1] if spec.max is None else int(math.floor(spec.max))
            desc.integer_range = [IntegerRange(from_value=lo, to_value=hi, step=0)]
        else:
            lo = -math.inf if spec.min is None else float(spec.min)
            hi = math.inf if spec.max is None else float(spec.max)
            desc.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi,
                                                            step=0.0)]
    return desc


def _from_parameter(fs: FieldSpec, value: Any) -> Any:
    if fs.type is tuple:
        return tuple(value) if value is not None else ()
    return value


class ConfigBinding(Generic[C]):
    """Parameters of one config dataclass on one node.

    Args:
        node: the node that owns the parameters.
        cls: the config dataclass (fields with ``param()`` metadata).
        prefix: parameter name prefix, e.g. ``'quality.'`` (empty for top-level names).
        on_change: called as ``on_change(new_config, changed_field_names)`` after a runtime
            change was accepted; may raise ConfigError to reject it after all.
        defaults: overrides of the dataclass defaults for this node.

    ``load()`` (call it in ``on_configure``) builds the config from the current values and
    raises ConfigError with the validator's message when they are invalid.

    Read-only fields (``param(read_only=True)``: a model, a device, a buffer size) are declared
    read-only. :meth:`set_locked` lifts that while the owning lifecycle node is unconfigured,
    so a value that failed ``configure`` can be fixed with ``ros2 param set`` and configured
    again (:class:`edge_vision.node_base.EdgeVisionNode` does this).
    """

    def __init__(self, node: Node, cls: type[C], prefix: str = '',
                 on_change: Callable[[C, set[str]], None] | None = None,
                 defaults: dict[str, Any] | None = None) -> None:
        self._node, self._cls, self._prefix = node, cls, prefix
        self._on_change = on_change
        self._fields = {prefix + fs.name: fs for fs in config_fields(cls)}
        self._config: C | None = None
        # Overrides (command line, YAML) rclpy refused at declaration: reported by load(), so
        # the node stays up and says what to fix instead of dying in its constructor.
        self._refused: list[str] = []
        defaults = defaults or {}
        for name, fs in self._fields.items():
            default = defaults.get(fs.name, fs.default)
            desc = describe(fs, name)
            value = _PARAM_TYPES[desc.type] if fs.type is tuple and len(default) == 0 else \
                list(default) if fs.type is tuple else default
            try:
                node.declare_parameter(name, value, desc)
            except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
                self._refused.append(f'parameter {name}: {exc}')
                node.declare_parameter(name, value, desc, ignore_override=True)
        node.add_on_set_parameters_callback(self._validate)

    @property
    def config(self) -> C:
        """The last loaded/accepted config (``load()`` first)."""
        if self._config is None:
            raise RuntimeError('ConfigBinding.load() has not been called')
        return self._config

    @property
    def parameter_names(self) -> list[str]:
        return list(self._fields)

    def set_locked(self, locked: bool) -> None:
        """Make the read-only fields read-only (``locked``) or settable (while the node is
        unconfigured). ``ros2 param describe`` shows the current state. rclpy has no call that
        clears ``read_only`` once set, so the node's stored descriptor is updated in place."""
        for name, fs in self._fields.items():
            if fs.spec.read_only:
                self._node.describe_parameter(name).read_only = locked

    def load(self) -> C:
        if self._refused:
            raise ConfigError('; '.join(self._refused))
        values = {}
        for name, fs in self._fields.items():
            try:
                value = self._node.get_parameter(name).value
            except ParameterUninitializedException:  # an empty list declared by type only
                value = fs.default
            values[fs.name] = _from_parameter(fs, value)
        self._config = self._cls(**values)
        return self._config

    def _validate(self, params: list[Parameter]) -> SetParametersResult:
        changes = {self._fields[p.name].name: _from_parameter(self._fields[p.name], p.value)
                   for p in params if p.name in self._fields}
        if not changes or self._config is None:
            return SetParametersResult(successful=True)
        try:
            candidate = dataclasses.replace(self._config, **changes)
            if self._on_change is not None:
                self._on_change(candidate, set(changes))
        except (ConfigError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._config = candidate
        return SetParametersResult(successful=True)
