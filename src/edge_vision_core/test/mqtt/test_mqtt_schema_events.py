"""Schema v1 topics and payloads, and the event watchers (pure, no broker)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edge_vision_core import ConfigError, ConversionError, Detections, FrameMeta
from edge_vision_core.mqtt.events import (
    CameraWatch,
    Event,
    EventConfig,
    LevelWatch,
    RateLimiter,
    TrackPresence,
)
from edge_vision_core.mqtt.schema import (
    CHANNELS,
    Topics,
    decode,
    detections_body,
    encode,
    parse_topic,
)

S = 1_000_000_000


def test_importing_mqtt_imports_neither_ros_nor_paho():
    code = ('import sys, edge_vision_core.mqtt; bad = [m for m in ("rclpy", "paho") '
            'if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize('device', ['', 'a/b', 'dev+', 'dev#', '$SYS', 'x' * 65, 'dév', ' x'])
def test_topic_levels_that_would_change_the_topic_are_refused(device):
    with pytest.raises(ConfigError, match='not a valid MQTT topic level'):
        Topics('edge_vision', device, 'camera0')


def test_topics_round_trip_through_parse_topic():
    topics = Topics('site1/edge_vision', 'gate-3', 'camera0')
    for channel in CHANNELS:
        assert parse_topic(topics[channel], 'site1/edge_vision') == ('gate-3', 'camera0',
                                                                     channel)
    assert topics['cmd/reply'] == 'site1/edge_vision/v1/gate-3/camera0/cmd/reply'
    assert parse_topic('edge_vision/v1/gate-3/camera0/unknown') is None
    assert parse_topic('other/v1/a/b/events') is None
    with pytest.raises(ConfigError, match='Invalid channel'):
        topics['nope']


def test_payloads_are_valid_json_even_with_nan():
    dets = Detections(np.array([[1, 2, 3, 4], [np.nan, 0, np.inf, 5]], np.float32),
                      np.array([0.5, np.nan]), np.array([0, 7]), np.array([3, 9]))
    body = detections_body(dets, ['person'], (640, 480))
    data = encode(body)
    parsed = json.loads(data)  # strict JSON: no NaN literals
    assert parsed['objects'][0] == {'id': 3, 'class': 'person', 'class_id': 0, 'score': 0.5,
                                    'box': [1.0, 2.0, 3.0, 4.0]}
    assert parsed['objects'][1]['class'] == '7' and parsed['objects'][1]['score'] is None
    assert parsed['objects'][1]['box'] == [None, 0.0, None, 5.0]
    assert parsed['image_size'] == [640, 480]


@pytest.mark.parametrize('payload, match', [
    (bytes(range(256)), 'not UTF-8'),
    (b'{"a": ', 'not JSON'),
    (b'[1, 2]', 'must be a JSON object'),
    (b'{"x": NaN}', 'not JSON'),
    (b'{"x": 1}' + b' ' * 100, 'larger than'),
    (b'[' * 100000, 'nested too deeply|not JSON'),
])
def test_decode_refuses_what_is_not_a_schema_payload(payload, match):
    with pytest.raises(ConversionError, match=match):
        decode(payload, max_bytes=100 if b' ' * 100 in payload else 1 << 20)


def _tracks(*ids: int) -> Detections:
    n = len(ids)
    return Detections(np.tile([[10, 10, 50, 80]], (n, 1)).astype(np.float32),
                      np.full(n, 0.9), np.zeros(n), np.array(ids, np.int64))


def test_a_track_enters_once_and_leaves_once_after_the_leave_time():
    presence = TrackPresence(leave_after_s=0.3)
    timeline = [(0.0, (1,)), (0.1, (1, 2)), (0.2, (2,)), (0.3, (2,)), (0.45, (2,)),
                (0.5, (2,)), (0.6, ()), (0.95, ()), (1.0, (1,))]
    events = []
    for t, ids in timeline:
        for e in presence.update(FrameMeta(int(t * S)), _tracks(*ids), ['person']):
            events.append((t, e.type, e.data['track']['id']))
    # 1: last seen at 0.1, absent >= 0.3 s first at 0.45; 2: last seen at 0.5, left at 0.95
    assert events == [(0.0, 'track_entered', 1), (0.1, 'track_entered', 2),
                      (0.45, 'track_left', 1), (0.95, 'track_left', 2),
                      (1.0, 'track_entered', 1)]


def test_track_left_carries_first_and_last_stamps_and_backwards_stamps_do_not_end_tracks():
    presence = TrackPresence(leave_after_s=0.5)
    presence.update(FrameMeta(10 * S), _tracks(5), ['car'])
    presence.update(FrameMeta(11 * S), _tracks(5), ['car'])
    assert presence.update(FrameMeta(3 * S), _tracks(), ['car']) == []  # a replay restarting
    (left,) = presence.update(FrameMeta(12 * S), _tracks(), ['car'])
    assert left.data['first_seen'] == {'sec': 10, 'nanosec': 0}
    assert left.data['last_seen'] == {'sec': 11, 'nanosec': 0}
    assert left.data['duration_s'] == 1.0 and left.data['track']['class'] == 'car'
    assert presence.update(FrameMeta(13 * S), Detections.empty(), None) == []


def test_untracked_detections_give_no_track_events():
    presence = TrackPresence()
    dets = Detections(np.array([[0, 0, 5, 5]], np.float32), [0.9], [0])
    assert presence.update(FrameMeta(S), dets) == []


def test_level_watch_needs_consecutive_frames_and_keeps_state_in_the_hysteresis_band():
    watch = LevelWatch(('anomaly_raised', 'anomaly_cleared'), high=0.5, low=0.4,
                       raise_frames=3, clear_frames=2)
    values = [0.6, 0.6, 0.45, 0.6, 0.6, 0.6, 0.45, 0.3, 0.45, 0.3, 0.3, 0.3]
    changes = [(i, e.type) for i, v in enumerate(values)
               if (e := watch.update(FrameMeta(i * S), v)) is not None]
    assert changes == [(5, 'anomaly_raised'), (10, 'anomaly_cleared')]
    assert watch.update(FrameMeta(99 * S), float('nan')) is None


def test_level_watch_reports_peak_and_duration_when_cleared():
    watch = LevelWatch(('anomaly_raised', 'anomaly_cleared'), 0.5, 0.4, 1, 1)
    assert watch.update(FrameMeta(1 * S), 0.7).type == 'anomaly_raised'
    watch.update(FrameMeta(2 * S), 0.9)
    cleared = watch.update(FrameMeta(4 * S), 0.1)
    assert cleared.data['peak'] == 0.9 and cleared.data['duration_s'] == 3.0


def test_camera_watch_times_out_once_and_comes_back_with_the_next_frame():
    watch = CameraWatch(timeout_s=2.0, now_ns=0)
    assert watch.check(1 * S) is None
    lost = watch.check(2 * S)
    assert lost.type == 'camera_lost' and 'since start' in lost.data['reason']
    assert watch.check(3 * S) is None and watch.camera_error('unplugged', 3 * S) is None
    assert watch.frame(FrameMeta(4 * S, 'cam'), 4 * S).type == 'camera_back'
    assert watch.frame(FrameMeta(5 * S, 'cam'), 5 * S) is None
    error = watch.camera_error('source unavailable: /dev/video0', 6 * S)
    assert error.data == {'reason': 'source unavailable: /dev/video0',
                          'last_frame': {'sec': 5, 'nanosec': 0}}


def test_rate_limiter_sends_at_most_max_hz_and_the_newest_wins():
    limiter = RateLimiter(max_hz=2.0)
    assert limiter.offer('a', 0.0) == 'a'
    assert limiter.offer('b', 0.1) is None and limiter.offer('c', 0.2) is None
    assert limiter.due(0.4) is None and limiter.wait(0.4) == pytest.approx(0.1)
    assert limiter.due(0.5) == 'c' and limiter.replaced == 1
    assert limiter.due(2.0) is None
    unlimited = RateLimiter(0.0)
    assert [unlimited.offer(i, 0.0) for i in range(3)] == [0, 1, 2]


def test_event_config_and_event_types_are_validated():
    with pytest.raises(ConfigError, match='anomaly_clear'):
        EventConfig(anomaly_raise=0.4, anomaly_clear=0.5)
    with pytest.raises(ConfigError, match='Invalid event type'):
        Event('track_exploded', FrameMeta())
