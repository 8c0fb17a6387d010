"""Chessboard and ChArUco detection: sub-pixel accuracy, config checks, wrong-size help."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core import CalibrationError, ConfigError, ConversionError
from edge_vision_core.calibration import (
    ARUCO_DICTIONARIES,
    CharucoTarget,
    ChessboardTarget,
    TargetConfig,
    make_target,
)
from edge_vision_core.calibration.targets import to_gray


def corner_errors(views, index: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Distances (px) of the detected corners from the true ones, and the detection ids."""
    target = make_target(views.target_config)
    det = target.detect(views.images[index])
    if det is None:
        return None
    rvec, tvec = views.poses[index]
    truth = views.renderer.project(target, rvec, tvec)
    errors = np.linalg.norm(det.image_points - truth[det.ids], axis=1)
    if views.target_config.pattern == 'chessboard':
        # A chessboard with an even x odd corner count can be read from either end.
        flipped = np.linalg.norm(det.image_points[::-1] - truth[det.ids], axis=1)
        errors = min(errors, flipped, key=lambda e: float(e.mean()))
    return errors, det.ids


@pytest.mark.parametrize('target, rms_limit, max_limit', [
    ('chessboard', 0.1, 0.3),
    ('charuco', 0.2, 1.0),  # OpenCV's ChArUco refinement has rare ~0.8 px outliers
])
@pytest.mark.parametrize('camera', ['pinhole', 'fisheye'])
def test_detected_corners_are_within_a_fraction_of_a_pixel(rendered_views, camera, target,
                                                           rms_limit, max_limit):
    views = rendered_views(camera, target)
    found = [corner_errors(views, i) for i in range(len(views.images))]
    found = [f for f in found if f is not None]
    assert len(found) >= 0.7 * len(views.images)
    errors = np.concatenate([e for e, _ in found])
    assert np.sqrt(np.mean(errors ** 2)) < rms_limit
    assert errors.max() < max_limit


