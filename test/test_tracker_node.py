"""tracker_node in its own process: stable ids through occlusion, bad input counted."""

from __future__ import annotations

import collections

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_ids_survive_occlusion_and_bad_input_is_counted(node_process, ros_context,
                                                        spin_until, publish_until):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection2DArray

    from edge_vision.conversions import detections_to_msg, meta_to_header, msg_to_detections
    from edge_vision_core import Detections, FrameMeta
    from edge_vision_core.io.synthetic import SyntheticConfig, SyntheticScene

    ns = '/tracker_test'
    node = node_process('edge_vision.tracker_node', {'diagnostics_period': 0.3}, ns)
    test_node = rclpy.create_node('tracker_driver', context=ros_context)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    pub = test_node.create_publisher(Detection2DArray, f'{ns}/detections', reliable)
    tracks, diags = [], []
    test_node.create_subscription(Detection2DArray, f'{ns}/tracks', tracks.append, reliable)
    test_node.create_subscription(DiagnosticArray, '/diagnostics', diags.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(test_node)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0 and
                      test_node.count_publishers(f'{ns}/tracks') > 0, 20), node.output()

    # warm-up: empty frames (older stamps) until the tracker answers, so no real frame is lost
    # while discovery completes
    warm = detections_to_msg(Detections.empty(), meta_to_header(FrameMeta(1, 'cam')))
    stamp = [1]

    def fresh_warmup():
        stamp[0] += 1
        warm.header = meta_to_header(FrameMeta(stamp[0], 'cam'))
        return bool(tracks)

    assert publish_until(executor, [(pub, warm)], fresh_warmup, 20), node.output()
    tracks.clear()
    scene = SyntheticScene(SyntheticConfig(num_objects=3, speed=5.0, seed=4))
    truth_by_stamp = {}
    hidden_frames = 0
    answers = 0  # tracks messages the tracker owes (an ignored stamp gets none)
    for i in range(150):
        _, truth = scene.render(i)
        hidden_frames += 3 - len(truth)
        meta = FrameMeta(5_000_000_000 + i * 33_333_333, 'cam')
        dets = Detections(truth.boxes, np.full(len(truth), 0.9), np.zeros(len(truth)))
        pub.publish(detections_to_msg(dets, meta_to_header(meta)))
        answers += 1
        truth_by_stamp[meta.sec_nanosec] = truth
        if i == 75:  # a repeated stamp and a NaN box: ignored and counted, not fatal
            pub.publish(detections_to_msg(dets, meta_to_header(meta)))
            nan = Detections([[np.nan, 0, 10, 10]], [0.9], [0])
            pub.publish(detections_to_msg(nan, meta_to_header(
                FrameMeta(meta.stamp_ns + 1, 'cam'))))
            answers += 1
        # at most a few frames ahead of the tracker: on a busy machine a 250 Hz burst would
        # outrun its reliable history (DDS drops the oldest unread message of a full one)
        assert spin_until(executor, lambda n=answers: len(tracks) >= n - 8, 20), node.output()
    assert hidden_frames > 0, 'the occluder must hide objects at some point'
    assert spin_until(executor, lambda: len(tracks) >= 140, 30), node.output()

    # every ground-truth object should be followed by exactly one track id
    ids_per_object = collections.defaultdict(set)
    for msg in tracks:
        truth = truth_by_stamp.get((msg.header.stamp.sec, msg.header.stamp.nanosec))
        got = msg_to_detections(msg)
        if truth is None:  # warm-up or the NaN-only message: nothing to track
            assert len(got) == 0
            continue
        if len(got) == 0:
            continue
        for box, tid in zip(got.boxes, got.track_ids, strict=True):
            ious = _iou(box, truth.boxes)
            if len(ious) and ious.max() > 0.9:
                ids_per_object[int(truth.track_ids[ious.argmax()])].add(int(tid))
    assert len(ids_per_object) == 3
    assert all(len(ids) == 1 for ids in ids_per_object.values()), dict(ids_per_object)
    assert all(m.header.frame_id == 'cam' for m in tracks)

    def stat(key):
        for array in reversed(diags):
            for status in array.status:
                if status.name.endswith('tracker_node'):
                    return {kv.key: kv.value for kv in status.values}.get(key)
        return None

    assert spin_until(executor, lambda: stat('ignored_stamps') == '1' and
                      stat('dropped_invalid_boxes') == '1', 10), (stat('ignored_stamps'),
                                                                 stat('dropped_invalid_boxes'))
    assert 'not after the previous stamp' in node.output()
    assert node.alive()
    executor.shutdown()
    test_node.destroy_node()
    assert node.stop() == 0


