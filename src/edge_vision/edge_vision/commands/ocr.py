"""Read the text in images, folders, globs or videos and write one JSON line per text line.

Runs the embedded PP-OCRv4 models (text detection + recognition, Latin and Chinese script) on
the fastest measured backend (OpenVINO where installed, else ONNX Runtime). Each line read is
one JSON line::

    {"file": "door.jpg", "frame": 0, "text": "ROOM 12B", "score": 0.981,
     "polygon": [[412.0, 96.5], [590.2, 101.0], [588.9, 140.3], [410.7, 135.8]],
     "box": [410.7, 96.5, 590.2, 140.3]}

``polygon`` holds the line's four corners in the image's pixels (x right, y down), clockwise
from the top-left corner of the text; ``box`` is its axis-aligned bounds ``[x0, y0, x1, y1]``;
``frame`` is the frame index in a video (0 for images); ``score`` is the recognition
confidence (mean character probability). Lines come in reading order. Examples::

    edge-vision ocr photo.jpg --output text.jsonl
    edge-vision ocr shots/ --output text.jsonl --annotate annotated/
    edge-vision ocr clip.mp4 --every 10 --output text.jsonl --min-score 0.7
    edge-vision ocr labels/ --backend onnxruntime --det-size 1280 --output text.jsonl  # small text

An input that cannot be read (missing, corrupt, not an image) is reported on stderr and
skipped; the exit code is then 1 (2 for errors of the options or the models). A summary per
input (lines, time per frame) goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

HELP = 'read text (signs, labels, codes) in images or videos with the embedded PP-OCR models'

_LOG = logging.getLogger('edge_vision.ocr')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='image or video files, folders (their images, sorted) or quoted '
                             'glob patterns')
    parser.add_argument('-o', '--output', metavar='FILE.jsonl',
                        help='write the JSON lines to this file (default: stdout)')
    parser.add_argument('--annotate', metavar='DIR',
                        help='also write copies of the images/frames with the lines drawn')
    parser.add_argument('--backend', default='auto',
                        help='auto (openvino if installed, else onnxruntime), onnxruntime or '
                             'openvino')
    parser.add_argument('--device', default='auto',
                        help='backend device, e.g. cpu, cuda, CPU, GPU, NPU (default auto)')
    parser.add_argument('--threads', type=int, default=0,
                        help='CPU threads per model (default 0: the runtime decides)')
    parser.add_argument('--min-score', type=float, default=-1.0,
                        help='minimum recognition score of a line in [0, 1] (default: the '
                             "recognizer manifest's 0.5)")
    parser.add_argument('--max-lines', type=int, default=500,
                        help='read at most this many lines per frame, most confident boxes '
                             'first; 0 = no limit (default 500)')
    parser.add_argument('--det-size', type=int, default=0,
                        help='longest side of the detection input in pixels, a multiple of 32 '
                             '(default: the detector manifest value); larger finds smaller text')
    parser.add_argument('--classifier', default='', metavar='MODEL',
                        help='direction classifier that turns upside-down lines, e.g. '
                             'ppocr-cls (default: none)')
    parser.add_argument('--detector', default='ppocrv4-det', metavar='MODEL',
                        help='text detection model: name, manifest or model file '
                             '(default ppocrv4-det)')
    parser.add_argument('--recognizer', default='ppocrv4-rec', metavar='MODEL',
                        help='text recognition model with its dictionary (default ppocrv4-rec)')
    parser.add_argument('--dictionary', default='', metavar='FILE',
                        help="the recognizer's characters, one per line, instead of its "
                             "manifest's (must have the model's class count)")
    parser.add_argument('--cache-dir', default='', metavar='DIR',
                        help='keep compiled models here (OpenVINO): later runs start about '
                             'half a second sooner (default: no cache)')
    parser.add_argument('--every', type=int, default=1,
                        help='videos: read every N-th frame (default 1)')
    parser.add_argument('--max-frames', type=int, default=0,
                        help='videos: stop after this many frames read (0 = all)')


def record(line, file_name: str, frame: int) -> dict:
    """The JSON object of one text line (:class:`~edge_vision_core.inference.ocr.TextLine`)."""
    fields = line.to_dict()
    del fields['region']  # always -1 here: whole images are read
    return {'file': file_name, 'frame': frame, **fields}


def _annotate(image, lines, out_dir: Path, path: Path, frame: int, is_video: bool) -> None:
    import cv2

    from edge_vision_core import SourceError
    from edge_vision_core.viz import draw_text_lines

    canvas = draw_text_lines(image.copy(), [(line.polygon, line.text) for line in lines])
    name = f'{path.stem}_{frame:06d}.jpg' if is_video else f'{path.stem}.jpg'
    if not cv2.imwrite(str(out_dir / name), canvas):
        raise SourceError(f'cannot write the annotated image {out_dir / name}')


def run(args: argparse.Namespace) -> int:
    from edge_vision_core import ConfigError, DataError, SourceError
    from edge_vision_core.inference.ocr import TextReader, TextReaderOptions
    from edge_vision_core.io.files import VIDEO_SUFFIXES

    from .detect import _frames, expand_inputs

    if args.every < 1 or args.max_frames < 0:
        raise ConfigError('--every must be >= 1 and --max-frames >= 0')
    options = TextReaderOptions(detector=args.detector, recognizer=args.recognizer,
                                dictionary=args.dictionary,
                                classifier=args.classifier, backend=args.backend,
                                device=args.device, threads=args.threads,
                                det_size=args.det_size, min_score=args.min_score,
                                max_lines=args.max_lines, cache_dir=args.cache_dir)
    files = expand_inputs(args.inputs)
    out_dir = None
    if args.annotate:
        out_dir = Path(args.annotate)
        out_dir.mkdir(parents=True, exist_ok=True)
    failed = total = 0
    with TextReader.create(options) as reader:
        _LOG.info('%r', reader)
        try:
            sink = open(args.output, 'w', encoding='utf-8') if args.output else sys.stdout
        except OSError as exc:
            raise ConfigError(f'cannot write --output {args.output}: {exc.strerror}') from exc
        try:
            for path in files:
                is_video = path.suffix.lower() in VIDEO_SUFFIXES
                count = frames = dropped = 0
                read_ms = 0.0
                try:
                    for frame, image in _frames(path, args.every, args.max_frames):
                        result = reader.read_result(image)
                        for line in result.lines:
                            sink.write(json.dumps(record(line, str(path), frame),
                                                  ensure_ascii=False) + '\n')
                        if out_dir is not None:
                            _annotate(image, result.lines, out_dir, path, frame, is_video)
                        count += len(result.lines)
                        dropped += result.stats.dropped
                        frames += 1
                        read_ms += result.stats.total_ms
                except (SourceError, DataError) as exc:
                    failed += 1
                    _LOG.error('skipping %s: %s', path, exc)
                    continue
                total += count
                extra = f', {dropped} beyond --max-lines not read' if dropped else ''
                _LOG.info('%s: %d line(s) in %d frame(s), %.0f ms per frame%s', path, count,
                          frames, read_ms / max(frames, 1), extra)
        finally:
            if sink is not sys.stdout:
                sink.close()
            else:
                sink.flush()
    _LOG.info('%d text line(s) in %d input(s)%s', total, len(files),
              f', {failed} input(s) could not be read' if failed else '')
    return 1 if failed else 0
