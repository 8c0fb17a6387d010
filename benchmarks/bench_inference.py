"""Inference cost per backend: the bare runtime call against the full ``Detector.detect``.

Usage::

    .venv/bin/python benchmarks/bench_inference.py [--backends onnxruntime openvino litert]
        [--threads 1 2] [--frames 40] [--rounds 5] [--size 640x480] [--model nanodet-m-416]
    .venv/bin/python benchmarks/bench_inference.py --nms     # NMS: NumPy vs OpenCV

For every installed backend and thread count it prints: the load time (``Detector.create``:
checksum, model load, compilation), latency p50/p95 of the **bare** runtime call on
preprocessed inputs (``session.run`` / ``InferRequest.infer`` / ``Interpreter.invoke`` in a loop)
and of the **full** ``Detector.detect`` (letterbox + normalise, inference, decode + NMS + inverse
letterbox) on the same real frames (scikit-image photographs resized to ``--size``), the median
of each detect stage, both throughputs (frames per second, back-to-back calls) and their ratio
full / bare (the goal is >= 0.90). Bare and full runs alternate in ``--rounds`` blocks so that
load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from edge_vision_core.inference import Detector
from edge_vision_core.inference.backends import available_backends
from edge_vision_core.inference.nms import batched_nms


def real_frames(width: int, height: int) -> list[np.ndarray]:
    from edge_vision_core.optimize.images import sample_images

    return [cv2.resize(image, (width, height)) for _, image in
            sample_images(('astronaut', 'chelsea', 'coffee', 'motorcycle_left'))]


def bare_call(detector: Detector):
    """A closure running the runtime's own API once on an input, as a user would loop it."""
    backend = detector.backend
    if backend.name == 'onnxruntime':
        session = backend.session
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})
    if backend.name == 'openvino':
        request = backend.compiled_model.create_infer_request()
        return lambda x: request.infer([x])
    if backend.name == 'litert':
        interp = backend.interpreter
        index = interp.get_input_details()[0]['index']
        outs = [d['index'] for d in interp.get_output_details()]

        def run(x):
            interp.set_tensor(index, x)
            interp.invoke()
            return [interp.get_tensor(i) for i in outs]
        return run
    return lambda x: backend.run([x])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3


def bench_backend(name: str, threads: int, model: str, frames: list[np.ndarray],
                  rounds: int) -> dict:
    t0 = time.perf_counter()
    detector = Detector.create(model=model, backend=name, threads=threads)
    load_s = time.perf_counter() - t0
    with detector:
        inputs = [detector.preprocess(f).inputs[0].copy() for f in frames]
        call = bare_call(detector)
        detector.warmup(3)
        for x in inputs[:3]:
            call(x)
        bare, full, stages = [], [], {'pre': [], 'infer': [], 'post': []}
        for _ in range(rounds):
            for x in inputs:
                t = time.perf_counter()
                call(x)
                bare.append(time.perf_counter() - t)
            for frame in frames:
                t = time.perf_counter()
                result = detector.detect(frame)
                full.append(time.perf_counter() - t)
                stages['pre'].append(result.timings.pre_ms)
                stages['infer'].append(result.timings.infer_ms)
                stages['post'].append(result.timings.post_ms)
        device = detector.backend.device
    bare_fps, full_fps = len(bare) / sum(bare), len(full) / sum(full)
    return {'backend': f'{name}:{device}', 'threads': threads, 'load_s': load_s,
            'bare50': pct(bare, 50), 'bare95': pct(bare, 95),
            'full50': pct(full, 50), 'full95': pct(full, 95),
            'pre': statistics.median(stages['pre']), 'infer': statistics.median(stages['infer']),
            'post': statistics.median(stages['post']),
            'bare_fps': bare_fps, 'full_fps': full_fps, 'ratio': full_fps / bare_fps}


def bench_nms(repeat: int) -> None:
    rng = np.random.default_rng(0)
    print(f'class-aware NMS (80 classes, IoU 0.6), median of {repeat} runs, microseconds')
    print(f'{"boxes":>6} {"numpy":>9} {"opencv":>9} {"same":>5}')
    for n in (10, 30, 100, 300, 1000, 3000):
        xy = rng.uniform(0, 600, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 150, (n, 2))], axis=1)
        scores = rng.uniform(0.3, 1, n)
        classes = rng.integers(0, 80, n)
        times = {}
        kept = {}
        for method in ('numpy', 'opencv'):
            samples = []
            for _ in range(repeat):
                t = time.perf_counter()
                kept[method] = batched_nms(boxes, scores, classes, 0.6, method=method)
                samples.append(time.perf_counter() - t)
            times[method] = statistics.median(samples) * 1e6
        same = kept['numpy'].tolist() == kept['opencv'].tolist()
        print(f'{n:>6} {times["numpy"]:>9.1f} {times["opencv"]:>9.1f} {str(same):>5}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backends', nargs='*', default=None,
                        help='backends to run (default: every installed one)')
    parser.add_argument('--threads', nargs='*', type=int, default=[1, 2])
    parser.add_argument('--frames', type=int, default=40, help='distinct frames per round')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--size', default='640x480', help='frame size WxH (640x480)')
    parser.add_argument('--model', default='nanodet-m-416')
    parser.add_argument('--nms', action='store_true', help='benchmark NMS instead')
    args = parser.parse_args()
    if args.nms:
        bench_nms(200)
        return
    width, height = (int(v) for v in args.size.lower().split('x'))
    base = real_frames(width, height)
    frames = [base[i % len(base)] for i in range(args.frames)]
    installed = available_backends()
    names = args.backends or [n for n in ('onnxruntime', 'openvino', 'litert', 'tensorrt')
                              if n in installed]
    print(f'model {args.model}, {len(frames)} frames {width}x{height} x {args.rounds} rounds; '
          f'latency in ms (p50/p95), throughput in frames/s')
    header = (f'{"backend":<18} {"thr":>3} {"load s":>6} {"bare p50/p95":>13} '
              f'{"detect p50/p95":>15} {"pre":>5} {"infer":>6} {"post":>5} {"bare fps":>8} '
              f'{"detect fps":>10} {"ratio":>6}')
    print(header)
    for name in names:
        for threads in args.threads:
            r = bench_backend(name, threads, args.model, frames, args.rounds)
            print(f'{r["backend"]:<18} {r["threads"]:>3} {r["load_s"]:>6.2f} '
                  f'{r["bare50"]:>6.2f}/{r["bare95"]:<6.2f} '
                  f'{r["full50"]:>7.2f}/{r["full95"]:<7.2f} {r["pre"]:>5.2f} '
                  f'{r["infer"]:>6.2f} {r["post"]:>5.2f} '
                  f'{r["bare_fps"]:>8.1f} {r["full_fps"]:>10.1f} {r["ratio"]:>6.3f}', flush=True)


if __name__ == '__main__':
    main()