def _iou(box, boxes):
    boxes = np.asarray(boxes)
    if boxes.size == 0:
        return np.zeros(0)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def _tracker_driver(ros_context, ns, diagnostics, with_images=False):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray, LabelInfo

    from edge_vision.qos import latched_qos

    node = rclpy.create_node('tracker_driver2', context=ros_context)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {'detections': node.create_publisher(Detection2DArray, f'{ns}/detections', reliable),
            'labels': node.create_publisher(LabelInfo, f'{ns}/label_info', latched_qos())}
    if with_images:
        pubs['image'] = node.create_publisher(Image, f'{ns}/image', reliable)
    tracks = []
    node.create_subscription(Detection2DArray, f'{ns}/tracks', tracks.append, reliable)
    diags = diagnostics(node)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    return node, pubs, tracks, executor, lambda key: diags.value(f'{ns}/tracker_node', key)


def _dets_msg(stamp_ns, centres):
    from edge_vision.conversions import detections_to_msg, meta_to_header
    from edge_vision_core import Detections, FrameMeta

    boxes = [[x - 15, y - 30, x + 15, y + 30] for x, y in centres]
    return detections_to_msg(Detections(boxes, [0.9] * len(boxes), [0] * len(boxes)),
                             meta_to_header(FrameMeta(stamp_ns, 'cam')))


def test_recovers_from_a_far_future_stamp_and_refuses_an_absurd_label_info(
        node_process, ros_context, spin_until, publish_until, diagnostics):
    from vision_msgs.msg import LabelInfo, VisionClass

    ns = '/tracker_jump'
    proc = node_process('edge_vision.tracker_node', {'diagnostics_period': 0.2}, ns)
    node, pubs, tracks, executor, stat = _tracker_driver(ros_context, ns, diagnostics)
    assert spin_until(executor, lambda: pubs['detections'].get_subscription_count() > 0, 30)
    # a LabelInfo with class id 65535 (it stalled the node for 20-26 s): refused at once
    pubs['labels'].publish(LabelInfo(class_map=[VisionClass(class_id=0, class_name='person'),
                                                VisionClass(class_id=65535, class_name='x')]))
    warm = _dets_msg(1, [(50, 80)])

    def answered():
        # a fresh stamp for each resend: the tracker takes a stamp once, so the answer to a
        # repeated one (sent before its tracks publisher matched this subscriber) never comes
        warm.header.stamp.nanosec += 1
        return bool(tracks)

    assert publish_until(executor, [(pubs['detections'], warm)], answered, 30), proc.output()
    assert spin_until(executor, lambda: stat('bad_messages') == '1', 10), proc.output()
    assert 'label_info' in proc.output() and 'class id 65535 is out of range' in proc.output()
    base = 10_000_000_000
    for i in range(5):  # a person walking right
        pubs['detections'].publish(_dets_msg(base + i * 100_000_000, [(100 + 5 * i, 200)]))
    pubs['detections'].publish(_dets_msg(base + 86_400 * 10**9, [(300, 300)]))  # a day ahead
    after = [base + (5 + i) * 100_000_000 for i in range(10)]
    for i, stamp in enumerate(after):
        pubs['detections'].publish(_dets_msg(stamp, [(125 + 5 * i, 200)]))
        spin_until(executor, lambda: False, 0.02)

    def stamps():
        return {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in tracks}

    assert spin_until(executor, lambda: set(after) <= stamps(), 20), \
        (sorted(stamps()), proc.output())
    resumed = [m for m in tracks if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
               in after[1:]]
    assert all(len(m.detections) == 1 and m.detections[0].id for m in resumed)
    assert spin_until(executor, lambda: stat('time_resets') == '1', 10), proc.output()
    assert 'tracks reset' in proc.output()
    assert proc.alive()
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0


