"""Exact-stamp pairing and the drawing helpers."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ConfigError, DataError, Detections
from edge_vision_core.sync import ExactTimeMatcher
from edge_vision_core.viz import TrailHistory, blend_heatmap, color_for, draw_detections, draw_hud


def test_pairs_in_any_order_and_drops_what_can_no_longer_match():
    m = ExactTimeMatcher(capacity=3)
    assert m.add_a(1, 'img1') is None
    assert m.add_b(2, 'det2') is None
    assert m.add_a(2, 'img2') == ('img2', 'det2')
    assert m.dropped == 1  # img1 is older than the matched pair
    assert m.add_b(3, 'det3') is None and m.add_a(3, 'img3') == ('img3', 'det3')
    for s in range(10, 15):
        m.add_a(s, s)
    assert m.dropped == 3  # capacity 3: two oldest pushed out... plus img1
    assert m.matched == 2


def test_unmatched_b_items_are_handed_back_oldest_first_before_the_pair():
    events = []
    m = ExactTimeMatcher(capacity=2, on_drop_b=lambda stamp, item: events.append(item))
    m.add_b(1, 'det1')
    m.add_b(2, 'det2')
    m.add_b(3, 'det3')  # capacity 2: det1 pushed out
    assert events == ['det1']
    pair = m.add_a(3, 'img3')  # det2 is older than the pair: can never match
    events.append(pair)
    assert events == ['det1', 'det2', ('img3', 'det3')]
    assert (m.dropped_a, m.dropped_b, m.matched) == (0, 2, 1)
    m.add_b(4, 'det4')
    assert m.take_b() == [(4, 'det4')] and m.waiting == 0 and m.dropped_b == 2


def test_trails_follow_track_centres_and_forget_old_tracks():
    trails = TrailHistory(length=3, max_age=2)
    for i in range(5):
        trails.update(Detections([[i, 0, i + 2, 2]], [1], [0], track_ids=[7]))
    assert trails.trail(7) == [(3, 1), (4, 1), (5, 1)]
    for _ in range(3):
        trails.update(Detections.empty(with_track_ids=True))
    assert trails.trail(7) == []


def test_draw_detections_colours_boxes_by_track_and_skips_invalid_boxes():
    img = np.zeros((100, 100, 3), np.uint8)
    dets = Detections([[10, 10, 50, 50], [np.nan, 0, 5, 5]], [0.8, 0.9], [0, 1],
                      track_ids=[3, 4])
    draw_detections(img, dets, ['person', 'car'])
    assert tuple(img[30, 10]) == color_for(3)
    assert img[70:, 60:].max() == 0
    with pytest.raises(DataError, match='bgr8'):
        draw_detections(np.zeros((4, 4), np.uint8), dets)


def test_heatmap_and_hud():
    img = np.full((40, 60, 3), 100, np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[:2] = 1.0
    blend_heatmap(img, heat, alpha=0.5)
    assert not np.array_equal(img[0, 0], img[-1, -1])
    with pytest.raises(DataError, match='heatmap'):
        blend_heatmap(img, np.zeros(3), 0.5)
    draw_hud(img, ['10 fps'])
    assert img[:5, :5].mean() < 100


def test_box_outlines_3d_project_back_onto_the_box_corners():
    from edge_vision_core import CameraModel
    from edge_vision_core.viz import box_outlines_3d

    cam = CameraModel.from_intrinsics(640, 480, 500.0, 505.0, 320.0, 240.0)
    boxes = np.array([[100.0, 50.0, 220.0, 300.0], [0.0, 0.0, 640.0, 480.0]])
    outlines = box_outlines_3d(boxes, cam, 4.0)
    assert outlines.shape == (2, 5, 3)
    assert np.all(outlines[..., 2] == 4.0)
    np.testing.assert_array_equal(outlines[:, 0], outlines[:, 4])  # closed
    projected = outlines @ cam.K.T
    pixels = projected[..., :2] / projected[..., 2:]
    np.testing.assert_allclose(pixels[0, :4], [[100, 50], [220, 50], [220, 300], [100, 300]],
                               atol=1e-9)
    with pytest.raises(ConfigError, match='depth'):
        box_outlines_3d(boxes, cam, 0.0)
