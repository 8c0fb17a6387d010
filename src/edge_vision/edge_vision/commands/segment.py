"""Run a semantic segmentation model on images or videos; write masks and overlays.

By default the embedded MediaPipe person segmenter (``selfie-segmentation``: background /
person) on ONNX Runtime; any segmentation manifest works (``--model``). Per image (per processed
frame of a video: ``<stem>_<frame>``) it writes into ``--output``:

- ``<stem>_mask.png``: the class mask, one class id per pixel (8-bit, or 16-bit for more than
  256 classes), the image's size;
- ``<stem>_overlay.jpg``: the image with every non-background class blended in its colour;
- with ``--instances DETECTOR``: ``<stem>_instances.png``, the instance image of the detector's
  boxes (pixel = index + 1 of the detection in the JSON line, 0 = none; 8-bit below 255
  detections, else 16-bit; see ``edge_vision_core.segmentation``), outlined in the overlay.

One JSON line per image on stdout (or ``--out``)::

    {"file": "a.jpg", "frame": 0, "classes": {"background": 0.61, "person": 0.39},
     "mask": "out/a_mask.png", "overlay": "out/a_overlay.jpg"}

(plus ``"instances": [{"index", "class_name", "score", "box", "pixels"}]`` with ``--instances``).
Examples::

    edge-vision segment photo.jpg --output masks/
    edge-vision segment frames/ --output masks/ --backend openvino
    edge-vision segment street.jpg --output out/ --instances nanodet-m-416
    edge-vision segment clip.mp4 --output out/ --every 10 --model my-deeplab.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

HELP = 'semantic segmentation (default: the embedded person segmenter): masks and overlays'

_LOG = logging.getLogger('edge_vision.segment')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='image or video files, folders (their images) or quoted globs')
    parser.add_argument('--output', required=True, metavar='DIR',
                        help='folder for the masks and overlays (created)')
    parser.add_argument('--model', default='selfie-segmentation',
                        help='segmentation model: registered name or manifest (default '
                             'selfie-segmentation; also selfie-segmentation-landscape)')
    parser.add_argument('--backend', default='onnxruntime',
                        help='onnxruntime, openvino, litert or tensorrt (default onnxruntime)')
    parser.add_argument('--device', default='auto', help='backend device (default auto)')
    parser.add_argument('--threads', type=int, default=0,
                        help='CPU inference threads (default 0: the runtime decides)')
    parser.add_argument('--instances', metavar='DETECTOR',
                        help='also write per-detection instance images from this detector '
                             '(e.g. nanodet-m-416): its boxes x the mask class of the same '
                             'name')
    parser.add_argument('--score', type=float, default=-1.0,
                        help='--instances: detector score threshold (default: its manifest)')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='opacity of the classes in the overlay (default 0.5)')
    parser.add_argument('--every', type=int, default=1,
                        help='videos: every N-th frame (default 1)')
    parser.add_argument('--max-frames', type=int, default=0,
                        help='videos: stop after this many processed frames (0 = all)')
    parser.add_argument('--out', help='write the JSON lines to this file instead of stdout')


def _write(path: Path, image) -> str:
    import cv2

    from edge_vision_core import SourceError

    if not cv2.imwrite(str(path), image):
        raise SourceError(f'cannot write {path}')
    return str(path)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_vision_core import ConfigError
    from edge_vision_core.inference import Detector, DetectorOptions
    from edge_vision_core.io.files import VIDEO_SUFFIXES
    from edge_vision_core.segmentation import instance_image
    from edge_vision_core.viz import blend_class_mask, draw_instance_outlines

    from .detect import _frames, _records, expand_inputs

    if args.every < 1 or args.max_frames < 0 or not 0.0 <= args.alpha <= 1.0:
        raise ConfigError('--every must be >= 1, --max-frames >= 0 and --alpha in [0, 1]')
    files = expand_inputs(args.inputs)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = DetectorOptions(model=args.model, backend=args.backend, device=args.device,
                              threads=args.threads)
    sink = open(args.out, 'w', encoding='utf-8') if args.out else sys.stdout
    segmenter = Detector.create(options)
    detector = None
    try:
        if not segmenter.is_segmentation:
            raise ConfigError(f'model {args.model!r} is not a segmentation model (adapter '
                              f'{segmenter.manifest.adapter}); use edge-vision detect for it')
        if args.instances:
            detector = Detector.create(options, model=args.instances,
                                       score_threshold=args.score)
        _LOG.info('%r%s', segmenter, f' + {detector!r}' if detector else '')
        for path in files:
            is_video = path.suffix.lower() in VIDEO_SUFFIXES
            for frame, image in _frames(path, args.every, args.max_frames):
                stem = f'{path.stem}_{frame:06d}' if is_video else path.stem
                result = segmenter.detect(image)
                mask = result.mask
                record = _records(result, str(path), frame)[0]
                overlay = blend_class_mask(image.copy(), mask, args.alpha)
                record['mask'] = _write(out_dir / f'{stem}_mask.png', mask)
                if detector is not None:
                    dets = detector.detect(image)
                    instances = instance_image(dets.detections, mask, dets.labels,
                                               segmenter.labels)
                    draw_instance_outlines(overlay, instances, dets.detections)
                    pixels = np.bincount(instances.reshape(-1),
                                         minlength=len(dets.detections) + 1)
                    names = dets.class_names()
                    record['instances'] = [
                        {'index': i, 'class_name': names[i],
                         'score': round(float(dets.detections.scores[i]), 5),
                         'box': [round(float(v), 2) for v in dets.detections.boxes[i]],
                         'pixels': int(pixels[i + 1])} for i in range(len(dets.detections))]
                    record['instance_image'] = _write(out_dir / f'{stem}_instances.png',
                                                      instances)
                record['overlay'] = _write(out_dir / f'{stem}_overlay.jpg', overlay)
                sink.write(json.dumps(record) + '\n')
            _LOG.info('%s: masks written to %s', path, out_dir)
    finally:
        segmenter.close()
        if detector is not None:
            detector.close()
        if sink is not sys.stdout:
            sink.close()
        else:
            sink.flush()
    return 0
