"""What every edge_vision node shares: lifecycle with autostart, guarded inputs, one synchronised
input for results + image, diagnostics and stats, guarded publishing, a clean shutdown.

Lifecycle semantics (REP-2001 managed nodes), the same for every node:

- *unconfigured*: parameters are declared (``ros2 param list`` shows them), nothing else runs;
  read-only parameters (model, backend, device, buffer sizes...) can be set in this state only;
- ``configure``: parameters are validated and loaded, the model/file/calibration is loaded;
  an invalid value or a bad file fails the transition with a message naming it, and the node
  stays unconfigured, holding nothing of the attempt (``ros2 param set`` the value, then
  ``ros2 lifecycle set <node> configure``); diagnostics say ERROR with the reason meanwhile;
- ``activate``: devices open, subscriptions start, messages flow;
- ``deactivate``: streams stop, devices are released; ``cleanup`` drops what configure loaded.

A transition callback that raises (a bug, an unexpected library error) fails the transition
with the exception logged and named, like a refused one: the node stays up.

With ``autostart:=true`` (the default) a node configures and activates itself at start-up,
so ``ros2 run`` and plain launch files work without a lifecycle manager. With
``autostart:=false`` it waits for ``ros2 lifecycle set`` or a manager (launch_ros
``LifecycleNode`` + events, nav2_lifecycle_manager).

Inputs (declared in ``on_configure``; subscribed on activate, or linked to an in-process
producer by :mod:`edge_vision.compose`):

- :meth:`EdgeVisionNode.add_input`: one topic, ``from_msg`` conversion, ``handler(obj)``;
  ``mailbox=True`` runs the handler in a worker thread fed newest-first (receiving overlaps a
  slow handler, replaced messages are counted);
- :meth:`EdgeVisionNode.add_synced_input`: results (``vision_msgs/Detection2DArray``) paired
  by exact stamp with the image they were found in, plus ``label_info``, delivered as
  ``handler(frame, results, labels)`` the same way in process and over DDS; see
  :mod:`edge_vision.synced` for the modes (image required, optional, or only when attached).

Every input is guarded: a message whose conversion fails (any exception, not only the
suite's own errors) is dropped and counted in ``bad_messages``, a handler that raises is
counted in ``processing_errors``; both are logged (throttled) naming the topic and the problem,
and neither ends the process. :meth:`EdgeVisionNode.guard` wraps service and timer callbacks
the same way.

Concurrency promise: a node runs one handler at a time: DDS callbacks, in-process link
workers, mailbox workers and runtime parameter changes all take the node's handler lock, so a
parameter change lands between two frames, never during one. Work that must not stall the
node (a model refit) runs in a thread of its own *without* that lock and hands its result back
under it.

Stats and diagnostics: :meth:`EdgeVisionNode.stats` returns the node's counters and timings as
numbers (``{name: value}``); :meth:`EdgeVisionNode.diagnostic_values` adds the text and the
level; ``/diagnostics`` (period ``diagnostics_period``) publishes one status per node, and
``edge-vision run`` builds its report from ``stats()``.

Shutdown: :func:`run_node` (every node executable's ``main``) stops on SIGINT or SIGTERM,
ignores the repeated ones that ``ros2 launch`` and terminals send during cleanup, releases
devices and files, and exits 0.
"""

from __future__ import annotations

import functools
import signal
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

from edge_vision_core import ConfigError, EdgeVisionError, FrameDetections
from edge_vision_core.config import check_config, param

from .dds import apply_transport_defaults
from .intra import InputSpec, Link, Output
from .params import ConfigBinding
from .qos import (
    QosConfig,
    latched_qos,
    results_qos,
    stream_subscriber_qos,
    subscription_event_callbacks,
    with_min_depth,
)
from .synced import LabelTable, SyncedHandler, SyncedInput

__all__ = ['BaseConfig', 'EdgeVisionNode', 'LabelTable', 'SyncedInput',
           'TransitionCallbackReturn', 'run_node', 'spin_until_stopped']

