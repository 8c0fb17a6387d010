"""IoU, centre distance and gated Hungarian assignment: small table-driven cases."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core.tracking import box_iou, center_distance_ratio, linear_assignment


@pytest.mark.parametrize(('a', 'b', 'expected'), [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges
    ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),  # contained
    ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
    ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty union
])
def test_box_iou_cases(a, b, expected):
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)
    assert box_iou(np.array([b]), np.array([a]))[0, 0] == pytest.approx(expected)


def test_box_iou_shapes():
    assert box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert box_iou(np.ones((2, 4)), np.zeros((0, 4))).shape == (2, 0)
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]])
    assert box_iou(a, a).shape == (2, 2)


def test_center_distance_ratio_is_relative_to_the_reference_box():
    track = np.array([[0, 0, 10, 10], [0, 0, 100, 100]])
    det = np.array([[10, 0, 20, 10]])
    # det centre (15, 5): 10 px from the small box's centre (side 10), and (35, 45) px from
    # the large box's centre (side 100)
    np.testing.assert_allclose(center_distance_ratio(track, det)[:, 0],
                               [1.0, np.hypot(35, 45) / 100])


INF = np.inf


@pytest.mark.parametrize(('cost', 'gate', 'matches', 'rows', 'cols'), [
    # the diagonal is cheapest
    ([[0.1, 0.9], [0.8, 0.2]], 0.5, [[0, 0], [1, 1]], [], []),
    # a cross assignment beats the greedy one
    ([[0.1, 0.2], [0.15, 0.9]], 0.95, [[0, 1], [1, 0]], [], []),
    # gate: the only cheap pair is taken, the rest stay unmatched
    ([[0.1, 0.9], [0.95, 0.96]], 0.5, [[0, 0]], [1], [1]),
    # one good match is not given up for two mediocre ones
    ([[0.1, 0.7], [0.75, INF]], 0.8, [[0, 0]], [1], [1]),
    # forbidden pairs (inf, nan) are never matched
    ([[INF, 0.3], [np.nan, INF]], 0.5, [[0, 1]], [1], [0]),
    # more detections than tracks
    ([[0.5, 0.1, 0.3]], 0.5, [[0, 1]], [], [0, 2]),
    # more tracks than detections
    ([[0.4], [0.2], [0.9]], 0.5, [[1, 0]], [0, 2], []),
])
def test_linear_assignment_table(cost, gate, matches, rows, cols):
    m, r, c = linear_assignment(np.array(cost, float), gate)
    assert m.tolist() == matches
    assert r.tolist() == rows
    assert c.tolist() == cols


@pytest.mark.parametrize('shape', [(0, 0), (0, 3), (2, 0)])
def test_linear_assignment_empty(shape):
    m, r, c = linear_assignment(np.zeros(shape), 0.5)
    assert m.shape == (0, 2)
    assert r.tolist() == list(range(shape[0]))
    assert c.tolist() == list(range(shape[1]))


def brute_force_total(cost: np.ndarray, gate: float, perm: tuple[int, ...]) -> float:
    """Total cost of one permutation, pairs above the gate left unmatched (gate/2 per side)."""
    pairs = [(i, j) for i, j in enumerate(perm) if cost[i, j] <= gate]
    return sum(cost[i, j] for i, j in pairs) + gate * (len(perm) - len(pairs))


def test_linear_assignment_is_optimal_on_random_matrices():
    """Brute force over permutations on small square matrices."""
    from itertools import permutations

    rng = np.random.default_rng(0)
    for _ in range(20):
        cost = rng.uniform(0, 1, (4, 4))
        gate = 0.6
        m, _, _ = linear_assignment(cost, gate)
        got = cost[m[:, 0], m[:, 1]].sum() + gate * (4 - len(m))  # gate/2 per free side

        best = min(brute_force_total(cost, gate, p) for p in permutations(range(4)))
        assert got == pytest.approx(best)
