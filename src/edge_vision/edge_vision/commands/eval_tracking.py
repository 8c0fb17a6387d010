"""Score tracks against ground truth: MOTA, IDF1, ID switches, MOTP, precision, recall, HOTA.

Both files are MOTChallenge text (``frame,id,x,y,w,h,conf,...``, 1-based frames, top-left x/y
and size in pixels). A ground-truth box and an output box match when their IoU is at least
``--iou`` (0.5, as MOTChallenge). Ground-truth rows with ``conf`` 0 are ignored. CLEAR-MOT and
IDF1 come from ``motmetrics``; HOTA (with DetA and AssA) from TrackEval when the ``trackeval``
package is installed. MOTP is the mean IoU of the matched pairs (higher is better). Example::

    edge-vision eval-tracking --gt gt.txt --res tracks.txt
"""

from __future__ import annotations

import argparse
import json

HELP = 'score MOTChallenge tracks against ground truth (MOTA, IDF1, ID switches, HOTA)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--gt', required=True, help='ground truth, MOTChallenge text format')
    parser.add_argument('--res', required=True, help='tracker output, MOTChallenge text format')
    parser.add_argument('--iou', type=float, default=0.5, help='match IoU threshold (0.5)')
    parser.add_argument('--no-hota', action='store_true', help='skip HOTA (faster)')
    parser.add_argument('--json', action='store_true', help='print the metrics as JSON')


def run(args: argparse.Namespace) -> int:
    from edge_vision_core.eval.mot import evaluate_tracking, read_mot

    metrics = evaluate_tracking(read_mot(args.gt), read_mot(args.res), args.iou,
                                with_hota=not args.no_hota)
    if args.json:
        print(json.dumps(metrics.as_dict(), indent=2))
        return 0
    m = metrics

    def pct(value: float | None) -> str:
        return 'n/a (pip install trackeval)' if value is None else f'{100 * value:.1f} %'

    print(f'MOTA       {pct(m.mota)}')
    print(f'IDF1       {pct(m.idf1)}')
    print(f'ID switches {m.id_switches}')
    print(f'MOTP       {pct(m.motp)} (mean IoU of matches)')
    print(f'precision  {pct(m.precision)}')
    print(f'recall     {pct(m.recall)}')
    print(f'HOTA       {pct(m.hota)}' + ('' if m.hota is None else
                                         f' (DetA {pct(m.deta)}, AssA {pct(m.assa)})'))
    print(f'frames {m.num_frames}, ground-truth boxes {m.num_objects}, output boxes '
          f'{m.num_predictions}, false positives {m.false_positives}, misses {m.misses}, '
          f'mostly tracked {m.mostly_tracked}, mostly lost {m.mostly_lost}, fragmentations '
          f'{m.fragmentations}')
    return 0
