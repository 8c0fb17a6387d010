"""Optimize the embedded model with every recipe and input size, then benchmark all variants.

Usage::

    .venv/bin/python benchmarks/bench_optimize.py --out /tmp/bench-optimize
        [--model nanodet-m-416] [--sizes 320 416 512] [--iterations 100] [--threads 0]
        [--backends onnxruntime openvino litert] [--calib DIR|VIDEO] [--rounds 3]
        [--rank-by fps_1t]
        [--skip-optimize]

It is ``edge-vision optimize --out OUT/models ...`` followed by
``edge-vision bench --models MODEL OUT/models --out OUT/report ...``: the variants go to
``OUT/models`` (manifests, recipes), the reports to ``OUT/report`` (bench.json, bench.md,
bench.png). The Markdown report is printed at the end; progress goes to stderr. Nothing is
written outside ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edge_vision_core.optimize import OptimizeConfig, optimize_model
from edge_vision_core.optimize.bench import BenchConfig, run_benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='output folder (models/ and report/)')
    parser.add_argument('--model', default='nanodet-m-416')
    parser.add_argument('--sizes', nargs='+', type=int, default=[320, 416, 512])
    parser.add_argument('--iterations', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--backends', nargs='+', default=[])
    parser.add_argument('--rank-by', default='fps_1t', choices=('fps', 'fps_1t'),
                        help='best variant per backend by N-thread or 1-thread throughput '
                             '(default fps_1t: steadier where other processes use the cores)')
    parser.add_argument('--rounds', type=int, default=3,
                        help='interleaved rounds; each row keeps its fastest (default 3)')
    parser.add_argument('--calib', default='')
    parser.add_argument('--skip-optimize', action='store_true',
                        help='benchmark the variants already in OUT/models')
    args = parser.parse_args()
    out = Path(args.out)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if not args.skip_optimize:
        t0 = time.perf_counter()
        made = optimize_model(args.model, out / 'models',
                              OptimizeConfig(sizes=tuple(args.sizes), calibration=args.calib),
                              progress=say)
        say(f'optimize: {len(made)} variants in {time.perf_counter() - t0:.0f} s')
    t0 = time.perf_counter()
    run_benchmark([args.model, out / 'models'], out / 'report',
                  BenchConfig(backends=tuple(args.backends), threads=args.threads,
                              iterations=args.iterations, warmup=args.warmup,
                              rounds=args.rounds, rank_by=args.rank_by),
                  progress=say)
    say(f'bench: {time.perf_counter() - t0:.0f} s')
    print((out / 'report' / 'bench.md').read_text(encoding='utf-8'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
