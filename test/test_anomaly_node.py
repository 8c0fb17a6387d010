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
                                                       publish_until, brick_crops, tmp_path):
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
    future = client.call_async(Trigger.Request())
    assert spin_until(executor, future.done, 20) and future.result().success
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
    assert 'learned normal appearance' in proc.output()
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
