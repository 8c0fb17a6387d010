"""What the live web view costs the pipeline, and what a viewer gets.

``edge-vision run`` on the bundled clip (every frame, as fast as the pipeline goes) with
``--web``, three times: nobody watching, one viewer reading the MJPEG stream, and one viewer
that connects and never reads. Prints the pipeline's fps (report.json) and, for the reading
viewer, the stream's fps and bytes per frame; for the stalled viewer, that it was cut off and
how many frames it missed (from /api/state).

    .venv/bin/python benchmarks/bench_web.py [--frames 150] [--max-fps 10]

Numbers depend on the machine's load: compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit('edge-vision run ended before the web view came up')
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit('the web view did not come up')


def _read_stream(port: int, stop: threading.Event, result: dict) -> None:
    sock = socket.create_connection(('127.0.0.1', port))
    sock.sendall(b'GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n')
    sock.settimeout(1.0)
    data, frames, total = b'', 0, 0
    first = last = None
    while not stop.is_set():
        try:
            chunk = sock.recv(1 << 16)
        except OSError:
            continue
        if not chunk:
            break
        total += len(chunk)
        data = data[-4:] + chunk
        found = data.count(b'\xff\xd8\xff')
        if found:
            now = time.monotonic()
            first = first or now
            last = now
            frames += found
    sock.close()
    result.update(frames=frames, bytes=total,
                  fps=(frames - 1) / (last - first) if frames > 1 and last > first else 0.0)


def run(frames: int, max_fps: float, viewer: str, tmp: Path) -> dict:
    port = _free_port()
    out = tmp / viewer
    proc = subprocess.Popen([sys.executable, '-m', 'edge_vision.cli', 'run', '--max-frames',
                             str(frames), '--no-video', '--out', str(out), '--web',
                             f'127.0.0.1:{port}'], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # the server comes up when the pipeline starts; the run's fps counts from its first frame
    _wait_up(f'http://127.0.0.1:{port}/api/state', proc)
    stop = threading.Event()
    result: dict = {}
    stalled = None
    if viewer == 'reading':
        thread = threading.Thread(target=_read_stream, args=(port, stop, result))
        thread.start()
    elif viewer == 'stalled':
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(('127.0.0.1', port))
        stalled.sendall(b'GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n')
    state = {}
    while proc.poll() is None:
        try:
            state = json.loads(urllib.request.urlopen(
                f'http://127.0.0.1:{port}/api/state', timeout=2).read())
        except OSError:
            pass
        time.sleep(0.5)
    stop.set()
    if viewer == 'reading':
        thread.join()
    if stalled is not None:
        stalled.close()
    report = json.loads((out / 'report.json').read_text())
    return {'fps': report['fps'], 'stream': result, 'state': state.get('stream', {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=150)
    parser.add_argument('--max-fps', type=float, default=10.0)
    args = parser.parse_args()
    print(f'edge-vision run --web, {args.frames} frames of the bundled clip, stream at most '
          f'{args.max_fps:g} fps (web_node default)')
    print(f'{"viewer":<10} {"pipeline fps":>12} {"stream fps":>10} {"KB/frame":>9} '
          f'{"stalled cut":>11} {"dropped":>8}')
    with tempfile.TemporaryDirectory() as tmp:
        for viewer in ('none', 'reading', 'stalled'):
            r = run(args.frames, args.max_fps, viewer, Path(tmp))
            s, st = r['stream'], r['state']
            kb = s['bytes'] / max(1, s['frames']) / 1e3 if s else 0.0
            print(f'{viewer:<10} {r["fps"]:>12.1f} {s.get("fps", 0.0):>10.1f} {kb:>9.1f} '
                  f'{st.get("clients_stalled", 0):>11} {st.get("frames_dropped", 0):>8}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
