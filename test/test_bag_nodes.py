"""recorder_node and camera_node with bags, each in its own process over real DDS."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

pytest.importorskip('mcap')
pytest.importorskip('mcap_ros2')

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_recorder_splits_rotates_and_survives_kill_9(node_process, tmp_path):
    from edge_vision_core.bag import BagReader, bag_files

    folder = tmp_path / 'rec'
    camera = node_process('edge_vision.camera_node', {
        'source': 'synthetic', 'rate': 15.0, 'publish_compressed': False})
    recorder = node_process('edge_vision.recorder_node', {
        'output_dir': str(tmp_path / 'out'), 'write_video': False,
        'bag.path': str(folder), 'bag.split_size_mb': 1.0, 'bag.max_files': 2,
        'bag.images': '[image_raw]', 'bag.jpeg_quality': 50,
        'bag.topics': '[camera_info]', 'bag.chunk_size_kb': 64, 'bag.flush_period_s': 0.5})

    def rotated() -> bool:
        meta = folder / 'metadata.yaml'
        if not meta.is_file():
            return False
        names = yaml.safe_load(meta.read_text())['rosbag2_bagfile_information'][
            'relative_file_paths']
        return 'rec_0.mcap' not in names and len(names) >= 1 and \
            not (folder / 'rec_0.mcap').exists()

    assert _wait(rotated, 180), recorder.output() + camera.output()
    time.sleep(2.0)  # into the next file, past a flush
    recorder.proc.kill()  # kill -9: no summary, no footer, no metadata.yaml update
    recorder.proc.wait(30)
    files = bag_files(folder)
    assert 1 <= len(files) <= 3 and not (folder / 'rec_0.mcap').exists()
    info = yaml.safe_load((folder / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert [p.name for p in files][:len(info['relative_file_paths'])] == \
        info['relative_file_paths']
    bag = BagReader(folder)
    stamps = {}
    for item, msg in bag.decoded():
        stamps.setdefault(item.topic, []).append(
            msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
    assert [r.file for r in bag.recovered] == [files[-1]], 'the killed file reads without ' \
                                                           'its summary'
    images = stamps['/test/image_raw/compressed']
    assert len(images) > 10 and images == sorted(images)
    # images come best-effort (newest frame wins between processes), camera_info reliably:
    # every recorded image has its camera_info, but for a pair a split may have parted
    infos = stamps['/test/camera_info']
    assert len(set(images) - set(infos)) <= 2


def test_camera_node_replays_a_bag_with_its_stamps_and_frame_ids(node_process, ros_context,
                                                                   spin_until, tmp_path):
    import cv2
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    from edge_vision.conversions import image_to_numpy
    from edge_vision_core.bag import BagConfig, BagTopic, BagWriter, full_definition

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(20)]
    stamps = [1_600_000_000_000_000_000 + i * 40_000_000 for i in range(20)]
    path = tmp_path / 'cam.mcap'
    name = 'sensor_msgs/msg/CompressedImage'
    with BagWriter(BagConfig(path=str(path))) as writer:
        writer.add_topic(BagTopic('/robot/image_raw/compressed', name, full_definition(name)))
        for stamp, image in zip(stamps, images, strict=True):
            msg = CompressedImage(format='bgr8; png compressed bgr8')
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg.header.frame_id = 'robot_camera_optical'
            msg.data = cv2.imencode('.png', image)[1].tobytes()
            writer.write('/robot/image_raw/compressed', serialize_message(msg), stamp)

    node = Node('bag_replay_probe', namespace='/test', context=ros_context)
    got: list[Image] = []
    node.create_subscription(Image, 'image_raw', got.append,
                             QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    camera = node_process('edge_vision.camera_node', {'source': str(path), 'rate': 20.0,
                                                      'loop': True})
    assert spin_until(executor, lambda: len(got) >= 70, 90), camera.output()
    # each image comes back with its recorded stamp, shifted by whole passes when it loops
    period = 20 * 40_000_000
    passes = set()
    for msg in got:
        pixels = image_to_numpy(msg, 'bgr8')
        index = next(i for i, image in enumerate(images) if np.array_equal(image, pixels))
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        shift, rest = divmod(stamp - stamps[index], period)
        assert rest == 0 and shift >= 0, (index, stamp)
        passes.add(shift)
    assert {m.header.frame_id for m in got} == {'robot_camera_optical'}
    assert len(passes) >= 3, 'it looped'
    complete = sorted(passes)[1]  # the first pass seen may have begun before discovery
    assert sum(1 for m in got if (m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
                                  - stamps[0]) // period == complete) == 20, 'every frame once'
    executor.remove_node(node)
    node.destroy_node()


def test_recorder_records_anomaly_results_and_quality_as_published(node_process, ros_context,
                                                                     spin_until, tmp_path):
    """Between processes the results topics are recorded as the publisher sent them (raw CDR,
    as ``ros2 bag record`` stores it: the wire's padding bytes included, so the test compares
    the decoded messages), each message once and in order; the OCR text topic is left out,
    with the reason, while its message package is not installed."""
    import importlib.util

    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from vision_msgs.msg import Classification, Detection2DArray, ObjectHypothesis

    from edge_vision.conversions import detections_to_msg, meta_to_header
    from edge_vision_core import Detections, FrameMeta
    from edge_vision_core.bag import BagReader

    path = tmp_path / 'results.mcap'
    recorder = node_process('edge_vision.recorder_node', {
        'output_dir': str(tmp_path / 'out'), 'write_video': False, 'bag.path': str(path),
        'bag.images': "['']", 'bag.topics': '[anomaly, anomaly/regions, quality, text]',
        'bag.flush_period_s': 0.2, 'bag.chunk_size_kb': 16})
    node = Node('results_probe', namespace='/test', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {'/test/anomaly': node.create_publisher(Classification, 'anomaly', qos),
            '/test/anomaly/regions': node.create_publisher(Detection2DArray, 'anomaly/regions',
                                                           qos),
            '/test/quality': node.create_publisher(DiagnosticArray, 'quality', qos)}

    def messages(i: int) -> dict[str, object]:
        header = meta_to_header(FrameMeta(1_700_000_000_000_000_000 + i * 50_000_000, 'cam'))
        score = 0.1 + 0.08 * (i % 10)
        return {
            '/test/anomaly': Classification(header=header, results=[
                ObjectHypothesis(class_id='anomaly', score=score),
                ObjectHypothesis(class_id='normal', score=1.0 - score)]),
            '/test/anomaly/regions': detections_to_msg(
                Detections([[i, 2.0, i + 10.0, 12.0]], [score], [0]), header, ['anomaly']),
            '/test/quality': DiagnosticArray(header=header, status=[DiagnosticStatus(
                level=DiagnosticStatus.OK, name='/test/preprocess_node/quality',
                values=[KeyValue(key='brightness', value=f'{i / 100:.2f}')])])}

    assert spin_until(executor, lambda: all(p.get_subscription_count() for p in pubs.values()),
                      60), recorder.output()
    sent: dict[str, list[object]] = {topic: [] for topic in pubs}
    for i in range(40):
        for topic, msg in messages(i).items():
            pubs[topic].publish(msg)
            sent[topic].append(msg)
        executor.spin_once(timeout_sec=0.05)

    def recorded() -> dict[str, list[object]]:
        out: dict[str, list[object]] = {topic: [] for topic in pubs}
        for item in BagReader(path).messages():
            cls = type(sent[item.topic][0]) if item.topic in sent else None
            if cls is not None:
                out[item.topic].append(deserialize_message(item.data, cls))
        return out

    assert spin_until(executor, lambda: all(
        got and got[-1] == sent[t][-1] for t, got in recorded().items()), 60), \
        ({t: len(v) for t, v in recorded().items()}, recorder.output())
    assert recorder.stop() == 0, recorder.output()
    got = recorded()
    bag = BagReader(path)
    assert bag.recovered == [], 'a stopped recorder finishes its file'
    ocr = importlib.util.find_spec('edge_vision_msgs') is not None
    assert set(bag.topics()) == set(pubs) | ({'/test/text'} if ocr else set())
    for topic, msgs in sent.items():
        # a subscription may match after the first messages; from then on every one, in order
        first = msgs.index(got[topic][0])
        assert got[topic] == msgs[first:], topic
        assert len(got[topic]) >= 20, (topic, len(got[topic]))
    if not ocr:
        assert 'not recording text: edge_vision_msgs is not installed' in recorder.output()
