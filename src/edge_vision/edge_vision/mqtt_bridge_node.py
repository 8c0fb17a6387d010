"""mqtt_bridge_node: the pipeline's results to an MQTT broker, and allow-listed commands back.

For IoT devices without rviz: what the camera sees leaves the device as small JSON messages on a
broker (Mosquitto on a site, EMQX/HiveMQ, a cloud IoT hub), where ``edge-vision fleet`` or any
MQTT client listens. The topic and payload schema, the event types and the command format are
documented in :mod:`edge_vision_core.mqtt` (and the README's MQTT section).

Subscribes (relative names, so one bridge per camera namespace):

- ``tracks`` (vision_msgs/Detection2DArray) and ``label_info`` (vision_msgs/LabelInfo, latched):
  the ``tracks`` stream (at most ``tracks_max_hz``) and the ``track_entered``/``track_left``
  events (remap ``tracks:=detections`` without a tracker: detections carry no ids, so they give
  the stream but no track events);
- ``anomaly`` (vision_msgs/Classification): ``anomaly_raised``/``anomaly_cleared``;
- ``text`` (edge_vision_msgs/TextArray, ocr_node's lines) when ``send_text`` is true: the
  ``text`` stream (frames with text, at most ``text_max_hz``);
- ``quality`` (diagnostic_msgs/DiagnosticArray, preprocess_node's per-frame report):
  ``quality_degraded``/``quality_recovered``;
- ``/diagnostics``: an ERROR from ``camera_node`` (a device unplugged, a stream down) is
  ``camera_lost`` (so is no frame for ``events.camera_timeout_s``); every node of this namespace
  gives its level and fps to the health message;
- ``snapshot_topic`` (sensor_msgs/Image) when set: the images snapshots are taken from. With the
  privacy filter on, set it to the filter's output: only anonymised images then leave the
  device, and an empty topic means no snapshot (never a raw one).

Talks to the broker (paho-mqtt, MQTT 5 or 3.1.1, TLS): events, snapshots and command replies
are stored on disk first and sent until acknowledged (survive broker outages and restarts of
this node); presence is a retained ``status`` with a Last Will; ``health`` every
``health_period_s``.

Commands (``.../cmd``, signed with the device's key unless ``require_signed_commands`` is off,
each answered on ``.../cmd/reply``): ``ping``, ``snapshot``, ``set_parameter`` (through the
target node's ``rcl_interfaces/srv/GetParameterTypes`` and ``SetParameters`` services, only for
``allowed_parameters``), ``learn_normal`` / ``stop_learning`` (``std_srvs/Trigger`` on
``<anomaly_node>/learn_normal`` and ``/stop_learning``; their clients are made at activation,
and each request is sent once, after the client has seen its service for
:data:`edge_vision.services.SETTLE_S`; parameter requests are sent again until answered).
Anything else, or anything malformed, unsigned, stale or replayed, is refused with a reply and
logged; nothing runs.

Lifecycle: ``configure`` validates the parameters (plain TCP with credentials is refused unless
``broker.allow_insecure``), reads the password, key and certificate files and opens the store;
``activate`` connects (in the background, retrying with backoff) and subscribes;
``deactivate`` sends what is queued (up to ``flush_timeout_s``), publishes ``offline`` and
disconnects.

Parameters: :class:`edge_vision_core.mqtt.BridgeConfig`, ``broker.*``
(:class:`edge_vision_core.mqtt.BrokerConfig`), ``events.*``
(:class:`edge_vision_core.mqtt.EventConfig`), ``qos.*``, ``autostart``, ``diagnostics_period``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameterTypes, SetParameters
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
from vision_msgs.msg import Classification

from edge_vision_core import EdgeVisionError, FrameDetections
from edge_vision_core.calibration.info_file import ros_home
from edge_vision_core.mqtt import Bridge, BridgeConfig, BrokerConfig, EventConfig, Topics
from edge_vision_core.mqtt.bridge import default_store_path
from edge_vision_core.mqtt.client import read_password
from edge_vision_core.mqtt.commands import Command
from edge_vision_core.mqtt.schema import default_device_id

from .conversions import (
    classification_score,
    diagnostic_level,
    image_to_frame,
    msg_to_frame_text,
    parameter_value,
    quality_from_msg,
)
from .node_base import ERROR, OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import QosConfig, results_qos, stream_subscriber_qos
from .services import ServiceCaller

__all__ = ['MqttBridgeNode', 'main', 'parameter_overrides']

#: The learning commands, each the std_srvs/Trigger service of its name on the anomaly node.
LEARNING_COMMANDS = ('learn_normal', 'stop_learning')


class MqttBridgeNode(EdgeVisionNode):
    """The MQTT bridge (see the module docstring)."""

    PARAMETERS = (('', BridgeConfig), ('broker.', BrokerConfig), ('events.', EventConfig),
                  ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('mqtt_bridge_node', **kwargs)
        self.bridge: Bridge | None = None
        self._labels = None
        self._timer = None
        self._stages: dict[str, dict[str, Any]] = {}
        self._camera_status = ''
        self._service_caller = ServiceCaller(self)
        self._guard = self.create_guard_condition(self._run_graph_commands)

    # -- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            cfg, broker = self.config(BridgeConfig), self.config(BrokerConfig)
            password = None
            if broker.password_file:
                password, warnings = read_password(broker.password_file)
                for warning in warnings:
                    self.get_logger().warning(warning)
            camera = self.get_namespace().strip('/').split('/')[-1] or 'camera'
            topics = Topics(cfg.topic_root, cfg.device_id or default_device_id(),
                            cfg.camera_id or camera)
            self.bridge = Bridge(cfg, broker, self.config(EventConfig), camera=camera,
                                 store_path=default_store_path(ros_home(), topics),
                                 password=password, clock_ns=self._now_ns,
                                 on_graph_command=self._guard.trigger, log=self._log)
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        self._camera_status = f'{self.get_namespace().rstrip("/")}/{cfg.camera_node}'
        self._labels = self.add_results_input('tracks', self._on_tracks)
        self.add_input('anomaly', Classification, classification_score, self._on_anomaly,
                       results_qos(), linkable=False)
        self.add_input('quality', DiagnosticArray, quality_from_msg, self._on_quality,
                       results_qos(), linkable=False)
        self.add_input('/diagnostics', DiagnosticArray, lambda msg: msg, self._on_diagnostics,
                       QoSProfile(depth=50), linkable=False)
        if cfg.send_text:
            from edge_vision_msgs.msg import TextArray  # built by make setup / colcon

            self.add_input('text', TextArray, msg_to_frame_text, self.bridge.on_text,
                           results_qos())
        if cfg.snapshot_topic:
            self.add_input(cfg.snapshot_topic, Image, image_to_frame, self.bridge.on_image,
                           stream_subscriber_qos(self.config(QosConfig)), watch=False)
        self.get_logger().info(
            f'configured: {broker.endpoint} as {self.bridge.topics.base}/, store '
            f'{self.bridge.store.path} ({self.bridge.store.depth} queued), snapshots '
            f'{"from " + cfg.snapshot_topic if cfg.snapshot_topic else "off"}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.bridge.start()
        self._timer = self.create_timer(0.5, self._tick)
        cfg = self.config(BridgeConfig)
        for cmd in LEARNING_COMMANDS:  # made now, so they are matched before a command comes
            if cmd in cfg.allowed_commands:
                self._service_caller.client(Trigger, f'{self._target(cfg.anomaly_node)}/{cmd}')
        self._service_caller.watch()
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        result = super().on_deactivate(state)
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        self._service_caller.unwatch()
        if self.bridge is not None:
            self.bridge.stop()
        return result

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self.release()
        return super().on_cleanup(state)

    def release(self) -> None:
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.stop()
            bridge.close()

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if isinstance(config, BridgeConfig) and self.bridge is not None:
            self.bridge.update(config)

    # -- inputs ----------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _log(self, level: int, text: str) -> None:
        logger = self.get_logger()
        if level >= logging.ERROR:
            logger.error(text, throttle_duration_sec=5.0)
        elif level >= logging.WARNING:
            logger.warning(text, throttle_duration_sec=5.0)
        else:
            logger.info(text)

    def _on_tracks(self, item: FrameDetections) -> None:
        self.bridge.on_results(item, self._labels.for_item(item), self._now_ns())

    def _on_anomaly(self, item: tuple) -> None:
        self.bridge.on_anomaly(*item)

    def _on_quality(self, item: tuple) -> None:
        self.bridge.on_quality(*item)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        prefix = self.get_namespace().rstrip('/') + '/'
        for status in msg.status:
            level = diagnostic_level(status.level)
            if status.name == self._camera_status:
                self.bridge.on_camera_status(level, status.message)
            if status.name.startswith(prefix) and '/' not in status.name[len(prefix):]:
                values = {kv.key: kv.value for kv in status.values}
                stage: dict[str, Any] = {'level': ('OK', 'WARN', 'ERROR', 'STALE')[min(level, 3)],
                                         'message': status.message}
                try:
                    stage['fps'] = round(float(values['fps']), 2)
                except (KeyError, ValueError):
                    pass
                self._stages[status.name[len(prefix):]] = stage

    def _tick(self) -> None:
        if self.bridge is not None:
            self.run_guarded('mqtt tick', self.bridge.tick, {'stages': dict(self._stages)})

    # -- commands that act on the ROS graph ------------------------------------------------

    def _run_graph_commands(self) -> None:
        bridge = self.bridge
        while bridge is not None and not bridge.graph_commands.empty():
            command = bridge.graph_commands.get_nowait()
            try:
                self._execute(command)
            except Exception as exc:  # answered and counted, never fatal
                self.processing_errors += 1
                self.get_logger().error(f'command {command.cmd} (id {command.id}) failed: '
                                        f'{type(exc).__name__}: {exc}')
                bridge.reply(command.id, command.cmd, False,
                             f'the device failed to run it: {type(exc).__name__}: {exc}')

    def _target(self, node: str) -> str:
        return node if node.startswith('/') else f'{self.get_namespace().rstrip("/")}/{node}'

    def _execute(self, command: Command) -> None:
        bridge = self.bridge

        def reply(ok: bool, error: str = '', result: Any = None) -> None:
            if bridge is not None:
                bridge.reply(command.id, command.cmd, ok, error, result)

        if command.cmd == 'set_parameter':
            self._set_parameter(command, reply)
            return
        name = f'{self._target(self.config(BridgeConfig).anomaly_node)}/{command.cmd}'

        def done(response: Any, error: str) -> None:
            if response is None:
                reply(False, error)
            else:
                reply(bool(response.success), '' if response.success else response.message,
                      {'message': response.message})

        self._service_caller.call(Trigger, name, Trigger.Request(), done, idempotent=False)

    def _set_parameter(self, command: Command, reply: Callable[..., None]) -> None:
        node, name, value = (command.args[k] for k in ('node', 'name', 'value'))
        target = self._target(node)

        def typed(response: Any, error: str) -> None:
            if response is None:
                reply(False, error)
                return
            try:
                msg_value = parameter_value(value, response.types[0])
            except EdgeVisionError as exc:
                reply(False, f'{target}:{name}: {exc}')
                return
            request = SetParameters.Request(parameters=[ParameterMsg(name=name,
                                                                     value=msg_value)])
            self._service_caller.call(SetParameters, f'{target}/set_parameters', request, applied)

        def applied(response: Any, error: str) -> None:
            if response is None:
                reply(False, error)
                return
            result = response.results[0]
            if result.successful:
                self.get_logger().info(f'remote command {command.id}: set {target}:{name} = '
                                       f'{value!r}')
                reply(True, result={'node': target, 'name': name, 'value': value})
            else:
                reply(False, f'{target} refused {name}={value!r}: {result.reason}')

        self._service_caller.call(GetParameterTypes, f'{target}/get_parameter_types',
                            GetParameterTypes.Request(names=[name]), typed)

    # -- diagnostics -----------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        values = super().stats()
        bridge = self.bridge
        if bridge is None:
            return values
        link, store = bridge.link, bridge.store
        values.update({
            'connects': link.stats.connects,
            'queue_depth': store.depth, 'queue_dropped_total': store.dropped,
            'sent': link.stats.sent, 'acked': link.stats.acked, 'rejected': link.stats.rejected,
            'stream_sent': link.stats.stream_sent, 'stream_skipped': link.stats.stream_skipped,
            'subscriptions_refused': link.stats.subscriptions_refused,
            'events_sent': sum(bridge.events_sent.values()),
            'snapshots_sent': bridge.snapshots_sent,
            'commands_accepted': bridge.gate.accepted, 'commands_refused': bridge.gate.refused,
            'fps': bridge.meter.fps(),
        })
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        bridge = self.bridge
        if bridge is None:
            return OK, self.lifecycle_state, dict(self.stats())
        link, store = bridge.link, bridge.store
        values: dict[str, object] = {
            'broker': str(link.endpoint), 'topics': bridge.topics.base + '/',
            'link': link.state, 'connected': link.connected, **self.stats(),
        }
        if link.last_error:
            values['last_error'] = link.last_error
        if self.lifecycle_state == 'active' and not link.connected and link.last_error:
            return ERROR, f'broker unreachable: {link.last_error}', values
        if store.dropped or link.stats.rejected:
            return WARN, 'messages were dropped or refused (see queue_dropped_total, ' \
                         'rejected)', values
        if link.stats.subscriptions_refused:
            return WARN, 'the broker refused the command subscription (its ACL): remote ' \
                         'commands cannot arrive', values
        return OK, self.lifecycle_state, values


def parameter_overrides(url: str, params_file: str = '') -> list:
    """``rclpy.parameter.Parameter`` overrides for a composed bridge: ``broker.url`` plus the
    values of a parameter YAML (the ``ros__parameters`` of ``mqtt_bridge_node`` in a ROS 2
    parameter file, or a plain mapping; nested mappings become dotted names).

    Raises:
        ConfigError: the file cannot be read or is not a mapping.
    """
    from pathlib import Path

    import yaml
    from rclpy.parameter import Parameter

    from edge_vision_core import ConfigError

    values: dict[str, Any] = {}
    if params_file:
        try:
            doc = yaml.safe_load(Path(params_file).expanduser().read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f'cannot read the MQTT parameter file {params_file!r}: {exc}'
                              ) from None
        if isinstance(doc, dict):
            for key, section in doc.items():
                if str(key).split('/')[-1] == 'mqtt_bridge_node' and isinstance(section, dict):
                    doc = section.get('ros__parameters', section)
                    break
        if not isinstance(doc, dict):
            raise ConfigError(f'{params_file}: expecting a mapping of mqtt_bridge_node '
                              f'parameters')

        def flatten(prefix: str, mapping: dict) -> None:
            for key, value in mapping.items():
                if isinstance(value, dict):
                    flatten(f'{prefix}{key}.', value)
                else:
                    values[f'{prefix}{key}'] = value

        flatten('', doc)
    values['broker.url'] = url
    return [Parameter(name, value=value) for name, value in values.items()]


def main(args: list[str] | None = None) -> int:
    return run_node(MqttBridgeNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
