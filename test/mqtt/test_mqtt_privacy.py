"""With the privacy stage on, MQTT snapshots are taken from the anonymized stream: `edge-vision
run --privacy faces --mqtt` on real photos of a face, a real TLS Mosquitto, a real consumer."""

from __future__ import annotations

import base64
import json
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


def _detail(image: np.ndarray, box) -> float:
    x1, y1, x2, y2 = box
    gray = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def test_snapshots_leave_the_device_anonymized(mqtt_broker, secret, tmp_path):
    data = pytest.importorskip('skimage.data')
    pytest.importorskip('edge_vision_models')
    from edge_vision_core.mqtt import BrokerConfig, MqttLink, Topics
    from edge_vision_core.mqtt.schema import decode

    astronaut = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    folder = tmp_path / 'frames'
    folder.mkdir()
    # an empty scene first, so the filtered stream is flowing when the person enters (the
    # bridge snapshots the filtered frame nearest the track_entered event)
    for i in range(20):
        frame = astronaut if i >= 6 else np.full_like(astronaut, 90)
        cv2.imwrite(str(folder / f'{i:02d}.png'), frame)
    broker = mqtt_broker()
    params = tmp_path / 'mqtt.yaml'
    # snapshots configured from the raw image: the privacy stage must redirect them
    params.write_text(yaml.safe_dump({'/**/mqtt_bridge_node': {'ros__parameters': {
        'device_id': 'testdev', 'store_path': str(tmp_path / 'store.sqlite'),
        'snapshot_topic': 'image', 'snapshot_events': ['track_entered'],
        'snapshot_min_interval_s': 0.0, 'snapshot_max_age_s': 5.0,
        'broker': {'ca_file': broker.ca_file, 'username': 'testdev',
                   'password_file': secret('testdev.pass', broker.users['testdev'])}}}}))
    snapshots: list[dict] = []
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        if topic.endswith('/snapshot'):
            with lock:
                snapshots.append(decode(payload, max_bytes=10_000_000))

    link = MqttLink(BrokerConfig(url=broker.url, ca_file=broker.ca_file, username='fleet'),
                    'privacy-consumer', subscriptions=((Topics.subscription(), 1),),
                    on_message=on_message, password=broker.users['fleet'])
    link.start()
    try:
        deadline = time.monotonic() + 20
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert link.connected, link.last_error
        out = tmp_path / 'out'
        proc = subprocess.run(
            [sys.executable, '-m', 'edge_vision.cli', 'run', '--source', str(folder),
             '--out', str(out), '--threads', '1', '--no-video', '--privacy', 'faces',
             '--mqtt', broker.url, '--mqtt-params', str(params)],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads((out / 'report.json').read_text())['stages']
        assert report['mqtt_bridge']['snapshots_sent'] >= 1, report['mqtt_bridge']
        deadline = time.monotonic() + 30
        while not snapshots and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        link.close()
    assert snapshots, 'no snapshot reached the consumer'
    original = _detail(astronaut, FACE) / _detail(astronaut, ELSEWHERE)
    people = 0
    for body in snapshots:
        jpeg = np.frombuffer(base64.b64decode(body['jpeg']), np.uint8)
        image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        assert image.shape == astronaut.shape
        if _detail(image, ELSEWHERE) < 1.0:
            continue  # an empty-scene frame (nearest the event when the person just entered)
        people += 1
        # the face lost its detail, the rest kept it (JPEG softens both a little)
        assert _detail(image, FACE) / _detail(image, ELSEWHERE) < 0.1 * original
    assert people >= 1, 'no snapshot showed the person'
