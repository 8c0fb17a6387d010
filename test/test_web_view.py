"""The live web view in a real headless browser, and the Foxglove server, on a real run.

`edge-vision run --web ... --foxglove ...` plays the bundled clip in real time; Debian's
chromium (driven by Playwright with the system browser: no browser download) opens the page,
the stream must show frames and the stats must update, and the MQTT bridge (pointed at a port
where no broker listens) must show as not connected; a Foxglove WebSocket client must get the
advertised channels and their messages.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update',
                 '--disable-sync']
TOKEN = 'test-token-4b1d'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture(scope='module')
def live_run(tmp_path_factory):
    pytest.importorskip('aiohttp')
    pytest.importorskip('foxglove')
    out = tmp_path_factory.mktemp('web')
    web, fox, no_broker = _free_port(), _free_port(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, '-m', 'edge_vision.cli', 'run', '--realtime', '--no-video',
         '--threads', '1', '--out', str(out), '--web', f'127.0.0.1:{web}',
         '--web-token', TOKEN, '--foxglove', f'127.0.0.1:{fox}',
         '--mqtt', f'mqtt://127.0.0.1:{no_broker}'],  # no broker there: the link is down
        stdout=open(out / 'run.log', 'w'), stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{web}/'
    deadline = time.monotonic() + 180
    while _status(f'{base}api/state?token={TOKEN}') != 200 and time.monotonic() < deadline:
        assert proc.poll() is None, (out / 'run.log').read_text()
        time.sleep(0.5)
    yield {'base': base, 'fox': fox, 'log': out / 'run.log'}
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_the_page_shows_the_stream_and_updating_stats_in_chromium(live_run, tmp_path,
                                                                  system_program):
    # Debian's chromium (tools/requirements/apt.txt; skips naming the install command without
    # it), driven by Playwright (dev.txt) with no browser download
    chromium = system_program('chromium')
    sync_api = pytest.importorskip('playwright.sync_api',
                                   reason='needs playwright (tools/requirements/dev.txt)')
    base = live_run['base']
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # the page's strict CSP forbids eval; Playwright's waits need it in the test only
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(base)  # without the token the page loads, but no data does
            page.wait_for_function(
                "document.getElementById('status').textContent.includes('401')",
                timeout=60_000)
            assert page.evaluate("document.getElementById('stream').naturalWidth") == 0
            page.goto(f'{base}?token={TOKEN}')
            page.wait_for_function("document.getElementById('stream').naturalWidth > 0",
                                   timeout=120_000)
            page.wait_for_function(
                "Number(document.getElementById('updated').dataset.count) >= 3 && "
                "document.querySelectorAll('#tracks tbody tr').length > 0 && "
                "document.querySelectorAll('#stages tbody tr').length >= 5", timeout=120_000)
            first = page.inner_text('#stream-info')
            page.wait_for_function(
                f"document.getElementById('stream-info').textContent !== {json.dumps(first)}",
                timeout=60_000)
            stages = page.inner_text('#stages')
            page.wait_for_function(
                "document.getElementById('mqtt').textContent.includes('not connected')",
                timeout=60_000)
            shot = tmp_path / 'live_view.png'
            page.locator('#stream').screenshot(path=str(shot))
        finally:
            browser.close()
    for node in ('camera_node', 'inference_node', 'tracker_node', 'web_node'):
        assert node in stages
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    assert float(image.std()) > 20.0, 'the stream shows a real picture, not a blank box'
    state = json.loads(urllib.request.urlopen(f'{base}api/state?token={TOKEN}',
                                              timeout=10).read())
    assert state['stream']['frames_sent'] > 0 and state['tracks']


def _foxglove_listen(port: int, want: int = 3, timeout: float = 60.0
                     ) -> tuple[dict[str, dict], dict[str, list[bytes]]]:
    """Connect to a Foxglove WebSocket server, subscribe to every advertised channel and
    collect messages until each channel has ``want`` (or the timeout): ``({topic: channel},
    {topic: [payload, ...]})``."""
    import aiohttp

    async def listen() -> tuple[dict[str, dict], dict[str, list[bytes]]]:
        url = f'ws://127.0.0.1:{port}'
        async with aiohttp.ClientSession() as session, session.ws_connect(
                url, protocols=['foxglove.sdk.v1', 'foxglove.websocket.v1']) as ws:
            channels: dict[str, dict] = {}
            by_sub: dict[int, str] = {}
            payloads: dict[str, list[bytes]] = {}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and (
                    not channels or len(payloads) < len(channels) or
                    min(len(v) for v in payloads.values()) < want):
                try:
                    message = await asyncio.wait_for(ws.receive(), 5)
                except asyncio.TimeoutError:
                    continue
                if message.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if data.get('op') == 'advertise':
                        subs = []
                        for channel in data['channels']:
                            channels[channel['topic']] = channel
                            by_sub[len(by_sub) + 1] = channel['topic']
                            subs.append({'id': len(by_sub), 'channelId': channel['id']})
                        await ws.send_str(json.dumps({'op': 'subscribe',
                                                      'subscriptions': subs}))
                elif message.type == aiohttp.WSMsgType.BINARY and message.data[0] == 1:
                    # MessageData: opcode, subscription id (u32), log time (u64), payload
                    topic = by_sub[int.from_bytes(message.data[1:5], 'little')]
                    payloads.setdefault(topic, []).append(bytes(message.data[13:]))
            return channels, payloads

    return asyncio.run(listen())


def test_the_foxglove_server_serves_image_and_annotation_channels(live_run):
    channels, payloads = _foxglove_listen(live_run['fox'])
    schemas = {topic: channel['schemaName'] for topic, channel in channels.items()}
    counts = {topic: len(items) for topic, items in payloads.items()}
    assert schemas == {'/image/compressed': 'foxglove.CompressedImage',
                       '/tracks/annotations': 'foxglove.ImageAnnotations'}
    assert counts.get('/image/compressed', 0) >= 3 and counts.get('/tracks/annotations', 0) >= 3


def _decode(channel: dict, payload: bytes) -> object:
    """A protobuf message of a Foxglove channel, decoded with the schema the server advertised
    (its FileDescriptorSet), not with the SDK that wrote it."""
    import base64

    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    assert channel['encoding'] == 'protobuf', channel
    files = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(channel['schema']))
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(channel['schemaName']))
    return cls.FromString(payload)


def test_foxglove_node_serves_what_it_receives_over_dds(node_process, ros_context):
    """foxglove_node in its own process: images and tracks from DDS reach a Foxglove client as
    foxglove.CompressedImage and foxglove.ImageAnnotations with their stamp, frame and boxes."""
    import re
    import threading

    import numpy as np

    pytest.importorskip('foxglove')
    pytest.importorskip('google.protobuf')
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from edge_vision.conversions import detections_to_msg, meta_to_header, numpy_to_image
    from edge_vision_core import Detections, FrameMeta

    fox = node_process('edge_vision.foxglove_node', {'port': 0, 'max_fps': 30.0})
    found = re.search(r'Foxglove server on ws://[^ ]+:(\d+)',
                      fox.wait_for_output('Foxglove server on', 90))
    assert found, fox.output()
    node = Node('foxglove_probe', namespace='/test', context=ros_context)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    images = node.create_publisher(Image, 'image', qos)
    tracks = node.create_publisher(Detection2DArray, 'tracks', qos)
    stamp = 1_700_000_000_250_000_000
    header = meta_to_header(FrameMeta(stamp, 'robot_camera'))
    picture = np.zeros((96, 128, 3), np.uint8)
    picture[:, 64:] = 255  # right half white
    image_msg = numpy_to_image(picture, 'bgr8', header)
    tracks_msg = detections_to_msg(Detections([[8, 16, 40, 80]], [0.75], [0], np.array([9])),
                                   header, ['person'])
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            images.publish(image_msg)
            tracks.publish(tracks_msg)
            stop.wait(0.1)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        channels, payloads = _foxglove_listen(int(found.group(1)), want=2, timeout=90)
    finally:
        stop.set()
        publisher.join(10)
    assert set(channels) == {'/test/image/compressed', '/test/tracks/annotations'}, \
        (channels, fox.output())
    assert all(len(payloads.get(t, [])) >= 2 for t in channels), \
        ({t: len(v) for t, v in payloads.items()}, fox.output())

    image = _decode(channels['/test/image/compressed'], payloads['/test/image/compressed'][-1])
    assert image.frame_id == 'robot_camera' and image.format == 'jpeg'
    assert image.timestamp.seconds * 1_000_000_000 + image.timestamp.nanos == stamp
    shown = cv2.imdecode(np.frombuffer(image.data, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape == picture.shape
    assert shown[:, :56].mean() < 30 and shown[:, 72:].mean() > 225

    notes = _decode(channels['/test/tracks/annotations'],
                    payloads['/test/tracks/annotations'][-1])
    (box,) = notes.points
    corners = sorted((p.x, p.y) for p in box.points)
    assert corners == sorted([(8, 16), (40, 16), (40, 80), (8, 80)])
    assert box.timestamp.seconds * 1_000_000_000 + box.timestamp.nanos == stamp
    assert [t.text for t in notes.texts] == ['#9 person 0.75']
    node.destroy_node()
    assert fox.stop() == 0, fox.output()
