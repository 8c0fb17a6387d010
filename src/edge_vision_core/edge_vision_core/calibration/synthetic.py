"""Synthetic calibration images: targets rendered through a known camera, with ground truth.

For tests and benchmarks of the calibration: a :class:`SyntheticCamera` renders a
:class:`~.targets.CalibrationTarget` at a given board pose through a known
:class:`~edge_vision_core.camera.CameraModel` (``plumb_bob``, ``rational_polynomial`` or
``equidistant``), so a calibration can be checked against the true intrinsics and the true
corner positions.

How an image is made: every output pixel is traced back to the board. Each (super-sampled)
pixel is undistorted to a normalised ray (Newton iterations on OpenCV's own forward model,
``cv2.projectPoints``/``cv2.fisheye.projectPoints``, to 1e-6 px), the ray is intersected with
the board plane, and the board picture is sampled there (one dense ``cv2.remap``). The
super-sampled image is box-filtered down (area sampling, as a sensor integrates light), then
optionally blurred (Gaussian, a lens/defocus stand-in) and given Gaussian noise.

Conventions: board pose ``(rvec, tvec)`` maps board-frame points to the camera frame
(``X_cam = R(rvec) X_board + tvec``, metres; camera x right, y down, z forward: the optical
frame of REP-103); images are (H, W) uint8 gray; pixel centres at integer coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..camera import CameraModel
from ..errors import ConfigError
from .solver import _project
from .targets import CalibrationTarget

__all__ = ['SyntheticCamera', 'project_points', 'sample_board_poses']

Pose = tuple[np.ndarray, np.ndarray]


def _check_model(model: CameraModel) -> None:
    if not model.is_calibrated or model.width <= 0 or model.height <= 0:
        raise ConfigError('SyntheticCamera needs a calibrated CameraModel with a size')
    if model.distortion_model not in ('plumb_bob', 'rational_polynomial', 'equidistant'):
        raise ConfigError(f'SyntheticCamera cannot render distortion model '
                          f'{model.distortion_model!r}')


def project_points(model: CameraModel, points: np.ndarray, rvec: np.ndarray,
                   tvec: np.ndarray) -> np.ndarray:
    """Project 3-D points through the camera (OpenCV's models, the raw distorted image).

    Args:
        model: the camera (K and D are used).
        points: (N, 3) float points in the frame that ``(rvec, tvec)`` maps to the camera.
        rvec, tvec: (3,) Rodrigues rotation and translation.

    Returns:
        (N, 2) float64 pixel coordinates.
    """
    return _project('fisheye' if model.is_fisheye else 'pinhole', model.K, model.D,
                    np.asarray(points, np.float64).reshape(-1, 3),
                    np.asarray(rvec, np.float64), np.asarray(tvec, np.float64))


def _distort(model: CameraModel, xy: np.ndarray) -> np.ndarray:
    """Normalised image coordinates (N, 2) -> pixels (N, 2), through the lens model."""
    rays = np.concatenate([xy, np.ones((len(xy), 1))], axis=1)
    return project_points(model, rays, np.zeros(3), np.zeros(3))


def _undistort(model: CameraModel, uv: np.ndarray, tol: float = 1e-6,
               iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 2) -> normalised coordinates (N, 2), and a mask of converged points."""
    src = np.ascontiguousarray(uv, np.float64).reshape(-1, 1, 2)
    if model.is_fisheye:
        xy = cv2.fisheye.undistortPoints(src, model.K, model.D.reshape(-1, 1)).reshape(-1, 2)
    else:
        xy = cv2.undistortPoints(src, model.K, model.D).reshape(-1, 2)
    xy = xy.astype(np.float64)
    uv = uv.reshape(-1, 2)
    h = 1e-6
    for _ in range(iterations):
        f = _distort(model, xy) - uv
        err = np.abs(f).max(axis=1)
        active = err > tol
        if not active.any():
            break
        xa = xy[active]
        fa = f[active]
        jx = (_distort(model, xa + [h, 0.0]) - (fa + uv[active])) / h
        jy = (_distort(model, xa + [0.0, h]) - (fa + uv[active])) / h
        det = jx[:, 0] * jy[:, 1] - jy[:, 0] * jx[:, 1]
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        dx = (jy[:, 1] * fa[:, 0] - jy[:, 0] * fa[:, 1]) / det
        dy = (-jx[:, 1] * fa[:, 0] + jx[:, 0] * fa[:, 1]) / det
        xy[active] = xa - np.stack([dx, dy], axis=1)
    ok = np.abs(_distort(model, xy) - uv).max(axis=1) < 1e-3
    return xy, ok & np.all(np.isfinite(xy), axis=1)


class SyntheticCamera:
    """Renders calibration targets through a known camera model.

    The per-pixel rays are computed once per camera (the expensive part), so rendering many
    views costs one plane intersection and one remap each.

    Args:
        model: the true camera; its width/height set the image size.
        supersample: sub-pixels per pixel side (anti-aliasing; 3 gives ~0.02 px corner
            accuracy on sharp boards).
    """

    def __init__(self, model: CameraModel, supersample: int = 3) -> None:
        _check_model(model)
        if not 1 <= supersample <= 8:
            raise ConfigError(f'supersample must be in [1, 8], got {supersample}')
        self.model = model
        self.supersample = int(supersample)
        w, h, s = model.width, model.height, self.supersample
        # Exact rays on a coarse grid (every 4 px, one cell beyond the image), then a bicubic
        # spline to every sub-pixel: the lens maps are smooth, so the spline adds < 1e-4 px.
        step = 4.0
        cu = np.arange(-2 * step, w + 2 * step, step)
        cv = np.arange(-2 * step, h + 2 * step, step)
        coarse = np.stack(np.meshgrid(cu, cv), axis=-1).reshape(-1, 2)
        xy, ok = _undistort(model, coarse)
        if not ok.all():
            raise ConfigError(f'SyntheticCamera: the {model.distortion_model} lens model with '
                              f'D={model.D.tolist()} cannot be inverted over the whole image; '
                              'use milder distortion')
        from scipy.interpolate import RectBivariateSpline
        # Sub-pixel k of pixel u sits at u + (k + 0.5) / s - 0.5.
        us = (np.arange(w * s) + 0.5) / s - 0.5
        vs = (np.arange(h * s) + 0.5) / s - 0.5
        # Normalised ray (x, y, 1) of every sub-pixel, as two (H*s, W*s) float32 planes.
        self._ray_x, self._ray_y = (
            RectBivariateSpline(cv, cu, xy[:, c].reshape(len(cv), len(cu)))(vs, us)
            .astype(np.float32) for c in range(2))

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the rendered images."""
        return self.model.width, self.model.height

    def project(self, target: CalibrationTarget, rvec: np.ndarray, tvec: np.ndarray
                ) -> np.ndarray:
        """(corner_count, 2) float64 true pixel positions of every target corner."""
        return project_points(self.model, target.all_object_points(), rvec, tvec)

    def render(self, target: CalibrationTarget, rvec: np.ndarray, tvec: np.ndarray, *,
               blur_sigma: float = 0.0, noise_sigma: float = 0.0,
               rng: np.random.Generator | None = None, background: int = 110,
               pixels_per_square: int = 0) -> np.ndarray:
        """An image of ``target`` at pose ``(rvec, tvec)``.

        Args:
            target: the board to draw.
            rvec, tvec: (3,) board pose (board frame -> camera frame, metres).
            blur_sigma: Gaussian blur of the final image, pixels (0 = none).
            noise_sigma: standard deviation of additive Gaussian noise, grey levels.
            rng: noise generator (default: a fixed seed, so renders are reproducible).
            background: grey level around the board.
            pixels_per_square: resolution of the board picture; 0 = matched to the view.

        Returns:
            (H, W) uint8 image.
        """
        R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))
        t = np.asarray(tvec, np.float64).reshape(3)
        if pixels_per_square <= 0:
            corners = self.project(target, rvec, tvec)
            spacing = np.median(np.linalg.norm(np.diff(corners[:2], axis=0), axis=1))
            square_px = float(spacing) if np.isfinite(spacing) and spacing > 0 else 40.0
            pixels_per_square = int(np.clip(square_px * self.supersample * 1.5, 16, 400))
        board, A = target.board_image(pixels_per_square, margin_px=pixels_per_square // 2)
        # Ray d = (x, y, 1) meets the board plane n.(X - t) = 0 (n = R[:, 2]) at X = s d with
        # s = n.t / n.d; the board-frame point is R^T (s d - t), of which we need x and y.
        rx, ry = self._ray_x, self._ray_y
        n = R[:, 2]
        with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
            s = np.float32(n @ t) / (np.float32(n[0]) * rx + np.float32(n[1]) * ry
                                     + np.float32(n[2]))
            maps = []
            for row in range(2):
                # Board pixel = A (R^T (s d - t))[:2] + offset, folded into one affine of d.
                a = A[row, 0] * R[:, 0] + A[row, 1] * R[:, 1]  # (3,) weights on s * d
                c = A[row, 2] - a @ t
                coord = (np.float32(a[0]) * rx + np.float32(a[1]) * ry + np.float32(a[2])) * s
                coord += np.float32(c)
                maps.append(coord)
            bad = ~np.isfinite(s) | (s <= 0) | ~np.isfinite(maps[0]) | ~np.isfinite(maps[1])
        map_x, map_y = maps
        map_x[bad] = -1e6
        map_y[bad] = -1e6
        w, h, ss = self.model.width, self.model.height, self.supersample
        fine = cv2.remap(board, map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=int(background))
        image = fine.astype(np.float32)
        if ss > 1:  # box filter: INTER_AREA with an integer factor averages ss x ss blocks
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        if blur_sigma > 0:
            image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
        if noise_sigma > 0:
            rng = np.random.default_rng(0) if rng is None else rng
            image = image + rng.normal(0.0, noise_sigma, image.shape)
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), \
        np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def sample_board_poses(target: CalibrationTarget, model: CameraModel, count: int,
                       rng: np.random.Generator, *, max_tilt_deg: float = 40.0,
                       fill: Sequence[float] = (0.3, 0.75), margin_px: float = 12.0,
                       max_tries: int = 2000) -> list[Pose]:
    """Board poses spread over the image, with varied size and tilt, board fully in view.

    Args:
        target: the board.
        model: the camera (its size decides what is in view).
        count: number of poses.
        rng: random generator (the caller seeds it).
        max_tilt_deg: largest rotation about the board's x and y axes.
        fill: range of the board's apparent width as a fraction of the image width.
        margin_px: the whole board (its outer squares too) stays this far inside the image.
        max_tries: give up (ConfigError) after this many rejected samples.

    Returns:
        ``count`` ``(rvec, tvec)`` pairs, each (3,) float64.
    """
    objp = target.all_object_points().astype(np.float64)
    lo = objp.min(axis=0) - target.config.square_size
    hi = objp.max(axis=0) + target.config.square_size
    centre = (lo + hi) / 2
    extent = float(hi[0] - lo[0])
    # The board's outline (one square beyond the outer corners), sampled along its edges.
    k = np.linspace(0.0, 1.0, 12)[:, None]
    corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    outline = np.concatenate([corners[i] + k * (corners[(i + 1) % 4] - corners[i])
                              for i in range(4)])
    outline = np.concatenate([outline, np.zeros((len(outline), 1))], axis=1)
    # Face the printed side to the camera: when the board frame's y axis points up in the
    # picture (ChArUco with OpenCV < 4.6), its z axis points out of the print, so turn the
    # board over (180 degrees about x).
    _, A = target.board_image(20, 10)
    turn = np.diag([1.0, -1.0, -1.0]) if np.linalg.det(A[:, :2]) < 0 else np.eye(3)
    w, h = model.width, model.height
    poses: list[Pose] = []
    tries = 0
    tilt = np.deg2rad(max_tilt_deg)
    while len(poses) < count:
        tries += 1
        if tries > max_tries:
            raise ConfigError(f'could not place {count} boards in view after {max_tries} tries')
        R = _rotation(rng.uniform(-tilt, tilt), rng.uniform(-tilt, tilt),
                      rng.uniform(-0.3, 0.3)) @ turn
        frac = rng.uniform(*fill)
        z = extent * model.fx / (frac * w)
        px = rng.uniform(0.15, 0.85) * w
        py = rng.uniform(0.15, 0.85) * h
        ray = np.array([(px - model.cx) / model.fx, (py - model.cy) / model.fy, 1.0])
        t = ray * z - R @ centre
        rvec = cv2.Rodrigues(R)[0].ravel()
        if (R @ outline.T + t[:, None])[2].min() <= 0.05 * z:
            continue
        uv = project_points(model, outline, rvec, t)
        if (np.all(np.isfinite(uv)) and uv[:, 0].min() >= margin_px
                and uv[:, 1].min() >= margin_px and uv[:, 0].max() <= w - 1 - margin_px
                and uv[:, 1].max() <= h - 1 - margin_px):
            poses.append((rvec, t))
    return poses
