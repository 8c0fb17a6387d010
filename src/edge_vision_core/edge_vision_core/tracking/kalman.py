"""Constant-velocity Kalman filter for image boxes, vectorised over tracks.

State of one track (8 values, image pixels, see :mod:`edge_vision_core.types` for the frame)::

    [cx, cy, w, h, vcx, vcy, vw, vh]

``cx, cy`` is the box centre, ``w, h`` its width and height, and the ``v*`` entries their rates of
change in pixels per *frame*, where a frame is one period of the tracker's nominal frame rate.
Time steps ``dt`` are therefore given in (possibly fractional) frames, so the noise levels below
mean the same thing at any camera rate, and a 0.5 s gap at 30 Hz is ``dt = 15``.

Measurements are ``[cx, cy, w, h]``. Process and measurement noise scale with the box size (a
box 200 px wide moves and jitters more in pixels than one 20 px wide), as in SORT/ByteTrack/
BoT-SORT; width and height are filtered separately (not aspect ratio and height) so that camera
motion compensation can scale them and deforming objects (people turning) are followed.

Every function works on a batch: ``mean`` is (N, 8) float64 and ``cov`` is (N, 8, 8) float64,
with N >= 0. Nothing is modified in place; new arrays are returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ['BoxKalmanFilter', 'boxes_to_measurements', 'measurements_to_boxes']

_NDIM = 4


def boxes_to_measurements(boxes: np.ndarray) -> np.ndarray:
    """``[x1, y1, x2, y2]`` boxes (N, 4) to ``[cx, cy, w, h]`` measurements (N, 4) float64."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + wh / 2, wh], axis=1)


def measurements_to_boxes(xywh: np.ndarray, min_size: float = 1.0) -> np.ndarray:
    """``[cx, cy, w, h]`` rows (N, >=4) to ``[x1, y1, x2, y2]`` boxes (N, 4) float64.

    Widths and heights below ``min_size`` pixels (a shrinking prediction can go negative) are
    clamped to ``min_size`` so every returned box is valid.
    """
    xywh = np.asarray(xywh, np.float64)
    half = np.maximum(xywh[:, 2:4], min_size) / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


