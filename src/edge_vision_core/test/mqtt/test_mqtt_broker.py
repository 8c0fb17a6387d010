"""The device and fleet sides against real Mosquitto brokers (TLS, passwords, per-device ACL,
persistence): delivery across a broker kill -9, store-and-forward, refusals, commands."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_vision_core import ConfigError, Detections, Frame, FrameDetections, FrameMeta
from edge_vision_core.mqtt import (
    Bridge,
    BridgeConfig,
    BrokerConfig,
    EventConfig,
    FleetState,
    MqttLink,
    Topics,
    make_command,
)
from edge_vision_core.mqtt.broker import MosquittoBroker

S = 1_000_000_000
KEY = b'test-command-key-0123456789abcdef'


def wait_for(predicate: Callable[[], object], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


class Fleet:
    """A consumer as the fleet tool runs it: persistent session, dedup, events in order."""

    def __init__(self, broker: MosquittoBroker, user: str = 'fleet',
                 client_id: str = 'test-fleet') -> None:
        self.state = FleetState()
        self.events: list[dict] = []
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        cfg = BrokerConfig(url=broker.url, ca_file=broker.ca_file, username=user,
                           persistent_session=True, reconnect_min_s=0.1, reconnect_max_s=0.5)
        self.link = MqttLink(cfg, client_id, subscriptions=((Topics.subscription(), 1),),
                             on_message=self._on_message, password=broker.users[user])
        self.link.start()
        assert wait_for(lambda: self.link.connected), self.link.last_error

    def _on_message(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, json.loads(payload) if payload[:1] == b'{' else {}))
            self.events += self.state.ingest(topic, payload)

    def of(self, kind: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e['event'] == kind]

    def on(self, channel: str) -> list[dict]:
        with self._lock:
            return [m for t, m in self.messages if t.endswith('/' + channel)]

    def close(self) -> None:
        self.link.close()


def make_bridge(b: MosquittoBroker, store: Path, device: str = 'dev1', user: str | None = None,
                **cfg: object) -> Bridge:
    user = user or device
    broker = BrokerConfig(url=b.url, ca_file=b.ca_file, username=user, reconnect_min_s=0.1,
                          reconnect_max_s=0.5)
    return Bridge(BridgeConfig(device_id=device, camera_id='cam0', tracks_max_hz=0,
                               health_period_s=0, **cfg), broker,
                  EventConfig(leave_after_s=0.25), store_path=store, password=b.users[user])


def scene(frame: int) -> FrameDetections:
    """Track k is visible in frames 4k .. 4k + 9: one enters every 4th frame, one leaves."""
    ids = [k for k in range(frame // 4 + 1) if 4 * k <= frame <= 4 * k + 9]
    n = len(ids)
    dets = Detections(np.tile([[10, 20, 60, 120]], (n, 1)).astype(np.float32),
                      np.full(n, 0.8), np.zeros(n), np.array(ids, np.int64))
    return FrameDetections(FrameMeta(frame * S // 10, 'cam0_optical'), dets, (640, 480))


def test_every_event_arrives_once_and_in_order_across_a_broker_kill(broker, tmp_path):
    b = broker()
    fleet = Fleet(b)
    bridge = make_bridge(b, tmp_path / 'dev1.sqlite')
    bridge.start()
    try:
        assert wait_for(lambda: bridge.link.connected), bridge.link.last_error
        for frame in range(160):
            bridge.on_results(scene(frame), ['person'])
            if frame == 60:
                b.kill()  # kill -9: no goodbye, in-flight messages and sockets lost
            if frame == 100:
                assert not bridge.link.connected
                b.start()
            time.sleep(0.01)
        total = sum(bridge.events_sent.values())
        assert wait_for(lambda: len(fleet.events) >= total, 30), \
            (len(fleet.events), total, bridge.link.last_error, b.log()[-2000:])
        time.sleep(0.3)  # a late duplicate would show up here
    finally:
        bridge.stop()
        bridge.close()
        fleet.close()
    seqs = [e['seq'] for e in fleet.events]
    assert seqs == list(range(1, total + 1))  # each once, in order, none lost
    entered = [e['track']['id'] for e in fleet.of('track_entered')]
    left = [e['track']['id'] for e in fleet.of('track_left')]
    # track k is last seen in frame 4k + 9 and has left 0.3 s later (frame 4k + 12 <= 159)
    assert entered == list(range(40)) and left == list(range(37))
    first = {e['track']['id']: e['stamp'] for e in fleet.of('track_entered')}
    assert first[7] == {'sec': 2, 'nanosec': 800_000_000}  # frame 28
    assert all(e['device'] == 'dev1' and e['camera'] == 'cam0' for e in fleet.events)
    assert bridge.link.stats.connects == 2 and bridge.store.depth == 0


@pytest.mark.parametrize('change, match', [
    ({'password': 'not-the-password'}, 'refused the connection: (Bad user name or password|'
                                       'Not authorized)'),
    ({'ca': 'other'}, 'does not verify against ca_file .*other'),
    ({'url': 'mqtt://127.0.0.1:{port}', 'username': ''},
     'closed the connection before accepting it: is it a TLS port'),
])
def test_a_link_that_cannot_connect_says_why_and_keeps_trying(broker, pki, change, match):
    b = broker()
    cfg = BrokerConfig(url=change.get('url', b.url).format(port=b.port),
                       ca_file=str(pki[change.get('ca', 'good')].ca_cert),
                       username=change.get('username', 'fleet'), reconnect_min_s=0.1,
                       reconnect_max_s=0.3)
    password = change.get('password', b.users['fleet']) if cfg.username else None
    link = MqttLink(cfg, 'probe', password=password)
    link.start()
    try:
        assert wait_for(lambda: link.stats.connection_failures >= 2), link.last_error
        assert not link.connected
        assert __import__('re').search(match, link.last_error), link.last_error
        assert link.state.startswith(('reconnecting', 'connecting'))
    finally:
        link.close()


def test_tls_to_a_plain_port_and_credentials_over_plain_tcp(broker, tmp_path):
    plain = broker(tls=False, users=None, acl=None)
    link = MqttLink(BrokerConfig(url=f'mqtts://127.0.0.1:{plain.port}', reconnect_min_s=0.1),
                    'probe')
    link.start()
    try:
        assert wait_for(lambda: 'TLS handshake' in link.last_error), link.last_error
    finally:
        link.close()
    with pytest.raises(ConfigError, match='refusing to send credentials'):
        MqttLink(BrokerConfig(url=plain.url, username='dev1'), 'probe', password='x')


def test_the_acl_keeps_a_device_to_its_own_topics(broker, tmp_path):
    b = broker()
    fleet = Fleet(b)
    # dev1's credentials, publishing as dev2: Mosquitto refuses (the Will topic is checked at
    # CONNECT, publishes with an MQTT 5 "Not authorized" PUBACK)
    impostor = make_bridge(b, tmp_path / 'x.sqlite', device='dev2', user='dev1')
    impostor.start()
    try:
        for frame in range(20):
            impostor.on_results(scene(frame), ['person'])
        assert wait_for(lambda: 'Not authorized' in impostor.link.last_error or
                        impostor.link.stats.rejected > 0), impostor.link.last_error
        time.sleep(0.5)
        assert fleet.events == [] and not fleet.on('tracks')
    finally:
        impostor.stop()
        impostor.close()
        fleet.close()


def test_a_refused_subscription_is_reported_and_never_counts_as_subscribed():
    # Mosquitto's acl_file grants every subscription and filters on delivery, so the refusal
    # (an MQTT 5 SUBACK "Not authorized", as EMQX or HiveMQ send it) is fed to the callback
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    logs: list[str] = []
    link = MqttLink(BrokerConfig(url='mqtt://127.0.0.1:1'), 'probe',
                    subscriptions=(('site/cmd', 1), ('site/other', 1)),
                    log=lambda level, text: logs.append(text))
    link._pending_subscriptions.update({1: 'site/cmd', 2: 'site/other'})
    link._handle_subscribe(None, None, 1, [ReasonCode(PacketTypes.SUBACK, identifier=0x87)],
                           None)
    assert link.stats.subscriptions_refused == 1
    assert 'refused the subscription to site/cmd (Not authorized)' in link.last_error
    link._handle_subscribe(None, None, 2, [ReasonCode(PacketTypes.SUBACK, identifier=1)], None)
    assert logs[-1] == 'subscribed to site/other'
    assert not link.subscribed  # one of the two was refused


def test_a_full_store_drops_the_oldest_and_says_so_when_the_link_returns(broker, tmp_path):
    b = broker()
    fleet = Fleet(b)  # its persistent session waits at the broker while it is down
    b.stop()
    fleet.link.stop(0.0)
    bridge = make_bridge(b, tmp_path / 'dev1.sqlite', store_max_messages=6)
    bridge.start()
    try:
        for frame in range(40):  # 10 entries + 7 departures = 17 events into 6 slots
            bridge.on_results(scene(frame), ['person'])
        assert bridge.store.depth == 6 and bridge.store.dropped == 11
        b.start()
        fleet.link.start()
        # the queued ones (seq 12..17), then the report
        assert wait_for(lambda: len(fleet.events) >= 7, 20), fleet.events
        fleet.close()
    finally:
        bridge.stop()
        bridge.close()
    assert [e['seq'] for e in fleet.events] == list(range(12, 19))
    report = fleet.events[-1]
    assert report['event'] == 'messages_dropped' and report['count'] == 11
    assert fleet.state.rows()[0].missing == 11


def test_a_new_bridge_on_the_same_store_sends_what_the_old_one_queued(broker, tmp_path):
    b = broker()
    b.kill()
    store = tmp_path / 'dev1.sqlite'
    first = make_bridge(b, store)
    first.start()
    for frame in range(20):
        first.on_results(scene(frame), ['person'])
    queued = sum(first.events_sent.values())
    first.stop()
    first.close()  # the process ends with the broker still down
    b.start()
    fleet = Fleet(b)
    second = make_bridge(b, store)
    second.start()
    try:
        assert wait_for(lambda: len(fleet.events) >= queued), fleet.events
        second.on_results(scene(100), ['person'])  # new tracks: the sequence continues
        assert wait_for(lambda: len(fleet.events) > queued)
    finally:
        second.stop()
        second.close()
        fleet.close()
    assert [e['seq'] for e in fleet.events] == list(range(1, len(fleet.events) + 1))
    assert len({e['epoch'] for e in fleet.events}) == 1


def test_a_bridge_stopped_while_the_broker_restarts_delivers_its_queue(broker, tmp_path):
    # a run that ends during a broker outage: stop() waits (up to flush_timeout_s) for the
    # link to come back instead of leaving the queue on disk (the composed-pipeline test of
    # test_mqtt_bridge_node met this when the clip ended 1.5 s into the outage)
    b = broker()
    fleet = Fleet(b)
    bridge = make_bridge(b, tmp_path / 'dev1.sqlite', flush_timeout_s=20.0)
    bridge.start()
    restart = threading.Timer(1.0, b.start)
    try:
        assert wait_for(lambda: bridge.link.connected), bridge.link.last_error
        b.kill()
        assert wait_for(lambda: not bridge.link.connected)
        for frame in range(20):
            bridge.on_results(scene(frame), ['person'])
        queued = bridge.store.depth
        assert queued > 0
        restart.start()
        bridge.stop()
        assert bridge.store.depth == 0, bridge.link.last_error
        assert wait_for(lambda: len(fleet.events) >= queued), fleet.events
    finally:
        restart.join()
        bridge.close()
        fleet.close()
    assert [e['seq'] for e in fleet.events] == list(range(1, queued + 1))


def test_commands_are_answered_and_refusals_never_stop_the_bridge(broker, tmp_path):
    b = broker()
    fleet = Fleet(b)
    key_file = tmp_path / 'dev1.key'
    key_file.write_bytes(KEY)
    bridge = make_bridge(b, tmp_path / 'dev1.sqlite',
                         command_key_file=str(key_file), snapshot_topic='image',
                         snapshot_max_bytes=30_000)
    bridge.start()
    topics = bridge.topics
    try:
        # commands sent before the broker granted the cmd subscription would never arrive
        assert wait_for(lambda: bridge.link.subscribed), bridge.link.last_error
        image = np.random.default_rng(1).integers(0, 255, (480, 640, 3), np.uint8)
        bridge.on_image(Frame(image, FrameMeta(time.time_ns(), 'cam0_optical')))
        sends = [
            make_command('dev1', 'cam0', 'ping', {}, KEY, 'c1'),
            bytes(np.random.default_rng(2).integers(0, 256, 300, np.uint8)),
            make_command('dev1', 'cam0', 'ping', {}, b'x' * 32, 'c2'),
            make_command('dev1', 'cam0', 'snapshot', {}, KEY, 'c3'),
            make_command('dev1', 'cam0', 'set_parameter', {
                'node': 'tracker_node', 'name': 'min_hits', 'value': 1}, KEY, 'c4'),
            make_command('dev1', 'cam0', 'set_parameter', {
                'node': 'tracker_node', 'name': 'high_threshold', 'value': 0.3}, KEY, 'c5'),
        ]
        for payload in sends:
            fleet.link.post(topics['cmd'], payload)
        # the one command that needs the ROS graph is waiting for the node
        assert wait_for(lambda: not bridge.graph_commands.empty())
        command = bridge.graph_commands.get_nowait()
        assert (command.id, command.args['value']) == ('c5', 0.3)
        bridge.reply(command.id, command.cmd, True, result={'value': 0.3})
        assert wait_for(lambda: len(fleet.on('cmd/reply')) >= 6), fleet.on('cmd/reply')
        replies = fleet.on('cmd/reply')
        by_id = {r['id']: r for r in replies}
        assert by_id['c1']['ok'] and by_id['c5']['ok']
        assert 'forged' in by_id['c2']['error']
        assert 'not on the allow-list' in by_id['c4']['error']
        malformed = [r for r in replies if r['id'] is None]
        assert len(malformed) == 1 and 'malformed command' in malformed[0]['error']
        assert by_id['c3']['ok']
        assert wait_for(lambda: fleet.on('snapshot'))
        snap = fleet.on('snapshot')[0]
        assert snap['seq'] == by_id['c3']['result']['snapshot_seq']
        jpeg = base64.b64decode(snap['jpeg'])
        assert len(jpeg) <= 30_000
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[1] == \
            snap['width']
        assert bridge.link.connected and bridge.gate.refused == 3
    finally:
        bridge.stop()
        bridge.close()
        fleet.close()


def test_text_lines_reach_the_fleet_with_their_stamp(broker, tmp_path):
    """ocr_node's lines on .../text: frames with text are sent (stamp, lines, image size),
    frames without text are not."""
    from edge_vision_core.inference.ocr import FrameText, TextLine

    b = broker()
    fleet = Fleet(b)
    bridge = make_bridge(b, tmp_path / 'dev1.sqlite', text_max_hz=0)
    bridge.start()
    quad = np.array([[10, 20], [110, 20], [110, 50], [10, 50]], np.float32)
    try:
        assert wait_for(lambda: bridge.link.connected), bridge.link.last_error
        bridge.on_text(FrameText(FrameMeta(3 * S + 5, 'cam0_optical'), (), (640, 480)))
        bridge.on_text(FrameText(FrameMeta(4 * S + 7, 'cam0_optical'),
                                 (TextLine(quad, 'DOCK 7', 0.96, 0.9, 2),), (640, 480)))
        assert wait_for(lambda: fleet.on('text')), bridge.link.last_error
        time.sleep(0.3)  # a message for the empty frame would show up here
    finally:
        bridge.stop()
        bridge.close()
        fleet.close()
    (sent,) = fleet.on('text')
    assert sent['stamp'] == {'sec': 4, 'nanosec': 7} and sent['frame_id'] == 'cam0_optical'
    assert sent['image_size'] == [640, 480] and sent['schema'] == 'edge_vision/v1'
    assert sent['lines'] == [{'text': 'DOCK 7', 'score': 0.96, 'region': 2,
                              'polygon': quad.tolist(), 'box': [10.0, 20.0, 110.0, 50.0]}]
    (view,) = fleet.state.rows()
    assert view.last_text == 'DOCK 7'  # what edge-vision fleet shows
