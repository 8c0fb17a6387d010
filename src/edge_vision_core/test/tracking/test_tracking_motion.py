"""Camera-motion compensation: the estimator on shifted real images, and the tracker on a pan."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ConfigError, Detections
from edge_vision_core.tracking import (
    ByteTrackConfig,
    ByteTracker,
    CameraMotionConfig,
    CameraMotionEstimator,
)

cv2 = pytest.importorskip('cv2')
skimage_data = pytest.importorskip('skimage.data')

VIEW_W, VIEW_H = 320, 240


@pytest.fixture(scope='module')
def scene() -> np.ndarray:
    """A real photograph (scikit-image's astronaut, shipped in the wheel) as BGR."""
    return np.ascontiguousarray(skimage_data.astronaut()[:, :, ::-1])


def view(scene: np.ndarray, x: float, y: float) -> np.ndarray:
    """The camera image when its top-left corner is at (x, y) of the scene (sub-pixel)."""
    m = np.array([[1.0, 0.0, -x], [0.0, 1.0, -y]])
    return cv2.warpAffine(scene, m, (VIEW_W, VIEW_H), flags=cv2.INTER_LINEAR)


@pytest.mark.parametrize('method', ['sparse_flow', 'ecc'])
@pytest.mark.parametrize('shift', [(0.0, 0.0), (12.0, -7.0), (-25.5, 3.25)])
def test_estimator_measures_a_camera_shift(scene, method, shift):
    est = CameraMotionEstimator(CameraMotionConfig(method=method))
    first = est.estimate(view(scene, 100, 150))
    np.testing.assert_allclose(first, np.eye(2, 3))  # nothing to compare with yet
    warp = est.estimate(view(scene, 100 + shift[0], 150 + shift[1]))
    # the camera moved by +shift, so the scene moves by -shift in the image
    np.testing.assert_allclose(warp[:, :2], np.eye(2), atol=0.01)
    np.testing.assert_allclose(warp[:, 2], [-shift[0], -shift[1]], atol=0.5)
    assert est.failures == 0


def test_estimator_ignores_a_moving_object_inside_the_excluded_boxes(scene):
    est = CameraMotionEstimator(CameraMotionConfig(method='sparse_flow', downscale=1))
    patch = scene[:120, :120].copy()
    first = view(scene, 100, 150)
    box = np.array([[80.0, 40.0, 240.0, 200.0]])
    first[60:180, 100:220] = patch  # a textured object
    est.estimate(first, box)
    second = view(scene, 106, 150)  # camera pans 6 px right ...
    second[60:180, 60:180] = patch  # ... while the object jumps 40 px left
    warp = est.estimate(second, box)
    np.testing.assert_allclose(warp[:, 2], [-6.0, 0.0], atol=0.5)


def test_features_inside_the_excluded_boxes_are_not_used(scene):
    """Texture only inside the box: measurable without the box, unknown with it."""
    textured = np.zeros((VIEW_H, VIEW_W, 3), np.uint8)
    moved = textured.copy()
    textured[50:170, 100:220] = scene[200:320, 200:320]
    moved[50:170, 110:230] = scene[200:320, 200:320]
    box = np.array([[90.0, 40.0, 240.0, 180.0]])
    for boxes, expect_failure in [(None, False), (box, True)]:
        est = CameraMotionEstimator(CameraMotionConfig(downscale=1))
        est.estimate(textured, boxes)
        warp = est.estimate(moved, boxes)
        assert (est.failures == 1) == expect_failure
        assert warp[0, 2] == pytest.approx(0.0 if expect_failure else 10.0, abs=0.5)


def test_estimator_reports_failures_and_recovers(scene):
    est = CameraMotionEstimator()
    est.estimate(np.zeros((VIEW_H, VIEW_W), np.uint8))
    flat = est.estimate(np.zeros((VIEW_H, VIEW_W), np.uint8))  # no texture: no corners
    np.testing.assert_allclose(flat, np.eye(2, 3))
    assert est.failures == 1
    est.estimate(np.zeros((100, 100), np.uint8))  # size change
    assert est.failures == 2
    est.reset()
    est.estimate(view(scene, 0, 0))
    assert est.estimate(view(scene, 5, 0))[0, 2] == pytest.approx(-5.0, abs=0.5)


def test_estimator_config_is_validated():
    with pytest.raises(ConfigError, match='method must be one of'):
        CameraMotionConfig(method='orb')
    with pytest.raises(ConfigError, match='downscale must be in'):
        CameraMotionConfig(downscale=0)


# A jerky pan: camera offsets (top-left corner in the scene) per frame. Jumps of 30-40 px
# against 40 px wide objects leave no overlap with a constant-velocity prediction.
PAN = [(100, 150)] * 4 + [(135, 150), (170, 155), (170, 155), (130, 150), (95, 145),
                          (95, 145), (130, 150), (165, 150), (130, 150), (130, 150)]
# objects standing still in the scene: (x, y) of their top-left corner, 40 x 80 px
OBJECTS = [(200, 200), (300, 230), (380, 180)]


def run_pan(scene: np.ndarray, camera_motion: str) -> list[list[int]]:
    tracker = ByteTracker(ByteTrackConfig(camera_motion=camera_motion, frame_rate=10.0))
    history = []
    for cx, cy in PAN:
        boxes = np.array([[ox - cx, oy - cy, ox - cx + 40, oy - cy + 80] for ox, oy in OBJECTS],
                         np.float32)
        out = tracker.update(Detections(boxes, np.full(3, 0.9), np.zeros(3)),
                             image=view(scene, cx, cy))
        history.append(sorted(out.track_ids.tolist()))
    return history


def test_camera_pan_switches_ids_without_compensation(scene):
    history = run_pan(scene, 'none')
    assert {i for ids in history for i in ids} != {1, 2, 3}


@pytest.mark.parametrize('method', ['sparse_flow', 'ecc'])
def test_camera_pan_keeps_ids_with_compensation(scene, method):
    history = run_pan(scene, method)
    assert all(ids == [1, 2, 3] for ids in history), history


def test_compensation_without_an_image_warns_once_and_still_tracks(caplog):
    tracker = ByteTracker(ByteTrackConfig(camera_motion='sparse_flow'))
    dets = Detections([[10, 10, 50, 90]], [0.9], [0])
    with caplog.at_level('WARNING'):
        for _ in range(3):
            out = tracker.update(dets)
    assert out.track_ids.tolist() == [1]
    assert caplog.text.count('got no image') == 1
