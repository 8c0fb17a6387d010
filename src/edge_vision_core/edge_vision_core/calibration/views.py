"""Describing calibration views: pose parameters, coverage progress and sharpness.

A calibration needs views of the target all over the image, near and far, and tilted; ROS
``camera_calibration`` measures this with four numbers per view and shows one progress bar for
each. This module computes the same kind of measures (the formulas are our own):

- ``x``, ``y``: where the board's centre is in the image, 0 (left/top) to 1 (right/bottom),
  on an image shrunk on all sides by half the board's apparent size (so a large board that
  cannot move much still reaches 0 and 1);
- ``size``: square root of the board's area over the image area (0 to 1);
- ``skew``: how far the board's outline is from a rectangle (the mean deviation of its four
  corner angles from 90 degrees, doubled, in radians, capped at 1): 0 for a board facing the
  camera or turned in its own plane, about 0.3 for a board tilted by 35 degrees.

The board's outline is the quadrilateral of the detected corners' extent (for a partly
visible ChArUco board, the visible part), mapped through the board-to-image homography.

Coverage: for each parameter, the spread (max - min) of the accepted views over a target range
(x 0.7, y 0.7, size 0.4, skew 0.5, as camera_calibration; for size and skew the minimum counts
as 0, since small and untilted views are easy). A view is *diverse* when the L1 distance of its
parameters to every accepted view exceeds a threshold (0.2 by default).

Sharpness: the *edge width* of the target region in pixels, ``contrast / steepest gradient``
(the 97th-3rd percentile of the intensities over the 99th percentile of the gradient magnitude,
inside the target's convex hull). A step edge blurred by a Gaussian of sigma s measures about
2.5 x sqrt(s^2 + 0.6) px; measured on rendered boards of every size and both target kinds: 2.0
sharp, 2.5 at sigma 0.7, 4.1 at 1.5, 6.4 at 2.5, 9-10 at 4, while the variance of the
Laplacian changed 3x with the board's size alone. Motion blur along one direction leaves the
edges parallel to the motion sharp and is not caught by this measure; use the board-speed check
of the calibrator on video.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .targets import TargetDetection

__all__ = [
    'PARAM_NAMES',
    'PARAM_RANGES',
    'CoverageProgress',
    'ParamProgress',
    'ViewParams',
    'coverage',
    'edge_width',
    'view_distance',
    'view_params',
]

#: Names of the view parameters, in order.
PARAM_NAMES: tuple[str, ...] = ('x', 'y', 'size', 'skew')
#: The spread of each parameter that counts as full coverage (camera_calibration's values).
PARAM_RANGES: tuple[float, ...] = (0.7, 0.7, 0.4, 0.5)


@dataclass(frozen=True)
class ViewParams:
    """Where and how the target appears in one view (all in [0, 1]; see the module docs)."""

    x: float
    y: float
    size: float
    skew: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.size, self.skew


def _outline(detection: TargetDetection) -> np.ndarray:
    """(4, 2) image quadrilateral of the detected corners' extent on the board."""
    obj = detection.object_points[:, :2].astype(np.float64)
    img = detection.image_points.astype(np.float64)
    lo, hi = obj.min(axis=0), obj.max(axis=0)
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    H, _ = cv2.findHomography(obj, img, 0)
    if H is None:
        # Degenerate (should not happen for a detection): fall back to the extreme corners.
        idx = [int(np.argmin(np.linalg.norm(obj - b, axis=1))) for b in box]
        return img[idx]
    quad = cv2.perspectiveTransform(box.reshape(-1, 1, 2), H).reshape(4, 2)
    return quad


