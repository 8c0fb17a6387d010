"""Composed pipeline vs one process per node vs the bare inference backend, on the same frames.

Usage::

    .venv/bin/python benchmarks/bench_pipeline.py [--frames 150] [--threads 2]
        [--backend onnxruntime] [--model auto] [--rounds 1] [--quick]

Frames: the bundled street clip (640x480). Stages: camera -> preprocess -> inference ->
tracker (what ``edge-vision run`` does up to ``tracks``). Measured in one run:

- **bare**: ``backend.run`` on the frames' pre-made input tensors (the runtime alone);
- **composed throughput**: all stages in this process, lossless links (every frame through every
  stage), camera reading as fast as the pipeline takes frames: frames per second at ``tracks``;
  also with camera -> inference only (the bare backend's work plus capture and the graph), and
  the full graph of ``edge-vision run`` (+ overlay and the recorder writing tracks and video);
- **composed latency**: the same graph fed at 60% of its throughput with newest-frame links:
  camera stamp -> ``tracks`` p50/p95, minus the stages' own compute time (preprocess + detect +
  track, measured inside the nodes for the same frames) = the latency the graph adds;
- **separate processes**: each stage in its own process over DDS (``ros2 run``-style), camera as
  fast as possible (newest frame), then paced, measured at a ``tracks`` subscriber.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np


def bare(frames_path: str, n: int, threads: int, backend: str, model: str) -> float:
    import cv2

    from edge_vision_core.inference import Detector, DetectorOptions

    cap = cv2.VideoCapture(frames_path)
    frames = [cap.read()[1] for _ in range(n)]
    with Detector.create(DetectorOptions(model=model, backend=backend, threads=threads)) as det:
        inputs = [det.preprocess(f).inputs for f in frames]
        det.warmup(3)
        t0 = time.perf_counter()
        for x in inputs:
            det.backend.run(x)
        return n / (time.perf_counter() - t0)


def _probe_class():
    from vision_msgs.msg import Detection2DArray

    from edge_vision.conversions import msg_to_frame_detections
    from edge_vision.node_base import EdgeVisionNode, TransitionCallbackReturn
    from edge_vision.qos import results_qos

    class Probe(EdgeVisionNode):
        """Records when each frame's tracks arrive (linked in-process to the tracker)."""

        def __init__(self, **kwargs):
            super().__init__('probe', **kwargs)
            self.arrivals: list[tuple[int, int]] = []  # (stamp ns, arrival ns)

        def on_configure(self, state):
            self.add_input('tracks', Detection2DArray, msg_to_frame_detections, self._on,
                           results_qos())
            return TransitionCallbackReturn.SUCCESS

        def _on(self, item):
            self.arrivals.append((item.meta.stamp_ns, self.get_clock().now().nanoseconds))

    return Probe


