"""The live view's server on a real socket: routes, token, bad requests, slow clients."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip('aiohttp')

from edge_vision_core import ConfigError
from edge_vision_core.types import Detections
from edge_vision_core.web import (
    LiveServer,
    LiveState,
    StageStatus,
    WebConfig,
    parse_address,
)


def _frame(i: int) -> np.ndarray:
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, (i * 7) % 160] = 255
    return image


@pytest.fixture
def server():
    started = []

    def start(**kwargs) -> LiveServer:
        state = LiveState()
        state.set_tracks(5, Detections([[1, 2, 30, 40]], [0.8], [0], np.array([7])),
                         ['person'])
        state.update_stages([StageStatus('/cam/inference_node', 0, 'active',
                                         {'fps': '12.5', 'infer_ms_p50': '8.0',
                                          'pre_ms_p50': '2.0'}),
                             StageStatus('/cam/mqtt_bridge_node', 2, 'broker unreachable',
                                         {'link': 'reconnecting', 'connected': 'False',
                                          'broker': 'mqtts://b:8883'})])
        srv = LiveServer(WebConfig(port=0, **kwargs), state.snapshot)
        srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def _get(url: str, headers: dict | None = None, method: str = 'GET') -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize('text, expect', [
    (':8080', ('127.0.0.1', 8080)), ('8081', ('127.0.0.1', 8081)),
    ('0.0.0.0:9000', ('0.0.0.0', 9000)), ('[::1]:8080', ('::1', 8080)),
])
def test_parse_address(text, expect):
    assert parse_address(text) == expect


@pytest.mark.parametrize('bad', ['', 'host:', ':99999', 'a:b'])
def test_parse_address_refuses(bad):
    with pytest.raises(ConfigError, match='PORT'):
        parse_address(bad)


def test_config_refuses_half_tls_and_two_tokens(tmp_path):
    with pytest.raises(ConfigError, match='tls_cert and tls_key'):
        WebConfig(tls_cert='c.pem')
    with pytest.raises(ConfigError, match='not both'):
        WebConfig(token='a', token_file='f')
    with pytest.raises(ConfigError, match='cannot read token_file'):
        LiveServer(WebConfig(token_file=str(tmp_path / 'none')), dict)


def test_pages_state_and_frames_are_served_read_only(server):
    srv = server()
    base = srv.url
    assert base.startswith('http://127.0.0.1:')
    status, body = _get(base)
    assert status == 200 and b'<img id="stream"' in body
    assert _get(base + 'frame.jpg')[0] == 404  # no frame yet
    assert srv.put_frame(_frame(0), 42, force=True)
    status, jpeg = _get(base + 'frame.jpg')
    assert status == 200 and jpeg[:2] == b'\xff\xd8'
    state = json.loads(_get(base + 'api/state')[1])
    assert state['tracks'] == [{'id': 7, 'class': 'person', 'score': pytest.approx(0.8),
                                'box': [1.0, 2.0, 30.0, 40.0]}]
    inference = next(s for s in state['stages'] if s['name'].endswith('inference_node'))
    assert inference['fps'] == 12.5 and inference['latency_ms'] == 10.0
    assert state['mqtt'] == {'link': 'reconnecting', 'connected': False,
                             'broker': 'mqtts://b:8883', 'level': 2}
    assert state['level_name'] == 'error' and state['stream']['seq'] == 1
    for method in ('POST', 'PUT', 'DELETE'):
        assert _get(base + 'api/state', method=method)[0] == 405
    assert _get(base + 'nope')[0] == 404
    assert _get(base + 'heatmap.jpg')[0] == 404


def test_the_token_is_required_everywhere(server, tmp_path):
    token_file = tmp_path / 'token'
    token_file.write_text('s3cret-t0ken\n')
    srv = server(token_file=str(token_file))
    base = srv.url
    for path in ('', 'app.js', 'style.css'):  # the page shell holds no data
        assert _get(base + path)[0] == 200, path
    for path in ('api/state', 'frame.jpg', 'stream.mjpg', 'heatmap.jpg', 'nope'):
        assert _get(base + path)[0] == 401, path
        assert _get(base + path + '?token=wrong')[0] == 401, path
        assert _get(base + path, {'Authorization': 'Bearer s3cret-t0ke'})[0] == 401, path
    assert _get(base + 'api/state?token=s3cret-t0ken')[0] == 200
    assert _get(base + 'api/state', {'Authorization': 'Bearer s3cret-t0ken'})[0] == 200
    assert srv.auth_failures == 15  # 5 paths x 3 wrong tries


def test_malformed_requests_get_400(server):
    srv = server()
    for raw in (b'GARBAGE\r\n\r\n', b'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n',
                b'GET /' + b'a' * 20000 + b' HTTP/1.1\r\nHost: x\r\n\r\n'):
        with socket.create_connection(('127.0.0.1', srv.port), timeout=10) as sock:
            sock.sendall(raw)
            reply = sock.recv(200)
        assert reply.split(b' ')[1][:1] == b'4', (raw[:30], reply[:60])


def _read_parts(sock: socket.socket, count: int, timeout: float = 20.0) -> int:
    """Read MJPEG parts from a raw socket until ``count`` JPEG starts were seen."""
    sock.settimeout(timeout)
    data = b''
    while data.count(b'\xff\xd8\xff') < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.count(b'\xff\xd8\xff')


def test_a_client_that_never_reads_does_not_hold_up_frames_or_other_clients(server):
    srv = server(max_fps=100.0, write_timeout_s=2.0, jpeg_quality=95)
    request = b'GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n'
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(('127.0.0.1', srv.port))
    stalled.sendall(request)  # ... and never reads
    reader = socket.create_connection(('127.0.0.1', srv.port))
    reader.sendall(request)
    deadline = time.monotonic() + 20
    while srv.clients < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.clients == 2
    received = []
    thread = threading.Thread(target=lambda: received.append(_read_parts(reader, 20)))
    thread.start()
    rng = np.random.default_rng(0)
    slowest = 0.0
    offered = 0
    while (thread.is_alive() or srv.clients_stalled == 0) and time.monotonic() < deadline + 20:
        noisy = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # big JPEGs fill buffers
        start = time.monotonic()
        srv.put_frame(noisy, offered)
        slowest = max(slowest, time.monotonic() - start)
        offered += 1
        time.sleep(0.012)
    thread.join(timeout=30)
    assert received and received[0] >= 20, 'the reading client got frames all along'
    assert srv.clients_stalled == 1, 'the stalled client was disconnected'
    assert srv.frames_dropped > 0, 'frames the stalled client missed are counted'
    assert slowest < 1.0, f'put_frame waited {slowest:.2f} s: it must never wait for a client'
    stalled.close()
    reader.close()


def test_a_port_in_use_is_reported(server):
    srv = server()
    other = LiveServer(WebConfig(port=srv.port), dict)
    with pytest.raises(ConfigError, match='port in use'):
        other.start()


def test_heatmaps_are_coloured_for_display_on_their_scale():
    from edge_vision_core import DataError
    from edge_vision_core.viz import heatmap_to_bgr

    # mono8 (128 = the threshold) keeps its fixed scale: a flat mid-grey map is not stretched
    flat = heatmap_to_bgr(np.full((4, 6), 128, np.uint8))
    ramp = heatmap_to_bgr(np.tile(np.array([0, 128, 255], np.uint8), (4, 2)))
    assert flat.shape == (4, 6, 3) and flat.dtype == np.uint8
    np.testing.assert_array_equal(flat[0, 0], ramp[0, 1])
    assert ramp[0, 0, 0] > ramp[0, 0, 2] and ramp[0, 2, 2] > ramp[0, 2, 0]  # blue .. red
    # 32FC1 raw distances (0.01 .. 0.03 here: JPEG of those as bytes would be black) are
    # scaled to their maximum; NaN shows as 0; (H, W, 1) is accepted
    raw = np.array([[0.0, 0.015, 0.03, np.nan]], np.float32)[:, :, None]
    shown = heatmap_to_bgr(raw)
    np.testing.assert_array_equal(shown[0, 2], ramp[0, 2])
    np.testing.assert_array_equal(shown[0, 0], ramp[0, 0])
    np.testing.assert_array_equal(shown[0, 3], shown[0, 0])
    with pytest.raises(DataError, match='heatmap'):
        heatmap_to_bgr(np.zeros((0, 3), np.float32))
