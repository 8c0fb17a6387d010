"""anomaly_node in its own process: learn normal on the live stream, then flag and localise."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


@pytest.fixture(scope='module')
def brick_crops():
    data = pytest.importorskip('skimage.data')
    import cv2

    brick = cv2.cvtColor(data.brick(), cv2.COLOR_GRAY2BGR)
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(42):
        y, x = rng.integers(0, brick.shape[0] - 256), rng.integers(0, brick.shape[1] - 256)
        crops.append(np.ascontiguousarray(brick[y:y + 256, x:x + 256]))
    return crops


def test_learns_normal_then_flags_a_defect_where_it_is(node_process, ros_context, spin_until,
                                                       publish_until, call_service, brick_crops,
                                                       tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger
    from vision_msgs.msg import Classification, Detection2DArray

    from edge_vision.conversions import meta_to_header, msg_to_detections, numpy_to_image
    from edge_vision_core import FrameMeta

    ns = '/anomaly_test'
    model = tmp_path / 'model.npz'
    proc = node_process('edge_vision.anomaly_node', {
        'learn_frames': 30, 'learn_every': 1, 'save_path': str(model), 'threads': 1,
        'max_input_side': 256}, ns)
    node = rclpy.create_node('anomaly_driver', context=ros_context)
    reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, f'{ns}/image', reliable)
    results, regions = [], []
    node.create_subscription(Classification, f'{ns}/anomaly', results.append, reliable)
    node.create_subscription(Detection2DArray, f'{ns}/anomaly/regions', regions.append,
                             reliable)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    client = node.create_client(Trigger, f'{ns}/anomaly_node/learn_normal')
    assert client.wait_for_service(timeout_sec=30), proc.output()
    # asked again if no answer comes (a second call restarts the collection: no frame yet)
    answer = call_service(executor, client, Trigger.Request())
    assert answer is not None and answer.success, proc.output()
    stamp = [1_000_000_000]

    def send(image):
        stamp[0] += 50_000_000
        return numpy_to_image(image, 'bgr8', meta_to_header(FrameMeta(stamp[0], 'insp')))

    i = 0
    deadline = time.monotonic() + 240  # 30 frames and a fit; minutes on a loaded machine
    while not model.exists() and time.monotonic() < deadline:
        pub.publish(send(brick_crops[i % 40]))
        spin_until(executor, lambda: False, 0.15)
        i += 1
    assert model.exists(), proc.output()
    assert 'learned normal appearance' in proc.wait_for_output('learned normal appearance')
    normal = brick_crops[41]
    defect = brick_crops[40].copy()
    defect[150:190, 60:110] = (30, 200, 240)  # a foreign object

    def answer_to(msg, received):
        """The output for ``msg`` (same stamp): on a loaded machine results of earlier frames
        still arrive after the next frame is sent."""
        return next((r for r in reversed(received) if r.header.stamp == msg.header.stamp), None)

    normal_msg, defect_msg = send(normal), send(defect)
    assert publish_until(executor, [(pub, normal_msg)],
                         lambda: answer_to(normal_msg, results), 30)
    normal_conf = answer_to(normal_msg, results).results[0].score
    assert publish_until(executor, [(pub, defect_msg)],
                         lambda: answer_to(defect_msg, results)
                         and answer_to(defect_msg, regions), 30)
    anomalous = answer_to(defect_msg, results)
    assert anomalous.results[0].class_id == 'anomaly'
    assert anomalous.results[0].score > 0.5 > normal_conf, (anomalous.results[0].score,
                                                           normal_conf)
    boxes = msg_to_detections(answer_to(defect_msg, regions), ['anomaly']).boxes
    assert len(boxes) >= 1
    cx, cy = (boxes[0, 0] + boxes[0, 2]) / 2, (boxes[0, 1] + boxes[0, 3]) / 2
    assert 40 <= cx <= 130 and 130 <= cy <= 210, boxes
    assert anomalous.header.frame_id == 'insp'
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0


def test_a_model_for_another_backbone_fails_configure(node_process, tmp_path):

    bad = tmp_path / 'bad.npz'
    bad.write_bytes(b'not a model')
    proc = node_process('edge_vision.anomaly_node', {'model_path': str(bad)}, '/anomaly_bad')
    proc.wait_for_output('configure failed')
    assert 'configure failed' in proc.output() and 'bad.npz' in proc.output(), proc.output()
    assert proc.alive()
    assert proc.stop() == 0


def test_the_refit_runs_beside_the_image_handler(node_process, ros_context, spin_until,
                                                brick_crops, tmp_path):
    """While learn-normal mode refits (seconds), the node keeps receiving frames and
    publishing diagnostics (the refit used to run inside the image handler, stalling the
    executor and then reporting the stream as stalled)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from edge_vision.conversions import meta_to_header, numpy_to_image
    from edge_vision_core import FrameMeta

    ns = '/anomaly_refit'
    model = tmp_path / 'model.npz'
    proc = node_process('edge_vision.anomaly_node', {
        'learn_on_start': True, 'learn_frames': 30, 'learn_every': 1, 'save_path': str(model),
        'threads': 1, 'max_input_side': 256, 'diagnostics_period': 0.2,
        'input_timeout_s': 2.0}, ns)
    node = rclpy.create_node('refit_driver', context=ros_context)
    pub = node.create_publisher(Image, f'{ns}/image',
                                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    seen = []  # (learning, received) of each anomaly_node status

    def on_diag(array):
        for status in array.status:
            if status.name == f'{ns}/anomaly_node':
                values = {kv.key: kv.value for kv in status.values}
                seen.append((values.get('learning'),
                             int(values.get(f'received {ns}/image', '0'))))

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 50)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 30), proc.output()
    stamp = 1_000_000_000
    i = 0
    deadline = time.monotonic() + 300  # the refit takes seconds, minutes on a busy machine
    while not model.exists() and time.monotonic() < deadline:
        stamp += 50_000_000
        pub.publish(numpy_to_image(brick_crops[i % 40], 'bgr8',
                                   meta_to_header(FrameMeta(stamp, 'insp'))))
        spin_until(executor, lambda: False, 0.1)
        i += 1
    assert model.exists(), proc.output()
    spin_until(executor, lambda: False, 1.0)
    refitting = [received for learning, received in seen if learning == 'refitting']
    assert len(refitting) >= 2, (seen, proc.output())
    assert refitting[-1] > refitting[0], 'frames must keep arriving while the model refits'
    assert 'learned normal appearance' in proc.wait_for_output('learned normal appearance')
    assert 'upstream node stalled' not in proc.output()
    assert 'nothing received' not in proc.output()
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0