def composed(clip: str, n: int, threads: int, backend: str, model: str, rate: float,
             lossless: bool,
             stages: tuple[str, ...] = ('camera', 'preprocess', 'inference', 'tracker')) -> dict:
    import functools
    import tempfile

    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from edge_vision.compose import Composition
    from edge_vision.pipeline import pipeline_factories
    from edge_vision.stages import remap_args, stage_remaps

    context = Context()
    rclpy.init(context=context, args=[])
    overrides = {
        'camera': [Parameter('source', value=clip), Parameter('rate', value=rate),
                   Parameter('publish_compressed', value=False)],
        'inference': [Parameter('threads', value=threads), Parameter('backend', value=backend),
                      Parameter('model', value=model)],
        'recorder': [Parameter('output_dir', value=tempfile.mkdtemp(prefix='bench_pipeline_'))],
        'overlay': [Parameter('diagnostics_period', value=0.0)],
    }
    factories = pipeline_factories(stages, context=context, parameter_overrides=overrides)
    # the probe reads results like the recorder does (tracks, or detections without tracker)
    probe_remaps = remap_args(stage_remaps([*stages, 'recorder'])['recorder'])
    factories.append(functools.partial(_probe_class(), context=context, cli_args=probe_remaps))
    comp = Composition(factories, context=context, lossless=lossless)
    try:
        assert not comp.start()
        nodes = dict(zip(stages, comp.nodes, strict=False))
        camera, probe = comp.nodes[0], comp.nodes[-1]
        t0 = time.monotonic()
        while len(probe.arrivals) < n and time.monotonic() - t0 < 600:
            comp.spin_once(timeout_sec=0.05)
            if camera.state == 'finished' and time.monotonic() - t0 > 5 and \
                    len(probe.arrivals) == camera.frames_published:
                break
        arrivals = probe.arrivals[:n]
        first, last = arrivals[0][1], arrivals[-1][1]
        fps = (len(arrivals) - 1) / max(1e-9, (last - first) / 1e9)
        lat = np.array([(a - s) / 1e6 for s, a in arrivals])
        compute = 0.0
        for stage, keys in (('preprocess', ('process',)), ('inference', ('pre', 'infer', 'post')),
                            ('tracker', ('update',))):
            if stage not in nodes:
                continue
            summary = nodes[stage]._timer.summary()
            compute += sum(summary[k]['p50'] for k in keys if k in summary)
        return {'fps': fps, 'lat_p50': float(np.percentile(lat, 50)),
                'lat_p95': float(np.percentile(lat, 95)), 'compute_p50': compute,
                'frames': len(arrivals)}
    finally:
        comp.shutdown()
        rclpy.try_shutdown(context=context)


