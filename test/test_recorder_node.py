"""recorder_node in its own process: valid JSON lines, honest video counts, a clean exit on
repeated Ctrl-C / SIGTERM with every file flushed."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def _driver(ros_context, ns, diagnostics):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    node = rclpy.create_node('recorder_driver', context=ros_context)
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {'tracks': node.create_publisher(Detection2DArray, f'{ns}/tracks', reliable),
            'image': node.create_publisher(Image, f'{ns}/image_annotated', reliable)}
    diags = diagnostics(node)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    return node, pubs, executor, lambda key: diags.value(f'{ns}/recorder_node', key)


def _frame_msgs(i, size):
    from edge_vision.conversions import detections_to_msg, meta_to_header, numpy_to_image
    from edge_vision_core import Detections, FrameMeta

    header = meta_to_header(FrameMeta(2_000_000_000 + i * 100_000_000, 'rec_optical'))
    if i < 0:  # warm-up: a valid pair until the recorder answers (discovery may lose some)
        return (detections_to_msg(Detections.empty(with_track_ids=True), header),
                numpy_to_image(np.zeros((size[1], size[0], 3), np.uint8), 'bgr8', header))
    score = np.nan if i == 1 else 0.8  # a NaN score must not make the file invalid JSON
    box = [10, 20, np.inf, 60] if i == 2 else [10, 20, 50, 60]
    dets = Detections([box], [score], [0], track_ids=[7])
    image = np.full((size[1], size[0], 3), 40 + 10 * i, np.uint8)
    return detections_to_msg(dets, header, ['person']), numpy_to_image(image, 'bgr8', header)


@pytest.mark.parametrize('stop_signal', [signal.SIGINT, signal.SIGTERM])
def test_records_valid_json_and_every_frame_then_exits_cleanly_on_repeated_signals(
        node_process, ros_context, spin_until, publish_until, diagnostics, tmp_path,
        stop_signal):
    import cv2

    ns = f'/rec_{stop_signal.name.lower()}'
    out = tmp_path / 'out'
    proc = node_process('edge_vision.recorder_node',
                        {'output_dir': str(out), 'video_fps': 10.0,
                         'diagnostics_period': 0.2}, ns)
    node, pubs, executor, stat = _driver(ros_context, ns, diagnostics)
    assert spin_until(executor, lambda: all(p.get_subscription_count() > 0
                                            for p in pubs.values()), 30), proc.output()
    # the first frame (warm-up) fixes the video at 160x120; frames 3-4 are 320x200. Each image
    # is resent until the recorder has it (discovery or a busy subscriber may lose a
    # best-effort one); only then its tracks (reliable): no tracks wait for a lost image
    def send(i, size, written):
        tracks, image = _frame_msgs(i, size)
        images = int(stat(f'received {ns}/image_annotated') or 0)
        assert publish_until(executor, [(pubs['image'], image)], lambda: int(
            stat(f'received {ns}/image_annotated') or 0) > images, 30), proc.output()
        pubs['tracks'].publish(tracks)
        # one at a time: image_annotated is a best-effort, newest-only subscription
        assert spin_until(executor, lambda: stat('video_frames') == str(written), 20), \
            (stat('frames'), stat('video_frames'), proc.output())

    send(-1, (160, 120), 1)
    base = int(stat('frames'))
    assert base == 1
    sizes = [(160, 120)] * 3 + [(320, 200)] * 2
    for i, size in enumerate(sizes):
        send(i, size, base + i + 1)
    assert stat('video_frames_resized') == '2' and stat('non_finite_values') == '3'
    assert stat('video_missing') == '0' and stat('frames') == str(base + len(sizes))
    # Ctrl-C in a terminal running `ros2 launch`: the process group gets one, launch another
    for _ in range(3):
        proc.proc.send_signal(stop_signal)
        time.sleep(0.02)
    code = proc.proc.wait(30)
    log = proc.output()
    assert code == 0, log
    assert 'Traceback' not in log and 'KeyboardInterrupt' not in log, log
    # json.loads refuses nothing JSON allows, but it accepts NaN: parse strictly
    strict = {'parse_constant': lambda c: pytest.fail(f'{c} in tracks.jsonl')}
    lines = [json.loads(line, **strict)
             for line in (out / 'tracks.jsonl').read_text().splitlines()]
    assert [line['frame'] for line in lines] == list(range(base + len(sizes)))
    lines = lines[base:]
    assert lines[1]['score'] is None and lines[2]['box'][1::2] == [20.0, 60.0]
    assert lines[2]['box'][2] is None and lines[0]['score'] == 0.8
    assert all(line['track_id'] == 7 and line['class_name'] == 'person' for line in lines)
    cap = cv2.VideoCapture(str(out / 'annotated.mp4'))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    assert cap.isOpened() and frames == base + len(sizes)
    ok, first = cap.read()
    assert ok and first.shape == (120, 160, 3)
    cap.release()
    executor.shutdown()
    node.destroy_node()
