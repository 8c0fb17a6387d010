"""The malformed messages that once killed five nodes (found by fuzzing): every node stays up,
counts them in /diagnostics, and handles the next valid message."""

from __future__ import annotations

import array

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _image(encoding, width, height, step, data, stamp=5):
    from sensor_msgs.msg import Image

    from edge_vision.conversions import meta_to_header
    from edge_vision_core import FrameMeta

    msg = Image(height=height, width=width, encoding=encoding, step=step,
                header=meta_to_header(FrameMeta(stamp, 'cam')))
    msg.data = array.array('B', data)
    return msg


def _results(class_id='0', track_id='', stamp=5):
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    from edge_vision.conversions import meta_to_header
    from edge_vision_core import FrameMeta

    det = Detection2D(id=track_id)
    det.bbox.center.position.x, det.bbox.center.position.y = 20.0, 20.0
    det.bbox.size_x = det.bbox.size_y = 10.0
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id, hyp.hypothesis.score = class_id, 0.9
    det.results.append(hyp)
    return Detection2DArray(header=meta_to_header(FrameMeta(stamp, 'cam')), detections=[det])


BAD_IMAGES = [
    ('empty rgb8', lambda: _image('rgb8', 0, 4, 0, b'')),
    ('empty mono16', lambda: _image('mono16', 4, 0, 8, b'')),
    ('odd-width yuyv', lambda: _image('yuyv', 3, 2, 6, bytes(12))),
]
BAD_RESULTS = [
    ('class id 2**63', lambda: _results(class_id=str(2**63))),
    ('track id 2**63', lambda: _results(track_id=str(2**63))),
]
# node module -> (its image topic, its results topic), None where it has none
NODES = {
    'inference_node': ('image', None),
    'anomaly_node': ('image', None),
    'overlay_node': ('image', 'tracks'),
    'tracker_node': (None, 'detections'),
    'recorder_node': (None, 'tracks'),
}


def test_malformed_messages_never_end_a_node(node_process, ros_context, spin_until,
                                             diagnostics, tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    ns = '/bad_input'
    # each bad image is sent once: readers with room for all of them, so a node that stalls
    # for a moment (five nodes starting on two cores) does not lose one to a newer frame
    extra = {'inference_node': {'threads': 1, 'warmup_runs': 0, 'qos.subscriber_depth': 10},
             'anomaly_node': {'backbone': 'none', 'layers': '[color8, color16]',
                              'qos.subscriber_depth': 10},
             'recorder_node': {'output_dir': str(tmp_path), 'write_video': False}}
    procs = {name: node_process(f'edge_vision.{name}', {
        'diagnostics_period': 0.3, **extra.get(name, {})}, ns) for name in NODES}
    driver = rclpy.create_node('bad_input_driver', context=ros_context)
    reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {topic: driver.create_publisher(Image if topic == 'image' else Detection2DArray,
                                           f'{ns}/{topic}', reliable)
            for topic in ('image', 'tracks', 'detections')}
    diags = diagnostics(driver)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(driver)

    def value(name, key, default=None):
        found = diags.value(f'{ns}/{name}', key)
        return default if found is None else found

    def received(name, topic):
        return int(value(name, f'received {ns}/{topic}', '0'))

    def active(name):
        return value(name, 'lifecycle_state') == 'active'

    assert spin_until(executor, lambda: all(active(n) for n in NODES), 90), \
        {n: p.output()[-500:] for n, p in procs.items()}
    # every subscriber has matched before the first bad message goes out
    assert spin_until(executor, lambda: pubs['image'].get_subscription_count() >= 3 and
                      pubs['tracks'].get_subscription_count() >= 2 and
                      pubs['detections'].get_subscription_count() >= 1, 30)
    for _, make in BAD_IMAGES:
        pubs['image'].publish(make())
        spin_until(executor, lambda: False, 0.3)  # best-effort image subscribers: one at a time
    for _, make in BAD_RESULTS:
        for topic in ('tracks', 'detections'):
            pubs[topic].publish(make())
    expected = {name: (len(BAD_IMAGES) if image else 0) + (len(BAD_RESULTS) if results else 0)
                for name, (image, results) in NODES.items()}

    def counted():
        return all(int(value(name, 'bad_messages', '0')) >= count
                   for name, count in expected.items())

    assert spin_until(executor, counted, 30), \
        ({n: value(n, 'bad_messages') for n in NODES},
         {n: p.output()[-800:] for n, p in procs.items()})
    for name, proc in procs.items():
        assert proc.alive(), f'{name} died:\n{proc.output()}'
    # a valid message afterwards is still handled
    good = _image('bgr8', 32, 32, 96, bytes(32 * 96), stamp=10_000)
    before = {name: received(name, topic) for name, (topic, _) in NODES.items() if topic}
    pubs['image'].publish(good)
    pubs['tracks'].publish(_results(stamp=10_000))
    pubs['detections'].publish(_results(stamp=10_000))
    assert spin_until(executor, lambda: all(received(n, 'image') > before[n] for n in before),
                      20)
    assert spin_until(executor, lambda: value('tracker_node', 'frames', '0') != '0' and
                      value('recorder_node', 'frames', '0') != '0' and
                      value('overlay_node', 'frames_drawn', '0') != '0', 20), diags.latest
    for proc in procs.values():
        assert proc.alive() and 'Traceback' not in proc.output(), proc.output()
    executor.shutdown()
    driver.destroy_node()
    for proc in procs.values():
        assert proc.stop() == 0
