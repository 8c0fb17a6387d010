"""Find the fastest configuration of a model on this device that keeps its accuracy; cache it.

Examples::

    edge-vision tune                        # the embedded detector: measure once, then cached
    edge-vision tune --retune               # measure again
    edge-vision tune --model my.yaml --variants optimized/ --floor 0.97
    edge-vision tune --show                 # the cached table, no measuring

Measures every candidate configuration here (model variant: FP32 and the shipped INT8 file,
or an INT8 file made on the spot; x backend x device x precision x workers x threads), checks
each variant's agreement with the FP32 reference on the bundled clip's frames and scikit-image's
photographs (mAP@0.5), and picks the fastest whose agreement is >= ``--floor`` on both. Prints
the table; the choice, the table (text) and a plot (fps against agreement) are cached in
``$XDG_CACHE_HOME/edge_vision/tune/`` (``~/.cache/...``) per device fingerprint (CPU model and
flags, accelerators, runtime versions, model hashes) and reused until any of those change.
``edge-vision run`` and ``inference_node model:=auto`` use the choice.
"""

from __future__ import annotations

import argparse
import sys

HELP = 'measure the fastest configuration that keeps accuracy on this device (cached)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default='nanodet-m-416',
                        help='registered name or manifest (default: nanodet-m-416)')
    parser.add_argument('--variants', nargs='+', default=[], metavar='PATH',
                        help='more variants: manifests or folders (edge-vision optimize '
                             'output); shipped variants are always included')
    parser.add_argument('--backends', nargs='+', default=[],
                        help='only these backends (default: every installed one)')
    parser.add_argument('--devices', nargs='+', default=[],
                        help='only these devices (default: every one here)')
    parser.add_argument('--floor', type=float, default=0.95,
                        help='agreement mAP@0.5 needed on every image set (default 0.95)')
    parser.add_argument('--seconds', type=float, default=1.0,
                        help='timed seconds per measurement (default 1)')
    parser.add_argument('--rounds', type=int, default=2,
                        help='interleaved rounds of the execution plans (default 2)')
    parser.add_argument('--clip-frames', type=int, default=12,
                        help='frames of the bundled clip in the agreement set (default 12)')
    parser.add_argument('--no-photos', action='store_true',
                        help="leave scikit-image's photographs out of the agreement set")
    parser.add_argument('--no-make-int8', action='store_true',
                        help='do not make an INT8 variant for a model that has none')
    parser.add_argument('--retune', action='store_true',
                        help='measure again even when a valid cached result exists')
    parser.add_argument('--show', action='store_true',
                        help='print the cached result for this device and exit (exit code 1 '
                             'when there is none)')
    parser.add_argument('--json', action='store_true', help='print the result as JSON')


def config_from_args(args: argparse.Namespace):
    from edge_vision_core.optimize.tune import TuneConfig

    return TuneConfig(model=args.model, variants=tuple(args.variants),
                      backends=tuple(args.backends), devices=tuple(args.devices),
                      floor=args.floor, seconds=args.seconds, rounds=args.rounds,
                      clip_frames=args.clip_frames, photos=not args.no_photos,
                      make_int8=not args.no_make_int8)


def run(args: argparse.Namespace) -> int:
    import json

    from edge_vision_core.optimize.tune import cache_paths, load_cached, tuned

    config = config_from_args(args)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.show:
        result = load_cached(config)
        if result is None:
            progress('no cached tuning for this device and model (run edge-vision tune)')
            return 1
    else:
        result = tuned(config, progress, retune=args.retune)
    paths = cache_paths(result.model)
    if args.json:
        print(json.dumps(result.as_dict(), indent=1, default=str))
    else:
        print(result.table(), end='')
    state = 'cached result for this device (same fingerprint)' if result.cached else \
        f'measured in {result.took_s:.0f} s'
    progress(f'{state}; saved in {paths["json"]}, {paths["text"].name}'
             + (f', {paths["png"].name}' if paths['png'].is_file() else ''))
    return 0 if result.choice is not None else 1
