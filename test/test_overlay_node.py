"""overlay_node in its own process: draws results on the image with the same stamp."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_overlay_pairs_by_stamp_draws_and_survives_bad_messages(node_process, ros_context,
                                                               spin_until, publish_until):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from vision_msgs.msg import Detection2DArray, LabelInfo
    from visualization_msgs.msg import Marker, MarkerArray

    from edge_vision.conversions import (
        detections_to_msg,
        image_to_numpy,
        labels_to_label_info,
        meta_to_header,
        model_to_camera_info,
        numpy_to_image,
    )
    from edge_vision.qos import latched_qos
    from edge_vision_core import CameraModel, Detections, FrameMeta

    ns = '/overlay_test'
    # reliable both ways: the test counts the annotated frames, and best-effort frames can be
    # lost on a loaded machine (9 of the 10 awaited arrived in a fresh-clone run)
    node = node_process('edge_vision.overlay_node', {
        'diagnostics_period': 0.3, 'qos.subscriber_reliability': 'reliable'}, ns)
    test_node = rclpy.create_node('overlay_driver', context=ros_context)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_img = test_node.create_publisher(Image, f'{ns}/image', reliable)
    pub_det = test_node.create_publisher(Detection2DArray, f'{ns}/tracks', reliable)
    pub_labels = test_node.create_publisher(LabelInfo, f'{ns}/label_info', latched_qos())
    pub_info = test_node.create_publisher(CameraInfo, f'{ns}/image/camera_info', reliable)
    out, diags, markers = [], [], []
    test_node.create_subscription(MarkerArray, f'{ns}/markers', markers.append, reliable)
    test_node.create_subscription(Image, f'{ns}/image_annotated', out.append, reliable)
    test_node.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(test_node)
    assert spin_until(executor, lambda: pub_img.get_subscription_count() > 0 and
                      pub_det.get_subscription_count() > 0 and
                      test_node.count_publishers(f'{ns}/image_annotated') > 0 and
                      pub_info.get_subscription_count() > 0, 20), node.output()
    labels = ['person', 'car']
    pub_labels.publish(labels_to_label_info(labels))
    base = np.full((120, 160, 3), 30, np.uint8)
    # warm-up pair until the overlay answers, so no frame below is lost to discovery
    warm = meta_to_header(FrameMeta(1, 'cam_optical'))
    assert publish_until(executor, [(pub_img, numpy_to_image(base, 'bgr8', warm)),
                                    (pub_det, detections_to_msg(Detections.empty(), warm))],
                         lambda: bool(out), 20), node.output()
    out.clear()
    sent = []
    camera = CameraModel.from_intrinsics(160, 120, 150.0, 140.0, 79.5, 59.5)
    for i in range(12):
        meta = FrameMeta(1_000_000_000 * (100 + i), 'cam_optical')
        header = meta_to_header(meta)
        pub_info.publish(model_to_camera_info(camera, header))
        dets = Detections([[20, 30, 80, 90]], [0.9], [1], track_ids=[5])
        # results before the image for odd frames: pairing must not care about order
        msgs = [numpy_to_image(base, 'bgr8', header), detections_to_msg(dets, header, labels)]
        for msg in (msgs if i % 2 == 0 else msgs[::-1]):
            (pub_img if isinstance(msg, Image) else pub_det).publish(msg)
        sent.append(header)
        # keep taking what arrives (annotated images and markers) so no queue overflows
        until = time.monotonic() + 0.1
        while time.monotonic() < until:
            executor.spin_once(timeout_sec=0.01)
    bad = detections_to_msg(Detections([[0, 0, 5, 5], [1, 1, 4, 4]], [1, 1], [0, 0],
                                       track_ids=[1, 2]), sent[0], labels)
    bad.detections[0].id = 'not-a-number'
    pub_det.publish(bad)
    # the warm-up pair was sent every 0.2 s until one came back drawn, so a later copy of it
    # can still arrive after the clear above: it is the only other stamp allowed
    warm_stamp = (warm.stamp.sec, warm.stamp.nanosec)

    def drawn():
        return [m for m in out if (m.header.stamp.sec, m.header.stamp.nanosec) != warm_stamp]

    assert spin_until(executor, lambda: len(drawn()) >= 10, 20), (len(out), node.output())
    stamps = {(h.stamp.sec, h.stamp.nanosec) for h in sent}
    assert all((m.header.stamp.sec, m.header.stamp.nanosec) in stamps for m in drawn())
    assert drawn()[-1].header.frame_id == 'cam_optical'
    img = image_to_numpy(drawn()[-1])
    assert img.shape == (120, 160, 3)
    edge = img[30, 20:80]  # the top edge of the box is drawn in the track's colour
    assert np.abs(edge.astype(int) - 30).max() > 60
    # markers: the box at the assumed depth, in the image's optical frame, cast through the
    # calibration that came on image/camera_info
    assert spin_until(executor, lambda: any(m.markers[0].header.stamp == sent[-1].stamp
                                            for m in markers), 20), node.output()
    last = next(m for m in markers if m.markers[0].header.stamp == sent[-1].stamp)
    assert all(m.header.frame_id == 'cam_optical' for m in last.markers)
    outline = next(m for m in last.markers if m.type == Marker.LINE_STRIP)
    points = np.array([[p.x, p.y, p.z] for p in outline.points])
    assert np.allclose(points[:, 2], 3.0)  # marker_depth_m default
    pixels = (points @ camera.K.T)[:, :2] / points[:, 2:]
    assert np.allclose(pixels[:4], [[20, 30], [80, 30], [80, 90], [20, 90]], atol=1e-6)
    text = next(m for m in last.markers if m.type == Marker.TEXT_VIEW_FACING)
    assert text.text == '#5 car 0.90'
    assert spin_until(executor, lambda: 'dropped a message on /overlay_test/tracks'
                      in node.output(), 10), node.output()

    def diag(key):
        for array in reversed(diags):
            for status in array.status:
                if status.name.endswith('overlay_node'):
                    return {kv.key: kv.value for kv in status.values}.get(key)
        return None

    assert spin_until(executor, lambda: diag('bad_messages') == '1', 10)
    assert diag('marker_camera') == 'calibrated'
    assert node.alive()
    executor.shutdown()
    test_node.destroy_node()
    assert node.stop() == 0


def test_overlay_blends_the_segmentation_mask_of_the_same_stamp(node_process, ros_context,
                                                                spin_until, publish_until):
    """show_mask: the mask with the image's stamp is blended (background left clear); a mask
    of another size is counted and not drawn; a mask in a colour encoding is refused."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from edge_vision.conversions import (
        detections_to_msg,
        image_to_numpy,
        meta_to_header,
        numpy_to_image,
    )
    from edge_vision_core import Detections, FrameMeta

    ns = '/overlay_mask'
    node = node_process('edge_vision.overlay_node',
                        {'show_mask': True, 'mask_max_age_s': 0.0, 'show_hud': False,
                         'publish_markers': False, 'diagnostics_period': 0.3}, ns)
    driver = rclpy.create_node('overlay_mask_driver', context=ros_context)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub_img = driver.create_publisher(Image, f'{ns}/image', reliable)
    pub_det = driver.create_publisher(Detection2DArray, f'{ns}/tracks', reliable)
    pub_mask = driver.create_publisher(Image, f'{ns}/mask', reliable)
    out, diags = [], []
    driver.create_subscription(Image, f'{ns}/image_annotated', out.append,
                               qos_profile_sensor_data)
    driver.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(driver)
    assert spin_until(executor, lambda: pub_mask.get_subscription_count() > 0 and
                      pub_img.get_subscription_count() > 0 and
                      driver.count_publishers(f'{ns}/image_annotated') > 0, 20), node.output()
    base = np.full((60, 80, 3), 100, np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    mask[:, 40:] = 1

    def send(stamp, mask_image, encoding='mono8'):
        header = meta_to_header(FrameMeta(stamp, 'cam'))
        # the mask first: it must be there when the image/results pair completes
        return [(pub_mask, numpy_to_image(mask_image, encoding, header)),
                (pub_img, numpy_to_image(base, 'bgr8', header)),
                (pub_det, detections_to_msg(Detections.empty(), header))]

    assert publish_until(executor, send(5_000_000_000, mask),
                         lambda: any(image_to_numpy(m)[30, 60].tolist() != [100] * 3
                                     for m in out), 30), node.output()
    drawn = next(image_to_numpy(m) for m in out if image_to_numpy(m)[30, 60].tolist()
                 != [100] * 3)
    assert np.all(drawn[:, :40] == 100)  # background stays clear
    assert np.abs(drawn[:, 45:].astype(int) - 100).max() > 40

    def diag(key):
        for array in reversed(diags):
            for status in array.status:
                if status.name.endswith('overlay_node'):
                    return {kv.key: kv.value for kv in status.values}.get(key)
        return None

    assert publish_until(executor, send(6_000_000_000, np.zeros((30, 40), np.uint8)),
                         lambda: (diag('masks_mismatched') or '0') != '0', 30), node.output()
    assert publish_until(executor, send(7_000_000_000, base, 'bgr8'),
                         lambda: 'dropped a message on /overlay_mask/mask' in node.output(), 30)
    assert 'mono8 or mono16' in node.output()
    assert node.alive()
    executor.shutdown()
    driver.destroy_node()
    assert node.stop() == 0


def test_overlay_publishes_instance_masks_of_the_same_stamp(node_process, ros_context,
                                                             spin_until, publish_until):
    """publish_instances: the results and the class mask of one stamp give instance_mask with
    the results' header, pixel = index + 1 of the result owning it (its own class's pixels,
    the higher score on overlaps), outlined on image_annotated; a mask with ids mask_labels
    does not know is counted, not published."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from edge_vision.conversions import (
        detections_to_msg,
        image_to_numpy,
        meta_to_header,
        numpy_to_image,
    )
    from edge_vision_core import Detections, FrameMeta
    from edge_vision_core.viz import color_for

    ns = '/overlay_instances'
    node = node_process('edge_vision.overlay_node',
                        {'show_mask': True, 'publish_instances': True, 'mask_max_age_s': 0.0,
                         'show_hud': False, 'publish_markers': False, 'mask_alpha': 0.0,
                         'diagnostics_period': 0.3}, ns)
    driver = rclpy.create_node('overlay_instance_driver', context=ros_context)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {name: driver.create_publisher(kind, f'{ns}/{name}', reliable)
            for name, kind in (('image', Image), ('tracks', Detection2DArray), ('mask', Image))}
    instances, annotated = [], []
    driver.create_subscription(Image, f'{ns}/instance_mask', instances.append,
                               qos_profile_sensor_data)
    driver.create_subscription(Image, f'{ns}/image_annotated', annotated.append,
                               qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(driver)
    assert spin_until(executor, lambda: all(p.get_subscription_count() > 0
                                            for p in pubs.values()) and
                      driver.count_publishers(f'{ns}/instance_mask') > 0, 30), node.output()
    mask = np.zeros((60, 80), np.uint8)
    mask[10:50, 20:70] = 1  # person pixels
    # a person (index 0), a weaker person overlapping it (1), a car whose class the mask
    # does not have (2): the car gets no pixels, the overlap goes to the stronger person
    dets = Detections([[10, 0, 50, 60], [40, 0, 80, 60], [0, 0, 80, 60]], [0.9, 0.5, 0.8],
                      [0, 0, 1], track_ids=[7, 8, 9])
    labels = ('person', 'car')

    def send(stamp, mask_image):
        header = meta_to_header(FrameMeta(stamp, 'cam'))
        return header, [(pubs['mask'], numpy_to_image(mask_image, 'mono8', header)),
                        (pubs['image'], numpy_to_image(np.full((60, 80, 3), 100, np.uint8),
                                                       'bgr8', header)),
                        (pubs['tracks'], detections_to_msg(dets, header, labels))]

    header, msgs = send(5_000_000_000, mask)
    assert publish_until(executor, msgs, lambda: instances and annotated, 30), node.output()
    msg = instances[-1]
    assert msg.header == header and msg.encoding == 'mono8'
    inst = image_to_numpy(msg)
    expected = np.zeros((60, 80), np.uint8)
    expected[10:50, 20:50] = 1
    expected[10:50, 50:70] = 2
    assert np.array_equal(inst, expected)

    def outlined():  # the outline of instance 1 in its track's colour (an image drawn before
        # the mask arrived has none; the instance image may arrive before its annotated image)
        return any(m.header == header and tuple(image_to_numpy(m)[30, 20]) == color_for(7)
                   for m in annotated)

    assert publish_until(executor, msgs, outlined, 20)

    bad_header, msgs = send(6_000_000_000, np.full((60, 80), 4, np.uint8))  # id 4: unknown
    assert publish_until(executor, msgs, lambda: 'class id(s) 4' in node.output(), 30)
    assert spin_until(executor, lambda: any(m.header == bad_header for m in annotated), 10)
    assert not any(m.header == bad_header for m in instances)
    assert node.alive()
    executor.shutdown()
    driver.destroy_node()
    assert node.stop() == 0
