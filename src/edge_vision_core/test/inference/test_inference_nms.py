"""Class-aware NMS: table cases, NumPy vs OpenCV agreement, and a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ConfigError
from edge_vision_core.inference.nms import batched_nms, nms_numpy, nms_opencv

METHODS = ['numpy', 'opencv']

# Two 10x10 boxes overlapping by half their width: IoU = 50 / 150 = 1/3.
A, B_THIRD = [0, 0, 10, 10], [5, 0, 15, 10]
# IoU exactly 0.5: [0,0,10,10] and [0,0,10,20]... no: 100 / 200 = 0.5
B_HALF = [0, 0, 10, 20]
FAR = [100, 100, 110, 110]

CASES = [
    # id, boxes, scores, classes, iou threshold, agnostic, expected kept indices (by score)
    ('empty', [], [], [], 0.5, False, []),
    ('single', [A], [0.9], [0], 0.5, False, [0]),
    ('overlap above threshold', [A, B_THIRD], [0.9, 0.8], [0, 0], 0.3, False, [0]),
    ('overlap below threshold', [A, B_THIRD], [0.9, 0.8], [0, 0], 0.4, False, [0, 1]),
    ('iou equal to threshold is kept', [A, B_HALF], [0.9, 0.8], [0, 0], 0.5, False, [0, 1]),
    ('lower score first in input', [A, B_THIRD], [0.3, 0.8], [0, 0], 0.3, False, [1]),
    ('identical boxes, two classes', [A, A], [0.9, 0.8], [0, 1], 0.5, False, [0, 1]),
    ('identical boxes, agnostic', [A, A], [0.9, 0.8], [0, 1], 0.5, True, [0]),
    ('tie keeps the lower index', [A, A], [0.5, 0.5], [3, 3], 0.5, False, [0]),
    ('chain: suppressed box does not suppress', [[0, 0, 10, 10], [6, 0, 16, 10],
                                                 [12, 0, 22, 10]],
     [0.9, 0.8, 0.7], [0, 0, 0], 0.2, False, [0, 2]),
    ('far boxes survive', [A, FAR, B_THIRD], [0.9, 0.85, 0.8], [0, 0, 0], 0.3, False, [0, 1]),
]


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize(('boxes', 'scores', 'classes', 'iou', 'agnostic', 'expected'),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_table(method, boxes, scores, classes, iou, agnostic, expected):
    keep = batched_nms(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores),
                       np.array(classes, np.int32), iou, class_agnostic=agnostic, method=method)
    assert keep.tolist() == expected


def _reference(boxes, scores, classes, iou_threshold):
    """Plain-Python greedy NMS per class, written independently of the library."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        ok = True
        for j in kept:
            if classes[i] != classes[j]:
                continue
            ix = max(0.0, min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]))
            iy = max(0.0, min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]))
            inter = ix * iy
            area_i = (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])
            area_j = (boxes[j][2] - boxes[j][0]) * (boxes[j][3] - boxes[j][1])
            if inter / (area_i + area_j - inter) > iou_threshold:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept


@pytest.mark.parametrize('seed', range(5))
@pytest.mark.parametrize('method', METHODS)
def test_matches_reference_on_random_boxes(seed, method):
    rng = np.random.default_rng(seed)
    n = 150
    xy = rng.uniform(0, 200, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (n, 2))], axis=1)
    scores = rng.uniform(0, 1, n).round(3)  # rounded: some ties
    classes = rng.integers(0, 3, n)
    expected = _reference(boxes.tolist(), scores.tolist(), classes.tolist(), 0.45)
    keep = batched_nms(boxes, scores, classes, 0.45, method=method)
    assert keep.tolist() == expected


def test_max_keep_and_the_two_single_class_functions_agree():
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 300, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (400, 2))], axis=1)
    scores = rng.uniform(0, 1, 400)
    a, b = nms_numpy(boxes, scores, 0.5), nms_opencv(boxes, scores, 0.5)
    assert a.tolist() == b.tolist()
    assert nms_numpy(boxes, scores, 0.5, max_keep=5).tolist() == a[:5].tolist()
    assert nms_opencv(boxes, scores, 0.5, max_keep=5).tolist() == a[:5].tolist()


def test_bad_arguments():
    with pytest.raises(ConfigError, match='unknown NMS method'):
        batched_nms(np.zeros((1, 4)), np.ones(1), np.zeros(1), 0.5, method='fast')
    with pytest.raises(ConfigError, match=r'\[0, 1\]'):
        batched_nms(np.zeros((1, 4)), np.ones(1), np.zeros(1), 1.5)
