"""The image-quality preprocessor: measure a frame, correct it, judge whether it is usable.

:class:`Preprocessor` is what ``preprocess_node`` wraps (one per camera stream). Per frame,
:meth:`Preprocessor.process` does:

1. convert the image to a natively processed encoding if needed (``bgra8``, ``yuyv``, Bayer...
   -> ``bgr8``/``bgr16``; ``mono8``, ``mono16``, ``bgr8``, ``rgb8``, ``bgr16``, ``rgb16`` pass
   as they are);
2. measure the input's no-reference :class:`~.metrics.QualityMetrics`;
3. judge it against the gate thresholds (:class:`QualityVerdict`: ``ok`` or reasons such as
   ``too_dark``, ``too_blurred``); with ``gate_action='drop'`` a failing frame is not corrected
   and no image is returned (the result still carries the metrics, for diagnostics);
4. run the enabled corrections in ``order``: ``denoise``, ``white_balance``, ``exposure``
   (gamma from mean luma), ``clahe``, ``sharpen``, ``undistort`` (with the camera model, maps
   cached per calibration), ``resize`` (camera model scaled along);
5. optionally measure the output, and compare it with the input (PSNR/SSIM).

The result carries the corrected image, the output camera model (rectified per REP-104 when
undistorted, else the input's, scaled when resized), the metrics, the verdict, the parameters
the corrections chose (gamma, white-balance gains, noise sigma), why a step was skipped, and
per-step timings in milliseconds. Problems a user must hear about (image/camera_info size
mismatch, an uncalibrated camera with undistortion on) are in ``warnings`` and never raise:
the frame passes through without that step.

The preprocessor keeps per-instance state only: the undistortion maps of the last
calibration, the smoothed exposure gamma (``exposure_smoothing``) and frame counters
(:class:`PreprocessStats`); :meth:`Preprocessor.reset` clears them.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..camera import CameraModel
from ..config import check_config, param
from ..encodings import convert_encoding, encoding_info
from ..errors import CalibrationError, ConfigError, ConversionError
from . import corrections as cor
from ._image import NATIVE_ENCODINGS, check_image, is_colour, working_encoding
from .metrics import NOISE_METHODS, QualityMetrics, estimate_noise_sigma, measure_quality
from .reference import psnr, ssim
from .undistort import REMAP_INTERPOLATIONS, Undistorter

__all__ = ['GATE_REASONS', 'STEPS', 'PreprocessConfig', 'PreprocessResult', 'PreprocessStats',
           'Preprocessor', 'QualityVerdict']

#: The correction steps, in their default order.
STEPS = ('denoise', 'white_balance', 'exposure', 'clahe', 'sharpen', 'undistort', 'resize')

#: Reasons a frame can fail the quality gate.
GATE_REASONS = ('too_dark', 'too_bright', 'low_contrast', 'too_blurred', 'too_noisy')

_WB_METHODS = ('gray_edge', 'gray_world')
_SHARPEN_METHODS = ('unsharp', 'kernel')
_RESIZE_INTERPOLATIONS = ('auto', *cor.INTERPOLATIONS)


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of :class:`Preprocessor` (each becomes a ``preprocess_node`` parameter).

    Intensities are fractions of full scale, noise levels 8-bit levels, sharpness the variance
    of the Laplacian in 8-bit levels squared (see :mod:`.metrics`).
    """

    # --- pipeline -----------------------------------------------------------------------------
    order: tuple[str, ...] = field(default=STEPS, metadata=param(
        'Order in which the enabled corrections run; every enabled step must be listed once. '
        'Put resize first to make the other steps cheaper when shrinking.', choices=STEPS))
    enable_denoise: bool = field(default=False, metadata=param(
        'Reduce noise (denoise_method) when the noise sigma reaches denoise_min_sigma.'))
    enable_white_balance: bool = field(default=False, metadata=param(
        'Automatic white balance (wb_method) of colour images.'))
    enable_exposure: bool = field(default=True, metadata=param(
        'Automatic exposure: a gamma that brings the mean luma into exposure_target +- '
        'exposure_tolerance.'))
    enable_clahe: bool = field(default=False, metadata=param(
        'Contrast-limited adaptive histogram equalisation of the luma (local contrast).'))
    enable_sharpen: bool = field(default=False, metadata=param(
        'Sharpen (sharpen_method) to undo mild blur.'))
    enable_undistort: bool = field(default=True, metadata=param(
        'Undistort and rectify with the camera_info calibration (skipped, with a warning, '
        'when the camera is uncalibrated or its size differs from the image).'))
    enable_resize: bool = field(default=False, metadata=param(
        'Resize to resize_width x resize_height (camera model scaled along).'))

    # --- metrics ------------------------------------------------------------------------------
    metrics_decimation: int = field(default=1, metadata=param(
        'Measure quality on every k-th pixel of every k-th row (k^2 times cheaper; noise '
        'estimates stay comparable, sharpness values change with k).', min=1, max=16))
    noise_method: str = field(default='immerkaer_mad', metadata=param(
        'Noise estimator: immerkaer_mad (robust median) or immerkaer (mean, faster).',
        choices=NOISE_METHODS))
    dark_level: float = field(default=0.02, metadata=param(
        'Luma at or below this fraction of full scale counts as underexposed.', min=0.0,
        max=1.0))
    bright_level: float = field(default=0.98, metadata=param(
        'Luma at or above this fraction of full scale counts as overexposed.', min=0.0,
        max=1.0))
    bit_depth: int = field(default=0, metadata=param(
        'Significant bits of 16-bit images (e.g. 12 for a 12-bit sensor); 0 = all 16.',
        min=0, max=16))
    output_metrics: bool = field(default=False, metadata=param(
        'Also measure the corrected image (costs a second measurement).'))
    compare_output: bool = field(default=False, metadata=param(
        'Compute PSNR and SSIM of the corrected image against the input when their shapes '
        'match (costs an SSIM per frame).'))

    # --- exposure -----------------------------------------------------------------------------
    exposure_target: float = field(default=0.45, metadata=param(
        'Wanted mean luma, fraction of full scale.', min=0.05, max=0.95))
    exposure_tolerance: float = field(default=0.1, metadata=param(
        'Frames whose mean luma is within target +- tolerance are left alone; others are '
        'brought to the nearest edge of that band.', min=0.0, max=0.5))
    exposure_gamma_min: float = field(default=0.25, metadata=param(
        'Strongest brightening gamma allowed.', min=0.05, max=1.0))
    exposure_gamma_max: float = field(default=4.0, metadata=param(
        'Strongest darkening gamma allowed.', min=1.0, max=20.0))
    exposure_smoothing: float = field(default=0.0, metadata=param(
        'Temporal smoothing of the gamma over frames (0 = none, 0.9 = slow); avoids flicker '
        'in video.', min=0.0, max=0.99))

    # --- CLAHE --------------------------------------------------------------------------------
    clahe_clip_limit: float = field(default=2.0, metadata=param(
        'CLAHE contrast limit per tile (1 = none; 2-4 typical).', min=0.5, max=40.0))
    clahe_tiles: int = field(default=8, metadata=param(
        'CLAHE tiles per image side.', min=1, max=64))

    # --- white balance ------------------------------------------------------------------------
    wb_method: str = field(default='gray_edge', metadata=param(
        'gray_edge (mean gradient is grey; robust on scenes of one dominant colour) or '
        'gray_world (mean colour is grey).', choices=_WB_METHODS))
    wb_max_gain: float = field(default=2.0, metadata=param(
        'Largest gain (and smallest, as 1/max) applied to a channel.', min=1.0, max=16.0))

    # --- sharpening ---------------------------------------------------------------------------
    sharpen_method: str = field(default='unsharp', metadata=param(
        'unsharp (unsharp mask) or kernel (convolution with sharpen_kernel).',
        choices=_SHARPEN_METHODS))
    sharpen_sigma: float = field(default=1.0, metadata=param(
        'Unsharp mask Gaussian sigma, about the blur to undo.', min=0.1, max=20.0, unit='px'))
    sharpen_amount: float = field(default=1.5, metadata=param(
        'Unsharp mask gain of the detail.', min=0.0, max=10.0))
    sharpen_threshold: float = field(default=0.0, metadata=param(
        'Unsharp mask: details below this many 8-bit levels are not boosted (spares noise).',
        min=0.0, max=255.0))
    sharpen_kernel: tuple[float, ...] = field(
        default=(0.0, -0.5, 0.0, -0.5, 3.0, -0.5, 0.0, -0.5, 0.0), metadata=param(
            'Sharpening kernel for sharpen_method=kernel: k*k values row-major (k odd) '
            'summing to 1.', min=-100.0, max=100.0))

    # --- denoising ----------------------------------------------------------------------------
    denoise_method: str = field(default='bilateral', metadata=param(
        'gaussian, median, bilateral (edge-preserving) or nlmeans (best, slowest).',
        choices=cor.DENOISE_METHODS))
    denoise_sigma: float = field(default=0.0, metadata=param(
        'Noise sigma the denoiser assumes, 8-bit levels; 0 = the measured one.', min=0.0,
        max=100.0))
    denoise_min_sigma: float = field(default=4.0, metadata=param(
        'Denoise only frames with at least this noise sigma (8-bit levels); lighter noise '
        'costs more detail than it removes.', min=0.0, max=100.0))
    denoise_strength: float = field(default=1.0, metadata=param(
        'Multiplier of the noise-dependent strength of bilateral/nlmeans.', min=0.1,
        max=5.0))
    denoise_ksize: int = field(default=5, metadata=param(
        'Kernel size (odd) of gaussian/median/bilateral.', min=3, max=15, unit='px'))
    denoise_search_window: int = field(default=11, metadata=param(
        'Search window (odd) of nlmeans; its cost grows with the square.', min=7, max=35,
        unit='px'))

    # --- undistortion -------------------------------------------------------------------------
    undistort_alpha: float = field(default=-1.0, metadata=param(
        '-1: rectify onto the camera_info P (like image_proc); 0..1: new projection keeping '
        'only valid pixels (0) up to all source pixels (1).', min=-1.0, max=1.0))
    undistort_interpolation: str = field(default='linear', metadata=param(
        'Interpolation of the undistortion remap.', choices=tuple(REMAP_INTERPOLATIONS)))

    # --- resize -------------------------------------------------------------------------------
    resize_width: int = field(default=0, metadata=param(
        'Output width; 0 = from resize_height keeping the aspect ratio.', min=0, max=16384,
        unit='px'))
    resize_height: int = field(default=0, metadata=param(
        'Output height; 0 = from resize_width keeping the aspect ratio.', min=0, max=16384,
        unit='px'))
    resize_interpolation: str = field(default='auto', metadata=param(
        'auto (area when shrinking, linear when enlarging) or an explicit method.',
        choices=_RESIZE_INTERPOLATIONS))

    # --- quality gate -------------------------------------------------------------------------
    gate_action: str = field(default='flag', metadata=param(
        'off: no verdict; flag: judge and report, keep every frame; drop: frames that fail '
        'are not corrected and not returned (diagnostics still report them).',
        choices=('off', 'flag', 'drop')))
    gate_on: str = field(default='input', metadata=param(
        'Judge the camera input or the corrected output (output implies output_metrics).',
        choices=('input', 'output')))
    gate_min_brightness: float = field(default=0.08, metadata=param(
        'too_dark below this mean luma (fraction of full scale); 0 disables.', min=0.0,
        max=1.0))
    gate_max_underexposed: float = field(default=0.9, metadata=param(
        'too_dark when more than this fraction of pixels is underexposed; 1 disables.',
        min=0.0, max=1.0))
    gate_max_brightness: float = field(default=0.92, metadata=param(
        'too_bright above this mean luma; 1 disables.', min=0.0, max=1.0))
    gate_max_overexposed: float = field(default=0.5, metadata=param(
        'too_bright when more than this fraction of pixels is overexposed; 1 disables.',
        min=0.0, max=1.0))
    gate_min_contrast: float = field(default=0.0, metadata=param(
        'low_contrast below this RMS contrast (fraction of full scale); 0 disables.',
        min=0.0, max=0.5))
    gate_min_sharpness: float = field(default=0.0, metadata=param(
        'too_blurred below this variance of Laplacian (8-bit levels^2; scene-dependent: '
        'sharp VGA scenes give hundreds to thousands, a 2-pixel blur tens or less); 0 '
        'disables.', min=0.0, max=1e6))
    gate_max_noise_sigma: float = field(default=0.0, metadata=param(
        'too_noisy above this noise sigma (8-bit levels); 0 disables.', min=0.0, max=255.0))

    def __post_init__(self) -> None:
        check_config(self)
        if len(set(self.order)) != len(self.order):
            raise ConfigError(f'PreprocessConfig.order lists a step twice: {list(self.order)}')
        for step in STEPS:
            if getattr(self, f'enable_{step}') and step not in self.order:
                raise ConfigError(f'PreprocessConfig.enable_{step} is True but {step!r} is not '
                                  f'in order {list(self.order)}; add it where it should run')
        if self.dark_level >= self.bright_level:
            raise ConfigError(f'PreprocessConfig.dark_level ({self.dark_level}) must be below '
                              f'bright_level ({self.bright_level})')
        if self.gate_max_brightness <= self.gate_min_brightness:
            raise ConfigError(f'PreprocessConfig.gate_max_brightness '
                              f'({self.gate_max_brightness}) must exceed gate_min_brightness '
                              f'({self.gate_min_brightness})')
        if self.enable_resize and self.resize_width == 0 and self.resize_height == 0:
            raise ConfigError('PreprocessConfig.enable_resize needs resize_width and/or '
                              'resize_height (the other 0 keeps the aspect ratio)')
        for name in ('denoise_ksize', 'denoise_search_window'):
            if getattr(self, name) % 2 == 0:
                raise ConfigError(f'PreprocessConfig.{name} must be odd, got '
                                  f'{getattr(self, name)}')
        if self.undistort_alpha != -1.0 and self.undistort_alpha < 0.0:
            raise ConfigError(f'PreprocessConfig.undistort_alpha must be -1 or in [0, 1], got '
                              f'{self.undistort_alpha}')
        try:  # the same checks the kernel meets at run time, now, with the field's name
            cor.check_sharpen_kernel(self.sharpen_kernel)
        except ConfigError as exc:
            raise ConfigError(f'PreprocessConfig.sharpen_kernel: {exc}') from None


