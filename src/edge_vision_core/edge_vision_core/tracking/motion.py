"""Camera-motion compensation: the image-to-image motion of the background, from the images.

A robot's camera moves, so objects standing still jump in the image and a constant-velocity
prediction misses them. :class:`CameraMotionEstimator` measures the motion between consecutive
images as a 2x3 affine matrix ``[A | t]`` that maps pixel coordinates of the *previous* image to
the *current* one (``p_cur = A @ p_prev + t``, pixels, top-left-corner origin as in
:mod:`edge_vision_core.types`); the tracker moves its predicted boxes with it before association.

Methods:
    ``sparse_flow``: corners (``cv2.goodFeaturesToTrack``) of the previous image, outside the
        previous detection boxes (objects move on their own), followed into the current image
        with pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``); a similarity transform
        (rotation, uniform scale, translation) is fitted with RANSAC
        (``cv2.estimateAffinePartial2D``). Fast and robust to moving objects.
    ``ecc``: dense intensity alignment (``cv2.findTransformECC``, Euclidean motion) with the
        detection boxes masked out. Slower; for low-texture scenes with few corners.

Both work on a grey copy downscaled by ``downscale`` for speed; the translation is scaled back to
full-resolution pixels. When the motion cannot be estimated (first image, too few features, size
change, no convergence) the identity is returned and counted in :attr:`failures`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..config import check_config, param
from ..errors import ConfigError

__all__ = ['CMC_METHODS', 'CameraMotionConfig', 'CameraMotionEstimator']

_LOG = logging.getLogger(__name__)

CMC_METHODS = ('sparse_flow', 'ecc')


@dataclass(frozen=True)
class CameraMotionConfig:
    """Settings of :class:`CameraMotionEstimator`."""

    method: str = field(default='sparse_flow', metadata=param(
        'How the image motion is measured: sparse_flow (corners + Lucas-Kanade + RANSAC '
        'similarity; fast) or ecc (dense ECC alignment, Euclidean; slower, for low texture).',
        choices=CMC_METHODS))
    downscale: int = field(default=2, metadata=param(
        'Work on the grey image shrunk by this integer factor (1 = full resolution); '
        'translations are scaled back to full-resolution pixels.', min=1, max=16))
    max_features: int = field(default=400, metadata=param(
        'sparse_flow: at most this many corners are followed per image.', min=10, max=5000))
    min_inliers: int = field(default=10, metadata=param(
        'sparse_flow: fewer RANSAC inliers than this and the motion is unknown (identity).',
        min=3, max=1000))
    ecc_iterations: int = field(default=50, metadata=param(
        'ecc: iteration limit of cv2.findTransformECC.', min=1, max=1000))

    def __post_init__(self) -> None:
        check_config(self)


def _grey(image: np.ndarray, downscale: int) -> np.ndarray:
    import cv2

    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX, dtype=cv2.CV_8U)
    if downscale > 1:
        h, w = image.shape[:2]
        image = cv2.resize(image, (max(1, w // downscale), max(1, h // downscale)),
                           interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _background_mask(shape: tuple[int, int], boxes: np.ndarray, downscale: int) -> np.ndarray:
    """uint8 mask (255 = background) of a downscaled image with the boxes blacked out."""
    mask = np.full(shape, 255, np.uint8)
    if len(boxes):
        b = np.asarray(boxes, np.float64) / downscale
        b = np.nan_to_num(b, nan=0.0, posinf=0.0, neginf=0.0)
        x1 = np.clip(np.floor(b[:, 0]), 0, shape[1]).astype(int)
        y1 = np.clip(np.floor(b[:, 1]), 0, shape[0]).astype(int)
        x2 = np.clip(np.ceil(b[:, 2]), 0, shape[1]).astype(int)
        y2 = np.clip(np.ceil(b[:, 3]), 0, shape[0]).astype(int)
        for i in range(len(b)):
            mask[y1[i]:y2[i], x1[i]:x2[i]] = 0
    return mask


class CameraMotionEstimator:
    """Measures the background motion between consecutive images (per-instance state).

    Call :meth:`estimate` once per image, in order. Not thread-safe; one estimator per camera.

    Args:
        config: settings; defaults when None.

    Raises:
        ConfigError: OpenCV is missing (``pip install opencv-python-headless``).
    """

    def __init__(self, config: CameraMotionConfig | None = None) -> None:
        try:
            import cv2  # noqa: F401
        except ImportError as exc:  # pragma: no cover - OpenCV ships with the project
            raise ConfigError('camera-motion compensation needs OpenCV: pip install '
                              'opencv-python-headless (or apt install python3-opencv)') from exc
        self.config = config or CameraMotionConfig()
        self._prev: np.ndarray | None = None
        self._prev_mask: np.ndarray | None = None
        self.failures = 0

    def reset(self) -> None:
        """Forget the previous image (the next estimate returns the identity)."""
        self._prev = None
        self._prev_mask = None

    def estimate(self, image: np.ndarray, exclude_boxes: np.ndarray | None = None) -> np.ndarray:
        """Motion from the previous image to this one.

        Args:
            image: (H, W) or (H, W, C) image, uint8 preferred (BGR/BGRA/mono; other dtypes are
                normalised to 8 bit).
            exclude_boxes: (N, 4) ``[x1, y1, x2, y2]`` boxes of *this* image to keep out of
                the background model (the detections); they are masked when this image serves
                as the previous one of the next call.

        Returns:
            (2, 3) float64 affine ``[A | t]`` mapping previous-image pixels to this image's
            pixels; the identity for the first image or when the estimate fails.
        """
        ds = self.config.downscale
        grey = _grey(np.asarray(image), ds)
        boxes = np.zeros((0, 4)) if exclude_boxes is None else np.asarray(exclude_boxes)
        mask = _background_mask(grey.shape[:2], boxes.reshape(-1, 4), ds)
        prev, prev_mask = self._prev, self._prev_mask
        self._prev, self._prev_mask = grey, mask
        identity = np.eye(2, 3)
        if prev is None:
            return identity
        if prev.shape != grey.shape:
            _LOG.warning('camera motion: image size changed from %s to %s; motion reset',
                         prev.shape, grey.shape)
            self.failures += 1
            return identity
        if self.config.method == 'ecc':
            warp = self._ecc(prev, grey, prev_mask)
        else:
            warp = self._sparse(prev, grey, prev_mask)
        if warp is None:
            self.failures += 1
            return identity
        warp = warp.astype(np.float64)
        warp[:, 2] *= ds
        return warp

    def _sparse(self, prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        import cv2

        cfg = self.config
        pts = cv2.goodFeaturesToTrack(prev, maxCorners=cfg.max_features, qualityLevel=0.01,
                                      minDistance=3, blockSize=3, mask=mask)
        if pts is None or len(pts) < cfg.min_inliers:
            return None
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(21, 21),
                                                  maxLevel=3)
        ok = status.reshape(-1) == 1
        if ok.sum() < cfg.min_inliers:
            return None
        warp, inliers = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC,
                                                    ransacReprojThreshold=1.0)
        if warp is None or inliers is None or int(inliers.sum()) < cfg.min_inliers:
            return None
        return warp

    def _ecc(self, prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        import cv2

        warp = np.eye(2, 3, dtype=np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT,
                    self.config.ecc_iterations, 1e-5)
        try:
            # template = previous image, input = current: the warp maps previous-image
            # coordinates onto the current image, the direction the tracker needs.
            _, warp = cv2.findTransformECC(prev, cur, warp, cv2.MOTION_EUCLIDEAN, criteria,
                                           mask, 5)
        except cv2.error as exc:
            _LOG.debug('camera motion: ECC did not converge: %s', exc)
            return None
        return warp
