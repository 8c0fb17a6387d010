"""One detector for several cameras: the newest frame of each camera, inferred as one batch.

:class:`NewestFrames` keeps one slot per camera: a new frame replaces the camera's waiting one
(counted per camera, never silently), and :meth:`NewestFrames.take` hands over the waiting
frames of every camera at once, the camera that waited longest first. :class:`CameraBatcher`
runs a thread that takes them and calls :meth:`~.detector.Detector.detect_batch` (one inference
call for all of them where the model and runtime take a batch, see
:meth:`~.backends.Backend.prepare_batch`), then ``on_result(camera, payload, result)`` per
frame, in the order taken. A camera is therefore never more than one batch behind, and a slow
camera does not hold the others: a batch is whatever is waiting when the detector is free.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from ..errors import ConfigError, EdgeVisionError

__all__ = ['BatchStats', 'CameraBatcher', 'NewestFrames']

K = TypeVar('K', bound=Hashable)
P = TypeVar('P')


class NewestFrames(Generic[K, P]):
    """One waiting item per key (camera); see the module docstring.

    Args:
        max_batch: most items :meth:`take` returns at once (0 = all waiting).
    """

    def __init__(self, max_batch: int = 0) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 0:
            raise ConfigError(f'max_batch must be an integer >= 0, got {max_batch!r}')
        self.max_batch = max_batch
        self._slots: collections.OrderedDict[K, P] = collections.OrderedDict()
        self.replaced: dict[K, int] = {}

    def put(self, key: K, item: P) -> P | None:
        """Queue ``item`` for ``key``; returns the item it replaced (counted), or None. A
        camera whose frame is replaced keeps its place in the line (it has waited since its
        first frame)."""
        old = self._slots.get(key)
        if old is not None:
            self.replaced[key] = self.replaced.get(key, 0) + 1
        self._slots[key] = item
        return old

    def take(self) -> list[tuple[K, P]]:
        """The waiting items, longest-waiting camera first (at most ``max_batch``)."""
        out = []
        while self._slots and (not self.max_batch or len(out) < self.max_batch):
            out.append(self._slots.popitem(last=False))
        return out

    def __len__(self) -> int:
        return len(self._slots)


@dataclass
class BatchStats:
    """Counters of a :class:`CameraBatcher`.

    Attributes:
        frames: frames inferred; batches: inference calls; replaced: frames replaced per camera
        before the detector took them; failed: frames of batches that raised.
    """

    frames: int = 0
    batches: int = 0
    failed: int = 0
    replaced: dict[Any, int] = field(default_factory=dict)

    @property
    def mean_batch(self) -> float:
        return self.frames / self.batches if self.batches else 0.0


class CameraBatcher(Generic[K, P]):
    """A thread that serves several cameras with one detector (see the module docstring).

    Args:
        detector: a :class:`~.detector.Detector` (only this thread uses it while running).
        on_result: ``on_result(camera, payload, DetectionResult)`` per frame, from the
            batcher's thread, in the order the frames were taken.
        image_of: the image of a payload (default: the payload is the image).
        max_batch: most frames per inference call (0 = one per camera).
        on_error: ``on_error(exc)`` for a batch that raised (its frames are counted failed).
        name: the thread's name.
    """

    def __init__(self, detector: Any, on_result: Callable[[K, P, Any], None],
                 image_of: Callable[[P], np.ndarray] | None = None, max_batch: int = 0,
                 on_error: Callable[[BaseException], None] | None = None,
                 name: str = 'camera-batcher') -> None:
        self.detector = detector
        self._on_result = on_result
        self._image_of = image_of or (lambda payload: payload)
        self._on_error = on_error
        self._frames: NewestFrames[K, P] = NewestFrames(max_batch)
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self.stats = BatchStats(replaced=self._frames.replaced)
        self.last_error = ''
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self._thread.start()

    def submit(self, camera: K, payload: P) -> None:
        """Queue the newest frame of ``camera`` (replacing its waiting one, counted).

        Raises:
            EdgeVisionError: the batcher was closed.
        """
        with self._cond:
            if self._closed:
                raise EdgeVisionError('the camera batcher was closed')
            self._frames.put(camera, payload)
            self._cond.notify_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until nothing waits or runs (True), or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._frames) or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        """Stop the thread (waiting frames are dropped); safe to call twice."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10.0)

    def __enter__(self) -> CameraBatcher[K, P]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not len(self._frames):
                    self._cond.wait(0.1)
                if self._closed:
                    return
                batch = self._frames.take()
                self._busy = True
            try:
                results = self.detector.detect_batch([self._image_of(p) for _, p in batch])
            except Exception as exc:  # counted and reported; the thread goes on
                self.last_error = f'{type(exc).__name__}: {exc}'
                self.stats.failed += len(batch)
                if self._on_error is not None:
                    self._on_error(exc)
                results = None
            if results is not None:
                self.stats.frames += len(batch)
                self.stats.batches += 1
                for (camera, payload), result in zip(batch, results, strict=True):
                    try:
                        self._on_result(camera, payload, result)
                    except Exception as exc:  # the consumer's error must not stop the others
                        self.last_error = f'on_result: {type(exc).__name__}: {exc}'
            with self._cond:
                self._busy = False
                self._cond.notify_all()
