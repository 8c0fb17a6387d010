"""AP / mAP / agreement on hand-made cases whose values are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_vision_core.errors import ConfigError, DataError
from edge_vision_core.eval.detection import (
    average_precision,
    box_iou,
    detection_agreement,
    match_detections,
    mean_average_precision,
)
from edge_vision_core.types import Detections

A = [0, 0, 10, 10]
B = [20, 20, 30, 30]
C = [50, 50, 60, 60]
FAR = [100, 100, 110, 110]


def dets(boxes: list[list[float]], scores: list[float] | None = None,
         classes: list[int] | None = None) -> Detections:
    n = len(boxes)
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4),
                      np.asarray(scores if scores is not None else [1.0] * n, np.float32),
                      np.asarray(classes if classes is not None else [0] * n, np.int32))


@pytest.mark.parametrize(('a', 'b', 'expected'), [
    ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7),       # overlap 1x1, union 4 + 4 - 1
    ([0, 0, 10, 10], [0, 0, 10, 5], 0.5),      # half of A
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),    # touching edges
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([5, 5, 5, 9], [0, 0, 10, 10], 0.0),       # zero-area box
])
def test_box_iou_hand_values(a, b, expected):
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


# Each case: references, predictions (boxes, scores, classes) and the mAP worked out by hand.
CASES = {
    # every reference found once, ranked first: precision 1 up to recall 1
    'perfect': ([A, B], [0, 0], [A, B], [0.9, 0.8], [0, 0], 1.0),
    # one of two references found: recall stops at 1/2 with precision 1 -> 0.5
    'missed': ([A, B], [0, 0], [A], [0.9], [0], 0.5),
    # A, duplicate of A, B: TP FP TP -> recall 1/2 @ P 1, recall 1 @ P 2/3 -> 1/2 + 1/3
    'duplicated': ([A, B], [0, 0], [A, A, B], [0.9, 0.8, 0.7], [0, 0, 0], 0.5 + 1 / 3),
    # the right box with the wrong class never matches: AP of class 0 is 0
    'wrong_class': ([A], [0], [A], [0.9], [1], 0.0),
    # a false positive ranked first: P = 0, 1/2, 2/3 at R = 0, 1/2, 1 -> envelope 2/3 -> 2/3
    'fp_ranked_first': ([A, B], [0, 0], [FAR, A, B], [0.9, 0.8, 0.7], [0, 0, 0], 2 / 3),
    # the same false positive ranked last: recall 1 reached at precision 1 -> 1
    'fp_ranked_last': ([A, B], [0, 0], [A, B, FAR], [0.9, 0.8, 0.7], [0, 0, 0], 1.0),
    # two classes: class 0 perfect (1), class 1 missed (0) -> mean 0.5
    'two_classes': ([A, B], [0, 1], [A], [0.9], [0], 0.5),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_map_hand_cases(case):
    ref_boxes, ref_cls, pred_boxes, pred_scores, pred_cls, expected = CASES[case]
    ref = dets(ref_boxes, classes=ref_cls)
    pred = dets(pred_boxes, pred_scores, pred_cls)
    value, per_class = mean_average_precision([ref], [pred])
    assert value == pytest.approx(expected)
    assert set(per_class) == set(ref_cls)


def test_map_pools_the_ranking_over_images():
    # image 1: A found with 0.6; image 2: a false positive with 0.9 and B with 0.5.
    # ranking over both images: FP (0.9), A (0.6), B (0.5) -> same as fp_ranked_first: 2/3
    refs = [dets([A]), dets([B])]
    preds = [dets([A], [0.6]), dets([FAR, B], [0.9, 0.5])]
    assert mean_average_precision(refs, preds)[0] == pytest.approx(2 / 3)


def test_iou_threshold_is_inclusive():
    ref, pred = dets([[0, 0, 10, 10]]), dets([[0, 0, 10, 5]])  # IoU exactly 0.5
    assert mean_average_precision([ref], [pred], 0.5)[0] == 1.0
    assert mean_average_precision([ref], [pred], 0.51)[0] == 0.0


def test_match_takes_best_unmatched_box_in_score_order():
    # the high-score prediction overlaps both references; it takes the closer one (B2), the
    # next prediction then gets the remaining one.
    ref = dets([[0, 0, 10, 10], [2, 0, 12, 10]])
    pred = dets([[0, 0, 10, 10], [1, 0, 11, 10]], [0.5, 0.9])
    p_idx, r_idx, ious = match_detections(ref, pred)
    assert p_idx.tolist() == [1, 0]
    # prediction 1 ([1..11]) has IoU 9/11 with both: argmax keeps the first (reference 0)
    assert r_idx.tolist() == [0, 1]
    assert ious[0] == pytest.approx(9 / 11)


def test_average_precision_edge_cases():
    assert math.isnan(average_precision(np.zeros(0), np.zeros(0, bool), 0))
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    with pytest.raises(DataError, match='3 true_positive flags'):
        average_precision(np.zeros(2), np.zeros(3, bool), 1)


def test_no_reference_boxes_gives_nan():
    value, per_class = mean_average_precision([Detections.empty()], [dets([A], [0.9])])
    assert math.isnan(value) and per_class == {}


def test_agreement_operating_point():
    # reference A, B; variant: A shifted by 1 px (IoU 90/110), B at score 0.2 (below the
    # operating threshold 0.3), and a false positive at 0.4.
    ref = dets([A, B])
    pred = dets([[1, 0, 11, 10], B, FAR], [0.9, 0.2, 0.4])
    result = detection_agreement([ref], [pred], score_threshold=0.3)
    # ranking: A' TP, FAR FP, B TP -> R 1/2 @ P 1, R 1 @ P 2/3 -> 1/2 + 1/3
    assert result.map50 == pytest.approx(0.5 + 1 / 3)
    assert result.matched == 1 and result.num_predicted == 2 and result.num_reference == 2
    assert result.precision == pytest.approx(0.5) and result.recall == pytest.approx(0.5)
    assert result.mean_iou == pytest.approx(90 / 110)
    assert set(result.as_dict()) >= {'map50', 'mean_iou', 'precision', 'recall'}


@pytest.mark.parametrize('bad', [
    {'iou_threshold': 0.0}, {'iou_threshold': 1.5}, {'score_threshold': -0.1}])
def test_agreement_rejects_bad_settings(bad):
    with pytest.raises(ConfigError):
        detection_agreement([dets([A])], [dets([A])], **bad)


def test_image_counts_must_match():
    with pytest.raises(DataError, match='one Detections per image'):
        mean_average_precision([dets([A])], [])