@dataclass(frozen=True)
class QualityVerdict:
    """Whether a frame passed the quality gate.

    Attributes:
        ok: True when no threshold was crossed (always True with ``gate_action='off'``).
        reasons: the failed checks, a subset of :data:`GATE_REASONS`, in that order.
    """

    ok: bool = True
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class PreprocessStats:
    """Frame counters of a :class:`Preprocessor` since its creation or last reset.

    Attributes:
        frames: frames processed.
        flagged: frames that failed the gate (dropped ones included).
        dropped: frames not returned because they failed the gate with ``gate_action=drop``.
        reasons: how often each gate reason fired.
        warnings: frames that carried at least one warning (e.g. undistortion skipped).
    """

    frames: int = 0
    flagged: int = 0
    dropped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    warnings: int = 0


@dataclass(frozen=True, eq=False)
class PreprocessResult:
    """Everything :meth:`Preprocessor.process` found and did for one frame.

    Attributes:
        image: the corrected image in ``encoding``, or None when the frame was dropped.
        encoding: encoding of ``image`` (the input's, or its native conversion).
        input_metrics: quality of the input (after encoding conversion).
        output_metrics: quality of the output, when measured (``output_metrics`` or
            ``gate_on='output'``), else None.
        camera: the output camera model: rectified (REP-104, D = 0) when undistorted, the
            input's otherwise, scaled when resized; None when no camera model was given.
        verdict: the quality gate's judgement.
        dropped: True when the gate dropped the frame (``image`` is then None).
        steps: the corrections that ran, in order.
        skipped: enabled corrections that did not run -> why (normal conditions such as
            "within tolerance" as well as problems).
        warnings: problems a user must hear about (the node logs them, throttled).
        parameters: values chosen per frame: ``gamma``, ``wb_gain_<channel>``,
            ``denoise_sigma``...
        timings_ms: wall time per stage in milliseconds: ``convert``, ``metrics_input``, one
            per step that ran, ``metrics_output``, ``compare``, ``total``.
        converted_from: the original encoding when the input was converted, else None.
        psnr, ssim: output vs input (``compare_output``), else None.
    """

    image: np.ndarray | None
    encoding: str
    input_metrics: QualityMetrics
    output_metrics: QualityMetrics | None
    camera: CameraModel | None
    verdict: QualityVerdict
    dropped: bool
    steps: tuple[str, ...]
    skipped: dict[str, str]
    warnings: tuple[str, ...]
    parameters: dict[str, float]
    timings_ms: dict[str, float]
    converted_from: str | None = None
    psnr: float | None = None
    ssim: float | None = None

    @property
    def diagnostic_level(self) -> int:
        """``diagnostic_msgs/DiagnosticStatus`` level: 0 OK, 1 WARN (gate failed or warnings)."""
        return 0 if self.verdict.ok and not self.warnings else 1

    @property
    def summary(self) -> str:
        """One line for ``DiagnosticStatus.message``."""
        parts = ['ok' if self.verdict.ok else ', '.join(self.verdict.reasons)]
        if self.dropped:
            parts.append('frame dropped')
        parts.extend(self.warnings)
        return '; '.join(parts)

    def diagnostic_values(self) -> list[tuple[str, str]]:
        """Key/value strings for ``DiagnosticStatus.values`` (metrics, steps, timings)."""
        values: list[tuple[str, str]] = []
        for prefix, metrics in (('', self.input_metrics), ('output_', self.output_metrics)):
            if metrics is None:
                continue
            for key, value in metrics.as_dict().items():
                if key not in ('width', 'height', 'decimation'):
                    values.append((prefix + key, _fmt(value)))
        values.append(('verdict', 'ok' if self.verdict.ok else 'fail'))
        values.append(('reasons', ','.join(self.verdict.reasons)))
        values.append(('dropped', str(self.dropped).lower()))
        values.append(('steps', ','.join(self.steps)))
        values.extend((f'skipped_{k}', v) for k, v in self.skipped.items())
        values.extend((k, _fmt(v)) for k, v in self.parameters.items())
        if self.psnr is not None:
            values.append(('psnr_output_vs_input_db', _fmt(self.psnr)))
        if self.ssim is not None:
            values.append(('ssim_output_vs_input', _fmt(self.ssim)))
        values.extend((f'time_{k}_ms', f'{v:.3f}') for k, v in self.timings_ms.items())
        if self.converted_from:
            values.append(('converted_from', self.converted_from))
        return values


