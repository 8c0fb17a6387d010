"""From patch scores to a heatmap, a frame score, regions, and a calibrated threshold.

Pure functions (NumPy/OpenCV):

- :func:`score_map`: the (h, w) patch scores of a stride-``s`` grid are bilinearly upsampled to
  model-input pixels, cropped to the resized image (letterbox padding dropped) and smoothed
  with a Gaussian of ``sigma`` model-input pixels (PatchCore uses 4). Its maximum is the frame
  score.
- :func:`to_image`: that map resized onto the original image (H, W), the heatmap a node
  publishes; values keep the score's units, so the same threshold applies to both.
- :func:`find_regions`: connected components of ``map > threshold`` -> boxes in image pixels
  (:class:`~edge_vision_core.types.Detections`, class id :data:`ANOMALY_CLASS_ID`, score = the
  component's peak confidence).
- :func:`calibrate_threshold`: a threshold from frame scores of held-out normal images, either
  their ``quantile`` or the score a Gumbel (extreme-value) fit expects to be exceeded with the
  target ``false_alarm_rate`` (frame scores are maxima over many patches, and the Gumbel fit
  extrapolates beyond the few calibration images a robot usually has).
- :func:`background_level`: a quantile of one frame's own patch scores. The detector subtracts
  it (capped at the highest level of the normal calibration frames) before the map is made, so
  a frame that is a little blurred, noisy or different all over does not outscore a small
  defect, while a frame that is anomalous all over keeps a high score (its level is capped).
- :func:`confidence`: ``score / (score + threshold)``, a monotone map to [0, 1) that is 0.5 at
  the threshold (what ``Detections.scores`` and a ``vision_msgs`` hypothesis carry).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ..errors import ConfigError
from ..inference.letterbox import LetterboxTransform
from ..types import Detections

__all__ = [
    'ANOMALY_CLASS_ID',
    'border_correction',
    'border_rings',
    'ANOMALY_LABELS',
    'THRESHOLD_MODES',
    'background_level',
    'calibrate_threshold',
    'confidence',
    'find_regions',
    'position_scale',
    'score_map',
    'to_image',
]

#: class id of anomalous regions, and the label list it indexes.
ANOMALY_CLASS_ID = 0
ANOMALY_LABELS = ('anomaly',)
THRESHOLD_MODES = ('false_alarm_rate', 'quantile')
_EULER_GAMMA = 0.5772156649015329
#: border rings are compared by this quantile of their normal patch scores: the frame score is
#: a maximum, so the tails matter more than the means (measured: 0.99 beat the mean and 0.9).
_RING_QUANTILE = 0.99


def border_rings(valid: np.ndarray, rings: int) -> np.ndarray:
    """Ring index of every cell: its distance in cells to the nearest image edge, capped.

    Args:
        valid: (h, w) bool cells on the image (a rectangle; see ``embedding.valid_cells``).
        rings: number of edge rings; cells ``rings`` or more cells inside share the last index.

    Returns:
        (h, w) int64 in ``[0, rings]`` (0 = outermost ring); padding cells get ``rings``.
    """
    h, w = valid.shape
    rows, cols = np.nonzero(valid)
    if rows.size == 0:
        return np.full((h, w), rings, np.int64)
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    i = np.arange(h)[:, None]
    j = np.arange(w)[None, :]
    d = np.minimum(np.minimum(i - r0, r1 - i), np.minimum(j - c0, c1 - j))
    return np.where(valid, np.clip(d, 0, rings), rings).astype(np.int64)


def border_correction(patch_scores: Sequence[np.ndarray], rings: Sequence[np.ndarray],
                      num_rings: int) -> np.ndarray:
    """Per-ring factors that bring normal patch scores near the image edge to the interior's.

    Patches near the image border see less (or mirrored) context, so their features are
    rarer and their normal scores higher (measured on the grass benchmark with the NanoDet
    backbone: +40 % mean score in the outer ring); without a correction the frame score of a
    normal image is usually at its border. The factor of ring k is ``q(interior) / q(ring k)``
    where ``q`` is the 0.99 quantile of the held-out normal images' patch scores in that ring,
    clipped to [0.25, 1] (the correction only ever lowers scores).

    Args:
        patch_scores: per held-out normal image, (h, w) patch scores.
        rings: per image, the :func:`border_rings` map.
        num_rings: ring count used for the maps.

    Returns:
        (num_rings + 1,) float32 factors (the last, the interior, is 1).
    """
    flat_s = np.concatenate([np.ravel(s) for s in patch_scores])
    flat_r = np.concatenate([np.ravel(r) for r in rings])
    means = np.zeros(num_rings + 1)  # per-ring quantiles
    counts = np.bincount(flat_r, minlength=num_rings + 1)
    for k in range(num_rings + 1):
        if counts[k]:
            vals = flat_s[flat_r == k]
            means[k] = np.quantile(vals, _RING_QUANTILE)
    interior = means[num_rings] if counts[num_rings] > 0 else means[counts > 0].min(
        initial=0.0)
    factors = np.ones(num_rings + 1)
    ok = (counts > 0) & (means > 0)
    factors[ok] = np.clip(interior / means[ok], 0.25, 1.0)
    factors[num_rings] = 1.0
    return factors.astype(np.float32)


def background_level(patch_scores: np.ndarray, valid: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of one frame's patch scores on its valid cells (0 without any).

    Args:
        patch_scores: (h, w) patch scores of one frame.
        valid: (h, w) bool cells on the image (letterbox padding excluded).
        quantile: in [0, 1).
    """
    values = patch_scores[valid]
    if values.size == 0:
        return 0.0
    return float(np.quantile(values, quantile))


