"""camera_node in its own process (like ``ros2 run edge_vision camera_node``) over real DDS."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ros


class Listener:
    """Subscribes to a camera namespace from the test process."""

    def __init__(self, context, namespace: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        self.node = rclpy.create_node('listener', context=context)
        self.images: list = []
        self.infos: list = []
        self.compressed: list = []
        self.diagnostics: list = []
        self.node.create_subscription(Image, f'{namespace}/image_raw', self.images.append,
                                      qos_profile_sensor_data)
        self.node.create_subscription(CameraInfo, f'{namespace}/camera_info', self.infos.append,
                                      qos_profile_sensor_data)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append,
                                      10)
        self._compressed_args = (CompressedImage, f'{namespace}/image_raw/compressed',
                                 self.compressed.append, qos_profile_sensor_data)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def subscribe_compressed(self) -> None:
        self.node.create_subscription(*self._compressed_args)

    def spin_until(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def transition(self, node_name: str, label: str) -> bool:
        """Drive a lifecycle transition (``configure``, ``activate``...) through the node's
        ``change_state`` service, as ``ros2 lifecycle set`` does."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {'configure': Transition.TRANSITION_CONFIGURE,
               'activate': Transition.TRANSITION_ACTIVATE,
               'deactivate': Transition.TRANSITION_DEACTIVATE,
               'cleanup': Transition.TRANSITION_CLEANUP}
        client = self.node.create_client(ChangeState, f'{node_name}/change_state')
        assert client.wait_for_service(timeout_sec=20)
        future = client.call_async(ChangeState.Request(transition=Transition(id=ids[label])))
        assert self.spin_until(future.done, 20)
        self.node.destroy_client(client)
        return future.result().success

    def diagnostic_values(self, node_name: str) -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.endswith(node_name):
                    return {kv.key: kv.value for kv in status.values} | {
                        '_message': status.message}
        return {}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def listener(ros_context):
    created = []

    def _make(namespace: str) -> Listener:
        created.append(Listener(ros_context, namespace))
        return created[-1]

    yield _make
    for item in created:
        item.close()


def stamps(msgs) -> np.ndarray:
    return np.array([m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
                     for m in msgs], np.int64)


def test_synthetic_source_at_the_requested_rate_with_matching_headers(node_process, listener,
                                                                      tmp_path):
    ns = '/cam_synthetic'
    node = node_process('edge_vision.camera_node', {
        'rate': 15.0, 'frame_id': 'cam0_optical_frame',
        'camera_info_url': f'file://{tmp_path}/cam.yaml'}, ns)
    sub = listener(ns)
    sub.subscribe_compressed()
    assert sub.spin_until(lambda: len(sub.images) >= 30 and len(sub.infos) >= 30
                          and len(sub.compressed) >= 3), node.output()
    image = sub.images[-1]
    assert (image.encoding, image.width, image.height) == ('bgr8', 640, 480)
    assert image.header.frame_id == 'cam0_optical_frame'
    info_by_stamp = {(i.header.stamp.sec, i.header.stamp.nanosec): i for i in sub.infos}
    matched = [info_by_stamp.get((m.header.stamp.sec, m.header.stamp.nanosec))
               for m in sub.images]
    assert sum(i is not None for i in matched) >= 0.9 * len(sub.images)
    assert all(i.header == m.header for i, m in zip(matched, sub.images, strict=True)
               if i is not None)
    assert all(not any(i.k) for i in sub.infos)  # uncalibrated: K all zero (REP-104)
    t = stamps(sub.images)
    assert np.all(np.diff(t) > 0), 'stamps must increase'
    period = np.median(np.diff(t)) / 1e9
    assert 1 / 15 * 0.7 < period < 1 / 15 * 1.3, f'median period {period:.3f} s at 15 Hz'
    jpeg = sub.compressed[-1]
    assert jpeg.format.startswith('bgr8; jpeg compressed') and bytes(jpeg.data[:2]) == \
        b'\xff\xd8'
    assert node.alive()
    assert node.stop() == 0


