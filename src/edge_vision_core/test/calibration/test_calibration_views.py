"""View parameters (x, y, size, skew), coverage progress and the edge-width blur measure."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core import CameraModel
from edge_vision_core.calibration import (
    TargetConfig,
    TargetDetection,
    ViewParams,
    coverage,
    edge_width,
    make_target,
    view_params,
)
from edge_vision_core.calibration.synthetic import project_points
from edge_vision_core.calibration.views import PARAM_RANGES, view_distance

CAMERA = CameraModel.from_intrinsics(640, 480, 520.0, 515.0, 322.0, 238.0,
                                     [-0.2, 0.05, 0.0, 0.0, 0.0])
BOARD = make_target(TargetConfig(cols=9, rows=6, square_size=0.03))
# Board centre in its own frame (between the corners 0 .. 8 x 0 .. 5 squares).
CENTRE = np.array([4 * 0.03, 2.5 * 0.03, 0.0])


def posed_detection(px: float, py: float, depth: float, tilt_deg: float = 0.0,
                    roll_deg: float = 0.0) -> TargetDetection:
    """A perfect detection: the board centred on pixel (px, py) at ``depth`` metres."""
    camera = CAMERA
    R = cv2.Rodrigues(np.array([np.deg2rad(tilt_deg), 0.0, 0.0]))[0]
    R = cv2.Rodrigues(np.array([0.0, 0.0, np.deg2rad(roll_deg)]))[0] @ R
    ray = np.array([(px - camera.cx) / camera.fx, (py - camera.cy) / camera.fy, 1.0])
    tvec = ray * depth - R @ CENTRE
    rvec = cv2.Rodrigues(R)[0].ravel()
    objp = BOARD.all_object_points()
    pts = project_points(camera, objp, rvec, tvec)
    return TargetDetection(pts, objp, np.arange(len(objp)), (640, 480), True)


def test_position_size_and_skew_follow_the_board():
    centre = view_params(posed_detection(320, 240, 0.6))
    left = view_params(posed_detection(150, 240, 0.6))
    right = view_params(posed_detection(490, 240, 0.6))
    top = view_params(posed_detection(320, 120, 0.6))
    near = view_params(posed_detection(320, 240, 0.4))
    tilted = view_params(posed_detection(320, 240, 0.6, tilt_deg=35))
    rolled = view_params(posed_detection(320, 240, 0.6, roll_deg=30))
    assert centre.x == pytest.approx(0.5, abs=0.05) and centre.y == pytest.approx(0.5, abs=0.05)
    assert left.x < centre.x < right.x
    assert top.y < centre.y
    assert near.size > centre.size
    assert centre.skew < 0.05
    assert tilted.skew > 0.15
    assert rolled.skew < 0.05  # turning the board in its plane is not skew
    for p in (centre, left, right, top, near, tilted):
        assert all(0.0 <= v <= 1.0 for v in p.as_tuple())


def test_size_is_the_square_root_of_the_covered_image_fraction():
    det = posed_detection(320, 240, 0.5)
    xs, ys = det.image_points[:, 0], det.image_points[:, 1]
    approx_area = (xs.max() - xs.min()) * (ys.max() - ys.min())
    assert view_params(det).size == pytest.approx(np.sqrt(approx_area / (640 * 480)), rel=0.05)


@pytest.mark.parametrize('params, expected', [
    # (x, y, size, skew) of the views -> expected progress of x, y, size, skew
    ([(0.5, 0.5, 0.2, 0.0)], (0.0, 0.0, 0.2 / 0.4, 0.0)),
    ([(0.1, 0.2, 0.1, 0.1), (0.9, 0.6, 0.3, 0.25)], (1.0, 0.4 / 0.7, 0.3 / 0.4, 0.25 / 0.5)),
    ([(0.0, 0.0, 0.5, 0.6), (1.0, 1.0, 0.1, 0.0)], (1.0, 1.0, 1.0, 1.0)),
])
def test_coverage_progress_is_the_spread_over_the_target_range(params, expected):
    progress = coverage([ViewParams(*p) for p in params])
    assert progress.views == len(params)
    assert tuple(progress.as_dict().values()) == pytest.approx(expected)
    assert progress.complete == all(e >= 1.0 for e in expected)
    assert len(PARAM_RANGES) == 4


def test_empty_coverage_and_summary_line():
    assert coverage([]).as_dict() == {'x': 0.0, 'y': 0.0, 'size': 0.0, 'skew': 0.0}
    line = coverage([ViewParams(0.1, 0.1, 0.2, 0.1), ViewParams(0.8, 0.5, 0.3, 0.3)],
                    ready=True).summary()
    assert line == '2 views; x 100% y 57% size 75% skew 60%; ready'


def test_view_distance_is_l1():
    assert view_distance(ViewParams(0, 0, 0, 0), ViewParams(0.1, 0.2, 0.3, 0.4)) == \
        pytest.approx(1.0)


@pytest.mark.parametrize('camera, target', [('pinhole', 'chessboard'), ('pinhole', 'charuco')])
def test_edge_width_grows_with_blur_whatever_the_board_size(rendered_views, camera, target):
    views = rendered_views(camera, target, blur=0.0, noise=2.0)
    target_obj = make_target(views.target_config)
    widths = {sigma: [] for sigma in (0.0, 1.5, 3.0)}
    for i, (rvec, tvec) in enumerate(views.poses[:6]):
        pts = views.renderer.project(target_obj, rvec, tvec)
        for sigma in widths:
            image = views.images[i] if sigma == 0 else cv2.GaussianBlur(
                np.array(views.images[i]), (0, 0), sigma)
            widths[sigma].append(edge_width(image, pts))
    sharp, soft, blurred = (np.array(widths[s]) for s in (0.0, 1.5, 3.0))
    assert np.all(sharp < 3.0)        # sharp: about 2 px, at every board size
    assert np.all(soft > sharp)
    assert np.all((blurred > 5.0) & (blurred > soft))


def test_edge_width_of_a_flat_region_is_infinite():
    flat = np.full((100, 100), 90, np.uint8)
    square = np.array([[10, 10], [80, 10], [80, 80], [10, 80]], np.float32)
    assert edge_width(flat, square) == float('inf')
    assert edge_width(flat, square[:2]) == float('inf')  # no area
