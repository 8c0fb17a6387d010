"""The on-disk outbox, the command gate, broker settings and security rules, health helpers and
the fleet's duplicate filter (no broker needed)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from edge_vision_core import ConfigError, ConversionError
from edge_vision_core.mqtt.client import (
    BrokerConfig,
    check_security,
    parse_broker_url,
    read_password,
    tls_context,
)
from edge_vision_core.mqtt.commands import (
    CommandError,
    CommandGate,
    CommandPolicy,
    make_command,
    parse_parameter_list,
)
from edge_vision_core.mqtt.fleet import FleetState, SeqFilter
from edge_vision_core.mqtt.health import cpu_temperature_c, jpeg_snapshot
from edge_vision_core.mqtt.schema import Topics, encode, envelope
from edge_vision_core.mqtt.store import OutboundStore

# -- store ------------------------------------------------------------------------------------


def _payload(text: str):
    return lambda seq: f'{seq}:{text}'.encode()


def test_store_is_fifo_and_acked_rows_go(tmp_path):
    with OutboundStore(tmp_path / 'q.sqlite') as store:
        seqs = [store.put('t/events', _payload(x), counter='events')[0] for x in 'abc']
        assert seqs == [1, 2, 3] and store.depth == 3
        rows = store.pending()
        assert [r.payload for r in rows] == [b'1:a', b'2:b', b'3:c']
        assert store.pending(after_id=rows[0].id, limit=1)[0].payload == b'2:b'
        assert store.ack(rows[1].id) and not store.ack(rows[1].id)
        assert [r.payload for r in store.pending()] == [b'1:a', b'3:c']


def test_store_keeps_rows_counters_and_epoch_across_reopening(tmp_path):
    path = tmp_path / 'q.sqlite'
    with OutboundStore(path) as store:
        store.put('t', _payload('x'), counter='events')
        store.next_seq('tracks')
        epoch = store.epoch
    with OutboundStore(path) as store:
        assert store.depth == 1 and store.epoch == epoch
        assert store.put('t', _payload('y'), counter='events')[0] == 2
        assert store.next_seq('tracks') == 2


def test_store_survives_kill_9_of_the_writer(tmp_path):
    path = tmp_path / 'q.sqlite'
    code = textwrap.dedent(f"""
        import os, signal
        from edge_vision_core.mqtt.store import OutboundStore
        store = OutboundStore({str(path)!r})
        for i in range(50):
            store.put('t', lambda s: b'x%d' % s, counter='events')
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with OutboundStore(path) as store:
        assert store.depth == 50
        assert store.pending(limit=100)[-1].payload == b'x50'


def test_a_full_store_drops_the_oldest_and_counts_them_once(tmp_path):
    with OutboundStore(tmp_path / 'q.sqlite', max_messages=3, max_bytes=10_000) as store:
        dropped = [store.put('t', _payload(str(i)), counter='events')[1] for i in range(5)]
        assert dropped == [0, 0, 0, 1, 1] and store.depth == 3
        assert [r.payload for r in store.pending()] == [b'3:2', b'4:3', b'5:4']
        assert store.dropped == 2
        assert store.take_unreported_drops() == 2 and store.take_unreported_drops() == 0
    with OutboundStore(tmp_path / 'b.sqlite', max_messages=100, max_bytes=25) as store:
        for _i in range(4):
            store.put('t', lambda s: b'0123456789')
        assert store.depth == 2 and store.size_bytes == 20 and store.dropped == 2
        with pytest.raises(ConfigError, match='larger than the whole store'):
            store.put('t', lambda s: b'x' * 26)
        assert store.depth == 2


def test_a_corrupt_store_file_is_moved_aside_and_a_new_one_started(tmp_path):
    path = tmp_path / 'q.sqlite'
    path.write_bytes(os.urandom(4096))
    with OutboundStore(path) as store:
        assert store.depth == 0 and 'was not a valid store' in store.notes[0]
        store.put('t', _payload('x'))
    assert len(list(tmp_path.glob('q.sqlite.corrupt-*'))) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write anywhere')
def test_an_unwritable_store_path_is_a_config_error(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match='store_path'):
        OutboundStore(locked / 'sub' / 'q.sqlite')


def test_a_store_under_a_file_is_a_config_error(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ConfigError, match='store_path'):
        OutboundStore(tmp_path / 'file' / 'q.sqlite')


# -- commands ---------------------------------------------------------------------------------

KEY = b'k' * 32
NOW = 1_800_000_000.0


def _gate(**policy: object) -> CommandGate:
    defaults = {'allowed_commands': frozenset({'ping', 'set_parameter'}),
                'allowed_parameters': parse_parameter_list(['tracker_node:high_threshold']),
                'key': KEY}
    return CommandGate(CommandPolicy(**{**defaults, **policy}), 'dev1', 'cam0')


def _cmd(cmd='set_parameter', args=None, key=KEY, device='dev1', ts=NOW, command_id=None):
    args = {'node': 'tracker_node', 'name': 'high_threshold', 'value': 0.4} \
        if args is None else args
    return make_command(device, 'cam0', cmd, args, key, command_id, ts)


