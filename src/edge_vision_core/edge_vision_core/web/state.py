"""What the live view shows besides the stream, kept as plain data (no ROS).

``web_node`` feeds :class:`LiveState` from its inputs (tracks, the ``/diagnostics`` statuses,
quality reports, anomaly results) and the server's ``/api/state`` returns :meth:`snapshot`.
Every method is thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..types import Detections, class_name

__all__ = ['LiveState', 'StageStatus']

LEVEL_NAMES = ('ok', 'warn', 'error', 'stale')
#: A status not refreshed for this long is shown as stale.
STALE_S = 5.0


@dataclass(frozen=True)
class StageStatus:
    """One node's ``/diagnostics`` status: its name, level (0-3), message and key-values."""

    name: str
    level: int
    message: str
    values: Mapping[str, str]


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


class LiveState:
    """The live view's state (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracks: list[dict[str, object]] = []
        self._tracks_stamp = 0
        self._stages: dict[str, tuple[float, StageStatus]] = {}
        self._quality: dict[str, str] = {}
        self._quality_level = 0
        self._anomaly: dict[str, object] | None = None

    def set_tracks(self, stamp_ns: int, dets: Detections, labels: Sequence[str] | None
                   ) -> None:
        """The newest tracks (or detections) and their stamp."""
        rows = []
        for i in range(len(dets)):
            box = [float(v) for v in dets.boxes[i]]
            if not all(math.isfinite(v) for v in box):
                continue  # a NaN box cannot be shown (the tracker counts those)
            score = float(dets.scores[i])
            rows.append({
                'id': int(dets.track_ids[i]) if dets.track_ids is not None else None,
                'class': class_name(int(dets.class_ids[i]), labels),
                'score': score if math.isfinite(score) else None, 'box': box})
        with self._lock:
            self._tracks, self._tracks_stamp = rows, int(stamp_ns)

    def update_stages(self, statuses: Sequence[StageStatus], now: float | None = None) -> None:
        """Statuses from one ``/diagnostics`` message (each replaces its node's last one)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for status in statuses:
                self._stages[status.name] = (now, status)

    def set_quality(self, level: int, values: Mapping[str, str]) -> None:
        with self._lock:
            self._quality, self._quality_level = dict(values), int(level)

    def set_anomaly(self, score: float, anomalous: bool, stamp_ns: int, heatmap: bool) -> None:
        with self._lock:
            self._anomaly = {'score': score if math.isfinite(score) else None,
                             'state': 'anomaly' if anomalous else 'normal',
                             'stamp_ns': int(stamp_ns), 'heatmap': heatmap}

    def snapshot(self, now: float | None = None) -> dict[str, object]:
        """The state as JSON-able data: ``tracks``, ``stages`` (fps, summed p50 step times as
        ``latency_ms``, level and message per node), ``quality``, ``anomaly``, ``mqtt`` (the
        MQTT bridge's link state, None without a bridge) and the overall ``level_name``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stages = []
            mqtt = None
            worst = 0
            for name, (seen, status) in sorted(self._stages.items()):
                level = status.level if now - seen < STALE_S else 3
                values = status.values
                latency = [v for k, v in ((k, _number(v)) for k, v in values.items())
                           if k.endswith('_ms_p50') and v is not None]
                stages.append({'name': name, 'level': level,
                               'level_name': LEVEL_NAMES[min(level, 3)],
                               'message': status.message, 'fps': _number(values.get('fps')),
                               'latency_ms': sum(latency) if latency else None})
                worst = max(worst, level)
                if name.endswith('mqtt_bridge_node'):
                    mqtt = {'link': values.get('link', ''),
                            'connected': values.get('connected', '') == 'True',
                            'broker': values.get('broker', ''), 'level': level}
            return {
                'tracks': list(self._tracks), 'tracks_stamp_ns': self._tracks_stamp,
                'stages': stages, 'quality': dict(self._quality),
                'quality_level': self._quality_level,
                'anomaly': dict(self._anomaly) if self._anomaly else None, 'mqtt': mqtt,
                'level_name': LEVEL_NAMES[min(worst, 3)],
            }