def test_camera_motion_pairs_images_with_detections_by_stamp(node_process, ros_context,
                                                             spin_until, publish_until,
                                                             diagnostics):
    """With camera_motion the tracker's one input pairs each detections message with the image
    of its stamp; detections whose image never comes are dropped and counted, never paired with
    another image. The tracker is frozen (SIGSTOP) while three images are sent: it must still
    get them (a reader keeping only the newest frame lost two, and their detections)."""
    import os
    import signal

    from edge_vision.conversions import meta_to_header, numpy_to_image
    from edge_vision_core import FrameMeta

    ns = '/tracker_cmc'
    proc = node_process('edge_vision.tracker_node', {
        'diagnostics_period': 0.2, 'camera_motion': 'sparse_flow'}, ns)
    node, pubs, tracks, executor, stat = _tracker_driver(ros_context, ns, diagnostics,
                                                         with_images=True)
    assert spin_until(executor, lambda: pubs['detections'].get_subscription_count() > 0 and
                      pubs['image'].get_subscription_count() > 0, 30), proc.output()
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 255, (240, 400, 3), dtype=np.uint8)

    def image(stamp, shift):
        view = np.ascontiguousarray(texture[:, shift:shift + 320])
        return numpy_to_image(view, 'bgr8', meta_to_header(FrameMeta(stamp, 'cam')))

    warm = [image(1_000_000_000, 0), _dets_msg(1_000_000_000, [(100, 100)])]

    def answered():
        # a fresh stamp for each resend: the tracker takes a stamp once, so the answer to a
        # repeated one (sent before its tracks publisher matched this subscriber) never comes
        for msg in warm:
            msg.header.stamp.nanosec += 1
        return bool(tracks)

    assert publish_until(executor, [(pubs['image'], warm[0]), (pubs['detections'], warm[1])],
                         answered, 30), proc.output()
    tracks.clear()
    paired, orphans = [], []
    for i in range(12):
        if i == 1:
            os.kill(proc.proc.pid, signal.SIGSTOP)  # a stalled node: CPU contention, a slow GC
        elif i == 4:
            os.kill(proc.proc.pid, signal.SIGCONT)
        stamp = 5_000_000_000 + i * 100_000_000
        if i in (4, 8):
            orphans.append(stamp)  # detections without an image
        else:
            paired.append(stamp)
            pubs['image'].publish(image(stamp, 2 * i))
            spin_until(executor, lambda: False, 0.05)  # the image reaches the best-effort sub
        pubs['detections'].publish(_dets_msg(stamp, [(150 + 3 * i, 120)]))
        spin_until(executor, lambda: False, 0.1)

    def stamps():  # the answer to a warm-up pair sent just before the clear may come after it
        return [s for s in (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in tracks)
                if s >= 5_000_000_000]

    assert spin_until(executor, lambda: len(stamps()) >= len(paired) - 1, 20), \
        (stamps(), proc.output())
    assert set(stamps()) <= set(paired), 'tracks only for detections paired with their image'
    assert not set(stamps()) & set(orphans)
    assert spin_until(executor, lambda: int(stat('unpaired_dropped') or 0) >= len(orphans), 10)
    assert int(stat('paired')) >= len(paired) - 1
    assert proc.alive()
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0
