"""The inference pool: 1 worker x N threads against N workers x fewer threads, and mixed pools.

Usage::

    .venv/bin/python benchmarks/bench_pool.py [--models nanodet-m-416-int8 nanodet-m-416]
        [--backend onnxruntime] [--seconds 4] [--rounds 3] [--pool "openvino:GPU, ..."]

For each model, in one process, rounds interleaved (every configuration once per round; each
keeps its best and its median round), through :class:`edge_vision_core.inference.pool.
InferencePool` exactly as the inference stage runs it:

- **throughput**: frames submitted as fast as the pool takes them (``block``: every frame
  inferred, results in frame order), frames per second delivered;
- **latency**: the same pool fed at 70 % of that throughput (one frame every 1/(0.7 fps)
  seconds, a camera), milliseconds from submit to the ordered result, p50 and p95.

Configurations: ``1 x cores`` (one worker, all cores), ``cores x 1`` (one worker per core, one
thread each), ``1 x 1``, and ``--pool`` (any mix, e.g. ``"openvino:CPU:2, openvino:GPU"`` on a
machine with an integrated GPU). Every frame is the pipeline's work per frame (``Detector.detect``:
letterbox, normalisation, inference, decoding, NMS) on the bundled clip.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import numpy as np


def _frames(count: int = 30) -> list[np.ndarray]:
    import cv2

    from edge_vision_models import sample_path

    cap = cv2.VideoCapture(str(sample_path()))
    frames = [cap.read()[1] for _ in range(count)]
    cap.release()
    return frames


def _pool(model: str, specs, frames):
    from edge_vision_core.inference import DetectorOptions
    from edge_vision_core.inference.pool import create_detectors

    detectors = create_detectors(DetectorOptions(model=model), specs)
    for det in detectors:
        det.warmup(2)
    return detectors


def throughput(detectors, frames, seconds: float) -> float:
    from edge_vision_core.inference.pool import pool_throughput

    return pool_throughput([lambda i, d=d: d.detect(frames[i % len(frames)])
                            for d in detectors], seconds, name='bench')


def latency(detectors, frames, seconds: float, rate: float) -> tuple[float, float, int]:
    from edge_vision_core.inference.pool import InferencePool, PoolConfig

    lat: list[float] = []
    lock = threading.Lock()

    def done(stamp, result) -> None:
        with lock:
            lat.append((time.perf_counter() - stamp[1]) * 1e3)

    pool = InferencePool([lambda p, d=d: d.detect(frames[p[0] % len(frames)])
                          for d in detectors], done,
                         PoolConfig(queue_size=1, max_reorder_ms=1000.0))
    try:
        t0 = time.perf_counter()
        i = 0
        next_t = t0
        while time.perf_counter() - t0 < seconds:
            pool.submit((i, time.perf_counter()))
            i += 1
            next_t += 1.0 / rate
            time.sleep(max(0.0, next_t - time.perf_counter()))
        pool.drain(30.0)
        dropped = pool.stats().dropped
    finally:
        pool.close()
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 95)), dropped


def main() -> None:
    from edge_vision_core.inference.pool import WorkerSpec, parse_pool

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=['nanodet-m-416-int8', 'nanodet-m-416'])
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--seconds', type=float, default=4.0)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--pool', default='', help='an extra pool, backend:device:threads, ...')
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    frames = _frames()
    configs = {f'1 x {cores}': [WorkerSpec(args.backend, 'auto', cores)],
               f'{cores} x 1': [WorkerSpec(args.backend, 'auto', 1)] * cores,
               '1 x 1': [WorkerSpec(args.backend, 'auto', 1)]}
    if args.pool:
        configs[args.pool] = list(parse_pool(args.pool))
    load = [os.getloadavg()[0]]
    for model in args.models:
        pools = {name: _pool(model, specs, frames) for name, specs in configs.items()}
        fps: dict[str, list[float]] = {name: [] for name in configs}
        lat: dict[str, list[tuple[float, float, int]]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for name, detectors in pools.items():
                fps[name].append(throughput(detectors, frames, args.seconds))
            for name, detectors in pools.items():
                rate = 0.7 * statistics.median(fps[name])
                lat[name].append(latency(detectors, frames, args.seconds, rate))
        for detectors in pools.values():
            for det in detectors:
                det.close()
        load.append(os.getloadavg()[0])
        print(f'\n{model} on {args.backend}, {cores} cores, {args.rounds} interleaved rounds of '
              f'{args.seconds:g} s; load average {load[-2]:.1f} -> {load[-1]:.1f}')
        print(f'{"workers x threads":<22} {"fps best":>8} {"fps med":>8} {"vs 1st":>7} '
              f'{"lat p50":>8} {"lat p95":>8} {"dropped":>7}')
        first = max(fps[next(iter(configs))])
        for name in configs:
            p50 = statistics.median(x[0] for x in lat[name])
            p95 = statistics.median(x[1] for x in lat[name])
            dropped = sum(x[2] for x in lat[name])
            print(f'{name:<22} {max(fps[name]):8.1f} {statistics.median(fps[name]):8.1f} '
                  f'{max(fps[name]) / first:7.2f} {p50:8.1f} {p95:8.1f} {dropped:7d}')
    print('\nlatency: fed at 70 % of each configuration\'s median throughput, submit -> ordered '
          'result; dropped: frames replaced while all workers were busy')


if __name__ == '__main__':
    main()
