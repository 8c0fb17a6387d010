"""An inference pool: N workers over one or several backends/devices, results in frame order.

One inference stage can run several :class:`~.detector.Detector` instances at once: N CPU
workers with fewer threads each, or different processors side by side (OpenVINO CPU + GPU +
NPU, ONNX Runtime CPU + TensorRT...). Frames are numbered as they are submitted; each worker
takes the next frame when the scheduler says it is the worker that will finish it first, and
the results leave the pool **in frame order**.

The parts:

- :class:`WorkerSpec` and :func:`parse_pool`: what each worker runs (``backend:device:threads``;
  ``"openvino:CPU:1, openvino:GPU"``);
- :class:`OrderedScheduler`: the bookkeeping, pure and clock-driven (unit-tested with a fake
  clock). **Load balancing by measured latency**: each worker's latency is an exponential moving
  average of its own runs; a free worker takes the oldest waiting frame only if, planning the
  waiting frames onto the workers by earliest expected finish (list scheduling), that frame
  lands on it. A slow device thus takes frames only when the fast ones are busy for longer than
  it needs, and a new worker is tried once (its latency starts at 0). **Order**: a finished
  result waits for the frames before it, at most ``max_reorder_s``; then the missing frames are
  skipped and their results, when they come, are dropped (``late``). **Drops are counted**: a
  waiting frame replaced by a newer one when the queue is full (``replaced``; newest-frame
  policy, or the caller blocks instead: ``block=True``), late results, and failed runs
  (``failed``, the error kept).
- :class:`InferencePool`: the threads. One thread per worker (the runtimes release the GIL
  while they compute, so N workers use N cores) and one delivery thread that calls
  ``on_result(payload, result)`` in frame order, so the consumer sees one caller at a time.

Ordering guarantee: ``on_result`` is called with strictly increasing sequence numbers; every
submitted frame is either delivered once or counted once as replaced, late or failed.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..config import check_config, param
from ..errors import ConfigError, EdgeVisionError

__all__ = ['InferencePool', 'OrderedScheduler', 'PoolConfig', 'PoolStats', 'WorkerSpec',
           'create_detectors', 'parse_pool', 'pool_throughput']

P = TypeVar('P')

#: weight of the newest run in a worker's latency average.
LATENCY_EWMA = 0.25


@dataclass(frozen=True)
class WorkerSpec:
    """What one pool worker runs: a backend, its device and its CPU threads (and, from
    autotuning, the model file variant and precision hint of that device).

    Attributes:
        backend: a registered backend (onnxruntime, openvino, litert, tensorrt).
        device: the backend's device (``auto`` = its best).
        threads: CPU threads of the runtime (0 = the runtime decides).
        model: the model (name or manifest) of this worker; '' = the stage's model.
        precision: precision hint (``auto``, ``fp32``, ``fp16``, ``bf16``); '' = the stage's.
    """

    backend: str
    device: str = 'auto'
    threads: int = 0
    model: str = ''
    precision: str = ''

    def __post_init__(self) -> None:
        if not self.backend.strip():
            raise ConfigError('a pool worker needs a backend (backend[:device[:threads]])')
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or \
                not 0 <= self.threads <= 256:
            raise ConfigError(f'pool worker threads must be an integer in 0..256, got '
                              f'{self.threads!r}')

    def __str__(self) -> str:
        text = f'{self.backend}:{self.device}:{self.threads}'
        if self.precision and self.precision != 'auto':
            text += f' {self.precision}'
        return text + (f' ({self.model})' if self.model else '')

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def create_detectors(options: Any, workers: Sequence[WorkerSpec]) -> list[Any]:
    """One :class:`~.detector.Detector` per worker: ``options`` (a DetectorOptions: thresholds,
    NMS, checksum...) with each worker's backend, device, threads, model and precision.

    Raises:
        EdgeVisionError: the first worker that cannot be created (the ones made before it are
            closed), with the worker named.
    """
    from .detector import Detector

    made: list[Any] = []
    try:
        for index, spec in enumerate(workers):
            changes: dict[str, Any] = {'backend': spec.backend, 'device': spec.device,
                                       'threads': spec.threads}
            if spec.model:
                changes['model'] = spec.model
            if spec.precision:
                changes['precision'] = spec.precision
            try:
                made.append(Detector.create(dataclasses.replace(options, **changes)))
            except EdgeVisionError as exc:
                raise type(exc)(f'pool worker {index} ({spec}): {exc}') from exc
    except BaseException:
        for detector in made:
            detector.close()
        raise
    return made


def parse_pool(text: str) -> tuple[WorkerSpec, ...]:
    """Parse ``"backend[:device[:threads]], ..."`` into worker specs (empty text: none).

    Examples: ``"onnxruntime:cpu:1, onnxruntime:cpu:1"`` (two CPU workers of one thread),
    ``"openvino:CPU:2, openvino:GPU"`` (CPU and integrated GPU together).

    Raises:
        ConfigError: a malformed entry, naming it and the expected form.
    """
    specs = []
    for entry in (e.strip() for e in text.split(',')):
        if not entry:
            continue
        parts = [p.strip() for p in entry.split(':')]
        if len(parts) > 3 or not parts[0]:
            raise ConfigError(f'pool entry {entry!r}: expecting backend[:device[:threads]], '
                              f'e.g. onnxruntime:cpu:1 or openvino:GPU')
        threads = 0
        if len(parts) == 3:
            try:
                threads = int(parts[2])
            except ValueError:
                raise ConfigError(f'pool entry {entry!r}: threads must be an integer, got '
                                  f'{parts[2]!r}') from None
        specs.append(WorkerSpec(parts[0].lower(), parts[1] if len(parts) > 1 and parts[1]
                                else 'auto', threads))
    return tuple(specs)


@dataclass(frozen=True)
class PoolConfig:
    """How the pool queues, orders and drops."""

    queue_size: int = field(default=1, metadata=param(
        'Frames that may wait for a free worker; when full, the oldest waiting frame is '
        'replaced (newest-frame policy, counted) unless block is set.', min=1, max=1000))
    block: bool = field(default=False, metadata=param(
        'When the queue is full, submit() waits for room instead of replacing a frame '
        '(lossless: every frame is inferred).'))
    max_reorder_ms: float = field(default=250.0, metadata=param(
        'Longest a finished result waits for the frames before it; after that they are '
        'skipped and their late results dropped (counted).', min=0.0, max=60000.0,
        unit='ms'))

    def __post_init__(self) -> None:
        check_config(self)


@dataclass
class PoolStats:
    """Counters of a pool (all since it was created).

    Attributes:
        submitted: frames given to :meth:`InferencePool.submit`.
        delivered: results handed to ``on_result``, in order.
        replaced: frames replaced in the queue by newer ones before a worker took them.
        late: results that finished after their slot had been skipped (dropped).
        failed: runs that raised (the frame is skipped).
        runs: runs per worker.
        latency_ms: each worker's latency average (milliseconds).
        reorder_wait_ms_max: the longest a result waited for earlier frames.
    """

    submitted: int = 0
    delivered: int = 0
    replaced: int = 0
    late: int = 0
    failed: int = 0
    runs: list[int] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    reorder_wait_ms_max: float = 0.0

    @property
    def dropped(self) -> int:
        """Frames submitted but never delivered (replaced + late + failed)."""
        return self.replaced + self.late + self.failed


class OrderedScheduler:
    """Frame numbering, worker choice, in-order release and drop counting (no threads, no
    clock of its own: every call takes ``now`` in seconds; see the module docstring).

    Args:
        workers: number of workers (>= 1).
        config: queue size, blocking, reordering bound.
        prior_latency_s: optional expected latency per worker (e.g. from autotuning); default 0
            (unknown: every worker is tried).
    """

    def __init__(self, workers: int, config: PoolConfig | None = None,
                 prior_latency_s: Sequence[float] | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f'the pool needs at least one worker, got {workers!r}')
        self.config = config or PoolConfig()
        self.workers = workers
        prior = list(prior_latency_s or [0.0] * workers)
        if len(prior) != workers:
            raise ConfigError(f'prior_latency_s has {len(prior)} values for {workers} workers')
        self.latency = [max(0.0, float(v)) for v in prior]
        self.busy: list[tuple[int, float] | None] = [None] * workers  # (seq, start)
        self.waiting: collections.deque[int] = collections.deque()
        self.finished: dict[int, tuple[float, bool]] = {}  # seq -> (finish time, ok)
        self.next_seq = 0
        self.next_release = 0
        self.skipped: set[int] = set()  # released past while running: their result is late
        self._dropped: list[int] = []  # frames dropped since the last take_dropped()
        self.stats = PoolStats(runs=[0] * workers, latency_ms=[v * 1e3 for v in self.latency])

    # -- submission --------------------------------------------------------------------------

    @property
    def queue_full(self) -> bool:
        return len(self.waiting) >= self.config.queue_size

    def submit(self) -> tuple[int, int | None]:
        """Number a new frame and queue it.

        Returns:
            ``(seq, replaced)``: the frame's number and the number of the waiting frame it
            replaced (queue full, newest-frame policy), or None. With ``block`` the caller
            must wait while :attr:`queue_full` instead.
        """
        replaced = None
        if self.queue_full:
            replaced = self.waiting.popleft()
            self.skipped.add(replaced)
            self._dropped.append(replaced)
            self.stats.replaced += 1
        seq = self.next_seq
        self.next_seq += 1
        self.waiting.append(seq)
        self.stats.submitted += 1
        return seq, replaced

    # -- dispatch ----------------------------------------------------------------------------

    def _free_at(self, worker: int, now: float) -> float:
        job = self.busy[worker]
        if job is None:
            return now
        if self.latency[worker] <= 0.0:  # busy for an unknown time: never plan on it
            return float('inf')
        return max(now, job[1] + self.latency[worker])

    def assign(self, worker: int, now: float) -> int | None:
        """The frame ``worker`` (free) should run now, or None to stay idle.

        The waiting frames are planned onto the workers in order, each to the worker that
        would finish it first (list scheduling by earliest expected finish, ties to the lower
        index); the asking worker takes the first frame the plan gives it, or none.
        """
        if self.busy[worker] is not None:
            raise ConfigError(f'worker {worker} asked for a frame while running one')
        if not self.waiting:
            return None
        free = [self._free_at(w, now) for w in range(self.workers)]
        for seq in self.waiting:
            best = min(range(self.workers), key=lambda w: (free[w] + self.latency[w], w))
            if best == worker:
                self.waiting.remove(seq)
                self.busy[worker] = (seq, now)
                return seq
            free[best] += self.latency[best]
        return None

    def finish(self, worker: int, seq: int, now: float, ok: bool = True) -> None:
        """``worker`` finished ``seq`` at ``now`` (``ok=False``: the run raised)."""
        job = self.busy[worker]
        if job is None or job[0] != seq:
            raise ConfigError(f'worker {worker} finished frame {seq} it was not running')
        self.busy[worker] = None
        took = max(0.0, now - job[1])
        self.stats.runs[worker] += 1
        old = self.latency[worker]
        self.latency[worker] = took if self.stats.runs[worker] == 1 and old == 0.0 else \
            (1.0 - LATENCY_EWMA) * old + LATENCY_EWMA * took
        self.stats.latency_ms[worker] = self.latency[worker] * 1e3
        if seq in self.skipped:
            self.skipped.discard(seq)
            if ok:
                self.stats.late += 1
            else:
                self.stats.failed += 1
            self._dropped.append(seq)
            return
        if not ok:
            self.stats.failed += 1
            self._dropped.append(seq)
        self.finished[seq] = (now, ok)

    # -- release -----------------------------------------------------------------------------

    def _running(self, seq: int) -> bool:
        return any(job is not None and job[0] == seq for job in self.busy)

    def release(self, now: float) -> list[int]:
        """Sequence numbers whose results go out now, in order (each exactly once).

        A finished frame goes out when every frame before it went out, was dropped, or has
        kept it waiting for ``max_reorder_s``; the frames skipped that way are dropped when
        they finish (``late``).
        """
        out: list[int] = []
        bound = self.config.max_reorder_ms / 1e3
        while self.next_release < self.next_seq:
            seq = self.next_release
            if seq in self.finished:
                done, ok = self.finished.pop(seq)
                if ok:
                    out.append(seq)
                    self.stats.reorder_wait_ms_max = max(self.stats.reorder_wait_ms_max,
                                                         (now - done) * 1e3)
                self.next_release += 1
                continue
            if seq in self.skipped and not self._running(seq):
                self.skipped.discard(seq)  # replaced in the queue: already counted
                self.next_release += 1
                continue
            # seq is waiting or running: skip it only when a later result has waited too long
            later = [t for s, (t, ok) in self.finished.items() if s > seq and ok]
            if later and now - min(later) >= bound:
                if seq in self.waiting:  # never started: it would only be late
                    self.waiting.remove(seq)
                    self.stats.replaced += 1
                    self._dropped.append(seq)
                else:
                    self.skipped.add(seq)
                self.next_release += 1
                continue
            break
        self.stats.delivered += len(out)
        return out

    def take_dropped(self) -> list[int]:
        """The frames dropped (replaced, late, failed) since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def next_deadline(self) -> float | None:
        """When :meth:`release` may skip a frame (earliest finished-but-held result + bound),
        or None when nothing is held."""
        held = [t for s, (t, ok) in self.finished.items() if s > self.next_release and ok]
        if not held:
            return None
        return min(held) + self.config.max_reorder_ms / 1e3

    @property
    def idle(self) -> bool:
        """Nothing waiting, running or held."""
        return not self.waiting and not self.finished and all(b is None for b in self.busy)


