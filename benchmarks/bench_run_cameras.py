"""`edge-vision run --cameras N`: one shared, batched detector against one detector per camera.

Usage::

    .venv/bin/python benchmarks/bench_run_cameras.py [--cameras 2 4] [--rounds 3]
        [--max-frames 300] [--model auto]

Every camera plays the bundled clip losslessly through its own composed chain (camera,
preprocess, inference, tracker, overlay, recorder; no video written, so the recorder's encoder
does not dominate), all in one ``edge-vision run`` process as a user runs it. Per camera count,
the two ways alternate within each round (other load on the machine hits both alike):

- ``batched``: the default, every camera's inference node in one ``batch_group`` (one detector
  per worker of the plan, taking the frames waiting from all cameras as one batch);
- ``per-camera``: ``--no-batch``, each camera's inference node with its own detector(s).

Prints per way the total fps of every round (median and spread), the process's CPU per frame,
its peak resident memory (``wait4``'s ``ru_maxrss``), the median camera-stamp-to-tracks latency
(p50 of the cameras' p50) and, for ``batched``, the mean batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WAYS = {'batched': [], 'per-camera': ['--no-batch']}


def run_once(cameras: int, extra: list[str], args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, '-m', 'edge_vision.cli', 'run', '--cameras', str(cameras),
           '--model', args.model, '--no-video', '--out', str(out), *extra]
    if args.max_frames:
        cmd += ['--max-frames', str(args.max_frames)]
    with open(out.parent / f'{out.name}.log', 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f'{" ".join(cmd)} failed (exit {proc.returncode}):\n'
                         f'{(out.parent / f"{out.name}.log").read_text()[-3000:]}')
    summary = json.loads((out / 'report.json').read_text())
    per_camera = list(summary['cameras'].values())
    latencies = [r['end_to_end_latency_ms']['p50'] for r in per_camera
                 if r['end_to_end_latency_ms']['p50'] is not None]
    batch = [r['stages']['inference'].get('batch_mean') for r in per_camera]
    return {'fps': summary['fps'], 'frames': summary['frames'],
            'cpu_ms': per_camera[0]['cpu_ms_per_frame'],
            'rss_mb': usage.ru_maxrss / 1024.0,
            'latency_ms': statistics.median(latencies) if latencies else float('nan'),
            'batch': batch[0] if batch and batch[0] is not None else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cameras', type=int, nargs='+', default=[2, 4])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--max-frames', type=int, default=0,
                        help='frames per camera (0 = the whole clip)')
    parser.add_argument('--model', default='auto')
    args = parser.parse_args()
    load = os.getloadavg()
    results: dict[tuple[int, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix='bench_run_cameras_') as tmp:
        for r in range(args.rounds):
            for cameras in args.cameras:
                for way, extra in WAYS.items():
                    out = Path(tmp) / f'{cameras}-{way}-{r}'
                    res = run_once(cameras, extra, args, out)
                    results.setdefault((cameras, way), []).append(res)
                    print(f'round {r + 1}: {cameras} cameras {way:10s} {res["fps"]:6.1f} fps',
                          flush=True)
    print(f'\nedge-vision run --cameras N, model {args.model}, {args.rounds} rounds, load '
          f'{load[0]:.1f} -> {os.getloadavg()[0]:.1f} (median over rounds)')
    print(f'{"cameras":>7s} {"way":10s} {"fps in all":>10s} {"spread":>13s} {"CPU ms/frame":>12s} '
          f'{"peak MB":>8s} {"p50 ms":>7s} {"batch":>5s}')
    for (cameras, way), runs in results.items():
        fps = [x['fps'] for x in runs]
        batch = [x['batch'] for x in runs if x['batch'] is not None]
        print(f'{cameras:7d} {way:10s} {statistics.median(fps):10.1f} '
              f'{min(fps):6.1f}-{max(fps):6.1f} '
              f'{statistics.median(x["cpu_ms"] for x in runs):12.1f} '
              f'{statistics.median(x["rss_mb"] for x in runs):8.0f} '
              f'{statistics.median(x["latency_ms"] for x in runs):7.1f} '
              f'{(f"{statistics.median(batch):.2f}" if batch else "-"):>5s}')


if __name__ == '__main__':
    main()
