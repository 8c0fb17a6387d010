"""vision_msgs in this environment is upstream vision_msgs 4.1.x, type hash for type hash.

A Detection2DArray published by an independent rclpy process is received here, and the type
hashes the DDS graph reports equal the ones computed from the upstream definitions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_vision.type_hashes import UPSTREAM_TYPE_HASHES

pytestmark = pytest.mark.ros

PUBLISHER = textwrap.dedent('''
    import sys, time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection2DArray, Detection2D, LabelInfo, VisionClass
    rclpy.init()
    node = rclpy.create_node('independent_publisher')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Detection2DArray, '/interfaces_test/detections', qos)
    labels = node.create_publisher(LabelInfo, '/interfaces_test/label_info', qos)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in range(50):
        msg = Detection2DArray()
        msg.header.frame_id = 'from_another_process'
        msg.header.stamp.sec = 1000 + i
        det = Detection2D(id=str(i))
        det.bbox.size_x = 12.5
        msg.detections.append(det)
        pub.publish(msg)
        labels.publish(LabelInfo(class_map=[VisionClass(class_id=3, class_name='car')]))
        time.sleep(0.05)
    node.destroy_node()
    rclpy.shutdown()
''')


def test_detection2darray_from_another_process_arrives_with_upstream_hashes(ros_context,
                                                                           spin_until):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection2DArray, LabelInfo

    node = rclpy.create_node('interfaces_test', context=ros_context)
    received: list[Detection2DArray] = []
    labels: list[LabelInfo] = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Detection2DArray, '/interfaces_test/detections', received.append,
                             qos)
    node.create_subscription(LabelInfo, '/interfaces_test/label_info', labels.append, qos)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    child = subprocess.Popen([sys.executable, '-c', PUBLISHER])
    try:
        assert spin_until(executor, lambda: len(received) >= 5 and labels, timeout=30), \
            'no Detection2DArray arrived from the publisher process'
        infos = {}

        def publisher_infos() -> bool:
            # the endpoint's node name comes with the participant's discovery data, which can
            # arrive after the first messages do: wait for it instead of reading it once
            for topic in ('/interfaces_test/detections', '/interfaces_test/label_info'):
                for info in node.get_publishers_info_by_topic(topic):
                    if info.node_name == 'independent_publisher':
                        infos[info.topic_type] = str(info.topic_type_hash)
            return len(infos) == 2

        spin_until(executor, publisher_infos, timeout=30)
    finally:
        child.kill()
        child.wait()
        executor.shutdown()
        node.destroy_node()
    msg = received[-1]
    assert msg.header.frame_id == 'from_another_process'
    assert msg.header.stamp.sec >= 1004
    assert msg.detections[0].bbox.size_x == 12.5
    assert labels[0].class_map[0].class_name == 'car'
    for type_name in ('vision_msgs/msg/Detection2DArray', 'vision_msgs/msg/LabelInfo'):
        assert infos[type_name] == UPSTREAM_TYPE_HASHES[type_name]


def _vision_msgs_share() -> Path | None:
    import vision_msgs
    for parent in Path(vision_msgs.__file__).resolve().parents:
        candidate = parent / 'share' / 'vision_msgs' / 'msg'
        if candidate.is_dir():
            return candidate
    return None


def test_every_installed_vision_msgs_type_has_the_upstream_hash():
    share = _vision_msgs_share()
    if share is None or not list(share.glob('*.json')):
        pytest.skip('this vision_msgs install has no type descriptions (ROS 2 Humble predates '
                    'type hashes)')
    seen = {}
    for path in sorted(share.glob('*.json')):
        doc = json.loads(path.read_text())
        for entry in doc['type_hashes']:
            seen[entry['type_name']] = entry['hash_string']
    vision = {k: v for k, v in UPSTREAM_TYPE_HASHES.items() if k.startswith('vision_msgs/')}
    assert len(vision) == 16
    for type_name, want in vision.items():
        assert seen.get(type_name) == want, type_name
