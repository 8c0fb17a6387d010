"""Record the bundled clip as a rosbag2 MCAP bag, read it back, replay it, compare the runs.

One live run and one replay (``edge-vision run``, the composed pipeline on real DDS) of a short
cut of the bundled clip, images stored as PNG so the replay sees the very pixels the live run
saw: the replay must give the same tracks (``edge-vision compare`` finds no difference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest
import yaml

pytest.importorskip('mcap')
pytest.importorskip('mcap_ros2')

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES = 30
EXPECTED_TYPES = {
    '/image_raw/compressed': 'sensor_msgs/msg/CompressedImage',
    '/camera_info': 'sensor_msgs/msg/CameraInfo',
    '/detections': 'vision_msgs/msg/Detection2DArray',
    '/tracks': 'vision_msgs/msg/Detection2DArray',
    '/label_info': 'vision_msgs/msg/LabelInfo',
    '/quality': 'diagnostic_msgs/msg/DiagnosticArray',
    '/anomaly': 'vision_msgs/msg/Classification',
    '/anomaly/regions': 'vision_msgs/msg/Detection2DArray',
    '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
}


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'edge_vision.cli', *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    from edge_vision_models import sample_path

    tmp = tmp_path_factory.mktemp('bags')
    clip = tmp / 'clip.avi'
    cap = cv2.VideoCapture(str(sample_path()))
    writer = None
    for _ in range(FRAMES):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*'MJPG'), 10.0,
                                     (frame.shape[1], frame.shape[0]))
        writer.write(frame)
    writer.release()
    cap.release()
    live, replay = tmp / 'live.mcap', tmp / 'replay.mcap'
    first = _cli('run', '--source', str(clip), '--out', str(tmp / 'live'), '--no-video',
                 '--bag', str(live), '--bag-format', 'png', '--threads', '1')
    assert first.returncode == 0, first.stdout + first.stderr
    second = _cli('run', '--source', str(live), '--out', str(tmp / 'replay'), '--no-video',
                  '--bag', str(replay), '--bag-format', 'png', '--threads', '1')
    assert second.returncode == 0, second.stdout + second.stderr
    return {'live': live, 'replay': replay, 'tmp': tmp, 'replay_out': second.stdout}


def test_the_bag_holds_every_topic_with_its_type_count_schema_and_cdr(runs):
    import importlib
    import importlib.metadata
    import importlib.util

    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from edge_vision_core.bag import BagReader, full_definition

    bag = BagReader(runs['live'])
    expected = dict(EXPECTED_TYPES)
    if importlib.util.find_spec('edge_vision_msgs') is not None:  # ocr_node's text (none run)
        expected['/text'] = 'edge_vision_msgs/msg/TextArray'
    assert bag.topics() == expected
    counts = bag.message_counts()
    for topic in ('/image_raw/compressed', '/camera_info', '/detections', '/tracks',
                  '/quality'):
        assert counts[topic] == FRAMES, (topic, counts)
    assert counts['/label_info'] == 1 and counts['/diagnostics'] >= 1
    with open(runs['live'], 'rb') as f:
        reader = make_reader(f)
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        for channel in summary.channels.values():
            schema = summary.schemas[channel.schema_id]
            assert schema.encoding == 'ros2msg' and channel.message_encoding == 'cdr'
            assert schema.data.decode() == full_definition(schema.name)
            assert yaml.safe_load(channel.metadata['offered_qos_profiles'])[0]['history'] == 1
        assert summary.statistics.message_count == sum(counts.values())
    with open(runs['live'], 'rb') as f:  # the distro recorded (rosbag2 reads it), never ''
        (meta,) = [m.metadata for m in make_reader(f).iter_metadata() if m.name == 'rosbag2']
    sourced = os.environ.get('ROS_DISTRO')
    wheels = {'7': 'jazzy', '9': 'kilted'}.get(
        '' if sourced else importlib.metadata.version('rclpy').split('.')[0])
    assert meta['ROS_DISTRO'] == (sourced or wheels) and meta['ROS_DISTRO'], meta
    stamps: dict[str, list[int]] = {}
    for item in bag.messages():
        package, _, name = item.type.split('/')
        cls = getattr(importlib.import_module(f'{package}.msg'), name)
        msg = deserialize_message(item.data, cls)  # rclpy reads the CDR we wrote
        assert item.log_time_ns >= item.publish_time_ns - 1_000_000_000
        if hasattr(msg, 'header') and item.topic not in ('/diagnostics', '/label_info'):
            stamps.setdefault(item.topic, []).append(
                msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
            if item.topic != '/quality':
                assert msg.header.frame_id == 'camera_optical_frame'
    images = stamps['/image_raw/compressed']
    assert len(set(images)) == FRAMES
    assert sorted(stamps['/tracks']) == sorted(images) == sorted(stamps['/camera_info'])


def test_a_replay_keeps_the_stamps_and_gives_the_same_tracks(runs):
    assert 'n/a (a replay keeps the recorded stamps)' in runs['replay_out']
    proc = _cli('compare', str(runs['live']), str(runs['replay']), '--json', timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report['same']
    tracks = next(t for t in report['topics'] if t['topic'] == '/tracks')
    assert tracks['messages_a'] == tracks['messages_b'] == FRAMES
    assert tracks['frames_compared'] == 0 or tracks['matched'] == tracks['boxes_a'] > 0
    assert tracks['mean_iou'] == 1.0 and tracks['id_switches'] == 0


def test_compare_reports_a_run_that_lost_a_frame_and_moved_a_box(runs):
    """A doctored copy of the live bag (one tracks message dropped, one box moved) must fail
    the comparison with the difference named."""
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Detection2DArray

    from edge_vision_core.bag import BagConfig, BagReader, BagTopic, BagWriter, full_definition

    doctored = runs['tmp'] / 'doctored.mcap'
    name = 'vision_msgs/msg/Detection2DArray'
    with BagWriter(BagConfig(path=str(doctored))) as writer:
        writer.add_topic(BagTopic('/tracks', name, full_definition(name)))
        for i, item in enumerate(BagReader(runs['live']).messages(['/tracks'])):
            if i == 3:
                continue
            msg = deserialize_message(item.data, Detection2DArray)
            if i == 10 and msg.detections:
                msg.detections[0].bbox.center.position.x += 0.5 * msg.detections[0].bbox.size_x
            writer.write('/tracks', serialize_message(msg), item.log_time_ns)
    proc = _cli('compare', str(runs['live']), str(doctored), '--topic', '/tracks',
                timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'DIFFERENT /tracks: 1 frames only in one run' in proc.stdout
    assert 'missing' in proc.stdout