def test_a_signed_allowed_command_passes():
    command = _gate().check(_cmd(), now=NOW + 1)
    assert command.cmd == 'set_parameter'
    assert command.args == {'node': 'tracker_node', 'name': 'high_threshold', 'value': 0.4}


def _tampered() -> bytes:
    obj = json.loads(_cmd())
    obj['args']['value'] = 0.01
    return encode(obj)


@pytest.mark.parametrize('payload, match', [
    (os.urandom(64), 'malformed command'),
    (b'\xff' * 20000, 'malformed command: 20000 bytes'),
    (b'[]', 'malformed command'),
    (b'{"cmd": "ping", "ts": 1}', '"id"'),
    (b'{"id": "a b", "cmd": "ping", "ts": 1}', '"id"'),
    (b'{"id": "x", "cmd": 3, "ts": 1}', '"cmd"'),
    (b'{"id": "x", "cmd": "ping", "args": [], "ts": 1}', '"args"'),
    (b'{"id": "x", "cmd": "ping", "ts": "now"}', '"ts"'),
    (_cmd(key=None), 'unauthenticated'),
    (_cmd(key=b'w' * 32), 'forged'),
    (_cmd(device='dev2'), 'forged'),
    (_tampered(), 'forged'),
    (_cmd(ts=NOW - 3600), 'stale'),
    (_cmd(ts=NOW + 3600), 'stale'),
    (_cmd('reboot', {}), 'unknown command'),
    (_cmd('snapshot', {}), 'not on the allow-list'),
    (_cmd(args={'node': 'tracker_node', 'name': 'min_hits', 'value': 5}),
     'tracker_node:min_hits is not on the allow-list'),
    (_cmd(args={'node': 'camera_node', 'name': 'high_threshold', 'value': 5}),
     'not on the allow-list'),
    (_cmd(args={'node': 'tracker_node', 'name': 'high_threshold'}), 'needs args'),
    (_cmd(args={'node': 'tracker_node', 'name': 'high_threshold', 'value': {'a': 1}}),
     'must be a finite'),
    (_cmd(args={'node': 'tracker_node', 'name': 'high_threshold', 'value': [1, 'a']}),
     'must be a finite'),
])
def test_the_gate_refuses_with_the_reason(payload, match):
    gate = _gate()
    with pytest.raises(CommandError, match=match):
        gate.check(payload, now=NOW)
    assert gate.refused == 1 and gate.accepted == 0


def test_a_replayed_command_is_refused_and_the_reply_knows_its_id():
    gate = _gate()
    payload = _cmd(command_id='abc-1')
    gate.check(payload, now=NOW)
    with pytest.raises(CommandError, match='replayed') as info:
        gate.check(payload, now=NOW + 2)
    assert info.value.command_id == 'abc-1' and info.value.cmd == 'set_parameter'


def test_without_a_key_commands_are_refused_unless_signatures_are_not_required():
    with pytest.raises(CommandError, match='commands are disabled'):
        _gate(key=None).check(_cmd(key=None), now=NOW)
    assert _gate(key=None, require_signature=False).check(_cmd(key=None), now=NOW)


def test_policy_and_allow_list_entries_are_validated():
    with pytest.raises(ConfigError, match='Invalid command'):
        CommandPolicy(allowed_commands=frozenset({'format_disk'}))
    with pytest.raises(ConfigError, match='<node name>:<parameter name>'):
        parse_parameter_list(['tracker_node.high_threshold'])


# -- broker settings --------------------------------------------------------------------------


@pytest.mark.parametrize('url, expected', [
    ('mqtts://broker.local', (True, 'broker.local', 8883)),
    ('mqtt://10.0.0.5:1884', (False, '10.0.0.5', 1884)),
    ('ssl://[::1]:8884', (True, '::1', 8884)),
])
def test_broker_urls(url, expected):
    ep = parse_broker_url(url)
    assert (ep.tls, ep.host, ep.port) == expected


@pytest.mark.parametrize('url, match', [
    ('http://broker', 'expecting mqtts'), ('mqtts://', 'no host'),
    ('mqtts://user:pw@broker', 'holds credentials'), ('mqtt://broker:99999', 'invalid'),
    ('mqtts://broker/path', 'only scheme'),
])
def test_bad_broker_urls(url, match):
    with pytest.raises(ConfigError, match=match):
        BrokerConfig(url=url)


@pytest.mark.parametrize('settings, password, match', [
    ({'url': 'mqtt://localhost', 'username': 'dev1'}, False, 'refusing to send credentials'),
    ({'url': 'mqtt://127.0.0.1'}, True, 'refusing to send credentials .*password_file'),
    ({'url': 'mqtt://broker.lan'}, False, 'plain TCP to another machine'),
])
def test_insecure_transport_is_refused(settings, password, match):
    with pytest.raises(ConfigError, match=match):
        check_security(BrokerConfig(**settings), password)


