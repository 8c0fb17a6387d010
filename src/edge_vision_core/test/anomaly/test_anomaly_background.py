"""The frame's background level: patch scores are measured above a quantile of the frame's
own scores, capped at the level of the normal calibration frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core.anomaly import AnomalyDetector, load_model_file
from edge_vision_core.anomaly.postprocess import background_level


def test_background_level_is_a_quantile_of_the_valid_cells_only():
    scores = np.arange(16, dtype=np.float32).reshape(4, 4)
    valid = np.zeros((4, 4), bool)
    valid[1:3, 1:3] = True  # 5, 6, 9, 10
    assert background_level(scores, valid, 0.0) == 5.0
    assert background_level(scores, valid, 0.5) == pytest.approx(7.5)
    assert background_level(scores, np.ones((4, 4), bool), 0.9) == pytest.approx(13.5)
    assert background_level(scores, np.zeros((4, 4), bool), 0.9) == 0.0


def test_the_model_records_its_background_and_old_models_score_without_it(
        brick_detector, small_bench, read_folder, make_detector, tmp_path):
    header = brick_detector.model_info
    assert header.background_quantile == pytest.approx(0.9)
    cal = header.calibration['scores']
    assert header.background_cap > 0 and len(cal) == header.calibration['num_images']
    # a model fitted without it stores 0 and scores like a model file of before the field
    det = make_detector(background_quantile=0.0)
    det.fit(small_bench / 'brick' / 'train' / 'good')
    path = det.save(tmp_path / 'plain.npz')
    assert load_model_file(path)[0].background_quantile == 0.0
    images = read_folder(small_bench / 'brick' / 'test' / 'hole')[:2]
    with AnomalyDetector.from_file(path) as loaded:
        for image in images:
            a, b = det.score(image), loaded.score(image)
            assert a.score == pytest.approx(b.score, rel=1e-5)
            assert a.heatmap.min() >= 0  # plain distances
        # with the background the same images score above their own background level
        for image in images:
            shifted = brick_detector.score(image)
            assert shifted.score >= 0 and shifted.heatmap.min() < 0


@pytest.mark.parametrize('frame', ['covered', 'other material'])
def test_a_frame_anomalous_all_over_is_still_flagged(brick_detector, small_bench, read_folder,
                                                     frame):
    """A covered lens (one flat grey) or another material fills the whole frame: every patch
    is far from the bank, so the frame's own background level is far above the normal
    frames'. Capped at the calibration level, it does not hide the anomaly (uncapped, the
    flat frame would score its peak minus itself: 0)."""
    image = (np.full((128, 128, 3), 90, np.uint8) if frame == 'covered' else
             read_folder(small_bench / 'coffee' / 'test' / 'good')[0])
    result = brick_detector.score(image)
    assert result.is_anomalous, (result.score, result.threshold)
    assert result.score > 2 * brick_detector.model_info.threshold


def test_a_normal_frame_changed_all_over_counts_less_than_a_local_defect(make_detector,
                                                                          small_bench,
                                                                          read_folder):
    """A normal frame blurred all over against a normal frame with a small defect: with the
    background level the defect outscores the blurred frame by a wider margin (relative to
    each model's threshold) than with plain distances."""
    good = read_folder(small_bench / 'brick' / 'test' / 'good')[1]
    blurred = cv2.GaussianBlur(good, (0, 0), 1.2)
    defect = read_folder(small_bench / 'brick' / 'test' / 'scratch')[0]
    margins = {}
    for quantile in (0.0, 0.9):
        det = make_detector(background_quantile=quantile)
        det.fit(small_bench / 'brick' / 'train' / 'good')
        margins[quantile] = (det.score(defect).score - det.score(blurred).score) / det.threshold
    assert margins[0.9] > margins[0.0], margins

