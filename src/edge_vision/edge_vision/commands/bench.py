"""Measure model variants on every installed backend and device; JSON, Markdown and a PNG.

Examples::

    edge-vision bench --models nanodet-m-416 optimized/ --out report/
    edge-vision bench --models nanodet-m-416 optimized/ --out report/ --backends onnxruntime
    edge-vision bench --models optimized/ --reference nanodet-m-416 --images frames/ --out r/

For every model file x installed backend that reads it x device (cpu; cuda/tensorrt, GPU/NPU,
edgetpu where present) it measures, each in fresh processes: latency p50/p95/p99 of the bare
inference call, throughput with N threads (``--threads``, default all cores) and with 1 thread,
load time, peak RSS, file size, and the agreement with the FP32 reference (the first model, or
``--reference``: its FP32 ONNX on ONNX Runtime CPU) on a fixed image set: mAP@0.5 of the
variant's detections against the reference's, and the mean IoU of matched boxes. Writes
``bench.json`` (with the machine description and the SHA-256 of the images), ``bench.md`` and
``bench.png`` (latency vs agreement) into ``--out``; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys

HELP = 'benchmark model variants per backend/device: latency, throughput, memory, agreement'

_VERDICT = {True: 'met', False: 'not met', None: 'no INT8 row'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--models', nargs='+', default=['nanodet-m-416'], metavar='MODEL',
                        help='registered names, manifest YAMLs or folders of manifests (e.g. '
                             'the output of edge-vision optimize); default nanodet-m-416')
    parser.add_argument('--out', metavar='DIR', help='folder for the reports (created)')
    parser.add_argument('--reference', default='',
                        help='model whose FP32 ONNX on ONNX Runtime CPU is the agreement '
                             'reference (default: the first of --models)')
    parser.add_argument('--backends', nargs='+', default=[],
                        help='only these backends (default: every installed one)')
    parser.add_argument('--devices', nargs='+', default=[],
                        help='only these devices, e.g. cpu cuda GPU (default: all here)')
    parser.add_argument('--threads', type=int, default=0,
                        help='runtime threads of the N-thread run (default 0: all cores)')
    parser.add_argument('--no-single-thread', action='store_true',
                        help='skip the 1-thread throughput run')
    parser.add_argument('--iterations', type=int, default=50,
                        help='timed inferences per measurement (default 50)')
    parser.add_argument('--warmup', type=int, default=5,
                        help='untimed inferences first (default 5)')
    parser.add_argument('--rounds', type=int, default=1,
                        help='measure all rows this many times, interleaved, keeping each '
                             "row's fastest round (default 1)")
    parser.add_argument('--images', default='', metavar='DIR|VIDEO',
                        help='evaluation images (default: 21 fixed views of scikit-image '
                             'photographs)')
    parser.add_argument('--image-count', type=int, default=64,
                        help='at most this many evaluation images from --images (default 64)')
    parser.add_argument('--rank-by', default='fps', choices=('fps', 'fps_1t'),
                        help='throughput that names the best variant per backend: fps (N '
                             'threads, default) or fps_1t (1 thread: steadier on a busy '
                             'machine)')
    parser.add_argument('--min-agreement', type=float, default=0.9,
                        help='mAP@0.5 a variant needs to be named best of its backend '
                             '(default 0.9)')


def run(args: argparse.Namespace) -> int:
    from edge_vision_core import ConfigError
    from edge_vision_core.optimize.bench import BenchConfig, run_benchmark

    if not args.out:
        raise ConfigError('give --out DIR: the folder for bench.json, bench.md and bench.png')
    config = BenchConfig(backends=tuple(args.backends), devices=tuple(args.devices),
                         threads=args.threads, single_thread=not args.no_single_thread,
                         warmup=args.warmup, iterations=args.iterations, rounds=args.rounds,
                         reference=args.reference, images=args.images,
                         image_count=args.image_count, min_agreement=args.min_agreement,
                         rank_by=args.rank_by)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = run_benchmark(args.models, args.out, config, progress=progress)
    for backend, best in report['best_per_backend'].items():
        print(f'best on {backend}: {best["variant"]} ({best["file"]}, {best["device"]}): '
              f'{best["tradeoff"]}')
    target = report['targets']['int8_onnxruntime_cpu']
    print(f'INT8 ONNX Runtime CPU target (>= {target["required_speedup"]}x, mAP@0.5 >= '
          f'{target["required_map50"]}): '
          f'{_VERDICT[target["met"]]}')
    progress(f'reports: {args.out}/bench.json, bench.md, bench.png')
    return 0
