"""Watch a fleet of edge_vision devices on an MQTT broker; send them commands.

    edge-vision fleet --broker mqtts://broker:8883 --ca ca.crt --username fleet \\
        --password-file fleet.pass --events-out events.jsonl
    edge-vision fleet --broker mqtt://localhost:1883                 # a local test broker
    edge-vision fleet --broker mqtts://broker:8883 ... --send gate-3/camera0 set_parameter \\
        '{"node": "inference_node", "name": "score_threshold", "value": 0.4}' \\
        --command-key-file gate-3.key

Subscribes to ``<root>/v1/+/+/#`` (the schema of :mod:`edge_vision_core.mqtt`) and shows a live
table of the devices: online, fps, latency, objects per class, last event, last anomaly, the last
text read (OCR), queue depth, events received and missing. ``--events-out`` appends every event,
once, to a JSON-lines file (duplicates from QoS 1 re-delivery and device restarts are dropped by
their sequence number; events already in the file are not written again after a restart of this
tool). The session is persistent (``--client-id``, default ``edge_vision-fleet-<host>``): events
published while this tool reconnects wait for it at the broker.

``--send DEVICE/CAMERA CMD [ARGS_JSON]`` publishes one command (signed with
``--command-key-file``), waits for the device's reply, prints it and exits (0 when the device
ran it). The password comes from ``--password-file`` or the ``EDGE_VISION_MQTT_PASSWORD``
environment variable, never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from . import StopSignals

HELP = 'live table of the devices on an MQTT broker; events to JSON lines; send commands'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--broker', required=True,
                        help='broker URL: mqtts://host:8883 (TLS) or mqtt://host:1883')
    parser.add_argument('--ca', default='', help='CA file that signed the broker certificate')
    parser.add_argument('--cert', default='', help='client certificate (PEM)')
    parser.add_argument('--key', default='', help='client certificate key (PEM)')
    parser.add_argument('--username', default='', help='MQTT user name')
    parser.add_argument('--password-file', default='',
                        help='file with the MQTT password (or set EDGE_VISION_MQTT_PASSWORD)')
    parser.add_argument('--allow-insecure', action='store_true',
                        help='allow plain TCP to another machine or with credentials')
    parser.add_argument('--protocol', default='5', choices=('5', '3.1.1'),
                        help='MQTT protocol version (default 5)')
    parser.add_argument('--root', default='edge_vision', help='topic root (default edge_vision)')
    parser.add_argument('--client-id', default='',
                        help='client id of the persistent session (default '
                             'edge_vision-fleet-<host>)')
    parser.add_argument('--events-out', metavar='FILE', default='',
                        help='append every event once to this JSON-lines file')
    parser.add_argument('--duration', type=float, default=0.0,
                        help='stop after this many seconds (0: until Ctrl-C)')
    parser.add_argument('--no-table', action='store_true',
                        help='print one line per event instead of the live table')
    parser.add_argument('--send', nargs='+', metavar='ARG',
                        help='DEVICE/CAMERA CMD [ARGS_JSON]: send one command, print the reply')
    parser.add_argument('--command-key-file', default='',
                        help='HMAC key that signs --send commands')
    parser.add_argument('--timeout', type=float, default=15.0,
                        help='--send: seconds to wait for the reply (default 15)')


def _broker_config(args: argparse.Namespace, persistent: bool, client_id: str) -> object:
    from edge_vision_core.mqtt import BrokerConfig

    return BrokerConfig(url=args.broker, protocol=args.protocol, client_id=client_id,
                        ca_file=args.ca, cert_file=args.cert, key_file=args.key,
                        username=args.username, allow_insecure=args.allow_insecure,
                        persistent_session=persistent, session_expiry_s=86400,
                        reconnect_min_s=0.2, reconnect_max_s=5.0)


def _password(args: argparse.Namespace) -> str | None:
    from edge_vision_core.mqtt.client import read_password

    if args.password_file:
        password, warnings = read_password(args.password_file)
        for warning in warnings:
            print(f'warning: {warning}', file=sys.stderr)
        return password
    return os.environ.get('EDGE_VISION_MQTT_PASSWORD')


def _log(level: int, text: str) -> None:
    import logging

    if level >= logging.WARNING:
        print(f'{logging.getLevelName(level).lower()}: {text}', file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.send:
        return _send(args)
    with StopSignals('disconnecting') as stop:  # first: no signal is missed once files open
        return _watch(args, stop)


def _watch(args: argparse.Namespace, stop: StopSignals) -> int:
    from edge_vision_core.mqtt import FleetState, MqttLink
    from edge_vision_core.mqtt.schema import Topics

    host = socket.gethostname().split('.')[0] or 'host'
    client_id = args.client_id or f'edge_vision-fleet-{host}'
    state = FleetState(args.root)
    lock = threading.Lock()
    out = None
    if args.events_out:
        path = Path(args.events_out).expanduser()
        if path.is_file():
            with open(path, encoding='utf-8') as f:
                known = state.preload(_read_lines(f))
            print(f'{path}: {known} events already there (not written again)', file=sys.stderr)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = open(path, 'a', encoding='utf-8')
    table = sys.stdout.isatty() and not args.no_table

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            events = state.ingest(topic, payload)
            for event in events:
                if out is not None:
                    out.write(json.dumps(event, separators=(',', ':')) + '\n')
                if not table:
                    from edge_vision_core.mqtt.fleet import event_summary

                    print(f'{event.get("device")}/{event.get("camera")} #{event.get("seq")} '
                          f'{event_summary(event)}', flush=True)
            if events and out is not None:
                out.flush()

    link = MqttLink(_broker_config(args, True, client_id), client_id,
                    subscriptions=((Topics.subscription(args.root), 1),),
                    on_message=on_message, password=_password(args), log=_log)
    link.start()
    end = time.monotonic() + args.duration if args.duration > 0 else float('inf')
    try:
        if table:
            _live_table(state, lock, link, end, stop)
        else:
            while time.monotonic() < end and not stop.requested:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        link.stop(0.0)
        link.close()
        if out is not None:
            out.close()
    with lock:
        for view in state.rows():
            print(f'{view.device}/{view.camera}: {view.events} events, {view.duplicates} '
                  f'duplicates dropped, {view.missing} missing', file=sys.stderr)
        if state.malformed:
            print(f'{state.malformed} malformed messages ignored ({state.last_error})',
                  file=sys.stderr)
    return 0


def _read_lines(lines: object) -> object:
    for line in lines:
        try:
            yield json.loads(line)
        except ValueError:
            continue


def _live_table(state: object, lock: threading.Lock, link: object, end: float,
                stop: StopSignals) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    def render() -> Table:
        title = f'edge_vision fleet on {link.endpoint} ({link.state})'
        if link.last_error and not link.connected:
            title += f': {link.last_error}'
        table = Table(title=title, expand=True)
        for column in ('device/camera', 'online', 'fps', 'latency ms', 'objects', 'last event',
                       'last anomaly', 'last text', 'queue', 'events', 'missing'):
            table.add_column(column)
        with lock:
            for v in state.rows():
                online = {True: '[green]online', False: f'[red]offline {v.status_reason}',
                          None: '?'}[v.online]
                objects = ', '.join(f'{n} {c}' for n, c in sorted(v.objects.items())) or '-'
                table.add_row(f'{v.device}/{v.camera}', online, _num(v.fps), _num(v.latency_ms),
                              objects, v.last_event or '-', v.last_anomaly or '-',
                              v.last_text or '-', _num(v.queue_depth), str(v.events),
                              str(v.missing))
        return table

    with Live(render(), console=Console(), refresh_per_second=2) as live:
        while time.monotonic() < end and not stop.requested:
            time.sleep(0.5)
            live.update(render())


def _num(value: object) -> str:
    if value is None:
        return '-'
    return f'{value:.1f}' if isinstance(value, float) else str(value)


def _send(args: argparse.Namespace) -> int:
    from edge_vision_core import ConfigError, EdgeVisionError
    from edge_vision_core.mqtt import MqttLink, Topics, make_command
    from edge_vision_core.mqtt.commands import load_key
    from edge_vision_core.mqtt.schema import decode

    target, cmd, *rest = args.send + [''] * (2 - len(args.send))
    device, _, camera = target.partition('/')
    if not cmd or not camera or len(rest) > 1:
        raise ConfigError('--send takes DEVICE/CAMERA CMD [ARGS_JSON]')
    try:
        cmd_args = json.loads(rest[0]) if rest and rest[0] else {}
    except ValueError as exc:
        raise ConfigError(f'--send ARGS_JSON is not JSON: {exc}') from None
    topics = Topics(args.root, device, camera)
    key = load_key(args.command_key_file) if args.command_key_file else None
    command_id = uuid.uuid4().hex
    replies: list[dict] = []
    got = threading.Event()

    def on_message(topic: str, payload: bytes) -> None:
        try:
            body = decode(payload)
        except EdgeVisionError:
            return
        if body.get('id') == command_id:
            replies.append(body)
            got.set()

    client_id = f'edge_vision-send-{uuid.uuid4().hex[:8]}'
    link = MqttLink(_broker_config(args, False, client_id), client_id,
                    subscriptions=((topics['cmd/reply'], 1),), on_message=on_message,
                    password=_password(args), log=_log)
    link.start()
    try:
        deadline = time.monotonic() + args.timeout
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        # the SUBSCRIBE went out on connecting, before this PUBLISH on the same connection:
        # the broker has the reply subscription before the device can answer
        link.post(topics['cmd'], make_command(device, camera, cmd, cmd_args, key, command_id))
        got.wait(max(0.0, deadline - time.monotonic()))
    finally:
        link.stop(0.0)
        link.close()
    if not replies:
        print(f'no reply from {target} within {args.timeout:g} s'
              + (f' ({link.last_error})' if link.last_error else ''), file=sys.stderr)
        return 1
    print(json.dumps(replies[0], indent=1))
    return 0 if replies[0].get('ok') else 1
