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

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..camera import CameraModel
from ..config import check_config, param
from ..encodings import convert_encoding, encoding_info
from ..errors import ConfigError, ConversionError, DataError
from ._image import NATIVE_ENCODINGS, check_image, working_encoding
from .metrics import NOISE_METHODS, QualityMetrics, measure_quality
from .reference import psnr, ssim
from .steps import STEP_TABLE, STEPS, StepContext
from .undistort import Undistorter

__all__ = ['GATE_REASONS', 'STEPS', 'PreprocessConfig', 'PreprocessResult', 'PreprocessStats',
           'Preprocessor', 'QualityVerdict']

#: Reasons a frame can fail the quality gate.
GATE_REASONS = ('too_dark', 'too_bright', 'low_contrast', 'too_blurred', 'too_noisy')


def _with_step_fields(cls: type) -> type:
    """Class decorator, below ``@dataclass``: add every step's ``enable_<name>`` switch after
    ``order`` and the step's parameters before the quality-gate fields (``gate_action``), in
    :data:`~.steps.STEP_TABLE` order, so a step's settings are declared with the step."""
    own = dict(cls.__dict__.get('__annotations__', {}))
    flags = {step.flag: (bool, step.enabled, param(step.description))
             for step in STEP_TABLE.values()}
    params = {name: spec for step in STEP_TABLE.values() for name, spec in step.fields.items()}
    clash = (set(flags) | set(params)) & set(own)
    if clash:
        raise TypeError(f'PreprocessConfig declares step fields itself: {sorted(clash)}')
    annotations: dict[str, Any] = {}
    for name, hint in own.items():
        if name == 'gate_action':
            annotations.update((k, t) for k, (t, _, _) in params.items())
        annotations[name] = hint
        if name == 'order':
            annotations.update((k, t) for k, (t, _, _) in flags.items())
    for name, (_, default, metadata) in {**flags, **params}.items():
        setattr(cls, name, field(default=default, metadata=metadata))
    cls.__annotations__ = annotations
    return cls


@dataclass(frozen=True)
@_with_step_fields
class PreprocessConfig:
    """Settings of :class:`Preprocessor` (each becomes a ``preprocess_node`` parameter).

    Besides the fields below, every step of :data:`~.steps.STEP_TABLE` contributes its
    ``enable_<step>`` switch (after ``order``) and its own parameters (``denoise_*``,
    ``wb_*``, ``exposure_*``, ``clahe_*``, ``sharpen_*``, ``undistort_*``, ``resize_*``;
    before the gate), declared with the step in :mod:`.steps`.

    Intensities are fractions of full scale, noise levels 8-bit levels, sharpness the variance
    of the Laplacian in 8-bit levels squared (see :mod:`.metrics`).
    """

    # --- pipeline -----------------------------------------------------------------------------
    order: tuple[str, ...] = field(default=STEPS, metadata=param(
        'Order in which the enabled corrections run; every enabled step must be listed once. '
        'Put resize first to make the other steps cheaper when shrinking.', choices=STEPS))
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
        for step in STEP_TABLE.values():
            if getattr(self, step.flag) and step.name not in self.order:
                raise ConfigError(f'PreprocessConfig.{step.flag} is True but {step.name!r} is '
                                  f'not in order {list(self.order)}; add it where it should run')
        if self.dark_level >= self.bright_level:
            raise ConfigError(f'PreprocessConfig.dark_level ({self.dark_level}) must be below '
                              f'bright_level ({self.bright_level})')
        if self.gate_max_brightness <= self.gate_min_brightness:
            raise ConfigError(f'PreprocessConfig.gate_max_brightness '
                              f'({self.gate_max_brightness}) must exceed gate_min_brightness '
                              f'({self.gate_min_brightness})')
        for step in STEP_TABLE.values():
            if step.check is not None:
                step.check(self)

    def is_enabled(self, step: str) -> bool:
        """Whether correction ``step`` is switched on."""
        return bool(getattr(self, STEP_TABLE[step].flag))


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


class Preprocessor:
    """Measures, corrects and judges the frames of one camera stream.

    Example::

        pre = Preprocessor(PreprocessConfig(enable_denoise=True))
        result = pre.process(image, 'bgr8', camera)   # camera: CameraModel or None
        if result.image is not None:
            publish(result.image, result.encoding, result.camera)
        report(result.verdict, result.warnings, result.input_metrics, result.timings_ms)

    (``edge_vision.conversions.quality_to_status`` turns a result into the ROS
    ``DiagnosticStatus`` that ``preprocess_node`` publishes.)

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
        self._states = self._make_states(self._config)
        self.stats = PreprocessStats()

    @property
    def config(self) -> PreprocessConfig:
        """The settings in use."""
        return self._config

    @property
    def undistorter(self) -> Undistorter:
        """The undistorter in use (its maps and ``rectified_camera()`` for a calibration)."""
        return self._states['undistort']

    def configure(self, config: PreprocessConfig) -> None:
        """Switch to new settings between frames (e.g. on a ROS parameter change).

        A step's state (the undistortion maps, the CLAHE object, the smoothed gamma) is kept
        unless one of its ``state_fields`` changed.
        """
        if not isinstance(config, PreprocessConfig):
            raise ConfigError(f'configure() needs a PreprocessConfig, got '
                              f'{type(config).__name__}')
        old = self._config
        for name, step in STEP_TABLE.items():
            if name in self._states and any(getattr(config, f) != getattr(old, f)
                                            for f in step.state_fields):
                self._states[name] = step.make_state(config)
        self._config = config

    def reset(self) -> None:
        """Forget the cached calibration, the smoothed gamma (every step's state) and the
        counters."""
        self._states = self._make_states(self._config)
        self.stats = PreprocessStats()

    @staticmethod
    def _make_states(config: PreprocessConfig) -> dict[str, Any]:
        return {name: step.make_state(config) for name, step in STEP_TABLE.items()
                if step.make_state is not None}

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
            DataError: ``camera`` is not a CameraModel.
        """
        cfg = self._config
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        if camera is not None and not isinstance(camera, CameraModel):
            raise DataError(f'camera must be a CameraModel or None, got '
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
        for name in cfg.order:
            step = STEP_TABLE[name]
            if not getattr(cfg, step.flag):
                continue
            t = time.perf_counter()
            out, out_camera, why = step.run(StepContext(
                out, encoding, out_camera, cfg, self._states.get(name), out is image,
                metrics_in, parameters, warnings))
            if why is None:
                steps.append(name)
                timings[name] = _ms(t)
            else:
                skipped[name] = why
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


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0

