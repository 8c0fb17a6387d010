"""One detector for several cameras: the newest frame of each camera, inferred as one batch.

:class:`NewestFrames` keeps one slot per camera: a new frame replaces the camera's waiting one
(counted per camera, never silently), and :meth:`NewestFrames.take` hands over the waiting
frames of every camera at once, the camera that waited longest first. :class:`CameraBatcher`
runs a thread that takes them and calls :meth:`~.detector.Detector.detect_batch` (one inference
call for all of them where the model and runtime take a batch, see
:meth:`~.backends.Backend.prepare_batch`), then ``on_result(camera, payload, result)`` per
frame, in the order taken. A camera is therefore never more than one batch behind, and a slow
camera does not hold the others: a batch is whatever is waiting when the detector is free.

:class:`SharedDetector` puts a batcher behind a blocking call for consumers that each have one
frame at a time (the inference nodes of several cameras in one process, see inference_node's
``batch_group``): :meth:`SharedDetector.infer` waits for its frame's result, so frames that
arrive together from different cameras are inferred together, and a consumer's own frames are
never replaced. :func:`join_batch_group` / :func:`leave_batch_group` share one per group name.
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

__all__ = ['BatchStats', 'CameraBatcher', 'NewestFrames', 'SharedDetector',
           'join_batch_group', 'leave_batch_group']

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

    def take_all(self) -> list[tuple[K, P]]:
        """Every waiting item, whatever ``max_batch`` says."""
        out = list(self._slots.items())
        self._slots.clear()
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
    """Threads that serve several cameras with one detector each (see the module docstring).

    Args:
        detector: a :class:`~.detector.Detector`, or a list of them: one thread per detector
            (only that thread uses it while running), each taking whatever is waiting when
            its detector is free (e.g. two single-threaded detectors on two cores).
        on_result: ``on_result(camera, payload, DetectionResult)`` per frame, from the
            batcher's thread, in the order the frames were taken.
        image_of: the image of a payload (default: the payload is the image).
        max_batch: most frames per inference call (0 = one per camera).
        on_error: ``on_error(exc)`` for a batch that raised (its frames are counted failed).
        name: the thread's name.
        on_failed: ``on_failed(camera, payload, exc)`` per frame of a batch that raised.
    """

    def __init__(self, detector: Any, on_result: Callable[[K, P, Any], None],
                 image_of: Callable[[P], np.ndarray] | None = None, max_batch: int = 0,
                 on_error: Callable[[BaseException], None] | None = None,
                 name: str = 'camera-batcher',
                 on_failed: Callable[[K, P, BaseException], None] | None = None) -> None:
        detectors = list(detector) if isinstance(detector, (list, tuple)) else [detector]
        if not detectors:
            raise ConfigError('a camera batcher needs at least one detector')
        self.detector = detectors[0]
        self._on_failed = on_failed
        self._on_result = on_result
        self._image_of = image_of or (lambda payload: payload)
        self._on_error = on_error
        self._frames: NewestFrames[K, P] = NewestFrames(max_batch)
        self._cond = threading.Condition()
        self._closed = False
        self._busy = 0
        self.stats = BatchStats(replaced=self._frames.replaced)
        self.last_error = ''
        self._threads = [
            threading.Thread(target=self._loop, args=(d,), daemon=True,
                             name=name if len(detectors) == 1 else f'{name}-{i}')
            for i, d in enumerate(detectors)]
        for thread in self._threads:
            thread.start()

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

    def close(self) -> list[tuple[K, P]]:
        """Stop the thread; safe to call twice. Returns the frames that were still waiting
        (dropped: the caller counts or answers them)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            if threading.current_thread() is not thread:
                thread.join(timeout=10.0)
        with self._cond:
            return self._frames.take_all()

    def __enter__(self) -> CameraBatcher[K, P]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self, detector: Any) -> None:
        while True:
            with self._cond:
                while not self._closed and not len(self._frames):
                    self._cond.wait(0.1)
                if self._closed:
                    return
                batch = self._frames.take()
                self._busy += 1
            try:
                results = detector.detect_batch([self._image_of(p) for _, p in batch])
            except Exception as exc:  # counted and reported; the thread goes on
                self.last_error = f'{type(exc).__name__}: {exc}'
                with self._cond:
                    self.stats.failed += len(batch)
                if self._on_error is not None:
                    self._on_error(exc)
                if self._on_failed is not None:
                    for camera, payload in batch:
                        self._on_failed(camera, payload, exc)
                results = None
            if results is not None:
                with self._cond:
                    self.stats.frames += len(batch)
                    self.stats.batches += 1
                for (camera, payload), result in zip(batch, results, strict=True):
                    try:
                        self._on_result(camera, payload, result)
                    except Exception as exc:  # the consumer's error must not stop the others
                        self.last_error = f'on_result: {type(exc).__name__}: {exc}'
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()


