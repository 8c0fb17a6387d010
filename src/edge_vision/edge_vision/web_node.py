"""web_node: a live view of the pipeline in a browser, served by the device itself.

An edge box has no screen and an IoT user has no rviz: this node serves a small page
(:mod:`edge_vision_core.web.server`, aiohttp) with the annotated stream, the current tracks,
per-stage fps and latency, image quality, the anomaly state and heatmap and the MQTT link state.

Subscribes (relative names; remap ``image_annotated`` to the privacy stage's output when privacy
is on, so only anonymized images leave the device):

- ``image_annotated`` (sensor_msgs/Image): the stream. Frames are encoded as JPEG at most
  ``max_fps`` times a second, only while a viewer is connected, once for every viewer;
- ``tracks`` (vision_msgs/Detection2DArray) and ``label_info``: the track table;
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): per-stage fps, summed p50 step times,
  states, the MQTT bridge's link state;
- ``quality`` (DiagnosticArray), ``anomaly`` (vision_msgs/Classification) and
  ``anomaly/heatmap`` (Image, mono8 or 32FC1, at most once a second): quality metrics, anomaly
  score and heatmap (JET colours; a mono8 heatmap keeps its scale, 128 = the threshold, a 32FC1
  one is scaled to its own maximum).

Publishes nothing but ``/diagnostics`` (viewers, frames sent, frames dropped for slow viewers,
stalled viewers, refused logins). The server is read-only, listens on ``host:port``
(127.0.0.1:8080 by default: this device only), asks for ``token``/``token_file`` when set and
speaks TLS with ``tls_cert``/``tls_key``; see the README's network ports section.

Lifecycle: configure validates the parameters (and reads the token file and TLS files),
activate binds the port (a port in use fails activation with the reason), deactivate closes
every connection. ``max_fps``, ``jpeg_quality`` and ``max_width`` can change at runtime.

Parameters: :class:`edge_vision_core.web.WebConfig`, ``autostart``, ``diagnostics_period``.
"""

from __future__ import annotations

import dataclasses
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification

from edge_vision_core import EdgeVisionError, Frame, FrameDetections, FrameMeta
from edge_vision_core.timing import RateMeter
from edge_vision_core.viz import heatmap_to_bgr
from edge_vision_core.web import LiveServer, LiveState, StageStatus, WebConfig, parse_address

from .conversions import classification_score, diagnostic_level, image_to_frame
from .node_base import OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import stream_subscriber_qos

__all__ = ['WebNode', 'main', 'web_parameters']

_HEATMAP_PERIOD_S = 1.0


def _statuses(msg: DiagnosticArray) -> list[StageStatus]:
    return [StageStatus(s.name, diagnostic_level(s.level), s.message,
                        {kv.key: kv.value for kv in s.values}) for s in msg.status]


class WebNode(EdgeVisionNode):
    """Serves the live view (see the module docstring)."""

    PARAMETERS = (('', WebConfig),)

    def __init__(self, **kwargs: object) -> None:
        super().__init__('web_node', **kwargs)
        self.state = LiveState()
        self.server: LiveServer | None = None
        self._labels = None
        self._last_heatmap = 0.0
        self._rate = RateMeter()

    # -- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            self.server = LiveServer(self.config(WebConfig), self.state.snapshot)
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        qos = stream_subscriber_qos()
        self.add_input('image_annotated', Image, lambda m: image_to_frame(m, 'bgr8'),
                       self._on_image, qos)
        self._labels = self.add_results_input('tracks', self._on_tracks, replace_labels=True)
        status_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                                reliability=ReliabilityPolicy.RELIABLE)
        self.add_input('/diagnostics', DiagnosticArray, _statuses, self.state.update_stages,
                       status_qos, linkable=False, watch=False)
        self.add_input('quality', DiagnosticArray, lambda m: m, self._on_quality, status_qos,
                       linkable=False, watch=False)
        self.add_input('anomaly', Classification, classification_score, self._on_anomaly,
                       status_qos, linkable=False, watch=False)
        self.add_input('anomaly/heatmap', Image, image_to_frame, self._on_heatmap, qos,
                       watch=False)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        try:
            url = self.server.start()
        except EdgeVisionError as exc:
            return self.fail(f'activate: {exc}')
        cfg = self.config(WebConfig)
        auth = 'token required' if cfg.token or cfg.token_file else 'no token'
        self.get_logger().info(f'live view at {url} ({auth}; read-only)')
        if cfg.host not in ('127.0.0.1', 'localhost', '::1') and not (cfg.token or
                                                                        cfg.token_file):
            self.get_logger().warning(f'the live view listens on {cfg.host} without a token: '
                                      f'anyone on that network can watch; set token_file')
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.release()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self.release()
        self.server = None
        return super().on_cleanup(state)

    def release(self) -> None:
        super().release()
        if self.server is not None:
            self.server.stop()

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if self.server is not None and isinstance(config, WebConfig):
            self.server.config = dataclasses.replace(self.server.config, **{
                name: getattr(config, name) for name in changed})

    # -- inputs ----------------------------------------------------------------------------

    def _on_image(self, frame: Frame) -> None:
        self._rate.tick()
        if self.server is not None:
            self.server.put_frame(frame.image, frame.meta.stamp_ns)

    def _on_tracks(self, item: FrameDetections) -> None:
        self.state.set_tracks(item.meta.stamp_ns, item.detections,
                              self._labels.for_item(item))

    def _on_quality(self, msg: DiagnosticArray) -> None:
        if msg.status:
            status = msg.status[0]
            self.state.set_quality(diagnostic_level(status.level),
                                   {kv.key: kv.value for kv in status.values})

    def _on_anomaly(self, item: tuple[FrameMeta, float]) -> None:
        meta, score = item
        stamp = meta.stamp_ns
        # confidence score / (score + threshold): above 0.5 is above the threshold
        self.state.set_anomaly(float(score), score > 0.5, stamp,
                               self.server is not None and self.server.has_heatmap)

    def _on_heatmap(self, frame: Frame) -> None:
        now = time.monotonic()
        if self.server is None or now - self._last_heatmap < _HEATMAP_PERIOD_S:
            return
        self._last_heatmap = now
        self.server.put_heatmap(heatmap_to_bgr(frame.image))

    # -- diagnostics -----------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        values = super().stats()
        server = self.server
        if server is not None:
            values['fps'] = self._rate.rate()
            values.update(server.stats())
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        server = self.server
        values: dict[str, object] = dict(self.stats())
        if server is None:
            return OK, self.lifecycle_state, values
        values['url'] = server.url
        if server.clients_stalled or server.auth_failures:
            return WARN, 'stalled viewers were disconnected or logins refused', values
        return OK, self.lifecycle_state, values


def web_parameters(address: str, token: str = '') -> list:
    """Parameter overrides of a composed web_node for ``--web [HOST]:PORT`` (and a token)."""
    from rclpy.parameter import Parameter

    host, port = parse_address(address)
    params = [Parameter('host', value=host), Parameter('port', value=port)]
    if token:
        params.append(Parameter('token', value=token))
    return params


def main(args: list[str] | None = None) -> int:
    return run_node(WebNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
