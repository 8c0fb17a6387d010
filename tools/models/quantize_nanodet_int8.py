"""Make the shipped INT8 variant of the default detector: nanodet-m-416-int8.onnx + manifest.

Run inside the project's venv (it uses edge_vision_core, onnx and onnxruntime)::

    .venv/bin/python tools/models/quantize_nanodet_int8.py          # into the model package
    .venv/bin/python tools/models/quantize_nanodet_int8.py --out /tmp/int8

Steps (each recorded in the manifest's ``recipe:``):

1. the FP32 ONNX with a symbolic batch dimension (``onnx_ops.set_batch_dynamic``: one call can
   run the newest frames of several cameras; checked at batch 2 against batch 1);
2. ONNX Runtime static INT8 quantization (``onnx_ops.quantize_int8``: QDQ, per-channel INT8
   weights, UINT8 activations, percentile 99.999 % ranges) calibrated on the offline default
   set (32 augmented scikit-image photographs) **and** 30 frames of the bundled street clip
   (frames 5, 15, ..., 295). Photographs alone gave agreement 0.73 on the clip (the small,
   far pedestrians of a street scene need its activation ranges); clip frames alone gave 0.48
   on the photographs;
3. agreement with the FP32 reference (the FP32 ONNX on ONNX Runtime CPU) on the agreement sets
   of autotuning (12 clip frames 0, 27, ..., 299, none of them a calibration frame, and 21
   views of the photographs), written into the manifest as ``recipe.agreement``.

Deterministic for a given onnxruntime/onnx version (the calibration set is seeded).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import tempfile
import textwrap
from pathlib import Path

NAME = 'nanodet-m-416-int8'
SOURCE = 'nanodet-m-416'
CLIP_FRAMES = range(5, 300, 10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=None,
                        help='output folder (default: the edge_vision_models model folder)')
    args = parser.parse_args()

    import cv2
    import yaml

    from edge_vision_core.inference.detector import Detector, DetectorOptions
    from edge_vision_core.inference.manifest import (
        ModelFile,
        load_manifest,
        resolve_model,
        sha256_file,
    )
    from edge_vision_core.optimize import onnx_ops
    from edge_vision_core.optimize.images import (
        agreement_sets,
        default_calibration_images,
        image_set_sha256,
    )
    from edge_vision_core.optimize.recipes import _versions
    from edge_vision_core.optimize.tune import reference_detections, variant_agreement
    from edge_vision_models import models_dir, sample_path

    out = args.out or models_dir()
    out.mkdir(parents=True, exist_ok=True)
    source = resolve_model(SOURCE)
    fp32 = next(f for f in source.files if f.format == 'onnx' and f.precision == 'fp32')
    capture = cv2.VideoCapture(str(sample_path()))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    clip = [frames[i] for i in CLIP_FRAMES if i < len(frames)]
    photos = default_calibration_images(32, seed=0)
    calibration = list(photos.images) + clip
    target = out / f'{NAME}.onnx'
    with tempfile.TemporaryDirectory(prefix='edge-vision-int8-') as tmp:
        batched = Path(tmp) / 'batched.onnx'
        onnx_ops.set_batch_dynamic(fp32.path, batched)
        with Detector.from_manifest(source, DetectorOptions(verify_checksum=False)) as det:
            tensors = [det.preprocess(image).inputs[0].copy() for image in calibration]
        settings = onnx_ops.quantize_int8(batched, target, tensors, method='percentile',
                                          per_channel=True, activation_type='uint8',
                                          work_dir=Path(tmp))
    sets = agreement_sets(12, True)
    truth = reference_detections(source, sets)
    probe = dataclasses.replace(source, name=NAME, files=(ModelFile(target, 'onnx', 'int8'),))
    agreement = variant_agreement(probe, truth, sets)
    sha = sha256_file(target)
    data = yaml.safe_load(Path(source.source).read_text(encoding='utf-8'))
    data['name'] = NAME
    data['description'] = (f'{NAME}: {SOURCE} quantized to INT8 (ONNX Runtime static QDQ, '
                           f'per-channel weights) with a dynamic batch dimension; runs on ONNX '
                           f'Runtime and OpenVINO. Made by tools/models/quantize_nanodet_int8.py '
                           f'(see recipe).')
    data['files'] = [{'path': target.name, 'format': 'onnx', 'precision': 'int8',
                      'sha256': sha}]
    data['recipe'] = {
        'recipe': 'onnx-int8',
        'summary': 'ONNX Runtime static INT8 (QDQ, per-channel weights), dynamic batch',
        'format': 'onnx', 'precision': 'int8',
        'source_model': {'name': SOURCE, 'manifest': f'{SOURCE}.yaml'},
        'source_file': {'path': fp32.path.name, 'format': 'onnx', 'precision': 'fp32',
                        'sha256': fp32.sha256 or sha256_file(fp32.path)},
        'input_size': list(source.input_size),
        'batch': 'dynamic (onnx_ops.set_batch_dynamic, checked at batch 2)',
        'settings': settings,
        'calibration': {
            'images': len(calibration),
            'photos': {'source': photos.source, 'count': len(photos), 'sha256': photos.sha256},
            'clip': {'source': 'edge_vision_models/samples/pedestrians.mp4',
                     'frames': f'{CLIP_FRAMES.start}, {CLIP_FRAMES.start + CLIP_FRAMES.step}, '
                               f'..., {CLIP_FRAMES[-1]}',
                     'count': len(clip), 'sha256': image_set_sha256(clip)},
        },
        'agreement': {
            'metric': 'mAP@0.5 against the FP32 ONNX on ONNX Runtime CPU (its detections at '
                      'the manifest threshold are the ground truth; this file on ONNX Runtime '
                      'CPU at score >= 0.05)',
            **{name: round(value, 4) for name, value in agreement.items()},
            'sets': {name: {'source': s.source, 'count': len(s), 'sha256': s.sha256}
                     for name, s in sets.items()},
        },
        'versions': _versions(),
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'file': target.name, 'file_sha256': sha, 'file_bytes': target.stat().st_size,
    }
    data['recipe'] = json.loads(json.dumps(data['recipe']))
    header = ''.join(f'# {line}\n' for line in textwrap.wrap(
        f'{NAME}: the INT8 variant of {SOURCE}, written by '
        f'tools/models/quantize_nanodet_int8.py (do not edit by hand, re-run the script). '
        f'Agreement mAP@0.5 with FP32: '
        + ', '.join(f'{k} {v:.3f}' for k, v in agreement.items()) + '.', 95))
    manifest = out / f'{NAME}.yaml'
    manifest.write_text(header + yaml.safe_dump(data, sort_keys=False, width=99),
                        encoding='utf-8')
    load_manifest(manifest)
    print(f'wrote {target} ({target.stat().st_size} bytes, sha256 {sha[:12]}) and {manifest}; '
          f'agreement ' + ', '.join(f'{k} {v:.3f}' for k, v in agreement.items()))
    worst = min(agreement.values())
    if worst < 0.95:
        print(f'warning: agreement {worst:.3f} is below the autotuning floor 0.95',
              file=sys.stderr)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