def _fmt(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return 'inf' if value > 0 else '-inf'
    return f'{value:.6g}'


class Preprocessor:
    """Measures, corrects and judges the frames of one camera stream.

    Example::

        pre = Preprocessor(PreprocessConfig(enable_denoise=True))
        result = pre.process(image, 'bgr8', camera)   # camera: CameraModel or None
        if result.image is not None:
            publish(result.image, result.encoding, result.camera)
        publish_diagnostics(result.diagnostic_level, result.summary,
                            result.diagnostic_values())

    Call :meth:`process` for every frame; it never keeps a frame. State (undistortion maps,
    the smoothed gamma, counters) is per instance; :meth:`reset` clears it. One instance per
    stream, called from one thread at a time (it is not thread-safe). It holds no OS resources,
    so there is nothing to close.
    """

    def __init__(self, config: PreprocessConfig | None = None) -> None:
        self._config = config if config is not None else PreprocessConfig()
        if not isinstance(self._config, PreprocessConfig):
            raise ConfigError(f'Preprocessor needs a PreprocessConfig, got '
                              f'{type(self._config).__name__}')
        self._undistorter = self._make_undistorter(self._config)
        self._clahe = self._make_clahe(self._config)
        self._gamma: float | None = None
        self.stats = PreprocessStats()

    @property
    def config(self) -> PreprocessConfig:
        """The settings in use."""
        return self._config

    @property
    def undistorter(self) -> Undistorter:
        """The undistorter in use (its maps and ``rectified_camera()`` for a calibration)."""
        return self._undistorter

    def configure(self, config: PreprocessConfig) -> None:
        """Switch to new settings between frames (e.g. on a ROS parameter change).

        The undistortion maps are kept unless an undistortion setting changed.
        """
        if not isinstance(config, PreprocessConfig):
            raise ConfigError(f'configure() needs a PreprocessConfig, got '
                              f'{type(config).__name__}')
        old = self._config
        if (config.undistort_alpha, config.undistort_interpolation) != \
                (old.undistort_alpha, old.undistort_interpolation):
            self._undistorter = self._make_undistorter(config)
        if (config.clahe_clip_limit, config.clahe_tiles) != \
                (old.clahe_clip_limit, old.clahe_tiles):
            self._clahe = self._make_clahe(config)
        self._config = config

    def reset(self) -> None:
        """Forget the cached calibration, the smoothed gamma and the counters."""
        self._undistorter.reset()
        self._gamma = None
        self.stats = PreprocessStats()

    @staticmethod
    def _make_undistorter(config: PreprocessConfig) -> Undistorter:
        return Undistorter(alpha=config.undistort_alpha,
                           interpolation=config.undistort_interpolation)

    @staticmethod
    def _make_clahe(config: PreprocessConfig) -> cv2.CLAHE:
        return cv2.createCLAHE(clipLimit=config.clahe_clip_limit,
                               tileGridSize=(config.clahe_tiles, config.clahe_tiles))

    # -----------------------------------------------------------------------------------------

    def process(self, image: np.ndarray, encoding: str, camera: CameraModel | None = None
                ) -> PreprocessResult:
        """Measure, judge and correct one frame.

        Args:
            image: (H, W) or (H, W, C) array laid out as ``encoding`` says (as from
                ``encodings.buffer_to_array``); it is never modified.
            encoding: its ROS encoding; non-native colour/Bayer/YUV encodings are converted to
                ``bgr8``/``bgr16`` (see ``result.converted_from``).
            camera: the frame's calibration (from its camera_info), or None.

        Returns:
            A :class:`PreprocessResult`.

        Raises:
            ConversionError: the encoding cannot be processed (depth images, generic types) or
                the array does not match it.
            ConfigError: ``camera`` is not a CameraModel.
        """
        cfg = self._config
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        if camera is not None and not isinstance(camera, CameraModel):
            raise ConfigError(f'camera must be a CameraModel or None, got '
                              f'{type(camera).__name__}')
        image, encoding, converted_from = self._convert(image, encoding, timings)

        t = time.perf_counter()
        metrics_in = self._measure(image, encoding)
        timings['metrics_input'] = _ms(t)

        verdict = QualityVerdict()
        if cfg.gate_action != 'off' and cfg.gate_on == 'input':
            verdict = self._judge(metrics_in)
        if not verdict.ok and cfg.gate_action == 'drop':
            timings['total'] = _ms(t_start)
            return self._finish(PreprocessResult(
                image=None, encoding=encoding, input_metrics=metrics_in, output_metrics=None,
                camera=camera, verdict=verdict, dropped=True, steps=(), skipped={},
                warnings=(), parameters={}, timings_ms=timings,
                converted_from=converted_from))

        out, out_camera = image, camera
        steps: list[str] = []
        skipped: dict[str, str] = {}
        warnings: list[str] = []
        parameters: dict[str, float] = {}
        for step in cfg.order:
            if not getattr(cfg, f'enable_{step}'):
                continue
            t = time.perf_counter()
            out, out_camera, why = self._run_step(step, out, encoding, out_camera,
                                                  out is image, metrics_in, parameters,
                                                  warnings)
            if why is None:
                steps.append(step)
                timings[step] = _ms(t)
            else:
                skipped[step] = why
        if out is image:
            out = image.copy()  # the caller owns the result; never hand back the input

        metrics_out = None
        if cfg.output_metrics or cfg.gate_on == 'output':
            t = time.perf_counter()
            metrics_out = self._measure(out, encoding)
            timings['metrics_output'] = _ms(t)
        if cfg.gate_action != 'off' and cfg.gate_on == 'output':
            verdict = self._judge(metrics_out)
        dropped = not verdict.ok and cfg.gate_action == 'drop'

        value_psnr = value_ssim = None
        if cfg.compare_output:
            if out.shape == image.shape:
                t = time.perf_counter()
                value_psnr, value_ssim = psnr(image, out), ssim(image, out)
                timings['compare'] = _ms(t)
            else:
                skipped['compare'] = (f'output {out.shape[1]}x{out.shape[0]} differs from input '
                                      f'{image.shape[1]}x{image.shape[0]}')
        timings['total'] = _ms(t_start)
        return self._finish(PreprocessResult(
            image=None if dropped else out, encoding=encoding, input_metrics=metrics_in,
            output_metrics=metrics_out, camera=out_camera, verdict=verdict, dropped=dropped,
            steps=tuple(steps), skipped=skipped, warnings=tuple(warnings),
            parameters=parameters, timings_ms=timings, converted_from=converted_from,
            psnr=value_psnr, ssim=value_ssim))

    # -----------------------------------------------------------------------------------------

    def _finish(self, result: PreprocessResult) -> PreprocessResult:
        stats = self.stats
        stats.frames += 1
        if not result.verdict.ok:
            stats.flagged += 1
            stats.reasons.update(result.verdict.reasons)
        if result.dropped:
            stats.dropped += 1
        if result.warnings:
            stats.warnings += 1
        return result

    def _convert(self, image: np.ndarray, encoding: str, timings: dict[str, float]
                 ) -> tuple[np.ndarray, str, str | None]:
        if encoding in NATIVE_ENCODINGS:
            return check_image(image, encoding), encoding, None
        target = working_encoding(encoding)  # raises ConversionError when impossible
        info = encoding_info(encoding)
        channels = 1 if getattr(image, 'ndim', 0) == 2 else getattr(image, 'shape', (0,) * 3)[-1]
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or \
                image.dtype != info.dtype or channels != info.channels:
            raise ConversionError(
                f'image: encoding {encoding!r} needs {info.dtype} x {info.channels} '
                f'channel(s), got {getattr(image, "shape", None)} '
                f'{getattr(image, "dtype", type(image).__name__)}')
        t = time.perf_counter()
        converted = convert_encoding(image, encoding, target)
        timings['convert'] = _ms(t)
        return check_image(converted, target), target, encoding

    def _measure(self, image: np.ndarray, encoding: str) -> QualityMetrics:
        cfg = self._config
        return measure_quality(image, encoding, decimation=cfg.metrics_decimation,
                               noise_method=cfg.noise_method, dark_level=cfg.dark_level,
                               bright_level=cfg.bright_level, bit_depth=cfg.bit_depth)

    def _judge(self, m: QualityMetrics) -> QualityVerdict:
        cfg = self._config
        failed = {
            'too_dark': (m.brightness < cfg.gate_min_brightness
                         or (cfg.gate_max_underexposed < 1.0
                             and m.underexposed > cfg.gate_max_underexposed)),
            'too_bright': ((cfg.gate_max_brightness < 1.0
                            and m.brightness > cfg.gate_max_brightness)
                           or (cfg.gate_max_overexposed < 1.0
                               and m.overexposed > cfg.gate_max_overexposed)),
            'low_contrast': m.contrast < cfg.gate_min_contrast,
            'too_blurred': m.sharpness < cfg.gate_min_sharpness,
            'too_noisy': 0.0 < cfg.gate_max_noise_sigma < m.noise_sigma,
        }
        reasons = tuple(r for r in GATE_REASONS if failed[r])
        return QualityVerdict(ok=not reasons, reasons=reasons)

    def _run_step(self, step: str, image: np.ndarray, encoding: str,
                  camera: CameraModel | None, untouched: bool, metrics_in: QualityMetrics,
                  parameters: dict[str, float], warnings: list[str]
                  ) -> tuple[np.ndarray, CameraModel | None, str | None]:
        """Run one step; returns (image, camera, None) or (image, camera, why it was skipped)."""
        cfg = self._config
        if step == 'denoise':
            sigma = cfg.denoise_sigma
            if sigma == 0.0:
                sigma = metrics_in.noise_sigma if untouched else estimate_noise_sigma(
                    image, encoding, method=cfg.noise_method,
                    decimation=cfg.metrics_decimation, bit_depth=cfg.bit_depth)
            parameters['denoise_sigma'] = sigma
            if sigma < cfg.denoise_min_sigma:
                return image, camera, (f'noise sigma {sigma:.2f} below denoise_min_sigma '
                                       f'{cfg.denoise_min_sigma:g}')
            if cfg.denoise_method == 'median' and image.dtype == np.uint16 and \
                    cfg.denoise_ksize > 5:
                warnings.append('median denoising of 16-bit images supports denoise_ksize 3 '
                                'or 5 only; denoising skipped')
                return image, camera, warnings[-1]
            return cor.denoise(image, encoding, method=cfg.denoise_method, noise_sigma=sigma,
                               strength=cfg.denoise_strength, ksize=cfg.denoise_ksize,
                               search_window=cfg.denoise_search_window,
                               bit_depth=cfg.bit_depth), camera, None
        if step == 'white_balance':
            if not is_colour(encoding):
                return image, camera, 'mono image'
            if cfg.wb_method == 'gray_edge':
                gains = cor.gray_edge_gains(image, encoding, max_gain=cfg.wb_max_gain)
            else:
                gains = cor.gray_world_gains(image, encoding, max_gain=cfg.wb_max_gain,
                                             bit_depth=cfg.bit_depth)
            for name, gain in zip(encoding[:3], gains, strict=True):
                parameters[f'wb_gain_{name}'] = gain
            return cor.apply_channel_gains(image, gains), camera, None
        if step == 'exposure':
            gamma = cor.exposure_gamma(
                image, encoding, target=cfg.exposure_target, tolerance=cfg.exposure_tolerance,
                gamma_min=cfg.exposure_gamma_min, gamma_max=cfg.exposure_gamma_max,
                bit_depth=cfg.bit_depth)
            if cfg.exposure_smoothing > 0.0 and self._gamma is not None:
                s = cfg.exposure_smoothing
                gamma = math.exp(s * math.log(self._gamma) + (1.0 - s) * math.log(gamma))
            self._gamma = gamma
            parameters['gamma'] = gamma
            if abs(gamma - 1.0) < 1e-3:
                return image, camera, 'mean luma within exposure_target +- exposure_tolerance'
            return cor.apply_gamma(image, gamma, bit_depth=cfg.bit_depth), camera, None
        if step == 'clahe':
            return cor.clahe_luma(image, encoding, clahe=self._clahe), camera, None
        if step == 'sharpen':
            if cfg.sharpen_method == 'unsharp':
                return cor.unsharp_mask(image, sigma=cfg.sharpen_sigma,
                                        amount=cfg.sharpen_amount,
                                        threshold=cfg.sharpen_threshold,
                                        bit_depth=cfg.bit_depth), camera, None
            return cor.sharpen_kernel(image, cfg.sharpen_kernel), camera, None
        if step == 'undistort':
            if camera is None:
                return image, camera, 'no camera model (camera_info) given'
            if not camera.is_calibrated:
                # REP-104: an uncalibrated camera's image is used as it is; not a problem
                return image, camera, 'camera not calibrated (K is zero)'
            try:
                rect, rect_camera = self._undistorter.rectify(image, camera)
            except CalibrationError as exc:
                warnings.append(f'undistortion skipped: {exc}')
                return image, camera, str(exc)
            return rect, rect_camera, None
        if step == 'resize':
            h, w = image.shape[:2]
            width, height = cfg.resize_width, cfg.resize_height
            if width == 0:
                width = max(1, round(w * height / h))
            elif height == 0:
                height = max(1, round(h * width / w))
            if (width, height) == (w, h):
                return image, camera, 'already at the requested size'
            out = cor.resize(image, width, height, cfg.resize_interpolation)
            if camera is not None:
                if (camera.width, camera.height) == (w, h):
                    camera = camera.scaled(width, height)
                else:
                    warnings.append(
                        f'camera_info ({camera.width}x{camera.height}) does not match the '
                        f'image ({w}x{h}); the camera model was not scaled with the resize')
            return out, camera, None
        raise ConfigError(f'unknown step {step!r}')  # unreachable: order is validated


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0