@dataclass(frozen=True)
class BoxKalmanFilter:
    """Constant-velocity Kalman filter over ``[cx, cy, w, h]`` boxes.

    Attributes:
        std_position: standard deviation of the position noise as a fraction of the box size
            (1/20: ByteTrack's value). Scales the measurement noise and the per-frame process
            noise of centre, width and height.
        std_velocity: standard deviation of the per-frame velocity noise as a fraction of the
            box size (1/160: ByteTrack's value).
    """

    std_position: float = 1.0 / 20.0
    std_velocity: float = 1.0 / 160.0

    @staticmethod
    def _size_scale(values: np.ndarray) -> np.ndarray:
        """(N, 4) ``[w, h, w, h]`` from (N, >=4) ``[cx, cy, w, h, ...]``, floored at 1 px."""
        wh = np.maximum(np.abs(values[:, 2:4]), 1.0)
        return np.concatenate([wh, wh], axis=1)

    def initiate(self, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start tracks from ``[cx, cy, w, h]`` measurements (N, 4).

        Returns:
            ``(mean, cov)``: (N, 8) with zero velocity and (N, 8, 8) diagonal covariance (twice
            the measurement noise on positions, a wide prior on velocities).
        """
        z = np.asarray(measurements, np.float64).reshape(-1, _NDIM)
        mean = np.concatenate([z, np.zeros_like(z)], axis=1)
        scale = self._size_scale(z)
        std = np.concatenate([2 * self.std_position * scale, 10 * self.std_velocity * scale],
                             axis=1)
        cov = np.zeros((len(z), 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std ** 2
        return mean, cov

    def process_noise(self, mean: np.ndarray, dt: float) -> np.ndarray:
        """Diagonal process noise (N, 8, 8) accumulated over ``dt`` frames.

        The one-frame variances (``std_position * size`` and ``std_velocity * size``, squared)
        are multiplied by ``dt``: noise accumulated by ``dt`` independent one-frame steps, which
        keeps long gaps (time jumps) from collapsing or exploding the covariance.
        """
        scale = self._size_scale(mean)
        var = np.concatenate([(self.std_position * scale) ** 2,
                              (self.std_velocity * scale) ** 2], axis=1) * dt
        q = np.zeros((len(mean), 8, 8))
        idx = np.arange(8)
        q[:, idx, idx] = var
        return q

    def predict(self, mean: np.ndarray, cov: np.ndarray,
                dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Propagate states ``dt`` frames ahead: ``x' = F x``, ``P' = F P F^T + Q(dt)``.

        Args:
            mean: (N, 8) states.
            cov: (N, 8, 8) covariances.
            dt: time step in frames (> 0; fractional and large values allowed).
        """
        if len(mean) == 0:
            return mean.copy(), cov.copy()
        f = np.eye(8)
        f[:_NDIM, _NDIM:] = dt * np.eye(_NDIM)
        new_mean = mean @ f.T
        new_cov = f @ cov @ f.T + self.process_noise(mean, dt)
        return new_mean, new_cov

    def measurement_noise(self, mean: np.ndarray) -> np.ndarray:
        """Diagonal measurement noise R (N, 4, 4) for the boxes in ``mean``."""
        var = (self.std_position * self._size_scale(mean)) ** 2
        r = np.zeros((len(mean), _NDIM, _NDIM))
        idx = np.arange(_NDIM)
        r[:, idx, idx] = var
        return r

    def update(self, mean: np.ndarray, cov: np.ndarray,
               measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct states with one ``[cx, cy, w, h]`` measurement each (N, 4).

        Standard Kalman update with ``H = [I4 0]``: ``S = H P H^T + R``, ``K = P H^T S^-1``,
        ``x' = x + K (z - H x)``, ``P' = P - K S K^T``.
        """
        z = np.asarray(measurements, np.float64).reshape(-1, _NDIM)
        if len(mean) == 0:
            return mean.copy(), cov.copy()
        s = cov[:, :_NDIM, :_NDIM] + self.measurement_noise(mean)
        pht = cov[:, :, :_NDIM]  # P H^T: (N, 8, 4)
        # K = P H^T S^-1  <=>  S K^T = H P  (S symmetric)
        gain = np.linalg.solve(s, np.transpose(pht, (0, 2, 1))).transpose(0, 2, 1)
        innovation = z - mean[:, :_NDIM]
        new_mean = mean + np.einsum('nij,nj->ni', gain, innovation)
        new_cov = cov - gain @ s @ np.transpose(gain, (0, 2, 1))
        new_cov = (new_cov + np.transpose(new_cov, (0, 2, 1))) / 2  # keep it symmetric
        return new_mean, new_cov

    @staticmethod
    def warp(mean: np.ndarray, cov: np.ndarray,
             affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move states into another image frame with a 2x3 affine ``p' = A p + t``.

        Used for camera-motion compensation: ``affine`` maps pixel coordinates of the previous
        image to the current one. Centres are mapped by ``A, t``, centre velocities by ``A``,
        and widths, heights and their rates by the scale ``sqrt(|det A|)`` (exact for the
        similarity transforms that ``cv2.estimateAffinePartial2D`` returns).

        Args:
            mean: (N, 8) states.
            cov: (N, 8, 8) covariances.
            affine: (2, 3) float matrix ``[A | t]``.
        """
        affine = np.asarray(affine, np.float64).reshape(2, 3)
        a, t = affine[:, :2], affine[:, 2]
        s = float(np.sqrt(abs(np.linalg.det(a))))
        tm = np.zeros((8, 8))
        tm[0:2, 0:2] = a
        tm[2:4, 2:4] = s * np.eye(2)
        tm[4:6, 4:6] = a
        tm[6:8, 6:8] = s * np.eye(2)
        new_mean = mean @ tm.T
        new_mean[:, 0:2] += t
        new_cov = tm @ cov @ tm.T
        return new_mean, new_cov
