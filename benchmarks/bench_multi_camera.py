"""Several cameras: one detector serving all of them by batching, vs one detector per camera.

Usage::

    .venv/bin/python benchmarks/bench_multi_camera.py [--cameras 1 2 4] [--seconds 8]
        [--model nanodet-m-416-int8] [--backend onnxruntime] [--rounds 2]

For 1, 2 and 4 cameras, side by side in one run (rounds interleaved; each set-up keeps its best
round), three set-ups:

- **batched**: one process, one detector (all cores), a :class:`~edge_vision_core.inference.
  batching.CameraBatcher` that takes the newest frame of every camera and runs them as one
  inference call (``Detector.detect_batch``; the shipped INT8 model has a dynamic batch);
- **shared, one by one**: the same process and detector, the cameras' newest frames inferred
  one at a time (``max_batch=1``: one shared inference node without batching);
- **per camera**: one process per camera, each with its own detector of ``cores / N`` threads
  (at least 1): one inference node per camera.

Each camera is a thread that sends frames of the bundled clip at ``--fps`` on its own clock (a
real camera does not wait for the detector); a frame that arrives while its camera's previous
one still waits replaces it (newest frame wins, counted as dropped). Printed per set-up: the
aggregate throughput (results per second, all cameras), per camera, the latency from a frame's
capture to its result (p50/p95), the mean batch size, the share of frames dropped, and the peak
resident memory of the process(es) (VmHWM, summed over processes). The machine load is printed
too: on a shared machine compare rows of the same run only.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

import numpy as np


def _frames(count: int = 30) -> list[np.ndarray]:
    import cv2

    from edge_vision_models import sample_path

    cap = cv2.VideoCapture(str(sample_path()))
    frames = [cap.read()[1] for _ in range(count)]
    cap.release()
    return frames


def _peak_rss_mb() -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _cameras(cameras: int, fps: float, seconds: float, submit, start) -> float:
    """Run ``cameras`` camera threads, each calling ``submit(camera, frame, stamp)`` at ``fps``
    (its own clock, whatever the detector does). Returns the wall seconds."""
    frames = _frames()
    stop = threading.Event()

    def camera(index: int) -> None:
        k = index * 7
        period = 1.0 / fps
        next_t = time.perf_counter()
        while not stop.is_set():
            submit(index, frames[k % len(frames)], time.perf_counter())
            k += 1
            next_t += period
            delay = next_t - time.perf_counter()
            if delay > 0:
                stop.wait(delay)
            else:
                next_t = time.perf_counter()

    threads = [threading.Thread(target=camera, args=(i,), daemon=True) for i in range(cameras)]
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=30.0)
    return time.perf_counter() - t0


def _serve(max_batch: int, model: str, backend: str, threads: int, cameras: int, fps: float,
           seconds: float, start, out) -> None:
    """One detector behind a CameraBatcher for ``cameras`` cameras (max_batch 0: batches of
    every waiting camera; 1: one frame at a time)."""
    from edge_vision_core.inference import Detector
    from edge_vision_core.inference.batching import CameraBatcher

    det = Detector.create(model=model, backend=backend, threads=threads)
    det.warmup(2)
    if max_batch != 1:
        det.detect_batch(_frames(cameras))  # compile/allocate the batch sizes before timing
        for size in range(2, cameras):
            det.detect_batch(_frames(size))
    latencies: list[float] = []
    counting = threading.Event()

    def done(cam, item, result) -> None:
        if counting.is_set():
            latencies.append((time.perf_counter() - item[1]) * 1e3)

    batcher = CameraBatcher(det, done, image_of=lambda item: item[0], max_batch=max_batch)

    def submit(cam, frame, stamp) -> None:
        batcher.submit(cam, (frame, stamp))

    counting.set()
    wall = _cameras(cameras, fps, seconds, submit, start)
    counting.clear()
    stats = batcher.stats
    batcher.close()
    det.close()
    out.put((len(latencies), latencies, wall, _peak_rss_mb(), stats.mean_batch,
             sum(stats.replaced.values()), det.batch_note))


def measure(setup: str, cameras: int, args: argparse.Namespace) -> dict:
    ctx = mp.get_context('spawn')
    start, out = ctx.Event(), ctx.Queue()
    cores = os.cpu_count() or 1
    if setup == 'per camera':
        procs = [ctx.Process(target=_serve, args=(1, args.model, args.backend,
                                                  max(1, cores // cameras), 1, args.fps,
                                                  args.seconds, start, out))
                 for _ in range(cameras)]
    else:
        max_batch = 0 if setup == 'batched' else 1
        procs = [ctx.Process(target=_serve, args=(max_batch, args.model, args.backend, cores,
                                                  cameras, args.fps, args.seconds, start, out))]
    for p in procs:
        p.start()
    time.sleep(args.settle)  # every process loaded and warmed up
    start.set()
    results = [out.get(timeout=args.seconds + 300) for _ in procs]
    for p in procs:
        p.join()
    n = sum(r[0] for r in results)
    wall = max(r[2] for r in results)
    lat = np.concatenate([np.asarray(r[1]) for r in results]) if n else np.array([np.nan])
    sent = cameras * args.fps * wall
    return {'fps': n / wall, 'per_camera': n / wall / cameras,
            'p50': float(np.percentile(lat, 50)), 'p95': float(np.percentile(lat, 95)),
            'rss': sum(r[3] for r in results), 'batch': float(np.mean([r[4] for r in results])),
            'dropped': sum(r[5] for r in results) / max(1.0, sent),
            'note': next((r[6] for r in results if r[6]), '')}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cameras', type=int, nargs='+', default=[1, 2, 4])
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--model', default='nanodet-m-416-int8')
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--fps', type=float, default=30.0, help='frame rate of every camera')
    parser.add_argument('--settle', type=float, default=6.0,
                        help='seconds for the processes to load before timing starts')
    args = parser.parse_args()
    setups = ('batched', 'shared, one by one', 'per camera')
    best: dict[tuple[str, int], dict] = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for cameras in args.cameras:
            for setup in setups:
                r = measure(setup, cameras, args)
                key = (setup, cameras)
                if key not in best or r['fps'] > best[key]['fps']:
                    best[key] = r
    load.append(os.getloadavg()[0])
    print(f'{args.model} on {args.backend}, {os.cpu_count()} cores, cameras at {args.fps:g} '
          f'fps each (bundled clip 640x480), '
          f'{args.seconds:.0f} s per set-up, best of {args.rounds} interleaved rounds; '
          f'load average {load[0]:.1f} -> {load[1]:.1f}')
    print(f'{"cameras":>7} {"set-up":<20} {"fps all":>8} {"per cam":>8} {"lat p50":>8} '
          f'{"lat p95":>8} {"batch":>6} {"dropped":>8} {"RSS MB":>8}')
    for cameras in args.cameras:
        for setup in setups:
            r = best[setup, cameras]
            print(f'{cameras:>7} {setup:<20} {r["fps"]:8.1f} {r["per_camera"]:8.1f} '
                  f'{r["p50"]:8.1f} {r["p95"]:8.1f} {r["batch"]:6.2f} '
                  f'{r["dropped"]:8.0%} {r["rss"]:8.0f}')
    notes = {r['note'] for r in best.values() if r['note']}
    for note in notes:
        print(f'note: {note}')


if __name__ == '__main__':
    main()