def test_chessboard_detection_shape_ids_and_object_points(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    target = make_target(views.target_config)
    assert isinstance(target, ChessboardTarget)
    det = target.detect(views.images[0])
    assert det is not None and det.complete and len(det) == 54
    assert det.image_points.shape == (54, 2) and det.image_points.dtype == np.float32
    np.testing.assert_array_equal(det.ids, np.arange(54))
    # Row by row from the first inner corner, square_size apart.
    np.testing.assert_allclose(det.object_points[1] - det.object_points[0], [0.03, 0, 0])
    np.testing.assert_allclose(det.object_points[9] - det.object_points[0], [0, 0.03, 0])
    assert det.image_size == (640, 480)


def test_charuco_partial_views_are_detected(rendered_views):
    views = rendered_views('pinhole', 'charuco')
    target = make_target(views.target_config)
    assert isinstance(target, CharucoTarget)
    image = np.array(views.images[0])
    det_full = target.detect(image)
    assert det_full is not None
    # Hide the left half of the board: the rest still yields corners with their own ids.
    xs = det_full.image_points[:, 0]
    image[:, : int(np.median(xs))] = 110
    det = target.detect(image)
    assert det is not None and not det.complete
    assert 0 < len(det) < len(det_full)
    assert set(det.ids.tolist()) < set(det_full.ids.tolist())
    np.testing.assert_allclose(det.object_points, target.all_object_points()[det.ids])


def test_large_images_are_detected_on_a_shrunk_copy_and_refined_at_full_size(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    big = cv2.resize(np.array(views.images[2]), (1920, 1440), interpolation=cv2.INTER_CUBIC)
    full = make_target(TargetConfig(cols=9, rows=6, square_size=0.03,
                                    detect_max_side=0)).detect(big)
    shrunk = make_target(TargetConfig(cols=9, rows=6, square_size=0.03,
                                      detect_max_side=800)).detect(big)
    assert full is not None and shrunk is not None
    assert np.abs(full.image_points - shrunk.image_points).max() < 0.1


def test_sector_based_chessboard_detector_agrees(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    classic = make_target(views.target_config).detect(views.images[1])
    sectors = make_target(TargetConfig(cols=9, rows=6, square_size=0.03,
                                       chessboard_detector='sectors')).detect(views.images[1])
    assert classic is not None and sectors is not None
    a, b = classic.image_points, sectors.image_points
    if np.abs(a - b).max() > 5:  # read from the other end
        b = b[::-1]
    assert np.abs(a - b).max() < 0.3


@pytest.mark.parametrize('make_image', [
    lambda g: g,
    lambda g: g[:, :, None],
    lambda g: cv2.cvtColor(g, cv2.COLOR_GRAY2BGR),
    lambda g: cv2.cvtColor(g, cv2.COLOR_GRAY2BGRA),
    lambda g: g.astype(np.uint16) * 257,
], ids=['gray', 'gray1', 'bgr', 'bgra', 'uint16'])
def test_every_image_layout_gives_the_same_gray(make_image):
    gray = np.random.default_rng(0).integers(0, 256, (24, 32), dtype=np.uint8)
    np.testing.assert_array_equal(to_gray(make_image(gray)), gray)


@pytest.mark.parametrize('image', [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8)])
def test_unsupported_images_raise_conversion_error(image):
    with pytest.raises(ConversionError):
        to_gray(image)


@pytest.mark.parametrize('kwargs, message', [
    ({'pattern': 'circles'}, "pattern must be one of 'chessboard', 'charuco'"),
    ({'cols': 1}, r'cols must be in \[2'),
    ({'square_size': 0.0}, 'square_size must be in'),
    ({'pattern': 'charuco', 'square_size': 0.02, 'marker_size': 0.03},
     'must be smaller than square_size'),
    ({'pattern': 'charuco', 'cols': 12, 'rows': 10}, 'DICT_4X4_50 only 50; choose a larger '
                                                     'dictionary .e.g. DICT_4X4_100'),
    ({'dictionary': 'DICT_9X9_1'}, 'dictionary must be one of'),
])
def test_target_config_is_validated_with_the_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TargetConfig(**kwargs)


def test_every_listed_dictionary_exists_in_this_opencv():
    for name in ARUCO_DICTIONARIES:
        assert hasattr(cv2.aruco, name), name


def test_board_pictures_place_corners_where_the_mapping_says():
    for config in (TargetConfig(cols=9, rows=6, square_size=0.03),
                   TargetConfig(pattern='charuco', cols=7, rows=5, square_size=0.03,
                                marker_size=0.021)):
        target = make_target(config)
        image, A = target.board_image(60, 30)
        det = target.detect(cv2.GaussianBlur(image, (0, 0), 1.0))
        assert det is not None and det.complete
        mapped = det.object_points[:, :2].astype(np.float64) @ A[:, :2].T + A[:, 2]
        assert np.abs(det.image_points - mapped).max() < 0.5, config.pattern


def test_wrong_chessboard_size_suggests_the_real_one(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    # The user counted squares (10x7) instead of inner corners (9x6).
    target = make_target(TargetConfig(cols=10, rows=7, square_size=0.03))
    assert all(target.detect(image) is None for image in views.images[:3])
    diagnosis = target.diagnose(views.images[:3])
    assert diagnosis.other_target
    assert 'did you mean --size 9x6 (cols=9, rows=6)?' in diagnosis.message
    assert 'of the 3 images checked' in diagnosis.message
    # In the orientation the user gave.
    assert 'did you mean --size 6x9' in make_target(
        TargetConfig(cols=7, rows=10, square_size=0.03)).diagnose(views.images[:3]).message


def test_a_board_only_the_sector_detector_finds_suggests_it(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    diagnosis = make_target(TargetConfig(cols=9, rows=6)).diagnose(views.images[:2])
    assert 'sector-based detector sees a 9x6 chessboard' in diagnosis.message
    assert '--detector sectors' in diagnosis.message


def test_no_chessboard_at_all_says_what_to_check():
    blank = np.full((240, 320), 128, np.uint8)
    diagnosis = make_target(TargetConfig()).diagnose([blank])
    assert not diagnosis.other_target
    assert 'no chessboard of another size either' in diagnosis.message
    assert 'inner corners' in diagnosis.message


def test_wrong_charuco_dictionary_suggests_the_right_one(rendered_views):
    views = rendered_views('pinhole', 'charuco')
    target = make_target(TargetConfig(pattern='charuco', cols=7, rows=5, square_size=0.03,
                                      marker_size=0.021, dictionary='DICT_6X6_250'))
    assert target.detect(views.images[0]) is None
    diagnosis = target.diagnose(views.images[:2])
    assert diagnosis.other_target
    assert 'did you mean --dictionary DICT_4X4_' in diagnosis.message


def test_too_small_charuco_size_is_noticed_from_the_marker_ids(rendered_views):
    views = rendered_views('pinhole', 'charuco')
    target = make_target(TargetConfig(pattern='charuco', cols=5, rows=3, square_size=0.03,
                                      marker_size=0.021))
    diagnosis = target.diagnose(views.images[:2])
    assert diagnosis.other_target
    assert 'only has markers 0..6' in diagnosis.message
    assert 'the board is larger' in diagnosis.message


@pytest.mark.skipif(not hasattr(cv2.aruco, 'CharucoDetector')
                    or not hasattr(cv2.aruco.CharucoBoard, 'setLegacyPattern'),
                    reason='needs OpenCV >= 4.8 (both ChArUco layouts)')
def test_charuco_layouts_differ_for_even_rows_and_each_needs_its_flag():
    new = make_target(TargetConfig(pattern='charuco', cols=6, rows=4, square_size=0.03))
    old = make_target(TargetConfig(pattern='charuco', cols=6, rows=4, square_size=0.03,
                                   legacy_pattern=True))
    new_image, _ = new.board_image(60, 30)
    old_image, _ = old.board_image(60, 30)
    assert not np.array_equal(new_image, old_image)
    assert new.detect(new_image) is not None and old.detect(old_image) is not None
    assert 'try legacy_pattern=True' in new.diagnose([old_image]).message


def test_targets_describe_themselves():
    assert make_target(TargetConfig()).describe() == (
        '9x6 chessboard (inner corners; 10x7 squares), 25 mm squares')
    charuco = make_target(TargetConfig(pattern='charuco', cols=5, rows=7, square_size=0.04,
                                       marker_size=0.03))
    assert charuco.describe() == ('5x7 ChArUco board (squares), 40 mm squares, 30 mm '
                                  'DICT_4X4_50 markers')
    assert charuco.corner_count == 24


def test_charuco_needs_aruco_and_says_how_to_get_it(monkeypatch):
    monkeypatch.delattr(cv2, 'aruco')
    with pytest.raises(CalibrationError, match='install opencv-python >= 4.7'):
        make_target(TargetConfig(pattern='charuco', cols=5, rows=7))
