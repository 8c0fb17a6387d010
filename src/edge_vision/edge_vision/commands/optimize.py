"""Make optimized variants of a model: INT8, FP16, other input sizes, pruned; each with a manifest.

Examples::

    edge-vision optimize --out models/                      # every recipe, native size
    edge-vision optimize --out models/ --recipes onnx-int8 openvino-int8 --sizes 320 416 512
    edge-vision optimize --model my.yaml --out models/ --calib frames/ --calib-count 200
    edge-vision optimize --out models/ --calib street.mp4 --method entropy
    edge-vision optimize --list-recipes

Every variant is ``DIR/<name>.<ext>`` with ``DIR/<name>.yaml`` (load it with
``edge-vision detect --model DIR/<name>.yaml`` or the inference node's ``model`` parameter);
the manifest's ``recipe:`` says how the file was made (tool versions, calibration set SHA-256,
settings). ``DIR/optimize_summary.json`` lists them. Then measure them with
``edge-vision bench --models nanodet-m-416 DIR --out REPORT_DIR``.

Recipes: onnx-fp32 (other input size), onnx-int8 (ONNX Runtime static QDQ), onnx-fp16,
openvino-fp16 (IR), openvino-int8 (NNCF), tflite-int8 (AI Edge Quantizer, no TensorFlow),
prune (unstructured magnitude pruning; no dense runtime gets faster from it). Recipes whose
package is missing are skipped with the reason unless ``--strict``.
"""

from __future__ import annotations

import argparse
import sys

HELP = 'optimized variants of a model (INT8, FP16, input sizes, pruning) with manifests'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default='nanodet-m-416',
                        help='registered name, manifest YAML, or model file with a sibling '
                             'manifest (default: nanodet-m-416)')
    parser.add_argument('--out', metavar='DIR',
                        help='folder for the optimized models and manifests (created)')
    parser.add_argument('--recipes', nargs='+', metavar='RECIPE',
                        help='recipes to run (default: onnx-int8 onnx-fp16 openvino-fp16 '
                             'openvino-int8 tflite-int8 prune); see --list-recipes')
    parser.add_argument('--sizes', nargs='+', type=int, metavar='PX',
                        help='square input sizes, multiples of 32 (default: the model\'s own)')
    parser.add_argument('--calib', default='', metavar='DIR|VIDEO',
                        help='calibration images: a folder or a video (default: scikit-image '
                             'sample photographs with random crops/flips/colour changes)')
    parser.add_argument('--calib-count', type=int, default=32, metavar='N',
                        help='number of calibration images (default 32)')
    parser.add_argument('--method', default='percentile',
                        choices=('minmax', 'entropy', 'percentile'),
                        help='ONNX Runtime calibration method (default percentile)')
    parser.add_argument('--per-tensor', action='store_true',
                        help='ONNX Runtime INT8: per-tensor weight scales (default per channel)')
    parser.add_argument('--activations', default='uint8', choices=('uint8', 'int8'),
                        help='ONNX Runtime INT8 activation type (default uint8: U8S8)')
    parser.add_argument('--no-preprocess', action='store_true',
                        help="skip ONNX Runtime's quant_pre_process before quantizing")
    parser.add_argument('--nncf-preset', default='mixed', choices=('performance', 'mixed'),
                        help='NNCF preset of openvino-int8 (default mixed)')
    parser.add_argument('--prune-ratio', type=float, default=0.3,
                        help='fraction of each Conv/Gemm weight tensor zeroed by prune '
                             '(default 0.3)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the default calibration set (default 0)')
    parser.add_argument('--strict', action='store_true',
                        help='fail instead of skipping recipes that cannot run here')
    parser.add_argument('--no-verify', action='store_true',
                        help='do not load each variant through its manifest after writing it')
    parser.add_argument('--list-recipes', action='store_true',
                        help='list the recipes, whether each can run here, and exit')


def run(args: argparse.Namespace) -> int:
    from edge_vision_core import ConfigError
    from edge_vision_core.optimize import RECIPES, OptimizeConfig, optimize_model
    from edge_vision_core.optimize.recipes import recipe_available

    if args.list_recipes:
        for name, recipe in RECIPES.items():
            reason = recipe_available(name)
            state = 'available' if not reason else f'unavailable: {reason}'
            print(f'{name:14s} {recipe.format:8s} {recipe.precision:5s} {recipe.summary} '
                  f'({state})')
        return 0
    if not args.out:
        raise ConfigError('give --out DIR: the folder for the optimized models')
    unknown = [r for r in (args.recipes or []) if r not in RECIPES]
    if unknown:
        raise ConfigError(f'unknown recipe(s) {", ".join(unknown)}; expecting one of '
                          f'{", ".join(RECIPES)} (see --list-recipes)')
    fields = {'sizes': tuple(args.sizes or ()), 'calibration': args.calib,
              'calibration_count': args.calib_count, 'calibration_method': args.method,
              'per_channel': not args.per_tensor, 'activation_type': args.activations,
              'pre_process': not args.no_preprocess, 'nncf_preset': args.nncf_preset,
              'prune_ratio': args.prune_ratio, 'seed': args.seed,
              'skip_unavailable': not args.strict, 'verify': not args.no_verify}
    if args.recipes:
        fields['recipes'] = tuple(args.recipes)
    config = OptimizeConfig(**fields)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    made = optimize_model(args.model, args.out, config, progress=progress)
    for variant in made:
        print(f'{variant.name}\t{variant.manifest}')
    progress(f'{len(made)} variant(s) in {args.out}; measure them with: edge-vision bench '
             f'--models {args.model} {args.out} --out REPORT_DIR')
    return 0
