"""A fleet on one broker: N simulated devices publish tracks and events into one local Mosquitto,
one fleet subscriber receives them.

Usage: ``.venv/bin/python benchmarks/bench_mqtt.py [--devices 100] [--hz 10] [--seconds 30]
[--processes 4] [--plain]``

Each device is the bridge's own core (:class:`edge_vision_core.mqtt.Bridge`: event watchers,
SQLite outbox, paho-mqtt link with its network thread, TLS + password like the documented
configuration unless ``--plain``), fed ``--hz`` frames a second of a synthetic scene of about five
tracked people where a track enters every other frame and one leaves every other frame: ``--hz``
tracks messages (QoS 0) and about ``--hz`` events (QoS 1, through the outbox) per device and
second. The subscriber is the fleet tool's core (persistent session, duplicate filter).

Prints: messages per second received (sustained over the measured window), end-to-end latency
(the frame's stamp, taken when the device is fed, to the subscriber's arrival time) p50/p99 for
events and tracks, events lost (gaps in the per-device sequences: goal 0 with QoS 1) and tracks
lost (QoS 0), CPU per device of the device processes (all bridge threads, no ROS) and of the
broker and subscriber processes. Not a pass/fail test: numbers depend on the machine and its load
(printed with them).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path

S = 1_000_000_000


def _scene(frame: int, offset: int, stamp_ns: int) -> object:
    """Track k is visible in frames 2k .. 2k + 9 (shifted per device): ~5 people, one enters
    and one leaves every other frame."""
    import numpy as np

    from edge_vision_core import Detections, FrameDetections, FrameMeta

    f = frame + offset
    ids = [k for k in range(max(0, (f - 9) // 2), f // 2 + 1) if 2 * k <= f <= 2 * k + 9]
    n = len(ids)
    boxes = np.array([[10 + 30 * (k % 15), 50, 60 + 30 * (k % 15), 200] for k in ids],
                     np.float32).reshape(n, 4)
    dets = Detections(boxes, np.full(n, 0.8), np.zeros(n), np.array(ids, np.int64))
    return FrameDetections(FrameMeta(stamp_ns, 'camera_optical_frame'), dets, (640, 480))


def _worker(index: int, devices: list[str], broker: dict, hz: float, seconds: float,
            folder: str, ready, start, out) -> None:
    from edge_vision_core.mqtt import Bridge, BridgeConfig, BrokerConfig, EventConfig

    bridges = []
    for name in devices:
        cfg = BrokerConfig(url=broker['url'], ca_file=broker['ca_file'],
                           username=name if broker['users'] else '', reconnect_min_s=0.2,
                           reconnect_max_s=2.0)
        bridges.append(Bridge(
            BridgeConfig(device_id=name, camera_id='camera0', tracks_max_hz=0,
                         health_period_s=0), cfg,
            EventConfig(leave_after_s=0.5 / hz, camera_timeout_s=0),
            store_path=Path(folder) / f'{name}.sqlite',
            password=broker['users'].get(name) if broker['users'] else None))
    for bridge in bridges:
        bridge.start()
    deadline = time.monotonic() + 60
    while not all(b.link.connected for b in bridges) and time.monotonic() < deadline:
        time.sleep(0.05)
    ready.put(index)
    start.wait()
    cpu0, t0 = time.process_time(), time.monotonic()
    period, frame, scene_cpu = 1.0 / hz, 0, 0.0
    while time.monotonic() - t0 < seconds:
        due = t0 + frame * period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for i, bridge in enumerate(bridges):
            c0 = time.thread_time()
            item = _scene(frame, 7 * (index * len(bridges) + i), time.time_ns())
            scene_cpu += time.thread_time() - c0
            bridge.on_results(item, ['person'])
        frame += 1
    cpu = time.process_time() - cpu0 - scene_cpu  # the bridges, not the simulation
    elapsed = time.monotonic() - t0
    for bridge in bridges:
        bridge.link.drain(20.0)
        bridge.stop()
    out.put({'cpu_s': cpu, 'elapsed_s': elapsed, 'frames': frame, 'devices': len(bridges),
             'events': sum(sum(b.events_sent.values()) for b in bridges),
             'tracks': sum(b.link.stats.stream_sent for b in bridges),
             'skipped': sum(b.link.stats.stream_skipped for b in bridges),
             'queued': sum(b.store.depth for b in bridges), 'scene_cpu_s': scene_cpu})
    for bridge in bridges:
        bridge.close()


class Subscriber:
    def __init__(self, broker: dict) -> None:
        from edge_vision_core.mqtt import BrokerConfig, FleetState, MqttLink, Topics

        self.state = FleetState()
        self.lock = threading.Lock()
        self.latency = {'events': [], 'tracks': []}
        self.count = {'events': 0, 'tracks': 0, 'other': 0}
        self.window: tuple[float, float] | None = None
        self.in_window = 0
        cfg = BrokerConfig(url=broker['url'], ca_file=broker['ca_file'],
                           username='fleet' if broker['users'] else '',
                           persistent_session=True)
        self.link = MqttLink(cfg, 'bench-fleet', subscriptions=((Topics.subscription(), 1),),
                             on_message=self.on_message,
                             password=broker['users'].get('fleet') if broker['users'] else None)
        self.link.start()
        while not self.link.connected:
            time.sleep(0.05)

    def on_message(self, topic: str, payload: bytes) -> None:
        now = time.time_ns()
        channel = topic.rsplit('/', 1)[-1]
        with self.lock:
            self.state.ingest(topic, payload)
            if channel in self.latency:
                body = json.loads(payload)
                stamp = body['stamp']['sec'] * S + body['stamp']['nanosec']
                self.latency[channel].append((now - stamp) / 1e6)
                self.count[channel] += 1
            else:
                self.count['other'] += 1
            if self.window and self.window[0] <= time.monotonic() <= self.window[1]:
                self.in_window += 1


def _percentiles(values: list[float]) -> str:
    import numpy as np

    if not values:
        return 'n/a'
    p50, p99 = np.percentile(values, [50, 99])
    return f'{p50:.1f} / {p99:.1f}'


def _cpu(pid: int) -> float:
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--devices', type=int, default=100)
    parser.add_argument('--hz', type=float, default=10.0)
    parser.add_argument('--seconds', type=float, default=30.0)
    parser.add_argument('--processes', type=int, default=4, help='device processes')
    parser.add_argument('--drain-timeout', type=float, default=180.0,
                        help='seconds to wait for the subscriber to receive everything')
    parser.add_argument('--plain', action='store_true',
                        help='plain TCP, anonymous (default: TLS + passwords + per-device ACL)')
    args = parser.parse_args()

    from edge_vision_core.mqtt.broker import MosquittoBroker, make_certificates

    folder = Path(tempfile.mkdtemp(prefix='bench_mqtt_'))
    names = [f'dev{i:03d}' for i in range(args.devices)]
    users = {} if args.plain else {**{n: f'{n}-pw' for n in names}, 'fleet': 'fleet-pw'}
    acl = None if args.plain else (Path(__file__).resolve().parent.parent / 'config' /
                                   'mosquitto' / 'edge_vision.acl').read_text()
    certs = None if args.plain else make_certificates(folder / 'pki')
    # persistence as in config/mosquitto/mosquitto.conf (saved every 100 changes)
    broker = MosquittoBroker(folder / 'broker', users=users or None, acl=acl,
                             certificates=certs, autosave_changes=100).start()
    info = {'url': broker.url, 'ca_file': broker.ca_file, 'users': users}
    sub = Subscriber(info)
    ctx = mp.get_context('spawn')
    ready, start, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    chunks = [names[i::args.processes] for i in range(args.processes)]
    procs = [ctx.Process(target=_worker, args=(i, chunk, info, args.hz, args.seconds,
                                               str(folder / 'stores'), ready, start, out))
             for i, chunk in enumerate(chunks) if chunk]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=180)
    broker_cpu0, sub_cpu0 = _cpu(broker.proc.pid), time.process_time()
    t0 = time.monotonic()
    sub.window = (t0 + 2.0, t0 + args.seconds - 1.0)  # steady state only
    start.set()
    results = [out.get(timeout=args.seconds + 180) for _ in procs]
    # everything the devices sent must reach the subscriber: wait for the backlog to drain
    stopped = time.monotonic()
    sent_events = sum(r['events'] for r in results)
    sent_tracks = sum(r['tracks'] for r in results)
    while time.monotonic() - stopped < args.drain_timeout:
        with sub.lock:
            if sum(v.events for v in sub.state.rows()) >= sent_events and \
                    sub.count['tracks'] >= sent_tracks:
                break
        time.sleep(0.1)
    drain = time.monotonic() - stopped
    time.sleep(1.0)  # late duplicates would arrive now
    broker_cpu = _cpu(broker.proc.pid) - broker_cpu0
    sub_cpu = time.process_time() - sub_cpu0
    wall = time.monotonic() - t0
    for p in procs:
        p.join(30)
    sub.link.close()
    broker.stop()

    devices = sum(r['devices'] for r in results)
    elapsed = max(r['elapsed_s'] for r in results)
    got_events = sum(v.events for v in sub.state.rows())
    missing = sum(v.missing for v in sub.state.rows())
    window = sub.window[1] - sub.window[0]
    load = os.getloadavg()
    print(f'bench_mqtt: {devices} devices x {args.hz:g} Hz for {elapsed:.1f} s, '
          f'{"plain TCP" if args.plain else "TLS + password + ACL"}, '
          f'{len(procs)} device processes, Mosquitto {broker.executable}; '
          f'{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f}')
    print(f'{"measure":<44} value')
    rows = [
        ('messages received per s (steady state)', f'{sub.in_window / window:.0f}'),
        ('  offered per s (events + tracks)', f'{(sent_events + sent_tracks) / elapsed:.0f}'),
        ('events sent / received / missing', f'{sent_events} / {got_events} / {missing}'),
        ('events still queued on devices at the end', f'{sum(r["queued"] for r in results)}'),
        ('backlog drained s after the devices stopped', f'{drain:.1f}'),
        ('tracks sent / received (QoS 0)', f'{sent_tracks} / {sub.count["tracks"]}'),
        ('tracks not sent (link down)', f'{sum(r["skipped"] for r in results)}'),
        ('latency events ms p50 / p99', _percentiles(sub.latency['events'])),
        ('latency tracks ms p50 / p99', _percentiles(sub.latency['tracks'])),
        ('bridge CPU per device, % of one core',
         f'{100 * sum(r["cpu_s"] for r in results) / elapsed / devices:.2f}'),
        ('  (simulated scenes, excluded) per device',
         f'{100 * sum(r["scene_cpu_s"] for r in results) / elapsed / devices:.2f}'),
        ('broker CPU, % of one core', f'{100 * broker_cpu / wall:.1f}'),
        ('broker CPU per message in, us',
         f'{1e6 * broker_cpu / max(1, sent_events + sent_tracks):.0f}'),
        ('subscriber CPU, % of one core', f'{100 * sub_cpu / wall:.1f}'),
        ('subscriber CPU per message, us',
         f'{1e6 * sub_cpu / max(1, got_events + sub.count["tracks"]):.0f}'),
        ('duplicates dropped by the subscriber',
         f'{sum(v.duplicates for v in sub.state.rows())}'),
    ]
    for name, value in rows:
        print(f'{name:<44} {value}')


if __name__ == '__main__':
    main()
