"""Pinhole/fisheye camera model: the core-side twin of ``sensor_msgs/CameraInfo``.

Conventions are those of CameraInfo and REP-104:

- ``K`` (3x3) intrinsics of the raw (distorted) image, ``D`` distortion coefficients for
  ``distortion_model``, ``R`` (3x3) rectification rotation, ``P`` (3x4) projection of the
  rectified image.
- An uncalibrated camera has all of ``K``, ``D``, ``R``, ``P`` zero (``is_calibrated`` is False);
  consumers then use the raw image as it is.
- Distortion models: ``plumb_bob`` (k1, k2, t1, t2, k3; OpenCV's 4/5/8/12/14-element vectors are
  accepted), ``rational_polynomial`` (k1, k2, t1, t2, k3, k4, k5, k6) and ``equidistant``
  (fisheye k1..k4, OpenCV's ``cv2.fisheye`` model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, DataError

__all__ = ['DISTORTION_MODELS', 'CameraModel', 'RegionOfInterest']

#: distortion model name -> accepted lengths of D (an empty D means "no distortion").
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {
    'plumb_bob': (4, 5, 8, 12, 14),
    'rational_polynomial': (8, 12, 14),
    'equidistant': (4,),
}


@dataclass(frozen=True)
class RegionOfInterest:
    """``sensor_msgs/RegionOfInterest``: the sub-window of the full sensor that was read out.

    All zero (the default) means the full resolution.
    """

    x_offset: int = 0
    y_offset: int = 0
    height: int = 0
    width: int = 0
    do_rectify: bool = False


def _matrix(value: object, shape: tuple[int, int], name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != shape[0] * shape[1]:
        raise ConfigError(f'CameraModel.{name} needs {shape[0] * shape[1]} values '
                          f'({shape[0]}x{shape[1]} row-major), got {arr.size}')
    arr = arr.reshape(shape).copy()
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f'CameraModel.{name} contains NaN or inf: {arr.tolist()}')
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Intrinsic calibration of one camera at one resolution.

    Attributes:
        width, height: image size in pixels the calibration applies to.
        K: (3, 3) float64 camera matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
        D: (n,) float64 distortion coefficients of ``distortion_model``.
        R: (3, 3) float64 rectification rotation (identity for a monocular camera).
        P: (3, 4) float64 projection matrix of the rectified image.
        distortion_model: one of :data:`DISTORTION_MODELS`.
        binning_x, binning_y: sensor binning (0 and 1 both mean none).
        roi: the read-out region; all zero for full resolution.
    """

    width: int
    height: int
    K: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    R: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    P: np.ndarray = field(default_factory=lambda: np.zeros((3, 4)))
    distortion_model: str = 'plumb_bob'
    binning_x: int = 0
    binning_y: int = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)

    def __post_init__(self) -> None:
        for name in ('width', 'height', 'binning_x', 'binning_y'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ConfigError(f'CameraModel.{name} must be an integer >= 0, got {value!r}')
        set_ = object.__setattr__
        set_(self, 'K', _matrix(self.K, (3, 3), 'K'))
        set_(self, 'R', _matrix(self.R, (3, 3), 'R'))
        set_(self, 'P', _matrix(self.P, (3, 4), 'P'))
        d = np.asarray(self.D, dtype=np.float64).ravel().copy()
        if not np.all(np.isfinite(d)):
            raise ConfigError(f'CameraModel.D contains NaN or inf: {d.tolist()}')
        d.setflags(write=False)
        set_(self, 'D', d)
        if self.distortion_model not in DISTORTION_MODELS:
            if d.size == 0 or not np.any(d):
                pass  # a model name we do not know but no distortion: harmless
            else:
                raise ConfigError(
                    f'unknown distortion_model {self.distortion_model!r}; expecting one of '
                    f'{sorted(DISTORTION_MODELS)}')
        elif d.size and d.size not in DISTORTION_MODELS[self.distortion_model]:
            raise ConfigError(
                f'distortion_model {self.distortion_model!r} takes '
                f'{" or ".join(map(str, DISTORTION_MODELS[self.distortion_model]))} '
                f'coefficients in D, got {d.size}')
        if self.is_calibrated and (self.width == 0 or self.height == 0):
            raise ConfigError('a calibrated CameraModel needs its image width and height')

    @classmethod
    def uncalibrated(cls, width: int, height: int) -> CameraModel:
        """The REP-104 "uncalibrated" model: every matrix zero."""
        return cls(width=width, height=height)

    @classmethod
    def from_intrinsics(cls, width: int, height: int, fx: float, fy: float, cx: float,
                        cy: float, D: object = (), distortion_model: str = 'plumb_bob'
                        ) -> CameraModel:
        """A monocular model: R = I and P = [K | 0] (the raw-image intrinsics)."""
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        P = np.hstack([K, np.zeros((3, 1))])
        return cls(width=width, height=height, K=K, D=np.asarray(D, dtype=np.float64),
                   R=np.eye(3), P=P, distortion_model=distortion_model)

    @property
    def is_calibrated(self) -> bool:
        """True when K holds focal lengths (REP-104: an all-zero K means uncalibrated)."""
        return bool(self.K[0, 0] > 0 and self.K[1, 1] > 0)

    @property
    def is_fisheye(self) -> bool:
        return self.distortion_model == 'equidistant'

    @property
    def has_distortion(self) -> bool:
        return bool(self.D.size and np.any(self.D != 0))

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    def allclose(self, other: CameraModel, atol: float = 1e-9) -> bool:
        """Same size, model and matrices (within ``atol``)."""
        return (self.width == other.width and self.height == other.height
                and self.distortion_model == other.distortion_model
                and self.D.shape == other.D.shape
                and all(np.allclose(getattr(self, m), getattr(other, m), atol=atol)
                        for m in ('K', 'D', 'R', 'P'))
                and self.binning_x == other.binning_x and self.binning_y == other.binning_y
                and self.roi == other.roi)

    def pixels_to_rays(self, points: object) -> np.ndarray:
        """Viewing rays of image pixels, in the optical frame (x right, y down, z forward).

        Args:
            points: (N, 2) pixel coordinates ``(u, v)`` in the image this model describes.

        Returns:
            (N, 3) float64 rays scaled to ``z = 1``: the point at depth ``d`` is ``d * ray``.
            Lens distortion is removed (``cv2.undistortPoints``, or ``cv2.fisheye`` for
            ``equidistant``), and ``R`` is not applied (rays of the camera, not of the rectified
            frame).

        Raises:
            ConfigError: the model is uncalibrated (K is zero).
            DataError: ``points`` is not (N, 2).
        """
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise DataError(f'pixels_to_rays takes (N, 2) pixel coordinates, got shape '
                            f'{pts.shape}')
        if not self.is_calibrated:
            raise ConfigError('pixels_to_rays needs a calibrated camera (K is all zero); '
                              'calibrate it (edge-vision calibrate) or assume a field of view')
        if pts.shape[0] == 0:
            return np.zeros((0, 3))
        if self.has_distortion:
            import cv2

            src = pts.reshape(-1, 1, 2)
            if self.is_fisheye:
                xy = cv2.fisheye.undistortPoints(src, self.K, self.D)
            else:
                xy = cv2.undistortPoints(src, self.K, self.D)
            xy = xy.reshape(-1, 2)
        else:
            xy = np.column_stack([(pts[:, 0] - self.cx) / self.fx,
                                  (pts[:, 1] - self.cy) / self.fy])
        return np.column_stack([xy, np.ones(len(xy))])

    @classmethod
    def assumed(cls, width: int, height: int, hfov_deg: float) -> CameraModel:
        """A distortion-free model with a given horizontal field of view, centred: for drawing
        when no calibration is known (not for measuring)."""
        if not 0.0 < hfov_deg < 180.0:
            raise ConfigError(f'hfov_deg must be in (0, 180), got {hfov_deg}')
        f = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
        return cls.from_intrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    def scaled(self, width: int, height: int) -> CameraModel:
        """The same camera at another image size, as ``cv2.resize`` produces it.

        ROS (and OpenCV) put pixel centres at integer coordinates, and ``cv2.resize`` maps a
        source point ``x`` to ``(x + 0.5) * s - 0.5``; K and P are transformed the same way
        (focal lengths scale by ``s``, principal points by that affine map).
        """
        if width <= 0 or height <= 0:
            raise ConfigError(f'scaled() needs a positive size, got {width}x{height}')
        if self.width == 0 or self.height == 0:
            raise ConfigError('cannot scale a CameraModel without a width and height')
        sx, sy = width / self.width, height / self.height
        scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return CameraModel(width=width, height=height, K=scale @ self.K, D=self.D, R=self.R,
                           P=scale @ self.P, distortion_model=self.distortion_model,
                           binning_x=self.binning_x, binning_y=self.binning_y, roi=self.roi)
