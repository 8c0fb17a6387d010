"""foxglove_node: the suite's image and results as a Foxglove WebSocket server (no ROS needed).

Inside a ROS distro, ``foxglove_bridge`` serves every topic to Foxglove and the layout in
``config/foxglove/edge_vision.json`` shows them. Without a distro (the pip venv), this node
serves the same view with the official ``foxglove-sdk``
(:class:`edge_vision_core.web.foxglove_live.FoxgloveLive`): ``image`` as a JPEG
``foxglove.CompressedImage`` channel ``<image>/compressed`` (at most ``max_fps`` frames a second)
and ``tracks`` as ``foxglove.ImageAnnotations`` on ``<tracks>/annotations``. Remap ``image`` to
the privacy stage's output when privacy is on.

Parameters: :class:`FoxgloveConfig`, ``autostart``, ``diagnostics_period``. The server binds on
activate (a port in use fails activation with the reason) and closes on deactivate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sensor_msgs.msg import Image

from edge_vision_core import EdgeVisionError, Frame, FrameDetections
from edge_vision_core.config import check_config, param
from edge_vision_core.web.foxglove_live import FoxgloveLive
from edge_vision_core.web.server import parse_address

from .conversions import image_to_frame
from .node_base import OK, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import stream_subscriber_qos

__all__ = ['FoxgloveConfig', 'FoxgloveNode', 'foxglove_parameters', 'main']


@dataclass(frozen=True)
class FoxgloveConfig:
    """Where the Foxglove server listens and how much it sends."""

    host: str = field(default='127.0.0.1', metadata=param(
        'Address to listen on (127.0.0.1: this device only).', read_only=True))
    port: int = field(default=8765, metadata=param(
        'WebSocket port (Foxglove: "Open connection" ws://HOST:PORT).', min=0, max=65535,
        read_only=True))
    max_fps: float = field(default=10.0, metadata=param(
        'Images per second sent to Foxglove.', min=0.1, max=120.0, unit='Hz'))
    jpeg_quality: int = field(default=70, metadata=param(
        'JPEG quality of the image channel.', min=1, max=100, read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


class FoxgloveNode(EdgeVisionNode):
    """Serves image and tracks to Foxglove (see the module docstring)."""

    PARAMETERS = (('', FoxgloveConfig),)

    def __init__(self, **kwargs: object) -> None:
        super().__init__('foxglove_node', **kwargs)
        self.live: FoxgloveLive | None = None
        self._labels = None
        self._last_image = 0.0
        self._results_topic = ''

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        self.add_input('image', Image, lambda m: image_to_frame(m, 'bgr8'), self._on_image,
                       stream_subscriber_qos())
        self._labels = self.add_results_input('tracks', self._on_tracks)
        self._results_topic = self.resolve_topic_name('tracks')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        cfg = self.config(FoxgloveConfig)
        try:
            self.live = FoxgloveLive(cfg.host, cfg.port, self.resolve_topic_name('image'),
                                     (self._results_topic,), cfg.jpeg_quality)
        except EdgeVisionError as exc:
            return self.fail(f'activate: {exc}')
        self.get_logger().info(f'Foxglove server on ws://{cfg.host}:{self.live.port} '
                               f'(channels {", ".join(self.live.topics)})')
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.release()
        return super().on_deactivate(state)

    def release(self) -> None:
        super().release()
        live, self.live = self.live, None
        if live is not None:
            live.close()

    def _on_image(self, frame: Frame) -> None:
        now = time.monotonic()
        live = self.live
        if live is None or now - self._last_image < 1.0 / self.config(FoxgloveConfig).max_fps:
            return
        self._last_image = now
        live.log_image(frame.image, frame.meta.stamp_ns, frame.meta.frame_id)

    def _on_tracks(self, item: FrameDetections) -> None:
        if self.live is not None:
            self.live.log_results(self._results_topic, item.detections, item.meta.stamp_ns,
                                  self._labels.for_item(item))

    def stats(self) -> dict[str, float]:
        values = super().stats()
        live = self.live
        if live is not None:
            values.update(images_sent=live.images, annotations_sent=live.annotations)
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = dict(self.stats())
        live = self.live
        if live is not None:
            values['port'] = live.port
        return OK, self.lifecycle_state, values


def foxglove_parameters(address: str) -> list:
    """Parameter overrides of a composed foxglove_node for ``--foxglove [HOST]:PORT``."""
    from rclpy.parameter import Parameter

    host, port = parse_address(address)
    return [Parameter('host', value=host), Parameter('port', value=port)]


def main(args: list[str] | None = None) -> int:
    return run_node(FoxgloveNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
