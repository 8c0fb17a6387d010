"""Run a detection model on images, folders, globs or videos and print JSON lines.

The quickest way to try a model: no ROS, no camera. By default it runs the embedded NanoDet
COCO detector (``nanodet-m-416``) on ONNX Runtime. Each detection is one JSON line::

    {"file": "dog.jpg", "frame": 0, "class_name": "dog", "class_id": 16, "score": 0.68,
     "box": [131.2, 208.0, 335.1, 543.4]}

``box`` is ``[x1, y1, x2, y2]`` in the image's pixels (corner coordinates, x right, y down);
``frame`` is the frame index in a video (0 for images). Segmentation models print one line per
image with the fraction of pixels of every class present. Examples::

    edge-vision detect photo.jpg
    edge-vision detect frames/ --backend openvino --device CPU --out dets.jsonl
    edge-vision detect 'shots/*.png' --score 0.5 --annotate annotated/
    edge-vision detect clip.mp4 --every 5 --model my-yolov8n.yaml
    edge-vision detect --list-backends

A summary per input (detections, stage timings) goes to stderr, so stdout stays pure JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from edge_vision_core.io.files import VIDEO_SUFFIXES

from . import FieldDefault, given

HELP = 'run a detection model (default: the embedded NanoDet) on images or videos, JSON lines'


_LOG = logging.getLogger('edge_vision.detect')
#: the arguments whose defaults are DetectorOptions' (one place for them)
OPTION_ARGS = ('model', 'backend', 'device', 'threads', 'precision')


def _option(name: str) -> FieldDefault:
    return FieldDefault(f'edge_vision_core.inference:DetectorOptions.{name}')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('inputs', nargs='*', metavar='INPUT',
                        help='image or video files, folders (their images, sorted) or quoted '
                             'glob patterns')
    parser.add_argument('--model', default=_option('model'),
                        help='registered model name, manifest YAML, or model file with a '
                             'sibling <stem>.yaml (default: %(default)s, embedded)')
    parser.add_argument('--backend', default=_option('backend'),
                        help='onnxruntime, openvino, litert or tensorrt (default %(default)s)')
    parser.add_argument('--device', default=_option('device'),
                        help="backend device, e.g. cpu, cuda, CPU, GPU, NPU, edgetpu "
                             "(default %(default)s)")
    parser.add_argument('--threads', type=int, default=_option('threads'),
                        help='CPU inference threads (default %(default)s: the runtime decides)')
    parser.add_argument('--precision', default=_option('precision'),
                        choices=('auto', 'fp32', 'fp16', 'bf16'),
                        help='precision hint (default %(default)s)')
    parser.add_argument('--score', type=float, default=-1.0,
                        help='score threshold in [0, 1] (default: the model manifest value)')
    parser.add_argument('--nms', type=float, default=-1.0,
                        help='NMS IoU threshold in [0, 1] (default: the manifest value)')
    parser.add_argument('--max-det', type=int, default=-1,
                        help='max detections per image, 0 = no limit (default: manifest)')
    parser.add_argument('--every', type=int, default=1,
                        help='videos: run on every N-th frame (default 1)')
    parser.add_argument('--max-frames', type=int, default=0,
                        help='videos: stop after this many processed frames (0 = all)')
    parser.add_argument('--out', help='write the JSON lines to this file instead of stdout')
    parser.add_argument('--annotate', metavar='DIR',
                        help='also write annotated copies of the images/frames into DIR')
    parser.add_argument('--list-backends', action='store_true',
                        help='list the installed backends with their devices and exit')
    parser.add_argument('--list-models', action='store_true',
                        help='list the registered models and exit')


def expand_inputs(specs: list[str]) -> list[Path]:
    """Files from the command line: files as given, folders' images sorted by name, globs
    (``**`` spans folders) expanded to their images and videos, in a stable order.

    Raises:
        SourceError: a path that does not exist, a glob or folder with no image.
    """
    from edge_vision_core.io.sources import list_files

    return [path for spec in specs for path in list_files(spec, videos=True)]


def _frames(path: Path, every: int, max_frames: int) -> Iterator[tuple[int, object]]:
    """(frame index, BGR image) of an image (one frame) or a video (every N-th frame)."""
    from edge_vision_core.io.sources import read_frames

    for frame in read_frames(path, every=every, max_frames=max_frames):
        yield frame.index, frame.image


def _records(result, file_name: str, frame: int) -> list[dict]:
    if result.mask is not None:
        import numpy as np
        counts = np.bincount(result.mask.reshape(-1), minlength=len(result.labels))
        total = float(result.mask.size)
        classes = {(result.labels[i] if i < len(result.labels) else str(i)):
                   round(float(c) / total, 5) for i, c in enumerate(counts) if c}
        return [{'file': file_name, 'frame': frame, 'classes': classes}]
    dets = result.detections
    names = result.class_names()
    return [{'file': file_name, 'frame': frame, 'class_name': names[i],
             'class_id': int(dets.class_ids[i]), 'score': round(float(dets.scores[i]), 5),
             'box': [round(float(v), 2) for v in dets.boxes[i]]} for i in range(len(dets))]


def _annotate(image, result, out_dir: Path, path: Path, frame: int, is_video: bool) -> None:
    import cv2

    from edge_vision_core import SourceError
    from edge_vision_core.viz import blend_class_mask, draw_detections

    canvas = image.copy()
    if result.mask is not None:
        blend_class_mask(canvas, result.mask, 0.5)
    else:
        draw_detections(canvas, result.detections, result.labels)
    name = f'{path.stem}_{frame:06d}.jpg' if is_video else f'{path.stem}.jpg'
    target = out_dir / name
    if not cv2.imwrite(str(target), canvas):
        raise SourceError(f'cannot write annotated image {target}')


def run(args: argparse.Namespace) -> int:
    from edge_vision_core import ConfigError
    from edge_vision_core.inference import Detector, DetectorOptions, list_models
    from edge_vision_core.inference.backends import available_backends

    if args.list_backends:
        for name, devices in available_backends().items():
            print(f'{name}: {", ".join(devices) or "no device"}')
        return 0
    if args.list_models:
        for name, path in list_models().items():
            print(f'{name}: {path}')
        return 0
    if not args.inputs:
        raise ConfigError('give at least one image, folder, glob or video (see --help)')
    if args.every < 1 or args.max_frames < 0:
        raise ConfigError('--every must be >= 1 and --max-frames >= 0')
    files = expand_inputs(args.inputs)
    options = DetectorOptions(**given(args, OPTION_ARGS), score_threshold=args.score,
                              nms_threshold=args.nms, max_detections=args.max_det)
    out_dir = None
    if args.annotate:
        out_dir = Path(args.annotate)
        out_dir.mkdir(parents=True, exist_ok=True)
    sink = open(args.out, 'w', encoding='utf-8') if args.out else sys.stdout
    total = 0
    try:
        with Detector.create(options) as detector:
            _LOG.info('%r', detector)
            for path in files:
                is_video = path.suffix.lower() in VIDEO_SUFFIXES
                count = frames = 0
                infer_ms = 0.0
                for frame, image in _frames(path, args.every, args.max_frames):
                    result = detector.detect(image)
                    for record in _records(result, str(path), frame):
                        sink.write(json.dumps(record) + '\n')
                    if out_dir is not None:
                        _annotate(image, result, out_dir, path, frame, is_video)
                    count += len(result.detections)
                    frames += 1
                    infer_ms += result.timings.total_ms
                total += count
                _LOG.info('%s: %d detection(s) in %d frame(s), %.1f ms per frame', path, count,
                          frames, infer_ms / max(frames, 1))
    finally:
        if sink is not sys.stdout:
            sink.close()
        else:
            sink.flush()
    _LOG.info('%d detection(s) in %d input(s)', total, len(files))
    return 0
