"""The broker connection: settings, security rules, and a link that never gives up.

:class:`MqttLink` wraps one paho-mqtt 2.x client (MQTT 5 or 3.1.1) and runs its network loop in
a thread of its own, driving paho through its documented external-loop API (``socket()``,
``loop_read/loop_write/loop_misc``) so that

- every paho call happens in that one thread (paho's writes are not safe from two threads);
- producers (the bridge's handlers) never block on the network: they append to the
  :class:`~edge_vision_core.mqtt.store.OutboundStore` or a stream slot and wake the thread;
- connecting is ours: each failure is reported with its real cause (TLS verification, refused
  credentials, connection refused, a TLS/plain port mix-up) and retried with exponential
  backoff and jitter (``reconnect_min_s`` doubling up to ``reconnect_max_s``);
- durable messages leave the store in order with at most ``window`` unacknowledged at once
  and are deleted when the broker acknowledges them (paho re-sends its unacknowledged ones
  after a reconnect; after a restart the store re-sends them, so a consumer may see a
  duplicate, never a gap: it drops duplicates by ``seq``).

Device presence: a link with ``topics`` sets a Last Will ``{"state": "offline"}`` (retained,
QoS 1) on ``.../status`` and publishes a retained ``{"state": "online"}`` on every connection;
:meth:`MqttLink.stop` publishes ``offline`` (reason ``shutdown``) before disconnecting.

Sessions: by default a clean session (MQTT 5 ``clean_start``, 3.1.1 ``clean_session``): the
device's reliability comes from its own store, and commands sent while it was offline are not
queued for it (a stale ``set_parameter`` arriving hours later is worse than none; the fleet
sees the device offline). ``persistent_session`` keeps the broker session (subscriptions and
queued QoS 1 messages, MQTT 5: for ``session_expiry_s``): the fleet tool uses it so that
events published while it reconnects wait for it at the broker.
"""

from __future__ import annotations

import logging
import random
import select
import socket
import ssl
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import check_config, param
from ..errors import ConfigError
from .events import RateLimiter
from .schema import CHANNELS, SCHEMA, Topics, encode, envelope

__all__ = ['BrokerConfig', 'Endpoint', 'LinkStats', 'MqttLink', 'check_security',
           'default_client_id', 'describe_connect_error', 'parse_broker_url', 'read_password',
           'tls_context']

_LOG = logging.getLogger(__name__)
_LOOPBACK = {'localhost', '127.0.0.1', '::1', 'ip6-localhost'}


