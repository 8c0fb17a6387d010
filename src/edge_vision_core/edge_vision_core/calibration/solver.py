"""Intrinsic calibration from target views: pinhole (plumb_bob, rational_polynomial), fisheye.

The solvers are OpenCV's (``cv2.calibrateCamera``, ``cv2.fisheye.calibrate``); this module
prepares their input, picks the flags, rejects outlier corners, and packs the answer as a
:class:`~edge_vision_core.camera.CameraModel` the way ROS ``camera_calibration`` does for a
monocular camera: ``R = I``; for pinhole models ``P = [K' | 0]`` with ``K'`` from
``cv2.getOptimalNewCameraMatrix(K, D, size, alpha)``; for fisheye ``P = [K | 0]`` with fx and fy
divided by ``1 + alpha``.

Models (``CalibratorConfig.model``): ``pinhole`` -> ``plumb_bob`` (k1, k2, t1, t2, k3),
``rational`` -> ``rational_polynomial`` (k1, k2, t1, t2, k3, k4, k5, k6), ``fisheye`` ->
``equidistant`` (k1..k4, OpenCV's fisheye model).

Errors are reported in pixels: the RMS over all corners of the distance between detected and
reprojected corner (``sqrt(mean(|e|^2))``, what ``cv2.calibrateCamera`` returns), and the same
per view.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..camera import CameraModel
from ..config import check_config, param
from ..errors import CalibrationError, ConfigError
from .targets import TargetDetection

__all__ = ['MODELS', 'CalibrationResult', 'SolverConfig', 'solve']

_LOG = logging.getLogger(__name__)

#: CLI/config model name -> CameraInfo distortion_model.
MODELS: dict[str, str] = {
    'pinhole': 'plumb_bob',
    'rational': 'rational_polynomial',
    'fisheye': 'equidistant',
}
# Fewest views each model is solved from (OpenCV needs more views than unknowns / points).
_MIN_VIEWS_HARD = 3


@dataclass(frozen=True)
class SolverConfig:
    """How the camera model is fitted to the views."""

    model: str = field(default='pinhole', metadata=param(
        'Camera model: "pinhole" (plumb_bob, 5 coefficients), "rational" '
        '(rational_polynomial, 8, for wide-angle lenses) or "fisheye" (equidistant, 4).',
        choices=tuple(MODELS)))
    fix_aspect_ratio: bool = field(default=False, metadata=param(
        'Pinhole models: force fx = fy (square pixels).'))
    fix_principal_point: bool = field(default=False, metadata=param(
        'Keep the principal point at the image centre.'))
    zero_tangent_dist: bool = field(default=False, metadata=param(
        'Pinhole models: force the tangential coefficients t1, t2 to zero.'))
    alpha: float = field(default=0.0, metadata=param(
        'Free scaling of the rectified image in P: 0 = only valid pixels (zoomed in), '
        '1 = every source pixel kept (black borders).', min=0.0, max=1.0))
    outlier_px: float = field(default=1.0, metadata=param(
        'After a first fit, drop corners whose reprojection error exceeds max(outlier_px, 5 x '
        'the median error), and views that lose more than half of their corners so, then fit '
        'again; 0 = keep every corner.', min=0.0, max=100.0, unit='px'))

    def __post_init__(self) -> None:
        check_config(self)
        if self.model == 'fisheye' and (self.fix_aspect_ratio or self.zero_tangent_dist):
            raise ConfigError('fix_aspect_ratio and zero_tangent_dist apply to pinhole models '
                              'only; the fisheye model has no such parameters')

    @property
    def distortion_model(self) -> str:
        """The CameraInfo ``distortion_model`` of :attr:`model`."""
        return MODELS[self.model]


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """A calibration and how well it fits.

    Attributes:
        model: the calibrated camera (K, D, R = I, P).
        rms: RMS reprojection error over every corner used, pixels.
        view_errors: (V,) float64 RMS reprojection error of each view, pixels (in the order of
            the views passed to :func:`solve`; NaN for a view that was dropped).
        view_points: (V,) int number of corners of each view used in the fit.
        rvecs, tvecs: (V, 3) float64 board pose per view (board -> camera, Rodrigues, metres;
            NaN for a dropped view).
        dropped_views: indices of views left out: rejected as ill-conditioned by the fisheye
            solver, or with most of their corners outliers.
        dropped_corners: number of outlier corners dropped from the views that were kept.
    """

    model: CameraModel
    rms: float
    view_errors: np.ndarray
    view_points: np.ndarray
    rvecs: np.ndarray
    tvecs: np.ndarray
    dropped_views: tuple[int, ...] = ()
    dropped_corners: int = 0

    def report(self, names: Sequence[str] | None = None) -> str:
        """Multi-line text: intrinsics, distortion, RMS and the per-view errors."""
        m = self.model
        lines = [
            f'model: {m.distortion_model} ({m.width}x{m.height})',
            f'fx {m.fx:.3f}  fy {m.fy:.3f}  cx {m.cx:.3f}  cy {m.cy:.3f}',
            'D: [' + ', '.join(f'{d:.6g}' for d in m.D) + ']',
            f'RMS reprojection error: {self.rms:.4f} px over {int(self.view_points.sum())} '
            f'corners in {int(np.sum(self.view_points > 0))} views'
            + (f' ({self.dropped_corners} outlier corners dropped)'
               if self.dropped_corners else ''),
        ]
        if self.dropped_views:
            labels = [names[i] if names is not None and i < len(names) else f'view {i}'
                      for i in self.dropped_views]
            lines.append('views left out (ill-conditioned or mostly outliers): '
                         + ', '.join(labels))
        lines.append('per-view RMS (px):')
        for i, err in enumerate(self.view_errors):
            name = names[i] if names is not None and i < len(names) else f'view {i}'
            state = 'dropped' if not np.isfinite(err) else f'{err:.4f}'
            lines.append(f'  {name}: {state} ({int(self.view_points[i])} corners)')
        return '\n'.join(lines)


def _project(model: str, K: np.ndarray, D: np.ndarray, obj: np.ndarray, rvec: np.ndarray,
             tvec: np.ndarray) -> np.ndarray:
    """(N, 2) pixels of the (N, 3) points ``obj`` seen from ``(rvec, tvec)`` through ``K``,
    ``D`` (OpenCV's pinhole models, or ``fisheye``)."""
    if model == 'fisheye':
        pts, _ = cv2.fisheye.projectPoints(obj.reshape(-1, 1, 3).astype(np.float64),
                                           rvec.reshape(3, 1), tvec.reshape(3, 1), K,
                                           D.reshape(-1, 1))
    else:
        pts, _ = cv2.projectPoints(obj.astype(np.float64), rvec.reshape(3, 1),
                                   tvec.reshape(3, 1), K, D)
    return pts.reshape(-1, 2)


def _pinhole(config: SolverConfig, objs: list[np.ndarray], imgs: list[np.ndarray],
             size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list, list]:
    flags = 0
    if config.model == 'rational':
        flags |= cv2.CALIB_RATIONAL_MODEL
    if config.fix_aspect_ratio:
        flags |= cv2.CALIB_FIX_ASPECT_RATIO  # ratio of the initial K = identity: fx = fy
    if config.fix_principal_point:
        flags |= cv2.CALIB_FIX_PRINCIPAL_POINT
    if config.zero_tangent_dist:
        flags |= cv2.CALIB_ZERO_TANGENT_DIST
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    K0 = np.eye(3)
    try:
        _, K, D, rvecs, tvecs = cv2.calibrateCamera(
            [o.astype(np.float32) for o in objs], [i.astype(np.float32) for i in imgs], size,
            K0, None, flags=flags, criteria=criteria)
    except cv2.error as exc:
        raise CalibrationError(f'OpenCV calibrateCamera failed ({_cv_message(exc)}); add '
                               'views with the target at different positions and tilts') from None
    n = 8 if config.model == 'rational' else 5
    return K, np.asarray(D, np.float64).ravel()[:n], list(rvecs), list(tvecs)


def _cv_message(exc: cv2.error) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else 'unknown error'


def _fisheye(config: SolverConfig, objs: list[np.ndarray], imgs: list[np.ndarray],
             size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list, list, list[int]]:
    """cv2.fisheye.calibrate, dropping views it reports as ill-conditioned."""
    base = cv2.fisheye.CALIB_RECOMPUTE_EXTRINSIC | cv2.fisheye.CALIB_FIX_SKEW
    if config.fix_principal_point:
        base |= cv2.fisheye.CALIB_FIX_PRINCIPAL_POINT
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    keep = list(range(len(objs)))
    dropped: list[int] = []
    while True:
        o = [objs[i].reshape(1, -1, 3).astype(np.float64) for i in keep]
        p = [imgs[i].reshape(1, -1, 2).astype(np.float64) for i in keep]
        try:
            _, K, D, rvecs, tvecs = cv2.fisheye.calibrate(
                o, p, size, np.eye(3), np.zeros(4), flags=base | cv2.fisheye.CALIB_CHECK_COND,
                criteria=criteria)
            return K, np.asarray(D, np.float64).ravel(), list(rvecs), list(tvecs), dropped
        except cv2.error as exc:
            message = _cv_message(exc)
            match = re.search(r'input array (\d+)', str(exc))
            if match and int(match.group(1)) < len(keep) and len(keep) > _MIN_VIEWS_HARD:
                bad = keep.pop(int(match.group(1)))
                dropped.append(bad)
                _LOG.info('fisheye calibration: view %d is ill-conditioned, dropped', bad)
                continue
            raise CalibrationError(
                f'OpenCV fisheye.calibrate failed ({message}); add views with the target '
                'nearer the image centre and less tilted, or try --model pinhole/rational'
            ) from None


def _fit(config: SolverConfig, objs: list[np.ndarray], imgs: list[np.ndarray],
         size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, dict[int, tuple], list[int]]:
    """One fit; returns K, D, {view index: (rvec, tvec)} and the dropped views."""
    if config.model == 'fisheye':
        K, D, rvecs, tvecs, dropped = _fisheye(config, objs, imgs, size)
    else:
        K, D, rvecs, tvecs = _pinhole(config, objs, imgs, size)
        dropped = []
    used = [i for i in range(len(objs)) if i not in dropped]
    poses = {i: (np.asarray(r, np.float64).ravel(), np.asarray(t, np.float64).ravel())
             for i, r, t in zip(used, rvecs, tvecs, strict=True)}
    return K, D, poses, dropped


def _residuals(config: SolverConfig, K: np.ndarray, D: np.ndarray, objs: list[np.ndarray],
               imgs: list[np.ndarray], poses: dict[int, tuple]) -> dict[int, np.ndarray]:
    return {i: np.linalg.norm(_project(config.model, K, D, objs[i], *poses[i])
                              - imgs[i].astype(np.float64), axis=1)
            for i in poses}


def solve(views: Sequence[TargetDetection], config: SolverConfig | None = None,
          min_views: int = _MIN_VIEWS_HARD) -> CalibrationResult:
    """Calibrate a camera from target detections.

    Args:
        views: detections from images of one camera at one resolution.
        config: model and options (default: pinhole plumb_bob).
        min_views: fewest views accepted (at least 3).

    Returns:
        The :class:`CalibrationResult`.

    Raises:
        CalibrationError: too few views, views of different image sizes, or the solver failed
            (the message says what to do).
    """
    config = config or SolverConfig()
    min_views = max(int(min_views), _MIN_VIEWS_HARD)
    if len(views) < min_views:
        raise CalibrationError(
            f'only {len(views)} usable views; a calibration needs at least {min_views}: show '
            'the target at more positions, distances and tilts')
    sizes = {tuple(v.image_size) for v in views}
    if len(sizes) != 1:
        raise CalibrationError(f'the views come from images of different sizes '
                               f'{sorted(sizes)}; calibrate one resolution at a time')
    size = tuple(int(s) for s in sizes.pop())
    objs = [np.asarray(v.object_points, np.float64) for v in views]
    imgs = [np.asarray(v.image_points, np.float64) for v in views]
    K, D, poses, dropped = _fit(config, objs, imgs, size)
    dropped_corners = 0
    if config.outlier_px > 0:
        res = _residuals(config, K, D, objs, imgs, poses)
        median = float(np.median(np.concatenate(list(res.values()))))
        limit = max(config.outlier_px, 5.0 * median)
        masks = {i: r <= limit for i, r in res.items()}
        n_out = sum(int((~m).sum()) for m in masks.values())
        # A view that keeps under half of its corners (or under 4) is wrong as a whole (a
        # misdetection, a board that moved during the exposure): drop the view.
        bad_views = [i for i, m in masks.items() if m.sum() < max(4, 0.5 * len(m))]
        keep = [i for i in masks if i not in bad_views]
        if n_out and len(keep) >= min_views:
            _LOG.info('dropping %d outlier corners (error > %.2f px)%s and fitting again',
                      n_out, limit, f', and views {bad_views}' if bad_views else '')
            objs = [objs[i][masks[i]] if i in masks else objs[i] for i in range(len(objs))]
            imgs = [imgs[i][masks[i]] if i in masks else imgs[i] for i in range(len(imgs))]
            dropped_corners = sum(int((~masks[i]).sum()) for i in keep)
            sub = _fit(config, [objs[i] for i in keep], [imgs[i] for i in keep], size)
            K, D = sub[0], sub[1]
            poses = {keep[j]: pose for j, pose in sub[2].items()}
            dropped = sorted(set(dropped) | set(bad_views) | {keep[j] for j in sub[3]})
        elif n_out:
            _LOG.warning('%d corners have errors above %.2f px, but dropping them would leave '
                         'fewer than %d views; kept', n_out, limit, min_views)
    res = _residuals(config, K, D, objs, imgs, poses)
    n = len(views)
    view_errors = np.full(n, np.nan)
    view_points = np.zeros(n, dtype=np.int64)
    rvecs = np.full((n, 3), np.nan)
    tvecs = np.full((n, 3), np.nan)
    for i, r in res.items():
        view_errors[i] = float(np.sqrt(np.mean(r ** 2)))
        view_points[i] = len(r)
        rvecs[i], tvecs[i] = poses[i]
    all_res = np.concatenate(list(res.values()))
    rms = float(np.sqrt(np.mean(all_res ** 2)))
    model = _camera_model(config, K, D, size)
    return CalibrationResult(model=model, rms=rms, view_errors=view_errors,
                             view_points=view_points, rvecs=rvecs, tvecs=tvecs,
                             dropped_views=tuple(dropped), dropped_corners=dropped_corners)


def _camera_model(config: SolverConfig, K: np.ndarray, D: np.ndarray,
                  size: tuple[int, int]) -> CameraModel:
    P = np.zeros((3, 4))
    if config.model == 'fisheye':
        P[:, :3] = K
        P[0, 0] /= 1.0 + config.alpha
        P[1, 1] /= 1.0 + config.alpha
    else:
        new_K, _ = cv2.getOptimalNewCameraMatrix(K, D, size, config.alpha)
        P[:, :3] = new_K
    if not np.all(np.isfinite(K)) or not np.all(np.isfinite(D)) or K[0, 0] <= 0:
        raise CalibrationError('the calibration diverged (non-finite or negative focal '
                               'length); add views covering more of the image')
    return CameraModel(width=size[0], height=size[1], K=K, D=D, R=np.eye(3), P=P,
                       distortion_model=config.distortion_model)
