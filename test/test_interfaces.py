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


def receive_from_process(context, spin_until, script: str, publisher: str,
                         topics: dict[str, type]) -> tuple[dict[str, list], dict[str, str]]:
    """Run ``script`` (a publisher node named ``publisher``) in another process and collect
    what arrives on ``topics`` ({topic: message type}) until the first topic has 5 messages and
    every other one at least 1, with each topic's type hash as the DDS graph reports it."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    node = rclpy.create_node('interfaces_test', context=context)
    received: dict[str, list] = {topic: [] for topic in topics}
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    for topic, msg_type in topics.items():
        node.create_subscription(msg_type, topic, received[topic].append, qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    child = subprocess.Popen([sys.executable, '-c', script])
    first = next(iter(topics))
    try:
        assert spin_until(executor, lambda: len(received[first]) >= 5 and all(
            received.values()), timeout=30), f'nothing arrived on {list(topics)} from {publisher}'
        hashes = {}

        def publisher_infos() -> bool:
            # the endpoint's node name comes with the participant's discovery data, which can
            # arrive after the first messages do: wait for it instead of reading it once
            for topic in topics:
                for info in node.get_publishers_info_by_topic(topic):
                    if info.node_name == publisher:
                        hashes[info.topic_type] = str(info.topic_type_hash)
            return len(hashes) == len(topics)

        spin_until(executor, publisher_infos, timeout=30)
    finally:
        child.kill()
        child.wait()
        executor.shutdown()
        node.destroy_node()
    return received, hashes


def test_detection2darray_from_another_process_arrives_with_upstream_hashes(ros_context,
                                                                           spin_until):
    from vision_msgs.msg import Detection2DArray, LabelInfo

    got, infos = receive_from_process(
        ros_context, spin_until, PUBLISHER, 'independent_publisher',
        {'/interfaces_test/detections': Detection2DArray,
         '/interfaces_test/label_info': LabelInfo})
    received, labels = got['/interfaces_test/detections'], got['/interfaces_test/label_info']
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


#: RIHS01 hashes of edge_vision_msgs as committed: a change to the .msg files changes them and
#: breaks nodes built against the old definitions, so it must be deliberate (update both).
EDGE_VISION_MSGS_HASHES = {
    'edge_vision_msgs/msg/TextLine':
        'RIHS01_f74aee104d783d02bbfed06c2ddd7648d37c0a4a0ef6b7e31bc78b240b7b817a',
    'edge_vision_msgs/msg/TextArray':
        'RIHS01_c1e1cbcfefdf0d08746718e862e145114dbf6943ee5515b58018c9b4ae312f1c',
}

TEXT_PUBLISHER = textwrap.dedent('''
    import time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from edge_vision_msgs.msg import TextArray, TextLine
    from vision_msgs.msg import Point2D
    rclpy.init()
    node = rclpy.create_node('independent_text_publisher')
    pub = node.create_publisher(TextArray, '/interfaces_test/text',
                                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in range(50):
        msg = TextArray()
        msg.header.frame_id = 'text_from_another_process'
        msg.header.stamp.sec = 2000 + i
        corners = [Point2D(x=1.0 + i, y=2.0), Point2D(x=9.0, y=2.0), Point2D(x=9.0, y=5.0),
                   Point2D(x=1.0, y=5.0)]
        msg.lines = [TextLine(polygon=corners, text='EXIT \u51fa\u53e3', score=0.75, region=2)]
        pub.publish(msg)
        time.sleep(0.05)
    node.destroy_node()
    rclpy.shutdown()
''')


def _share(package) -> Path | None:
    for parent in Path(package.__file__).resolve().parents:
        candidate = parent / 'share' / package.__name__ / 'msg'
        if candidate.is_dir():
            return candidate
    return None


def test_edge_vision_msgs_have_rihs01_hashes_and_reuse_upstream_point2d():
    package = pytest.importorskip('edge_vision_msgs')
    from edge_vision_msgs.msg import TextArray, TextLine

    line = TextLine()
    assert (line.polygon, line.text, line.score, line.region) == ([], '', 0.0, -1)
    assert TextArray().lines == []
    share = _share(package)
    if share is None or not list(share.glob('*.json')):
        pytest.skip('this edge_vision_msgs build has no type descriptions (ROS 2 Humble)')
    seen = {}
    for path in share.glob('*.json'):
        for entry in json.loads(path.read_text())['type_hashes']:
            seen[entry['type_name']] = entry['hash_string']
    for type_name, want in EDGE_VISION_MSGS_HASHES.items():
        assert seen[type_name] == want, type_name
    # the polygon corners are the upstream vision_msgs/Point2D, hash for hash
    point = 'vision_msgs/msg/Point2D'
    assert seen[point] == UPSTREAM_TYPE_HASHES[point]


def test_text_array_from_another_process_arrives(ros_context, spin_until):
    pytest.importorskip('edge_vision_msgs')
    from edge_vision_msgs.msg import TextArray

    got, hashes = receive_from_process(ros_context, spin_until, TEXT_PUBLISHER,
                                       'independent_text_publisher',
                                       {'/interfaces_test/text': TextArray})
    msg = got['/interfaces_test/text'][-1]
    assert msg.header.frame_id == 'text_from_another_process' and msg.header.stamp.sec >= 2004
    line = msg.lines[0]
    assert (line.text, line.region, line.score) == ('EXIT \u51fa\u53e3', 2, 0.75)
    assert [(p.x, p.y) for p in line.polygon[1:]] == [(9.0, 2.0), (9.0, 5.0), (1.0, 5.0)]
    want = 'edge_vision_msgs/msg/TextArray'
    assert hashes == {want: EDGE_VISION_MSGS_HASHES[want]}
