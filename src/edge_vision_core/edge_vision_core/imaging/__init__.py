"""Image quality: full- and no-reference metrics and corrections, without ROS.

- :mod:`.reference`: PSNR, SSIM and MSE equal to scikit-image's (``psnr``, ``ssim``), fast.
- :mod:`.metrics`: per-frame no-reference quality (``measure_quality`` -> ``QualityMetrics``:
  brightness, contrast, clipped fractions, sharpness, noise sigma, SNR).
- :mod:`.corrections`: exposure (gamma, CLAHE), white balance, sharpening, denoising, resize
  as pure functions.
- :mod:`.undistort`: ``Undistorter``, undistortion/rectification with cached maps (REP-104).
- :mod:`.steps`: ``STEP_TABLE``, the correction steps (each with its switch, parameters, state
  and code);
- :mod:`.preprocess`: ``Preprocessor`` + ``PreprocessConfig``, the per-stream pipeline that
  ``preprocess_node`` wraps: measure, gate, correct, report (a ``PreprocessResult``; the ROS
  diagnostics are made from it in ``edge_vision.conversions``).

Images are numpy arrays in ROS encodings: natively mono8, mono16, bgr8, rgb8, bgr16, rgb16
((H, W) or (H, W, 3), uint8/uint16); the Preprocessor converts other camera encodings.
"""

from __future__ import annotations

from ._image import NATIVE_ENCODINGS, working_encoding
from .metrics import NOISE_METHODS, QualityMetrics, estimate_noise_sigma, measure_quality
from .preprocess import (
    GATE_REASONS,
    STEPS,
    PreprocessConfig,
    Preprocessor,
    PreprocessResult,
    PreprocessStats,
    QualityVerdict,
)
from .reference import mse, psnr, ssim
from .steps import STEP_TABLE, Step
from .undistort import Undistorter

__all__ = [
    'GATE_REASONS',
    'NATIVE_ENCODINGS',
    'NOISE_METHODS',
    'STEPS',
    'STEP_TABLE',
    'PreprocessConfig',
    'PreprocessResult',
    'PreprocessStats',
    'Preprocessor',
    'QualityMetrics',
    'QualityVerdict',
    'Step',
    'Undistorter',
    'estimate_noise_sigma',
    'measure_quality',
    'mse',
    'psnr',
    'ssim',
    'working_encoding',
]
