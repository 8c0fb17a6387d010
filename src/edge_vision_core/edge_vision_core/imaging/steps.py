"""The preprocessor's correction steps: one table of step objects, each with its code.

A :class:`Step` knows everything about one correction:

- its ``enable_<name>`` switch (description and default) and its parameters (the
  ``PreprocessConfig`` fields it owns, declared here with their documentation and limits: they
  become ``preprocess_node`` parameters);
- the cross-field checks of those parameters (``check``, run by ``PreprocessConfig``);
- per-stream state it keeps between frames (``make_state``: undistortion maps, a CLAHE object,
  the smoothed gamma), rebuilt when one of its ``state_fields`` changes and on ``reset``;
- ``run``: one frame in, the corrected frame (and camera model) out, or why it was skipped.

:data:`STEP_TABLE` lists them in their default order. ``PreprocessConfig`` (in
:mod:`.preprocess`) takes its ``order`` choices, its ``enable_*`` switches and the step
parameters from this table, and :class:`~.preprocess.Preprocessor` runs the enabled steps
through it, so adding a step is one entry here::

    def _run_invert(ctx: StepContext) -> StepOutput:
        if ctx.image.dtype != np.uint8:
            return ctx.skip('8-bit images only')
        return ctx.done(cv2.bitwise_not(ctx.image))

    Step('invert', 'Invert the image (negatives).', enabled=False, run=_run_invert,
         fields={'invert_strength': (float, 1.0, param('How much to invert, 0..1.', min=0.0,
                                                          max=1.0))}),

(then ``edge-vision params --all --write config`` regenerates ``config/preprocess.yaml``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import cv2
import numpy as np

from ..camera import CameraModel
from ..config import param
from ..errors import CalibrationError, ConfigError
from ..registry import Registry
from . import corrections as cor
from ._image import is_colour
from .metrics import QualityMetrics, estimate_noise_sigma
from .undistort import REMAP_INTERPOLATIONS, Undistorter

__all__ = ['STEPS', 'STEP_TABLE', 'Step', 'StepContext', 'StepOutput']

_WB_METHODS = ('gray_edge', 'gray_world')
_SHARPEN_METHODS = ('unsharp', 'kernel')
_RESIZE_INTERPOLATIONS = ('auto', *cor.INTERPOLATIONS)

#: a step parameter: ``name: (type, default, param(...) metadata)``.
FieldSpec = tuple[Any, Any, Mapping[str, Any]]


class StepOutput(NamedTuple):
    """What a step returns: the (possibly new) image and camera model, and why it did not run
    (None when it ran)."""

    image: np.ndarray
    camera: CameraModel | None
    skipped: str | None = None


@dataclass
class StepContext:
    """One step's view of one frame.

    Attributes:
        image: the image so far, in ``encoding`` (never modify it in place).
        encoding: a native encoding (``mono8``, ``bgr8``, ``bgr16``...).
        camera: the camera model so far, or None.
        config: the ``PreprocessConfig`` in use.
        state: the step's own state (from ``Step.make_state``), or None.
        untouched: True while ``image`` is still the input frame.
        metrics_in: the input frame's quality metrics.
        parameters: write the values the step chose here (``gamma``, ``wb_gain_b``...).
        warnings: append problems a user must hear about.
    """

    image: np.ndarray
    encoding: str
    camera: CameraModel | None
    config: Any
    state: Any
    untouched: bool
    metrics_in: QualityMetrics
    parameters: dict[str, float]
    warnings: list[str]

    def done(self, image: np.ndarray, camera: CameraModel | None = None) -> StepOutput:
        """The step ran: its output image (and camera model, default unchanged)."""
        return StepOutput(image, self.camera if camera is None else camera)

    def skip(self, why: str) -> StepOutput:
        """The step did not run, and why."""
        return StepOutput(self.image, self.camera, why)

    def warn_and_skip(self, warning: str, why: str | None = None) -> StepOutput:
        """The step did not run for a reason the user must hear about."""
        self.warnings.append(warning)
        return self.skip(warning if why is None else why)


@dataclass(frozen=True)
class Step:
    """One correction step (see the module docstring).

    Attributes:
        name: the step's name in ``order`` and in ``enable_<name>``.
        description: what the step does (the ``enable_<name>`` parameter's description).
        enabled: the default of ``enable_<name>``.
        run: the correction.
        fields: the ``PreprocessConfig`` fields it owns, ``name: (type, default, param(...))``.
        check: cross-field validation of a ``PreprocessConfig`` (raise ConfigError).
        make_state: builds the per-stream state from a ``PreprocessConfig``.
        state_fields: fields whose change rebuilds the state.
    """

    name: str
    description: str
    enabled: bool
    run: Callable[[StepContext], StepOutput]
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)
    check: Callable[[Any], None] | None = None
    make_state: Callable[[Any], Any] | None = None
    state_fields: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The name of its enable switch."""
        return f'enable_{self.name}'


# -- denoise ----------------------------------------------------------------------------------

def _run_denoise(ctx: StepContext) -> StepOutput:
    cfg = ctx.config
    sigma = cfg.denoise_sigma
    if sigma == 0.0:
        sigma = ctx.metrics_in.noise_sigma if ctx.untouched else estimate_noise_sigma(
            ctx.image, ctx.encoding, method=cfg.noise_method,
            decimation=cfg.metrics_decimation, bit_depth=cfg.bit_depth)
    ctx.parameters['denoise_sigma'] = sigma
    if sigma < cfg.denoise_min_sigma:
        return ctx.skip(f'noise sigma {sigma:.2f} below denoise_min_sigma '
                        f'{cfg.denoise_min_sigma:g}')
    if cfg.denoise_method == 'median' and ctx.image.dtype == np.uint16 and \
            cfg.denoise_ksize > 5:
        return ctx.warn_and_skip('median denoising of 16-bit images supports denoise_ksize 3 '
                                 'or 5 only; denoising skipped')
    return ctx.done(cor.denoise(ctx.image, ctx.encoding, method=cfg.denoise_method,
                                noise_sigma=sigma, strength=cfg.denoise_strength,
                                ksize=cfg.denoise_ksize, search_window=cfg.denoise_search_window,
                                bit_depth=cfg.bit_depth))


def _check_denoise(cfg: Any) -> None:
    for name in ('denoise_ksize', 'denoise_search_window'):
        if getattr(cfg, name) % 2 == 0:
            raise ConfigError(f'PreprocessConfig.{name} must be odd, got {getattr(cfg, name)}')


# -- white balance ----------------------------------------------------------------------------

def _run_white_balance(ctx: StepContext) -> StepOutput:
    cfg, image, encoding = ctx.config, ctx.image, ctx.encoding
    if not is_colour(encoding):
        return ctx.skip('mono image')
    if cfg.wb_method == 'gray_edge':
        gains = cor.gray_edge_gains(image, encoding, max_gain=cfg.wb_max_gain)
    else:
        gains = cor.gray_world_gains(image, encoding, max_gain=cfg.wb_max_gain,
                                     bit_depth=cfg.bit_depth)
    for name, gain in zip(encoding[:3], gains, strict=True):
        ctx.parameters[f'wb_gain_{name}'] = gain
    return ctx.done(cor.apply_channel_gains(image, gains))


# -- exposure ---------------------------------------------------------------------------------

@dataclass
class _GammaMemory:
    """The exposure step's state: the gamma of the previous frame (for smoothing)."""

    gamma: float | None = None


def _run_exposure(ctx: StepContext) -> StepOutput:
    cfg, memory = ctx.config, ctx.state
    gamma = cor.exposure_gamma(
        ctx.image, ctx.encoding, target=cfg.exposure_target, tolerance=cfg.exposure_tolerance,
        gamma_min=cfg.exposure_gamma_min, gamma_max=cfg.exposure_gamma_max,
        bit_depth=cfg.bit_depth)
    if cfg.exposure_smoothing > 0.0 and memory.gamma is not None:
        s = cfg.exposure_smoothing
        gamma = math.exp(s * math.log(memory.gamma) + (1.0 - s) * math.log(gamma))
    memory.gamma = gamma
    ctx.parameters['gamma'] = gamma
    if abs(gamma - 1.0) < 1e-3:
        return ctx.skip('mean luma within exposure_target +- exposure_tolerance')
    return ctx.done(cor.apply_gamma(ctx.image, gamma, bit_depth=cfg.bit_depth))


# -- CLAHE ------------------------------------------------------------------------------------

def _run_clahe(ctx: StepContext) -> StepOutput:
    return ctx.done(cor.clahe_luma(ctx.image, ctx.encoding, clahe=ctx.state))


def _make_clahe(cfg: Any) -> cv2.CLAHE:
    return cv2.createCLAHE(clipLimit=cfg.clahe_clip_limit,
                           tileGridSize=(cfg.clahe_tiles, cfg.clahe_tiles))


# -- sharpen ----------------------------------------------------------------------------------

def _run_sharpen(ctx: StepContext) -> StepOutput:
    cfg = ctx.config
    if cfg.sharpen_method == 'unsharp':
        return ctx.done(cor.unsharp_mask(ctx.image, sigma=cfg.sharpen_sigma,
                                         amount=cfg.sharpen_amount,
                                         threshold=cfg.sharpen_threshold,
                                         bit_depth=cfg.bit_depth))
    return ctx.done(cor.sharpen_kernel(ctx.image, cfg.sharpen_kernel))


def _check_sharpen(cfg: Any) -> None:
    try:  # the same checks the kernel meets at run time, now, with the field's name
        cor.check_sharpen_kernel(cfg.sharpen_kernel)
    except ConfigError as exc:
        raise ConfigError(f'PreprocessConfig.sharpen_kernel: {exc}') from None


# -- undistort --------------------------------------------------------------------------------

def _run_undistort(ctx: StepContext) -> StepOutput:
    camera = ctx.camera
    if camera is None:
        return ctx.skip('no camera model (camera_info) given')
    if not camera.is_calibrated:
        # REP-104: an uncalibrated camera's image is used as it is; not a problem
        return ctx.skip('camera not calibrated (K is zero)')
    try:
        rect, rect_camera = ctx.state.rectify(ctx.image, camera)
    except CalibrationError as exc:
        return ctx.warn_and_skip(f'undistortion skipped: {exc}', str(exc))
    return ctx.done(rect, rect_camera)


def _make_undistorter(cfg: Any) -> Undistorter:
    return Undistorter(alpha=cfg.undistort_alpha, interpolation=cfg.undistort_interpolation)


def _check_undistort(cfg: Any) -> None:
    if cfg.undistort_alpha != -1.0 and cfg.undistort_alpha < 0.0:
        raise ConfigError(f'PreprocessConfig.undistort_alpha must be -1 or in [0, 1], got '
                          f'{cfg.undistort_alpha}')


# -- resize -----------------------------------------------------------------------------------

def _run_resize(ctx: StepContext) -> StepOutput:
    cfg, image, camera = ctx.config, ctx.image, ctx.camera
    h, w = image.shape[:2]
    width, height = cfg.resize_width, cfg.resize_height
    if width == 0:
        width = max(1, round(w * height / h))
    elif height == 0:
        height = max(1, round(h * width / w))
    if (width, height) == (w, h):
        return ctx.skip('already at the requested size')
    out = cor.resize(image, width, height, cfg.resize_interpolation)
    if camera is not None:
        if (camera.width, camera.height) == (w, h):
            camera = camera.scaled(width, height)
        else:
            ctx.warnings.append(
                f'camera_info ({camera.width}x{camera.height}) does not match the image '
                f'({w}x{h}); the camera model was not scaled with the resize')
    return ctx.done(out, camera)


def _check_resize(cfg: Any) -> None:
    if cfg.enable_resize and cfg.resize_width == 0 and cfg.resize_height == 0:
        raise ConfigError('PreprocessConfig.enable_resize needs resize_width and/or '
                          'resize_height (the other 0 keeps the aspect ratio)')


# -- the table --------------------------------------------------------------------------------

def _check_step(step: Step, table: Mapping[str, Step]) -> None:
    if not isinstance(step, Step):
        raise TypeError(f'a step must be a Step, got {step!r}')
    owners = {name: other.name for other in table.values()
              for name in (other.flag, *other.fields)}
    for name in (step.flag, *step.fields):
        if name in owners:
            raise ValueError(f'step {step.name!r}: field {name} already belongs to step '
                             f'{owners[name]!r}')
    unknown = set(step.state_fields) - set(step.fields)
    if unknown:
        raise ValueError(f'step {step.name!r}: state_fields {sorted(unknown)} are not its '
                         f'fields')


#: Every correction step, in the default order.
STEP_TABLE: Registry[Step] = Registry('step', ConfigError, _check_step, [
    Step('denoise', 'Reduce noise (denoise_method) when the noise sigma reaches '
         'denoise_min_sigma.', False, _run_denoise, check=_check_denoise, fields={
             'denoise_method': (str, 'bilateral', param(
                 'gaussian, median, bilateral (edge-preserving) or nlmeans (best, slowest).',
                 choices=cor.DENOISE_METHODS)),
             'denoise_sigma': (float, 0.0, param(
                 'Noise sigma the denoiser assumes, 8-bit levels; 0 = the measured one.',
                 min=0.0, max=100.0)),
             'denoise_min_sigma': (float, 4.0, param(
                 'Denoise only frames with at least this noise sigma (8-bit levels); lighter '
                 'noise costs more detail than it removes.', min=0.0, max=100.0)),
             'denoise_strength': (float, 1.0, param(
                 'Multiplier of the noise-dependent strength of bilateral/nlmeans.', min=0.1,
                 max=5.0)),
             'denoise_ksize': (int, 5, param(
                 'Kernel size (odd) of gaussian/median/bilateral.', min=3, max=15, unit='px')),
             'denoise_search_window': (int, 11, param(
                 'Search window (odd) of nlmeans; its cost grows with the square.', min=7,
                 max=35, unit='px')),
         }),
    Step('white_balance', 'Automatic white balance (wb_method) of colour images.', False,
         _run_white_balance, fields={
             'wb_method': (str, 'gray_edge', param(
                 'gray_edge (mean gradient is grey; robust on scenes of one dominant colour) '
                 'or gray_world (mean colour is grey).', choices=_WB_METHODS)),
             'wb_max_gain': (float, 2.0, param(
                 'Largest gain (and smallest, as 1/max) applied to a channel.', min=1.0,
                 max=16.0)),
         }),
    Step('exposure', 'Automatic exposure: a gamma that brings the mean luma into '
         'exposure_target +- exposure_tolerance.', True, _run_exposure,
         make_state=lambda cfg: _GammaMemory(), fields={
             'exposure_target': (float, 0.45, param(
                 'Wanted mean luma, fraction of full scale.', min=0.05, max=0.95)),
             'exposure_tolerance': (float, 0.1, param(
                 'Frames whose mean luma is within target +- tolerance are left alone; others '
                 'are brought to the nearest edge of that band.', min=0.0, max=0.5)),
             'exposure_gamma_min': (float, 0.25, param(
                 'Strongest brightening gamma allowed.', min=0.05, max=1.0)),
             'exposure_gamma_max': (float, 4.0, param(
                 'Strongest darkening gamma allowed.', min=1.0, max=20.0)),
             'exposure_smoothing': (float, 0.0, param(
                 'Temporal smoothing of the gamma over frames (0 = none, 0.9 = slow); avoids '
                 'flicker in video.', min=0.0, max=0.99)),
         }),
    Step('clahe', 'Contrast-limited adaptive histogram equalisation of the luma (local '
         'contrast).', False, _run_clahe, make_state=_make_clahe,
         state_fields=('clahe_clip_limit', 'clahe_tiles'), fields={
             'clahe_clip_limit': (float, 2.0, param(
                 'CLAHE contrast limit per tile (1 = none; 2-4 typical).', min=0.5, max=40.0)),
             'clahe_tiles': (int, 8, param('CLAHE tiles per image side.', min=1, max=64)),
         }),
    Step('sharpen', 'Sharpen (sharpen_method) to undo mild blur.', False, _run_sharpen,
         check=_check_sharpen, fields={
             'sharpen_method': (str, 'unsharp', param(
                 'unsharp (unsharp mask) or kernel (convolution with sharpen_kernel).',
                 choices=_SHARPEN_METHODS)),
             'sharpen_sigma': (float, 1.0, param(
                 'Unsharp mask Gaussian sigma, about the blur to undo.', min=0.1, max=20.0,
                 unit='px')),
             'sharpen_amount': (float, 1.5, param(
                 'Unsharp mask gain of the detail.', min=0.0, max=10.0)),
             'sharpen_threshold': (float, 0.0, param(
                 'Unsharp mask: details below this many 8-bit levels are not boosted (spares '
                 'noise).', min=0.0, max=255.0)),
             'sharpen_kernel': (tuple[float, ...], (0.0, -0.5, 0.0, -0.5, 3.0, -0.5, 0.0, -0.5,
                                                    0.0), param(
                 'Sharpening kernel for sharpen_method=kernel: k*k values row-major (k odd) '
                 'summing to 1.', min=-100.0, max=100.0)),
         }),
    Step('undistort', 'Undistort and rectify with the camera_info calibration (skipped, with a '
         'warning, when the camera is uncalibrated or its size differs from the image).', True,
         _run_undistort, check=_check_undistort, make_state=_make_undistorter,
         state_fields=('undistort_alpha', 'undistort_interpolation'), fields={
             'undistort_alpha': (float, -1.0, param(
                 '-1: rectify onto the camera_info P (like image_proc); 0..1: new projection '
                 'keeping only valid pixels (0) up to all source pixels (1).', min=-1.0,
                 max=1.0)),
             'undistort_interpolation': (str, 'linear', param(
                 'Interpolation of the undistortion remap.',
                 choices=tuple(REMAP_INTERPOLATIONS))),
         }),
    Step('resize', 'Resize to resize_width x resize_height (camera model scaled along).', False,
         _run_resize, check=_check_resize, fields={
             'resize_width': (int, 0, param(
                 'Output width; 0 = from resize_height keeping the aspect ratio.', min=0,
                 max=16384, unit='px')),
             'resize_height': (int, 0, param(
                 'Output height; 0 = from resize_width keeping the aspect ratio.', min=0,
                 max=16384, unit='px')),
             'resize_interpolation': (str, 'auto', param(
                 'auto (area when shrinking, linear when enlarging) or an explicit method.',
                 choices=_RESIZE_INTERPOLATIONS)),
         }),
])

#: The correction steps, in their default order.
STEPS: tuple[str, ...] = tuple(STEP_TABLE)
