"""Undistortion and rectification of camera images, with maps cached per calibration.

Conventions follow ``sensor_msgs/CameraInfo`` and REP-104, like ``image_proc``'s rectify:

- the raw image is described by ``K``, ``D`` (``distortion_model``) and the rectified image by
  ``R`` (rotation into the rectified frame; an all-zero R is read as identity) and the first
  three columns of ``P``;
- rectification maps each output pixel through ``P`` and ``R`` back to the raw image with
  ``cv2.initUndistortRectifyMap`` (``plumb_bob``, ``rational_polynomial``) or
  ``cv2.fisheye.initUndistortRectifyMap`` (``equidistant``) and samples it with ``cv2.remap``
  (fixed-point ``CV_16SC2`` maps, black outside the raw image);
- the output is the REP-104 ``image_rect``: its model has ``K = P[:, :3]``, ``D`` all zero
  (``plumb_bob``, 5 coefficients), ``R = I`` and the same ``P`` (so a stereo ``Tx`` is kept).

``alpha`` chooses the output projection: ``-1`` uses the calibration's own ``P`` (what
``image_proc`` does; an all-zero ``P`` falls back to ``K``); ``0..1`` computes a new one with
``cv2.getOptimalNewCameraMatrix`` (``cv2.fisheye.estimateNewCameraMatrixForUndistortRectify``
with ``balance=alpha`` for fisheye): 0 keeps only valid pixels, 1 keeps every raw pixel (black
corners).

Maps are computed once per calibration and reused while the ``CameraModel`` stays the same
(compared with :meth:`CameraModel.allclose`), so a camera_info message per frame costs a
comparison, not a map rebuild.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..camera import CameraModel, RegionOfInterest
from ..errors import CalibrationError, ConfigError

__all__ = ['REMAP_INTERPOLATIONS', 'Undistorter']

#: Interpolation names accepted for remapping.
REMAP_INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'linear': cv2.INTER_LINEAR,
    'cubic': cv2.INTER_CUBIC,
    'lanczos': cv2.INTER_LANCZOS4,
}


class Undistorter:
    """Rectifies the images of one camera; keeps the remap tables of the last calibration.

    Example::

        und = Undistorter(alpha=-1.0)
        rect, rect_model = und.rectify(image, camera)  # maps built on the first call only

    Attributes:
        alpha: -1 (use the calibration's P) or 0..1 (free scaling, see the module docstring).
        interpolation: a key of :data:`REMAP_INTERPOLATIONS`.
        maps_built: how many times maps were computed (1 while the calibration is unchanged).
    """

    def __init__(self, *, alpha: float = -1.0, interpolation: str = 'linear') -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or \
                not (alpha == -1.0 or 0.0 <= alpha <= 1.0):
            raise ConfigError(f'Undistorter alpha must be -1 (use camera_info P) or in [0, 1], '
                              f'got {alpha!r}')
        if interpolation not in REMAP_INTERPOLATIONS:
            raise ConfigError(f'unknown interpolation {interpolation!r} for undistortion; '
                              f'expecting one of {", ".join(REMAP_INTERPOLATIONS)}')
        self.alpha = float(alpha)
        self.interpolation = interpolation
        self.maps_built = 0
        self._camera: CameraModel | None = None
        self._rectified: CameraModel | None = None
        self._maps: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        """Forget the cached calibration and maps (the next call rebuilds them)."""
        self._camera = self._rectified = self._maps = None
        self.maps_built = 0

    def rectified_camera(self, camera: CameraModel) -> CameraModel:
        """The REP-104 model of the rectified image of ``camera`` (updates the cache).

        Raises:
            CalibrationError: the camera is not calibrated or uses binning/ROI.
        """
        return self._update(camera)

    def rectify(self, image: np.ndarray, camera: CameraModel
                ) -> tuple[np.ndarray, CameraModel]:
        """Undistort and rectify one image.

        Args:
            image: (H, W) or (H, W, C) uint8/uint16/float32 image of the size ``camera`` was
                calibrated at.
            camera: its calibration.

        Returns:
            ``(rectified image, rectified model)``; the image has the input's size, dtype and
            channels. When the calibration has no distortion and no rotation and keeps K, the
            input is returned as it is (no copy).

        Raises:
            CalibrationError: the image size differs from the calibration's, or the camera is
                not calibrated, or it uses binning/ROI (not supported).
        """
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ConfigError(f'rectify needs a (H, W) or (H, W, C) array, got '
                              f'{getattr(image, "shape", type(image).__name__)}')
        h, w = image.shape[:2]
        if (w, h) != (camera.width, camera.height):
            raise CalibrationError(
                f'image is {w}x{h} but its camera_info is for {camera.width}x{camera.height}; '
                f'undistortion needs the calibration of this resolution (use '
                f'CameraModel.scaled() if the image was resized on purpose)')
        rectified = self._update(camera)
        if self._maps is None:
            return image, rectified
        map1, map2 = self._maps
        out = cv2.remap(np.ascontiguousarray(image), map1, map2,
                        REMAP_INTERPOLATIONS[self.interpolation],
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out, rectified

    # -----------------------------------------------------------------------------------------

    def _update(self, camera: CameraModel) -> CameraModel:
        if self._rectified is not None and self._camera is not None and \
                camera.allclose(self._camera, atol=0.0):
            return self._rectified
        _check_supported(camera)
        size = (camera.width, camera.height)
        K = camera.K
        R = camera.R if np.any(camera.R) else np.eye(3)
        D = camera.D if camera.D.size else np.zeros(4 if camera.is_fisheye else 5)
        if self.alpha < 0:
            P = camera.P if camera.P[0, 0] > 0 and camera.P[1, 1] > 0 else \
                np.hstack([K, np.zeros((3, 1))])
            new_k = P[:, :3].copy()
        elif camera.is_fisheye:
            new_k = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
                K, D, size, R, balance=self.alpha, new_size=size)
            P = np.hstack([new_k, np.zeros((3, 1))])
        else:
            new_k, _ = cv2.getOptimalNewCameraMatrix(K, D, size, self.alpha, size)
            P = np.hstack([new_k, np.zeros((3, 1))])
        identity = (not camera.has_distortion and np.allclose(R, np.eye(3))
                    and np.allclose(new_k, K))
        if identity:
            maps = None
        elif camera.is_fisheye:
            maps = cv2.fisheye.initUndistortRectifyMap(K, D, R, new_k, size, cv2.CV_16SC2)
        else:
            maps = cv2.initUndistortRectifyMap(K, D, R, new_k, size, cv2.CV_16SC2)
        self._rectified = CameraModel(width=camera.width, height=camera.height, K=new_k,
                                      D=np.zeros(5), R=np.eye(3), P=P,
                                      distortion_model='plumb_bob')
        self._maps = maps
        self._camera = camera
        self.maps_built += 1
        return self._rectified


def _check_supported(camera: CameraModel) -> None:
    if not camera.is_calibrated:
        raise CalibrationError('the camera is not calibrated (camera_info K is zero), so there '
                               'is nothing to undistort; calibrate it or disable undistortion')
    if camera.binning_x > 1 or camera.binning_y > 1 or camera.roi != RegionOfInterest():
        raise CalibrationError(
            f'camera_info uses binning ({camera.binning_x}x{camera.binning_y}) or a region of '
            f'interest ({camera.roi}); undistortion of binned/ROI images is not supported: '
            f'publish full-resolution camera_info for the image size')
