"""Small timing helpers shared by the nodes: measured rates, pacing and stage timers.

All times are monotonic seconds (``time.monotonic``), never wall-clock: they measure durations,
not stamps.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

__all__ = ['Pacer', 'RateMeter', 'StageTimer']


class RateMeter:
    """Events per second over a sliding time window (e.g. published frames per second)."""

    def __init__(self, window_s: float = 2.0) -> None:
        if window_s <= 0:
            raise ValueError(f'window_s must be > 0, got {window_s}')
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()
        self.count = 0

    def tick(self, now: float | None = None) -> None:
        """Record one event (at ``now``, default: the monotonic clock)."""
        now = time.monotonic() if now is None else now
        self._times.append(now)
        self.count += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        """Events per second in the window (0 with fewer than two events)."""
        now = time.monotonic() if now is None else now
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class Pacer:
    """Keeps a loop at a target rate without drift.

    ``next_delay()`` returns how long to wait before the next tick and advances the schedule;
    the caller sleeps (e.g. ``stop_event.wait(delay)``, so it stays responsive). ``rate_hz <= 0``
    means "as fast as possible" (delay 0). When the loop falls behind by more than one period
    the schedule restarts from now instead of bursting to catch up.
    """

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._next: float | None = None

    def next_delay(self, now: float | None = None) -> float:
        if self.period <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        if self._next is None or now - self._next > self.period:
            self._next = now
        delay = max(0.0, self._next - now)
        self._next += self.period
        return delay

    def reset(self) -> None:
        self._next = None


class StageTimer:
    """Per-stage durations in milliseconds with running percentiles.

    Usage::

        timer = StageTimer()
        with timer.stage('infer'):
            run_model()
        timer.summary()  # {'infer': {'last': 4.1, 'p50': 4.0, 'p95': 5.2, 'n': 100}}
    """

    def __init__(self, history: int = 300) -> None:
        self._samples: dict[str, collections.deque[float]] = {}
        self._history = history

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - start) * 1000.0)

    def add(self, name: str, ms: float) -> None:
        self._samples.setdefault(name, collections.deque(maxlen=self._history)).append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, values in self._samples.items():
            arr = np.fromiter(values, float)
            out[name] = {'last': float(arr[-1]), 'p50': float(np.percentile(arr, 50)),
                         'p95': float(np.percentile(arr, 95)), 'n': float(arr.size)}
        return out

    def percentile_values(self) -> dict[str, float]:
        """``<stage>_ms_p50`` and ``<stage>_ms_p95`` of every stage (diagnostics key-values)."""
        return {f'{name}_ms_{p}': stats[p] for name, stats in self.summary().items()
                for p in ('p50', 'p95')}
