"""Fit an anomaly model on normal images and save it to one file for anomaly_node.

Reads every image of a folder (or a quoted glob, the frames of a video, or --max-frames frames
of a camera such as /dev/video0), learns what normal looks like (PatchCore memory bank or PaDiM
Gaussians over patch features of the ImageNet-pretrained EfficientNet-Lite0 backbone),
calibrates the frame-score threshold on out-of-fold scores of the normal frames (a target
false-alarm rate or a quantile), and writes the versioned model file (.npz). anomaly_node loads
it with the parameter model_path; `edge-vision eval-anomaly --model` scores a test set with it.

Examples:
  edge-vision anomaly-fit --normal shots/good/ --out ~/models/line3.npz
  edge-vision anomaly-fit --normal patrol.mp4 --every 10 --max-frames 200 --out patrol.npz \\
      --backend openvino --false-alarm-rate 0.001
  edge-vision anomaly-fit --normal 'parts/*.png' --method padim --input-size 320x240 \\
      --out fixture.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = 'fit an anomaly model on normal images/video and save it (.npz) for anomaly_node'


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options shared with ``eval-anomaly --fit`` (defaults: AnomalyConfig's)."""
    from edge_vision_core.anomaly import METHODS, AnomalyConfig

    d = AnomalyConfig()
    model = parser.add_argument_group('model')
    model.add_argument('--method', choices=tuple(METHODS), default=d.method,
                       help='; '.join(f'{m.name}: {m.description}' for m in METHODS.values())
                       + f' ({d.method})')
    model.add_argument('--backbone', default=d.backbone,
                       help=f'CNN backbone ({d.backbone}, ImageNet; or nanodet-m-416-backbone, '
                            f'COCO), a feature manifest .json, or none (built-in layers only)')
    model.add_argument('--layers', default=','.join(d.layers),
                       help='comma-separated feature layers: stride4/8/16 (backbone), '
                            'contrast4/8/16 (local contrast), color4/8/16 (colour statistics) '
                            f'({",".join(d.layers)})')
    model.add_argument('--input-size', default='', metavar='WxH',
                       help='model input, multiples of 16 (default: from the first image, '
                            'longer side --max-side)')
    model.add_argument('--max-side', type=int, default=d.max_input_side, metavar='PX',
                       help=f'automatic input size: longer side in pixels ({d.max_input_side})')
    model.add_argument('--resize', choices=('letterbox', 'stretch'), default=d.resize,
                       help=f'image -> model input ({d.resize})')
    model.add_argument('--feature-dim', type=int, default=d.feature_dim, metavar='D',
                       help='random projection of the embeddings (0 = method default: '
                            + ', '.join(f'{m.name} {m.default_dim}' for m in METHODS.values())
                            + ')')
    model.add_argument('--max-bank', type=int, default=d.max_memory_bank, metavar='N',
                       help=f'PatchCore: most memory-bank rows ({d.max_memory_bank})')
    model.add_argument('--coreset-ratio', type=float, default=d.coreset_ratio,
                       help=f'PatchCore: fraction of normal patches kept ({d.coreset_ratio})')
    model.add_argument('--background', type=float, default=d.background_quantile, metavar='Q',
                       help='patch scores above this quantile of the frame\'s own, capped at the '
                            f'normal frames\' level (0 = plain distances) '
                            f'({d.background_quantile})')
    thr = parser.add_argument_group('threshold')
    thr.add_argument('--false-alarm-rate', type=float, default=None, metavar='R',
                     help=f'calibrate for this fraction of normal frames flagged '
                          f'({d.false_alarm_rate}; Gumbel fit of out-of-fold normal frame '
                          f'scores)')
    thr.add_argument('--quantile', type=float, default=None, metavar='Q',
                     help='instead: the Q quantile of out-of-fold normal frame scores')
    thr.add_argument('--folds', type=int, default=d.calibration_folds,
                     help='calibration folds: each normal frame is scored by the model without '
                          f'its fold ({d.calibration_folds})')
    rt = parser.add_argument_group('runtime')
    rt.add_argument('--backend', default=d.backend,
                    help=f'backbone runtime: onnxruntime or openvino ({d.backend})')
    rt.add_argument('--device', default=d.device, help=f'backend device ({d.device})')
    rt.add_argument('--threads', type=int, default=d.threads,
                    help='CPU threads (0 = runtime default)')
    rt.add_argument('--seed', type=int, default=d.seed, help=f'random seed ({d.seed})')


def config_from_args(args: argparse.Namespace):
    """An :class:`~edge_vision_core.anomaly.AnomalyConfig` from the shared options."""
    from edge_vision_core import ConfigError
    from edge_vision_core.anomaly import AnomalyConfig

    width = height = 0
    if args.input_size:
        try:
            width, height = (int(v) for v in args.input_size.lower().split('x'))
        except ValueError:
            raise ConfigError(f'--input-size must look like 320x240, got '
                              f'{args.input_size!r}') from None
    if args.false_alarm_rate is not None and args.quantile is not None:
        raise ConfigError('give --false-alarm-rate or --quantile, not both')
    extra = {}
    if args.quantile is not None:
        extra.update(threshold_mode='quantile', threshold_quantile=args.quantile)
    elif args.false_alarm_rate is not None:
        extra.update(threshold_mode='false_alarm_rate', false_alarm_rate=args.false_alarm_rate)
    layers = tuple(v.strip() for v in args.layers.split(',') if v.strip())
    return AnomalyConfig(
        method=args.method, backbone=args.backbone, layers=layers, input_width=width,
        input_height=height, max_input_side=args.max_side, resize=args.resize,
        feature_dim=args.feature_dim, max_memory_bank=args.max_bank,
        coreset_ratio=args.coreset_ratio, background_quantile=args.background,
        calibration_folds=args.folds,
        backend=args.backend, device=args.device, threads=args.threads, seed=args.seed, **extra)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group('input')
    src.add_argument('--normal', required=True, metavar='DIR|GLOB|VIDEO',
                     help='normal images: a folder, a quoted glob, a video file, or a camera '
                          '(0, /dev/video0; needs --max-frames)')
    src.add_argument('--every', type=int, default=1, metavar='N',
                     help='use every N-th frame/image (1)')
    src.add_argument('--max-frames', type=int, default=0, metavar='N',
                     help='use at most N frames (0 = all)')
    parser.add_argument('--out', required=True, metavar='FILE.npz',
                        help='where to write the fitted model')
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from edge_vision_core.anomaly import AnomalyDetector

    config = config_from_args(args)
    with AnomalyDetector(config) as detector:
        report = detector.fit(args.normal, every=args.every, max_frames=args.max_frames)
        path = detector.save(args.out)
        info = detector.model_info
    from edge_vision_core.anomaly import get_method

    w, h = report.input_size
    scores = report.calibration_scores
    kind = get_method(info.method).size_unit
    print(f'fitted {info.method} on {report.num_images} normal frames '
          f'({report.num_calibration} scored out-of-fold for the threshold), input {w}x{h}, '
          f'{report.num_patches} patches -> {report.model_size} {kind}')
    print(f'features: backbone {info.backbone.id}, layers {", ".join(info.layers)}, '
          f'{info.embedding_dim} dimensions')
    print(f'threshold {report.threshold:.4g} ({info.calibration.get("mode")}; out-of-fold '
          f'normal scores {min(scores):.4g}..{max(scores):.4g})')
    print(f'time: features {report.feature_seconds:.1f} s, fit {report.fit_seconds:.1f} s')
    print(f'wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB)')
    return 0
