"""What every edge_vision node shares: lifecycle with autostart, diagnostics, guarded publishing.

Lifecycle semantics (REP-2001 managed nodes), the same for every node:

- *unconfigured*: parameters are declared (``ros2 param list`` shows them), nothing else runs;
- ``configure``: parameters are validated and loaded, the model/file/calibration is loaded;
  an invalid value or a bad file fails the transition with a message naming it, and the node
  stays unconfigured (fix the parameter, configure again);
- ``activate``: devices open, subscriptions start, messages flow;
- ``deactivate``: streams stop, devices are released; ``cleanup`` drops what configure loaded.

With ``autostart:=true`` (the default) a node configures and activates itself at start-up,
so ``ros2 run`` and plain launch files work without a lifecycle manager. With
``autostart:=false`` it waits for ``ros2 lifecycle set`` or a manager (launch_ros
``LifecycleNode`` + events, nav2_lifecycle_manager).

Diagnostics: every node publishes ``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics``
(period ``diagnostics_period``), one status per node: its lifecycle state plus the counters and
timings the node reports in :meth:`EdgeVisionNode.diagnostic_values`.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from vision_msgs.msg import Detection2DArray, LabelInfo

from edge_vision_core import EdgeVisionError, FrameDetections
from edge_vision_core.config import check_config, param

from .conversions import label_info_to_labels, msg_to_frame_detections
from .dds import apply_transport_defaults
from .intra import InputSpec, Output
from .params import ConfigBinding
from .qos import latched_qos, results_qos, subscription_event_callbacks

__all__ = ['BaseConfig', 'EdgeVisionNode', 'TransitionCallbackReturn', 'run_node']

# DiagnosticStatus levels as ints (the message field is a byte).
C = TypeVar('C')

OK, WARN, ERROR = (int.from_bytes(v, 'little') if isinstance(v, bytes) else int(v)
                   for v in (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR))


@dataclass(frozen=True)
class BaseConfig:
    """Parameters every edge_vision node has."""

    autostart: bool = field(default=True, metadata=param(
        'Configure and activate at start-up (false: wait for a lifecycle manager or '
        '`ros2 lifecycle set`).', read_only=True))
    diagnostics_period: float = field(default=1.0, metadata=param(
        'Seconds between /diagnostics messages (0 disables them).', min=0.0, max=3600.0,
        unit='s', read_only=True))
    input_timeout_s: float = field(default=5.0, metadata=param(
        'Report a stream input that has received nothing for this long (no publisher, a dead '
        'upstream node, a QoS mismatch) in the log and /diagnostics; 0 disables it.', min=0.0,
        max=3600.0, unit='s', read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


class LabelTable:
    """The class names of a results input: ``label_info`` gives them, and names first seen in
    the results are appended (ids stay stable); with ``replace`` each ``label_info`` replaces
    the table instead (a display that follows whatever model publishes)."""

    def __init__(self, replace: bool = False) -> None:
        self.names: list[str] = []
        self._replace = replace

    def update(self, labels: list[str]) -> None:
        if self._replace:
            self.names[:] = labels
            return
        for name in labels:
            if name not in self.names:
                self.names.append(name)

    def from_msg(self, msg: Detection2DArray) -> FrameDetections:
        return msg_to_frame_detections(msg, self.names, extend_labels=True)

    def for_item(self, item: FrameDetections) -> tuple[str, ...] | None:
        """The labels of ``item``: its own (composed pipeline), else the table's."""
        return item.labels or (tuple(self.names) if self.names else None)

    def __len__(self) -> int:
        return len(self.names)