@dataclass(frozen=True)
class BrokerConfig:
    """How to reach and authenticate to the broker (parameters ``broker.*``)."""

    url: str = field(default='mqtt://localhost:1883', metadata=param(
        'Broker URL: mqtts://host[:8883] (TLS) or mqtt://host[:1883] (plain TCP: only to '
        'this machine without credentials, unless allow_insecure).', read_only=True))
    protocol: str = field(default='5', metadata=param(
        'MQTT protocol version.', choices=('5', '3.1.1'), read_only=True))
    client_id: str = field(default='', metadata=param(
        'MQTT client id (empty: edge_vision-<device>-<camera>); unique per connection.',
        read_only=True))
    ca_file: str = field(default='', metadata=param(
        'PEM file of the CA that signed the broker certificate (empty: the system CAs). The '
        'server certificate and host name are always verified.', read_only=True))
    cert_file: str = field(default='', metadata=param(
        'PEM client certificate for brokers that authenticate devices by certificate.',
        read_only=True))
    key_file: str = field(default='', metadata=param(
        'PEM private key of cert_file (empty: the key is in cert_file).', read_only=True))
    username: str = field(default='', metadata=param(
        'MQTT user name (empty: none).', read_only=True))
    password_file: str = field(default='', metadata=param(
        'File holding the MQTT password (a file, not a parameter: parameters are readable by '
        'anyone on the ROS graph). Keep it chmod 600.', read_only=True))
    allow_insecure: bool = field(default=False, metadata=param(
        'Allow plain-TCP mqtt:// to another machine or with credentials (they travel '
        'unencrypted). TLS certificate checks are never disabled.', read_only=True))
    keepalive_s: int = field(default=30, metadata=param(
        'MQTT keep-alive: the broker declares the device offline (Last Will) after 1.5x this '
        'without traffic.', min=5, max=3600, unit='s', read_only=True))
    connect_timeout_s: float = field(default=10.0, metadata=param(
        'Give up a connection attempt (TCP, TLS, CONNACK) after this long.', min=0.5,
        max=300.0, unit='s', read_only=True))
    reconnect_min_s: float = field(default=0.5, metadata=param(
        'First reconnect delay; it doubles (with +-20 % jitter) after each failure.',
        min=0.05, max=600.0, unit='s', read_only=True))
    reconnect_max_s: float = field(default=30.0, metadata=param(
        'Longest reconnect delay.', min=0.05, max=3600.0, unit='s', read_only=True))
    persistent_session: bool = field(default=False, metadata=param(
        'Keep the broker session across connections (see the module docstring of '
        'edge_vision_core.mqtt.client for why the bridge defaults to a clean session).',
        read_only=True))
    session_expiry_s: int = field(default=3600, metadata=param(
        'MQTT 5: how long the broker keeps a persistent session after a disconnect.',
        min=0, max=2**32 - 1, unit='s', read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        parse_broker_url(self.url)
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ConfigError('BrokerConfig.reconnect_max_s must be >= reconnect_min_s')
        if self.key_file and not self.cert_file:
            raise ConfigError('BrokerConfig.key_file is set but cert_file is not: a client '
                              'key needs its certificate')

    @property
    def endpoint(self) -> Endpoint:
        return parse_broker_url(self.url)


@dataclass(frozen=True)
class Endpoint:
    """Where the broker is: ``tls``, ``host``, ``port``."""

    tls: bool
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return self.host in _LOOPBACK or self.host.startswith('127.')

    def __str__(self) -> str:
        return f'{"mqtts" if self.tls else "mqtt"}://{self.host}:{self.port}'


def parse_broker_url(url: str) -> Endpoint:
    """``mqtts://host:8883`` -> Endpoint (schemes mqtt/tcp = plain, mqtts/ssl/tls = TLS).

    Raises:
        ConfigError: another scheme, no host, a bad port, or credentials/paths in the URL.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f'invalid broker URL {url!r}: {exc}') from None
    scheme = parts.scheme.lower()
    if scheme not in ('mqtt', 'tcp', 'mqtts', 'ssl', 'tls'):
        raise ConfigError(f'invalid broker URL {url!r}: expecting mqtts://host:8883 (TLS) or '
                          f'mqtt://host:1883 (plain TCP)')
    if parts.username or parts.password:
        raise ConfigError(f'the broker URL {url!r} holds credentials: give them as '
                          f'username and password_file instead (URLs end up in logs)')
    if not parts.hostname:
        raise ConfigError(f'invalid broker URL {url!r}: no host name')
    if parts.path not in ('', '/') or parts.query or parts.fragment:
        raise ConfigError(f'invalid broker URL {url!r}: only scheme://host[:port] is used')
    tls = scheme in ('mqtts', 'ssl', 'tls')
    return Endpoint(tls, parts.hostname, port or (8883 if tls else 1883))


def read_password(path: str) -> tuple[str, list[str]]:
    """The password in ``path`` (one line; the trailing newline removed) and warnings.

    Raises:
        ConfigError: the file cannot be read.
    """
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding='utf-8')
        mode = file.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f'cannot read password_file {path!r}: {exc}') from None
    warnings = []
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f'password_file {path} is readable by other users: chmod 600 {path}')
    return text.rstrip('\r\n'), warnings


def check_security(cfg: BrokerConfig, has_password: bool) -> list[str]:
    """Apply the transport rules; returns warnings.

    Raises:
        ConfigError: credentials (user, password, client certificate) over plain TCP, or plain
            TCP to another machine, without ``allow_insecure``.
    """
    ep = cfg.endpoint
    if ep.tls:
        return [] if cfg.ca_file else [
            f'{ep}: verifying the broker with the system CA store (set ca_file for a private CA)']
    creds = [what for what, present in (('username', cfg.username),
                                        ('password_file', has_password),
                                        ('cert_file', cfg.cert_file)) if present]
    if creds and not cfg.allow_insecure:
        raise ConfigError(f'refusing to send credentials ({", ".join(creds)}) over plain TCP '
                          f'to {ep}: use mqtts:// with ca_file, or set allow_insecure to true '
                          f'on a network you trust')
    if not ep.loopback and not cfg.allow_insecure:
        raise ConfigError(f'{ep} is plain TCP to another machine: everything would travel '
                          f'unencrypted and unauthenticated. Use mqtts:// (TLS), or set '
                          f'allow_insecure to true on a network you trust')
    if cfg.allow_insecure and (creds or not ep.loopback):
        return [f'{ep}: plain TCP, unencrypted (allow_insecure is set)']
    return []


def tls_context(cfg: BrokerConfig) -> ssl.SSLContext:
    """A client TLS context that verifies the broker (CA file or system CAs, host name), with
    the client certificate when configured; TLS 1.2 or newer.

    Raises:
        ConfigError: a file that cannot be loaded, named with the reason.
    """
    try:
        ctx = ssl.create_default_context(cafile=cfg.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f'cannot load ca_file {cfg.ca_file!r}: {exc}') from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.cert_file:
        try:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f'cannot load the client certificate {cfg.cert_file!r} / key '
                              f'{cfg.key_file!r}: {exc}') from None
    return ctx


def describe_connect_error(exc: BaseException, cfg: BrokerConfig) -> str:
    """One sentence naming the cause of a failed connection attempt and the fix."""
    ep = cfg.endpoint
    if isinstance(exc, ssl.SSLCertVerificationError):
        source = f'ca_file {cfg.ca_file}' if cfg.ca_file else 'the system CA store'
        return (f'TLS: the certificate of {ep} does not verify against {source} '
                f'({exc.verify_message}): check ca_file, and that the certificate is made '
                f'for the host name {ep.host}')
    if isinstance(exc, ssl.SSLError):
        return (f'TLS handshake with {ep} failed ({exc.reason or exc}): is that port a TLS '
                f'listener (mqtts://), and does the broker accept this client certificate?')
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)) and ep.tls:
        return (f'TLS handshake with {ep} failed (the connection was reset): is that port a '
                f'TLS listener (mqtts://)?')
    if isinstance(exc, ConnectionRefusedError):
        return f'connection to {ep} refused: is the broker running and listening there?'
    if isinstance(exc, socket.gaierror):
        return f'cannot resolve the broker host {ep.host!r}: {exc.strerror}'
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f'no answer from {ep} within {cfg.connect_timeout_s:g} s (network, firewall?)'
    return f'cannot connect to {ep}: {type(exc).__name__}: {exc}'


_REFUSAL_HINTS = {
    'Bad user name or password': 'check username and password_file',
    'Not authorized': 'check the user, the password and the broker\'s ACL for this client',
    'Client identifier not valid': 'set a shorter client_id without special characters',
    'Server unavailable': 'the broker is starting or overloaded; retrying',
    'Unsupported protocol version': 'set protocol to 3.1.1 for this broker',
}


def _mqtt() -> Any:
    try:
        import paho.mqtt
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ConfigError('the MQTT bridge needs paho-mqtt 2.x: pip install "paho-mqtt>=2" '
                          '(or apt install python3-paho-mqtt where it is 2.x)') from None
    version = getattr(paho.mqtt, '__version__', '0')
    if int(version.split('.')[0]) < 2:
        raise ConfigError(f'paho-mqtt {version} is too old: the MQTT bridge needs 2.x '
                          f'(pip install "paho-mqtt>=2"; Ubuntu 22.04 ships 1.6)')
    return mqtt


@dataclass
class LinkStats:
    """Counters of one link (read by the node's diagnostics and the health message)."""

    connects: int = 0
    connection_failures: int = 0
    sent: int = 0  # durable messages handed to the client (re-sends after a restart included)
    acked: int = 0  # durable messages the broker acknowledged (deleted from the store)
    rejected: int = 0  # durable messages the broker refused (MQTT 5 reason code): dropped
    stream_sent: int = 0
    stream_skipped: int = 0  # stream messages not sent because the link was down
    received: int = 0
    subscriptions_refused: int = 0  # subscriptions the broker refused (its ACL, MQTT 5 code)


@dataclass
class _Stream:
    limiter: RateLimiter
    build: Callable[[Any], dict[str, Any]]
    ready: Any = None


class _Backoff:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self._next = low

    def next(self) -> float:
        delay = self._next * random.uniform(0.8, 1.2)
        self._next = min(self.high, self._next * 2)
        return min(self.high, delay)

    def reset(self) -> None:
        self._next = self.low


class MqttLink:
    """One client connection with its network thread (see the module docstring).

    Args:
        cfg: broker settings (validated with :func:`check_security` here).
        client_id: the MQTT client id.
        topics: the device's topics: enables the presence status, durable ``send`` and the
            command subscription; None for a consumer (the fleet tool).
        store: the outbox for durable channels (required with ``topics``).
        subscriptions: extra ``(filter, qos)`` subscriptions, made on every connection.
        on_message: ``on_message(topic, payload)`` for received messages, in the network
            thread; exceptions are logged, never fatal.
        on_connected: called in the network thread after each accepted connection.
        window: most durable messages awaiting the broker's acknowledgement at once.
        password: the password (see :func:`read_password`); None for none.
        log: ``log(level, text)`` (``logging`` levels); default: this module's logger.
    """

    def __init__(self, cfg: BrokerConfig, client_id: str, *, topics: Topics | None = None,
                 store: Any = None, subscriptions: tuple[tuple[str, int], ...] = (),
                 on_message: Callable[[str, bytes], None] | None = None,
                 on_connected: Callable[[], None] | None = None, window: int = 20,
                 password: str | None = None,
                 log: Callable[[int, str], None] | None = None) -> None:
        if topics is not None and store is None:
            raise ConfigError('MqttLink: a device link (topics) needs a store')
        if window < 1:
            raise ConfigError(f'MqttLink window must be >= 1, got {window}')
        self.cfg = cfg
        self.endpoint = cfg.endpoint
        self.topics = topics
        self.store = store
        self.window = window
        self.stats = LinkStats()
        self._log = log or (lambda level, text: _LOG.log(level, text))
        for warning in check_security(cfg, password is not None):
            self._log(logging.WARNING, warning)
        mqtt = _mqtt()
        self._mqtt = mqtt
        v5 = cfg.protocol == '5'
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
            clean_session=None if v5 else not cfg.persistent_session,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, reconnect_on_failure=False)
        self._client.suppress_exceptions = True
        self._client.connect_timeout = cfg.connect_timeout_s
        self._client.max_inflight_messages_set(window + 16)
        self._client.max_queued_messages_set(0)
        if self.endpoint.tls:
            self._client.tls_set_context(tls_context(cfg))
        if cfg.username or password is not None:
            self._client.username_pw_set(cfg.username or None, password)
        if topics is not None:
            self._client.will_set(topics['status'], self._status_payload('offline',
                                                                         'connection lost'),
                                  qos=1, retain=True)
        self._subscriptions = list(subscriptions)
        if topics is not None:
            self._subscriptions.append((topics['cmd'], 1))
        self._on_message = on_message
        self._on_connected = on_connected
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_publish = self._handle_publish
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._streams: dict[str, _Stream] = {}
        self._posts: list[tuple[str, bytes, int]] = []
        self._streams_lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # paho mid -> store row id
        self._last_row = 0
        self._status_mid: int | None = None
        self.connected = False
        self.connected_since: float | None = None
        #: True once the broker granted every subscription of the current connection: a
        #: message published to a subscribed topic before that may never reach this client.
        self.subscribed = False
        self._pending_subscriptions: dict[int, str] = {}  # paho mid -> topic filter
        self._subscription_refused = False  # on the current connection
        self.state = 'idle'
        self.last_error = ''
        self._last_logged = ('', 0.0)
        self._reported = False

    # -- producer side (any thread) --------------------------------------------------------

    def send(self, channel: str, body: dict[str, Any], evict: bool = True) -> int:
        """Queue a durable message (events, snapshot, cmd/reply) on disk; returns its seq
        (``evict``: see :meth:`OutboundStore.put`)."""
        spec = CHANNELS[channel]
        if not spec.durable or self.topics is None:
            raise ConfigError(f'channel {channel!r} is not a durable device channel')
        topics, epoch = self.topics, self.store.epoch
        seq, dropped = self.store.put(
            topics[channel], lambda s: encode(envelope(topics, s, epoch, body)), spec.qos,
            counter=channel, evict=evict)
        if dropped:
            self._log(logging.WARNING, f'MQTT store full ({self.store.max_messages} messages / '
                                       f'{self.store.max_bytes} bytes): dropped the {dropped} '
                                       f'oldest (reported when the link is back)')
        self._wake()
        return seq

    def offer(self, channel: str, item: Any, build: Callable[[Any], dict[str, Any]],
              max_hz: float = 0.0) -> None:
        """Offer the newest item of a stream (tracks, health): sent at most ``max_hz`` times a
        second (0: every item), newest wins; ``build(item)`` makes the body when it is sent."""
        if not self.connected:
            self.stats.stream_skipped += 1  # newest wins: nothing is kept for later
            return
        now = time.monotonic()
        with self._streams_lock:
            stream = self._streams.get(channel)
            if stream is None or stream.limiter.period != (1.0 / max_hz if max_hz > 0 else 0.0):
                stream = self._streams[channel] = _Stream(RateLimiter(max_hz), build)
            stream.build = build
            ready = stream.limiter.offer(item, now)
            if ready is None:
                return
            if stream.ready is not None:
                stream.limiter.replaced += 1
            stream.ready = ready
        self._wake()

    def post(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish a message once the link is up (kept in memory, not on disk): what a
        consumer sends, e.g. a command from the fleet tool."""
        with self._streams_lock:
            self._posts.append((topic, payload, qos))
        self._wake()

    def stream_replaced(self) -> int:
        """Stream items replaced by newer ones before they were sent (the rate limit)."""
        with self._streams_lock:
            return sum(s.limiter.replaced for s in self._streams.values())

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b'\0')
        except (BlockingIOError, OSError):
            pass  # already awake (full buffer) or closed

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.state = 'connecting'
        self._thread = threading.Thread(target=self._run, name='mqtt_link', daemon=True)
        self._thread.start()

    def drain(self, timeout_s: float) -> bool:
        """Wait until the store is empty and nothing awaits acknowledgement; True when
        everything was delivered. While the link is down this keeps waiting, up to
        ``timeout_s``, for the network thread to reconnect (a broker restarting as the device
        stops); without a running network thread it returns at once."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.store is None or (self.store.depth == 0 and not self._inflight):
                return True
            thread = self._thread
            if thread is None or not thread.is_alive():
                return False
            time.sleep(0.02)
        return self.store is None or self.store.depth == 0

    def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``flush_timeout_s``, reconnecting meanwhile if the
        link is down), publish the ``offline`` status, disconnect and stop the thread. What is
        left stays in the store."""
        if self._thread is None:
            return
        if flush_timeout_s > 0:
            self.drain(flush_timeout_s)
        self._stop.set()
        self._wake()
        self._thread.join(timeout=max(5.0, self.cfg.connect_timeout_s + 2.0))
        self._thread = None
        self.state = 'stopped'

    def close(self) -> None:
        self.stop(0.0)
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    # -- network thread --------------------------------------------------------------------

    def _run(self) -> None:
        backoff = _Backoff(self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
        while not self._stop.is_set():
            self.state = 'connecting'
            try:
                self._connect()
            except Exception as exc:  # every cause is reported and retried
                self.stats.connection_failures += 1
                self._report(describe_connect_error(exc, self.cfg))
            else:
                accepted = self._serve()
                if accepted:
                    backoff.reset()
            if self._stop.is_set():
                break
            delay = backoff.next()
            self.state = f'reconnecting in {delay:.1f} s'
            self._stop.wait(delay)
        self.connected = False

    def _connect(self) -> None:
        cfg = self.cfg
        kwargs: dict[str, Any] = {}
        if cfg.protocol == '5':
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = cfg.session_expiry_s if cfg.persistent_session else 0
            kwargs = {'clean_start': not cfg.persistent_session, 'properties': props}
        self._client.connect(self.endpoint.host, self.endpoint.port, cfg.keepalive_s, **kwargs)

    def _serve(self) -> bool:
        """Run one connection until it ends; True if the broker accepted it."""
        client, ok = self._client, self._mqtt.MQTT_ERR_SUCCESS
        deadline = time.monotonic() + self.cfg.connect_timeout_s
        self._reported = False
        accepted = False
        rc = ok
        while True:
            sock = client.socket()
            if sock is None:
                break
            if self._stop.is_set():
                self._goodbye()
                break
            if not self.connected and time.monotonic() > deadline:
                self._report(f'no CONNACK from {self.endpoint} within '
                             f'{self.cfg.connect_timeout_s:g} s: is that an MQTT port '
                             f'({"TLS" if self.endpoint.tls else "plain"})?')
                client.disconnect()
                break
            pending = sock.pending() if hasattr(sock, 'pending') else 0
            wlist = [sock] if client.want_write() else []
            try:
                readable, writable, _ = select.select([sock, self._wake_r], wlist, [],
                                                      0.0 if pending else self._timeout())
            except (OSError, ValueError):
                break
            if self._wake_r in readable:
                try:
                    self._wake_r.recv(65536)
                except BlockingIOError:
                    pass
            if sock in readable or pending:
                rc = client.loop_read()
                if rc != ok or client.socket() is None:
                    break
            if sock in writable:
                rc = client.loop_write()
                if rc != ok:
                    break
            rc = client.loop_misc()
            if rc != ok:
                break
            accepted = accepted or self.connected
            if self.connected:
                self._pump()
                self._flush_streams()
        accepted = accepted or self.connected
        if self.connected or rc != ok:
            self._lost(rc)
        if not accepted and not self._stop.is_set() and not self._reported:
            self.stats.connection_failures += 1
            self._report(f'{self.endpoint} closed the connection before accepting it: '
                         + ('a TLS handshake or broker problem (see its log)' if
                            self.endpoint.tls else 'is it a TLS port (use mqtts://)?'))
        return accepted

    def _timeout(self) -> float:
        now = time.monotonic()
        waits = [1.0]
        if not self.connected:  # waiting for CONNACK: only the network matters
            return 0.1
        with self._streams_lock:
            if self._posts:
                return 0.0
            for stream in self._streams.values():
                if stream.ready is not None:
                    return 0.0
                wait = stream.limiter.wait(now)
                if wait is not None:
                    waits.append(wait)
        return min(waits)

    def _pump(self) -> None:
        if self.store is None:
            return
        room = self.window - len(self._inflight)
        if room <= 0 or self.store.newest_id <= self._last_row:
            return
        for row in self.store.pending(self._last_row, room):
            info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
                self._report(f'cannot publish on {row.topic}: {self._mqtt.error_string(info.rc)}')
                break
            self._last_row = row.id
            self.stats.sent += 1
            if row.qos > 0:
                self._inflight[info.mid] = row.id  # paho keeps it and re-sends it if needed
            elif info.rc == self._mqtt.MQTT_ERR_SUCCESS and self.store.ack(row.id):
                self.stats.acked += 1

    def _flush_streams(self) -> None:
        with self._streams_lock:
            posts, self._posts = self._posts, []
        for topic, payload, qos in posts:
            self._client.publish(topic, payload, qos=qos)
        if self.topics is None:
            return
        now = time.monotonic()
        ready = []
        with self._streams_lock:
            for channel, stream in self._streams.items():
                item = stream.ready if stream.ready is not None else stream.limiter.due(now)
                stream.ready = None
                if item is not None:
                    ready.append((channel, stream.build, item))
        for channel, build, item in ready:
            seq = self.store.next_seq(channel)
            payload = encode(envelope(self.topics, seq, self.store.epoch, build(item)))
            info = self._client.publish(self.topics[channel], payload,
                                        qos=CHANNELS[channel].qos)
            if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
                self.stats.stream_sent += 1
            else:
                self.stats.stream_skipped += 1

    def _goodbye(self) -> None:
        """Publish ``offline`` (retained), wait briefly for its acknowledgement, disconnect."""
        client = self._client
        if self.connected and self.topics is not None:
            info = client.publish(self.topics['status'],
                                  self._status_payload('offline', 'shutdown'), qos=1,
                                  retain=True)
            end = time.monotonic() + 2.0
            while not info.is_published() and time.monotonic() < end and \
                    client.socket() is not None:
                if client.loop(timeout=0.1) != self._mqtt.MQTT_ERR_SUCCESS:
                    break
        self.connected = False
        client.disconnect()
        for _ in range(20):
            if client.socket() is None or client.loop(timeout=0.05) != \
                    self._mqtt.MQTT_ERR_SUCCESS:
                break

    def _lost(self, reason: object) -> None:
        """The connection ended (paho's disconnect callback, or a loop error code)."""
        was = self.connected
        self.connected = False
        self.connected_since = None
        self.subscribed = False
        self._pending_subscriptions.clear()
        if was and not self._stop.is_set():
            if isinstance(reason, int):
                reason = self._mqtt.error_string(reason)
            self._report(f'connection to {self.endpoint} lost ({reason}): broker down or '
                         f'network lost; reconnecting')

    def _report(self, text: str) -> None:
        self.last_error = text
        self._reported = True
        last, when = self._last_logged
        now = time.monotonic()
        if text != last or now - when > 60.0:
            self._last_logged = (text, now)
            self._log(logging.ERROR, text)

    def _status_payload(self, state: str, reason: str = '') -> bytes:
        topics = self.topics
        body = {'schema': SCHEMA, 'device': topics.device, 'camera': topics.camera,
                'state': state, 'sent': round(time.time(), 3),
                'epoch': self.store.epoch if self.store is not None else ''}
        if reason:
            body['reason'] = reason
        return encode(body)

    # -- paho callbacks (network thread) ---------------------------------------------------

    def _handle_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                        properties: Any) -> None:
        if reason.is_failure:
            name = str(reason)
            hint = _REFUSAL_HINTS.get(name, 'check the broker log')
            self.stats.connection_failures += 1
            self._report(f'the broker at {self.endpoint} refused the connection: {name} '
                         f'({hint})')
            return
        self.connected = True
        self.connected_since = time.time()
        self.stats.connects += 1
        self.state = 'connected'
        self.last_error = ''
        self._last_logged = ('', 0.0)
        self._log(logging.INFO, f'connected to {self.endpoint} (MQTT {self.cfg.protocol}, '
                                f'session present: {bool(flags.session_present)})')
        self.subscribed = self._subscription_refused = False
        self._pending_subscriptions.clear()
        for topic, qos in self._subscriptions:
            rc, mid = client.subscribe(topic, qos)
            if rc == self._mqtt.MQTT_ERR_SUCCESS:
                self._pending_subscriptions[mid] = topic
        self.subscribed = not self._subscriptions
        if self.topics is not None:
            client.publish(self.topics['status'], self._status_payload('online'), qos=1,
                           retain=True)
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception as exc:
                self._log(logging.ERROR, f'on_connected failed: {type(exc).__name__}: {exc}')

    def _handle_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any,
                          properties: Any) -> None:
        topic = self._pending_subscriptions.pop(mid, None)
        if topic is None:
            return
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            self._subscription_refused = True
            self.stats.subscriptions_refused += 1
            self._report(f'the broker refused the subscription to {topic} ({refused[0]}): '
                         f'check that its ACL lets this client read it')
            return
        self._log(logging.INFO, f'subscribed to {topic}')
        if not self._pending_subscriptions and not self._subscription_refused:
            self.subscribed = True

    def _handle_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                           properties: Any) -> None:
        self._lost(reason)

    def _handle_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                        properties: Any) -> None:
        row = self._inflight.pop(mid, None)
        if row is None:
            return
        if self.store.ack(row):
            if reason is not None and reason.is_failure:
                self.stats.rejected += 1
                self._report(f'the broker refused a message ({reason}): check that its ACL '
                             f'lets this client publish under {self.topics.base}/')
            else:
                self.stats.acked += 1

    def _handle_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.stats.received += 1
        if self._on_message is None:
            return
        try:
            self._on_message(message.topic, bytes(message.payload))
        except Exception as exc:  # a bad message must not stop the link
            self._log(logging.ERROR, f'handling a message on {message.topic} failed: '
                                     f'{type(exc).__name__}: {exc}')


def default_client_id(topics: Topics) -> str:
    """``edge_vision-<device>-<camera>``: stable, so a persistent session finds itself."""
    return f'edge_vision-{topics.device}-{topics.camera}'