class InferencePool(Generic[P]):
    """Runs ``infer(worker_index, payload)`` on N worker threads, results in frame order.

    Args:
        workers: one callable per worker, ``run(payload) -> result`` (e.g. a Detector's
            ``detect`` applied to the payload's image). Each is called from its own thread
            only, so it may hold per-worker state (a Detector and its buffers).
        on_result: ``on_result(payload, result)``, called from the pool's delivery thread in
            frame order, one call at a time.
        config: queueing, blocking and reordering settings.
        on_error: ``on_error(payload, exc)`` for a run that raised (from the worker's thread);
            default: the error is kept in :attr:`last_error` and counted.
        prior_latency_s: expected latency per worker (see :class:`OrderedScheduler`).
        name: thread-name prefix.
    """

    def __init__(self, workers: Sequence[Callable[[P], Any]],
                 on_result: Callable[[P, Any], None], config: PoolConfig | None = None,
                 on_error: Callable[[P, BaseException], None] | None = None,
                 prior_latency_s: Sequence[float] | None = None, name: str = 'pool') -> None:
        if not workers:
            raise ConfigError('the pool needs at least one worker')
        self.config = config or PoolConfig()
        self._run = list(workers)
        self._on_result = on_result
        self._on_error = on_error
        self._sched = OrderedScheduler(len(workers), self.config, prior_latency_s)
        self._payloads: dict[int, P] = {}
        self._results: dict[int, Any] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._delivering = False
        self.last_error = ''
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True,
                                          name=f'{name}-worker{i}') for i in range(len(workers))]
        self._threads.append(threading.Thread(target=self._deliver, daemon=True,
                                              name=f'{name}-deliver'))
        for t in self._threads:
            t.start()

    @property
    def size(self) -> int:
        return len(self._run)

    def stats(self) -> PoolStats:
        """A copy of the counters."""
        with self._cond:
            s = self._sched.stats
            return dataclasses.replace(s, runs=list(s.runs), latency_ms=list(s.latency_ms))

    def submit(self, payload: P, timeout: float | None = None) -> bool:
        """Queue one frame. Newest-frame policy: returns at once (a waiting frame may be
        replaced, counted). With ``block``: waits for room (up to ``timeout`` seconds; False
        when it timed out or the pool closed).

        Raises:
            EdgeVisionError: the pool was closed.
        """
        with self._cond:
            if self._closed:
                raise EdgeVisionError('the inference pool was closed')
            if self.config.block:
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._sched.queue_full and not self._closed:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                if self._closed:
                    return False
            seq, replaced = self._sched.submit()
            self._payloads[seq] = payload
            if replaced is not None:
                self._payloads.pop(replaced, None)
            self._cond.notify_all()
            return True

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted frame was delivered or dropped (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._sched.idle and not self._delivering
                       and self._sched.next_release >= self._sched.next_seq):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def close(self, drain_s: float = 0.0) -> None:
        """Stop the threads (after draining up to ``drain_s`` seconds); waiting frames are
        dropped. Safe to call twice."""
        if drain_s > 0:
            self.drain(drain_s)
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        current = threading.current_thread()
        for t in self._threads:
            if t is not current:
                t.join(timeout=10.0)

    def __enter__(self) -> InferencePool[P]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- threads -----------------------------------------------------------------------------

    def _work(self, index: int) -> None:
        run = self._run[index]
        while True:
            with self._cond:
                seq = None
                while not self._closed:
                    seq = self._sched.assign(index, time.monotonic())
                    if seq is not None:
                        break
                    self._cond.wait(0.05)  # woken by submit/finish; the timeout re-plans
                if self._closed:
                    return
                payload = self._payloads[seq]
                self._cond.notify_all()  # room in the queue for a blocked submit
            ok, result = True, None
            try:
                result = run(payload)
            except Exception as exc:  # counted and reported; the worker goes on
                ok = False
                self.last_error = f'{type(exc).__name__}: {exc}'
                if self._on_error is not None:
                    try:
                        self._on_error(payload, exc)
                    except Exception as handler_exc:  # it must not end the worker either
                        self.last_error += f'; on_error: {handler_exc}'
            with self._cond:
                self._sched.finish(index, seq, time.monotonic(), ok)
                if ok and seq in self._sched.finished:
                    self._results[seq] = result
                self._cond.notify_all()

    def _deliver(self) -> None:
        while True:
            with self._cond:
                while True:
                    ready = self._sched.release(time.monotonic())
                    for seq in self._sched.take_dropped():
                        self._payloads.pop(seq, None)
                        self._results.pop(seq, None)
                    if ready or self._closed:
                        break
                    deadline = self._sched.next_deadline()
                    wait = 0.05 if deadline is None else deadline - time.monotonic()
                    self._cond.wait(min(0.05, max(0.0005, wait)))
                if self._closed and not ready:
                    return
                items = [(self._payloads.pop(seq), self._results.pop(seq)) for seq in ready]
                self._delivering = True
            for payload, result in items:
                try:
                    self._on_result(payload, result)
                except Exception as exc:  # the consumer's error: counted, never kills delivery
                    self.last_error = f'on_result: {type(exc).__name__}: {exc}'
            with self._cond:
                self._delivering = False
                self._cond.notify_all()


def pool_throughput(workers: Sequence[Callable[[int], Any]], seconds: float,
                    name: str = 'throughput') -> float:
    """Frames per second through an :class:`InferencePool` of ``workers`` (each called with
    the frame's number), frames submitted as fast as the pool takes them for ``seconds``,
    every frame run and delivered in order (blocking submission), the drain included."""
    delivered = [0]

    def done(payload: int, result: Any) -> None:
        delivered[0] += 1

    pool = InferencePool(list(workers), done, PoolConfig(queue_size=len(workers), block=True,
                                                         max_reorder_ms=60000.0), name=name)
    try:
        start = time.perf_counter()
        index = 0
        while time.perf_counter() - start < seconds:
            pool.submit(index, timeout=30.0)
            index += 1
        pool.drain(60.0)
        wall = time.perf_counter() - start
    finally:
        pool.close()
    if pool.last_error:
        raise EdgeVisionError(f'a pool worker failed: {pool.last_error}')
    return delivered[0] / wall if wall > 0 else float('nan')

