"""Incremental calibration: feed images one by one, watch coverage, calibrate when ready.

:class:`Calibrator` is the object behind ``edge-vision calibrate`` and the calibration node:

>>> cal = Calibrator(TargetConfig(cols=9, rows=6, square_size=0.025), CalibratorConfig())
>>> for image in images:
...     verdict = cal.add_image(image)       # detection, blur check, diversity check
...     print(verdict.message, cal.progress().summary())
...     if cal.ready:
...         break
>>> result = cal.calibrate()                 # CalibrationResult: model, RMS, per-view errors

Each image gets a :class:`ViewVerdict` saying whether it became a calibration view and why
(not), so a node can show progress like ROS camera_calibration's X / Y / Size / Skew bars. The
calibrator keeps the accepted detections (not the images), plus the latest three (shrunk)
images in which no target was found, so that a failed calibration can say what was found
instead ("did you mean 8x6?").

Rules (all in :class:`CalibratorConfig`): a view is accepted when the target is found, sharp
enough (edge width, see :mod:`.views`), clear of the image border, not moving fast (for
consecutive video frames), and different enough from every accepted view (L1 distance of the
view parameters). ``ready`` becomes True when every coverage bar is full and there are at least
``min_views`` views, or when there are ``enough_views`` views.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from ..config import check_config, param
from ..errors import CalibrationError, ConfigError
from .solver import CalibrationResult, SolverConfig, solve
from .targets import Diagnosis, TargetConfig, TargetDetection, _shrink, make_target, to_gray
from .views import CoverageProgress, ViewParams, coverage, edge_width, view_distance, view_params

__all__ = ['REASONS', 'Calibrator', 'CalibratorConfig', 'ViewVerdict']

_LOG = logging.getLogger(__name__)

#: Why an image was or was not used, in reporting order.
REASONS: tuple[str, ...] = ('accepted', 'no_target', 'blurred', 'near_border', 'moving',
                            'redundant', 'wrong_size', 'full')

# The latest images without the target are kept (shrunk) for diagnosis; while no view has been
# accepted, a diagnosis runs when the count of such images reaches one of these numbers.
_DIAGNOSIS_IMAGES = 3
_DIAGNOSE_AT = frozenset({3, 10, 30, 100, 300, 1000, 3000, 10000})


@dataclass(frozen=True)
class CalibratorConfig:
    """View selection and solver settings of a calibration session."""

    model: str = field(default='pinhole', metadata=param(
        'Camera model: "pinhole" (plumb_bob), "rational" (rational_polynomial) or "fisheye" '
        '(equidistant).', choices=('pinhole', 'rational', 'fisheye')))
    min_view_distance: float = field(default=0.2, metadata=param(
        'A view is kept only if its (x, y, size, skew) parameters differ by more than this '
        '(L1 distance) from every kept view; 0 keeps every detection.', min=0.0, max=4.0))
    max_edge_width: float = field(default=5.0, metadata=param(
        'Reject blurred views: the largest edge width (contrast / steepest gradient over the '
        'target) in pixels; about 2 when sharp, 4 at a Gaussian blur of 1.5 px; 0 = no check.',
        min=0.0, max=100.0, unit='px'))
    border_px: float = field(default=8.0, metadata=param(
        'Reject views with a corner closer than this to the image border (corners there are '
        'often cut off or badly located).', min=0.0, max=1000.0, unit='px'))
    max_board_speed: float = field(default=0.0, metadata=param(
        'For consecutive video frames: reject a view when its corners moved more than this on '
        'average since the previous frame (motion blur, rolling shutter); 0 = no check.',
        min=0.0, max=10000.0, unit='px'))
    min_views: int = field(default=10, metadata=param(
        'Fewest views needed to calibrate.', min=3, max=10000))
    enough_views: int = field(default=40, metadata=param(
        'With this many views the calibration is ready even if coverage is not complete.',
        min=3, max=10000))
    max_views: int = field(default=100, metadata=param(
        'Stop accepting views after this many (calibration time grows with the views).',
        min=3, max=10000))
    fix_aspect_ratio: bool = field(default=False, metadata=param(
        'Pinhole models: force fx = fy.'))
    fix_principal_point: bool = field(default=False, metadata=param(
        'Keep the principal point at the image centre.'))
    zero_tangent_dist: bool = field(default=False, metadata=param(
        'Pinhole models: force the tangential distortion to zero.'))
    alpha: float = field(default=0.0, metadata=param(
        'Scaling of the rectified image in P: 0 = valid pixels only, 1 = all source pixels.',
        min=0.0, max=1.0))
    outlier_px: float = field(default=1.0, metadata=param(
        'Refit without corners whose error exceeds max(outlier_px, 5 x median); 0 = off.',
        min=0.0, max=100.0, unit='px'))

    def __post_init__(self) -> None:
        check_config(self)
        if self.enough_views < self.min_views:
            raise ConfigError(f'CalibratorConfig.enough_views ({self.enough_views}) must be >= '
                              f'min_views ({self.min_views})')
        if self.max_views < self.enough_views:
            raise ConfigError(f'CalibratorConfig.max_views ({self.max_views}) must be >= '
                              f'enough_views ({self.enough_views})')
        self.solver_config()  # validates the model-specific options

    def solver_config(self) -> SolverConfig:
        """The :class:`SolverConfig` part of these settings."""
        return SolverConfig(model=self.model, fix_aspect_ratio=self.fix_aspect_ratio,
                            fix_principal_point=self.fix_principal_point,
                            zero_tangent_dist=self.zero_tangent_dist, alpha=self.alpha,
                            outlier_px=self.outlier_px)


@dataclass(frozen=True, eq=False)
class ViewVerdict:
    """What happened to one image.

    Attributes:
        accepted: True when the image became a calibration view.
        reason: one of :data:`REASONS`.
        message: one human-readable line.
        detection: the target detection (None when no target was found).
        params: the view parameters (None without detection).
        edge_width: the measured edge width in pixels (None without detection).
        name: the caller's name for the image (file name, frame number), or ''.
    """

    accepted: bool
    reason: str
    message: str
    detection: TargetDetection | None = None
    params: ViewParams | None = None
    edge_width: float | None = None
    name: str = ''


@dataclass(frozen=True)
class _View:
    name: str
    detection: TargetDetection
    params: ViewParams


class Calibrator:
    """A calibration session: accepts views incrementally, then solves.

    Args:
        target: the calibration target.
        config: view-selection and solver settings.

    Not thread-safe; use one instance per camera. ``reset()`` starts over.
    """

    def __init__(self, target: TargetConfig, config: CalibratorConfig | None = None) -> None:
        self.target_config = target
        self.config = config or CalibratorConfig()
        self.target = make_target(target)
        self._views: list[_View] = []
        self._counts: Counter[str] = Counter()
        self._image_size: tuple[int, int] | None = None
        self._last_corners: tuple[np.ndarray, np.ndarray] | None = None
        self._undetected: deque[np.ndarray] = deque(maxlen=_DIAGNOSIS_IMAGES)
        self._mismatch: Diagnosis | None = None

    # -- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every view and count."""
        self._views.clear()
        self._counts.clear()
        self._image_size = None
        self._last_corners = None
        self._undetected.clear()
        self._mismatch = None

    @property
    def mismatch(self) -> Diagnosis | None:
        """Set when the first images show a *different* target than configured.

        While no view has been accepted, after 3, 10, 30, 100... images without the target
        the calibrator looks for other board sizes, dictionaries or detectors in the latest
        three of them; if one fits, this holds the diagnosis ("did you mean --size 9x6?"): the
        configuration is wrong and more images will not help. None otherwise (and again once
        a view is accepted).
        """
        return self._mismatch

    @property
    def view_count(self) -> int:
        """Number of accepted views."""
        return len(self._views)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the images seen, or None before the first."""
        return self._image_size

    @property
    def counts(self) -> dict[str, int]:
        """How many images ended with each reason of :data:`REASONS`."""
        return {r: self._counts.get(r, 0) for r in REASONS}

    @property
    def images_seen(self) -> int:
        return sum(self._counts.values())

    @property
    def view_names(self) -> list[str]:
        return [v.name for v in self._views]

    @property
    def detections(self) -> list[TargetDetection]:
        return [v.detection for v in self._views]

    @property
    def view_parameters(self) -> list[ViewParams]:
        return [v.params for v in self._views]

    @property
    def ready(self) -> bool:
        """True when coverage is complete with ``min_views`` views, or at ``enough_views``."""
        n = len(self._views)
        if n >= self.config.enough_views:
            return True
        return n >= self.config.min_views and coverage(self.view_parameters).complete

    def progress(self) -> CoverageProgress:
        """Coverage bars of the accepted views (see :mod:`.views`)."""
        return coverage(self.view_parameters, ready=self.ready)

    # -- adding views ------------------------------------------------------------------------

    def _verdict(self, reason: str, message: str, **kw: object) -> ViewVerdict:
        self._counts[reason] += 1
        return ViewVerdict(accepted=reason == 'accepted', reason=reason, message=message, **kw)

    def add_image(self, image: np.ndarray, name: str = '') -> ViewVerdict:
        """Detect the target in ``image`` and keep it as a view if it adds information.

        Args:
            image: (H, W) gray or (H, W, 3) BGR, uint8 or uint16.
            name: how to call this image in reports (file name, frame index).

        Returns:
            The :class:`ViewVerdict`.
        """
        gray = to_gray(image)
        size = (gray.shape[1], gray.shape[0])
        if self._image_size is None:
            self._image_size = size
        elif size != self._image_size:
            self._last_corners = None
            return self._verdict('wrong_size', f'{name or "image"}: {size[0]}x{size[1]} differs '
                                 f'from the first image ({self._image_size[0]}x'
                                 f'{self._image_size[1]}); skipped', name=name)
        detection = self.target.detect(gray)
        if detection is None:
            self._last_corners = None
            message = f'{name or "image"}: no target found'
            small, scale = _shrink(gray, 1024)
            self._undetected.append(small.copy() if scale == 1.0 else small)
            if not self._views and self._counts['no_target'] + 1 in _DIAGNOSE_AT:
                diagnosis = self.target.diagnose(self._undetected)
                self._mismatch = diagnosis if diagnosis.other_target else None
                if diagnosis.other_target:
                    message += f'; {diagnosis.message}'
            return self._verdict('no_target', message, name=name)
        return self.add_detection(detection, gray, name)

    def add_detection(self, detection: TargetDetection, gray: np.ndarray | None = None,
                      name: str = '') -> ViewVerdict:
        """Consider a detection made elsewhere (``gray``, if given, enables the blur check)."""
        if self._image_size is None:
            self._image_size = detection.image_size
        elif detection.image_size != self._image_size:
            return self._verdict('wrong_size', f'{name or "view"}: image size differs from the '
                                 'first image; skipped', name=name, detection=detection)
        label = name or 'image'
        params = view_params(detection)
        width = None
        if gray is not None:
            width = edge_width(gray, detection.image_points)
        extras = {'detection': detection, 'params': params, 'edge_width': width, 'name': name}
        previous = self._last_corners
        self._last_corners = (detection.ids, detection.image_points)
        if (self.config.max_edge_width > 0 and width is not None
                and width > self.config.max_edge_width):
            return self._verdict('blurred', f'{label}: blurred (edge width {width:.1f} px > '
                                 f'{self.config.max_edge_width:g}); hold the target still and '
                                 'in focus', **extras)
        pts = detection.image_points
        w, h = detection.image_size
        b = self.config.border_px
        if (pts[:, 0].min() < b or pts[:, 1].min() < b or pts[:, 0].max() > w - 1 - b
                or pts[:, 1].max() > h - 1 - b):
            return self._verdict('near_border', f'{label}: target too close to the image '
                                 f'border (< {b:g} px)', **extras)
        if self.config.max_board_speed > 0:
            speed = _speed(previous, detection)
            if speed is None or speed > self.config.max_board_speed:
                what = 'no previous frame' if speed is None else f'{speed:.1f} px/frame'
                return self._verdict('moving', f'{label}: target moving ({what}); hold it '
                                     'still', **extras)
        if len(self._views) >= self.config.max_views:
            return self._verdict('full', f'{label}: already {len(self._views)} views '
                                 '(max_views)', **extras)
        if self._views:
            nearest = min(view_distance(params, v.params) for v in self._views)
            if nearest <= self.config.min_view_distance:
                return self._verdict('redundant', f'{label}: too similar to a kept view '
                                     f'(distance {nearest:.2f} <= '
                                     f'{self.config.min_view_distance:g})', **extras)
        self._views.append(_View(name, detection, params))
        self._mismatch = None
        return self._verdict('accepted', f'{label}: view {len(self._views)} accepted '
                             f'(x {params.x:.2f} y {params.y:.2f} size {params.size:.2f} '
                             f'skew {params.skew:.2f})', **extras)

    # -- solving -----------------------------------------------------------------------------

    def explain(self) -> str:
        """What was seen so far, for error messages (counts per reason and coverage)."""
        c = self.counts
        parts = [f'{self.images_seen} images']
        labels = {'no_target': 'without the target', 'blurred': 'blurred',
                  'near_border': 'target at the border', 'moving': 'target moving',
                  'redundant': 'too similar to others', 'wrong_size': 'of another size',
                  'full': 'beyond max_views'}
        parts += [f'{c[r]} {labels[r]}' for r in REASONS[1:] if c[r]]
        return ', '.join(parts) + f'; {self.progress().summary()}'

    def calibrate(self) -> CalibrationResult:
        """Solve for the camera model from the accepted views.

        Raises:
            CalibrationError: no target found at all (with a diagnosis: wrong size, wrong
                dictionary...), too few views (with the counts of rejected images and what to
                do), or the solver failed.
        """
        if not self._views:
            seen = self.images_seen
            if seen == 0:
                raise CalibrationError('no images were given to the calibration')
            if self._counts['no_target'] == seen:
                diagnosis = self._mismatch or self.target.diagnose(self._undetected)
                raise CalibrationError(
                    f'found no {self.target.describe()} in {seen} images; {diagnosis.message}')
        n = len(self._views)
        if n < self.config.min_views:
            raise CalibrationError(
                f'only {n} usable views, at least {self.config.min_views} are needed '
                f'({self.explain()}); add images with the target at other positions, '
                'distances and tilts' + self._blur_hint())
        return solve(self.detections, self.config.solver_config(),
                     min_views=self.config.min_views)

    def _blur_hint(self) -> str:
        blurred = self._counts['blurred']
        if blurred and blurred >= self._counts['accepted']:
            return (f' ({blurred} images were rejected as blurred: focus, more light, or raise '
                    'max_edge_width)')
        return ''


def _speed(previous: tuple[np.ndarray, np.ndarray] | None,
           detection: TargetDetection) -> float | None:
    """Mean motion (px) of the corners both frames share, or None if they share none."""
    if previous is None:
        return None
    ids, pts = previous
    common, a, b = np.intersect1d(ids, detection.ids, return_indices=True)
    if len(common) == 0:
        return None
    return float(np.mean(np.linalg.norm(pts[a] - detection.image_points[b], axis=1)))
