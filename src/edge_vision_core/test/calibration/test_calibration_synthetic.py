"""The synthetic renderer itself: lens inversion, corner placement, pose sampling."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import CameraModel, ConfigError
from edge_vision_core.calibration import TargetConfig, make_target
from edge_vision_core.calibration.synthetic import (
    SyntheticCamera,
    _distort,
    _undistort,
    project_points,
    sample_board_poses,
)

CAMERAS = {
    'plumb_bob': CameraModel.from_intrinsics(640, 480, 520.0, 515.0, 322.0, 238.0,
                                             [-0.28, 0.09, 0.001, -0.0007, -0.01]),
    'rational': CameraModel.from_intrinsics(
        640, 480, 510.0, 512.0, 318.0, 243.0,
        [2.1, 0.9, 0.001, 0.0005, 0.02, 2.45, 1.6, 0.15], 'rational_polynomial'),
    'equidistant': CameraModel.from_intrinsics(640, 480, 260.0, 261.0, 321.0, 239.0,
                                               [0.05, -0.02, 0.01, -0.003], 'equidistant'),
}


@pytest.mark.parametrize('name', list(CAMERAS))
def test_lens_inversion_round_trips_to_a_micro_pixel(name):
    model = CAMERAS[name]
    rng = np.random.default_rng(0)
    pixels = rng.uniform([-5, -5], [645, 485], (2000, 2))
    xy, ok = _undistort(model, pixels)
    assert ok.all()
    assert np.abs(_distort(model, xy) - pixels).max() < 1e-5


@pytest.mark.parametrize('name', list(CAMERAS))
def test_clean_renders_put_the_corners_where_the_lens_projects_them(name):
    model = CAMERAS[name]
    target = make_target(TargetConfig(cols=9, rows=6, square_size=0.03))
    camera = SyntheticCamera(model, supersample=3)
    poses = sample_board_poses(target, model, 4, np.random.default_rng(1), fill=(0.5, 0.7),
                               max_tilt_deg=25)
    errors = []
    for rvec, tvec in poses:
        # A little optical blur, as every lens has: cornerSubPix is biased on aliased edges.
        det = target.detect(camera.render(target, rvec, tvec, blur_sigma=0.6))
        if det is None:  # the classic detector misses some strongly curved fisheye views
            continue
        truth = camera.project(target, rvec, tvec)
        e = np.linalg.norm(det.image_points - truth, axis=1)
        e_flipped = np.linalg.norm(det.image_points[::-1] - truth, axis=1)
        errors.append(min(e, e_flipped, key=lambda v: float(v.mean())))
    assert len(errors) >= 3
    errors = np.concatenate(errors)
    assert np.sqrt(np.mean(errors ** 2)) < 0.06
    assert errors.max() < 0.2


def test_pose_sampling_keeps_the_whole_board_in_view_and_is_reproducible():
    model = CAMERAS['plumb_bob']
    target = make_target(TargetConfig(cols=9, rows=6, square_size=0.03))
    poses = sample_board_poses(target, model, 10, np.random.default_rng(7), margin_px=12)
    again = sample_board_poses(target, model, 10, np.random.default_rng(7), margin_px=12)
    assert len(poses) == 10
    for (rvec, tvec), (rvec2, tvec2) in zip(poses, again, strict=True):
        np.testing.assert_array_equal(rvec, rvec2)
        np.testing.assert_array_equal(tvec, tvec2)
        uv = project_points(model, target.all_object_points(), rvec, tvec)
        assert uv.min() >= 12 and uv[:, 0].max() <= 627 and uv[:, 1].max() <= 467


def test_noise_and_blur_are_applied_and_reproducible():
    model = CAMERAS['plumb_bob']
    target = make_target(TargetConfig())
    camera = SyntheticCamera(model, supersample=1)
    rvec, tvec = sample_board_poses(target, model, 1, np.random.default_rng(3))[0]
    clean = camera.render(target, rvec, tvec)
    noisy = camera.render(target, rvec, tvec, noise_sigma=3.0, rng=np.random.default_rng(1))
    noisy2 = camera.render(target, rvec, tvec, noise_sigma=3.0, rng=np.random.default_rng(1))
    blurred = camera.render(target, rvec, tvec, blur_sigma=2.0)
    assert clean.shape == (480, 640) and clean.dtype == np.uint8
    np.testing.assert_array_equal(noisy, noisy2)
    assert 2.0 < np.std(noisy.astype(float) - clean) < 4.0
    assert np.abs(np.diff(blurred.astype(float), axis=1)).max() < \
        np.abs(np.diff(clean.astype(float), axis=1)).max()


@pytest.mark.parametrize('model, supersample, message', [
    (CameraModel.uncalibrated(640, 480), 2, 'needs a calibrated CameraModel'),
    (CAMERAS['plumb_bob'], 0, r'supersample must be in \[1, 8\]'),
    (CameraModel.from_intrinsics(640, 480, 500, 500, 320, 240, [-3.0, 0, 0, 0, 0]), 1,
     'cannot be inverted over the whole image'),
])
def test_bad_renderer_settings_raise_config_error(model, supersample, message):
    with pytest.raises(ConfigError, match=message):
        SyntheticCamera(model, supersample=supersample)
