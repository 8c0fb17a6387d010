"""Heatmap, regions, border rings and threshold calibration (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ConfigError
from edge_vision_core.anomaly import ANOMALY_CLASS_ID, calibrate_threshold, confidence
from edge_vision_core.anomaly.embedding import valid_cells
from edge_vision_core.anomaly.postprocess import (
    border_correction,
    border_rings,
    find_regions,
    score_map,
    to_image,
)
from edge_vision_core.inference.letterbox import compute_letterbox


def test_score_map_puts_a_hot_cell_where_it_is_in_the_image():
    # 640x480 image letterboxed into 320x320: resized 320x240, 40 px of padding top/bottom
    transform = compute_letterbox((640, 480), (320, 320))
    assert (transform.pad_x, transform.pad_y) == (0, 40)
    patches = np.zeros((40, 40), np.float32)
    patches[20, 10] = 1.0  # model-input cell centre (84, 164) -> image (168, 248)
    smoothed = score_map(patches, 8, transform, sigma=2.0)
    assert smoothed.shape == (240, 320)
    v, u = np.unravel_index(np.argmax(smoothed), smoothed.shape)
    assert abs(u - 84) <= 4 and abs(v + 40 - 164) <= 4
    heat = to_image(smoothed, transform)
    assert heat.shape == (480, 640)
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(x - 168) <= 8 and abs(y - 248) <= 8


def test_regions_are_boxes_in_image_pixels_sorted_by_score():
    transform = compute_letterbox((640, 480), (320, 320))
    smoothed = np.zeros((240, 320), np.float32)
    smoothed[20:40, 100:150] = 3.0   # image box [200, 40, 300, 80]
    smoothed[200:210, 10:20] = 5.0   # image box [20, 400, 40, 420]
    smoothed[0:2, 0:2] = 4.0         # 2x2 model px = 16 image px^2: below min_area
    regions = find_regions(smoothed, transform, threshold=1.0, min_area=50.0)
    assert len(regions) == 2
    np.testing.assert_allclose(regions.boxes, [[20, 400, 40, 420], [200, 40, 300, 80]])
    assert list(regions.class_ids) == [ANOMALY_CLASS_ID] * 2
    np.testing.assert_allclose(regions.scores, [5 / 6, 3 / 4], rtol=1e-6)
    assert len(find_regions(smoothed, transform, 1.0, max_regions=1)) == 1
    assert len(find_regions(smoothed, transform, 10.0)) == 0


def test_confidence_is_one_half_at_the_threshold():
    assert confidence(2.0, 2.0) == pytest.approx(0.5)
    assert confidence(0.0, 2.0) == 0.0
    assert 0.5 < confidence(3.0, 2.0) < 1.0
    np.testing.assert_allclose(confidence(np.array([1.0, 3.0]), 1.0), [0.5, 0.75])


def test_border_rings_count_cells_from_the_image_edge():
    transform = compute_letterbox((64, 32), (64, 64))  # 16 px of padding top and bottom
    valid = valid_cells(transform, (8, 8), 8)
    assert valid[2:6].all() and not valid[:2].any() and not valid[6:].any()
    rings = border_rings(valid, 3)
    assert rings[2].tolist() == [0] * 8
    assert rings[3].tolist() == [0, 1, 1, 1, 1, 1, 1, 0]
    assert (rings[~valid] == 3).all()
    assert border_rings(np.ones((9, 9), bool), 3)[4, 4] == 3


def test_border_correction_lowers_edge_rings_to_the_interior_level():
    rings = border_rings(np.ones((20, 20), bool), 2)
    rng = np.random.default_rng(0)
    scores = [np.where(rings == 0, 2.0, 1.0) * rng.uniform(0.9, 1.0, (20, 20))
              for _ in range(3)]
    factors = border_correction(scores, [rings] * 3, 2)
    assert factors[2] == 1.0 and factors[1] == pytest.approx(1.0, abs=0.05)
    assert factors[0] == pytest.approx(0.5, abs=0.05)
    corrected = scores[0] * factors[rings]
    assert corrected[rings == 0].max() < 1.1 * corrected[rings == 2].max()


def test_quantile_threshold():
    scores = np.arange(101, dtype=float)
    assert calibrate_threshold(scores, 'quantile', quantile=0.9) == pytest.approx(90.0)
    assert calibrate_threshold([3.0], 'quantile', quantile=0.99) == 3.0


@pytest.mark.parametrize('rate', [0.1, 0.02])
def test_false_alarm_rate_threshold_on_gumbel_scores(rate):
    # frame scores are maxima: Gumbel-distributed scores, calibrated on 40, judged on 20,000
    rng = np.random.default_rng(1)
    calibration = rng.gumbel(5.0, 0.5, 40)
    held_out = rng.gumbel(5.0, 0.5, 20000)
    threshold = calibrate_threshold(calibration, 'false_alarm_rate', false_alarm_rate=rate)
    measured = float((held_out > threshold).mean())
    assert rate / 2.5 < measured < rate * 2.5


def test_false_alarm_rate_below_the_sample_resolution_stays_above_every_sample():
    scores = [1.0, 1.1, 1.2]
    assert calibrate_threshold(scores, 'false_alarm_rate', false_alarm_rate=1e-4) >= 1.2
    assert calibrate_threshold([2.0, 2.0], 'false_alarm_rate', false_alarm_rate=0.1) == 2.0


@pytest.mark.parametrize('kwargs, message', [
    ({'normal_scores': []}, 'at least one'),
    ({'normal_scores': [1.0, np.inf]}, 'finite'),
    ({'normal_scores': [1.0], 'mode': 'median'}, 'mode'),
    ({'normal_scores': [1.0], 'quantile': 0.0}, 'quantile'),
    ({'normal_scores': [1.0], 'mode': 'false_alarm_rate', 'false_alarm_rate': 1.0},
     'false_alarm_rate'),
])
def test_threshold_calibration_rejects_bad_input(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        calibrate_threshold(**kwargs)
