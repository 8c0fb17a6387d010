"""Hide faces and/or persons in images and videos (same file names, in another folder).

Runs the privacy filter of ``edge_vision_core.privacy`` on every image and every video frame:
faces by the embedded MediaPipe face detector (``face`` = full range), persons by the embedded
person segmenter (``--person-source mask``) and/or the NanoDet person boxes (``boxes``), hidden by
blur, pixelation or a solid fill. Images keep their file name and format; videos are re-encoded
(same name, frame rate and size; MJPG for ``.avi``, MPEG-4 Part 2 otherwise; no audio).

The filter fails closed: a frame it cannot process is never written as it was. An image that
fails is not written at all; a video frame that fails is written black (the timing stays);
both are listed, and the command exits with 1. A model that does not load stops the command
before anything is written (exit 2). Output files never replace their inputs. Examples::

    edge-vision anonymize photos/ --output public/ --hide faces
    edge-vision anonymize clip.mp4 --output public/ --hide persons --method fill
    edge-vision anonymize 'shots/*.jpg' --output out/ --hide faces+persons --method pixelate

One JSON line per file on stdout: ``{"file", "output", "frames", "withheld", "faces",
"person_boxes", "person_pixels"}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

HELP = 'hide faces and/or persons in images and videos (privacy filter, fails closed)'

_LOG = logging.getLogger('edge_vision.anonymize')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge_vision_core.privacy import HIDE_TARGETS, METHODS, PERSON_SOURCES, PrivacyConfig

    d = PrivacyConfig()
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='image or video files, folders (their images) or quoted globs')
    parser.add_argument('--output', required=True, metavar='DIR',
                        help='folder for the anonymized files (created; same file names)')
    parser.add_argument('--hide', default=d.hide, choices=HIDE_TARGETS,
                        help=f'what to hide (default {d.hide})')
    parser.add_argument('--method', default=d.method, choices=METHODS,
                        help=f'how (default {d.method})')
    parser.add_argument('--strength', type=float, default=d.strength,
                        help='smallest detail kept, as a fraction of a region\'s shorter side '
                             f'(default {d.strength})')
    parser.add_argument('--margin', type=float, default=d.margin,
                        help=f'boxes grow by this fraction on every side (default {d.margin})')
    parser.add_argument('--min-score', type=float, default=d.min_score,
                        help=f'hide detections with at least this score (default '
                             f'{d.min_score})')
    parser.add_argument('--person-source', default=d.person_source, choices=PERSON_SOURCES,
                        help=f'persons from a segmentation mask and/or detector boxes (default '
                             f'{d.person_source})')
    parser.add_argument('--face-model', default=d.face_model,
                        help=f'face detector (default {d.face_model}; face-short, face-full)')
    parser.add_argument('--backend', default=d.backend,
                        help=f'inference runtime (default {d.backend})')
    parser.add_argument('--device', default=d.device, help='backend device (default auto)')
    parser.add_argument('--threads', type=int, default=d.threads,
                        help='CPU inference threads (default 0: the runtime decides)')


def _video_writer(path: Path, fps: float, size: tuple[int, int]):
    import cv2

    from edge_vision_core import SourceError

    fourcc = 'MJPG' if path.suffix.lower() == '.avi' else 'mp4v'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps or 25.0, size)
    if not writer.isOpened():
        raise SourceError(f'cannot write video {path} ({fourcc}): no encoder in this OpenCV '
                          f'build for it?')
    return writer


def _anonymize_video(privacy, path: Path, target: Path, totals: dict) -> None:
    import numpy as np

    from edge_vision_core.io.sources import read_frames, video_facts

    _, fps = video_facts(path)
    writer = None
    try:
        for source_frame in read_frames(path):
            frame = source_frame.image
            result = privacy.apply(frame)
            if writer is None:
                writer = _video_writer(target, fps, (frame.shape[1], frame.shape[0]))
            _count(totals, result)
            if result.withheld:
                _LOG.error('%s frame %d withheld (written black): %s', path, totals['frames'] - 1,
                           result.reason)
                writer.write(np.zeros_like(frame))
            else:
                writer.write(result.image)
    finally:
        if writer is not None:
            writer.release()


def _count(totals: dict, result) -> None:
    totals['frames'] += 1
    totals['withheld'] += int(result.withheld)
    totals['faces'] += result.faces
    totals['person_boxes'] += result.person_boxes
    totals['person_pixels'] += result.person_pixels


def run(args: argparse.Namespace) -> int:
    import cv2

    from edge_vision_core import ConfigError, SourceError
    from edge_vision_core.io.files import VIDEO_SUFFIXES
    from edge_vision_core.io.sources import read_image
    from edge_vision_core.privacy import PrivacyConfig, PrivacyFilter

    from .detect import expand_inputs

    config = PrivacyConfig(hide=args.hide, method=args.method, strength=args.strength,
                           margin=args.margin, min_score=args.min_score,
                           person_source=args.person_source, face_model=args.face_model,
                           backend=args.backend, device=args.device, threads=args.threads)
    files = expand_inputs(args.inputs)
    out_dir = Path(args.output)
    targets = [out_dir / path.name for path in files]
    for path, target in zip(files, targets, strict=True):
        if target.resolve() == path.resolve():
            raise ConfigError(f'{target} would replace its input: choose another --output')
    if len(set(targets)) != len(targets):
        raise ConfigError('two inputs have the same file name; anonymize them into separate '
                          '--output folders')
    failed = 0
    with PrivacyFilter.create(config) as privacy:
        out_dir.mkdir(parents=True, exist_ok=True)
        _LOG.info('%r', privacy)
        for path, target in zip(files, targets, strict=True):
            totals = dict.fromkeys(('frames', 'withheld', 'faces', 'person_boxes',
                                    'person_pixels'), 0)
            written = str(target)
            if path.suffix.lower() in VIDEO_SUFFIXES:
                _anonymize_video(privacy, path, target, totals)
            else:
                result = privacy.apply(read_image(path))
                _count(totals, result)
                if result.withheld:
                    _LOG.error('%s withheld (not written): %s', path, result.reason)
                    written = None
                elif not cv2.imwrite(str(target), result.image):
                    raise SourceError(f'cannot write {target}')
            failed += totals['withheld']
            sys.stdout.write(json.dumps({'file': str(path), 'output': written, **totals}) + '\n')
            _LOG.info('%s -> %s: %d frame(s), %d withheld, %d face(s) hidden', path, written,
                      totals['frames'], totals['withheld'], totals['faces'])
    sys.stdout.flush()
    return 1 if failed else 0