class EdgeVisionNode(LifecycleNode):
    """Base class of the edge_vision nodes (see the module docstring for the semantics).

    Subclasses implement ``on_configure``/``on_activate``/``on_deactivate``/``on_cleanup``
    (returning :data:`TransitionCallbackReturn`), and may override :meth:`diagnostic_values`.
    Use :meth:`fail` in ``on_configure`` to report why a transition failed.
    """

    #: The node's parameter groups: ``(prefix, config dataclass)`` pairs, declared in this
    #: order after :class:`BaseConfig`. Subclasses set it; ``edge-vision params`` documents it.
    PARAMETERS: tuple[tuple[str, type], ...] = ()

    def __init__(self, node_name: str, **kwargs: object) -> None:
        super().__init__(node_name, **kwargs)
        self.publish_failures = 0
        self.last_error = ''
        base = ConfigBinding(self, BaseConfig)
        try:
            base_cfg = base.load()
        except EdgeVisionError as exc:
            self.get_logger().error(f'{exc}; using the defaults')
            base_cfg = BaseConfig()
        self._autostart = base_cfg.autostart
        self._input_timeout = base_cfg.input_timeout_s
        self._active_since: float | None = None
        self.input_problems: list[str] = []
        self._watch_timer = self.create_timer(max(1.0, self._input_timeout / 2),
                                              self._watch_inputs) \
            if self._input_timeout > 0 else None
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(base_cfg.diagnostics_period,
                                             self._publish_diagnostics) \
            if base_cfg.diagnostics_period > 0 else None
        # one handler at a time per node: DDS callbacks, in-process link workers and runtime
        # parameter changes alike (a change lands between two frames, never during one)
        self._deliver_lock = threading.RLock()
        self.params = {cls: ConfigBinding(self, cls, prefix=prefix,
                                          on_change=self._parameter_change)
                       for prefix, cls in self.PARAMETERS}
        self.outputs: list[Output] = []
        self.inputs: list[InputSpec] = []
        self.bad_messages = 0
        self.processing_errors = 0

    # -- ports -----------------------------------------------------------------------------

    def add_output(self, topic: str, msg_type: type, to_msg: Callable[[Any], Any],
                   qos: Any, latched: bool = False, event_callbacks: Any = None) -> Output:
        """Declare an output (in ``on_configure``); see :class:`edge_vision.intra.Output`."""
        out = Output(self, topic, msg_type, to_msg, qos, latched, event_callbacks)
        self.outputs.append(out)
        return out

    def add_input(self, topic: str, msg_type: type, from_msg: Callable[[Any], Any],
                  handler: Callable[[Any], None], qos: Any, linkable: bool = True,
                  watch: bool | None = None) -> InputSpec:
        """Declare an input (in ``on_configure``). Its subscription is created on activate,
        unless the composer linked it to an in-process producer. ``watch`` (default: the
        linkable stream inputs) reports it when it goes quiet."""
        spec = InputSpec(topic, msg_type, from_msg, handler, qos, linkable,
                         watch=linkable if watch is None else watch,
                         resolved=self.resolve_topic_name(topic),
                         event_callbacks=subscription_event_callbacks(self, topic))
        self.inputs.append(spec)
        return spec

    def add_results_input(self, topic: str, handler: Callable[[FrameDetections], None],
                          replace_labels: bool = False) -> LabelTable:
        """Declare a results input (vision_msgs/Detection2DArray: ``detections`` or
        ``tracks``) and ``label_info`` beside it; the returned table holds the class names."""
        labels = LabelTable(replace_labels)
        self.add_input(topic, Detection2DArray, labels.from_msg, handler, results_qos())
        self.add_input('label_info', LabelInfo, label_info_to_labels, labels.update,
                       latched_qos(), linkable=False)
        return labels

    def _deliver(self, spec: InputSpec, item: Any) -> None:
        """Run an input handler; errors are logged and counted, never fatal to the node."""
        spec.received += 1
        spec.last_received = time.monotonic()
        with self._deliver_lock:
            self.run_guarded(spec.resolved, spec.handler, item)

    def run_guarded(self, where: str, handler: Callable[[Any], None], item: Any) -> None:
        """``handler(item)``; errors are logged (prefixed with ``where``) and counted, never
        fatal to the node, and ignored once the process is shutting down."""
        try:
            handler(item)
        except EdgeVisionError as exc:
            if not self.context.ok():
                return
            self.processing_errors += 1
            self.last_error = str(exc)
            self.get_logger().error(f'{where}: {exc}', throttle_duration_sec=5.0)
        except Exception as exc:  # a bug must not take the robot's pipeline down
            if not self.context.ok():
                return
            self.processing_errors += 1
            self.last_error = f'{type(exc).__name__}: {exc}'
            self.get_logger().error(
                f'{where}: unexpected {type(exc).__name__}: {exc}\n'
                f'{traceback.format_exc()}', throttle_duration_sec=5.0)

    def _on_message(self, spec: InputSpec, msg: Any) -> None:
        try:
            item = spec.from_msg(msg)
        except EdgeVisionError as exc:
            self.bad_messages += 1
            self.last_error = str(exc)
            self.get_logger().error(f'dropped a message on {spec.resolved} '
                                    f'({self.bad_messages} so far): {exc}',
                                    throttle_duration_sec=5.0)
            return
        self._deliver(spec, item)

    def _link_handler(self, spec: InputSpec) -> Callable[[Any], None]:
        return lambda item: self._deliver(spec, item)

    def _watch_inputs(self) -> None:
        """Say which stream inputs are quiet and why (no publisher, or nothing arriving)."""
        if self._active_since is None:
            self.input_problems = []
            return
        now = time.monotonic()
        problems = []
        for spec in self.inputs:
            if not spec.watch or spec.link is not None:
                continue  # in-process producers are watched by their own node
            since = spec.last_received if spec.last_received is not None else self._active_since
            if now - since < self._input_timeout:
                continue
            publishers = self.count_publishers(spec.resolved)
            quiet = f'{now - since:.0f} s'
            if publishers == 0:
                problems.append(f'no publisher on {spec.resolved} for {quiet}: is the upstream '
                                f'node running?')
            elif spec.last_received is None:
                problems.append(f'{publishers} publisher(s) on {spec.resolved} but nothing '
                                f'received in {quiet}: the publisher is not producing yet, or '
                                f'the QoS does not match (an error above says so)')
            else:
                problems.append(f'nothing received on {spec.resolved} for {quiet} '
                                f'({publishers} publisher(s); upstream stalled?)')
        self.input_problems = problems
        for problem in problems:
            self.get_logger().warning(problem, throttle_duration_sec=30.0)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active_since = time.monotonic()
        for spec in self.inputs:
            if spec.link is None and spec.subscription is None:
                spec.subscription = self.create_subscription(
                    spec.msg_type, spec.topic, lambda msg, s=spec: self._on_message(s, msg),
                    spec.qos, event_callbacks=spec.event_callbacks)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active_since = None
        for spec in self.inputs:
            if spec.subscription is not None:
                self.destroy_subscription(spec.subscription)
                spec.subscription = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for spec in self.inputs:
            if spec.link is not None:
                spec.link.destroy()
                spec.link = None
        self.inputs.clear()
        for out in self.outputs:
            out.destroy()
        self.outputs.clear()
        return TransitionCallbackReturn.SUCCESS

    def load_parameters(self) -> None:
        """Load and validate every parameter group (call first in ``on_configure``).

        Raises:
            ConfigError: the first invalid group, with the validator's message.
        """
        for binding in self.params.values():
            binding.load()

    def config(self, cls: type[C]) -> C:
        """The current (validated) value of one parameter group."""
        return self.params[cls].config

    def _parameter_change(self, config: object, changed: set[str]) -> None:
        with self._deliver_lock:
            self.on_parameter_change(config, changed)

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        """Called with a candidate config when parameters change at runtime, between two input
        handlers (never during one); raise ConfigError to refuse the change (e.g. while
        streaming). Accepts everything by default."""

    # -- lifecycle helpers -----------------------------------------------------------------

    def autostart(self) -> bool:
        """Configure and activate if ``autostart`` is set; returns True when active."""
        if not self._autostart:
            self.get_logger().info('autostart is off: waiting for lifecycle transitions')
            return False
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            name = self.get_fully_qualified_name()
            self.get_logger().error(f'configure failed (see above): fix the parameter and run '
                                    f'`ros2 lifecycle set {name} configure`')
            return False
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error('activate failed (see above)')
            return False
        return True

    def fail(self, error: Exception | str) -> TransitionCallbackReturn:
        """Log ``error`` and return FAILURE (for use in transition callbacks)."""
        self.last_error = str(error)
        self.get_logger().error(self.last_error)
        return TransitionCallbackReturn.FAILURE

    @property
    def lifecycle_state(self) -> str:
        """The current lifecycle state's label ('unconfigured', 'inactive', 'active'...)."""
        return str(self._state_machine.current_state[1])

    def release(self) -> None:
        """Stop threads and release devices at process shutdown; idempotent. Subclasses that
        hold resources override it (deactivate/cleanup usually call it too)."""

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'error in state {state.label}: {self.last_error}')
        return TransitionCallbackReturn.SUCCESS

    # -- publishing ------------------------------------------------------------------------

    def publish(self, publisher: object, msg: object) -> bool:
        """Publish, counting (not raising) DDS write failures such as a full reliable history.

        Returns False when the message could not be written; the count is in diagnostics.
        """
        try:
            publisher.publish(msg)
            return True
        except (_rclpy.RCLError, _rclpy.InvalidHandle) as exc:
            if not self.context.ok():
                return False  # shutting down
            self.publish_failures += 1
            self.get_logger().warning(
                f'could not publish on {publisher.topic_name}: {exc} '
                f'({self.publish_failures} failures so far)', throttle_duration_sec=5.0)
            return False

    # -- diagnostics -----------------------------------------------------------------------

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        """``(level, message, values)`` of this node's status; subclasses extend it."""
        return OK, self.lifecycle_state, {}

    def _publish_diagnostics(self) -> None:
        try:
            level, message, values = self.diagnostic_values()
        except Exception as exc:  # diagnostics must never kill the node
            level, message, values = ERROR, f'diagnostics failed: {exc}', {}
        values = dict(values)
        values.setdefault('lifecycle_state', self.lifecycle_state)
        for key in ('publish_failures', 'bad_messages', 'processing_errors'):
            if getattr(self, key):
                values[key] = getattr(self, key)
                level = max(level, WARN)
        for spec in self.inputs:
            if spec.link is not None:
                values[f'in_process {spec.resolved} delivered/dropped'] = \
                    f'{spec.link.delivered}/{spec.link.dropped}'
            elif spec.watch:
                values[f'received {spec.resolved}'] = spec.received
        if self.input_problems:
            values['input_problems'] = '; '.join(self.input_problems)
            level = max(level, WARN)
            message = f'{message}; {self.input_problems[0]}'
        status = DiagnosticStatus(
            level=bytes([level]),
            name=f'{self.get_fully_qualified_name()}', message=message,
            hardware_id=str(values.pop('hardware_id', '')),
            values=[KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f'{value:.3f}'
    return str(value)


def run_node(factory: Callable[[], EdgeVisionNode], args: Sequence[str] | None = None) -> int:
    """``main()`` body of every node executable: DDS defaults, init, autostart, spin, shutdown.

    A configuration error leaves the node running unconfigured (so it can be fixed with
    ``ros2 param set`` + ``ros2 lifecycle set``) rather than exiting into a crash loop.
    """
    note = apply_transport_defaults()
    rclpy.init(args=list(args) if args is not None else sys.argv)
    node = None
    code = 0
    try:
        node = factory()
        node.get_logger().info(note)
        node.autostart()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except EdgeVisionError as exc:
        print(f'{exc}', file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            node.release()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