# DiagnosticStatus levels as ints (the message field is a byte).
C = TypeVar('C')

OK, WARN, ERROR = (int.from_bytes(v, 'little') if isinstance(v, bytes) else int(v)
                   for v in (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR))

_TRANSITIONS = ('on_configure', 'on_activate', 'on_deactivate', 'on_cleanup', 'on_shutdown')
#: History of results subscriptions (reliable): DDS silently drops the oldest unread message
#: when a KEEP_LAST reader is full, so a stage that stalls for a moment (CPU contention, a slow
#: frame) must have room for a burst: 100 messages are 3 s at 30 Hz (measured: a burst of 150
#: detections messages reached a tracker with depth 10 as 22-26 tracks messages).
RESULTS_SUBSCRIPTION_DEPTH = 100


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


def _guarded_transition(name: str, fn: Callable[..., TransitionCallbackReturn]
                        ) -> Callable[..., TransitionCallbackReturn]:
    """Wrap a subclass's transition callback: an exception fails the transition (logged, with
    the node left up), and a failed configure leaves nothing half-configured."""

    @functools.wraps(fn)
    def transition(self: EdgeVisionNode, state: LifecycleState) -> TransitionCallbackReturn:
        if self._transition_depth:  # super() from a subclass: the outermost call guards
            return fn(self, state)
        self._transition_depth += 1
        try:
            result = fn(self, state)
        except Exception as exc:  # a bug must not leave the node in an unknown state
            result = self.fail(f'{name[3:]}: unexpected {type(exc).__name__}: {exc}\n'
                               f'{traceback.format_exc()}'.rstrip())
        finally:
            self._transition_depth -= 1
        self._after_transition(name, state, result)
        return result

    transition._edge_vision_guarded = True  # type: ignore[attr-defined]
    return transition


