"""Calibration accuracy on rendered views with known intrinsics, and the solver's errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core import CalibrationError, ConfigError
from edge_vision_core.calibration import (
    Calibrator,
    CalibratorConfig,
    SolverConfig,
    TargetDetection,
    solve,
)
from edge_vision_core.calibration.synthetic import project_points


@pytest.mark.parametrize('target', ['chessboard', 'charuco'])
@pytest.mark.parametrize('camera', ['pinhole', 'rational', 'fisheye'])
def test_recovers_the_true_intrinsics_within_1_percent(rendered_views, camera, target):
    views = rendered_views(camera, target)
    cal = Calibrator(views.target_config, CalibratorConfig(model=camera, min_views=8))
    for i, image in enumerate(views.images):
        cal.add_image(image, f'view{i}')
    assert cal.view_count >= 8, cal.explain()
    result = cal.calibrate()
    true, got = views.camera, result.model
    assert got.distortion_model == true.distortion_model
    for name in ('fx', 'fy', 'cx', 'cy'):
        assert getattr(got, name) == pytest.approx(getattr(true, name), rel=0.01), name
    assert result.rms < 0.3
    assert np.all(result.view_errors[np.isfinite(result.view_errors)] < 0.5)
    assert result.view_errors.shape == (cal.view_count,)
    # The fitted lens maps rays across the field of view where the true lens does (within
    # 2 px: the rational model trades principal point against distortion by ~1 px here).
    rays = np.array([[x, y, 1.0] for x in (-0.4, 0.0, 0.4) for y in (-0.3, 0.0, 0.3)])
    zero = np.zeros(3)
    np.testing.assert_allclose(project_points(got, rays, zero, zero),
                               project_points(true, rays, zero, zero), atol=2.0)


def test_monocular_result_has_identity_r_and_the_rectified_p(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    dets = [d for d in (make_det(views, i) for i in range(len(views.images))) if d is not None]
    for alpha in (0.0, 1.0):
        result = solve(dets, SolverConfig(model='pinhole', alpha=alpha))
        m = result.model
        np.testing.assert_array_equal(m.R, np.eye(3))
        expected, _ = cv2.getOptimalNewCameraMatrix(m.K, m.D, (m.width, m.height), alpha)
        np.testing.assert_allclose(m.P[:, :3], expected)
        np.testing.assert_array_equal(m.P[:, 3], 0.0)
    fisheye = solve([d for d in (make_det(rendered_views('fisheye', 'chessboard'), i)
                                 for i in range(14)) if d is not None],
                    SolverConfig(model='fisheye', alpha=0.5))
    np.testing.assert_allclose(fisheye.model.P[0, 0], fisheye.model.K[0, 0] / 1.5)
    assert fisheye.model.D.shape == (4,)


def make_det(views, i: int) -> TargetDetection | None:
    from edge_vision_core.calibration import make_target
    return make_target(views.target_config).detect(views.images[i])


def test_outlier_corners_are_dropped_and_the_fit_stays_accurate(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    dets = [d for d in (make_det(views, i) for i in range(len(views.images))) if d is not None]
    bad = dets[3]
    moved = bad.image_points.copy()
    moved[10] += (6.0, -4.0)  # one wrongly located corner
    dets[3] = TargetDetection(moved, bad.object_points, bad.ids, bad.image_size, True)
    kept = solve(dets, SolverConfig(outlier_px=0.0))
    cleaned = solve(dets, SolverConfig(outlier_px=1.0))
    assert kept.dropped_corners == 0 and cleaned.dropped_corners == 1
    assert cleaned.rms < kept.rms
    assert cleaned.view_points[3] == len(bad) - 1
    assert cleaned.model.fx == pytest.approx(views.camera.fx, rel=0.01)


@pytest.mark.parametrize('camera', ['pinhole', 'fisheye'])
def test_a_wrong_view_is_left_out_as_a_whole(rendered_views, camera):
    views = rendered_views(camera, 'chessboard')
    dets = [d for d in (make_det(views, i) for i in range(len(views.images))) if d is not None]
    good = dets[2]
    centre = good.image_points.mean(axis=0)
    squashed = (good.image_points - centre) * [1.0, 0.3] + centre  # not this board's image
    dets.insert(3, TargetDetection(squashed, good.object_points, good.ids, good.image_size,
                                   True))
    result = solve(dets, SolverConfig(model=camera))
    assert result.dropped_views == (3,)
    assert np.isnan(result.view_errors[3]) and result.view_points[3] == 0
    assert result.rms < 0.3
    assert result.model.fx == pytest.approx(views.camera.fx, rel=0.01)
    assert 'views left out (ill-conditioned or mostly outliers): view 3' in result.report()
    assert solve(dets, SolverConfig(model=camera, outlier_px=0)).rms > 1.0


def test_report_lists_every_view_and_the_rms(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    dets = [d for d in (make_det(views, i) for i in range(6)) if d is not None]
    result = solve(dets, SolverConfig())
    text = result.report([f'img{i}.png' for i in range(len(dets))])
    assert f'RMS reprojection error: {result.rms:.4f} px' in text
    for i in range(len(dets)):
        assert f'img{i}.png: {result.view_errors[i]:.4f}' in text


def test_too_few_views_and_mixed_sizes_are_clear_errors(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    dets = [make_det(views, i) for i in range(2)]
    with pytest.raises(CalibrationError, match='only 2 usable views; a calibration needs at '
                                               'least 3'):
        solve(dets)
    other = TargetDetection(dets[0].image_points, dets[0].object_points, dets[0].ids,
                            (800, 600), True)
    with pytest.raises(CalibrationError, match='different sizes'):
        solve([*dets, make_det(views, 2), other])


@pytest.mark.parametrize('kwargs, message', [
    ({'model': 'fisheye', 'fix_aspect_ratio': True}, 'pinhole models only'),
    ({'model': 'thin_lens'}, "must be one of 'pinhole'"),
    ({'alpha': 1.5}, r'alpha must be in \[0.0, 1.0\]'),
])
def test_solver_config_is_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SolverConfig(**kwargs)


@pytest.mark.parametrize('flag, check', [
    ('fix_aspect_ratio', lambda m: m.fx == pytest.approx(m.fy, rel=1e-9)),
    ('zero_tangent_dist', lambda m: m.D[2] == 0.0 and m.D[3] == 0.0),
    ('fix_principal_point', lambda m: (m.cx, m.cy) == (319.5, 239.5)),
])
def test_pinhole_options_constrain_the_fit(rendered_views, flag, check):
    views = rendered_views('pinhole', 'chessboard')
    dets = [d for d in (make_det(views, i) for i in range(len(views.images))) if d is not None]
    assert check(solve(dets, SolverConfig(**{flag: True})).model)
