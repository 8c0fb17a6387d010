#!/usr/bin/env python3
"""Anomaly detection benchmark: small, faint defects under ordinary nuisance.

1. Accuracy. Generates the benchmark of ``edge_vision_core.anomaly.small_defects`` (real
   scikit-image textures and scenes; every image shifted/rotated/scaled a little, with
   brightness, illumination gradients, noise and blur; defects 10-25 px at 256 px: faint stains,
   thin scratches, dents, small foreign patches) into a temporary folder and, per configuration,
   fits on every category's ``train/good`` (80 images by default) and reports per category and
   defect type image AUROC, pixel AUROC and PRO, plus ms per image, fit seconds and the size of
   the model (memory-bank rows). Two splits:

   - ``tuning``: brick, grass, camera, coffee, generator seed 0 (the settings were chosen here);
   - ``held-out``: gravel, text, astronaut, moon, seed 1 (never looked at while tuning).

   Configurations (``--configs``): ``default`` (the shipped defaults: EfficientNet-Lite0), the
   round-1 default ``nanodet-r1`` (NanoDet backbone + colour statistics at 320 px), and
   variations of the default (input size, patch stride, layers, bank size, frame score;
   ``no-contrast`` is the default without its local-contrast layer).

2. Nearest-neighbour search (``--nn``): time per frame (1600 patches) to find each patch's
   nearest memory-bank row, per bank size, for NumPy/BLAS brute force (2 and 1 threads), FAISS
   HNSW (alone and with the highest scores made exact, as the detector runs it), OpenCV's FLANN
   kd-trees and SciPy's cKDTree (exact and eps=1 approximate; up to 8192 rows); the fraction of
   patches whose exact nearest distance was found is reported.

3. Speed (``--speed``): ``score()`` per 256x256 frame (median of the stages, best, and CPU
   time of all threads) of each configuration of ``--configs`` on each backend of
   ``--backends`` (onnxruntime, OpenVINO), default threads, side by side (rounds over the same
   20 frames, every detector in turn), with the fit time of 80 frames.

``--write DIR`` writes a split in the MVTec-AD layout for ``edge-vision eval-anomaly --data DIR
--fit --json`` and exits.

Usage::

    .venv/bin/python benchmarks/bench_anomaly.py                       # default vs round 1
    .venv/bin/python benchmarks/bench_anomaly.py --configs default,input-320,stride4
    .venv/bin/python benchmarks/bench_anomaly.py --split held-out --configs default,nanodet-r1
    .venv/bin/python benchmarks/bench_anomaly.py --nn --speed --no-accuracy
    .venv/bin/python benchmarks/bench_anomaly.py --no-accuracy --speed \
        --configs lite0-colour,default,bank-2048,input-256          # side by side
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_anomaly.py --no-accuracy --speed \
        --backends onnxruntime --set threads=1 --configs ...        # one thread: CPU per image
    .venv/bin/python benchmarks/bench_anomaly.py --write /tmp/heldout --split held-out
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

import numpy as np

from edge_vision_core.anomaly import AnomalyConfig, AnomalyDetector
from edge_vision_core.anomaly.small_defects import (
    HELDOUT_SMALL_CATEGORIES,
    SMALL_DEFECTS,
    TUNING_SMALL_CATEGORIES,
    SmallDefectConfig,
    make_small_defect_benchmark,
)
from edge_vision_core.eval.anomaly import evaluate_category, read_anomaly_dataset
from edge_vision_core.inference.backends import available_backends

#: split -> (categories, generator seed).
SPLITS = {'tuning': (TUNING_SMALL_CATEGORIES, 0), 'held-out': (HELDOUT_SMALL_CATEGORIES, 1)}
#: name -> AnomalyConfig overrides of the defaults.
CONFIGS: dict[str, dict] = {
    'default': {},
    'nanodet-r1': {'backbone': 'nanodet-m-416-backbone', 'input_width': 0, 'input_height': 0,
                   'max_input_side': 320, 'layers': ('stride8', 'stride16', 'color8',
                                                     'color16'), 'patch_stride': 8,
                   'score_top_k': 1, 'reweight_neighbors': 0, 'max_memory_bank': 4096},
    # the default before the round-2 measurements: EfficientNet-Lite0 + colour statistics
    'lite0-colour': {'layers': ('stride8', 'stride16', 'color8', 'color16'),
                     'max_memory_bank': 4096, 'feature_dim': 128},
    'input-256': {'input_width': 256, 'input_height': 256},
    'input-320': {'input_width': 320, 'input_height': 320},
    'input-384': {'input_width': 384, 'input_height': 384},
    'stride4': {'patch_stride': 4},
    'layers-8-16': {'layers': ('stride8', 'stride16')},
    # the default before local contrast: the CNN stages alone
    'no-contrast': {'layers': ('stride4', 'stride8', 'stride16')},
    'contrast16': {'layers': ('stride4', 'stride8', 'stride16', 'contrast16')},
    'no-background': {'background_quantile': 0.0},
    # the default before local contrast and the background level (plain patch distances)
    'plain': {'layers': ('stride4', 'stride8', 'stride16'), 'background_quantile': 0.0},
    'with-colour': {'layers': None},  # filled in main(): the default layers + color8, color16
    # the default before every patch was kept: a greedy coreset of 8192 rows, exact search
    'coreset-8192': {'coreset_ratio': 0.1, 'max_memory_bank': 8192, 'search': 'exact'},
    'exact': {'search': 'exact'},
    'ef-96': {'search_ef': 96},
    'bank-1024': {'max_memory_bank': 1024},
    'bank-2048': {'max_memory_bank': 2048},
    'bank-4096': {'max_memory_bank': 4096},
    'bank-8192': {'max_memory_bank': 8192},
    'dim-128': {'feature_dim': 128},
    # the step before the last default: 4096 rows of 128 dimensions (same search cost)
    'bank-4096-dim-128': {'max_memory_bank': 4096, 'feature_dim': 128},
    'no-projection': {'feature_dim': 4096},
    'no-reweight': {'reweight_neighbors': 0},
    'reweight-9': {'reweight_neighbors': 9},
    'no-position': {'position_correction': False},
    'ratio-0.25': {'coreset_ratio': 0.25},
    'top1': {'score_top_k': 1},
    'top10': {'score_top_k': 10},
    'sigma-2': {'smoothing_sigma': 2.0},
    'pool-5': {'patch_pool': 5},
    'padim': {'method': 'padim'},
}


def fmt(value: float | None) -> str:
    return '  -  ' if value is None else f'{value:.3f}'


def mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def write_split(root: Path, split: str, train: int, good: int, per_defect: int) -> None:
    categories, seed = SPLITS[split]
    spec = SmallDefectConfig(categories=categories, train_images=train,
                             test_good_images=good, test_images_per_defect=per_defect,
                             seed=seed)
    t0 = time.perf_counter()
    make_small_defect_benchmark(root, spec)
    print(f'wrote the {split} split to {root} in {time.perf_counter() - t0:.1f} s: '
          f'{", ".join(categories)}; {train} train / {good} good / {per_defect} per defect '
          f'({", ".join(SMALL_DEFECTS)}), 256 px, seed {seed}', flush=True)


def accuracy(root: Path, categories: tuple[str, ...], name: str, cfg: AnomalyConfig) -> dict:
    rows = {}
    for category in categories:
        with AnomalyDetector(cfg) as det:
            res = evaluate_category(det, read_anomaly_dataset(root / category))
            bank = det.model_info.fit['model_size']
        rows[category] = {
            'image_auroc': res.image_auroc, 'pixel_auroc': res.pixel_auroc, 'pro': res.pro,
            'fit_seconds': res.fit_seconds, 'ms_per_image': res.ms_per_frame,
            'model_size': bank, 'false_alarms': f'{res.false_alarms}/{res.num_good}',
            'flagged': f'{res.detected}/{res.num_defect}',
            'per_defect': {d.defect: {'image_auroc': d.image_auroc,
                                      'pixel_auroc': d.pixel_auroc, 'pro': d.pro}
                           for d in res.per_defect}}
        r = rows[category]
        print(f'  {name:14s} {category:10s} image {fmt(r["image_auroc"])} pixel '
              f'{fmt(r["pixel_auroc"])} PRO {fmt(r["pro"])} | fit {res.fit_seconds:5.1f} s '
              f'{res.ms_per_frame:6.1f} ms/image bank {bank:5d} | false alarms '
              f'{r["false_alarms"]} flagged {r["flagged"]}', flush=True)
        for defect, d in r['per_defect'].items():
            print(f'  {"":14s} {"":10s}   {defect:8s} image {fmt(d["image_auroc"])} pixel '
                  f'{fmt(d["pixel_auroc"])} PRO {fmt(d["pro"])}', flush=True)
    summary = {k: mean([r[k] for r in rows.values()])
               for k in ('image_auroc', 'pixel_auroc', 'pro', 'fit_seconds', 'ms_per_image')}
    per_defect = {d: {k: mean([r['per_defect'][d][k] for r in rows.values()
                               if d in r['per_defect']])
                      for k in ('image_auroc', 'pixel_auroc', 'pro')}
                  for d in SMALL_DEFECTS}
    return {'categories': rows, 'mean': summary, 'per_defect_mean': per_defect}


def nn_search(dims: tuple[int, ...], banks: tuple[int, ...], repeats: int = 7) -> list[dict]:
    """Time per 1600-patch frame (the default 320x320 input at stride 8) of nearest-bank-row
    search: NumPy/BLAS brute force, FAISS HNSW (alone, and with the 16 highest scores made
    exact as the detector does), OpenCV FLANN and SciPy cKDTree (the last two up to 8192
    rows: they were far behind there). The bank is clustered with near-duplicates, as the
    patches of many views of one scene are."""
    import cv2
    from threadpoolctl import threadpool_limits

    from edge_vision_core.anomaly.patchcore import (
        PatchCoreModel,
        hnsw_available,
        nearest_distances,
    )

    rng = np.random.default_rng(0)
    rows = []
    for dim in dims:
        for size in banks:
            centres = rng.normal(0, 1, (max(size // 80, 1), dim)).astype(np.float32)
            bank = (centres[rng.integers(0, len(centres), size)]
                    + rng.normal(0, 0.15, (size, dim))).astype(np.float32)
            queries = (bank[rng.integers(0, size, 1600)]
                       + rng.normal(0, 0.15, (1600, dim))).astype(np.float32)
            exact = nearest_distances(queries, bank)
            timings = {}
            for label, threads in (('numpy-blas-2t', 2), ('numpy-blas-1t', 1)):
                with threadpool_limits(threads, user_api='blas'):
                    best = min(_timed(nearest_distances, queries, bank)
                               for _ in range(repeats))
                timings[label] = (best, 1.0)
            if hnsw_available():
                for top in (0, 16):
                    model = PatchCoreModel(bank, search='hnsw', exact_top=top)
                    grid = queries.reshape(40, 40, dim)
                    model.score(grid)  # builds the graph
                    best = min(_timed(model.score, grid) for _ in range(repeats))
                    found = model.score(grid).ravel()
                    recall = float(np.mean(np.abs(found - exact) < 1e-3))
                    timings[f'faiss-hnsw-ef32-top{top}'] = (best, recall)
            if size <= 8192:
                index = cv2.flann_Index(bank, {'algorithm': 1, 'trees': 4})  # kd-tree forest
                params = {'checks': 64}
                best = min(_timed(index.knnSearch, queries, 1, params=params)
                           for _ in range(repeats))
                _, dist = index.knnSearch(queries, 1, params=params)
                recall = float(np.mean(np.abs(np.sqrt(dist[:, 0]) - exact) < 1e-3))
                timings['opencv-flann-kdtree'] = (best, recall)
                try:
                    from scipy.spatial import cKDTree
                except ImportError:
                    cKDTree = None
                if cKDTree is not None:
                    tree = cKDTree(bank)
                    for eps in (0.0, 1.0):  # exact, then (1 + eps)-approximate
                        best = min(_timed(tree.query, queries, k=1, eps=eps, workers=1)
                                   for _ in range(max(1, repeats // 3)))
                        dist, _ = tree.query(queries, k=1, eps=eps, workers=1)
                        recall = float(np.mean(np.abs(dist - exact) < 1e-3))
                        timings[f'scipy-ckdtree-eps{eps:g}'] = (best, recall)
            for label, (ms, rec) in timings.items():
                rows.append({'dim': dim, 'bank': size, 'method': label, 'ms': ms,
                             'exact_fraction': rec})
                print(f'  D {dim:4d} bank {size:6d} {label:22s} {ms:7.2f} ms/frame, exact '
                      f'nearest for {100 * rec:5.1f} % of patches', flush=True)
    return rows


def _timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1e3


def speed(root: Path, category: str, configs: dict[str, AnomalyConfig], backends: list[str],
          repeats: int) -> list[dict]:
    """Time per 256x256 frame and fit time of each configuration on each backend, side by side.

    Every (configuration, backend) is fitted once on the category's 80 normal frames; then
    ``repeats`` rounds each score the same 20 test frames with every detector in turn, so a
    change of the machine's load hits all of them alike.
    """
    import cv2

    dataset = read_anomaly_dataset(root / category)
    frames = [cv2.imread(str(p)) for p in dataset.train]
    tests = [cv2.imread(str(s.path)) for s in dataset.test][:20]
    runs = []
    for name, base in configs.items():
        for backend in backends:
            det = AnomalyDetector(AnomalyConfig(**{**base.__dict__, 'backend': backend}))
            t0, c0 = time.perf_counter(), time.process_time()
            report = det.fit(frames)
            fit = (time.perf_counter() - t0, time.process_time() - c0)
            for image in tests[:3]:
                det.score(image)
            runs.append({'name': name, 'backend': backend, 'det': det, 'report': report,
                         'fit': fit, 'stages': {}, 'cpu': 0.0})
    try:
        for _ in range(repeats):
            for run in runs:
                c0 = time.process_time()
                for image in tests:
                    t = run['det'].score(image).timings
                    for k in ('pre_ms', 'features_ms', 'score_ms', 'post_ms', 'total_ms'):
                        run['stages'].setdefault(k, []).append(getattr(t, k))
                # CPU time of all threads: on a machine shared with other work the wall time
                # includes waiting for a core, this does not (it is what idle cores need)
                run['cpu'] += time.process_time() - c0
    finally:
        for run in runs:
            run['det'].close()
    rows = []
    for run in runs:
        report, per_stage = run['report'], run['stages']
        med = {k: statistics.median(v) for k, v in per_stage.items()}
        low = min(per_stage['total_ms'])
        cpu_ms = run['cpu'] * 1e3 / (repeats * len(tests))
        fit_s, fit_cpu = run['fit']
        row = {'config': run['name'], 'backend': run['backend'],
               'input_size': list(report.input_size), 'bank_rows': report.model_size,
               'fit_frames': report.num_images, 'fit_seconds': fit_s,
               'fit_cpu_seconds': fit_cpu, **med, 'min_total_ms': low,
               'cpu_ms_per_image': cpu_ms}
        rows.append(row)
        print(f'  {run["name"]:18s} {run["backend"]:11s} {category} input '
              f'{report.input_size[0]}x{report.input_size[1]} bank {report.model_size:5d} fit '
              f'{report.num_images} frames {fit_s:5.1f} s (CPU {fit_cpu:5.1f} s) | pre '
              f'{med["pre_ms"]:.1f} features {med["features_ms"]:.1f} score '
              f'{med["score_ms"]:.1f} post {med["post_ms"]:.1f} = {med["total_ms"]:.1f} ms '
              f'median, {low:.1f} ms best, {cpu_ms:.1f} ms CPU', flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--configs', default='default,nanodet-r1',
                        help=f'comma-separated, from {", ".join(CONFIGS)} (default,nanodet-r1)')
    parser.add_argument('--split', choices=(*SPLITS, 'both'), default='tuning')
    parser.add_argument('--root', help='an existing folder of the split (default: generate)')
    parser.add_argument('--write', metavar='DIR',
                        help='write the split in MVTec-AD layout to DIR and exit')
    parser.add_argument('--train', type=int, default=80, help='normal training images (80)')
    parser.add_argument('--good', type=int, default=20, help='normal test images (20)')
    parser.add_argument('--per-defect', type=int, default=10, help='images per defect (10)')
    parser.add_argument('--categories', default='', help='only these categories')
    parser.add_argument('--no-accuracy', action='store_true')
    parser.add_argument('--nn', action='store_true', help='nearest-neighbour search timings')
    parser.add_argument('--speed', action='store_true', help='per-backend timings')
    parser.add_argument('--repeats', type=int, default=3, help='speed: passes over 20 images')
    parser.add_argument('--backends', default='onnxruntime,openvino',
                        help='speed: backends to time (those installed)')
    parser.add_argument('--set', action='append', default=[], metavar='FIELD=JSON',
                        help='override an AnomalyConfig field in every configuration')
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
    splits = list(SPLITS) if args.split == 'both' else [args.split]
    if args.write:
        for split in splits:
            write_split(Path(args.write) / (split if len(splits) > 1 else ''), split,
                        args.train, args.good, args.per_defect)
        return 0
    base = AnomalyConfig(**overrides)
    results: dict = {'defaults': {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in base.__dict__.items()}, 'splits': {}}
    configs = [c.strip() for c in args.configs.split(',') if c.strip()]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        parser.error(f'unknown configs {unknown}; known: {list(CONFIGS)}')
    CONFIGS['with-colour'] = {'layers': (*AnomalyConfig().layers, 'color8', 'color16')}
    with tempfile.TemporaryDirectory(prefix='bench_anomaly_') as tmp:
        for split in splits:
            categories, _ = SPLITS[split]
            root = Path(args.root) if args.root else Path(tmp) / split
            if not args.root:
                write_split(root, split, args.train, args.good, args.per_defect)
            if args.categories:
                categories = tuple(c for c in args.categories.split(',') if c)
            out: dict = {}
            if not args.no_accuracy:
                for name in configs:
                    cfg = AnomalyConfig(**{**base.__dict__, **CONFIGS[name]})
                    print(f'{split}: {name} ({cfg.backbone}, {cfg.method}, layers '
                          f'{",".join(cfg.layers)})', flush=True)
                    out[name] = accuracy(root, categories, name, cfg)
            if args.speed:
                backends = [b for b in args.backends.split(',') if b in available_backends()]
                print(f'\n{split}: speed at 256x256 ({", ".join(configs)}; '
                      f'{", ".join(backends)}), side by side:')
                out['speed'] = speed(root, categories[0],
                                     {n: AnomalyConfig(**{**base.__dict__, **CONFIGS[n]})
                                      for n in configs}, backends, args.repeats)
            results['splits'][split] = out
            if out and not args.no_accuracy:
                print(f'\n{split} ({", ".join(categories)}): mean over categories')
                print(f'{"configuration":14s} | image  pixel  PRO   | fit s  ms/img | '
                      + ' | '.join(f'{d:^19s}' for d in SMALL_DEFECTS))
                for name in configs:
                    m, pd = out[name]['mean'], out[name]['per_defect_mean']
                    cells = ' | '.join(f'{fmt(pd[d]["image_auroc"])} / {fmt(pd[d]["pro"])}  '
                                       for d in SMALL_DEFECTS)
                    print(f'{name:14s} | {fmt(m["image_auroc"])} {fmt(m["pixel_auroc"])} '
                          f'{fmt(m["pro"])} | {m["fit_seconds"]:5.1f} {m["ms_per_image"]:6.1f} '
                          f'| {cells}')
                print('(per defect: image AUROC / PRO)\n')
    if args.nn:
        print('nearest-neighbour search, 1600 patches per frame:')
        results['nn'] = nn_search((64,), (8192, 32768, 131072))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
