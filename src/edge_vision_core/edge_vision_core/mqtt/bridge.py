"""The device side of the MQTT bridge, without ROS: results in, topics out, commands back.

:class:`Bridge` holds everything ``mqtt_bridge_node`` does except the ROS plumbing: the topic
names, the event watchers, the outbox, the broker link, snapshots and the command gate. The
node converts messages to core objects and calls ``on_results`` / ``on_anomaly`` /
``on_quality`` / ``on_camera_status`` / ``on_image``, calls ``tick`` periodically and executes
the commands that need the ROS graph (``set_parameter``, ``learn_normal``, ``stop_learning``),
answering with :meth:`Bridge.reply`. The benchmark drives the same class with simulated devices.

Every method is thread-safe: results arrive in a pipeline thread, ticks in the executor,
commands in the link's network thread.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import check_config, param
from ..errors import ConfigError, EdgeVisionError
from ..types import Frame, FrameDetections, FrameMeta, class_name
from .client import BrokerConfig, MqttLink, default_client_id
from .commands import (
    COMMANDS,
    Command,
    CommandError,
    CommandGate,
    CommandPolicy,
    load_key,
    parse_parameter_list,
)
from .events import EVENT_TYPES, CameraWatch, Event, EventConfig, LevelWatch, TrackPresence
from .health import StreamMeter, cpu_temperature_c, jpeg_snapshot
from .schema import (
    Topics,
    default_device_id,
    detections_body,
    stamp_body,
    text_body,
    valid_level,
)
from .store import OutboundStore

if TYPE_CHECKING:
    from ..inference.ocr import FrameText

__all__ = ['DEFAULT_ALLOWED_PARAMETERS', 'Bridge', 'BridgeConfig', 'default_store_path']

_LOG = logging.getLogger(__name__)

#: Pipeline parameters a remote command may change by default: run-time thresholds only.
DEFAULT_ALLOWED_PARAMETERS = (
    'inference_node:score_threshold', 'inference_node:nms_threshold',
    'tracker_node:high_threshold', 'tracker_node:new_track_threshold',
    'anomaly_node:threshold', 'mqtt_bridge_node:tracks_max_hz')


@dataclass(frozen=True)
class BridgeConfig:
    """mqtt_bridge_node settings besides the broker's and the events' (see the node's
    docstring for the topics and the schema)."""

    device_id: str = field(default='', metadata=param(
        'Device id in the topics (empty: the host name).', read_only=True))
    camera_id: str = field(default='', metadata=param(
        'Camera id in the topics (empty: the node namespace\'s last level, e.g. camera0).',
        read_only=True))
    topic_root: str = field(default='edge_vision', metadata=param(
        'First topic level(s); topics are <topic_root>/v1/<device>/<camera>/<channel>.',
        read_only=True))
    tracks_max_hz: float = field(default=2.0, metadata=param(
        'Most tracks messages per second (newest wins); 0 sends every frame.', min=0.0,
        max=1000.0, unit='Hz'))
    send_text: bool = field(default=False, metadata=param(
        'Subscribe to text (edge_vision_msgs/TextArray from ocr_node) and send the lines read '
        'on .../text.', read_only=True))
    text_max_hz: float = field(default=2.0, metadata=param(
        'Most text messages per second (newest wins; frames without text are not sent); 0 '
        'sends every frame with text.', min=0.0, max=1000.0, unit='Hz'))
    health_period_s: float = field(default=5.0, metadata=param(
        'Seconds between health messages (0: none).', min=0.0, max=3600.0, unit='s',
        read_only=True))
    store_path: str = field(default='', metadata=param(
        'SQLite file of the store-and-forward queue (empty: '
        '${ROS_HOME}/edge_vision/mqtt_<device>_<camera>.sqlite).', read_only=True))
    store_max_messages: int = field(default=10000, metadata=param(
        'Most queued durable messages; when full the oldest are dropped (counted, reported).',
        min=1, max=10_000_000, read_only=True))
    store_max_mb: float = field(default=50.0, metadata=param(
        'Most queued payload megabytes.', min=0.01, max=100000.0, unit='MB', read_only=True))
    inflight_window: int = field(default=20, metadata=param(
        'Most durable messages awaiting the broker\'s acknowledgement at once.', min=1,
        max=1000, read_only=True))
    flush_timeout_s: float = field(default=5.0, metadata=param(
        'On deactivate/shutdown, wait this long for queued messages to reach the broker '
        '(what is left stays on disk for the next start).', min=0.0, max=600.0, unit='s',
        read_only=True))
    snapshot_topic: str = field(default='', metadata=param(
        'Image topic snapshots are taken from (empty: no snapshots). With the privacy filter '
        'on, use its output so only anonymised images leave the device.', read_only=True))
    snapshot_events: tuple[str, ...] = field(default=('track_entered', 'anomaly_raised'),
                                             metadata=param(
        'Events that send a JPEG snapshot on .../snapshot.', choices=EVENT_TYPES,
        read_only=True))
    snapshot_max_bytes: int = field(default=100_000, metadata=param(
        'Largest snapshot JPEG (quality, then size, are lowered to fit).', min=1000,
        max=50_000_000, unit='B'))
    snapshot_max_width: int = field(default=640, metadata=param(
        'Snapshots are shrunk to this width (0: full size).', min=0, max=16384, unit='px'))
    snapshot_quality: int = field(default=80, metadata=param(
        'JPEG quality of snapshots (lowered when the size cap needs it).', min=30, max=100))
    snapshot_max_age_s: float = field(default=1.0, metadata=param(
        'Use an image only if its stamp is this close to the event\'s (or, for a snapshot '
        'command, to now); else send none.', min=0.0, max=3600.0, unit='s'))
    snapshot_min_interval_s: float = field(default=1.0, metadata=param(
        'At most one event snapshot per this many seconds (skips are counted).', min=0.0,
        max=3600.0, unit='s'))
    command_key_file: str = field(default='', metadata=param(
        'File with the HMAC key that signs commands (empty with require_signed_commands: '
        'commands are refused).', read_only=True))
    require_signed_commands: bool = field(default=True, metadata=param(
        'Refuse commands without a valid HMAC signature (false: the broker ACL alone decides '
        'who may command this device).', read_only=True))
    command_max_age_s: float = field(default=60.0, metadata=param(
        'Refuse commands whose timestamp is further than this from the device clock.',
        min=1.0, max=86400.0, unit='s', read_only=True))
    allowed_commands: tuple[str, ...] = field(default=tuple(COMMANDS), metadata=param(
        'Commands this device accepts.', choices=tuple(COMMANDS), read_only=True))
    allowed_parameters: tuple[str, ...] = field(default=DEFAULT_ALLOWED_PARAMETERS,
                                                metadata=param(
        '"<node>:<parameter>" pairs set_parameter may change (nodes in this namespace, or '
        'absolute names).', read_only=True))
    anomaly_node: str = field(default='anomaly_node', metadata=param(
        'Node whose ~/learn_normal and ~/stop_learning services the learning commands call.',
        read_only=True))
    camera_node: str = field(default='camera_node', metadata=param(
        'Node whose /diagnostics errors mean camera_lost.', read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        if self.device_id:
            valid_level(self.device_id, 'device_id')
        if self.camera_id:
            valid_level(self.camera_id, 'camera_id')
        for level in self.topic_root.split('/'):
            valid_level(level, 'topic_root level')
        parse_parameter_list(self.allowed_parameters)


def default_store_path(ros_home: str, topics: Topics) -> Path:
    return Path(ros_home) / 'edge_vision' / f'mqtt_{topics.device}_{topics.camera}.sqlite'


class Bridge:
    """The device side (see the module docstring).

    Args:
        cfg, broker, events: the settings.
        camera: the camera id when ``cfg.camera_id`` is empty.
        store_path: the outbox file when ``cfg.store_path`` is empty.
        password: the broker password (read from ``password_file`` by the caller).
        clock_ns: the time source for stamps of time-based events (the node clock).
        on_graph_command: called (from the network thread) when a command that needs the ROS
            graph is waiting in :attr:`graph_commands`.
        log: ``log(level, text)``.

    Raises:
        ConfigError: bad ids, an unreadable key, a store that cannot be opened, insecure
            broker settings.
    """

    def __init__(self, cfg: BridgeConfig, broker: BrokerConfig, events: EventConfig, *,
                 camera: str = 'camera', store_path: str | Path = '',
                 password: str | None = None, clock_ns: Callable[[], int] = time.time_ns,
                 on_graph_command: Callable[[], None] | None = None,
                 log: Callable[[int, str], None] | None = None) -> None:
        self.cfg, self.events_cfg = cfg, events
        self._log = log or (lambda level, text: _LOG.log(level, text))
        self._clock = clock_ns
        self.topics = Topics(cfg.topic_root, cfg.device_id or default_device_id(),
                             cfg.camera_id or camera)
        key = load_key(cfg.command_key_file) if cfg.command_key_file else None
        self.gate = CommandGate(CommandPolicy(
            frozenset(cfg.allowed_commands), parse_parameter_list(cfg.allowed_parameters), key,
            cfg.require_signed_commands, cfg.command_max_age_s), self.topics.device,
            self.topics.camera)
        if key is None and cfg.require_signed_commands:
            self._log(logging.INFO, 'no command_key_file: remote commands are refused')
        path = cfg.store_path or store_path
        if not path:
            raise ConfigError('Bridge needs a store path (store_path)')
        self.store = OutboundStore(path, cfg.store_max_messages,
                                   int(cfg.store_max_mb * 1024 * 1024))
        for note in self.store.notes:
            self._log(logging.WARNING, note)
        try:
            self.link = MqttLink(broker, broker.client_id or default_client_id(self.topics),
                                 topics=self.topics, store=self.store,
                                 on_message=self._on_message, on_connected=self._on_connected,
                                 window=cfg.inflight_window, password=password, log=self._log)
        except BaseException:
            self.store.close()
            raise
        self._lock = threading.RLock()
        self.presence = TrackPresence(events.leave_after_s)
        self.anomaly = LevelWatch(('anomaly_raised', 'anomaly_cleared'), events.anomaly_raise,
                                  events.anomaly_clear, events.anomaly_raise_frames,
                                  events.anomaly_clear_frames)
        # quality levels: 0 OK, 1 WARN, 2 ERROR; degraded at WARN or worse, recovered at OK
        self.quality = LevelWatch(('quality_degraded', 'quality_recovered'), 1.0, 1.0,
                                  events.quality_degrade_frames, events.quality_recover_frames)
        self.camera = CameraWatch(events.camera_timeout_s, clock_ns())
        self.meter = StreamMeter()
        self._frames: collections.deque[Frame] = collections.deque(maxlen=8)
        self._last_snapshot = float('-inf')
        self._last_health = time.monotonic()
        self._on_graph_command = on_graph_command
        self.graph_commands: queue.Queue[Command] = queue.Queue(maxsize=100)
        self.events_sent: collections.Counter[str] = collections.Counter()
        self.snapshots_sent = 0
        self.snapshots_skipped: collections.Counter[str] = collections.Counter()
        self.commands_done = 0
        self.commands_failed = 0
        self.last_objects: dict[str, int] = {}
        self.started = time.time()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.camera = CameraWatch(self.events_cfg.camera_timeout_s, self._clock())
        self.link.start()

    def stop(self) -> None:
        """Flush (up to ``flush_timeout_s``), say offline, disconnect; the store stays open."""
        self.link.stop(self.cfg.flush_timeout_s)

    def close(self) -> None:
        self.link.close()
        self.store.close()

    def update(self, cfg: BridgeConfig) -> None:
        """Apply run-time settings (``tracks_max_hz``, snapshot sizes)."""
        self.cfg = cfg

    # -- inputs ----------------------------------------------------------------------------

    def on_results(self, item: FrameDetections, labels: Sequence[str] | None = None,
                   arrival_ns: int | None = None) -> None:
        """One frame of tracks (or detections): events, then the rate-limited stream."""
        now = self._clock() if arrival_ns is None else arrival_ns
        labels = labels if labels is not None else item.labels
        with self._lock:
            self.meter.tick(item.meta.stamp_ns, now)
            events = [self.camera.frame(item.meta, now)]
            events += self.presence.update(item.meta, item.detections, labels)
            self.last_objects = dict(collections.Counter(
                class_name(int(c), labels) for c in item.detections.class_ids.tolist()))
            for event in events:
                if event is not None:
                    self.emit(event)
        self.link.offer('tracks', (item, labels), _tracks_body, self.cfg.tracks_max_hz)

    def on_text(self, item: FrameText) -> None:
        """The text lines read in one frame: the rate-limited ``text`` stream (frames without
        text are not sent)."""
        if item.lines:
            self.link.offer('text', item, text_body, self.cfg.text_max_hz)

    def on_anomaly(self, meta: FrameMeta, confidence: float) -> None:
        """One frame's anomaly confidence (0.5 = at the model's threshold)."""
        with self._lock:
            event = self.anomaly.update(meta, float(confidence))
            if event is not None:
                self.emit(event)

    def on_quality(self, meta: FrameMeta, level: int, summary: str = '') -> None:
        """One frame's image-quality level (0 OK, 1 WARN, 2 ERROR) and its summary."""
        with self._lock:
            event = self.quality.update(meta, float(level), summary=summary)
            if event is not None:
                self.emit(event)

    def on_camera_status(self, level: int, message: str) -> None:
        """The camera node's diagnostic status: an ERROR means the camera is lost."""
        if level < 2:
            return
        with self._lock:
            event = self.camera.camera_error(message, self._clock())
            if event is not None:
                self.emit(event)

    def on_image(self, frame: Frame) -> None:
        """An image of the snapshot topic (kept by reference, the newest few)."""
        with self._lock:
            self._frames.append(frame)

    def tick(self, extra_health: dict[str, Any] | None = None) -> None:
        """Call about twice a second: camera timeout, and health when due."""
        with self._lock:
            event = self.camera.check(self._clock())
            if event is not None:
                self.emit(event)
        period = self.cfg.health_period_s
        if period > 0 and time.monotonic() - self._last_health >= period:
            self._last_health = time.monotonic()
            self.link.offer('health', self.health_body(extra_health), lambda body: body)

    # -- outputs ---------------------------------------------------------------------------

    def emit(self, event: Event) -> int:
        """Queue an event (durable); a snapshot follows when its type asks for one."""
        seq = self.link.send('events', event.body(), evict=event.type != 'messages_dropped')
        self.events_sent[event.type] += 1
        if event.type in self.cfg.snapshot_events and self.cfg.snapshot_topic:
            now = time.monotonic()
            if now - self._last_snapshot < self.cfg.snapshot_min_interval_s:
                self.snapshots_skipped['rate_limited'] += 1
            else:
                try:
                    self.snapshot(event.meta, event_seq=seq)
                    self._last_snapshot = now
                except EdgeVisionError:
                    pass  # counted in snapshots_skipped
        return seq

    def snapshot(self, meta: FrameMeta | None = None, event_seq: int | None = None) -> int:
        """Send a JPEG of the snapshot topic's image nearest ``meta`` (None: the newest, which
        must be recent by the clock); returns the snapshot's seq.

        Raises:
            EdgeVisionError: no snapshot topic, no image close enough, or an image that does
                not encode (counted in ``snapshots_skipped``).
        """
        cfg = self.cfg
        if not cfg.snapshot_topic:
            self.snapshots_skipped['disabled'] += 1
            raise ConfigError('snapshots are off on this device (snapshot_topic is empty)')
        max_age_ns = int(cfg.snapshot_max_age_s * 1e9)
        with self._lock:
            frames = list(self._frames)
        target = meta.stamp_ns if meta is not None else self._clock()
        best = min(frames, key=lambda f: abs(f.meta.stamp_ns - target), default=None)
        if best is None or abs(best.meta.stamp_ns - target) > max_age_ns:
            self.snapshots_skipped['no_image'] += 1
            age = 'none received' if best is None else \
                f'the nearest is {abs(best.meta.stamp_ns - target) / 1e9:.2f} s away'
            raise ConfigError(f'no image on {cfg.snapshot_topic} within '
                              f'{cfg.snapshot_max_age_s:g} s ({age})')
        try:
            data, (width, height), quality = jpeg_snapshot(
                best.image, best.encoding, cfg.snapshot_max_bytes, cfg.snapshot_max_width,
                cfg.snapshot_quality)
        except EdgeVisionError:
            self.snapshots_skipped['encode_failed'] += 1
            raise
        import base64

        body = {**stamp_body(best.meta), 'format': 'jpeg', 'width': width, 'height': height,
                'quality': quality, 'event_seq': event_seq,
                'jpeg': base64.b64encode(data).decode('ascii')}
        seq = self.link.send('snapshot', body)
        self.snapshots_sent += 1
        return seq

    def reply(self, command_id: str | None, cmd: str | None, ok: bool, error: str = '',
              result: Any = None) -> None:
        """Answer a command on ``.../cmd/reply`` (durable)."""
        if ok:
            self.commands_done += 1
        else:
            self.commands_failed += 1
        self.link.send('cmd/reply', {'id': command_id, 'cmd': cmd, 'ok': bool(ok),
                                     'error': error or None, 'result': result})

    def health_body(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        link, store = self.link, self.store
        latency = self.meter.latency_ms(50)
        body: dict[str, Any] = {
            'fps': round(self.meter.fps(), 2),
            'latency_ms': {'p50': None if latency is None else round(latency, 1),
                           'p95': _round(self.meter.latency_ms(95), 1)},
            'frames': self.meter.count,
            'objects': dict(self.last_objects),
            'queue': {'depth': store.depth, 'bytes': store.size_bytes,
                      'dropped_total': store.dropped, 'inflight': link.inflight},
            'link': {'connects': link.stats.connects, 'sent': link.stats.sent,
                     'acked': link.stats.acked, 'rejected': link.stats.rejected,
                     'stream_skipped': link.stats.stream_skipped,
                     'stream_rate_limited': link.stream_replaced()},
            'events': dict(self.events_sent),
            'snapshots': {'sent': self.snapshots_sent, 'skipped': dict(self.snapshots_skipped)},
            'commands': {'accepted': self.gate.accepted, 'refused': self.gate.refused,
                         'done': self.commands_done, 'failed': self.commands_failed},
            'cpu_temp_c': cpu_temperature_c(),
            'uptime_s': round(time.time() - self.started, 1),
        }
        if extra:
            body.update(extra)
        return body

    # -- link callbacks (network thread) ---------------------------------------------------

    def _on_connected(self) -> None:
        dropped = self.store.take_unreported_drops()
        if dropped:
            self._log(logging.WARNING, f'{dropped} queued messages were dropped while the '
                                       f'store was full: reported in a messages_dropped event')
            self.emit(Event('messages_dropped', FrameMeta(max(0, self._clock())),
                            {'count': dropped, 'total': self.store.dropped}))

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic != self.topics['cmd']:
            return
        try:
            command = self.gate.check(payload)
        except CommandError as exc:
            self._log(logging.WARNING, f'refused a command on {topic}: {exc}')
            self.reply(exc.command_id, exc.cmd, False, str(exc))
            return
        self._log(logging.INFO, f'command {command.cmd} {command.args} (id {command.id})')
        if command.cmd == 'ping':
            self.reply(command.id, command.cmd, True, result={'time': time.time()})
        elif command.cmd == 'snapshot':
            try:
                seq = self.snapshot()
            except EdgeVisionError as exc:
                self.reply(command.id, command.cmd, False, str(exc))
            else:
                self.reply(command.id, command.cmd, True, result={'snapshot_seq': seq})
        else:
            try:
                self.graph_commands.put_nowait(command)
            except queue.Full:
                self.reply(command.id, command.cmd, False, 'busy: too many commands waiting')
                return
            if self._on_graph_command is not None:
                self._on_graph_command()


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _tracks_body(item: tuple[FrameDetections, Sequence[str] | None]) -> dict[str, Any]:
    frame, labels = item
    return {**stamp_body(frame.meta),
            **detections_body(frame.detections, labels, frame.image_size)}