def separate(clip: str, n: int, threads: int, backend: str, model: str, rate: float) -> dict:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Detection2DArray

    ns = f'/bench_sep_{random.randint(0, 9999)}'
    common = ['--ros-args', '-r', f'__ns:={ns}']
    specs = [('camera_node', ['-p', f'source:={clip}', '-p', f'rate:={rate}', '-p',
                              'loop:=true', '-p', 'publish_compressed:=false']),
             ('preprocess_node', []),
             ('inference_node', ['-p', f'threads:={threads}', '-p', f'backend:={backend}',
                                 '-p', f'model:={model}']),
             ('tracker_node', [])]
    rclpy.init()
    node = rclpy.create_node('bench_probe')
    arrivals: list[tuple[int, int]] = []
    node.create_subscription(
        Detection2DArray, f'{ns}/tracks',
        lambda m: arrivals.append((m.header.stamp.sec * 10**9 + m.header.stamp.nanosec,
                                   node.get_clock().now().nanoseconds)),
        QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    procs = []
    try:
        # downstream first, so the camera's first frames find their subscribers
        for exe, extra in reversed(specs):
            procs.append(subprocess.Popen(
                [sys.executable, '-m', f'edge_vision.{exe}', *common, *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            time.sleep(1.0)
        t0 = time.monotonic()
        while len(arrivals) < n + 20 and time.monotonic() - t0 < 600:
            rclpy.spin_once(node, timeout_sec=0.05)
        use = arrivals[20:n + 20]  # skip the start-up transient
        fps = (len(use) - 1) / max(1e-9, (use[-1][1] - use[0][1]) / 1e9)
        lat = np.array([(a - s) / 1e6 for s, a in use])
        return {'fps': fps, 'lat_p50': float(np.percentile(lat, 50)),
                'lat_p95': float(np.percentile(lat, 95)), 'frames': len(use)}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            proc.wait(timeout=20)
        node.destroy_node()
        rclpy.try_shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=150)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--backend', default='onnxruntime')
    parser.add_argument('--model', default='auto',
                        help="model of every configuration (default auto: edge-vision run's)")
    parser.add_argument('--rounds', type=int, default=1,
                        help='interleaved rounds of bare and the composed graphs (best kept)')
    parser.add_argument('--quick', action='store_true',
                        help='throughput only: no latency and no separate processes')
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(150, 230)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from edge_vision.dds import apply_transport_defaults
    from edge_vision_models import sample_path
    apply_transport_defaults()
    clip = str(sample_path())
    n = args.frames
    model = args.model
    if model == 'auto':
        from edge_vision_core.optimize.tune import plan_inference
        model = plan_inference('auto', args.backend, threads=args.threads,
                               workers=1).workers[0].model
    full_stages = ('camera', 'preprocess', 'inference', 'tracker', 'overlay', 'recorder')
    rounds: dict[str, list] = {'bare': [], 'thr': [], 'minimal': [], 'full': []}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):  # interleaved: other load hits every configuration alike
        rounds['bare'].append(bare(clip, n, args.threads, args.backend, model))
        rounds['thr'].append(composed(clip, n, args.threads, args.backend, model, -1.0,
                                      lossless=True))
        rounds['minimal'].append(composed(clip, n, args.threads, args.backend, model, -1.0,
                                          lossless=True, stages=('camera', 'inference')))
        rounds['full'].append(composed(clip, n, args.threads, args.backend, model, -1.0,
                                       lossless=True, stages=full_stages))
    bare_fps = max(rounds['bare'])
    thr, minimal, full = (max(rounds[k], key=lambda r: r['fps'])
                          for k in ('thr', 'minimal', 'full'))
    print(f'{model} on {args.backend}, {args.threads} threads, 640x480 street clip, {n} frames, '
          f'{os.cpu_count()} cores, best of {args.rounds} interleaved round(s), load average '
          f'{load:.1f} -> {os.getloadavg()[0]:.1f}')
    if args.rounds > 1:
        for key, name in (('thr', 'camera..tracker'), ('full', 'full graph')):
            ratios = [r['fps'] / b for r, b in zip(rounds[key], rounds['bare'], strict=True)]
            print(f'  {name} / bare per round: ' + ' '.join(f'{x:.2f}' for x in ratios))
    print(f'{"configuration":<34} {"fps":>6} {"vs bare":>8} {"lat p50":>8} {"lat p95":>8} '
          f'{"graph adds":>10}')
    print(f'{"bare backend (session.run)":<34} {bare_fps:6.1f} {1.0:8.2f}')
    print(f'{"composed camera+inference only":<34} {minimal["fps"]:6.1f} '
          f'{minimal["fps"] / bare_fps:8.2f}')
    print(f'{"composed, lossless, max rate":<34} {thr["fps"]:6.1f} '
          f'{thr["fps"] / bare_fps:8.2f}')
    print(f'{"full graph (edge-vision run)":<34} {full["fps"]:6.1f} '
          f'{full["fps"] / bare_fps:8.2f}')
    if args.quick:
        return
    paced = 0.6 * thr['fps']
    lat = composed(clip, min(n, 120), args.threads, args.backend, model, paced, lossless=False)
    sep_thr = separate(clip, n, args.threads, args.backend, model, -1.0)
    sep_lat = separate(clip, min(n, 120), args.threads, args.backend, model, paced)
    print(f'{"configuration":<34} {"fps":>6} {"vs bare":>8} {"lat p50":>8} {"lat p95":>8} '
          f'{"graph adds":>10}')
    print(f'{f"composed, paced {paced:.1f} Hz":<34} {"":>6} {"":>8} {lat["lat_p50"]:8.1f} '
          f'{lat["lat_p95"]:8.1f} {lat["lat_p50"] - lat["compute_p50"]:10.1f}')
    print(f'{"separate processes, max rate":<34} {sep_thr["fps"]:6.1f} '
          f'{sep_thr["fps"] / bare_fps:8.2f}')
    print(f'{f"separate processes, paced {paced:.1f} Hz":<34} {"":>6} {"":>8} '
          f'{sep_lat["lat_p50"]:8.1f} {sep_lat["lat_p95"]:8.1f} '
          f'{sep_lat["lat_p50"] - lat["compute_p50"]:10.1f}')
    print(f'stage compute p50 (preprocess + detect + track): {lat["compute_p50"]:.1f} ms')


if __name__ == '__main__':
    main()
