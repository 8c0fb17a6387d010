"""Score anomaly detection on an MVTec-AD-like folder: image AUROC, pixel AUROC and PRO.

The folder is one category or a folder of categories, each laid out as MVTec AD:
train/good/ (normal images to fit on), test/good/ (normal test images), test/<defect>/
(anomalous test images) and ground_truth/<defect>/<name>_mask.png (defect masks). With --fit
a model is fitted on train/good of every category (model options as anomaly-fit); with --model
one fitted model file scores the (single) category. Prints a table per category and defect
type: image AUROC (normal test images vs that defect), pixel AUROC, PRO (area under the
per-region-overlap curve up to 30 % false-positive rate, normalised), and how many images the
calibrated threshold flags; --json prints every number and the means over categories
(mean_image_auroc, mean_pixel_auroc, mean_pro). A benchmark in this layout with small, faint
defects comes from `benchmarks/bench_anomaly.py --write DIR`
(edge_vision_core.anomaly.small_defects).

Examples:
  edge-vision eval-anomaly --data mvtec/bottle --fit
  edge-vision eval-anomaly --data bench/ --fit --backend openvino --json
  edge-vision eval-anomaly --data line3_test/ --model line3.npz --heatmaps /tmp/heat
"""

from __future__ import annotations

import argparse
import json

from .anomaly_fit import add_model_arguments, config_from_args

HELP = 'image/pixel AUROC and PRO of anomaly detection on an MVTec-like folder'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--data', required=True, metavar='ROOT',
                        help='an MVTec-like category folder, or a folder of categories')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--model', metavar='FILE.npz',
                       help='a fitted model (edge-vision anomaly-fit) to score with')
    which.add_argument('--fit', action='store_true',
                       help='fit a model on each category\'s train/good first')
    parser.add_argument('--categories', default='', metavar='A,B',
                        help='only these categories (default: all found)')
    parser.add_argument('--pixel-max-side', type=int, default=256, metavar='PX',
                        help='pixel metrics on maps whose longer side is at most this '
                             '(0 = full resolution) (256)')
    parser.add_argument('--heatmaps', metavar='DIR',
                        help='also write each test image\'s heatmap (mono8, 128 = threshold)')
    parser.add_argument('--save-models', metavar='DIR',
                        help='with --fit: write each fitted model to DIR/<category>.npz')
    parser.add_argument('--json', action='store_true', help='print the results as JSON')
    add_model_arguments(parser)


def _fmt(value: float | None) -> str:
    return '   -  ' if value is None else f'{value:6.3f}'


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge_vision_core import ConfigError
    from edge_vision_core.anomaly import AnomalyDetector
    from edge_vision_core.eval.anomaly import (
        evaluate_category,
        find_categories,
        read_anomaly_dataset,
    )

    roots = find_categories(args.data)
    if args.categories:
        wanted = {c.strip() for c in args.categories.split(',') if c.strip()}
        missing = sorted(wanted - {r.name for r in roots})
        if missing:
            raise ConfigError(f'categories {missing} not found under {args.data}; found '
                              f'{[r.name for r in roots]}')
        roots = [r for r in roots if r.name in wanted]
    if args.model and len(roots) > 1:
        raise ConfigError(f'--model scores one category, {args.data} holds {len(roots)} '
                          f'({", ".join(r.name for r in roots)}); pass one category folder or '
                          f'use --fit')
    config = config_from_args(args)
    results = []
    for root in roots:
        dataset = read_anomaly_dataset(root)
        if args.model:
            detector = AnomalyDetector.from_file(args.model, config)
        else:
            detector = AnomalyDetector(config)
        with detector:
            result = evaluate_category(detector, dataset, fit=args.fit,
                                       pixel_max_side=args.pixel_max_side,
                                       heatmap_dir=args.heatmaps)
            if args.fit and args.save_models:
                detector.save(Path(args.save_models) / f'{dataset.category}.npz')
        results.append(result)
    if args.json:
        def mean(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return sum(known) / len(known) if known else None

        print(json.dumps({'categories': [r.as_dict() for r in results],
                          'mean_image_auroc': mean([r.image_auroc for r in results]),
                          'mean_pixel_auroc': mean([r.pixel_auroc for r in results]),
                          'mean_pro': mean([r.pro for r in results]),
                          'mean_ms_per_image': mean([r.ms_per_frame for r in results]),
                          'mean_fit_seconds': mean([r.fit_seconds for r in results])},
                         indent=2))
        return 0
    print(f'{"category":12s} {"defect":12s} {"images":>6s} {"image AUROC":>11s} '
          f'{"pixel AUROC":>11s} {"PRO":>6s} {"flagged":>9s}')
    for r in results:
        for d in r.per_defect:
            print(f'{r.category:12s} {d.defect:12s} {d.num_images:6d} {d.image_auroc:11.3f} '
                  f'{_fmt(d.pixel_auroc):>11s} {_fmt(d.pro)} {d.detected:4d}/{d.num_images}')
        print(f'{r.category:12s} {"good":12s} {r.num_good:6d} {"":11s} {"":11s} {"":6s} '
              f'{r.false_alarms:4d}/{r.num_good}')
        print(f'{r.category:12s} {"ALL":12s} {r.num_good + r.num_defect:6d} '
              f'{r.image_auroc:11.3f} {_fmt(r.pixel_auroc):>11s} {_fmt(r.pro)} '
              f'   threshold {r.threshold:.4g}, fit {r.fit_seconds:.1f} s, '
              f'{r.ms_per_frame:.1f} ms/image')
    if len(results) > 1:
        n = len(results)
        pixel = [r.pixel_auroc for r in results if r.pixel_auroc is not None]
        pro = [r.pro for r in results if r.pro is not None]
        print(f'{"MEAN":12s} {"":12s} {"":6s} {sum(r.image_auroc for r in results) / n:11.3f} '
              f'{_fmt(sum(pixel) / len(pixel) if pixel else None):>11s} '
              f'{_fmt(sum(pro) / len(pro) if pro else None)}')
    return 0
