"""The incremental Calibrator: which views it keeps, progress, readiness and its errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core import CalibrationError, ConfigError
from edge_vision_core.calibration import REASONS, Calibrator, CalibratorConfig, TargetConfig


def chessboard_calibrator(**config: object) -> Calibrator:
    return Calibrator(TargetConfig(cols=9, rows=6, square_size=0.03), CalibratorConfig(**config))


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    M = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(np.array(image), M, (image.shape[1], image.shape[0]),
                          borderValue=110)


def test_each_image_gets_a_verdict_with_its_reason(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    cal = chessboard_calibrator()
    first = cal.add_image(views.images[0], 'a.png')
    assert first.accepted and first.reason == 'accepted' and first.name == 'a.png'
    assert first.detection is not None and first.params is not None
    assert first.edge_width is not None and first.edge_width < 3.5
    assert 'view 1 accepted' in first.message
    same = cal.add_image(views.images[0], 'again.png')
    assert (same.accepted, same.reason) == (False, 'redundant')
    blurred = cal.add_image(cv2.GaussianBlur(np.array(views.images[1]), (0, 0), 3.0), 'b.png')
    assert blurred.reason == 'blurred' and 'edge width' in blurred.message
    blank = cal.add_image(np.full((480, 640), 110, np.uint8), 'blank.png')
    assert blank.reason == 'no_target' and blank.detection is None
    small = cal.add_image(cv2.resize(np.array(views.images[2]), (320, 240)), 'small.png')
    assert small.reason == 'wrong_size'
    assert cal.view_count == 1
    assert cal.counts == {'accepted': 1, 'no_target': 1, 'blurred': 1, 'near_border': 0,
                          'moving': 0, 'redundant': 1, 'wrong_size': 1, 'full': 0}
    assert set(cal.counts) == set(REASONS)
    assert cal.images_seen == 5
    assert cal.view_names == ['a.png']


def test_views_with_corners_near_the_border_are_rejected(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    det = chessboard_calibrator().add_image(views.images[0]).detection
    pts = det.image_points
    gap = float(min(pts[:, 0].min(), pts[:, 1].min(), 639 - pts[:, 0].max(),
                    479 - pts[:, 1].max()))
    assert chessboard_calibrator(border_px=gap + 1).add_image(views.images[0]).reason == \
        'near_border'
    assert chessboard_calibrator(border_px=gap - 1).add_image(views.images[0]).accepted


def test_board_speed_check_needs_a_still_board(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    cal = chessboard_calibrator(max_board_speed=2.0, min_view_distance=0.0)
    assert cal.add_image(views.images[0]).reason == 'moving'  # no previous frame yet
    assert cal.add_image(views.images[0]).accepted            # still
    moved = cal.add_image(shifted(views.images[0], 6.0, 0.0))
    assert moved.reason == 'moving' and '6.0 px/frame' in moved.message


def test_progress_grows_and_ready_comes_with_coverage(rendered_views):
    views = rendered_views('pinhole', 'chessboard', count=24)
    cal = chessboard_calibrator(min_views=8, enough_views=40)
    seen = []
    for image in views.images:
        cal.add_image(image)
        seen.append(cal.progress())
    totals = [sum(p.as_dict().values()) for p in seen]
    assert totals == sorted(totals)  # coverage never shrinks
    assert seen[-1].complete and cal.ready and seen[-1].ready
    assert not seen[0].ready
    cal.reset()
    assert cal.view_count == 0 and cal.images_seen == 0 and not cal.ready
    assert cal.image_size is None


def test_enough_views_make_it_ready_without_full_coverage(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    cal = chessboard_calibrator(min_views=3, enough_views=3, max_views=4, min_view_distance=0.0)
    for image in views.images[:3]:
        cal.add_image(image)
    assert cal.ready and not cal.progress().complete
    cal.add_image(views.images[3])
    assert cal.add_image(views.images[4]).reason == 'full'
    assert cal.view_count == 4


def test_no_target_anywhere_is_a_clear_error():
    cal = chessboard_calibrator()
    with pytest.raises(CalibrationError, match='no images were given'):
        cal.calibrate()
    for _ in range(5):
        cal.add_image(np.full((480, 640), 110, np.uint8))
    assert cal.mismatch is None
    with pytest.raises(CalibrationError) as info:
        cal.calibrate()
    message = str(info.value)
    assert message.startswith('found no 9x6 chessboard (inner corners; 10x7 squares), 30 mm '
                              'squares in 5 images; and no chessboard of another size')


def test_a_wrong_size_is_noticed_after_three_images(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    cal = Calibrator(TargetConfig(cols=10, rows=7, square_size=0.03))
    verdicts = [cal.add_image(image) for image in views.images[:3]]
    assert cal.mismatch is not None
    assert 'did you mean --size 9x6' in verdicts[-1].message
    with pytest.raises(CalibrationError, match=r'found no 10x7 chessboard .* in 3 images; but a '
                                               r'9x6 chessboard \(10x7 squares\) is visible'):
        cal.calibrate()


def test_a_stream_that_shows_the_board_late_is_still_diagnosed(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    cal = Calibrator(TargetConfig(cols=10, rows=7, square_size=0.03))
    for _ in range(3):  # the camera sees no board at first
        cal.add_image(np.full((480, 640), 110, np.uint8))
    assert cal.mismatch is None
    verdicts = [cal.add_image(image) for image in views.images[:7]]  # 10 images in all
    assert cal.mismatch is not None and 'did you mean --size 9x6' in verdicts[-1].message
    assert all('did you mean' not in v.message for v in verdicts[:-1])


def test_too_few_views_says_what_was_seen_and_what_to_do(rendered_views):
    views = rendered_views('pinhole', 'chessboard')
    cal = chessboard_calibrator(min_views=10)
    for image in views.images[:2]:
        cal.add_image(image)
    cal.add_image(views.images[0])
    cal.add_image(cv2.GaussianBlur(np.array(views.images[3]), (0, 0), 3.0))
    with pytest.raises(CalibrationError) as info:
        cal.calibrate()
    message = str(info.value)
    assert 'only 2 usable views, at least 10 are needed (4 images, 1 blurred, 1 too similar' \
        in message
    assert 'add images with the target at other positions, distances and tilts' in message


def test_charuco_sessions_work_the_same_way(rendered_views):
    views = rendered_views('fisheye', 'charuco')
    cal = Calibrator(views.target_config, CalibratorConfig(model='fisheye', min_views=6))
    for image in views.images:
        cal.add_image(image)
    result = cal.calibrate()
    assert result.model.distortion_model == 'equidistant'
    assert result.rms < 0.3


@pytest.mark.parametrize('kwargs, message', [
    ({'min_views': 20, 'enough_views': 10}, 'enough_views .10. must be >= min_views'),
    ({'enough_views': 50, 'max_views': 45}, 'max_views .45. must be >= enough_views'),
    ({'model': 'fisheye', 'zero_tangent_dist': True}, 'pinhole models only'),
    ({'min_views': 2}, r'min_views must be in \[3'),
])
def test_calibrator_config_is_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CalibratorConfig(**kwargs)
