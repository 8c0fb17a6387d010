"""Undistortion: distorted renders of a straight grid come out straight; maps are cached."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core import CalibrationError, CameraModel, ConfigError, RegionOfInterest
from edge_vision_core.imaging import Undistorter, psnr

W, H = 640, 480
PLUMB_BOB = CameraModel.from_intrinsics(W, H, 420.0, 415.0, 322.0, 236.0,
                                        [-0.32, 0.12, 0.0015, -0.001, -0.02])
RATIONAL = CameraModel.from_intrinsics(W, H, 420.0, 415.0, 322.0, 236.0,
                                       [-0.3, 0.08, 0.001, 0.0, 0.0, 0.02, 0.0, 0.01],
                                       'rational_polynomial')
FISHEYE = CameraModel.from_intrinsics(W, H, 230.0, 230.0, 318.0, 242.0,
                                      [0.08, -0.02, 0.004, -0.001], 'equidistant')
MODELS = {'plumb_bob': PLUMB_BOB, 'rational_polynomial': RATIONAL, 'equidistant': FISHEYE}


def _grid(step: int = 40, vertical: bool = True) -> np.ndarray:
    """An ideal (pinhole) render: bright anti-aliased lines every ``step`` pixels."""
    img = np.zeros((H, W), np.float32)
    img[step // 2::step, :] = 1.0
    if vertical:
        img[:, step // 2::step] = 1.0
    return (cv2.GaussianBlur(img, (0, 0), 1.2) * 600).clip(0, 255).astype(np.uint8)


def _render_distorted(ideal: np.ndarray, camera: CameraModel) -> np.ndarray:
    """What ``camera`` sees of a scene that a distortion-free camera K sees as ``ideal``.

    Each raw pixel is traced back to its ideal position with the *inverse* distortion model
    (``undistortPoints``, iterated to convergence), the opposite direction of the rectification
    maps under test, and ``ideal`` is sampled there.
    """
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    pts = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    if camera.is_fisheye:
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
        try:
            ideal_pts = cv2.fisheye.undistortPoints(pts, camera.K, camera.D, P=camera.K,
                                                    criteria=crit)
        except cv2.error:  # OpenCV < 4.6 (Humble's 4.5) has no criteria: its default then
            ideal_pts = cv2.fisheye.undistortPoints(pts, camera.K, camera.D, P=camera.K)
    else:
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
        ideal_pts = cv2.undistortPointsIter(pts, camera.K, camera.D, None, camera.K, crit)
    maps = ideal_pts.reshape(H, W, 2).astype(np.float32)
    return cv2.remap(ideal, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT)


def _horizontal_line_curvature(img: np.ndarray, step: int = 40) -> float:
    """Largest deviation (px) of a horizontal line of :func:`_grid` from its straight fit.

    Each line's row is the intensity centroid, per column, in a band around it, over the
    central 60 % of the width and 70 % of the height (valid for every model rectified).
    """
    worst = 0.0
    cols = np.arange(int(W * 0.2), int(W * 0.8))
    rows = np.arange(H, dtype=np.float64)[:, None]
    for y0 in range(step // 2 + step, H - step, step):
        band = slice(y0 - step // 2 + 2, y0 + step // 2 - 2)
        weights = img[band, cols].astype(np.float64)
        keep = weights.sum(0) > 0  # a curved line may leave the band
        centroid = (weights[:, keep] * rows[band]).sum(0) / weights[:, keep].sum(0)
        fit = np.polyval(np.polyfit(cols[keep], centroid, 1), cols[keep])
        worst = max(worst, float(np.abs(centroid - fit).max()))
    return worst


@pytest.mark.parametrize('model', list(MODELS))
def test_a_distorted_grid_becomes_straight_again(model):
    camera = MODELS[model]
    lines = _grid(vertical=False)
    distorted_lines = _render_distorted(lines, camera)
    assert _horizontal_line_curvature(lines) < 0.01  # the measure itself is exact
    assert _horizontal_line_curvature(distorted_lines) > 3.0  # the distortion is real
    # bilinear resampling biases a thin line's centroid by its sub-pixel phase (< ~0.1 px)
    assert _horizontal_line_curvature(Undistorter().rectify(distorted_lines, camera)[0]) < 0.15
    ideal = _grid()
    distorted = _render_distorted(ideal, camera)
    rect, rect_model = Undistorter().rectify(distorted, camera)
    # ... and the rectified image is the ideal render (inner region, away from black borders)
    inner = (slice(60, H - 60), slice(80, W - 80))
    assert psnr(ideal[inner], rect[inner]) > psnr(ideal[inner], distorted[inner]) + 15.0
    assert psnr(ideal[inner], rect[inner]) > 30.0
    np.testing.assert_allclose(rect_model.K, camera.K)  # alpha=-1: the camera_info P (= K)


@pytest.mark.parametrize('model', list(MODELS))
@pytest.mark.parametrize('alpha', [-1.0, 0.0, 0.5, 1.0])
def test_the_rectified_model_describes_the_rectified_image(model, alpha):
    """A blob rendered where the raw camera sees a 3-D point lands where the rectified model
    (pinhole K' = P', D = 0) projects the same point, to a small fraction of a pixel."""
    camera = MODELS[model]
    rng = np.random.default_rng(7)
    xy = rng.uniform(-0.55, 0.55, (12, 2)) * np.array([1.0, 0.75])
    points = np.hstack([xy, np.ones((12, 1))])
    if camera.is_fisheye:
        raw, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3),
                                           camera.K, camera.D)
    else:
        raw, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), camera.K, camera.D)
    und = Undistorter(alpha=alpha)
    rect_model = und.rectified_camera(camera)
    assert not np.any(rect_model.D) and rect_model.distortion_model == 'plumb_bob'
    np.testing.assert_allclose(rect_model.K, rect_model.P[:, :3])
    np.testing.assert_allclose(rect_model.R, np.eye(3))
    projected = (rect_model.K @ points.T).T
    projected = projected[:, :2] / projected[:, 2:]
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float64)
    checked = 0
    for (x, y), expected in zip(raw.reshape(-1, 2), projected, strict=True):
        blob = np.exp(-((gx - x) ** 2 + (gy - y) ** 2) / (2 * 1.5 ** 2)) * 250
        rect, _ = und.rectify(blob.astype(np.uint8), camera)
        weights = rect.astype(np.float64)
        if not (10 < expected[0] < W - 10 and 10 < expected[1] < H - 10):
            continue  # outside the rectified view
        found = np.array([(gx * weights).sum(), (gy * weights).sum()]) / weights.sum()
        assert np.hypot(*(found - expected)) < 0.1
        checked += 1
    assert checked >= 8
    assert und.maps_built == 1


def test_maps_are_built_once_per_calibration():
    und = Undistorter()
    img = np.zeros((H, W, 3), np.uint8)
    same = CameraModel.from_intrinsics(W, H, 420.0, 415.0, 322.0, 236.0,
                                       PLUMB_BOB.D.tolist())  # equal values, new object
    for camera in (PLUMB_BOB, same, PLUMB_BOB):
        und.rectify(img, camera)
    assert und.maps_built == 1
    und.rectify(img, RATIONAL)
    und.rectified_camera(RATIONAL)
    assert und.maps_built == 2
    und.reset()
    und.rectify(img, RATIONAL)
    assert und.maps_built == 1


def test_no_distortion_is_a_no_op_and_stereo_p_is_kept():
    K = np.array([[400.0, 0, 320], [0, 400, 240], [0, 0, 1]])
    P = np.hstack([K, np.array([[-40.0], [0], [0]])])  # right camera of a stereo pair
    camera = CameraModel(width=W, height=H, K=K, D=np.zeros(5), R=np.eye(3), P=P)
    img = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    rect, model = Undistorter().rectify(img, camera)
    assert rect is img
    np.testing.assert_array_equal(model.P, P)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.float32])
def test_rectify_keeps_dtype_and_channels(dtype):
    img = np.full((H, W, 3), 7, dtype)
    rect, _ = Undistorter(interpolation='cubic').rectify(img, PLUMB_BOB)
    assert rect.dtype == dtype and rect.shape == img.shape


@pytest.mark.parametrize(('camera', 'shape', 'match'), [
    (PLUMB_BOB, (H // 2, W // 2), 'image is 320x240 but its camera_info is for 640x480'),
    (CameraModel.uncalibrated(W, H), (H, W), 'not calibrated'),
    (CameraModel(width=W, height=H, K=PLUMB_BOB.K, D=PLUMB_BOB.D, R=np.eye(3),
                 P=PLUMB_BOB.P, binning_x=2, binning_y=2), (H, W), 'binning'),
    (CameraModel(width=W, height=H, K=PLUMB_BOB.K, D=PLUMB_BOB.D, R=np.eye(3),
                 P=PLUMB_BOB.P, roi=RegionOfInterest(10, 10, 100, 100)), (H, W), 'binning'),
])
def test_unusable_calibrations_raise_calibration_errors(camera, shape, match):
    with pytest.raises(CalibrationError, match=match):
        Undistorter().rectify(np.zeros(shape, np.uint8), camera)


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'alpha': 2.0}, 'alpha must be -1'),
    ({'alpha': -0.5}, 'alpha must be -1'),
    ({'alpha': float('nan')}, 'alpha must be -1'),
    ({'interpolation': 'area'}, "unknown interpolation 'area'"),
])
def test_bad_settings_raise_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Undistorter(**kwargs)


def test_nan_in_a_camera_model_is_refused_before_it_reaches_opencv():
    with pytest.raises(ConfigError, match='NaN or inf'):
        CameraModel.from_intrinsics(W, H, float('nan'), 400, 320, 240)
