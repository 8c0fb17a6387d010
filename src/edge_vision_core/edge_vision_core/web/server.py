"""The live web view: page, MJPEG stream, snapshot and state, served by aiohttp.

What the port exposes (read-only; only GET/HEAD are routed, anything else is 405):

=================  ===========================================================================
``/``              the page (HTML, script and style from this package; no external resources)
``/stream.mjpg``   the newest annotated frame as an MJPEG stream (``multipart/x-mixed-replace``)
``/frame.jpg``     the newest frame as one JPEG
``/heatmap.jpg``   the newest anomaly heatmap as one JPEG (404 while there is none)
``/api/state``     JSON: current tracks, per-stage fps/latency and state from /diagnostics,
                   quality metrics, anomaly state, MQTT link state, the stream's own counters
=================  ===========================================================================

Bandwidth is bounded where the frames enter (:meth:`LiveServer.put_frame`: at most
``max_fps`` frames are encoded per second, once for every client, at ``jpeg_quality``, scaled
to ``max_width``), and every client is sent the newest frame when it is ready for one: a slow
client skips frames (counted in ``frames_dropped``), a client that stops reading blocks only its
own connection and is closed after ``write_timeout_s`` (``clients_stalled``). Nothing the
pipeline does ever waits for a client.

Security: bound to ``127.0.0.1`` unless ``host`` says otherwise; with ``token`` set every
request for data (stream, frames, heatmap, state) needs it (``Authorization: Bearer <token>`` or
``?token=<token>``, compared in constant time; 401 otherwise, counted) - the page's own HTML,
script and style hold no data and are served to anyone, and the page passes on the token of
its address; TLS with ``tls_cert``/``tls_key``; at most ``max_clients``
streams at once (503 beyond). Responses carry ``Cache-Control: no-store``, a strict
Content-Security-Policy and ``X-Content-Type-Options: nosniff``.

The server runs its own asyncio loop in a thread; :meth:`LiveServer.start` returns once the
socket is bound (or raises with the reason), :meth:`LiveServer.stop` closes every connection.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import check_config, param
from ..errors import ConfigError

__all__ = ['LiveServer', 'WebConfig', 'parse_address']

_STATIC = Path(__file__).resolve().parent / 'static'
_BOUNDARY = 'edgevisionframe'
#: The page's code and style hold no data: served without the token (the page then sends it).
_PUBLIC = frozenset({'/', '/app.js', '/style.css'})
_HEADERS = {
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
}


@dataclass(frozen=True)
class WebConfig:
    """The live view's server settings (``web_node`` parameters)."""

    host: str = field(default='127.0.0.1', metadata=param(
        'Address to listen on: 127.0.0.1 (this device only, the default), 0.0.0.0 (every '
        'network: set a token and TLS), or one interface\'s address.', read_only=True))
    port: int = field(default=8080, metadata=param(
        'TCP port of the live view (0 = any free port).', min=0, max=65535, read_only=True))
    token: str = field(default='', metadata=param(
        'Access token every request must carry ("Authorization: Bearer <token>" or '
        '?token=<token>); empty = no authentication (localhost use). Prefer token_file: a '
        'parameter can be read by anyone on the ROS graph.', read_only=True))
    token_file: str = field(default='', metadata=param(
        'File holding the access token (its first line), instead of token.', read_only=True))
    tls_cert: str = field(default='', metadata=param(
        'TLS certificate chain (PEM) for https://; empty = plain HTTP.', read_only=True))
    tls_key: str = field(default='', metadata=param(
        'TLS private key (PEM) belonging to tls_cert.', read_only=True))
    max_fps: float = field(default=10.0, metadata=param(
        'Frames per second encoded for the stream (bounds CPU and bandwidth).', min=0.1,
        max=120.0, unit='Hz'))
    jpeg_quality: int = field(default=70, metadata=param(
        'JPEG quality of the stream.', min=1, max=100))
    max_width: int = field(default=960, metadata=param(
        'Frames wider than this are scaled down for the stream (0 = full size).', min=0,
        max=7680, unit='px'))
    max_clients: int = field(default=8, metadata=param(
        'Streams served at once (more get 503).', min=1, max=256, read_only=True))
    write_timeout_s: float = field(default=10.0, metadata=param(
        'A client that takes longer than this to accept one frame is disconnected.',
        min=0.5, max=600.0, unit='s', read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError('tls_cert and tls_key go together: set both for https, or '
                              'neither')
        if self.token and self.token_file:
            raise ConfigError('give the access token as token or as token_file, not both')
        if not self.host.strip():
            raise ConfigError('host is empty: use 127.0.0.1 (local only) or an address')


def parse_address(text: str, default_host: str = '127.0.0.1') -> tuple[str, int]:
    """``(host, port)`` from ``':8080'``, ``'8080'``, ``'0.0.0.0:8080'`` or ``'[::1]:8080'``.

    Raises:
        ConfigError: not an address with a port in [0, 65535].
    """
    value = text.strip()
    host, sep, port = value.rpartition(':')
    if not sep:
        host, port = '', value
    host = host.strip('[]') or default_host
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError(f'{text!r} is not [HOST]:PORT (e.g. :8080 or 0.0.0.0:8080)')
    return host, int(port)


class LiveServer:
    """The live view's HTTP server (see the module docstring).

    Args:
        config: server settings.
        state: returns the current state (tracks, stages...) as a JSON-able dict; called in
            the server's thread for each ``/api/state`` request, so it must be quick and
            thread-safe.
    """

    def __init__(self, config: WebConfig, state: Callable[[], dict[str, Any]]) -> None:
        self.config = config
        self._token = config.token
        if config.token_file:
            try:
                lines = Path(config.token_file).expanduser().read_text('utf-8').splitlines()
            except OSError as exc:
                raise ConfigError(f'cannot read token_file {config.token_file!r}: '
                                  f'{exc}') from None
            self._token = lines[0].strip() if lines else ''
            if not self._token:
                raise ConfigError(f'token_file {config.token_file!r} is empty')
        self._state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._cond: asyncio.Condition | None = None
        self._frame_lock = threading.Lock()
        self._jpeg = b''
        self._seq = 0
        self._stamp_ns = 0
        self._heatmap = b''
        self._last_encode = -math.inf
        self.port = 0
        self.url = ''
        self.clients = 0
        self.frames_encoded = 0
        self.frames_skipped_rate = 0
        self.frames_sent = 0
        self.frames_dropped = 0
        self.clients_stalled = 0
        self.clients_refused = 0
        self.auth_failures = 0
        self.requests = 0
        self.encode_ms = 0.0

    # -- frames (any thread) ---------------------------------------------------------------

    def wants_frames(self) -> bool:
        """True while a stream client is connected (frames are encoded only then)."""
        return self.clients > 0

    def put_frame(self, image: np.ndarray, stamp_ns: int = 0, force: bool = False) -> bool:
        """Offer a bgr8 frame; it is encoded (once, for every client) when the rate allows and
        someone watches (or ``force``). Returns True when it was encoded. Never blocks on a
        client."""
        now = time.monotonic()
        cfg = self.config
        if not force and not self.wants_frames():
            return False
        if now - self._last_encode < 1.0 / cfg.max_fps:
            self.frames_skipped_rate += 1
            return False
        self._last_encode = now
        jpeg = self.encode(image)
        with self._frame_lock:
            self._jpeg, self._stamp_ns = jpeg, int(stamp_ns)
            self._seq += 1
        self.frames_encoded += 1
        self.encode_ms = (time.monotonic() - now) * 1e3
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop closed meanwhile (stopping)
                pass
        return True

    def put_heatmap(self, image: np.ndarray) -> None:
        """Offer the newest anomaly heatmap, ready to show (bgr8 or mono8 uint8; see
        :func:`edge_vision_core.viz.heatmap_to_bgr`)."""
        self._heatmap = self.encode(image)

    @property
    def has_heatmap(self) -> bool:
        return bool(self._heatmap)

    def encode(self, image: np.ndarray) -> bytes:
        cfg = self.config
        if cfg.max_width and image.shape[1] > cfg.max_width:
            scale = cfg.max_width / image.shape[1]
            image = cv2.resize(image, (cfg.max_width, max(1, round(image.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        if not ok:
            raise ConfigError(f'OpenCV could not encode a {image.shape} frame as JPEG')
        return buf.tobytes()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._cond:
                self._cond.notify_all()
        if self._cond is not None:
            asyncio.ensure_future(notify())

    def stats(self) -> dict[str, float]:
        return {'clients': self.clients, 'frames_encoded': self.frames_encoded,
                'frames_sent': self.frames_sent, 'frames_dropped': self.frames_dropped,
                'frames_skipped_rate': self.frames_skipped_rate,
                'clients_stalled': self.clients_stalled,
                'clients_refused': self.clients_refused, 'auth_failures': self.auth_failures,
                'requests': self.requests, 'encode_ms': self.encode_ms}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> str:
        """Bind and serve in a thread; returns the URL.

        Raises:
            ConfigError: aiohttp missing, TLS files unreadable, or the address cannot be bound
                (in use, not an address of this host, no permission).
        """
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            raise ConfigError('the live web view needs aiohttp: pip install aiohttp') from None
        ssl_context = self._ssl_context()
        ready = threading.Event()
        error: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site(ssl_context))
            except BaseException as exc:  # reported to start()
                error.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=serve, name='web_server', daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise ConfigError(f'the web server did not start within {timeout:g} s')
        if error:
            self._thread.join(timeout=5.0)
            self._thread = None
            cfg = self.config
            raise ConfigError(f'cannot serve the live view on {cfg.host}:{cfg.port}: '
                              f'{error[0]} (port in use? choose another with port:=...)')
        scheme = 'https' if ssl_context is not None else 'http'
        host = f'[{self.config.host}]' if ':' in self.config.host else self.config.host
        self.url = f'{scheme}://{host}:{self.port}/'
        return self.url

    def _ssl_context(self) -> ssl.SSLContext | None:
        cfg = self.config
        if not cfg.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f'cannot load TLS certificate {cfg.tls_cert!r} / key '
                              f'{cfg.tls_key!r}: {exc}') from None
        return context

    async def _start_site(self, ssl_context: ssl.SSLContext | None) -> None:
        from aiohttp import web

        self._cond = asyncio.Condition()
        @web.middleware
        async def guard(request: Any, handler: Callable) -> Any:
            return await self._guard(request, handler)

        app = web.Application(middlewares=[guard], client_max_size=1024)
        app.router.add_get('/', self._page)
        app.router.add_get('/app.js', self._static('app.js', 'text/javascript'))
        app.router.add_get('/style.css', self._static('style.css', 'text/css'))
        app.router.add_get('/stream.mjpg', self._stream)
        app.router.add_get('/frame.jpg', self._frame)
        app.router.add_get('/heatmap.jpg', self._heatmap_jpg)
        app.router.add_get('/api/state', self._api_state)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port,
                           ssl_context=ssl_context, reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port

    def stop(self) -> None:
        """Close every connection and the socket; idempotent."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass
        thread.join(timeout=10.0)

    # -- handlers --------------------------------------------------------------------------

    def _authorized(self, request: Any) -> bool:
        token = self._token
        if not token:
            return True
        given = request.query.get('token', '')
        auth = request.headers.get('Authorization', '')
        if auth.startswith('Bearer '):
            given = auth[len('Bearer '):].strip()
        return hmac.compare_digest(given.encode('utf-8'), token.encode('utf-8'))

    async def _guard(self, request: Any, handler: Callable) -> Any:
        """Every request: count it, check the token, add the security headers."""
        from aiohttp import web

        self.requests += 1
        if request.path not in _PUBLIC and not self._authorized(request):
            self.auth_failures += 1
            return web.json_response({'error': 'a valid token is required (Authorization: '
                                               'Bearer <token> or ?token=<token>)'},
                                     status=401, headers={'WWW-Authenticate': 'Bearer',
                                                          **_HEADERS})
        response = await handler(request)
        for key, value in _HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    async def _page(self, request: Any) -> Any:
        from aiohttp import web
        return web.Response(body=(_STATIC / 'index.html').read_bytes(),
                            content_type='text/html', charset='utf-8')

    def _static(self, name: str, content_type: str) -> Callable:
        from aiohttp import web

        async def handler(request: Any) -> Any:
            return web.Response(body=(_STATIC / name).read_bytes(), content_type=content_type,
                                charset='utf-8')
        return handler

    async def _frame(self, request: Any) -> Any:
        from aiohttp import web
        with self._frame_lock:
            jpeg = self._jpeg
        if not jpeg:
            return web.json_response({'error': 'no frame yet'}, status=404)
        return web.Response(body=jpeg, content_type='image/jpeg')

    async def _heatmap_jpg(self, request: Any) -> Any:
        from aiohttp import web
        if not self._heatmap:
            return web.json_response({'error': 'no anomaly heatmap (is anomaly_node '
                                               'running?)'}, status=404)
        return web.Response(body=self._heatmap, content_type='image/jpeg')

    async def _api_state(self, request: Any) -> Any:
        from aiohttp import web
        state = dict(self._state())
        state['stream'] = {**self.stats(), 'seq': self._seq, 'stamp_ns': self._stamp_ns,
                           'max_fps': self.config.max_fps}
        return web.Response(text=json.dumps(state, allow_nan=False, default=str),
                            content_type='application/json')

    async def _stream(self, request: Any) -> Any:
        from aiohttp import web

        if self.clients >= self.config.max_clients:
            self.clients_refused += 1
            return web.json_response({'error': f'{self.clients} streams are open (max_clients)'},
                                     status=503)
        response = web.StreamResponse(headers={
            'Content-Type': f'multipart/x-mixed-replace; boundary={_BOUNDARY}', **_HEADERS})
        self.clients += 1
        last = self._seq - 1 if self._jpeg else self._seq
        try:
            await response.prepare(request)
            while True:
                async with self._cond:
                    await self._cond.wait_for(lambda last=last: self._seq > last)
                with self._frame_lock:
                    jpeg, seq = self._jpeg, self._seq
                self.frames_dropped += max(0, seq - last - 1)
                last = seq
                part = (f'--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n'
                        f'Content-Length: {len(jpeg)}\r\n\r\n').encode('ascii') + jpeg + b'\r\n'
                try:
                    await asyncio.wait_for(response.write(part), self.config.write_timeout_s)
                except asyncio.TimeoutError:
                    self.clients_stalled += 1
                    self.frames_dropped += self._seq - last + 1  # this one and the newer
                    break
                self.frames_sent += 1
        except (ConnectionError, asyncio.CancelledError, RuntimeError):
            pass
        finally:
            self.clients -= 1
        return response
