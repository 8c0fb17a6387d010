"""The fleet side: what every device reported, deduplicated, ready for a table or a file.

:class:`FleetState` takes the raw messages of a subscription to ``<root>/v1/+/+/#`` and keeps
one :class:`DeviceView` per ``(device, camera)``. Durable messages (events) can arrive twice:
QoS 1 is "at least once", and a device re-sends what the broker had not acknowledged before a
restart. Each ``(device, camera, epoch)`` sequence goes through a :class:`SeqFilter`, so every
event is returned once, and gaps (messages the device dropped when its store was full, or lost
by a broker) are counted as ``missing``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConversionError
from .schema import decode, parse_topic

__all__ = ['DeviceView', 'FleetState', 'SeqFilter', 'event_summary']


class SeqFilter:
    """Which sequence numbers of one sequence have been seen, in bounded memory.

    Everything at or below ``floor`` counts as seen; seqs above it are kept in a set until the
    floor reaches them. When more than ``max_pending`` are held (a long gap that will never
    fill), the floor jumps forward and the skipped numbers stay counted as missing (one that
    still arrives after that is taken for a duplicate).
    """

    def __init__(self, max_pending: int = 100_000) -> None:
        self.floor = 0
        self._above: set[int] = set()
        self.max_pending = max_pending
        self.highest = 0
        self._skipped = 0

    def add(self, seq: int) -> bool:
        """True if ``seq`` is new (and remember it), False for a duplicate."""
        if seq <= self.floor or seq in self._above:
            return False
        self._above.add(seq)
        self.highest = max(self.highest, seq)
        while self.floor + 1 in self._above:
            self.floor += 1
            self._above.discard(self.floor)
        if len(self._above) > self.max_pending:
            lowest = min(self._above)
            self._skipped += lowest - 1 - self.floor
            self.floor = lowest - 1
            while self.floor + 1 in self._above:
                self.floor += 1
                self._above.discard(self.floor)
        return True

    @property
    def missing(self) -> int:
        """Numbers below the highest seen that have not arrived (yet)."""
        return self._skipped + self.highest - self.floor - len(self._above)


def event_summary(event: dict[str, Any]) -> str:
    """A short human-readable line for an event payload."""
    kind = event.get('event', '?')
    track = event.get('track') if isinstance(event.get('track'), dict) else {}
    if kind == 'track_entered':
        return f'{track.get("class")} #{track.get("id")} entered'
    if kind == 'track_left':
        return f'{track.get("class")} #{track.get("id")} left after {event.get("duration_s")} s'
    if kind in ('anomaly_raised', 'anomaly_cleared'):
        return f'{kind.replace("_", " ")} ({event.get("value")})'
    if kind == 'camera_lost':
        return f'camera lost: {event.get("reason")}'
    if kind in ('quality_degraded', 'quality_recovered'):
        return f'{kind.replace("_", " ")}: {event.get("summary", "")}'.rstrip(': ')
    if kind == 'messages_dropped':
        return f'{event.get("count")} messages dropped on the device'
    return kind.replace('_', ' ')


@dataclass
class DeviceView:
    """What one camera of one device last reported."""

    device: str
    camera: str
    online: bool | None = None
    status_reason: str = ''
    fps: float | None = None
    latency_ms: float | None = None
    queue_depth: int | None = None
    cpu_temp_c: float | None = None
    objects: dict[str, int] = field(default_factory=dict)
    last_event: str = ''
    last_event_time: float | None = None
    last_anomaly: str = ''
    last_text: str = ''
    events: int = 0
    duplicates: int = 0
    snapshots: int = 0
    last_reply: dict[str, Any] | None = None
    last_seen: float | None = None
    filters: dict[tuple[str, str], SeqFilter] = field(default_factory=dict, repr=False)

    @property
    def missing(self) -> int:
        return sum(f.missing for (channel, _), f in self.filters.items() if channel == 'events')


class FleetState:
    """Every device seen on a subscription (see the module docstring)."""

    def __init__(self, root: str = 'edge_vision') -> None:
        self.root = root
        self.views: dict[tuple[str, str], DeviceView] = {}
        self.malformed = 0
        self.last_error = ''

    def view(self, device: str, camera: str) -> DeviceView:
        key = (device, camera)
        if key not in self.views:
            self.views[key] = DeviceView(device, camera)
        return self.views[key]

    def preload(self, events: Iterable[dict[str, Any]]) -> int:
        """Mark events already written (e.g. read back from the JSON-lines file) as seen, so
        a restarted consumer does not write them again; returns how many."""
        count = 0
        for event in events:
            try:
                view = self.view(str(event['device']), str(event['camera']))
                seq_filter = view.filters.setdefault(('events', str(event.get('epoch', ''))),
                                                     SeqFilter())
                count += seq_filter.add(int(event['seq']))
            except (KeyError, TypeError, ValueError):
                continue
        return count

    def ingest(self, topic: str, payload: bytes, now: float | None = None
               ) -> list[dict[str, Any]]:
        """One received message; returns the new (not duplicate) events it carries."""
        where = parse_topic(topic, self.root)
        if where is None:
            return []
        device, camera, channel = where
        now = time.time() if now is None else now
        try:
            body = decode(payload, max_bytes=64 << 20)
        except ConversionError as exc:
            self.malformed += 1
            self.last_error = f'{topic}: {exc}'
            return []
        view = self.view(device, camera)
        view.last_seen = now
        if channel == 'status':
            view.online = body.get('state') == 'online'
            view.status_reason = str(body.get('reason', ''))
            return []
        if channel == 'cmd/reply':
            view.last_reply = body
        if 'seq' in body and channel in ('events', 'snapshot', 'cmd/reply'):
            try:
                seq = int(body['seq'])
            except (TypeError, ValueError):
                self.malformed += 1
                return []
            seq_filter = view.filters.setdefault((channel, str(body.get('epoch', ''))),
                                                 SeqFilter())
            if not seq_filter.add(seq):
                view.duplicates += 1
                return []
        if channel == 'health':
            view.fps = _float(body.get('fps'))
            latency = body.get('latency_ms')
            view.latency_ms = _float(latency.get('p50')) if isinstance(latency, dict) else None
            queue = body.get('queue')
            view.queue_depth = queue.get('depth') if isinstance(queue, dict) else None
            view.cpu_temp_c = _float(body.get('cpu_temp_c'))
        elif channel == 'tracks':
            counts: dict[str, int] = {}
            for obj in body.get('objects') or ():
                if isinstance(obj, dict):
                    name = str(obj.get('class'))
                    counts[name] = counts.get(name, 0) + 1
            view.objects = counts
        elif channel == 'text':
            texts = [str(line.get('text')) for line in body.get('lines') or ()
                     if isinstance(line, dict)]
            view.last_text = ' | '.join(texts)[:80]
        elif channel == 'snapshot':
            view.snapshots += 1
        elif channel == 'events':
            view.events += 1
            view.last_event = event_summary(body)
            view.last_event_time = now
            if str(body.get('event', '')).startswith('anomaly_'):
                view.last_anomaly = f'{time.strftime("%H:%M:%S", time.localtime(now))} ' \
                                    f'{event_summary(body)}'
            return [body]
        return []

    def rows(self) -> list[DeviceView]:
        return [self.views[k] for k in sorted(self.views)]


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
