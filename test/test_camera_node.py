"""camera_node in its own process (like ``ros2 run edge_vision camera_node``) over real DDS,
and the source faults it must survive: a folder emptied and refilled, a video truncated or
deleted while it plays, a V4L2 device that is not there, an MJPEG stream that drops."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ros


class Listener:
    """Subscribes to a camera namespace from the test process."""

    def __init__(self, context, namespace: str, change_state=None) -> None:
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
        self._change_state = change_state  # conftest's change_state fixture

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
        return self._change_state(self.executor, self.node, node_name, label)

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
def listener(ros_context, change_state):
    created = []

    def _make(namespace: str) -> Listener:
        created.append(Listener(ros_context, namespace, change_state))
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


def _write_video(path: Path, frames: int, size=(320, 240), fps: float = 25.0,
                 step: int = 9) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        img = np.full((size[1], size[0], 3), (i * step) % 255, np.uint8)
        cv2.putText(img, str(i), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(img)
    writer.release()


def _streaming_file(node_process, listener, tmp_path, ns: str, **params):
    """A camera_node on a 75-frame 25 fps file, and a listener that saw it from its first
    frame: driven through its lifecycle (configure, wait for discovery, then activate), so
    that no frame of the short file is published before the listener is connected."""
    video = tmp_path / 'clip.avi'
    _write_video(video, 75)
    node = node_process('edge_vision.camera_node', {
        'source': str(video), 'camera_info_url': f'file://{tmp_path}/none.yaml',
        'autostart': False, **params}, ns)
    sub = listener(ns)
    assert sub.transition(f'{ns}/camera_node', 'configure'), node.output()
    assert sub.spin_until(lambda: sub.node.count_publishers(f'{ns}/image_raw') > 0)
    sub.spin_for(1.0)
    assert sub.transition(f'{ns}/camera_node', 'activate'), node.output()
    return node, sub


def test_video_file_plays_at_its_own_rate_and_stops_cleanly(node_process, listener, tmp_path):
    node, sub = _streaming_file(node_process, listener, tmp_path, '/cam_video')
    assert sub.spin_until(lambda: 'end of VideoFileSource' in node.output(), 30), node.output()
    sub.spin_for(0.5)
    assert 70 <= len(sub.images) <= 75, f'{len(sub.images)} of 75 frames'
    assert (sub.images[0].width, sub.images[0].height) == (320, 240)
    period = np.median(np.diff(stamps(sub.images))) / 1e9
    assert 0.7 / 25 < period < 1.3 / 25, f'median period {period:.3f} s for a 25 fps file'
    assert node.alive(), 'the node must stay up after the end of the file'
    assert node.stop() == 0


def test_max_frames_stops_the_stream_after_exactly_that_many(node_process, listener, tmp_path):
    node, sub = _streaming_file(node_process, listener, tmp_path, '/cam_max', max_frames=12)
    assert sub.spin_until(lambda: 'after max_frames=12 frames' in node.output(), 30), \
        node.output()
    # the node's own count (best-effort delivery may lose a frame on some DDS builds), and
    # nothing more arrives
    assert sub.spin_until(lambda: sub.diagnostic_values('cam_max/camera_node').get(
        'frames_published') == '12' and 'finished' in
        sub.diagnostic_values('cam_max/camera_node')['_message'], 20), \
        sub.diagnostic_values('cam_max/camera_node')
    sub.spin_for(1.0)
    assert 8 <= len(sub.images) <= 12, f'{len(sub.images)} frames for max_frames 12'
    assert 'end of VideoFileSource' not in node.output()
    assert node.alive()
    assert node.stop() == 0


def test_a_file_read_faster_or_slower_than_its_rate_keeps_its_timeline(ros_context, tmp_path):
    """rate -1 in one process (edge-vision run on a file): the camera waits for a slow
    pipeline (a blocking link), and its stamps advance by at most the file's frame period per
    frame instead of the stall (a loaded machine stalling for more than the tracker's
    lost_timeout_s dropped every track of edge-vision run); never ahead of the clock."""
    import threading

    from rclpy.parameter import Parameter

    from edge_vision.camera_node import CameraNode
    from edge_vision.intra import Link

    video = tmp_path / 'clip.avi'
    _write_video(video, 40, fps=10.0)
    node = CameraNode(context=ros_context, parameter_overrides=[
        Parameter('source', value=str(video)), Parameter('rate', value=-1.0),
        Parameter('autostart', value=False),
        Parameter('camera_info_url', value=f'file://{tmp_path}/none.yaml')])
    seen: list[tuple[int, int]] = []  # (stamp, clock when the consumer took the frame)
    done = threading.Event()

    def slow_stage(frame) -> None:
        seen.append((frame.meta.stamp_ns, node.get_clock().now().nanoseconds))
        time.sleep(0.25 if len(seen) % 2 else 0.01)  # a stall every other frame
        if len(seen) >= 8:
            done.set()

    link = Link(slow_stage, blocking=True, name='test-slow-stage')
    try:
        node.trigger_configure()
        image_out = next(o for o in node.outputs if o.topic == 'image_raw')
        image_out.links.append(link)
        node.trigger_activate()
        assert done.wait(60), f'{len(seen)} frames reached the slow stage'
    finally:
        node.trigger_deactivate()
        link.close()
        node.destroy_node()
    gaps = np.diff([stamp for stamp, _ in seen[:8]]) / 1e9
    assert (gaps > 0).all() and gaps.max() <= 0.1 + 1e-6, gaps  # 10 fps file: 0.1 s
    assert all(stamp <= taken for stamp, taken in seen), 'a stamp ahead of the clock'


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
                                                         ros_context, call_service):
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
    # setting the same calibration twice is harmless: asked again if the answer is lost
    answer = call_service(sub.executor, client,
                          SetCameraInfo.Request(camera_info=model_to_camera_info(model)))
    assert answer is not None and answer.success, answer
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


# -- source faults: the node stays up, says so on /diagnostics, retries with backoff and resumes


def _state(sub, name: str) -> str:
    return sub.diagnostic_values(name).get('state', '')


def _fault_node(node_process, source: str, ns: str, tmp_path, **params):
    return node_process('edge_vision.camera_node', {
        'source': source, 'reconnect_min_s': 0.2, 'reconnect_max_s': 0.8,
        'diagnostics_period': 0.2, 'camera_info_url': f'file://{tmp_path}/none.yaml',
        **params}, ns)


def _levels(msgs) -> set[int]:
    from edge_vision.conversions import image_to_numpy
    return {int(image_to_numpy(m)[5, 5, 0]) for m in msgs}


def test_folder_emptied_and_refilled_with_new_names(node_process, listener, tmp_path):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'a{i}.png'), np.full((60, 80, 3), 10 + i, np.uint8))
    ns, name = '/cam_refill', 'cam_refill/camera_node'
    node = _fault_node(node_process, str(folder), ns, tmp_path, loop=True, rate=20.0)
    sub = listener(ns)
    assert sub.spin_until(lambda: len(sub.images) >= 5), node.output()
    for path in folder.iterdir():
        path.unlink()
    assert sub.spin_until(lambda: _state(sub, name) == 'reconnecting', 20), node.output()
    values = sub.diagnostic_values(name)
    assert 'holds no images' in values['_message'] and 'holds no images' in values[
        'last_source_error']
    assert int(values['corrupt_frames_skipped']) == 0  # a gone folder is no corrupt frame
    for i in range(2):
        cv2.imwrite(str(folder / f'b{i}.png'), np.full((60, 80, 3), 200 + i, np.uint8))
    sub.images.clear()
    assert sub.spin_until(lambda: _levels(sub.images) >= {200, 201}, 20), node.output()
    assert sub.spin_until(lambda: _state(sub, name) == 'streaming', 5)
    assert node.alive(), node.output()
    assert node.stop() == 0, node.output()


def test_video_truncated_while_streaming_is_reported_and_resumes(node_process, listener,
                                                                 tmp_path):
    video, backup = tmp_path / 'clip.avi', tmp_path / 'whole.avi'
    _write_video(backup, 100, step=2)  # grey level 2 x the frame number
    shutil.copy(backup, video)
    ns, name = '/cam_cut', 'cam_cut/camera_node'
    node = _fault_node(node_process, str(video), ns, tmp_path, loop=True, rate=50.0)
    sub = listener(ns)
    assert sub.spin_until(lambda: len(sub.images) >= 5), node.output()
    os.truncate(video, video.stat().st_size // 3)
    assert sub.spin_until(lambda: 'truncated' in sub.diagnostic_values(name).get(
        'last_source_error', ''), 20), node.output()
    assert sub.spin_until(lambda: 'ended at frame' in sub.diagnostic_values(name).get(
        'last_source_error', '') and _state(sub, name) == 'reconnecting', 20), node.output()
    assert int(sub.diagnostic_values(name)['source_errors']) >= 2
    tmp = tmp_path / 'restore.avi'
    shutil.copy(backup, tmp)
    os.replace(tmp, video)  # the whole file is back
    sub.images.clear()
    assert sub.spin_until(lambda: max(_levels(sub.images), default=0) > 150, 30), \
        node.output()  # frames far past the cut: the whole file plays again
    assert node.alive(), node.output()
    assert node.stop() == 0, node.output()


def test_video_deleted_while_streaming_then_back(node_process, listener, tmp_path):
    video = tmp_path / 'clip.avi'
    _write_video(video, 200)
    ns, name = '/cam_del', 'cam_del/camera_node'
    node = _fault_node(node_process, str(video), ns, tmp_path, loop=True)
    sub = listener(ns)
    assert sub.spin_until(lambda: len(sub.images) >= 5), node.output()
    video.unlink()
    assert sub.spin_until(lambda: _state(sub, name) == 'reconnecting', 10), node.output()
    assert 'disappeared while streaming' in sub.diagnostic_values(name)['last_source_error']
    count = len(sub.images)
    sub.spin_for(1.0)
    assert len(sub.images) <= count + 1, 'nothing is streamed from a deleted file'
    _write_video(video, 20)
    assert sub.spin_until(lambda: len(sub.images) >= count + 5, 20), node.output()
    assert sub.spin_until(lambda: _state(sub, name) == 'streaming', 5)
    assert node.alive(), node.output()
    assert node.stop() == 0, node.output()


def test_missing_v4l2_device_is_retried_with_backoff(node_process, listener, tmp_path):
    ns, name = '/cam_v4l2', 'cam_v4l2/camera_node'
    node = _fault_node(node_process, '/dev/video97', ns, tmp_path, reconnect_min_s=0.5,
                       reconnect_max_s=4.0)
    sub = listener(ns)
    delays = set()

    def backed_off() -> bool:
        values = sub.diagnostic_values(name)
        if values.get('retry_in_s'):
            delays.add(float(values['retry_in_s']))
        return 4.0 in delays

    assert sub.spin_until(backed_off, 30), node.output()
    assert len(delays) >= 2 and delays <= {0.5, 1.0, 2.0, 4.0}, \
        f'the delay doubles from reconnect_min_s to reconnect_max_s: {sorted(delays)}'
    values = sub.diagnostic_values(name)
    assert values['state'] == 'reconnecting' and 'is it plugged in' in values['_message']
    assert int(values['reconnects']) >= 3 and not sub.images
    assert any(s.level == bytes([2]) for a in sub.diagnostics for s in a.status
               if s.name.endswith(name))  # ERROR while the device is missing
    assert node.alive(), node.output()
    assert node.stop() == 0, node.output()


class MjpegServer:
    """A real MJPEG-over-HTTP camera (multipart/x-mixed-replace JPEG frames, as IP cameras
    serve them) on a loopback port, from the standard library; ``stop()`` drops every client
    and refuses new ones, ``start()`` serves again on the same port."""

    def __init__(self, fps: float = 20.0) -> None:
        self.port = 0
        self.fps = fps
        self.frames = 0
        self._server = None

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}/stream.mjpg'

    def start(self) -> None:
        import http.server
        import threading

        owner = self
        stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header('Content-Type', 'multipart/x-mixed-replace; boundary=frame')
                self.end_headers()
                while not stop.is_set():
                    value = 100 + owner.frames % 100
                    ok, jpeg = cv2.imencode('.jpg', np.full((120, 160, 3), value, np.uint8))
                    data = jpeg.tobytes()
                    try:
                        self.wfile.write(b'--frame\r\nContent-Type: image/jpeg\r\n'
                                         b'Content-Length: %d\r\n\r\n' % len(data) + data +
                                         b'\r\n')
                    except OSError:
                        return
                    owner.frames += 1
                    stop.wait(1.0 / owner.fps)

        server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port), Handler)
        server.daemon_threads = True
        server.stop_event = stop
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop_event.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def mjpeg_server():
    server = MjpegServer()
    server.start()
    yield server
    server.stop()


def test_stream_source_reads_a_real_mjpeg_server_and_fails_when_it_drops(mjpeg_server):
    from edge_vision_core import SourceError
    from edge_vision_core.io.sources import SourceConfig, StreamSource, open_source

    src = open_source(SourceConfig(source=mjpeg_server.url, timeout_s=2.0))
    assert isinstance(src, StreamSource)
    src.open()
    frames = [src.read() for _ in range(3)]
    assert frames[0].image.shape == (120, 160, 3) and frames[-1].index == 2
    mjpeg_server.stop()
    with pytest.raises(SourceError, match='stopped delivering frames'):
        for _ in range(50):
            src.read()
    src.close()
    with pytest.raises(SourceError, match='could not open stream'):
        src.open()


def test_stream_that_drops_is_reconnected(node_process, listener, tmp_path, mjpeg_server):
    ns, name = '/cam_stream', 'cam_stream/camera_node'
    node = _fault_node(node_process, mjpeg_server.url, ns, tmp_path, timeout_s=2.0)
    sub = listener(ns)
    assert sub.spin_until(lambda: len(sub.images) >= 5), node.output()
    assert (sub.images[-1].width, sub.images[-1].height) == (160, 120)
    mjpeg_server.stop()
    assert sub.spin_until(lambda: _state(sub, name) == 'reconnecting', 20), node.output()
    values = sub.diagnostic_values(name)
    assert mjpeg_server.url in values['_message'] and int(values['source_errors']) >= 1
    assert 'stopped delivering frames' in values['last_source_error']
    mjpeg_server.start()  # the camera comes back on the same address
    count = len(sub.images)
    assert sub.spin_until(lambda: len(sub.images) >= count + 5, 30), node.output()
    assert sub.spin_until(lambda: _state(sub, name) == 'streaming', 5)
    assert node.alive(), node.output()
    assert node.stop() == 0, node.output()
