"""``edge-vision calibrate`` end to end: folders, globs, videos, errors, SetCameraInfo.

These tests drive the CLI of the ``edge_vision`` package (they belong with it; they live here
because the calibration is tested as one piece); they skip where it is not installed.
"""

from __future__ import annotations

import os
import random
import re
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_vision_core.calibration import load_camera_info

cli = pytest.importorskip('edge_vision.cli')


def write_images(folder: Path, images, prefix: str = 'shot', ext: str = '.png') -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f'{prefix}{i:02d}{ext}'), image)


def check_intrinsics(path: Path, true, rel: float = 0.01) -> None:
    model, name = load_camera_info(path)
    assert name == 'front'
    assert model.distortion_model == true.distortion_model
    for attr in ('fx', 'fy', 'cx', 'cy'):
        assert getattr(model, attr) == pytest.approx(getattr(true, attr), rel=rel), attr


def test_folder_of_images_to_camera_info_yaml(rendered_views, tmp_path, capsys):
    views = rendered_views('pinhole', 'chessboard')
    write_images(tmp_path / 'shots', views.images)
    (tmp_path / 'shots' / 'notes.txt').write_text('not an image')
    out = tmp_path / 'calib' / 'front.yaml'
    rc = cli.main(['calibrate', str(tmp_path / 'shots'), '--size', '9x6', '--square', '0.03',
                   '--min-views', '8', '--camera-name', 'front', '--out', str(out)])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    check_intrinsics(out, views.camera)
    assert 'RMS reprojection error:' in stdout
    assert 'shot00.png: ' in stdout and 'view 1 accepted' in stdout
    assert 'x 100%' in stdout or 'x 9' in stdout  # coverage bars are printed
    assert f'wrote {out}' in stdout


def test_glob_charuco_rational(rendered_views, tmp_path, capsys):
    views = rendered_views('rational', 'charuco')
    write_images(tmp_path, views.images, ext='.jpg')
    write_images(tmp_path, views.images[:2], prefix='other', ext='.png')  # not matched
    out = tmp_path / 'cam.yaml'
    rc = cli.main(['calibrate', str(tmp_path / 'shot*.jpg'), '--pattern', 'charuco',
                   '--size', '7x5', '--square', '0.03', '--marker', '0.021',
                   '--dictionary', 'DICT_4X4_50', '--model', 'rational', '--min-views', '8',
                   '--camera-name', 'front', '--out', str(out), '--quiet'])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    assert 'view 1 accepted' not in stdout  # --quiet
    assert f'views: {len(views.images)} images' in stdout  # other*.png not matched
    check_intrinsics(out, views.camera, rel=0.015)  # JPEG-compressed views


def test_video_input_with_frame_stride(rendered_views, tmp_path, capsys):
    views = rendered_views('fisheye', 'chessboard')
    video = tmp_path / 'board.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10, (640, 480))
    if not writer.isOpened():
        pytest.skip('this OpenCV cannot write MJPG video')
    for image in views.images:
        frame = cv2.cvtColor(np.array(image), cv2.COLOR_GRAY2BGR)
        writer.write(frame)
        writer.write(frame)  # every view twice: --every 2 keeps one of each
    writer.release()
    out = tmp_path / 'fisheye.yaml'
    rc = cli.main(['calibrate', str(video), '--every', '2', '--model', 'fisheye',
                   '--size', '9x6', '--square', '0.03', '--min-views', '8',
                   '--camera-name', 'front', '--out', str(out)])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    assert f'views: {len(views.images)} images' in stdout
    check_intrinsics(out, views.camera, rel=0.015)


