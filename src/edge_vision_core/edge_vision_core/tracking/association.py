"""Association of tracks and detections: similarity matrices and gated Hungarian assignment.

Boxes are ``[x1, y1, x2, y2]`` in image pixels (see :mod:`edge_vision_core.types`). Costs are
"lower is better" matrices of shape (tracks, detections); a pair whose cost is above the gate (or
not finite) can never be matched.

The assignment minimises the total cost where leaving a track or a detection unmatched costs
half the gate each, the formulation of ``lap.lapjv(..., cost_limit=gate)`` that ByteTrack uses:
a pair is only made when it is better than leaving both sides unmatched, so one good match is
never given up for two poor ones. It is solved exactly with
``scipy.optimize.linear_sum_assignment`` on the cost matrix clipped just above the gate, which has
the same minimiser (every forced pair above the gate costs the same as two unmatched halves).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..types import box_iou

__all__ = ['box_iou', 'center_distance_ratio', 'linear_assignment']


def center_distance_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between box centres relative to the size of the boxes of ``a``.

    Args:
        a: (N, 4) reference boxes ``[x1, y1, x2, y2]`` (the tracks' predicted boxes).
        b: (M, 4) boxes ``[x1, y1, x2, y2]`` (the detections).

    Returns:
        (N, M) float64 ``|c_a - c_b| / sqrt(w_a * h_a)``: 1.0 means the centres are one
        (geometric-mean) box side apart, whatever the box size.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    dist = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2)
    side = np.sqrt(np.maximum((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-12))
    return dist / side[:, None]


def linear_assignment(cost: np.ndarray,
                      max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching of rows and columns with a gate.

    Args:
        cost: (N, M) costs; NaN or +inf marks pairs that must not be matched.
        max_cost: the gate: pairs costing more are never matched.

    Returns:
        ``(matches, unmatched_rows, unmatched_cols)``: (K, 2) int64 ``[row, col]`` pairs sorted
        by row, and the (N - K,) and (M - K,) int64 indices left over, ascending.
    """
    cost = np.asarray(cost, np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        return (np.zeros((0, 2), np.int64), np.arange(n, dtype=np.int64),
                np.arange(m, dtype=np.int64))
    allowed = np.isfinite(cost) & (cost <= max_cost)
    # Forbidden pairs cost a little more than the gate: the solver may still pick them (the
    # rectangular problem pairs min(N, M) rows), but they are dropped below, and the optimum
    # over the allowed pairs is the one with unmatched rows/cols charged max_cost / 2 each.
    clipped = np.where(allowed, cost, max_cost + 1e-6)
    rows, cols = linear_sum_assignment(clipped)
    keep = allowed[rows, cols]
    matches = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    free_rows = np.ones(n, bool)
    free_rows[matches[:, 0]] = False
    free_cols = np.ones(m, bool)
    free_cols[matches[:, 1]] = False
    return matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols)
