"""The inference pool: worker choice by measured latency, in-order delivery with a bounded
reordering delay, counted drops (scheduler with a fake clock), and the threaded pool on real
detectors."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge_vision_core import ConfigError, EdgeVisionError
from edge_vision_core.inference.pool import (
    InferencePool,
    OrderedScheduler,
    PoolConfig,
    WorkerSpec,
    parse_pool,
)


def scheduler(workers: int = 2, queue: int = 4, reorder_ms: float = 100.0,
              prior: list[float] | None = None) -> OrderedScheduler:
    return OrderedScheduler(workers, PoolConfig(queue_size=queue, max_reorder_ms=reorder_ms),
                            prior)


@pytest.mark.parametrize('text, expected', [
    ('onnxruntime:cpu:1, onnxruntime:cpu:1',
     (WorkerSpec('onnxruntime', 'cpu', 1), WorkerSpec('onnxruntime', 'cpu', 1))),
    ('openvino:CPU:2,openvino:GPU', (WorkerSpec('openvino', 'CPU', 2),
                                     WorkerSpec('openvino', 'GPU', 0))),
    ('OpenVINO', (WorkerSpec('openvino', 'auto', 0),)),
    ('', ()),
])
def test_parse_pool(text, expected):
    assert parse_pool(text) == expected


@pytest.mark.parametrize('text, needle', [
    ('onnxruntime:cpu:x', 'threads must be an integer'),
    ('a:b:1:2', 'backend[:device[:threads]]'),
    (':cpu', 'backend[:device[:threads]]'),
    ('onnxruntime:cpu:-1', '0..256'),
])
def test_parse_pool_refuses_malformed_entries(text, needle):
    with pytest.raises(ConfigError, match=needle.replace('[', r'\[').replace(']', r'\]')):
        parse_pool(text)


def test_results_leave_in_frame_order_whatever_the_finish_order():
    s = scheduler()
    a, _ = s.submit()
    assert s.assign(0, 0.0) == a
    b, _ = s.submit()
    assert s.assign(1, 0.0) == b
    s.finish(1, b, 0.010)          # frame 1 finishes first...
    assert s.release(0.010) == []  # ...and waits for frame 0
    s.finish(0, a, 0.030)
    assert s.release(0.030) == [a, b]
    assert s.stats.delivered == 2 and s.stats.dropped == 0
    assert s.stats.reorder_wait_ms_max == pytest.approx(20.0)
    assert s.idle


def test_a_slow_frame_is_skipped_after_the_reordering_bound_and_its_result_dropped():
    s = scheduler(reorder_ms=100.0)
    a, _ = s.submit()
    s.assign(0, 0.0)
    b, _ = s.submit()
    s.assign(1, 0.0)
    s.finish(1, b, 0.010)
    assert s.release(0.05) == []
    assert s.next_deadline() == pytest.approx(0.110)
    assert s.release(0.111) == [b]      # waited its 100 ms: frame 0 is skipped
    s.finish(0, a, 0.5)                 # frame 0 comes back late: dropped, counted
    assert s.release(0.5) == []
    assert (s.stats.delivered, s.stats.late, s.stats.dropped) == (1, 1, 1)
    assert sorted(s.take_dropped()) == [a]
    assert s.idle


def test_a_full_queue_replaces_the_oldest_waiting_frame():
    s = scheduler(workers=1, queue=1)
    first, replaced = s.submit()
    assert replaced is None
    second, replaced = s.submit()
    assert replaced == first and s.stats.replaced == 1
    assert s.assign(0, 0.0) == second
    s.finish(0, second, 0.01)
    assert s.release(0.01) == [second]
    assert s.stats.submitted == 2 and s.stats.delivered == 1 and s.stats.dropped == 1


def test_a_failed_run_is_counted_and_does_not_hold_later_frames():
    s = scheduler()
    a, _ = s.submit()
    s.assign(0, 0.0)
    b, _ = s.submit()
    s.assign(1, 0.0)
    s.finish(0, a, 0.01, ok=False)
    s.finish(1, b, 0.02)
    assert s.release(0.02) == [b]
    assert s.stats.failed == 1 and s.stats.delivered == 1


def test_latency_is_learned_per_worker():
    s = scheduler(workers=2)
    a, _ = s.submit()
    b, _ = s.submit()
    assert s.assign(0, 0.0) == a and s.assign(1, 0.0) == b  # unknown latency: both tried
    s.finish(0, a, 0.010)
    s.finish(1, b, 0.040)
    assert s.stats.latency_ms == pytest.approx([10.0, 40.0])
    # then a moving average: three more 10 ms runs and one of 50 ms on worker 0
    for k, took in enumerate((0.010, 0.010, 0.010, 0.050)):
        seq, _ = s.submit()
        assert s.assign(0, k) == seq
        s.finish(0, seq, k + took)
    assert s.latency[0] == pytest.approx(0.75 * 0.010 + 0.25 * 0.050)
    assert s.release(10.0) == list(range(6))


@pytest.mark.parametrize('fast_busy_for, slow_takes_it', [
    (0.005, False),  # the fast worker frees up soon: it finishes the frame first (5 + 10 ms)
    (0.100, True),   # the fast worker is busy for long: the slow one (40 ms) is quicker
])
def test_a_slow_worker_takes_a_frame_only_when_it_would_finish_it_first(fast_busy_for,
                                                                        slow_takes_it):
    s = scheduler(workers=2, prior=[0.010, 0.040])
    busy, _ = s.submit()
    # the fast worker (0) runs a frame that it will finish in fast_busy_for seconds from now
    assert s.assign(0, fast_busy_for - 0.010) == busy
    frame, _ = s.submit()
    got = s.assign(1, 0.0)
    assert (got == frame) is slow_takes_it


def test_list_scheduling_gives_the_slow_worker_its_share_of_a_backlog():
    # a lossless backlog of 5 frames, fast worker 10 ms, slow one 25 ms
    s = scheduler(workers=2, queue=8, prior=[0.010, 0.025])
    seqs = [s.submit()[0] for _ in range(5)]
    assert s.assign(0, 0.0) == seqs[0]
    # plan now: fast busy to 10 ms. frame1: fast 20 vs slow 25 -> fast; frame2: fast 30 vs slow
    # 25 -> slow: the slow worker takes frame 2, not the oldest waiting frame 1
    assert s.assign(1, 0.0) == seqs[2]
    assert list(s.waiting) == [seqs[1], seqs[3], seqs[4]]


def test_scheduler_refuses_misuse():
    with pytest.raises(ConfigError, match='at least one worker'):
        OrderedScheduler(0)
    s = scheduler()
    with pytest.raises(ConfigError, match='was not running'):
        s.finish(0, 3, 0.0)
    s.submit()
    s.assign(0, 0.0)
    with pytest.raises(ConfigError, match='while running'):
        s.assign(0, 0.0)


# -- the threaded pool ---------------------------------------------------------------------


def sleeper(seconds: float):
    def run(payload):
        time.sleep(seconds(payload) if callable(seconds) else seconds)
        return payload * 10
    return run


def test_pool_delivers_every_frame_in_order_when_blocking():
    got: list[tuple[int, int]] = []
    # worker 1 is three times slower: results come back out of order, leave in order
    with InferencePool([sleeper(0.004), sleeper(0.012)], lambda p, r: got.append((p, r)),
                       PoolConfig(queue_size=2, block=True, max_reorder_ms=5000)) as pool:
        for i in range(40):
            assert pool.submit(i, timeout=30)
        assert pool.drain(30)
        stats = pool.stats()
    assert got == [(i, i * 10) for i in range(40)]
    assert stats.submitted == stats.delivered == 40 and stats.dropped == 0
    assert all(n > 0 for n in stats.runs), 'both workers ran'
    assert stats.runs[0] > stats.runs[1], 'the faster worker ran more frames'


def test_pool_newest_frame_policy_counts_what_it_replaces():
    got: list[int] = []
    with InferencePool([sleeper(0.02)], lambda p, r: got.append(p),
                       PoolConfig(queue_size=1)) as pool:
        for i in range(30):
            pool.submit(i)
        assert pool.drain(30)
        stats = pool.stats()
    assert got == sorted(got) and got[-1] == 29, 'newest frame kept, order kept'
    assert stats.delivered == len(got)
    assert stats.delivered + stats.dropped == stats.submitted == 30
    assert stats.replaced > 0


def test_pool_errors_are_counted_and_later_frames_still_delivered():
    def flaky(p):
        if p == 3:
            raise ValueError('bad frame')
        return p

    got: list[int] = []
    errors: list[str] = []
    with InferencePool([flaky, flaky], lambda p, r: got.append(p),
                       PoolConfig(queue_size=4, block=True, max_reorder_ms=30000),
                       on_error=lambda p, e: errors.append(f'{p}: {e}')) as pool:
        for i in range(8):
            pool.submit(i)
        assert pool.drain(30)
        stats = pool.stats()
    assert got == [0, 1, 2, 4, 5, 6, 7]
    assert stats.failed == 1 and errors == ['3: bad frame']
    assert 'ValueError' in pool.last_error


def test_a_stuck_worker_delays_results_by_at_most_the_bound():
    release = threading.Event()

    def stuck(p):
        if p == 0:
            release.wait(10)
        return p

    got: list[tuple[int, float]] = []
    t0 = time.monotonic()
    with InferencePool([stuck, stuck], lambda p, r: got.append((p, time.monotonic() - t0)),
                       PoolConfig(queue_size=4, block=True, max_reorder_ms=200)) as pool:
        for i in range(4):
            pool.submit(i)
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        assert pool.drain(10)
        stats = pool.stats()
    assert [p for p, _ in got] == [1, 2, 3]
    assert got[0][1] < 2.0, 'released after the reordering bound, not after the stuck frame'
    assert stats.late == 1 and stats.delivered == 3


def test_submit_after_close_raises():
    pool = InferencePool([sleeper(0.0)], lambda p, r: None)
    pool.close()
    with pytest.raises(Exception, match='closed'):
        pool.submit(1)


def test_pool_of_two_real_detectors_matches_one_detector(real_images):
    """Two ONNX Runtime workers of one thread each give the same detections as one detector,
    in frame order."""
    pytest.importorskip('onnxruntime')
    from edge_vision_core.inference import Detector

    images = list(real_images.values()) * 3
    detectors = [Detector.create(backend='onnxruntime', threads=1) for _ in range(2)]
    got: list[tuple[int, object]] = []
    try:
        with InferencePool([lambda p, d=d: d.detect(images[p]) for d in detectors],
                           lambda p, r: got.append((p, r)),
                           # lossless: a loaded machine must not make it skip a slow frame
                           PoolConfig(queue_size=2, block=True,
                                      max_reorder_ms=60000.0)) as pool:
            for i in range(len(images)):
                pool.submit(i)
            assert pool.drain(120)
        reference = [detectors[0].detect(im) for im in images]
    finally:
        for d in detectors:
            d.close()
    assert [p for p, _ in got] == list(range(len(images)))
    for (_, result), ref in zip(got, reference, strict=True):
        np.testing.assert_allclose(result.detections.boxes, ref.detections.boxes, atol=1e-3)
        np.testing.assert_array_equal(result.detections.class_ids, ref.detections.class_ids)


# -- several cameras, one detector ---------------------------------------------------------


def test_newest_frames_keeps_one_per_camera_and_counts_the_replaced():
    from edge_vision_core.inference.batching import NewestFrames

    slots = NewestFrames()
    assert slots.put('cam0', 1) is None
    assert slots.put('cam1', 10) is None
    assert slots.put('cam0', 2) == 1  # replaced, counted; cam0 keeps its place in the line
    assert slots.take() == [('cam0', 2), ('cam1', 10)]
    assert slots.replaced == {'cam0': 1} and len(slots) == 0
    limited = NewestFrames(max_batch=1)
    limited.put('a', 1)
    limited.put('b', 2)
    assert limited.take() == [('a', 1)] and limited.take() == [('b', 2)]
    with pytest.raises(ConfigError, match='max_batch'):
        NewestFrames(-1)


@pytest.mark.parametrize('model', ['nanodet-m-416-int8', 'nanodet-m-416'])
def test_camera_batcher_gives_each_camera_its_own_detections(model, real_images):
    """Four cameras on one detector: each frame's result is that frame's own (the batch is one
    inference call for the dynamic-batch INT8 model, one call per image for the FP32 file)."""
    pytest.importorskip('onnxruntime')
    from edge_vision_core.inference import Detector
    from edge_vision_core.inference.batching import CameraBatcher

    cameras = dict(zip(('cam0', 'cam1', 'cam2', 'cam3'), real_images.values(), strict=True))
    got: dict[str, object] = {}
    with Detector.create(model=model, backend='onnxruntime', threads=2) as det:
        expected = {cam: det.detect(image) for cam, image in cameras.items()}
        batcher = CameraBatcher(det, lambda cam, image, result: got.__setitem__(cam, result))
        with batcher:
            with batcher._cond:  # hold the thread off so all four wait: one batch of four
                for cam, image in cameras.items():
                    batcher.submit(cam, image)
            assert batcher.drain(60)
        stats = batcher.stats
        note = det.batch_note
    assert set(got) == set(cameras)
    for cam, result in got.items():
        np.testing.assert_allclose(result.detections.boxes, expected[cam].detections.boxes,
                                   atol=1e-2)
        np.testing.assert_array_equal(result.detections.class_ids,
                                      expected[cam].detections.class_ids)
    assert stats.frames == 4 and stats.failed == 0
    if model.endswith('int8'):
        assert stats.batches == 1 and note == ''
    else:
        assert 'fixed batch' in note




def _wait_for(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_shared_detector_batches_what_its_consumers_have_waiting(real_images):
    """Consumers that each wait for their own frame: frames that arrive while the detector is
    busy are inferred together in one call, and each consumer gets its own frame's result."""
    pytest.importorskip('onnxruntime')
    from edge_vision_core.inference import Detector
    from edge_vision_core.inference.batching import SharedDetector

    images = list(real_images.values())[:3]
    with Detector.create(model='nanodet-m-416-int8', backend='onnxruntime', threads=1) as ref:
        expected = [ref.detect(image) for image in images]
    shared = SharedDetector(Detector.create(model='nanodet-m-416-int8', backend='onnxruntime',
                                            threads=1), key='k')
    got: dict[str, object] = {}

    def consumer(name: str, image: np.ndarray) -> None:
        got[name] = shared.infer(name, image)

    _, lock = shared.workers[0]
    try:
        with lock:  # the first frame is taken, then held: the next two wait together
            threads = [threading.Thread(target=consumer, args=('first', images[0]))]
            threads[0].start()
            assert _wait_for(lambda: shared._batcher._busy == 1)
            for name, image in (('a', images[1]), ('b', images[2])):
                threads.append(threading.Thread(target=consumer, args=(name, image)))
                threads[-1].start()
            assert _wait_for(lambda: len(shared._batcher._frames) == 2)
        for thread in threads:
            thread.join(60)
        assert shared.stats.frames == 3 and shared.stats.batches == 2  # 1 + a batch of 2
        for name, want in zip(('first', 'a', 'b'), expected, strict=True):
            np.testing.assert_allclose(got[name].detections.boxes, want.detections.boxes,
                                       atol=1e-2)
            np.testing.assert_array_equal(got[name].detections.class_ids,
                                          want.detections.class_ids)
    finally:
        shared.close()
    with pytest.raises(EdgeVisionError, match='closed'):
        shared.infer('late', images[0])


