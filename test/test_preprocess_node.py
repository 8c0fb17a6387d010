"""preprocess_node in its own process: corrected images, rectified calibration, quality."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def dark_image():
    data = pytest.importorskip('skimage.data')
    img = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    return (img.astype(np.float32) * 0.25).astype(np.uint8)  # badly under-exposed


class Driver:
    def __init__(self, context, ns):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.node = rclpy.create_node('preprocess_driver', context=context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_image = self.node.create_publisher(Image, f'{ns}/image_raw', reliable)
        self.pub_info = self.node.create_publisher(CameraInfo, f'{ns}/camera_info', reliable)
        self.images, self.infos, self.quality, self.diags = [], [], [], []
        self.node.create_subscription(Image, f'{ns}/image', self.images.append, reliable)
        self.node.create_subscription(CameraInfo, f'{ns}/image/camera_info', self.infos.append,
                                      reliable)
        self.node.create_subscription(DiagnosticArray, f'{ns}/quality', self.quality.append,
                                      reliable)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.diags.append, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def test_correction_rectification_and_quality(node_process, ros_context, spin_until,
                                              publish_until, dark_image):
    from edge_vision.conversions import (
        image_to_numpy,
        meta_to_header,
        model_to_camera_info,
        numpy_to_image,
    )
    from edge_vision_core import CameraModel, FrameMeta

    ns = '/pre_test'
    proc = node_process('edge_vision.preprocess_node', {'diagnostics_period': 0.3}, ns)
    d = Driver(ros_context, ns)
    assert spin_until(d.executor, lambda: d.pub_image.get_subscription_count() > 0 and
                      d.pub_info.get_subscription_count() > 0, 20), proc.output()
    h, w = dark_image.shape[:2]
    cam = CameraModel.from_intrinsics(w, h, 400.0, 400.0, w / 2, h / 2,
                                      [-0.2, 0.05, 0.0, 0.0, 0.0])
    header = meta_to_header(FrameMeta(42_000_000_007, 'astro_optical'))
    info_msg = model_to_camera_info(cam, header)
    image_msg = numpy_to_image(dark_image, 'bgr8', header)

    def rectified():
        return any(i.header == header and i.k[0] > 0 for i in d.infos)

    def undistorted_quality():
        # frames that reach the node before its first camera_info pass through without
        # undistortion, so wait for the report of one that was undistorted
        return [q for q in d.quality
                if 'undistort' in {kv.key: kv.value for kv in q.status[0].values}['steps']]

    assert publish_until(d.executor, [(d.pub_info, info_msg), (d.pub_image, image_msg)],
                          lambda: d.images and undistorted_quality() and rectified()), \
        proc.output()
    out = image_to_numpy(d.images[-1])
    assert d.images[-1].header == header
    assert out.mean() > dark_image.mean() * 1.5, 'exposure correction brightens the frame'
    rect = next(i for i in d.infos if i.header == header and i.k[0] > 0)
    assert not any(rect.d) and rect.k[0] > 0, 'rectified camera_info has no distortion'
    quality = undistorted_quality()[-1]
    assert quality.header == header
    values = {kv.key: kv.value for kv in quality.status[0].values}
    assert float(values['brightness']) < 0.25
    assert 'exposure' in values['steps']
    # a camera_info of another size: passthrough without undistortion, with a warning
    other = CameraModel.from_intrinsics(320, 240, 200, 200, 160, 120, [-0.2, 0, 0, 0, 0])
    count = len(d.images)
    assert publish_until(d.executor, [(d.pub_info, model_to_camera_info(other, header)),
                                      (d.pub_image, image_msg)],
                         lambda: '320x240' in proc.output() and len(d.images) > count), \
        proc.output()
    assert 'undistort' in proc.output().lower()  # skipped, said why; the frame passed through
    # an encoding it cannot process: refused, counted, the node stays up
    depth = numpy_to_image(np.zeros((4, 4), np.float32), '32FC1', header)
    assert publish_until(d.executor, [(d.pub_image, depth)],
                         lambda: '32FC1' in proc.output(), 10), proc.output()
    assert proc.alive()
    d.close()
    assert proc.stop() == 0


def test_gate_drop_is_counted_not_silent(node_process, ros_context, spin_until, publish_until,
                                         dark_image):
    from edge_vision.conversions import meta_to_header, numpy_to_image
    from edge_vision_core import FrameMeta

    ns = '/pre_gate'
    proc = node_process('edge_vision.preprocess_node', {
        'gate_action': 'drop', 'gate_min_brightness': 0.3, 'diagnostics_period': 0.3}, ns)
    d = Driver(ros_context, ns)
    assert spin_until(d.executor, lambda: d.pub_image.get_subscription_count() > 0, 20)
    msg = numpy_to_image(dark_image, 'bgr8', meta_to_header(FrameMeta(10_000_000_000, 'cam')))

    def dropped():
        for array in reversed(d.diags):
            for status in array.status:
                if status.name.endswith('pre_gate/preprocess_node'):
                    return {kv.key: kv.value for kv in status.values}.get('gate_dropped')
        return None

    assert publish_until(d.executor, [(d.pub_image, msg)],
                          lambda: int(dropped() or 0) >= 3 and len(d.quality) >= 3), proc.output()
    assert not d.images
    assert 'dropped a frame at the quality gate' in proc.output()
    reasons = {kv.key: kv.value for kv in d.quality[-1].status[0].values}['reasons']
    assert 'too_dark' in reasons
    d.close()
    assert proc.stop() == 0
