"""Write rosbag2-compatible MCAP bags: split by size or duration, bounded on disk, crash-safe.

A bag is what ``ros2 bag record -s mcap`` writes, made with the official ``mcap`` library:

- MCAP profile ``ros2``; one schema per message type (encoding ``ros2msg``, the complete
  definition text, :mod:`edge_vision_core.bag.definitions`); one channel per topic (message
  encoding ``cdr``) with the channel metadata rosbag2's MCAP storage plugin writes:
  ``offered_qos_profiles`` (the publisher's QoS as rosbag2's YAML, in the integer form every
  distro from Humble on reads) and ``topic_type_hash`` (RIHS01; empty where unknown);
- every message with ``log_time`` = when the recorder received it and ``publish_time`` = when it
  was published (the caller's best knowledge; the header stamp stays inside the payload);
- at the end of each file, a ``rosbag2`` metadata record (``serialized_metadata``: the file's
  BagMetadata YAML, and ``ROS_DISTRO``), then the summary and footer.

Layout (:class:`BagConfig`): a ``path`` ending in ``.mcap`` is one file (what Foxglove,
Lichtblick and ``ros2 bag info/play FILE.mcap`` on Iron and later open); any other path is a
rosbag2 bag folder ``<path>/<name>_<i>.mcap`` plus ``metadata.yaml`` (what ``ros2 bag info/play
FOLDER`` reads on every distro, Humble included), and only a folder can be split
(``split_size_mb``, ``split_duration_s``) and bounded (``max_files``, ``max_total_mb``: the
oldest files are removed, and counted, so a recorder left running keeps a fixed budget).
``metadata.yaml`` is rewritten after every split, so it names the files that are on disk.

Crash safety: messages are grouped into chunks (``chunk_size_kb``) that are written whole, and
the chunk in progress is written out at least every ``flush_period_s``. A recorder killed with
``kill -9`` leaves a file without summary and footer whose chunks up to the last flush are
intact: :class:`~edge_vision_core.bag.reader.BagReader` (and ``mcap recover``) read them.

Disk errors (full disk, removed folder) are counted, the file in progress is abandoned and a new
one is tried after ``retry_s``; messages that arrive meanwhile are dropped and counted.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import check_config, param
from ..errors import ConfigError

__all__ = ['BagConfig', 'BagTopic', 'BagWriter', 'QosProfile', 'bag_files']

#: rosbag2's BagMetadata version written to metadata.yaml: the newest one Humble reads.
METADATA_VERSION = 5
_MB = 1024 * 1024
_INFINITE = {'sec': 9223372036, 'nsec': 854775807}  # RMW_DURATION_INFINITE as rosbag2 writes it


@dataclass(frozen=True)
class QosProfile:
    """The QoS a topic was offered with (played back by ``ros2 bag play``).

    Attributes:
        reliability: 'reliable' or 'best_effort'.
        durability: 'volatile' or 'transient_local' (latched topics such as ``label_info``).
        depth: history depth (KEEP_LAST).
    """

    reliability: str = 'reliable'
    durability: str = 'volatile'
    depth: int = 10

    def __post_init__(self) -> None:
        if self.reliability not in ('reliable', 'best_effort'):
            raise ConfigError(f"Invalid reliability {self.reliability!r}, expecting one of "
                              f"['reliable', 'best_effort']")
        if self.durability not in ('volatile', 'transient_local'):
            raise ConfigError(f"Invalid durability {self.durability!r}, expecting one of "
                              f"['volatile', 'transient_local']")
        if not 1 <= self.depth <= 100_000:
            raise ConfigError(f'QosProfile.depth must be in [1, 100000], got {self.depth}')

    def as_rosbag2(self) -> dict[str, Any]:
        """rosbag2's QoS mapping (rmw enum values: KEEP_LAST 1, RELIABLE 1 / BEST_EFFORT 2,
        TRANSIENT_LOCAL 1 / VOLATILE 2, liveliness AUTOMATIC 1)."""
        return {
            'history': 1, 'depth': self.depth,
            'reliability': 1 if self.reliability == 'reliable' else 2,
            'durability': 1 if self.durability == 'transient_local' else 2,
            'deadline': dict(_INFINITE), 'lifespan': dict(_INFINITE), 'liveliness': 1,
            'liveliness_lease_duration': dict(_INFINITE),
            'avoid_ros_namespace_conventions': False,
        }


def qos_yaml(profiles: list[QosProfile]) -> str:
    """``offered_qos_profiles`` as rosbag2 stores it (a YAML sequence in one string)."""
    return yaml.safe_dump([p.as_rosbag2() for p in profiles], sort_keys=False)


@dataclass(frozen=True)
class BagTopic:
    """One recorded topic.

    Attributes:
        name: the fully qualified topic name (``/camera0/tracks``).
        type: the message type (``vision_msgs/msg/Detection2DArray``).
        definition: its complete ``ros2msg`` definition text.
        type_hash: RIHS01 type hash ('' when unknown).
        qos: the QoS it was offered with.
    """

    name: str
    type: str
    definition: str
    type_hash: str = ''
    qos: QosProfile = field(default_factory=QosProfile)

    def __post_init__(self) -> None:
        if not self.name.startswith('/'):
            raise ConfigError(f'bag topic names are fully qualified, got {self.name!r}')


@dataclass(frozen=True)
class BagConfig:
    """Where and how a bag is written (see the module docstring)."""

    path: str = field(default='', metadata=param(
        'Bag to write: a path ending in .mcap is one MCAP file, any other path a rosbag2 bag '
        'folder (<path>/<name>_<i>.mcap + metadata.yaml; needed for splitting); empty = no '
        'bag.', read_only=True))
    split_size_mb: float = field(default=0.0, metadata=param(
        'Start a new file of the bag folder when the current one reaches this size (0 = '
        'never).', min=0.0, max=1e6, unit='MB', read_only=True))
    split_duration_s: float = field(default=0.0, metadata=param(
        'Start a new file of the bag folder after this much recording time (0 = never).',
        min=0.0, max=1e7, unit='s', read_only=True))
    max_files: int = field(default=0, metadata=param(
        'Keep at most this many files in the bag folder: the oldest are removed (and '
        'counted); 0 = no limit.', min=0, max=1_000_000, read_only=True))
    max_total_mb: float = field(default=0.0, metadata=param(
        'Keep the bag folder under this size: the oldest files are removed (and counted); '
        '0 = no limit.', min=0.0, max=1e7, unit='MB', read_only=True))
    chunk_size_kb: int = field(default=1024, metadata=param(
        'MCAP chunk size: messages are written in chunks of about this size (a killed '
        'recorder loses at most the chunk in progress).', min=16, max=1_048_576, unit='KiB',
        read_only=True))
    compression: str = field(default='zstd', metadata=param(
        'Chunk compression.', choices=('zstd', 'lz4', 'none'), read_only=True))
    flush_period_s: float = field(default=1.0, metadata=param(
        'Write the chunk in progress to disk at least this often (bounds what a crash or '
        'power loss can lose); 0 = only when chunks are full.', min=0.0, max=3600.0, unit='s',
        read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        splits = self.split_size_mb > 0 or self.split_duration_s > 0
        bounded = self.max_files > 0 or self.max_total_mb > 0
        if self.single_file and (splits or bounded):
            raise ConfigError(f'bag path {self.path!r} names one .mcap file, which cannot be '
                              f'split or rotated: give a folder path without .mcap (e.g. '
                              f'{self.path[:-5] or "out/bag"}) for a rosbag2 bag folder')
        if bounded and not splits:
            raise ConfigError('max_files / max_total_mb remove whole files: set split_size_mb '
                              'or split_duration_s too, or the bag is one growing file')
        if self.max_total_mb and self.split_size_mb and \
                self.max_total_mb < 2 * self.split_size_mb:
            raise ConfigError(f'max_total_mb ({self.max_total_mb}) must hold at least two '
                              f'files of split_size_mb ({self.split_size_mb})')

    @property
    def single_file(self) -> bool:
        return self.path.lower().endswith('.mcap')


def bag_files(path: str | os.PathLike) -> list[Path]:
    """The MCAP files of a bag, in recording order: the file itself, or the files a bag folder's
    ``metadata.yaml`` lists (those still on disk), else its ``*.mcap`` files by split number."""
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    meta = path / 'metadata.yaml'
    listed: list[Path] = []
    if meta.is_file():
        try:
            info = yaml.safe_load(meta.read_text(encoding='utf-8'))
            names = info['rosbag2_bagfile_information']['relative_file_paths']
            listed = [path / Path(str(n)).name for n in names]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            listed = []
    found = sorted(path.glob('*.mcap'), key=_split_number)
    # files written after the last metadata.yaml (a killed recorder) come last
    return [p for p in listed if p.is_file()] + [p for p in found if p not in listed]


def _split_number(path: Path) -> tuple[int, str]:
    stem = path.stem
    tail = stem.rsplit('_', 1)[-1]
    return (int(tail) if tail.isdigit() else -1, stem)


@dataclass
class _FileInfo:
    path: Path
    start_ns: int = 0
    end_ns: int = 0
    messages: int = 0
    size: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)


class BagWriter:
    """Writes one bag (see the module docstring). Thread-safe; ``close()`` finishes it.

    Args:
        config: where and how.
        library: the writer's name in the MCAP header (``edge_vision x.y``).
        ros_distro: stored in the bag's metadata ('' when unknown).
    """

    def __init__(self, config: BagConfig, library: str = 'edge_vision',
                 ros_distro: str = '') -> None:
        if not config.path:
            raise ConfigError('BagConfig.path is empty: say where to write the bag')
        self.config = config
        self.library = library
        self.ros_distro = ros_distro
        self._lock = threading.RLock()
        self._topics: dict[str, BagTopic] = {}
        self._counts: dict[str, int] = {}
        self._writer: Any = None
        self._stream: Any = None
        self._schema_ids: dict[str, int] = {}
        self._channel_ids: dict[str, int] = {}
        self._file: _FileInfo | None = None
        self._files: list[_FileInfo] = []  # finished files still on disk, oldest first
        self._next_index = 0
        self._last_flush = time.monotonic()
        self._failed_at: float | None = None
        self.retry_s = 5.0
        self.messages = 0
        self.bytes = 0
        self.files_written = 0
        self.files_removed = 0
        self.bytes_removed = 0
        self.messages_removed = 0
        self.write_errors = 0
        self.dropped = 0
        self.last_error = ''
        self.closed = False
        path = Path(config.path).expanduser()
        if config.single_file:
            self.folder = path.parent
            self.base = path.stem
        else:
            self.folder = path
            self.base = path.name
            if path.is_dir() and any(path.glob('*.mcap')):
                raise ConfigError(f'bag folder {str(path)!r} already holds a recording: give '
                                  f'a new path or move it away (a bag is never overwritten)')
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / f'.{self.base}.write-test'
            probe.write_bytes(b'')
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f'cannot write the bag in {str(self.folder)!r}: {exc}') from None

    # -- topics and messages ---------------------------------------------------------------

    def add_topic(self, topic: BagTopic) -> None:
        """Declare a topic (before its first message; declaring it again is a no-op)."""
        with self._lock:
            known = self._topics.get(topic.name)
            if known is not None:
                if known.type != topic.type:
                    raise ConfigError(f'topic {topic.name} is recorded as {known.type}, not '
                                      f'{topic.type}')
                return
            self._topics[topic.name] = topic
            self._counts.setdefault(topic.name, 0)
            if self._writer is not None:
                self._register(topic)

    def has_topic(self, name: str) -> bool:
        return name in self._topics

    def write(self, topic: str, data: bytes, log_time_ns: int,
              publish_time_ns: int | None = None) -> bool:
        """Append one serialized message; returns False when it was dropped (disk error).

        Raises:
            ConfigError: an undeclared topic, or a bag that was closed.
        """
        with self._lock:
            if self.closed:
                raise ConfigError('the bag is closed')
            if topic not in self._topics:
                raise ConfigError(f'topic {topic} was not declared (add_topic) before writing')
            if self._failed_at is not None and \
                    time.monotonic() - self._failed_at < self.retry_s:
                self.dropped += 1
                return False
            try:
                self._maybe_split(log_time_ns)
                if self._writer is None:
                    self._open_file()
                self._writer.add_message(channel_id=self._channel_ids[topic],
                                         log_time=int(log_time_ns), data=data,
                                         publish_time=int(publish_time_ns if publish_time_ns
                                                          is not None else log_time_ns))
                self._note_message(topic, log_time_ns, len(data))
                self._maybe_flush()
            except OSError as exc:
                self._disk_error(exc)
                self.dropped += 1
                return False
            return True

    def flush(self) -> None:
        """Write the chunk in progress to disk now (also called every ``flush_period_s``)."""
        with self._lock:
            if self._writer is None:
                return
            try:
                self._writer.flush()
            except OSError as exc:
                self._disk_error(exc)
            self._last_flush = time.monotonic()
            if self._file is not None and self._stream is not None:
                self._file.size = self._stream.tell()

    def close(self) -> None:
        """Finish the file in progress (summary, footer, metadata.yaml). Idempotent."""
        with self._lock:
            if self.closed:
                return
            try:
                self._finish_file()
                self._write_folder_metadata()
            except OSError as exc:
                self._disk_error(exc)
            self.closed = True

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------------

    @property
    def current_file(self) -> Path | None:
        return self._file.path if self._file is not None else None

    @property
    def files(self) -> list[Path]:
        """The bag's files on disk, oldest first (the one in progress last)."""
        with self._lock:
            return [f.path for f in self._files] + ([self._file.path] if self._file else [])

    def topic_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def stats(self) -> dict[str, float]:
        """Counters for diagnostics: messages, bytes, files written/removed, drops, errors."""
        with self._lock:
            return {'bag_messages': self.messages, 'bag_bytes': self.bytes,
                    'bag_files_written': self.files_written,
                    'bag_files_removed': self.files_removed,
                    'bag_messages_removed': self.messages_removed,
                    'bag_write_errors': self.write_errors, 'bag_dropped': self.dropped}

    # -- files -----------------------------------------------------------------------------

    def _file_path(self) -> Path:
        if self.config.single_file:
            return self.folder / f'{self.base}.mcap'
        return self.folder / f'{self.base}_{self._next_index}.mcap'

    def _open_file(self) -> None:
        from mcap.writer import CompressionType, Writer

        path = self._file_path()
        self._next_index += 1
        compression = {'zstd': CompressionType.ZSTD, 'lz4': CompressionType.LZ4,
                       'none': CompressionType.NONE}[self.config.compression]
        stream = open(path, 'wb')  # closed in _finish_file or _disk_error
        try:
            writer = Writer(stream, chunk_size=self.config.chunk_size_kb * 1024,
                            compression=compression)
            writer.start(profile='ros2', library=self.library)
        except BaseException:
            stream.close()
            raise
        self._stream, self._writer = stream, writer
        self._file = _FileInfo(path)
        self._schema_ids.clear()
        self._channel_ids.clear()
        for topic in self._topics.values():
            self._register(topic)
        self.files_written += 1
        self._failed_at = None
        self._last_flush = time.monotonic()

    def _register(self, topic: BagTopic) -> None:
        schema = self._schema_ids.get(topic.type)
        if schema is None:
            schema = self._writer.register_schema(
                name=topic.type, encoding='ros2msg', data=topic.definition.encode('utf-8'))
            self._schema_ids[topic.type] = schema
        self._channel_ids[topic.name] = self._writer.register_channel(
            topic=topic.name, message_encoding='cdr', schema_id=schema,
            metadata={'offered_qos_profiles': qos_yaml([topic.qos]),
                      'topic_type_hash': topic.type_hash})

    def _note_message(self, topic: str, log_time_ns: int, size: int) -> None:
        info = self._file
        if info.messages == 0:
            info.start_ns = info.end_ns = log_time_ns
        info.start_ns = min(info.start_ns, log_time_ns)
        info.end_ns = max(info.end_ns, log_time_ns)
        info.messages += 1
        info.per_topic[topic] = info.per_topic.get(topic, 0) + 1
        self._counts[topic] += 1
        self.messages += 1
        self.bytes += size

    def _maybe_flush(self) -> None:
        period = self.config.flush_period_s
        if period > 0 and time.monotonic() - self._last_flush >= period:
            self.flush()
        elif self._stream is not None:
            self._file.size = self._stream.tell()

    def _maybe_split(self, log_time_ns: int) -> None:
        info = self._file
        if self._writer is None or info is None or info.messages == 0:
            return
        cfg = self.config
        too_big = cfg.split_size_mb > 0 and info.size >= cfg.split_size_mb * _MB
        too_long = cfg.split_duration_s > 0 and \
            log_time_ns - info.start_ns >= cfg.split_duration_s * 1e9
        if too_big or too_long:
            self._finish_file()
            self._rotate()
            self._write_folder_metadata()

    def _finish_file(self) -> None:
        info, writer, stream = self._file, self._writer, self._stream
        if writer is None:
            return
        self._writer = self._stream = self._file = None
        try:
            writer.add_metadata('rosbag2', {
                'serialized_metadata': yaml.safe_dump(self._metadata([info]), sort_keys=False),
                'ROS_DISTRO': self.ros_distro})
            writer.finish()
            stream.flush()
            os.fsync(stream.fileno())
        finally:
            stream.close()
        info.size = info.path.stat().st_size
        self._files.append(info)

    def _rotate(self) -> None:
        """Remove the oldest finished files beyond ``max_files`` / ``max_total_mb``."""
        cfg = self.config

        def over() -> bool:
            count = len(self._files) + 1  # the next file counts too
            total = sum(f.size for f in self._files)
            return (cfg.max_files > 0 and count > cfg.max_files) or \
                (cfg.max_total_mb > 0 and total + cfg.split_size_mb * _MB > cfg.max_total_mb *
                 _MB)

        while self._files and over():
            old = self._files.pop(0)
            try:
                old.path.unlink()
            except FileNotFoundError:
                pass
            self.files_removed += 1
            self.bytes_removed += old.size
            self.messages_removed += old.messages

    def _disk_error(self, exc: OSError) -> None:
        self.write_errors += 1
        self.last_error = f'cannot write the bag in {self.folder}: {exc}'
        self._failed_at = time.monotonic()
        stream, self._stream, self._writer = self._stream, None, None
        if self._file is not None:
            self._files.append(self._file)  # what reached the disk is still readable
            self._file = None
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass

    # -- rosbag2 metadata ------------------------------------------------------------------

    def _metadata(self, files: list[_FileInfo]) -> dict[str, Any]:
        """rosbag2 BagMetadata (version 5) of ``files``."""
        counts: dict[str, int] = {}
        for info in files:
            for topic, n in info.per_topic.items():
                counts[topic] = counts.get(topic, 0) + n
        used = [f for f in files if f.messages]
        start = min((f.start_ns for f in used), default=0)
        end = max((f.end_ns for f in used), default=0)
        return {
            'version': METADATA_VERSION,
            'storage_identifier': 'mcap',
            'duration': {'nanoseconds': end - start},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': sum(f.messages for f in files),
            'topics_with_message_count': [
                {'topic_metadata': {'name': t.name, 'type': t.type,
                                    'serialization_format': 'cdr',
                                    'offered_qos_profiles': qos_yaml([t.qos])},
                 'message_count': counts.get(t.name, 0)}
                for t in self._topics.values()],
            'compression_format': '',
            'compression_mode': '',
            'relative_file_paths': [f.path.name for f in files],
            'files': [{'path': f.path.name,
                       'starting_time': {'nanoseconds_since_epoch': f.start_ns},
                       'duration': {'nanoseconds': f.end_ns - f.start_ns},
                       'message_count': f.messages} for f in files],
        }

    def _write_folder_metadata(self) -> None:
        if self.config.single_file:
            return
        files = list(self._files) + ([self._file] if self._file is not None else [])
        text = yaml.safe_dump({'rosbag2_bagfile_information': self._metadata(files)},
                              sort_keys=False)
        tmp = self.folder / 'metadata.yaml.tmp'
        tmp.write_text(text, encoding='utf-8')
        os.replace(tmp, self.folder / 'metadata.yaml')