def position_scale(patch_scores: Sequence[np.ndarray], valid: np.ndarray,
                   quantile: float = 0.9, sigma: float = 1.0) -> np.ndarray:
    """Per-cell factors that bring each position's normal patch scores to the typical level.

    Where normal images vary most (the corners and edges a small shift or rotation moves, the
    rim of a part), their patch scores are highest, and the frame score of a normal image sits
    there. A cell's level is the ``quantile`` of its held-out normal patch scores over the
    calibration images, smoothed over the grid (Gaussian, ``sigma`` cells); its factor is
    ``median level / level``, clipped to [0.25, 1] (only noisier-than-typical cells are scaled
    down, so a defect elsewhere keeps its full score).

    Args:
        patch_scores: per held-out normal image, (h, w) patch scores (one grid shape).
        valid: (h, w) bool cells on the image (padding cells get factor 1).

    Returns:
        (h, w) float32 factors in [0.25, 1].
    """
    stack = np.stack([np.asarray(s, np.float32) for s in patch_scores])
    level = np.quantile(stack, quantile, axis=0).astype(np.float32)
    if not valid.any():
        return np.ones(valid.shape, np.float32)
    level = np.where(valid, level, float(np.median(level[valid])))
    if sigma > 0:
        level = cv2.GaussianBlur(level, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    typical = float(np.median(level[valid]))
    factors = np.clip(typical / np.maximum(level, 1e-12), 0.25, 1.0)
    return np.where(valid, factors, 1.0).astype(np.float32)


def score_map(patch_scores: np.ndarray, stride: int, transform: LetterboxTransform,
              sigma: float) -> np.ndarray:
    """Smoothed score map over the resized image, in model-input pixels.

    Args:
        patch_scores: (h, w) float32 scores of a grid with ``stride`` model-input pixels per
            cell (cell (i, j) centred at ``((j + 0.5) * stride, (i + 0.5) * stride)``).
        stride: cell size in model-input pixels.
        transform: the image -> model-input letterbox of this frame.
        sigma: Gaussian smoothing in model-input pixels (0 = none).

    Returns:
        (rh, rw) float32 map over ``transform.resized_size`` = (rw, rh): pixel (v, u) is model-
        input pixel ``(u + pad_x, v + pad_y)``.
    """
    h, w = patch_scores.shape
    up = cv2.resize(np.ascontiguousarray(patch_scores, np.float32), (w * stride, h * stride),
                    interpolation=cv2.INTER_LINEAR)
    rw, rh = transform.resized_size
    x0, y0 = transform.pad_x, transform.pad_y
    crop = np.ascontiguousarray(up[y0:y0 + rh, x0:x0 + rw])
    if sigma > 0:
        crop = cv2.GaussianBlur(crop, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return crop


def to_image(smoothed: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
    """The :func:`score_map` resized onto the original image: (H, W) float32."""
    w, h = transform.src_size
    if smoothed.shape == (h, w):
        return smoothed
    return cv2.resize(smoothed, (w, h), interpolation=cv2.INTER_LINEAR)


def confidence(score: float | np.ndarray, threshold: float) -> float | np.ndarray:
    """``score / (score + threshold)``: 0 for a zero score, 0.5 at the threshold, -> 1 above."""
    t = max(float(threshold), 1e-12)
    s = np.maximum(score, 0.0)
    out = s / (s + t)
    return float(out) if np.ndim(out) == 0 else out.astype(np.float32)


def find_regions(smoothed: np.ndarray, transform: LetterboxTransform, threshold: float,
                 min_area: float = 0.0, max_regions: int = 0) -> Detections:
    """Anomalous regions: connected components of ``smoothed > threshold``.

    Args:
        smoothed: the :func:`score_map` of a frame (model-input pixels over the resized image).
        transform: the frame's letterbox (maps the boxes into image pixels).
        threshold: score above which a pixel is anomalous.
        min_area: drop regions whose box covers less than this many image pixels.
        max_regions: keep the highest-scoring ones (0 = all).

    Returns:
        Detections with boxes ``[x1, y1, x2, y2]`` in image pixels (corner coordinates,
        clipped), scores = :func:`confidence` of each region's peak, class ids
        :data:`ANOMALY_CLASS_ID`; sorted by score, highest first.
    """
    binary = (smoothed > threshold).astype(np.uint8)
    if not binary.any():
        return Detections.empty()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    peaks = np.zeros(count, np.float32)
    np.maximum.at(peaks, labels.ravel(), smoothed.ravel())
    x, y = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_TOP]
    bw, bh = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    sx, sy = transform.scale_x, transform.scale_y
    boxes = np.stack([x / sx, y / sy, (x + bw) / sx, (y + bh) / sy], axis=1).astype(np.float32)
    sw, sh = transform.src_size
    np.clip(boxes[:, 0::2], 0, sw, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, sh, out=boxes[:, 1::2])
    scores = np.asarray(confidence(peaks[1:], threshold), np.float32).reshape(-1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = np.flatnonzero(area >= min_area)
    keep = keep[np.argsort(-scores[keep], kind='stable')]
    if max_regions > 0:
        keep = keep[:max_regions]
    return Detections(boxes[keep], scores[keep], np.full(len(keep), ANOMALY_CLASS_ID, np.int32))


def calibrate_threshold(normal_scores: Sequence[float] | np.ndarray, mode: str = 'quantile',
                        *, quantile: float = 0.99, false_alarm_rate: float = 0.01) -> float:
    """A frame-score threshold from the scores of normal images the model was not fitted on.

    Args:
        normal_scores: frame scores of held-out normal images (at least 1; 2+ for the
            ``false_alarm_rate`` fit).
        mode: ``quantile`` (the linearly interpolated ``quantile`` of the scores) or
            ``false_alarm_rate`` (the score that a Gumbel distribution, fitted to the scores by
            the method of moments, exceeds with probability ``false_alarm_rate``; when that
            rate is finer than the calibration set can show, below ``1 / (n + 1)``, the
            threshold is at least the largest calibration score).
        quantile: in (0, 1], for ``quantile``.
        false_alarm_rate: in (0, 1), for ``false_alarm_rate``.

    Returns:
        The threshold (same units as the scores).

    Raises:
        ConfigError: no scores, non-finite scores, unknown mode or out-of-range parameters.
    """
    s = np.asarray(normal_scores, np.float64).ravel()
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ConfigError('threshold calibration needs at least one finite normal-image score')
    if mode == 'quantile':
        if not 0 < quantile <= 1:
            raise ConfigError(f'threshold quantile must be in (0, 1], got {quantile}')
        return float(np.quantile(s, quantile))
    if mode != 'false_alarm_rate':
        raise ConfigError(f'threshold mode must be one of {THRESHOLD_MODES}, got {mode!r}')
    if not 0 < false_alarm_rate < 1:
        raise ConfigError(f'false_alarm_rate must be in (0, 1), got {false_alarm_rate}')
    if s.size < 2 or float(s.std()) == 0.0:
        return float(s.max())
    beta = float(s.std(ddof=1)) * math.sqrt(6.0) / math.pi
    mu = float(s.mean()) - _EULER_GAMMA * beta
    threshold = mu - beta * math.log(-math.log1p(-false_alarm_rate))
    if false_alarm_rate < 1.0 / (s.size + 1):
        threshold = max(threshold, float(s.max()))
    return float(threshold)
