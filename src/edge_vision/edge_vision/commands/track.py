"""Run the multi-object tracker offline on a MOTChallenge detection file.

Reads detections in MOTChallenge text format (``frame,id,x,y,w,h,conf,...``; ids are ignored,
frames are 1-based, boxes are top-left x/y and size in pixels), feeds them frame by frame to
``edge_vision_core.tracking.ByteTracker`` (also the frames without detections), and writes the
confirmed tracks in the same format with their track ids, ready for ``edge-vision
eval-tracking``. Example::

    edge-vision track --det det.txt --out tracks.txt --frame-rate 25
    edge-vision track --det det.txt --out tracks.txt --set high_threshold=0.6 --set min_hits=3

Every ByteTrackConfig field can be set with ``--set NAME=VALUE`` (``--list-params`` shows them).
"""

from __future__ import annotations

import argparse
import sys

HELP = 'track MOTChallenge detections offline (ByteTrack) and write MOTChallenge tracks'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--det', help='detections, MOTChallenge text format')
    parser.add_argument('--out', help='output tracks, MOTChallenge text format')
    parser.add_argument('--frame-rate', type=float, default=None,
                        help='camera frame rate in Hz (default: the tracker default, 30)')
    parser.add_argument('--frames', type=int, default=None,
                        help='number of frames in the sequence (default: the last frame with '
                             'a detection); trailing empty frames still age the tracks')
    parser.add_argument('--default-score', type=float, default=1.0,
                        help='score for detections whose conf column is negative (-1 = none '
                             'in many files); default 1.0')
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                        help='a ByteTrackConfig setting, repeatable (see --list-params)')
    parser.add_argument('--list-params', action='store_true',
                        help='list the tracker settings with their defaults and exit')


def _parse_value(kind: type, name: str, text: str) -> object:
    from edge_vision_core import ConfigError

    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ('1', 'true', 'yes', 'on'):
            return True
        if lowered in ('0', 'false', 'no', 'off'):
            return False
        raise ConfigError(f'--set {name}: expected true or false, got {text!r}')
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f'--set {name}: expected {kind.__name__}, got {text!r}') from None
    return text


def tracker_config(frame_rate: float | None, settings: list[str]):
    """ByteTrackConfig from ``--frame-rate`` and ``--set NAME=VALUE`` options."""
    from edge_vision_core import ConfigError
    from edge_vision_core.config import config_fields, config_from_mapping
    from edge_vision_core.tracking import ByteTrackConfig

    fields = {f.name: f for f in config_fields(ByteTrackConfig)}
    values: dict[str, object] = {}
    if frame_rate is not None:
        values['frame_rate'] = frame_rate
    for item in settings:
        name, sep, text = item.partition('=')
        name = name.strip().replace('-', '_')
        if not sep:
            raise ConfigError(f'--set expects NAME=VALUE, got {item!r}')
        if name not in fields:
            raise ConfigError(f'--set: unknown tracker setting {name!r}; valid: '
                              f'{", ".join(sorted(fields))}')
        values[name] = _parse_value(fields[name].type, name, text)
    return config_from_mapping(ByteTrackConfig, values)


def run(args: argparse.Namespace) -> int:
    from edge_vision_core import ConfigError
    from edge_vision_core.config import config_fields
    from edge_vision_core.eval.mot import MotTable, read_mot, write_mot
    from edge_vision_core.tracking import ByteTrackConfig, ByteTracker

    if args.list_params:
        for f in config_fields(ByteTrackConfig):
            print(f'{f.name} = {f.default!r}\n    {f.spec.description}')
        return 0
    if not args.det or not args.out:
        raise ConfigError('--det and --out are required (or use --list-params)')
    config = tracker_config(args.frame_rate, args.set)
    dets = read_mot(args.det)
    last = dets.num_frames if args.frames is None else args.frames
    if last < dets.num_frames:
        raise ConfigError(f'--frames {last} is less than the last frame with detections '
                          f'({dets.num_frames})')
    tracker = ByteTracker(config)
    tracks = [(frame, tracker.update(frame_dets))
              for frame, frame_dets in dets.iter_frames(args.default_score, last)]
    table = MotTable.from_tracks(tracks)
    write_mot(args.out, table)
    stats = tracker.stats
    print(f'{len(dets)} detections in {last} frames -> {len(table)} track boxes, '
          f'{len(set(table.ids.tolist()))} tracks written to {args.out} '
          f'(dropped invalid boxes: {stats.dropped_invalid}, below low_threshold: '
          f'{stats.dropped_low_score})', file=sys.stdout)
    return 0
