"""OpenVINO model transforms: IR (FP32 or FP16-compressed) and NNCF INT8 post-training
quantization.

Both read an ONNX file (at the input size it has) and write OpenVINO IR: ``<stem>.xml`` (graph)
plus ``<stem>.bin`` (weights) side by side; the manifest lists the ``.xml``.

- :func:`save_ir` with ``compress_to_fp16=True`` stores the weights as FP16 (half the file); the
  CPU plug-in decompresses them at load and computes in f32 (or what the precision hint asks),
  GPUs and NPUs compute in f16.
- :func:`quantize_nncf` runs ``nncf.quantize`` (post-training: statistics of the activations on
  the calibration tensors, then FakeQuantize nodes and fast bias correction) and saves the
  result; OpenVINO's CPU plug-in then runs INT8 kernels (VNNI/AMX where the CPU has them).

``openvino`` and ``nncf`` are imported when called; the errors name the package to install.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelError

__all__ = ['NNCF_PRESETS', 'quantize_nncf', 'save_ir']

NNCF_PRESETS = ('performance', 'mixed')


def _openvino():
    try:
        import openvino
    except ImportError as exc:
        raise ModelError('OpenVINO IR export needs openvino: pip install openvino') from exc
    return openvino


def save_ir(src: Path, dst_xml: Path, compress_to_fp16: bool = False) -> dict[str, object]:
    """Convert an ONNX (or any OpenVINO-readable) model to IR at ``dst_xml`` (+ ``.bin``).

    Returns:
        The settings and tool version (for the recipe).

    Raises:
        ModelError: openvino missing, or it cannot read or save the model.
    """
    ov = _openvino()
    try:
        model = ov.Core().read_model(str(src))
        dst_xml.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, str(dst_xml), compress_to_fp16=compress_to_fp16)
    except Exception as exc:
        raise ModelError(f'OpenVINO could not convert {src} to IR: {type(exc).__name__}: '
                         f'{str(exc)[:400]}') from exc
    return {'tool': 'openvino.save_model', 'openvino': ov.get_version(),
            'compress_to_fp16': compress_to_fp16}


def quantize_nncf(src: Path, dst_xml: Path, calibration: Iterable[np.ndarray], *,
                  preset: str = 'performance', fast_bias_correction: bool = True
                  ) -> dict[str, object]:
    """NNCF post-training INT8 quantization of a one-input model, saved as IR.

    Args:
        src: FP32 ONNX (or IR) model.
        dst_xml: output ``.xml`` path (the ``.bin`` is written beside it).
        calibration: the model's preprocessed input tensors, one per calibration image.
        preset: ``performance`` (symmetric activations, fastest) or ``mixed`` (asymmetric
            activations: more exact for activations that are not centred on zero).
        fast_bias_correction: NNCF's fast bias correction (else its slower full variant).

    Returns:
        The settings and tool versions (for the recipe).

    Raises:
        ConfigError: unknown preset.
        ModelError: nncf/openvino missing or quantization failed.
    """
    if preset not in NNCF_PRESETS:
        raise ConfigError(f'unknown NNCF preset {preset!r}; use one of {list(NNCF_PRESETS)}')
    ov = _openvino()
    try:
        import nncf
    except ImportError as exc:
        raise ModelError('OpenVINO INT8 quantization needs NNCF: pip install nncf') from exc
    tensors = list(calibration)
    if not tensors:
        raise ModelError('NNCF quantization needs at least one calibration tensor')
    try:
        model = ov.Core().read_model(str(src))
        dataset = nncf.Dataset(tensors)
        presets = {'performance': nncf.QuantizationPreset.PERFORMANCE,
                   'mixed': nncf.QuantizationPreset.MIXED}
        quantized = nncf.quantize(model, dataset, preset=presets[preset],
                                  subset_size=len(tensors),
                                  fast_bias_correction=fast_bias_correction)
        dst_xml.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(dst_xml), compress_to_fp16=False)
    except Exception as exc:
        raise ModelError(f'NNCF quantization of {src} failed: {type(exc).__name__}: '
                         f'{str(exc)[:400]}') from exc
    return {'tool': 'nncf.quantize', 'nncf': nncf.__version__, 'openvino': ov.get_version(),
            'preset': preset, 'fast_bias_correction': fast_bias_correction,
            'subset_size': len(tensors), 'calibration_images': len(tensors)}
