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


def test_the_foxglove_server_serves_image_and_annotation_channels(live_run):
    import aiohttp

    async def listen() -> tuple[dict[str, str], dict[str, int]]:
        url = f'ws://127.0.0.1:{live_run["fox"]}'
        async with aiohttp.ClientSession() as session, session.ws_connect(
                url, protocols=['foxglove.sdk.v1', 'foxglove.websocket.v1']) as ws:
            schemas: dict[str, str] = {}
            by_sub: dict[int, str] = {}
            counts: dict[str, int] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (len(counts) < 2 or min(counts.values()) < 3):
                message = await asyncio.wait_for(ws.receive(), 30)
                if message.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if data.get('op') == 'advertise':
                        subs = []
                        for channel in data['channels']:
                            schemas[channel['topic']] = channel['schemaName']
                            by_sub[len(by_sub) + 1] = channel['topic']
                            subs.append({'id': len(by_sub), 'channelId': channel['id']})
                        await ws.send_str(json.dumps({'op': 'subscribe',
                                                      'subscriptions': subs}))
                elif message.type == aiohttp.WSMsgType.BINARY and message.data[0] == 1:
                    topic = by_sub[int.from_bytes(message.data[1:5], 'little')]
                    counts[topic] = counts.get(topic, 0) + 1
            return schemas, counts

    schemas, counts = asyncio.run(listen())
    assert schemas == {'/image/compressed': 'foxglove.CompressedImage',
                       '/tracks/annotations': 'foxglove.ImageAnnotations'}
    assert counts.get('/image/compressed', 0) >= 3 and counts.get('/tracks/annotations', 0) >= 3
