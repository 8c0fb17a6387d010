"""The recorder's rosbag2 MCAP side: which topics go into the bag, and how.

:class:`BagRecording` is owned by ``recorder_node`` (parameters ``bag.*``) and writes one bag
with :class:`edge_vision_core.bag.BagWriter`:

- **images** (``bag.images``, default ``image_raw``): each frame is compressed once here
  (``bag.image_format``: JPEG at ``bag.jpeg_quality``, or lossless PNG for replays that must
  reproduce the live results bit for bit) and recorded as ``<topic>/compressed``
  (``sensor_msgs/CompressedImage``, compressed_image_transport's format string, the image's
  header). In one process the frames come over the in-memory link, otherwise over DDS. When a
  privacy stage runs, point ``bag.images`` at its output: only the images named here are
  written.
- **everything else** (``bag.topics``, types from :data:`TOPIC_TYPES`: camera_info,
  detections, tracks, label_info, quality, anomaly results, OCR text when ``edge_vision_msgs``
  is installed, ``/diagnostics``; a name not in it fails configure with the list):
  ``camera_info`` and the results topics take the in-memory link when their producer is in the
  same process (the message is built with the producer's own conversion, so every one is
  recorded, the first frames included); the others, and all of them between processes, are
  recorded the way ``ros2 bag record`` does, as the serialized CDR bytes the publisher sent (a
  raw subscription: nothing is deserialized or re-serialized), with the publisher's source
  timestamp as ``publish_time``. The raw subscriptions are made at configure, so what the graph
  publishes while it starts up is recorded too.

Every message's ``log_time`` is the node clock when it arrived; schemas carry the complete
``.msg`` definitions the installed packages hold (:mod:`edge_vision_core.bag.definitions`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from edge_vision_core import ConfigError, Frame
from edge_vision_core.bag import BagConfig, BagTopic, BagWriter, QosProfile
from edge_vision_core.bag.definitions import full_definition, type_hash
from edge_vision_core.config import check_config, param

from .conversions import (
    frame_detections_to_msg,
    frame_to_camera_info,
    image_to_frame,
    meta_to_header,
    numpy_to_compressed,
)
from .dds import ros_distro
from .qos import results_qos, stream_subscriber_qos

if TYPE_CHECKING:
    from .node_base import EdgeVisionNode

__all__ = ['BagRecording', 'BagTopicsConfig', 'TOPIC_TYPES']

#: Topics the recorder can record as received: relative name -> (type, offered QoS kept in the
#: bag for ``ros2 bag play``). The types are imported when a topic is recorded.
TOPIC_TYPES: dict[str, tuple[str, QosProfile]] = {
    'camera_info': ('sensor_msgs/msg/CameraInfo', QosProfile(depth=5)),
    'detections': ('vision_msgs/msg/Detection2DArray', QosProfile()),
    'tracks': ('vision_msgs/msg/Detection2DArray', QosProfile()),
    'label_info': ('vision_msgs/msg/LabelInfo', QosProfile(durability='transient_local',
                                                           depth=1)),
    'quality': ('diagnostic_msgs/msg/DiagnosticArray', QosProfile()),
    'anomaly': ('vision_msgs/msg/Classification', QosProfile()),
    'anomaly/regions': ('vision_msgs/msg/Detection2DArray', QosProfile()),
    'text': ('edge_vision_msgs/msg/TextArray', QosProfile()),
    '/diagnostics': ('diagnostic_msgs/msg/DiagnosticArray', QosProfile()),
}
#: In one process these topics come over the in-memory link as the producer's core object,
#: turned into the message with the producer's own conversion.
LINKED: dict[str, Callable[[Any], Any]] = {
    'camera_info': frame_to_camera_info,
    'detections': frame_detections_to_msg,
    'tracks': frame_detections_to_msg,
    'anomaly/regions': frame_detections_to_msg,
}
_OPTIONAL_PACKAGES = ('edge_vision_msgs',)  # recorded when installed, skipped otherwise
_DEFAULT_TOPICS = ('camera_info', 'detections', 'tracks', 'label_info', 'quality', 'anomaly',
                   'anomaly/regions', 'text', '/diagnostics')


@dataclass(frozen=True)
class BagTopicsConfig:
    """What recorder_node puts into its bag (parameters ``bag.*`` beside :class:`BagConfig`)."""

    images: tuple[str, ...] = field(default=('image_raw',), metadata=param(
        'Image topics recorded compressed as <topic>/compressed (point this at the privacy '
        'output when privacy is on). [\'\'] records no images: ROS drops an empty list '
        '[] given on the command line or in YAML.', read_only=True))
    image_format: str = field(default='jpeg', metadata=param(
        'Compression of recorded images: jpeg (small) or png (lossless: a replay reproduces '
        'the live results exactly).', choices=('jpeg', 'png'), read_only=True))
    jpeg_quality: int = field(default=90, metadata=param(
        'JPEG quality of recorded images.', min=1, max=100, read_only=True))
    topics: tuple[str, ...] = field(default=_DEFAULT_TOPICS, metadata=param(
        'Other topics recorded as published (see TOPIC_TYPES in edge_vision.bag_recording: '
        'camera_info, detections, tracks, label_info, quality, anomaly, anomaly/regions, text, '
        '/diagnostics). [\'\'] records none of them.', read_only=True))

    def __post_init__(self) -> None:
        # empty names are left out: [''] is how ROS parameters say "none" (an empty list
        # override is dropped by ROS, the default would be recorded instead)
        for name in ('images', 'topics'):
            object.__setattr__(self, name, tuple(t for t in getattr(self, name) if t.strip()))
        check_config(self)
        unknown = [t for t in self.topics if t not in TOPIC_TYPES]
        if unknown:
            raise ConfigError(f'Invalid bag topic(s) {unknown}, expecting some of '
                              f'{list(TOPIC_TYPES)}')


def _message_class(type_name: str) -> type | None:
    package, _, name = type_name.split('/')
    try:
        module = importlib.import_module(f'{package}.msg')
    except ImportError:
        if package in _OPTIONAL_PACKAGES:
            return None
        raise ConfigError(f'message package {package} is not installed: cannot record '
                          f'{type_name}') from None
    return getattr(module, name)


def _subscription_qos(profile: QosProfile) -> QoSProfile:
    transient = profile.durability == 'transient_local'
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1 if transient else 100,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else
                      DurabilityPolicy.VOLATILE)


def _has_message_info() -> bool:
    """rclpy passes MessageInfo (source timestamp) to two-argument callbacks since Iron."""
    try:
        from rclpy.subscription import MessageInfo  # noqa: F401
    except ImportError:  # Humble: message only
        return False
    return True


class BagRecording:
    """One bag written by a node (see the module docstring).

    Args:
        node: the recording node (``recorder_node``).
        config: where and how the bag is written.
        topics: what goes into it.
    """

    def __init__(self, node: EdgeVisionNode, config: BagConfig, topics: BagTopicsConfig
                 ) -> None:
        self.node = node
        self.config = config
        self.topics_config = topics
        self.writer = BagWriter(config, library='edge_vision (rosbag2 MCAP profile)',
                                ros_distro=ros_distro())
        self.skipped: list[str] = []
        self._raw: list[tuple[str, type, str, QoSProfile]] = []
        self._subscriptions: list[Any] = []
        quality = topics.jpeg_quality
        fmt = topics.image_format
        for name in topics.images:
            resolved = node.resolve_topic_name(name)
            bag_topic = f'{resolved}/compressed'
            self._declare(bag_topic, 'sensor_msgs/msg/CompressedImage', QosProfile(depth=5))
            node.add_input(name, Image, lambda msg: image_to_frame(msg, 'passthrough'),
                           self._image_handler(bag_topic, fmt, quality),
                           stream_subscriber_qos(), watch=False)
        for name in topics.topics:
            type_name, qos = TOPIC_TYPES[name]
            cls = _message_class(type_name)
            if cls is None:
                package = type_name.split('/')[0]
                self.skipped.append(f'{name} ({package} not installed)')
                node.get_logger().warning(f'not recording {name}: {package} is not installed')
                continue
            resolved = node.resolve_topic_name(name)
            if self.writer.has_topic(resolved):
                continue  # two names remapped to one topic (no tracker: tracks -> detections)
            self._declare(resolved, type_name, qos)
            if name in LINKED:
                node.add_input(name, cls, lambda msg: msg,
                               self._linked_handler(resolved, cls, LINKED[name]),
                               results_qos(100), watch=False)
            else:
                self._raw.append((resolved, cls, type_name, _subscription_qos(qos)))
        self._flush_timer = node.create_timer(
            max(0.2, config.flush_period_s or 1.0), node.guard('bag flush', self.flush)) \
            if config.flush_period_s > 0 else None
        self.activate()  # raw subscriptions from configure on: start-up traffic is recorded

    def _declare(self, resolved: str, type_name: str, qos: QosProfile) -> None:
        self.writer.add_topic(BagTopic(resolved, type_name, full_definition(type_name),
                                       type_hash(type_name), qos))

    # -- inputs ----------------------------------------------------------------------------

    def _image_handler(self, bag_topic: str, fmt: str, quality: int
                       ) -> Callable[[Frame], None]:
        def record(frame: Frame) -> None:
            now = self.node.get_clock().now().nanoseconds
            msg = numpy_to_compressed(frame.image, frame.encoding, fmt, quality,
                                      meta_to_header(frame.meta))
            self.writer.write(bag_topic, serialize_message(msg), now, now)
        return record

    def _linked_handler(self, topic: str, cls: type, to_msg: Callable[[Any], Any]
                        ) -> Callable[[Any], None]:
        def record(item: Any) -> None:
            now = self.node.get_clock().now().nanoseconds
            msg = item if isinstance(item, cls) else to_msg(item)
            self.writer.write(topic, serialize_message(msg), now, now)
        return record

    def activate(self) -> None:
        """Subscribe to the raw topics (the others come through the node's own inputs)."""
        if self._subscriptions:
            return
        with_info = _has_message_info()
        for resolved, cls, _, qos in self._raw:
            if with_info:
                def callback(data: bytes, info: dict, topic: str = resolved) -> None:
                    self._on_raw(topic, data, info.get('source_timestamp'))
            else:  # pragma: no cover - Humble
                def callback(data: bytes, topic: str = resolved) -> None:
                    self._on_raw(topic, data, None)
            self._subscriptions.append(
                self.node.create_subscription(cls, resolved, callback, qos, raw=True))

    def _on_raw(self, topic: str, data: bytes, source_ns: int | None) -> None:
        now = self.node.get_clock().now().nanoseconds
        self.node.run_guarded(topic, lambda _: self.writer.write(
            topic, bytes(data), now, source_ns or now), None)

    def deactivate(self) -> None:
        for sub in self._subscriptions:
            self.node.destroy_subscription(sub)
        self._subscriptions.clear()
        self.flush()

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        """Finish the bag (summary, footer, metadata.yaml). Idempotent."""
        for sub in self._subscriptions:
            self.node.destroy_subscription(sub)
        self._subscriptions.clear()
        if self._flush_timer is not None:
            self.node.destroy_timer(self._flush_timer)
            self._flush_timer = None
        self.writer.close()

    # -- state -----------------------------------------------------------------------------

    def count(self, topic: str) -> int:
        """Messages recorded on ``topic`` (a name relative to the node, or absolute)."""
        return self.writer.topic_counts().get(self.node.resolve_topic_name(topic), 0)

    def waiting(self, frames: int, text_frames: int = 0) -> bool:
        """True while the tracks of ``frames`` frames, the text of ``text_frames`` frames (when
        ``text`` is recorded), or a first ``/diagnostics`` status (when that is recorded) have
        not reached the bag yet (they come over DDS; a short run can end before any node's
        first diagnostics period, and OCR's last text after the last tracks)."""
        if self.count('tracks') < frames:
            return True
        if text_frames and self.writer.has_topic(self.node.resolve_topic_name('text')) and \
                self.count('text') < text_frames:
            return True
        return '/diagnostics' in self.topics_config.topics and self.count('/diagnostics') == 0

    def stats(self) -> dict[str, float]:
        """The writer's counters (numbers, for the node's ``stats()``)."""
        return self.writer.stats()

    def info(self) -> dict[str, str]:
        """Text for /diagnostics: the file being written, skipped topics, the last error."""
        values = {'bag_file': str(self.writer.current_file or self.config.path)}
        if self.skipped:
            values['bag_topics_skipped'] = ', '.join(self.skipped)
        if self.writer.last_error:
            values['bag_last_error'] = self.writer.last_error
        return values

    def problem(self) -> str:
        """'' while every message is written, else what went wrong (a WARN in /diagnostics)."""
        stats = self.writer.stats()
        lost = stats['bag_write_errors'] + stats['bag_dropped']
        if not lost:
            return ''
        return (f'bag: {lost} messages not recorded ({stats["bag_write_errors"]} write errors, '
                f'{stats["bag_dropped"]} dropped); last error: {self.writer.last_error}')