def _quad_area(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _quad_skew(quad: np.ndarray) -> float:
    deviation = 0.0
    for i in range(4):
        a, b, c = quad[i - 1], quad[i], quad[(i + 1) % 4]
        u, v = a - b, c - b
        norm = float(np.linalg.norm(u) * np.linalg.norm(v))
        if norm <= 0:
            return 1.0
        angle = math.acos(float(np.clip(np.dot(u, v) / norm, -1.0, 1.0)))
        deviation += abs(math.pi / 2 - angle) / 4
    return min(1.0, 2.0 * deviation)


def view_params(detection: TargetDetection) -> ViewParams:
    """The :class:`ViewParams` of one detection (image size from the detection)."""
    width, height = detection.image_size
    quad = _outline(detection)
    area = _quad_area(quad)
    border = math.sqrt(area)
    mean = detection.image_points.mean(axis=0)
    x = (float(mean[0]) - border / 2) / max(width - border, 1.0)
    y = (float(mean[1]) - border / 2) / max(height - border, 1.0)
    size = math.sqrt(area / float(width * height))
    return ViewParams(x=float(np.clip(x, 0.0, 1.0)), y=float(np.clip(y, 0.0, 1.0)),
                      size=float(min(size, 1.0)), skew=_quad_skew(quad))


def view_distance(a: ViewParams, b: ViewParams) -> float:
    """L1 distance between two views' parameters."""
    return float(sum(abs(p - q) for p, q in zip(a.as_tuple(), b.as_tuple(), strict=True)))


@dataclass(frozen=True)
class ParamProgress:
    """Coverage of one parameter: the spread seen so far and the progress toward its range."""

    name: str
    low: float
    high: float
    progress: float  # 0..1


@dataclass(frozen=True)
class CoverageProgress:
    """Coverage of all four parameters over the accepted views.

    Attributes:
        params: one :class:`ParamProgress` per name in :data:`PARAM_NAMES`.
        views: number of accepted views.
        ready: True when a calibration is worth running (see ``Calibrator``).
    """

    params: tuple[ParamProgress, ...]
    views: int
    ready: bool

    @property
    def complete(self) -> bool:
        """Every parameter reached its full range."""
        return all(p.progress >= 1.0 for p in self.params)

    def as_dict(self) -> dict[str, float]:
        """``{name: progress}`` for the four parameters."""
        return {p.name: p.progress for p in self.params}

    def summary(self) -> str:
        """One line, e.g. ``'12 views; x 86% y 100% size 45% skew 30%'``."""
        bars = ' '.join(f'{p.name} {p.progress:.0%}' for p in self.params)
        views = f'{self.views} view' + ('' if self.views == 1 else 's')
        return f'{views}; {bars}' + ('; ready' if self.ready else '')


def coverage(params: Sequence[ViewParams], ready: bool = False) -> CoverageProgress:
    """The coverage of a set of views (``ready`` is passed through)."""
    if not params:
        empty = tuple(ParamProgress(n, 0.0, 0.0, 0.0) for n in PARAM_NAMES)
        return CoverageProgress(empty, 0, ready)
    arr = np.array([p.as_tuple() for p in params], dtype=np.float64)
    low = arr.min(axis=0)
    high = arr.max(axis=0)
    low[2:] = 0.0  # small and untilted views are easy: only reward large and tilted ones
    out = tuple(ParamProgress(name, float(lo), float(hi), float(min((hi - lo) / rng, 1.0)))
                for name, lo, hi, rng in zip(PARAM_NAMES, low, high, PARAM_RANGES,
                                             strict=True))
    return CoverageProgress(out, len(params), ready)


def edge_width(gray: np.ndarray, image_points: np.ndarray) -> float:
    """Blur of the target region: typical edge width in pixels (larger = blurrier).

    Args:
        gray: (H, W) uint8 image.
        image_points: (N, 2) target corners in pixels; their convex hull is the region.

    Returns:
        ``contrast / steepest gradient`` in pixels (about 2 for a sharp image; see the module
        docstring), or ``inf`` when the region has no contrast.
    """
    pts = np.asarray(image_points, dtype=np.float32).reshape(-1, 2)
    h, w = gray.shape[:2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return math.inf
    crop = gray[y0:y1, x0:x1].astype(np.float32)
    mask = np.zeros(crop.shape, np.uint8)
    hull = cv2.convexHull((pts - [x0, y0]).astype(np.float32))
    cv2.fillConvexPoly(mask, np.round(hull).astype(np.int32), 1)
    inside = mask.astype(bool)
    if inside.sum() < 16:
        return math.inf
    gx = cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    gradient = np.hypot(gx, gy)[inside]
    values = crop[inside]
    lo, hi = np.percentile(values, [3.0, 97.0])
    steepest = float(np.percentile(gradient, 99.0))
    if hi - lo <= 0 or steepest <= 0:
        return math.inf
    return float((hi - lo) / steepest)