@pytest.mark.parametrize('make_source, args, expected', [
    (lambda d: d, [], 'holds no images'),
    (lambda d: d / 'missing', [], 'does not exist'),
    (lambda d: d / '*.png', [], 'no files match'),
    (lambda d: d, ['--size', 'nine'], '--size must look like 9x6'),
    (lambda d: d, ['--size', '1x6'], r'cols must be in \[2'),
    (lambda d: d, ['--every', '0'], '--every must be >= 1'),
], ids=['empty', 'missing', 'glob', 'size-text', 'size-range', 'every'])
def test_bad_input_gives_one_clear_line(tmp_path, capsys, make_source, args, expected):
    rc = cli.main(['calibrate', str(make_source(tmp_path)), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith('edge-vision calibrate: error: ')
    assert len(err.strip().splitlines()) == 1
    assert re.search(expected, err), err


def test_images_without_a_target(tmp_path, capsys):
    write_images(tmp_path, [np.full((480, 640), v, np.uint8) for v in (60, 120, 200, 90)])
    rc = cli.main(['calibrate', str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'found no 9x6 chessboard (inner corners; 10x7 squares), 25 mm squares in 4 images' \
        in err


def test_wrong_pattern_size_stops_early_with_the_right_size(rendered_views, tmp_path, capsys):
    views = rendered_views('pinhole', 'chessboard')
    write_images(tmp_path, views.images)
    rc = cli.main(['calibrate', str(tmp_path), '--size', '10x7', '--square', '0.03'])
    captured = capsys.readouterr()
    assert rc == 2
    assert 'in the first 3 images; but a 9x6 chessboard (10x7 squares) is visible' \
        in captured.err
    assert 'did you mean --size 9x6' in captured.err


def test_too_few_views(rendered_views, tmp_path, capsys):
    views = rendered_views('pinhole', 'chessboard')
    write_images(tmp_path, views.images[:4])
    rc = cli.main(['calibrate', str(tmp_path), '--size', '9x6', '--square', '0.03'])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'only 4 usable views, at least 10 are needed (4 images' in err


# --------------------------------------------------------------------------------------------
# --set-camera-info against a real rclpy service


@pytest.fixture
def isolated_ros(monkeypatch):
    """A private ROS domain on loopback, set before any rclpy.init of the test."""
    pytest.importorskip('rclpy')
    pytest.importorskip('sensor_msgs.srv')
    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.Random().randint(100, 200)))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from edge_vision.dds import apply_transport_defaults
    env = dict(os.environ)
    apply_transport_defaults(env)  # what the CLI will do; done here so monkeypatch undoes it
    for key, value in env.items():
        if os.environ.get(key) != value:
            monkeypatch.setenv(key, value)


class FakeCameraDriver:
    """A node serving sensor_msgs/srv/SetCameraInfo, as camera drivers do, in a thread."""

    def __init__(self, service: str, success: bool = True) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.srv import SetCameraInfo

        self.received: list = []
        self.success = success
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('fake_camera_driver', context=self.context)
        self.node.create_service(SetCameraInfo, service, self._handle)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _handle(self, request, response):
        self.received.append(request.camera_info)
        response.success = self.success
        response.status_message = 'stored in camera.yaml' if self.success else 'read-only'
        return response

    def close(self) -> None:
        import rclpy
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5)


@pytest.mark.ros
def test_set_camera_info_sends_the_calibration(rendered_views, tmp_path, capsys,
                                               isolated_ros):
    from edge_vision.conversions import camera_info_to_model

    views = rendered_views('pinhole', 'chessboard')
    write_images(tmp_path / 'shots', views.images)
    driver = FakeCameraDriver('/calib_test/set_camera_info')
    try:
        rc = cli.main(['calibrate', str(tmp_path / 'shots'), '--size', '9x6', '--square',
                       '0.03', '--min-views', '8', '--camera-name', 'front', '--quiet',
                       '--out', str(tmp_path / 'front.yaml'),
                       '--set-camera-info', '/calib_test/set_camera_info', '--timeout', '20'])
    finally:
        driver.close()
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    assert '/calib_test/set_camera_info: accepted (stored in camera.yaml)' in stdout
    assert len(driver.received) == 1
    sent = camera_info_to_model(driver.received[0])
    saved, _ = load_camera_info(tmp_path / 'front.yaml')
    assert sent.allclose(saved, atol=1e-12)


@pytest.mark.ros
def test_set_camera_info_refused_or_missing_service(rendered_views, tmp_path, capsys,
                                                   isolated_ros):
    views = rendered_views('pinhole', 'chessboard')
    write_images(tmp_path, views.images)
    args = ['calibrate', str(tmp_path), '--size', '9x6', '--square', '0.03', '--min-views',
            '8', '--quiet']
    driver = FakeCameraDriver('/refusing/set_camera_info', success=False)
    try:
        rc = cli.main([*args, '--set-camera-info', '/refusing/set_camera_info',
                       '--timeout', '20'])
    finally:
        driver.close()
    err = capsys.readouterr().err
    assert rc == 2
    assert '/refusing/set_camera_info refused the calibration: read-only' in err
    rc = cli.main([*args, '--set-camera-info', '/nobody/set_camera_info', '--timeout', '1'])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'service /nobody/set_camera_info (sensor_msgs/srv/SetCameraInfo) did not appear ' \
           'within 1 s' in err
