"""CameraModel: REP-104 conventions and validation."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import CameraModel, ConfigError, DataError


def test_uncalibrated_model_is_all_zero():
    cam = CameraModel.uncalibrated(640, 480)
    assert not cam.is_calibrated
    assert not np.any(cam.K) and not np.any(cam.P) and cam.D.size == 0


def test_from_intrinsics():
    cam = CameraModel.from_intrinsics(640, 480, 500, 510, 320.5, 240.5, [0.1, -0.2, 0, 0, 0.01])
    assert cam.is_calibrated and cam.has_distortion and not cam.is_fisheye
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (500, 510, 320.5, 240.5)
    np.testing.assert_array_equal(cam.P[:, :3], cam.K)
    np.testing.assert_array_equal(cam.R, np.eye(3))
    with pytest.raises(ValueError):
        cam.K[0, 0] = 1  # matrices are read-only


def test_scaled_follows_cv2_resize_pixel_centres():
    cam = CameraModel.from_intrinsics(640, 480, 500, 500, 319.5, 239.5)
    half = cam.scaled(320, 240)
    # the image centre stays the image centre: (319.5 + 0.5) / 2 - 0.5
    assert (half.fx, half.fy, half.cx, half.cy) == (250, 250, 159.5, 119.5)
    assert half.P[0, 0] == 250 and half.P[0, 2] == 159.5 and half.width == 320
    # a point projected in the original maps where cv2.resize moves that pixel
    point = np.array([0.1, -0.05, 1.0])
    u0 = cam.K @ point
    u1 = half.K @ point
    assert u1[0] == pytest.approx((u0[0] + 0.5) * 0.5 - 0.5)


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'K': np.zeros(8)}, 'K needs 9 values'),
    ({'P': np.zeros((3, 3))}, 'P needs 12 values'),
    ({'K': [np.nan] * 9}, 'NaN or inf'),
    ({'D': [0.1, 0.2, 0.3], 'K': np.eye(3)}, 'takes 4 or 5 or 8 or 12 or 14 coefficients'),
    ({'distortion_model': 'equidistant', 'D': [0.1] * 5, 'K': np.eye(3)}, 'takes 4'),
    ({'distortion_model': 'fancy', 'D': [0.1] * 5}, "unknown distortion_model 'fancy'"),
    ({'width': -1}, 'width must be an integer >= 0'),
])
def test_invalid_models_name_the_problem(kwargs, match):
    args = {'width': 640, 'height': 480}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        CameraModel(**args)


def test_calibrated_model_needs_a_size():
    with pytest.raises(ConfigError, match='needs its image width and height'):
        CameraModel(width=0, height=0, K=np.eye(3))


def test_allclose():
    a = CameraModel.from_intrinsics(640, 480, 500, 500, 320, 240, [0.1, 0, 0, 0, 0])
    b = CameraModel.from_intrinsics(640, 480, 500, 500, 320, 240, [0.1, 0, 0, 0, 0])
    c = CameraModel.from_intrinsics(640, 480, 501, 500, 320, 240, [0.1, 0, 0, 0, 0])
    assert a.allclose(b) and not a.allclose(c)


@pytest.mark.parametrize('model', ['none', 'plumb_bob', 'rational_polynomial', 'equidistant'])
def test_pixels_to_rays_inverts_opencv_projection(model):
    import cv2

    D = {'none': [], 'plumb_bob': [-0.28, 0.09, 0.001, -0.0005, -0.01],
         'rational_polynomial': [0.2, -0.1, 0.001, 0.0005, 0.01, 0.5, -0.05, 0.02],
         'equidistant': [-0.02, 0.01, -0.004, 0.001]}[model]
    cam = CameraModel.from_intrinsics(640, 480, 520.0, 515.0, 318.2, 243.7, D,
                                      'equidistant' if model == 'equidistant' else 'plumb_bob'
                                      if model != 'rational_polynomial' else model)
    rng = np.random.default_rng(3)
    points = np.column_stack([rng.uniform(-0.5, 0.5, 50), rng.uniform(-0.4, 0.4, 50),
                              np.full(50, 2.5)])
    zero = np.zeros(3)
    if model == 'equidistant':
        pixels, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), zero, zero, cam.K,
                                              cam.D)
    else:
        pixels, _ = cv2.projectPoints(points, zero, zero, cam.K, cam.D)
    rays = cam.pixels_to_rays(pixels.reshape(-1, 2))
    np.testing.assert_allclose(rays * 2.5, points, atol=2e-4)


def test_pixels_to_rays_refuses_an_uncalibrated_camera_and_bad_shapes():
    with pytest.raises(ConfigError, match='calibrated'):
        CameraModel.uncalibrated(640, 480).pixels_to_rays([[1, 2]])
    cam = CameraModel.from_intrinsics(640, 480, 500, 500, 320, 240)
    with pytest.raises(DataError, match=r'\(N, 2\)'):
        cam.pixels_to_rays([1, 2, 3])
    assert cam.pixels_to_rays(np.zeros((0, 2))).shape == (0, 3)


def test_assumed_camera_has_the_asked_field_of_view():
    cam = CameraModel.assumed(640, 480, 90.0)
    left, right = cam.pixels_to_rays([[-0.5, 239.5], [639.5, 239.5]])
    assert np.degrees(np.arctan(right[0]) - np.arctan(left[0])) == pytest.approx(90.0)
    assert not cam.has_distortion
    with pytest.raises(ConfigError, match='hfov'):
        CameraModel.assumed(640, 480, 180.0)