def _write_video(path: Path, frames: int, size=(320, 240), fps: float = 25.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        img = np.full((size[1], size[0], 3), (i * 9) % 255, np.uint8)
        cv2.putText(img, str(i), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(img)
    writer.release()


def test_video_file_plays_at_its_own_rate_and_stops_cleanly(node_process, listener, tmp_path):
    video = tmp_path / 'clip.avi'
    _write_video(video, 75)
    ns = '/cam_video'
    # driven through its lifecycle: configure, wait for discovery, then activate, so that
    # no frame of the short file is published before the listener is connected
    node = node_process('edge_vision.camera_node', {
        'source': str(video), 'camera_info_url': f'file://{tmp_path}/none.yaml',
        'autostart': False}, ns)
    sub = listener(ns)
    assert sub.transition(f'{ns}/camera_node', 'configure'), node.output()
    assert sub.spin_until(lambda: sub.node.count_publishers(f'{ns}/image_raw') > 0)
    sub.spin_for(1.0)
    assert sub.transition(f'{ns}/camera_node', 'activate'), node.output()
    assert sub.spin_until(lambda: 'end of VideoFileSource' in node.output(), 30), node.output()
    sub.spin_for(0.5)
    assert 70 <= len(sub.images) <= 75, f'{len(sub.images)} of 75 frames'
    assert (sub.images[0].width, sub.images[0].height) == (320, 240)
    period = np.median(np.diff(stamps(sub.images))) / 1e9
    assert 0.7 / 25 < period < 1.3 / 25, f'median period {period:.3f} s for a 25 fps file'
    assert node.alive(), 'the node must stay up after the end of the file'
    assert node.stop() == 0


def test_missing_file_is_retried_until_it_appears(node_process, listener, tmp_path):
    video = tmp_path / 'later.avi'
    ns = '/cam_retry'
    node = node_process('edge_vision.camera_node', {
        'source': str(video), 'loop': True, 'reconnect_min_s': 0.2, 'reconnect_max_s': 0.5,
        'diagnostics_period': 0.2, 'camera_info_url': f'file://{tmp_path}/none.yaml'}, ns)
    sub = listener(ns)
    assert sub.spin_until(lambda: sub.diagnostic_values('cam_retry/camera_node').get(
        'state') == 'reconnecting', 20), node.output()
    assert 'not found' in sub.diagnostic_values('cam_retry/camera_node')['_message']
    assert not sub.images and node.alive()
    _write_video(video, 10)
    assert sub.spin_until(lambda: len(sub.images) >= 5, 20), node.output()
    values = sub.diagnostic_values('cam_retry/camera_node')
    assert sub.spin_until(lambda: sub.diagnostic_values('cam_retry/camera_node').get(
        'state') == 'streaming', 5)
    assert int(values.get('reconnects', '0')) >= 1
    assert 'video file' in node.output() and 'not found' in node.output()
    assert node.stop() == 0


def test_corrupt_images_in_a_folder_are_skipped_and_counted(node_process, listener, tmp_path):
    for i in range(4):
        cv2.imwrite(str(tmp_path / f'{i:02d}.png'), np.full((60, 80, 3), i * 40, np.uint8))
    (tmp_path / '02.png').write_bytes(b'not a png at all')
    ns = '/cam_folder'
    node = node_process('edge_vision.camera_node', {
        'source': str(tmp_path), 'rate': 20.0, 'loop': True, 'diagnostics_period': 0.2,
        'camera_info_url': f'file://{tmp_path}/none.yaml'}, ns)
    sub = listener(ns)

    def corrupt() -> int:
        return int(sub.diagnostic_values('cam_folder/camera_node').get(
            'corrupt_frames_skipped', '0'))

    assert sub.spin_until(lambda: len(sub.images) >= 9 and corrupt() >= 2, 20), node.output()
    from edge_vision.conversions import image_to_numpy
    values = {int(image_to_numpy(m)[0, 0, 0]) for m in sub.images}
    assert values == {0, 40, 120}, 'the three good images, never the corrupt one'
    assert 'could not decode image' in node.output()
    assert node.alive()
    assert node.stop() == 0


def test_set_camera_info_writes_the_file_and_is_published(node_process, listener, tmp_path,
                                                         ros_context):
    from sensor_msgs.srv import SetCameraInfo

    from edge_vision.conversions import model_to_camera_info
    from edge_vision_core import CameraModel
    from edge_vision_core.calibration.info_file import load_camera_info

    ns = '/cam_calib'
    url_file = tmp_path / 'calib' / 'cam.yaml'
    node = node_process('edge_vision.camera_node', {
        'rate': 10.0, 'camera_name': 'front', 'camera_info_url': f'file://{url_file}'}, ns)
    sub = listener(ns)
    assert sub.spin_until(lambda: len(sub.infos) >= 2), node.output()
    client = sub.node.create_client(SetCameraInfo, f'{ns}/set_camera_info')
    assert client.wait_for_service(timeout_sec=10)
    model = CameraModel.from_intrinsics(640, 480, 525.0, 523.0, 319.5, 239.5,
                                        [0.1, -0.05, 0.001, 0.0, 0.0])
    future = client.call_async(SetCameraInfo.Request(camera_info=model_to_camera_info(model)))
    assert sub.spin_until(future.done, 10)
    assert future.result().success, future.result().status_message
    saved, name = load_camera_info(url_file)
    assert name == 'front' and saved.allclose(model)
    count = len(sub.infos)
    assert sub.spin_until(lambda: len(sub.infos) > count + 2)
    assert list(sub.infos[-1].k) == pytest.approx(list(model.K.ravel()))
    # a restarted node reads the stored calibration
    node.stop()
    node2 = node_process('edge_vision.camera_node', {
        'rate': 10.0, 'camera_name': 'front', 'camera_info_url': f'file://{url_file}'}, ns)
    sub.infos.clear()
    assert sub.spin_until(lambda: len(sub.infos) >= 2), node2.output()
    assert sub.infos[-1].k[0] == pytest.approx(525.0)


def test_invalid_parameters_fail_configure_but_the_node_stays_up(node_process, listener):
    ns = '/cam_bad'
    node = node_process('edge_vision.camera_node', {'rate': -0.5}, ns)
    sub = listener(ns)
    assert sub.spin_until(lambda: 'configure failed' in node.output(), 20), node.output()
    assert 'rate must be -1, 0 or positive' in node.output()
    sub.spin_for(1.0)
    assert node.alive() and not sub.images
    assert node.stop() == 0