def _broken_model(tmp_path, key, value):
    """A real fitted model file (colour features only) whose header says ``key: value``."""
    import json

    from edge_vision_core.anomaly import AnomalyConfig, AnomalyDetector

    rng = np.random.default_rng(0)
    detector = AnomalyDetector(AnomalyConfig(backbone='none', layers=('color8', 'color16'),
                                             max_input_side=64))
    detector.fit([rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(6)])
    good = detector.save(tmp_path / 'good.npz')
    detector.close()
    with np.load(good, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(bytes(arrays['header']).decode('utf-8'))
    header[key] = value
    arrays['header'] = np.frombuffer(json.dumps(header).encode('utf-8'), np.uint8)
    path = tmp_path / f'broken_{key}.npz'
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(('key', 'value'), [('threshold', 'high'), ('layers', 5),
                                            ('input_size', [100000, 100000])])
def test_a_model_file_with_wrong_header_types_fails_configure_naming_it(
        node_process, ros_context, spin_until, tmp_path, key, value):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    path = _broken_model(tmp_path, key, value)
    ns = f'/anomaly_broken_{key}'
    proc = node_process('edge_vision.anomaly_node', {
        'model_path': str(path), 'backbone': 'none', 'layers': '[color8, color16]',
        'diagnostics_period': 0.2}, ns)
    out = proc.wait_for_output('configure failed')
    assert f'anomaly model {path}' in out and repr(key) in out, out  # the file and the field
    node = rclpy.create_node('broken_listener', context=ros_context)
    statuses = []
    node.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda a: statuses.extend(s for s in a.status if s.name == f'{ns}/anomaly_node'), 50)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    assert spin_until(executor, lambda: len(statuses) >= 2, 20), proc.output()
    assert statuses[-1].level == bytes([2])  # ERROR, not OK, after a failed configure
    assert statuses[-1].message.startswith('configure failed') and str(path) in \
        statuses[-1].message
    assert 'diagnostics failed' not in statuses[-1].message
    assert proc.alive()
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0
