"""With the privacy stage on, MQTT snapshots are taken from the anonymized stream: `edge-vision
run --privacy faces --mqtt` on a real photo of a face, a real TLS Mosquitto, a real consumer that
asks for snapshots with signed commands."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FACE = (175, 70, 275, 178)  # the astronaut's face, hairline to chin
ELSEWHERE = (340, 260, 512, 512)
KEY = b'privacy-test-command-key-0123456'


def _detail(image: np.ndarray, box) -> float:
    x1, y1, x2, y2 = box
    gray = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def test_snapshots_leave_the_device_anonymized(mqtt_broker, secret, tmp_path):
    data = pytest.importorskip('skimage.data')
    pytest.importorskip('edge_vision_models')
    from edge_vision_core.mqtt import BrokerConfig, MqttLink, Topics, make_command
    from edge_vision_core.mqtt.schema import decode

    astronaut = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    folder = tmp_path / 'frames'
    folder.mkdir()
    cv2.imwrite(str(folder / 'astronaut.png'), astronaut)
    broker = mqtt_broker()
    params = tmp_path / 'mqtt.yaml'
    # snapshots configured from the raw image: the privacy stage must redirect them
    params.write_text(yaml.safe_dump({'/**/mqtt_bridge_node': {'ros__parameters': {
        'device_id': 'testdev', 'store_path': str(tmp_path / 'store.sqlite'),
        'snapshot_topic': 'image', 'command_key_file': secret('cmd.key', KEY),
        'broker': {'ca_file': broker.ca_file, 'username': 'testdev',
                   'password_file': secret('testdev.pass', broker.users['testdev'])}}}}))
    snapshots: list[dict] = []
    replies: list[dict] = []
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            if topic.endswith('/snapshot'):
                snapshots.append(decode(payload, max_bytes=10_000_000))
            elif topic.endswith('/cmd/reply'):
                replies.append(decode(payload))

    link = MqttLink(BrokerConfig(url=broker.url, ca_file=broker.ca_file, username='fleet'),
                    'privacy-consumer', subscriptions=((Topics.subscription(), 1),),
                    on_message=on_message, password=broker.users['fleet'])
    link.start()
    run = None
    try:
        deadline = time.monotonic() + 20
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert link.connected, link.last_error
        run = subprocess.Popen(
            [sys.executable, '-m', 'edge_vision.cli', 'run', '--source', str(folder), '--loop',
             '--realtime', '--duration', '60', '--out', str(tmp_path / 'out'), '--threads',
             '1', '--no-video', '--privacy', 'faces', '--mqtt', broker.url, '--mqtt-params',
             str(params)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        cmd_topic = Topics('edge_vision', 'testdev', 'camera')['cmd']
        deadline = time.monotonic() + 60
        n = 0
        while time.monotonic() < deadline and len(snapshots) < 2 and run.poll() is None:
            n += 1
            link.post(cmd_topic, make_command('testdev', 'camera', 'snapshot', {}, KEY, f's{n}'))
            time.sleep(1.0)
        assert len(snapshots) >= 2, replies[-3:]
    finally:
        link.close()
        if run is not None and run.poll() is None:
            run.send_signal(signal.SIGINT)
            try:
                run.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                run.kill()
                run.communicate()
    original = _detail(astronaut, FACE) / _detail(astronaut, ELSEWHERE)
    for body in snapshots:
        jpeg = np.frombuffer(base64.b64decode(body['jpeg']), np.uint8)
        image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        assert image.shape == astronaut.shape
        # the face lost its detail, the rest kept it (JPEG softens both a little)
        assert _detail(image, FACE) / _detail(image, ELSEWHERE) < 0.1 * original