class EdgeVisionNode(LifecycleNode):
    """Base class of the edge_vision nodes (see the module docstring for the semantics).

    Subclasses implement ``on_configure``/``on_activate``/``on_deactivate``/``on_cleanup``
    (returning :data:`TransitionCallbackReturn`), and may override :meth:`stats` and
    :meth:`diagnostic_values`. Use :meth:`fail` in ``on_configure`` to report why a transition
    failed.
    """

    #: The node's parameter groups: ``(prefix, config dataclass)`` pairs, declared in this
    #: order after :class:`BaseConfig`. Subclasses set it; ``edge-vision params`` documents it.
    PARAMETERS: tuple[tuple[str, type], ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _TRANSITIONS:
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, '_edge_vision_guarded', False):
                setattr(cls, name, _guarded_transition(name, fn))

    def __init__(self, node_name: str, **kwargs: object) -> None:
        super().__init__(node_name, **kwargs)
        self._transition_depth = 0
        self.publish_failures = 0
        self.last_error = ''
        self.configure_error = ''
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
        self._watch_period = max(1.0, self._input_timeout / 2)
        self._last_watch = time.monotonic()
        self._watch_resumed = 0.0
        self._watch_timer = self.create_timer(
            self._watch_period, self.guard('input watch', self._watch_inputs)) \
            if self._input_timeout > 0 else None
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(
            base_cfg.diagnostics_period, self.guard('diagnostics', self._publish_diagnostics)) \
            if base_cfg.diagnostics_period > 0 else None
        # one handler at a time per node: DDS callbacks, in-process link and mailbox workers
        # and runtime parameter changes alike (a change lands between two frames, never
        # during one)
        self._deliver_lock = threading.RLock()
        self.params = {cls: ConfigBinding(self, cls, prefix=prefix,
                                          on_change=self._parameter_change)
                       for prefix, cls in self.PARAMETERS}
        self._lock_parameters(False)  # unconfigured: read-only values may still be set
        self.outputs: list[Output] = []
        self.inputs: list[InputSpec] = []
        self.synced_inputs: list[SyncedInput] = []
        self.bad_messages = 0
        self.processing_errors = 0
        # rclpy's own lifecycle services go through the guard too; ROS 2 Jazzy's rclpy also
        # raises out of change_state for a transition its state machine does not know, which
        # ended the process: refused with success=false as Kilted's rclpy does
        for name in ('change_state', 'get_state', 'get_available_states',
                     'get_available_transitions', 'get_transition_graph'):
            service = getattr(self, f'_service_{name}', None)
            if service is not None:
                callback = service.callback
                if name == 'change_state':
                    callback = self._refuse_unknown_transitions(callback)
                service.callback = self.guard(f'lifecycle {name}', callback)

    def _refuse_unknown_transitions(self, change_state: Callable[..., Any]
                                    ) -> Callable[..., Any]:
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        @functools.wraps(change_state)
        def refusing(request: Any, response: Any) -> Any:
            try:
                return change_state(request, response)
            except _rclpy.RCLError as exc:  # a request the state machine refuses: no bug here
                self.get_logger().error(
                    f'refused lifecycle transition {request.transition.id} '
                    f'{request.transition.label!r} in state {self.lifecycle_state}: {exc}',
                    throttle_duration_sec=5.0)
                response.success = False
                return response

        return refusing

    # -- ports -----------------------------------------------------------------------------

    def add_output(self, topic: str, msg_type: type, to_msg: Callable[[Any], Any],
                   qos: Any, latched: bool = False, event_callbacks: Any = None,
                   frames: str | Callable[[], str | None] | None = None) -> Output:
        """Declare an output (in ``on_configure``); see :class:`edge_vision.intra.Output`
        (``frames``: whose frames the emitted FrameDetections carry, for synced inputs)."""
        out = Output(self, topic, msg_type, to_msg, qos, latched, event_callbacks, frames)
        self.outputs.append(out)
        return out

    def add_input(self, topic: str, msg_type: type, from_msg: Callable[[Any], Any],
                  handler: Callable[[Any], None], qos: Any, linkable: bool = True,
                  watch: bool | None = None, mailbox: bool = False) -> InputSpec:
        """Declare an input (in ``on_configure``). Its subscription is created on activate,
        unless the composer linked it to an in-process producer. ``watch`` (default: the
        linkable stream inputs) reports it when it goes quiet; ``mailbox`` runs the handler in
        a worker thread on the newest message (see :class:`edge_vision.intra.InputSpec`)."""
        spec = InputSpec(topic, msg_type, from_msg, handler, qos, linkable,
                         watch=linkable if watch is None else watch,
                         resolved=self.resolve_topic_name(topic),
                         event_callbacks=subscription_event_callbacks(self, topic),
                         mailbox=mailbox)
        self.inputs.append(spec)
        return spec

    def add_synced_input(self, image_topic: str | None, results_topic: str,
                         handler: SyncedHandler, *, image: str = 'required',
                         encoding: str = 'bgr8', capacity: int = 10,
                         replace_labels: bool = False, image_qos: Any = None,
                         labels_topic: str = 'label_info') -> SyncedInput:
        """Declare one synchronised input (in ``on_configure``): ``handler(frame, results,
        labels)`` per results message, in process and over DDS alike.

        Args:
            image_topic: the image the results refer to (e.g. ``image``,
                ``image_annotated``), or None for results and labels only.
            results_topic: the ``vision_msgs/Detection2DArray`` topic (``detections``,
                ``tracks``...).
            handler: called with ``(Frame | None, FrameDetections, labels | None)``.
            image: ``'required'``, ``'optional'`` or ``'attached'`` (see
                :mod:`edge_vision.synced`).
            encoding: the encoding the handler gets frames in (``'passthrough'``: as sent).
            capacity: messages kept per side while waiting for the partner.
            replace_labels: each ``label_info`` replaces the class names instead of adding.
            image_qos: QoS of the image subscription (default: the node's ``qos.*``); its
                history is raised to ``capacity`` frames when shorter.
            labels_topic: the ``vision_msgs/LabelInfo`` topic.

        Returns:
            The port (its ``labels``, ``stats()``, ``arrival_ns``, ``frame_topic``).
        """
        if image_qos is None:
            binding = self.params.get(QosConfig)
            image_qos = stream_subscriber_qos(binding.config if binding is not None and
                                              binding._config is not None else None)
        # the frame a results message refers to is not the newest one: a reader that keeps only
        # the newest frame loses, whenever the node stalls for two frame periods (CPU
        # contention, a garbage collection), the images whose results are on their way, and
        # those results are then dropped unpaired. Room for as many frames as the pairing buffer
        # holds (the history holds only frames not yet taken).
        image_qos = with_min_depth(image_qos, capacity)
        port = SyncedInput(self, image_topic, results_topic, handler, image=image,
                           encoding=encoding, capacity=capacity, replace_labels=replace_labels,
                           image_qos=image_qos,
                           results_qos=results_qos(RESULTS_SUBSCRIPTION_DEPTH),
                           labels_qos=latched_qos(), labels_topic=labels_topic)
        self.synced_inputs.append(port)
        return port

    def add_results_input(self, topic: str, handler: Callable[[FrameDetections], None],
                          replace_labels: bool = False) -> LabelTable:
        """Results and ``label_info`` without an image: :meth:`add_synced_input` with
        ``image_topic=None``, for handlers that take the results only. Returns the labels."""
        port = self.add_synced_input(None, topic, lambda frame, item, labels: handler(item),
                                     replace_labels=replace_labels)
        return port.labels

    def _deliver(self, spec: InputSpec, item: Any) -> None:
        """Run an input handler under the node's handler lock; errors are logged and counted,
        never fatal to the node."""
        with self._deliver_lock:
            self.run_guarded(spec.resolved, spec.handler, item)

    def run_guarded(self, where: str, handler: Callable[..., Any], *args: Any) -> Any:
        """``handler(*args)``; errors are logged (prefixed with ``where``) and counted in
        ``processing_errors``, never fatal to the node, and ignored once the process is
        shutting down. Returns the handler's result, None after an error."""
        try:
            return handler(*args)
        except Exception as exc:  # a bug must not take the robot's pipeline down
            if not self.context.ok():
                return None
            self.processing_errors += 1
            if isinstance(exc, EdgeVisionError):
                self.last_error = str(exc)
                self.get_logger().error(f'{where}: {exc}', throttle_duration_sec=5.0)
            else:
                self.last_error = f'{type(exc).__name__}: {exc}'
                self.get_logger().error(
                    f'{where}: unexpected {type(exc).__name__}: {exc}\n'
                    f'{traceback.format_exc()}', throttle_duration_sec=5.0)
            return None

    def guard(self, where: str, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback`` wrapped by :meth:`run_guarded` (for timers and services: an exception
        in a ROS callback would otherwise end ``spin()`` and the process). A service response
        with ``success``/``message`` fields reports the error to the caller."""

        @functools.wraps(callback)
        def guarded(*args: Any) -> Any:
            result = self.run_guarded(where, callback, *args)
            if result is None and len(args) == 2 and hasattr(args[1], 'success'):
                response = args[1]  # a service call (request, response) that failed
                response.success = False
                for text in ('message', 'status_message'):
                    if hasattr(response, text):
                        setattr(response, text, f'{where} failed: {self.last_error}')
                return response
            return result

        return guarded

    def _on_message(self, spec: InputSpec, msg: Any) -> None:
        spec.received += 1
        spec.last_received = time.monotonic()
        try:
            item = spec.from_msg(msg)
        except Exception as exc:  # a malformed message must never end the node
            if not self.context.ok():
                return
            self.bad_messages += 1
            self.last_error = str(exc) if isinstance(exc, EdgeVisionError) else \
                f'{type(exc).__name__}: {exc}'
            self.get_logger().error(f'dropped a message on {spec.resolved} '
                                    f'({self.bad_messages} so far): {self.last_error}',
                                    throttle_duration_sec=5.0)
            return
        if spec.queue is not None:
            spec.queue.put(item)
        else:
            self._deliver(spec, item)

    def _on_linked(self, spec: InputSpec, item: Any) -> None:
        spec.received += 1
        spec.last_received = time.monotonic()
        self._deliver(spec, item)

    def _link_handler(self, spec: InputSpec) -> Callable[[Any], None]:
        return lambda item: self._on_linked(spec, item)

    def _watch_inputs(self) -> None:
        """Say which stream inputs are quiet and why (no publisher, or nothing arriving)."""
        now = time.monotonic()
        if now - self._last_watch > 2.0 * self._watch_period:
            # this timer itself ran late: the executor was busy, so callbacks waiting for it
            # have not run yet and silence measured until now would be a false report
            self._watch_resumed = now
        self._last_watch = now
        if self._active_since is None:
            self.input_problems = []
            return
        problems = []
        for spec in self.inputs:
            if not spec.watch or not spec.enabled or spec.link is not None:
                continue  # in-process producers are watched by their own node
            since = spec.last_received if spec.last_received is not None else self._active_since
            since = max(since, self._watch_resumed)
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
                                f'({publishers} publisher(s) announced: the upstream node '
                                f'stalled, or died and DDS has not noticed yet)')
        self.input_problems = problems
        for problem in problems:
            self.get_logger().warning(problem, throttle_duration_sec=30.0)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active_since = time.monotonic()
        for spec in self.inputs:
            if not spec.enabled or spec.link is not None:
                continue
            if spec.mailbox and spec.queue is None:
                spec.queue = Link(lambda item, s=spec: self._deliver(s, item),
                                  name=f'{self.get_name()}:{spec.topic}')
            if spec.subscription is None:
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
        self._stop_mailboxes()
        with self._deliver_lock:
            for port in self.synced_inputs:
                self.run_guarded(f'flushing {port.results_spec.resolved}', port.flush)
        return super().on_deactivate(state)

    def _stop_mailboxes(self) -> None:
        """Stop the mailbox workers (waiting for the message in hand); idempotent."""
        for spec in self.inputs:
            queue, spec.queue = spec.queue, None
            if queue is not None:
                queue.destroy()
                spec.dropped_earlier += queue.dropped

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_mailboxes()
        for spec in self.inputs:
            if spec.subscription is not None:
                self.destroy_subscription(spec.subscription)
                spec.subscription = None
            if spec.link is not None:
                spec.link.destroy()
                spec.link = None
        self.inputs.clear()
        self.synced_inputs.clear()
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

    def _lock_parameters(self, locked: bool) -> None:
        for binding in self.params.values():
            binding.set_locked(locked)

    def _parameter_change(self, config: object, changed: set[str]) -> None:
        if self.lifecycle_state == 'unconfigured':
            return  # nothing runs yet: configure loads the new value
        with self._deliver_lock:
            try:
                self.on_parameter_change(config, changed)
            except (ConfigError, TypeError):
                raise
            except Exception as exc:  # refuse the change instead of ending the process
                self.get_logger().error(
                    f'parameter change {", ".join(sorted(changed))}: unexpected '
                    f'{type(exc).__name__}: {exc}\n{traceback.format_exc()}')
                raise ConfigError(f'{", ".join(sorted(changed))} could not be applied: '
                                  f'{type(exc).__name__}: {exc}') from exc

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        """Called with a candidate config when parameters change at runtime, between two input
        handlers (never during one); raise ConfigError to refuse the change (e.g. while
        streaming). Accepts everything by default."""

    # -- lifecycle helpers -----------------------------------------------------------------

    def _after_transition(self, name: str, state: LifecycleState,
                          result: TransitionCallbackReturn) -> None:
        ok = result == TransitionCallbackReturn.SUCCESS
        if name == 'on_configure':
            if ok:
                self.configure_error = ''
                self._lock_parameters(True)
                return
            self.configure_error = self.last_error or 'configure failed'
            self.on_cleanup(state)  # drop whatever the failed attempt created
            self._lock_parameters(False)
        elif name == 'on_cleanup' and ok:
            self._lock_parameters(False)

    def autostart(self) -> bool:
        """Configure and activate if ``autostart`` is set; returns True when active."""
        if not self._autostart:
            self.get_logger().info('autostart is off: waiting for lifecycle transitions')
            return False
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            name = self.get_fully_qualified_name()
            self.get_logger().error(
                f'configure failed (see above); the node stays up, unconfigured: fix the '
                f'parameter (`ros2 param set {name} <name> <value>`: read-only ones too, '
                f'while unconfigured) and run `ros2 lifecycle set {name} configure`, then '
                f'`activate`')
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
        hold resources override it (deactivate/cleanup usually call it too) and call
        ``super().release()``."""
        self._stop_mailboxes()

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

    # -- stats and diagnostics -------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """The node's counters and timings, numbers only (counts as ints, rates in Hz, times in
        ms), keyed by stable names; subclasses extend ``super().stats()``. /diagnostics shows
        them and ``edge-vision run`` reports them."""
        values: dict[str, float] = {'publish_failures': self.publish_failures,
                                    'bad_messages': self.bad_messages,
                                    'processing_errors': self.processing_errors}
        dropped = sum(spec.dropped for spec in self.inputs)
        if dropped:
            values['inputs_dropped'] = dropped
        for port in self.synced_inputs:
            values.update(port.stats())
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        """``(level, message, values)`` of this node's status: :meth:`stats` plus whatever
        text a subclass adds."""
        return OK, self.lifecycle_state, dict(self.stats())

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
            if not spec.enabled:
                continue
            if spec.link is not None:
                values[f'in_process {spec.resolved} delivered/dropped'] = \
                    f'{spec.link.delivered}/{spec.link.dropped}'
            elif spec.watch:
                values[f'received {spec.resolved}'] = spec.received
        if self.input_problems:
            values['input_problems'] = '; '.join(self.input_problems)
            level = max(level, WARN)
            message = f'{message}; {self.input_problems[0]}'
        if self.configure_error and self.lifecycle_state == 'unconfigured':
            level, message = ERROR, f'configure failed: {self.configure_error.splitlines()[0]}'
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


def _quiet_signals() -> None:
    """Ignore SIGINT/SIGTERM from here on: a terminal's Ctrl-C reaches the whole process group
    and ``ros2 launch`` sends another one, which must not interrupt the cleanup."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):  # not the main thread: nothing to do
            pass


