"""`edge-vision run` (what `make run` does) with round 1's FP32 default against today's default.

Usage::

    .venv/bin/python benchmarks/bench_run.py [--rounds 3] [--models nanodet-m-416 auto]
        [--source clip.mp4]

Each round plays the bundled clip once per model, alternating (other load on the machine hits
both alike), through the whole composed lossless graph (camera, preprocess, inference, tracker,
overlay, recorder writing annotated.mp4), each in its own process as ``make run`` does. ``auto``
uses this device's cached tuning when there is one (``make run`` tunes first: run
``edge-vision tune`` before this benchmark to compare what ``make run`` runs).
Prints per model the pipeline fps of every round (best, median, spread) and the ratio to the
first model's, then compares the last round's ``tracks.jsonl`` files with the first model's:

- tracks per frame and track ids (a tracker's count of distinct objects);
- detection agreement of the tracked boxes (mAP@0.5 with the first model's as reference,
  :func:`edge_vision_core.eval.detection.detection_agreement`), the matched boxes' mean IoU,
  precision and recall.
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

import numpy as np


def run_once(model: str, out: Path, source: str) -> dict:
    cmd = [sys.executable, '-m', 'edge_vision.cli', 'run', '--model', model, '--out', str(out)]
    if source:
        cmd += ['--source', source]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        raise SystemExit(f'{model}: edge-vision run failed:\n{proc.stdout}\n{proc.stderr}')
    plan = next((line for line in proc.stdout.splitlines() if line.startswith('inference:')),
                '')
    report = json.loads((out / 'report.json').read_text())
    report['plan'] = plan
    return report


def load_tracks(path: Path) -> dict[int, list[dict]]:
    frames: dict[int, list[dict]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        frames.setdefault(int(row['frame']), []).append(row)
    return frames


def compare(reference: Path, other: Path) -> dict[str, float]:
    from edge_vision_core import Detections
    from edge_vision_core.eval.detection import detection_agreement

    a, b = load_tracks(reference), load_tracks(other)
    frames = sorted(set(a) | set(b))

    def dets(rows: list[dict]) -> Detections:
        if not rows:
            return Detections.empty()
        return Detections(np.array([r['box'] for r in rows], np.float32),
                          np.array([r['score'] for r in rows], np.float32),
                          np.array([r['class_id'] for r in rows], np.int32))

    agreement = detection_agreement([dets(a.get(f, [])) for f in frames],
                                    [dets(b.get(f, [])) for f in frames])
    per_frame_a = np.array([len(a.get(f, [])) for f in frames])
    per_frame_b = np.array([len(b.get(f, [])) for f in frames])
    return {
        'frames': len(frames),
        'tracks per frame (ref)': float(per_frame_a.mean()),
        'tracks per frame': float(per_frame_b.mean()),
        'mean |diff| per frame': float(np.abs(per_frame_a - per_frame_b).mean()),
        'track ids (ref)': len({r['track_id'] for rows in a.values() for r in rows}),
        'track ids': len({r['track_id'] for rows in b.values() for r in rows}),
        'mAP@0.5 vs ref': agreement.map50,
        'mean IoU': agreement.mean_iou,
        'precision': agreement.precision,
        'recall': agreement.recall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=['nanodet-m-416', 'auto'])
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--source', default='')
    args = parser.parse_args()
    fps: dict[str, list[float]] = {m: [] for m in args.models}
    plans: dict[str, str] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix='bench_run_') as tmp:
        outs = {m: Path(tmp) / f'out{i}' for i, m in enumerate(args.models)}
        for index in range(args.rounds):
            for model in args.models:
                report = run_once(model, outs[model], args.source)
                fps[model].append(report['fps'])
                plans[model] = report['plan']
                print(f'round {index + 1}: {model:<16} {report["fps"]:6.1f} fps  '
                      f'(load {os.getloadavg()[0]:.1f})', flush=True)
        loads.append(os.getloadavg()[0])
        ref = args.models[0]
        print(f'\n`edge-vision run` on the clip, {args.rounds} alternating rounds, load average '
              f'{loads[0]:.1f} -> {loads[1]:.1f}')
        print(f'{"model":<16} {"fps best":>8} {"median":>7} {"min":>6} {"vs " + ref:>20}  plan')
        for model in args.models:
            ratio = statistics.median(f / r for f, r in zip(fps[model], fps[ref], strict=True))
            print(f'{model:<16} {max(fps[model]):8.1f} {statistics.median(fps[model]):7.1f} '
                  f'{min(fps[model]):6.1f} {ratio:19.2f}x  {plans[model]}')
        print('(vs: median over rounds of the ratio within a round)')
        for model in args.models[1:]:
            print(f'\ntracks.jsonl of {model} against {ref} (last round):')
            for key, value in compare(outs[ref] / 'tracks.jsonl',
                                      outs[model] / 'tracks.jsonl').items():
                print(f'  {key:<24} {value:.3f}' if isinstance(value, float)
                      else f'  {key:<24} {value}')


if __name__ == '__main__':
    main()
