"""Events from streams: what changed, said once, instead of every frame.

Each watcher is a small state machine with per-instance state, fed in stream order and driven by
the data's own stamps (ROS time), so the same input always gives the same events:

- :class:`TrackPresence`: ``track_entered`` the first time the tracker reports a track id (the
  tracker reports only *confirmed* tracks, so its ``min_hits`` is the debounce), ``track_left``
  once an id has been absent for ``leave_after_s`` of stream time (set it to the tracker's
  ``lost_timeout_s``: a track re-found within it keeps its id and is not a new entry);
- :class:`LevelWatch`: two-threshold hysteresis with consecutive-frame counts, used for
  ``anomaly_raised``/``anomaly_cleared`` (anomaly confidence) and
  ``quality_degraded``/``quality_recovered`` (the image-quality diagnostic level);
- :class:`CameraWatch`: ``camera_lost`` when frames stop for ``camera_timeout_s`` or the camera
  node reports an error, ``camera_back`` with the next frame;
- :class:`RateLimiter`: at most ``max_hz`` messages of a stream, the newest one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import check_config, param
from ..errors import ConfigError
from ..types import Detections, FrameMeta, class_name
from .schema import stamp_body

__all__ = ['EVENT_TYPES', 'CameraWatch', 'Event', 'EventConfig', 'LevelWatch', 'RateLimiter',
           'TrackPresence']

#: Every event type of schema v1 (the ``event`` field of ``.../events`` payloads).
EVENT_TYPES = ('track_entered', 'track_left', 'anomaly_raised', 'anomaly_cleared',
               'camera_lost', 'camera_back', 'quality_degraded', 'quality_recovered',
               'messages_dropped')


@dataclass(frozen=True)
class EventConfig:
    """When the MQTT bridge reports an event (parameters ``events.*``)."""

    leave_after_s: float = field(default=1.0, metadata=param(
        'A track has left once its id has been absent this long (stream time); use the '
        'tracker\'s lost_timeout_s so a re-found track is not reported twice.', min=0.0,
        max=3600.0, unit='s', read_only=True))
    anomaly_raise: float = field(default=0.5, metadata=param(
        'Anomaly confidence at or above which a frame counts as anomalous (0.5 = the '
        'model\'s threshold).', min=0.0, max=1.0, read_only=True))
    anomaly_clear: float = field(default=0.4, metadata=param(
        'Anomaly confidence below which a frame counts as normal again (hysteresis: <= '
        'anomaly_raise).', min=0.0, max=1.0, read_only=True))
    anomaly_raise_frames: int = field(default=3, metadata=param(
        'Consecutive anomalous frames before anomaly_raised.', min=1, max=10000, read_only=True))
    anomaly_clear_frames: int = field(default=10, metadata=param(
        'Consecutive normal frames before anomaly_cleared.', min=1, max=10000, read_only=True))
    quality_degrade_frames: int = field(default=15, metadata=param(
        'Consecutive frames with a WARN/ERROR image-quality level before quality_degraded.',
        min=1, max=10000, read_only=True))
    quality_recover_frames: int = field(default=30, metadata=param(
        'Consecutive OK frames before quality_recovered.', min=1, max=10000, read_only=True))
    camera_timeout_s: float = field(default=3.0, metadata=param(
        'No frame for this long (node clock) means camera_lost; 0 reports only errors of the '
        'camera node.', min=0.0, max=3600.0, unit='s', read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        if self.anomaly_clear > self.anomaly_raise:
            raise ConfigError(f'EventConfig.anomaly_clear ({self.anomaly_clear}) must be <= '
                              f'anomaly_raise ({self.anomaly_raise})')


@dataclass(frozen=True)
class Event:
    """One event: its type, the stamp of the data that caused it, and type-specific fields."""

    type: str
    meta: FrameMeta
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ConfigError(f'Invalid event type {self.type!r}, expecting one of '
                              f'{list(EVENT_TYPES)}')

    def body(self) -> dict[str, Any]:
        """The payload fields after the envelope: ``event``, ``stamp``, ``frame_id``, data."""
        return {'event': self.type, **stamp_body(self.meta), **self.data}


def _stamp(meta: FrameMeta) -> dict[str, int]:
    return stamp_body(meta)['stamp']


@dataclass
class _Track:
    first: FrameMeta
    last: FrameMeta
    class_name: str
    best_score: float


class TrackPresence:
    """``track_entered`` / ``track_left`` from a stream of tracked detections.

    Call :meth:`update` with every frame of the tracker's output, empty frames included
    (time passes in them). Detections without track ids give no events. A frame whose stamp is
    older than the newest seen (a replay restarting) is ignored for leaving, so no track
    "leaves" because the clock went backwards.
    """

    def __init__(self, leave_after_s: float = 1.0) -> None:
        self.leave_after_ns = int(round(leave_after_s * 1e9))
        self._tracks: dict[int, _Track] = {}
        self._newest = -1

    @property
    def present(self) -> list[int]:
        """Track ids currently considered present, in order of entry."""
        return list(self._tracks)

    def update(self, meta: FrameMeta, dets: Detections,
               labels: Sequence[str] | None = None) -> list[Event]:
        """Events caused by one frame: entries first (in detection order), then departures
        (in order of entry)."""
        events = []
        seen = set()
        if dets.track_ids is not None:
            for i, tid in enumerate(dets.track_ids.tolist()):
                if tid in seen:
                    continue
                seen.add(tid)
                score = float(dets.scores[i])
                track = self._tracks.get(tid)
                if track is None:
                    name = class_name(int(dets.class_ids[i]), labels)
                    self._tracks[tid] = _Track(meta, meta, name, score)
                    box = [round(float(v), 2) for v in dets.boxes[i]]
                    events.append(Event('track_entered', meta, {'track': {
                        'id': tid, 'class': name, 'score': round(score, 4), 'box': box}}))
                else:
                    if meta.stamp_ns >= track.last.stamp_ns:
                        track.last = meta
                    track.best_score = max(track.best_score, score)
        if meta.stamp_ns < self._newest:
            return events
        self._newest = meta.stamp_ns
        for tid in [t for t in self._tracks if t not in seen]:
            track = self._tracks[tid]
            if meta.stamp_ns - track.last.stamp_ns >= self.leave_after_ns:
                del self._tracks[tid]
                events.append(Event('track_left', meta, {
                    'track': {'id': tid, 'class': track.class_name,
                              'best_score': round(track.best_score, 4)},
                    'first_seen': _stamp(track.first), 'last_seen': _stamp(track.last),
                    'duration_s': round((track.last.stamp_ns - track.first.stamp_ns) / 1e9, 3)}))
        return events

    def reset(self) -> None:
        self._tracks.clear()
        self._newest = -1


class LevelWatch:
    """Hysteresis between a normal and a raised state, on consecutive frames.

    A frame with ``value >= high`` counts towards raising (``raise_frames`` in a row), one with
    ``value < low`` towards clearing (``clear_frames`` in a row); a value in between keeps the
    state and restarts both counts.

    Args:
        names: the event types for ``(raised, cleared)``.
        high, low: the thresholds (``low <= high``).
        raise_frames, clear_frames: consecutive frames needed for each change.
    """

    def __init__(self, names: tuple[str, str], high: float, low: float, raise_frames: int,
                 clear_frames: int) -> None:
        if low > high:
            raise ConfigError(f'LevelWatch: low ({low}) must be <= high ({high})')
        self.names = names
        self.high, self.low = high, low
        self.raise_frames, self.clear_frames = raise_frames, clear_frames
        self.active = False
        self._count = 0
        self._since: FrameMeta | None = None
        self._peak = 0.0

    def update(self, meta: FrameMeta, value: float, **data: Any) -> Event | None:
        """Feed one frame's value; the event when the state changes (with ``data``, the value,
        and on clearing the peak and how long it lasted)."""
        if value != value:  # NaN tells nothing either way
            return None
        if self.active:
            self._peak = max(self._peak, value)
        wanted = value < self.low if self.active else value >= self.high
        if not wanted:
            self._count = 0
            return None
        self._count += 1
        if self._count < (self.clear_frames if self.active else self.raise_frames):
            return None
        self._count = 0
        self.active = not self.active
        data = {**data, 'value': round(float(value), 4)}
        if self.active:
            self._since, self._peak = meta, value
            return Event(self.names[0], meta, data)
        since = self._since or meta
        data.update(peak=round(float(self._peak), 4), since=_stamp(since),
                    duration_s=round((meta.stamp_ns - since.stamp_ns) / 1e9, 3))
        return Event(self.names[1], meta, data)

    def reset(self) -> None:
        self.active = False
        self._count = 0


class CameraWatch:
    """``camera_lost`` / ``camera_back`` from frame arrivals and the camera node's status.

    Times are the caller's clock in nanoseconds (the node clock), so a stall is measured the
    same way in real and simulated time.
    """

    def __init__(self, timeout_s: float, now_ns: int) -> None:
        self.timeout_ns = int(round(timeout_s * 1e9))
        self.lost = False
        self._last_ns = now_ns
        self._last_meta: FrameMeta | None = None

    def frame(self, meta: FrameMeta, now_ns: int) -> Event | None:
        """A frame arrived: ``camera_back`` if the camera was lost."""
        self._last_ns = now_ns
        self._last_meta = meta
        if not self.lost:
            return None
        self.lost = False
        return Event('camera_back', meta, {})

    def check(self, now_ns: int) -> Event | None:
        """Call periodically: ``camera_lost`` once frames have stopped for the timeout."""
        if self.lost or self.timeout_ns <= 0 or now_ns - self._last_ns < self.timeout_ns:
            return None
        quiet = (now_ns - self._last_ns) / 1e9
        what = 'since start' if self._last_meta is None else 'since the last one'
        return self._lose(now_ns, f'no frame for {quiet:.1f} s {what}')

    def camera_error(self, message: str, now_ns: int) -> Event | None:
        """The camera node reported an error (a device unplugged, a stream down)."""
        if self.lost:
            return None
        return self._lose(now_ns, message or 'camera node error')

    def _lose(self, now_ns: int, reason: str) -> Event:
        self.lost = True
        frame_id = self._last_meta.frame_id if self._last_meta is not None else ''
        data: dict[str, Any] = {'reason': reason}
        if self._last_meta is not None:
            data['last_frame'] = _stamp(self._last_meta)
        return Event('camera_lost', FrameMeta(max(0, now_ns), frame_id), data)


class RateLimiter:
    """At most ``max_hz`` items per second; an item offered too early is held and replaced by
    any newer one (newest wins), then released by :meth:`due` when its time comes.

    ``max_hz <= 0`` means no limit. Times are monotonic seconds.
    """

    def __init__(self, max_hz: float) -> None:
        self.period = 1.0 / max_hz if max_hz > 0 else 0.0
        self._last = float('-inf')
        self._held: Any = None
        self.replaced = 0

    def offer(self, item: Any, now: float) -> Any:
        """The item to send now, or None when it is held for later."""
        if now - self._last >= self.period:
            if self._held is not None:
                self.replaced += 1
            self._held = None
            self._last = now
            return item
        if self._held is not None:
            self.replaced += 1
        self._held = item
        return None

    def due(self, now: float) -> Any:
        """The held item once its time has come, else None."""
        if self._held is None or now - self._last < self.period:
            return None
        item, self._held = self._held, None
        self._last = now
        return item

    def wait(self, now: float) -> float | None:
        """Seconds until the held item is due (None when nothing is held)."""
        if self._held is None:
            return None
        return max(0.0, self._last + self.period - now)