def spin_until_stopped(spin: Callable[[], None], context: Any = None) -> None:
    """Run ``spin()`` (an executor's spin) until ``context`` (the default one when None) is
    shut down by SIGINT/SIGTERM through rclpy's signal handlers, and return.

    rclpy's handlers shut the context down from their own thread. When that lands between the
    executor's check of the context and its next wait set, rclpy raises RCLError ("the given
    context is not valid") instead of ExternalShutdownException, a known rclpy race
    (ros2/ros2cli#854, ros-visualization/rqt#357): a node stopped with Ctrl-C then exited 1 with
    a traceback. An error raised once the context is shut down is that stop; one raised while
    the context is still valid is a real error and propagates.
    """
    try:
        spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok(context=context):
            raise


def run_node(factory: Callable[[], EdgeVisionNode], args: Sequence[str] | None = None) -> int:
    """``main()`` body of every node executable: DDS defaults, init, autostart, spin, shutdown.

    A configuration error leaves the node running unconfigured (so it can be fixed with
    ``ros2 param set`` + ``ros2 lifecycle set``) rather than exiting into a crash loop. SIGINT
    or SIGTERM stops it; repeated signals during the cleanup are ignored, so devices and files
    are always released and the exit code is 0.
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
        spin_until_stopped(executor.spin)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except EdgeVisionError as exc:
        print(f'{exc}', file=sys.stderr)
        code = 2
    finally:
        _quiet_signals()
        try:
            if node is not None:
                node.release()
                node.destroy_node()
        finally:
            try:
                rclpy.try_shutdown()
            finally:
                _quiet_signals()  # rclpy restores the handlers it replaced
    return code