def test_a_failed_batch_fails_each_waiting_consumer_with_the_reason(real_images):
    pytest.importorskip('onnxruntime')
    from edge_vision_core.inference import Detector
    from edge_vision_core.inference.batching import SharedDetector

    detector = Detector.create(model='nanodet-m-416-int8', backend='onnxruntime', threads=1)
    shared = SharedDetector(detector)
    try:
        with pytest.raises(EdgeVisionError, match='2-D|3 channels|image'):
            shared.infer('cam', np.zeros((4,), np.uint8))  # not an image: the batch raises
        assert shared.stats.failed == 1
        result = shared.infer('cam', next(iter(real_images.values())))  # and it goes on
        assert len(result.detections.boxes) > 0
    finally:
        shared.close()


def test_batch_groups_share_one_detector_refuse_other_settings_and_close_with_the_last():
    from edge_vision_core.inference.batching import join_batch_group, leave_batch_group

    made: list[object] = []

    class Fake:  # stands for a Detector: join/leave only create and close it
        closed = False

        def close(self) -> None:
            self.closed = True

    def create() -> Fake:
        made.append(Fake())
        return made[-1]

    one = join_batch_group('cams', ('nanodet', 'onnxruntime'), create)
    two = join_batch_group('cams', ('nanodet', 'onnxruntime'), create)
    assert one is two and len(made) == 1 and one.users == 2
    with pytest.raises(ConfigError, match=r"'cams' already runs .*nanodet.*asks for .*yolo"):
        join_batch_group('cams', ('yolo', 'openvino'), create)
    other = join_batch_group('other', ('yolo', 'openvino'), create)
    assert other is not one and len(made) == 2
    leave_batch_group(one)
    assert not made[0].closed
    leave_batch_group(two)
    assert made[0].closed  # the last one out closes it
    three = join_batch_group('cams', ('yolo', 'openvino'), create)  # a new group of that name
    assert three is not one and len(made) == 3
    for shared in (other, three):
        leave_batch_group(shared)
    with pytest.raises(ConfigError, match='non-empty'):
        join_batch_group(' ', 'k', create)


