"""A Foxglove WebSocket server (the official ``foxglove-sdk``) for the no-ROS mode.

Where no ``foxglove_bridge`` runs (no ROS distro), :class:`FoxgloveLive` serves the suite's
channels to Foxglove directly, in Foxglove's own schemas: the camera image as
``foxglove.CompressedImage`` (JPEG) on ``<image topic>/compressed`` and the detections and
tracks as ``foxglove.ImageAnnotations`` on ``<results topic>/annotations`` (one rectangle and one
label per box, coloured by track id or class, stamped like the image so Foxglove's Image panel
overlays them). The layout in ``config/foxglove/edge_vision.json`` opens these channels.

The server listens on 127.0.0.1 unless told otherwise; the SDK drops the oldest queued
messages of a slow client (``message_backlog_size``), so a viewer never slows the pipeline.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError
from ..types import Detections, class_name

__all__ = ['FoxgloveLive', 'annotations']


def _sdk():
    try:
        import foxglove
        import foxglove.channels as channels
        import foxglove.messages as messages
    except ImportError:
        raise ConfigError('the Foxglove server needs foxglove-sdk: pip install '
                          'foxglove-sdk') from None
    return foxglove, channels, messages


def _color(key: int, messages) -> object:
    r, g, b = colorsys.hsv_to_rgb((key * 0.61803398875) % 1.0, 0.85, 0.95)
    return messages.Color(r=r, g=g, b=b, a=1.0)


def annotations(dets: Detections, stamp_ns: int, labels: tuple[str, ...] | None,
                messages=None) -> object:
    """``foxglove.ImageAnnotations`` for ``dets``: a rectangle (line loop) and a text label per
    box, in image pixels, stamped ``stamp_ns`` (the image's stamp)."""
    if messages is None:
        messages = _sdk()[2]
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    stamp = messages.Timestamp(sec, nsec)
    points, texts = [], []
    for i in range(len(dets)):
        x1, y1, x2, y2 = (float(v) for v in dets.boxes[i])
        if not all(np.isfinite((x1, y1, x2, y2))):
            continue
        cid = int(dets.class_ids[i])
        tid = int(dets.track_ids[i]) if dets.track_ids is not None else None
        color = _color(tid if tid is not None else cid, messages)
        corners = [messages.Point2(x=x, y=y) for x, y in ((x1, y1), (x2, y1), (x2, y2),
                                                           (x1, y2))]
        points.append(messages.PointsAnnotation(
            timestamp=stamp, type=messages.PointsAnnotationType.LineLoop, points=corners,
            outline_color=color, thickness=2.0))
        label = f'{"#" + str(tid) + " " if tid is not None else ""}' \
                f'{class_name(cid, labels)} {float(dets.scores[i]):.2f}'
        texts.append(messages.TextAnnotation(
            timestamp=stamp, position=messages.Point2(x=x1, y=max(0.0, y1 - 2.0)), text=label,
            font_size=14.0, text_color=messages.Color(r=1.0, g=1.0, b=1.0, a=1.0),
            background_color=color))
    return messages.ImageAnnotations(points=points, texts=texts)


@dataclass
class _Channels:
    image: object
    results: dict[str, object]


class FoxgloveLive:
    """The Foxglove server and its channels (see the module docstring).

    Args:
        host, port: where to listen (port 0: any free port).
        image_topic: the image channel's topic, without ``/compressed``.
        results_topics: the results topics that get an ``/annotations`` channel.
        jpeg_quality: JPEG quality of the image channel.
    """

    def __init__(self, host: str = '127.0.0.1', port: int = 8765,
                 image_topic: str = '/image', results_topics: tuple[str, ...] = ('/tracks',),
                 jpeg_quality: int = 70, name: str = 'edge_vision') -> None:
        foxglove, channels, self._messages = _sdk()
        self.context = foxglove.Context()
        self.jpeg_quality = jpeg_quality
        try:
            self.server = foxglove.start_server(name=name, host=host, port=port,
                                                context=self.context,
                                                message_backlog_size=64)
        except Exception as exc:  # the SDK raises its own error types
            raise ConfigError(f'cannot start the Foxglove server on {host}:{port}: {exc} '
                              f'(port in use?)') from None
        self.port = int(self.server.port)
        self._channels = _Channels(
            channels.CompressedImageChannel(f'{image_topic}/compressed', context=self.context),
            {t: channels.ImageAnnotationsChannel(f'{t}/annotations', context=self.context)
             for t in results_topics})
        self.images = 0
        self.annotations = 0

    @property
    def topics(self) -> list[str]:
        return [self._channels.image.topic()] + \
            [c.topic() for c in self._channels.results.values()]

    def log_image(self, image: np.ndarray, stamp_ns: int, frame_id: str) -> None:
        """Publish a bgr8 frame as ``foxglove.CompressedImage`` (JPEG)."""
        ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ConfigError(f'OpenCV could not encode a {image.shape} frame as JPEG')
        sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
        msg = self._messages.CompressedImage(timestamp=self._messages.Timestamp(sec, nsec),
                                             frame_id=frame_id, data=buf.tobytes(),
                                             format='jpeg')
        self._channels.image.log(msg, log_time=int(stamp_ns))
        self.images += 1

    def log_results(self, topic: str, dets: Detections, stamp_ns: int,
                    labels: tuple[str, ...] | None) -> None:
        """Publish boxes as ``foxglove.ImageAnnotations`` on ``<topic>/annotations``."""
        channel = self._channels.results.get(topic)
        if channel is None:
            raise ConfigError(f'no annotations channel for {topic}; the channels are '
                              f'{self.topics}')
        channel.log(annotations(dets, stamp_ns, labels, self._messages),
                    log_time=int(stamp_ns))
        self.annotations += 1

    def close(self) -> None:
        self.server.stop()
