"""web_node in its own process over real DDS: the page's data comes from the graph's topics.

A probe node publishes what the pipeline's stages publish (annotated image, tracks with their
label_info, the preprocess quality array, the anomaly classification and its heatmap, a stage's
/diagnostics), built with the producers' own conversions; the live view's HTTP endpoints must
show each of them, and nothing without the token.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

pytest.importorskip('aiohttp')

pytestmark = [pytest.mark.ros, pytest.mark.slow]

TOKEN = 'web-node-t0ken'


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _first_stream_jpeg(url: str, found: list[bytes], timeout: float = 60.0) -> None:
    """Read the MJPEG stream until one whole JPEG part arrived (in a thread: a stream client
    is what makes web_node encode frames)."""
    deadline = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = b''
            while time.monotonic() < deadline:
                data += response.read1(65536)
                start = data.find(b'\xff\xd8')
                end = data.find(b'\xff\xd9', start + 2)
                if start >= 0 and end > 0:
                    found.append(data[start:end + 2])
                    return
    except OSError:
        return


def test_the_live_view_shows_stream_tracks_stages_quality_anomaly_and_heatmap(
        node_process, ros_context, publish_until):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Classification, Detection2DArray, LabelInfo, ObjectHypothesis

    from edge_vision.conversions import (
        detections_to_msg,
        labels_to_label_info,
        meta_to_header,
        numpy_to_image,
    )
    from edge_vision_core import Detections, FrameMeta

    web = node_process('edge_vision.web_node', {'port': 0, 'token': TOKEN, 'max_fps': 20.0})
    match = re.search(r'live view at (http://\S+)', web.wait_for_output('live view at', 90))
    assert match, web.output()
    base = match.group(1).rstrip('/') + '/'
    assert base.startswith('http://127.0.0.1:'), base  # this device only by default

    node = Node('web_probe', namespace='/test', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = {name: node.create_publisher(cls, name, latched if name == 'label_info' else reliable)
           for name, cls in (('image_annotated', Image), ('tracks', Detection2DArray),
                             ('label_info', LabelInfo), ('quality', DiagnosticArray),
                             ('anomaly', Classification), ('anomaly/heatmap', Image),
                             ('/diagnostics', DiagnosticArray))}
    header = meta_to_header(FrameMeta(1_700_000_000_123_000_000, 'camera_optical_frame'))
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, 80:] = (0, 0, 255)  # right half red
    tracks = detections_to_msg(Detections([[10, 20, 50, 80]], [0.9], [1], np.array([42])),
                               header)
    quality = DiagnosticArray(header=header, status=[DiagnosticStatus(
        level=DiagnosticStatus.WARN, name='/test/preprocess_node/quality', message='dark',
        values=[KeyValue(key='brightness', value='0.12')])])
    anomaly = Classification(header=header, results=[
        ObjectHypothesis(class_id='anomaly', score=0.8),
        ObjectHypothesis(class_id='normal', score=0.2)])
    heat = np.zeros((12, 16), np.float32)
    heat[:, 8:] = 0.04  # raw patch distances (32FC1), right half hot
    stage = DiagnosticArray(status=[DiagnosticStatus(
        level=DiagnosticStatus.OK, name='/test/inference_node', message='active',
        values=[KeyValue(key='fps', value='12.5'), KeyValue(key='infer_ms_p50', value='8')])])
    messages = [(pub['image_annotated'], numpy_to_image(image, 'bgr8', header)),
                (pub['tracks'], tracks),
                (pub['label_info'], labels_to_label_info(['person', 'forklift'])),
                (pub['quality'], quality), (pub['anomaly'], anomaly),
                (pub['anomaly/heatmap'], numpy_to_image(heat, '32FC1', header)),
                (pub['/diagnostics'], stage)]

    # nothing is served without the token; the page shell is
    assert _get(base + 'api/state')[0] == 401 and _get(base)[0] == 200
    state: dict = {}

    def shows_everything() -> bool:
        status, body = _get(f'{base}api/state?token={TOKEN}')
        if status != 200:
            return False
        state.update(json.loads(body))
        names = {s['name'] for s in state['stages']}
        return bool(state['tracks'] and state['tracks'][0]['class'] == 'forklift' and
                    state['quality'] and state['anomaly'] and state['anomaly']['heatmap'] and
                    {'/test/inference_node', '/test/web_node'} <= names)

    assert publish_until(executor, messages, shows_everything, 90), (state, web.output())
    assert state['tracks'] == [{'id': 42, 'class': 'forklift', 'score': pytest.approx(0.9),
                                'box': pytest.approx([10.0, 20.0, 50.0, 80.0])}]
    assert state['tracks_stamp_ns'] == 1_700_000_000_123_000_000
    assert state['quality'] == {'brightness': '0.12'} and state['quality_level'] == 1
    assert state['anomaly']['state'] == 'anomaly'
    assert state['anomaly']['score'] == pytest.approx(0.8)
    inference = next(s for s in state['stages'] if s['name'] == '/test/inference_node')
    assert inference['fps'] == 12.5 and inference['latency_ms'] == 8.0

    status, jpeg = _get(f'{base}heatmap.jpg?token={TOKEN}')
    assert status == 200
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape[:2] == (12, 16)
    cold, hot = shown[:, :6].reshape(-1, 3).mean(0), shown[:, 10:].reshape(-1, 3).mean(0)
    assert cold[0] > cold[2] + 60 and hot[2] > hot[0] + 60, (cold, hot)  # blue .. red

    # the stream: a client connected, frames are encoded and sent
    found: list[bytes] = []
    reader = threading.Thread(target=_first_stream_jpeg,
                              args=(f'{base}stream.mjpg?token={TOKEN}', found), daemon=True)
    reader.start()
    assert publish_until(executor, messages[:1], lambda: bool(found), 60), web.output()
    frame = cv2.imdecode(np.frombuffer(found[0], np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == image.shape
    assert frame[:, :70, 2].mean() < 40 and frame[:, 90:, 2].mean() > 200

    # a normal frame follows: the state says so
    anomaly.results[0].score, anomaly.results[1].score = 0.3, 0.7
    assert publish_until(
        executor, [(pub['anomaly'], anomaly)],
        lambda: json.loads(_get(f'{base}api/state?token={TOKEN}')[1])['anomaly']['state'] ==
        'normal', 30)
    executor.remove_node(node)
    node.destroy_node()
    assert web.stop() == 0, web.output()
