#!/usr/bin/env python3
"""Anomaly detection benchmark: accuracy per feature choice and method, fit time, speed.

1. Accuracy. Generates the MVTec-like benchmark of ``edge_vision_core.anomaly.synthetic_defects``
   (real scikit-image textures and scenes, synthetic defects, masks) into a temporary folder
   (or uses ``--root``) and, per configuration, fits on every category's ``train/good`` and
   reports image AUROC, pixel AUROC and PRO, split as the method was developed:

   - ``tuning``: brick, grass, gravel with scratch, stain, hole, foreign (what the settings were
     chosen on);
   - ``held-out defects``: the same textures with discolor, crack, smudge;
   - ``held-out images``: ihc, moon (textures), coffee, astronaut (fixed-view scenes), every
     defect kind.

   Feature choices: the COCO-pretrained NanoDet backbone (stride8 + stride16), the same network
   with random weights (He-normal, made here with the ``onnx`` package: what pretraining adds),
   the colour/gradient statistics alone (color8 + color16), and the default, pretrained
   backbone + colour statistics. Methods: PatchCore and PaDiM.

2. Speed. Fits the default model on 640x480 frames of a scene and times ``score()`` per frame
   (median of the stages, frames per second) on each installed backend (onnxruntime, OpenVINO)
   with the runtime's default threads and with one thread.

Usage::

    .venv/bin/python benchmarks/bench_anomaly.py              # everything (~12 min on 2 cores)
    .venv/bin/python benchmarks/bench_anomaly.py --quick      # fewer configurations/images
    .venv/bin/python benchmarks/bench_anomaly.py --speed-only
    .venv/bin/python benchmarks/bench_anomaly.py --configs default,colour --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge_vision_core.anomaly import AnomalyConfig, AnomalyDetector
from edge_vision_core.anomaly.features import DEFAULT_BACKBONE, resolve_backbone
from edge_vision_core.anomaly.synthetic_defects import (
    HELDOUT_CATEGORIES,
    HELDOUT_DEFECTS,
    TUNING_CATEGORIES,
    TUNING_DEFECTS,
    BenchmarkConfig,
    load_source_image,
    make_benchmark,
)
from edge_vision_core.eval.anomaly import evaluate_category, read_anomaly_dataset
from edge_vision_core.inference.backends import available_backends

PRETRAINED = ('stride8', 'stride16')
COLOUR = ('color8', 'color16')
#: name -> (backbone, layers, method); 'random' is replaced by the random-weight backbone.
CONFIGS = {
    'default': (DEFAULT_BACKBONE, PRETRAINED + COLOUR, 'patchcore'),
    'pretrained': (DEFAULT_BACKBONE, PRETRAINED, 'patchcore'),
    'random-weights': ('random', PRETRAINED, 'patchcore'),
    'random+colour': ('random', PRETRAINED + COLOUR, 'patchcore'),
    'colour': ('none', COLOUR, 'patchcore'),
    'default-padim': (DEFAULT_BACKBONE, PRETRAINED + COLOUR, 'padim'),
    'pretrained-padim': (DEFAULT_BACKBONE, PRETRAINED, 'padim'),
}
QUICK_CONFIGS = ('default', 'pretrained', 'random-weights', 'colour', 'default-padim')


def random_weight_backbone(folder: Path, seed: int = 0) -> Path:
    """A copy of the shipped backbone with He-normal random conv weights and zero biases."""
    import onnx
    from onnx import numpy_helper

    manifest = resolve_backbone(DEFAULT_BACKBONE)
    model = onnx.load(str(manifest.path))
    rng = np.random.default_rng(seed)
    inits = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != 'Conv':
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        fan_in = int(np.prod(weight.shape[1:]))
        new = rng.normal(0.0, np.sqrt(2.0 / fan_in), weight.shape).astype(np.float32)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(new, node.input[1]))
        if len(node.input) > 2:
            bias = numpy_helper.to_array(inits[node.input[2]])
            inits[node.input[2]].CopyFrom(numpy_helper.from_array(np.zeros_like(bias),
                                                                  node.input[2]))
    path = folder / 'nanodet-backbone-random.onnx'
    onnx.save(model, str(path))
    info = json.loads(Path(manifest.source).read_text())
    info.update(name='nanodet-backbone-random', file=path.name, sha256='',
                description='NanoDet backbone architecture with random He-normal weights')
    (folder / 'nanodet-backbone-random.json').write_text(json.dumps(info))
    return folder / 'nanodet-backbone-random.json'


def mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def accuracy(root: Path, configs: list[str], random_manifest: Path | None,
             base: AnomalyConfig) -> dict:
    """Per configuration: mean metrics on the three splits, fit time, per-category rows."""
    out = {}
    for name in configs:
        backbone, layers, method = CONFIGS[name]
        if backbone == 'random':
            backbone = str(random_manifest)
        cfg = AnomalyConfig(**{**base.__dict__, 'backbone': backbone, 'layers': layers,
                               'method': method})
        rows = {}
        splits: dict[str, dict[str, list]] = {
            s: {'image': [], 'pixel': [], 'pro': []}
            for s in ('tuning', 'held-out defects', 'held-out images')}
        fit_s, ms = [], []
        for category in [*TUNING_CATEGORIES, *HELDOUT_CATEGORIES]:
            if not (root / category).is_dir():
                continue
            with AnomalyDetector(cfg) as det:
                res = evaluate_category(det, read_anomaly_dataset(root / category))
            fit_s.append(res.fit_seconds)
            ms.append(res.ms_per_frame)
            rows[category] = {'image_auroc': res.image_auroc, 'pixel_auroc': res.pixel_auroc,
                              'pro': res.pro, 'false_alarms': res.false_alarms,
                              'num_good': res.num_good, 'detected': res.detected,
                              'num_defect': res.num_defect,
                              'per_defect': {d.defect: d.image_auroc for d in res.per_defect}}
            if category in TUNING_CATEGORIES:
                groups = {'tuning': TUNING_DEFECTS, 'held-out defects': HELDOUT_DEFECTS}
            else:
                groups = {'held-out images': tuple(d.defect for d in res.per_defect)}
            for split, defects in groups.items():
                chosen = [d for d in res.per_defect if d.defect in defects]
                if not chosen:
                    continue
                # image AUROC of the split: good images vs the split's defects, from scores
                splits[split]['image'].append(mean([d.image_auroc for d in chosen]))
                splits[split]['pixel'].append(mean([d.pixel_auroc for d in chosen]))
                splits[split]['pro'].append(mean([d.pro for d in chosen]))
            print(f'  {name:16s} {category:10s} image {res.image_auroc:.3f} pixel '
                  f'{res.pixel_auroc:.3f} PRO {res.pro:.3f} fit {res.fit_seconds:5.1f} s '
                  f'{res.ms_per_frame:5.1f} ms/image  false alarms {res.false_alarms}/'
                  f'{res.num_good}, flagged {res.detected}/{res.num_defect}', flush=True)
        out[name] = {'backbone': CONFIGS[name][0], 'layers': list(layers), 'method': method,
                     'splits': {s: {k: mean(v) for k, v in m.items()}
                                for s, m in splits.items()},
                     'fit_seconds_mean': mean(fit_s), 'ms_per_image_mean': mean(ms),
                     'categories': rows}
    return out


def scene_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """640x480 views of a fixed scene (coffee) with small shifts and sensor noise."""
    source = cv2.resize(load_source_image('coffee'), (704, 528))
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        x, y = rng.integers(0, 64), rng.integers(0, 48)
        noise = rng.normal(0, 2.0, (480, 640, 1))
        frames.append(np.clip(source[y:y + 480, x:x + 640] + noise, 0, 255).astype(np.uint8))
    return frames


def speed(base: AnomalyConfig, frames_fit: int, frames_timed: int) -> list[dict]:
    frames = scene_frames(frames_fit + frames_timed)
    rows = []
    for backend in [b for b in ('onnxruntime', 'openvino') if b in available_backends()]:
        for threads in (0, 1):
            cfg = AnomalyConfig(**{**base.__dict__, 'backend': backend, 'threads': threads})
            with AnomalyDetector(cfg) as det:
                report = det.fit(frames[:frames_fit])
                for image in frames[:3]:
                    det.score(image)  # warm-up
                timings = [det.score(image).timings for image in frames[frames_fit:]]
            med = {k: statistics.median(getattr(t, k) for t in timings)
                   for k in ('pre_ms', 'features_ms', 'score_ms', 'post_ms', 'total_ms')}
            row = {'backend': backend, 'threads': threads or 'default',
                   'input_size': list(report.input_size), 'bank_rows': report.model_size,
                   'fit_frames': report.num_images,
                   'fit_seconds': report.feature_seconds + report.fit_seconds,
                   **med, 'fps': 1000.0 / med['total_ms']}
            rows.append(row)
            print(f'  {backend:12s} threads {str(row["threads"]):8s} input '
                  f'{report.input_size[0]}x{report.input_size[1]} bank {report.model_size:5d} '
                  f'fit {row["fit_seconds"]:5.1f} s | pre {med["pre_ms"]:.1f} features '
                  f'{med["features_ms"]:.1f} score {med["score_ms"]:.1f} post '
                  f'{med["post_ms"]:.1f} = {med["total_ms"]:.1f} ms ({row["fps"]:.1f} fps)',
                  flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', help='existing benchmark folder (default: generate one)')
    parser.add_argument('--configs', default='',
                        help=f'comma-separated, from {", ".join(CONFIGS)} (default: all; '
                             f'--quick: {", ".join(QUICK_CONFIGS)})')
    parser.add_argument('--quick', action='store_true',
                        help='fewer configurations, fewer training and test images')
    parser.add_argument('--speed-only', action='store_true')
    parser.add_argument('--accuracy-only', action='store_true')
    parser.add_argument('--seed', type=int, default=0, help='benchmark generator seed (0)')
    parser.add_argument('--set', action='append', default=[], metavar='FIELD=JSON',
                        help='override an AnomalyConfig field for every run, e.g. '
                             'max_input_side=256 (repeatable)')
    parser.add_argument('--keep', metavar='DIR',
                        help='generate the benchmark into DIR and keep it (reuse with --root)')
    parser.add_argument('--json', metavar='FILE', help='also write the results as JSON')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition('=')
        try:
            overrides[key.strip()] = json.loads(value)
        except ValueError:
            overrides[key.strip()] = value
    base = AnomalyConfig(**overrides)
    results: dict = {'config': dict(base.__dict__)}
    with tempfile.TemporaryDirectory(prefix='bench_anomaly_') as tmp:
        tmp_path = Path(tmp)
        if not args.speed_only:
            if args.root:
                root = Path(args.root)
            else:
                root = Path(args.keep) if args.keep else tmp_path / 'data'
                spec = BenchmarkConfig(train_images=16 if args.quick else 24,
                                       test_good_images=8 if args.quick else 12,
                                       test_images_per_defect=4 if args.quick else 6,
                                       seed=args.seed)
                t0 = time.perf_counter()
                make_benchmark(root, spec)
                print(f'generated the benchmark in {time.perf_counter() - t0:.1f} s: '
                      f'{spec.image_size} px, {spec.train_images} train / '
                      f'{spec.test_good_images} good / {spec.test_images_per_defect} per '
                      f'defect per category, seed {spec.seed}')
                results['benchmark'] = spec.__dict__
            configs = [c.strip() for c in args.configs.split(',') if c.strip()] or list(
                QUICK_CONFIGS if args.quick else CONFIGS)
            unknown = sorted(set(configs) - set(CONFIGS))
            if unknown:
                parser.error(f'unknown configs {unknown}; known: {list(CONFIGS)}')
            random_manifest = None
            if any(CONFIGS[c][0] == 'random' for c in configs):
                random_manifest = random_weight_backbone(tmp_path)
            print('accuracy (fit on train/good of each category):')
            acc = accuracy(root, configs, random_manifest, base)
            results['accuracy'] = acc
            print()
            print(f'{"configuration":18s} {"method":9s} | {"tuning":^21s} | '
                  f'{"held-out defects":^21s} | {"held-out images":^21s} | fit s  ms/img')
            print(f'{"":18s} {"":9s} | ' + ' | '.join(['image  pixel  PRO  '] * 3) + ' |')

            def f(v: float | None) -> str:
                return '  -  ' if v is None else f'{v:.3f}'

            for name, r in acc.items():
                cells = ' | '.join(f'{f(r["splits"][s]["image"])}  {f(r["splits"][s]["pixel"])} '
                                   f'{f(r["splits"][s]["pro"])}'
                                   for s in ('tuning', 'held-out defects', 'held-out images'))
                print(f'{name:18s} {r["method"]:9s} | {cells} | {r["fit_seconds_mean"]:5.1f} '
                      f'{r["ms_per_image_mean"]:6.1f}')
        if not args.accuracy_only:
            print('\nspeed at 640x480 (default model, fixed-view scene):')
            results['speed'] = speed(base, 24 if args.quick else 60, 20 if args.quick else 40)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