def test_camera_batcher_runs_one_thread_per_detector():
    """Two detectors: two batches run at once (each thread takes what waits when it is
    free)."""
    from edge_vision_core.inference.batching import CameraBatcher

    inside = threading.Semaphore(0)
    release = threading.Event()

    class Slow:
        def __init__(self) -> None:
            self.calls = 0

        def detect_batch(self, images):
            self.calls += 1
            inside.release()
            release.wait(10)
            return [len(images)] * len(images)

    slow = [Slow(), Slow()]
    got: dict[str, object] = {}
    batcher = CameraBatcher(slow, lambda cam, image, result: got.__setitem__(cam, result))
    try:
        batcher.submit('cam0', np.zeros(1))
        assert inside.acquire(timeout=10)  # one thread holds cam0
        batcher.submit('cam1', np.zeros(1))
        assert inside.acquire(timeout=10)  # the other thread took cam1 meanwhile
        release.set()
        assert batcher.drain(10)
    finally:
        batcher.close()
    assert [d.calls for d in slow] == [1, 1] and got == {'cam0': 1, 'cam1': 1}
    assert batcher.stats.frames == 2 and batcher.stats.batches == 2


def test_pool_throughput_runs_every_frame_once_and_reports_a_failed_worker():
    from edge_vision_core.inference.pool import pool_throughput

    seen: list[int] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        time.sleep(0.002)
        with lock:
            seen.append(index)

    fps = pool_throughput([worker, worker], 0.2)
    assert fps > 0 and sorted(seen) == list(range(len(seen))) and len(seen) >= 2

    def broken(index: int) -> None:
        raise ValueError('no runtime')

    with pytest.raises(EdgeVisionError, match='no runtime'):
        pool_throughput([broken], 0.05)