@pytest.mark.parametrize('settings, password, warns', [
    ({'url': 'mqtt://localhost'}, False, False),
    ({'url': 'mqtts://broker.lan', 'username': 'u', 'ca_file': 'ca.pem'}, True, False),
    ({'url': 'mqtts://broker.lan'}, False, True),
    ({'url': 'mqtt://broker.lan', 'username': 'u', 'allow_insecure': True}, True, True),
])
def test_secure_or_explicitly_allowed_transport_passes(settings, password, warns):
    assert bool(check_security(BrokerConfig(**settings), password)) == warns


def test_password_files_and_tls_files_are_checked(tmp_path):
    secret = tmp_path / 'pw'
    secret.write_text('s3cret\n')
    secret.chmod(0o644)
    password, warnings = read_password(str(secret))
    assert password == 's3cret' and 'chmod 600' in warnings[0]
    with pytest.raises(ConfigError, match='cannot read password_file'):
        read_password(str(tmp_path / 'missing'))
    (tmp_path / 'bad.pem').write_text('not a certificate')
    with pytest.raises(ConfigError, match='cannot load ca_file'):
        tls_context(BrokerConfig(url='mqtts://b', ca_file=str(tmp_path / 'bad.pem')))
    with pytest.raises(ConfigError, match='key_file is set but cert_file'):
        BrokerConfig(url='mqtts://b', key_file='k.pem')


# -- health and snapshots ---------------------------------------------------------------------


def test_cpu_temperature_prefers_the_cpu_zone_and_skips_unreadable_ones(tmp_path):
    assert cpu_temperature_c(tmp_path) is None
    for i, (kind, temp) in enumerate([('acpitz', '71000'), ('x86_pkg_temp', '48500'),
                                      ('broken', 'n/a')]):
        zone = tmp_path / f'thermal_zone{i}'
        zone.mkdir()
        (zone / 'type').write_text(kind + '\n')
        (zone / 'temp').write_text(temp + '\n')
    assert cpu_temperature_c(tmp_path) == 48.5
    (tmp_path / 'thermal_zone1' / 'type').write_text('gpu\n')
    assert cpu_temperature_c(tmp_path) == 71.0


def test_snapshots_fit_the_byte_cap_and_decode():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (480, 640, 3), np.uint8)  # noise: the hardest to compress
    data, (w, h), quality = jpeg_snapshot(image, 'bgr8', max_bytes=20_000, max_width=320)
    assert len(data) <= 20_000 and (w, h) == (320, 240)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (h, w) or decoded.shape[1] < w
    rgb, _, _ = jpeg_snapshot(image[..., ::-1].copy(), 'rgb8', max_bytes=500_000)
    assert cv2.imdecode(np.frombuffer(rgb, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
    with pytest.raises(ConversionError):
        jpeg_snapshot(image, 'bgr8', max_bytes=10)


# -- fleet ------------------------------------------------------------------------------------


def test_seq_filter_drops_duplicates_and_counts_gaps_in_bounded_memory():
    f = SeqFilter(max_pending=3)
    assert [f.add(s) for s in (1, 2, 2, 4, 1, 3)] == [True, True, False, True, False, True]
    assert f.missing == 0 and f.floor == 4
    for s in (6, 8, 10, 12):
        f.add(s)
    assert f.missing == 4  # 5, 7, 9, 11 never came; the floor moved on, still counted
    assert not f.add(5) or f.missing == 3


def test_fleet_state_dedups_events_per_epoch_and_ignores_malformed_messages():
    topics = Topics('edge_vision', 'dev1', 'cam0')
    state = FleetState()

    def event(seq, epoch='e1', kind='track_entered'):
        return encode(envelope(topics, seq, epoch, {'event': kind,
                                                     'track': {'id': seq, 'class': 'person'}}))

    got = []
    for payload in (event(1), event(2), event(1), event(4), event(1, epoch='e2')):
        got += state.ingest(topics['events'], payload)
    assert [(e['seq'], e['epoch']) for e in got] == [(1, 'e1'), (2, 'e1'), (4, 'e1'),
                                                     (1, 'e2')]
    assert state.ingest(topics['events'], b'\x00\xff') == [] and state.malformed == 1
    state.ingest(topics['status'], encode({'state': 'offline', 'reason': 'connection lost'}))
    view = state.rows()[0]
    assert (view.events, view.duplicates, view.missing, view.online) == (4, 1, 1, False)
    assert view.last_event == 'person #1 entered'
    assert state.preload([{'device': 'dev1', 'camera': 'cam0', 'epoch': 'e1', 'seq': 5}]) == 1
    assert state.ingest(topics['events'], event(5)) == []


def test_store_file_is_plain_sqlite(tmp_path):
    """The queue can be inspected with any SQLite tool (what an operator does on a device)."""
    with OutboundStore(tmp_path / 'q.sqlite') as store:
        store.put('edge_vision/v1/d/c/events', _payload('x'), counter='events')
    db = sqlite3.connect(tmp_path / 'q.sqlite')
    assert db.execute('SELECT topic, qos FROM outbox').fetchall() == [
        ('edge_vision/v1/d/c/events', 1)]
