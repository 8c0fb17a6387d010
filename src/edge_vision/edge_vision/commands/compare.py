"""Compare the detections and tracks of two recorded runs (rosbag2 MCAP bags).

    edge-vision run --bag out/live.mcap --bag-format png
    edge-vision run --source out/live.mcap --bag out/replay.mcap --bag-format png
    edge-vision compare out/live.mcap out/replay.mcap        # exit code 0: no difference

Per results topic (every vision_msgs/Detection2DArray topic: detections, tracks,
anomaly/regions): messages in each run, frames only one run has (frames are paired by header
stamp, which a replay keeps; --by-order pairs the n-th messages of two live runs), boxes matched
one to one per frame (same class, IoU >= --iou) with their mean IoU, boxes missing from run B and
extra in it, and identity switches on track topics. The exit code is 1 when a topic differs
beyond the tolerances (--max-frames-diff, --max-unmatched, --min-mean-iou, --max-id-switches),
0 otherwise; --json prints the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json

HELP = 'compare the detections/tracks of two recorded bags (exit code 1 on a difference)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag_a', help='run A (the reference): a .mcap file or a bag folder')
    parser.add_argument('bag_b', help='run B')
    parser.add_argument('--topic', action='append', default=None,
                        help='compare only this topic (repeatable; default: every results '
                             'topic)')
    parser.add_argument('--iou', type=float, default=0.5,
                        help='IoU a box pair needs to match (default 0.5)')
    parser.add_argument('--by-order', action='store_true',
                        help='pair the n-th messages instead of equal stamps (two live runs)')
    parser.add_argument('--max-frames-diff', type=int, default=0,
                        help='frames only one run may have (default 0)')
    parser.add_argument('--max-unmatched', type=float, default=0.0,
                        help='(missing + extra) / boxes of run A allowed (default 0)')
    parser.add_argument('--min-mean-iou', type=float, default=0.999,
                        help='lowest mean IoU of matched boxes (default 0.999)')
    parser.add_argument('--max-id-switches', type=int, default=0,
                        help='identity switches allowed on track topics (default 0)')
    parser.add_argument('--json', action='store_true', help='print the numbers as JSON')


def run(args: argparse.Namespace) -> int:
    from edge_vision_core.eval.compare import Tolerance, compare_bags

    tol = Tolerance(frames=args.max_frames_diff, unmatched_fraction=args.max_unmatched,
                    mean_iou=args.min_mean_iou, id_switches=args.max_id_switches)
    diffs = compare_bags(args.bag_a, args.bag_b, topics=args.topic, iou_threshold=args.iou,
                         by_order=args.by_order)
    problems = {d.topic: d.differs(tol) for d in diffs}
    if args.json:
        print(json.dumps({'topics': [d.as_dict() for d in diffs],
                          'differences': problems, 'same': not any(problems.values())},
                         indent=1))
    else:
        _print_table(diffs, problems)
    if not diffs:
        print('no results topics (vision_msgs/Detection2DArray) in either bag')
        return 1
    return 1 if any(problems.values()) else 0


def _print_table(diffs: list, problems: dict[str, list[str]]) -> None:
    head = (f'{"topic":<28} {"msgs A/B":>11} {"only A/B":>9} {"boxes A/B":>13} '
            f'{"matched":>8} {"mean IoU":>9} {"miss/extra":>11} {"id sw":>6}')
    print(head)
    for d in diffs:
        print(f'{d.topic:<28} {f"{d.messages_a}/{d.messages_b}":>11} '
              f'{f"{d.frames_only_a}/{d.frames_only_b}":>9} '
              f'{f"{d.boxes_a}/{d.boxes_b}":>13} {d.matched:>8} {d.mean_iou:>9.4f} '
              f'{f"{d.missing}/{d.extra}":>11} '
              f'{d.id_switches if d.tracks else "-":>6}')
    for topic, found in problems.items():
        for text in found:
            print(f'DIFFERENT {topic}: {text}')
    if not any(problems.values()):
        print('same: no difference beyond the tolerances')