class _Request:
    """One frame waiting in a :class:`SharedDetector`."""

    __slots__ = ('image', 'done', 'result', 'error')

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class _Locked:
    """The detector as the batcher's thread sees it: each batch under the shared lock, so
    option changes land between batches."""

    def __init__(self, detector: Any, lock: threading.Lock) -> None:
        self._detector, self._lock = detector, lock

    def detect_batch(self, images: list[np.ndarray]) -> list[Any]:
        with self._lock:
            return self._detector.detect_batch(images)


class SharedDetector:
    """One detector (or a few, one thread each) for several consumers of one process, their
    frames batched.

    Args:
        detector: a :class:`~.detector.Detector` or a list of them (see
            :class:`CameraBatcher`); the shared detector owns and closes them.
        key: what the consumers must agree on (e.g. the detector settings), compared by
            :func:`join_batch_group`.
        name: the batcher threads' name.

    Attributes:
        detector: the first detector (labels, options).
        workers: ``(detector, lock)`` per detector; the lock is held while it runs a batch
            (change a detector's options only under its lock).
        users: consumers that joined and have not left (see :func:`join_batch_group`).
    """

    def __init__(self, detector: Any, key: Hashable = None, name: str = 'shared-detector'
                 ) -> None:
        detectors = list(detector) if isinstance(detector, (list, tuple)) else [detector]
        self.detector = detectors[0]
        self.workers = [(d, threading.Lock()) for d in detectors]
        self.key = key
        self.users = 0
        self._batcher: CameraBatcher[Hashable, _Request] = CameraBatcher(
            [_Locked(d, lock) for d, lock in self.workers], self._answer,
            image_of=lambda r: r.image, on_failed=self._fail, name=name)

    @property
    def stats(self) -> BatchStats:
        """The batcher's counters (frames, batches, mean batch, failed)."""
        return self._batcher.stats

    def infer(self, consumer: Hashable, image: np.ndarray, timeout: float = 60.0) -> Any:
        """Detect in ``image`` together with the frames other consumers have waiting, and
        return its :class:`~.detector.DetectionResult`.

        One consumer must not call this from two threads at once (its second frame would
        replace the first, which then fails).

        Raises:
            EdgeVisionError: the batch failed (the detector's error), the shared detector was
                closed, or no result came within ``timeout`` seconds.
        """
        request = _Request(image)
        self._batcher.submit(consumer, request)
        if not request.done.wait(timeout):
            raise EdgeVisionError(f'the shared detector gave no result within {timeout:.0f} s '
                                  f'(last error: {self._batcher.last_error or "none"})')
        if request.error is not None:
            if isinstance(request.error, EdgeVisionError):
                raise request.error
            raise EdgeVisionError(f'shared detector: {type(request.error).__name__}: '
                                  f'{request.error}') from request.error
        return request.result

    def close(self) -> None:
        """Stop the batcher (frames still waiting fail with an error) and close the
        detectors."""
        for _, request in self._batcher.close():
            self._fail(None, request, EdgeVisionError('the shared detector was closed'))
        for detector, lock in self.workers:
            with lock:
                detector.close()

    @staticmethod
    def _answer(consumer: Hashable, request: _Request, result: Any) -> None:
        request.result = result
        request.done.set()

    @staticmethod
    def _fail(consumer: Hashable, request: _Request, exc: BaseException) -> None:
        request.error = exc
        request.done.set()


_GROUPS: dict[str, SharedDetector] = {}
_GROUPS_LOCK = threading.Lock()


def join_batch_group(group: str, key: Hashable, create: Callable[[], Any],
                     describe: Callable[[Hashable], str] = str) -> SharedDetector:
    """The shared detector of ``group`` in this process, made with ``create()`` by the first
    consumer to join (which pays for loading the model); every join must be matched by a
    :func:`leave_batch_group`.

    Raises:
        ConfigError: the group already runs another ``key`` (both named via ``describe``).
        Whatever ``create`` raises (the group is then not made).
    """
    if not isinstance(group, str) or not group.strip():
        raise ConfigError(f'a batch group needs a non-empty name, got {group!r}')
    with _GROUPS_LOCK:
        shared = _GROUPS.get(group)
        if shared is None:
            shared = SharedDetector(create(), key, name=f'batch-{group}')
            _GROUPS[group] = shared
        elif shared.key != key:
            raise ConfigError(
                f'batch group {group!r} already runs {describe(shared.key)}; this node asks for '
                f'{describe(key)}: give every node of the group the same detector settings, or '
                f'another batch_group')
        shared.users += 1
        return shared


def leave_batch_group(shared: SharedDetector) -> None:
    """Leave a group joined with :func:`join_batch_group`; the last to leave closes it."""
    with _GROUPS_LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        for name, other in list(_GROUPS.items()):
            if other is shared:
                del _GROUPS[name]
    shared.close()
