"""Two cameras: one shared detector vs one detector per camera (why multi_camera.launch.py
gives each camera its own inference node).

Usage: ``.venv/bin/python benchmarks/bench_multi_camera.py [--seconds 15] [--backend ...]``

- **shared**: one process, one detector with ``--threads`` threads, serving the frames of two
  cameras in turn (what one shared inference node would do);
- **per camera**: two processes at the same time, one detector each with ``threads / 2``
  threads (one inference node per camera).

Prints the aggregate detections per second (both cameras together), per-camera rate, and the
resident memory of the detector processes. Measured here (2 cores, ONNX Runtime, 640x480):
shared 40.3 fps (20.1 per camera, 190 MB); per camera 46.5 fps (23.2 per camera, 2 x 190 MB).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time


def _frames():
    import cv2

    from edge_vision_models import sample_path

    cap = cv2.VideoCapture(str(sample_path()))
    return [cap.read()[1] for _ in range(30)]


def _worker(backend: str, threads: int, seconds: float, cameras: int, start, out) -> None:
    from edge_vision_core.inference import Detector, DetectorOptions

    frames = _frames()
    with Detector.create(DetectorOptions(backend=backend, threads=threads)) as det:
        det.warmup(2)
        start.wait()
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < seconds:
            for _ in range(cameras):  # one frame of each camera in turn
                det.detect(frames[n % len(frames)])
                n += 1
        elapsed = time.perf_counter() - t0
    out.put((n / elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run(backend: str, threads: int, seconds: float, processes: int, cameras_each: int):
    ctx = mp.get_context('spawn')
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(backend, threads, seconds, cameras_each, start,
                                               out)) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(5.0)  # all loaded and warmed up
    start.set()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=15.0)
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads in total')
    args = parser.parse_args()
    shared = run(args.backend, args.threads, args.seconds, 1, 2)
    split = run(args.backend, max(1, args.threads // 2), args.seconds, 2, 1)
    total_shared = shared[0][0]
    total_split = sum(r[0] for r in split)
    print(f'{args.backend}, {args.threads} threads in total, two cameras')
    print(f'{"set-up":<28} {"fps (both)":>10} {"per camera":>10} {"RSS MB":>14}')
    print(f'{"one shared detector":<28} {total_shared:10.1f} {total_shared / 2:10.1f} '
          f'{shared[0][1]:14.0f}')
    print(f'{"one detector per camera":<28} {total_split:10.1f} {total_split / 2:10.1f} '
          f'{" + ".join(f"{r[1]:.0f}" for r in split):>14}')


if __name__ == '__main__':
    main()
