"""Read rosbag2 MCAP bags (one ``.mcap`` file or a bag folder), intact or cut short.

:class:`BagReader` reads the files of a bag in recording order with the official ``mcap``
reader. A file with its summary is read through its index (messages in log-time order); a file
without one (the recorder was killed, the disk filled up) is read from the start, chunk by
chunk, up to the last complete chunk, and reported in :attr:`BagReader.recovered`. Payloads are
decoded without ROS by ``mcap_ros2`` from the schema text the bag carries (``ros2msg``), so the
core needs no message packages to replay or compare a recording.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SourceError
from .writer import bag_files

__all__ = ['BagMessage', 'BagReader', 'Recovered']


@dataclass(frozen=True)
class BagMessage:
    """One message of a bag.

    Attributes:
        topic: the topic name.
        type: its message type (``sensor_msgs/msg/CompressedImage``).
        data: the CDR payload.
        log_time_ns: when the recorder received it.
        publish_time_ns: when it was published.
        file: the MCAP file it is in.
    """

    topic: str
    type: str
    data: bytes
    log_time_ns: int
    publish_time_ns: int
    file: Path


@dataclass(frozen=True)
class Recovered:
    """A file read without its summary: how many messages were read, and where it stopped."""

    file: Path
    messages: int
    reason: str


def _mcap():
    try:
        from mcap import reader
        from mcap.exceptions import McapError
    except ImportError:
        raise SourceError('reading MCAP bags needs the mcap package: pip install mcap '
                          'mcap-ros2-support') from None
    return reader, McapError


class BagReader:
    """The messages of a bag (see the module docstring).

    Args:
        path: a ``.mcap`` file or a rosbag2 bag folder.

    Raises:
        SourceError: no such file or folder, or a folder without MCAP files.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise SourceError(f'bag {str(self.path)!r} not found')
        self.files = bag_files(self.path)
        if not self.files:
            raise SourceError(f'{str(self.path)!r} holds no .mcap files (a bag is one .mcap '
                              f'file or a rosbag2 folder of them)')
        self.recovered: list[Recovered] = []
        self._decoders: dict[tuple[Path, int], Any] = {}

    # -- raw messages ----------------------------------------------------------------------

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Every message (of ``topics`` when given), file by file in recording order."""
        wanted = set(topics) if topics is not None else None
        self.recovered = []
        for path in self.files:
            yield from self._file_messages(path, wanted)

    def _file_messages(self, path: Path, wanted: set[str] | None) -> Iterator[BagMessage]:
        for schema, channel, message in self._records(path, wanted):
            if wanted is not None and channel.topic not in wanted:
                continue
            yield BagMessage(channel.topic, schema.name if schema is not None else '',
                             message.data, message.log_time, message.publish_time, path)

    def _records(self, path: Path, wanted: set[str] | None) -> Iterator[tuple]:
        reader_mod, mcap_error = _mcap()
        with open(path, 'rb') as stream:
            summary = None
            try:
                reader = reader_mod.SeekingReader(stream)
                summary = reader.get_summary()
            except (mcap_error, struct.error, ValueError, OSError):
                summary = None
            if summary is not None and summary.chunk_indexes:
                stream.seek(0)
                reader = reader_mod.SeekingReader(stream)
                topics = sorted(wanted) if wanted is not None else None
                yield from reader.iter_messages(topics=topics, log_time_order=True)
                return
            stream.seek(0)
            count = 0
            reason = 'no summary'
            try:
                linear = reader_mod.NonSeekingReader(stream)
                for record in linear.iter_messages(log_time_order=False):
                    count += 1
                    yield record
                if summary is None:
                    reason = 'no summary (file not finished)'
            except (mcap_error, struct.error, ValueError, EOFError) as exc:
                reason = f'no summary; cut short after {count} messages ({type(exc).__name__})'
            if summary is None:
                self.recovered.append(Recovered(path, count, reason))

    # -- topics ----------------------------------------------------------------------------

    def topics(self) -> dict[str, str]:
        """``{topic: type}`` of every channel in the bag (summaries, or a full scan of a file
        that has none)."""
        reader_mod, mcap_error = _mcap()
        out: dict[str, str] = {}
        for path in self.files:
            with open(path, 'rb') as stream:
                try:
                    summary = reader_mod.SeekingReader(stream).get_summary()
                except (mcap_error, struct.error, ValueError, OSError):
                    summary = None
            if summary is not None:
                for channel in summary.channels.values():
                    schema = summary.schemas.get(channel.schema_id)
                    out.setdefault(channel.topic, schema.name if schema else '')
                continue
            for schema, channel, _ in self._records(path, None):
                out.setdefault(channel.topic, schema.name if schema is not None else '')
        return out

    def message_counts(self) -> dict[str, int]:
        """Messages per topic (reads every message)."""
        counts: dict[str, int] = {}
        for msg in self.messages():
            counts[msg.topic] = counts.get(msg.topic, 0) + 1
        return counts

    # -- decoded messages ------------------------------------------------------------------

    def decoded(self, topics: Iterable[str] | None = None) -> Iterator[tuple[BagMessage, Any]]:
        """``(message, decoded)`` pairs: the payload decoded from the bag's own schema text
        (attribute access like a ROS message: ``decoded.header.stamp.sec``).

        Raises:
            SourceError: mcap-ros2-support is missing, or a schema cannot be parsed.
        """
        try:
            from mcap_ros2.decoder import DecoderFactory
        except ImportError:
            raise SourceError('decoding bag messages needs mcap-ros2-support: pip install '
                              'mcap-ros2-support') from None
        factory = DecoderFactory()
        wanted = set(topics) if topics is not None else None
        self.recovered = []
        for path in self.files:
            for schema, channel, message in self._records(path, wanted):
                if wanted is not None and channel.topic not in wanted:
                    continue
                try:
                    decode = factory.decoder_for(channel.message_encoding, schema)
                except Exception as exc:  # the schema text does not parse
                    raise SourceError(f'{path}: cannot decode {channel.topic} '
                                      f'({schema.name if schema else "no schema"}): '
                                      f'{exc}') from None
                if decode is None:
                    continue  # not CDR/ros2msg: not ours to decode
                item = BagMessage(channel.topic, schema.name, message.data, message.log_time,
                                  message.publish_time, path)
                yield item, decode(message.data)
            factory = DecoderFactory()  # schema ids are per file
