"""inference_node throughput against the bare backend, per backend, on the same frames.

Usage::

    .venv/bin/python benchmarks/bench_inference_node.py [--backends onnxruntime,openvino,litert]
        [--threads 2] [--seconds 10] [--model nanodet-m-416]

For each backend it measures, on the same real 640x480 frames (scikit-image samples):

- **bare**: ``backend.run`` on pre-made input tensors in a loop (the runtime alone);
- **detector**: ``Detector.detect`` in a loop (pre + infer + post in one thread);
- **node (DDS)**: ``inference_node`` in its own process, fed ``sensor_msgs/Image`` frames over
  DDS by this process at 1.3x the bare rate (faster than it can infer; it keeps the newest
  frame), counting the ``Detection2DArray`` messages that come back per second;
- **node (in-process)**: camera_node (the same frames from a folder, as fast as taken) and
  inference_node composed in this process (:mod:`edge_vision.compose`), every frame inferred,
  detections counted at an in-process consumer.

and prints fps, latency p50/p95 of the bare call, and node/bare. The node's figure includes
receiving and converting frames, building and publishing the detections, all on the same two
cores as the feeder, so it is a conservative ratio.
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


def real_frames() -> list[np.ndarray]:
    import cv2

    from edge_vision_core.optimize.images import sample_images

    return [cv2.resize(image, (640, 480)) for _, image in
            sample_images(('astronaut', 'chelsea', 'coffee', 'motorcycle_left', 'rocket'))]


def bare(backend: str, threads: int, frames: list[np.ndarray], seconds: float,
         model: str = 'nanodet-m-416') -> tuple[float, float, float, float]:
    from edge_vision_core.inference import Detector, DetectorOptions

    with Detector.create(DetectorOptions(model=model, backend=backend, threads=threads)) as det:
        inputs = [det.preprocess(f).inputs for f in frames]
        det.warmup(3)
        times = []
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            det.backend.run(inputs[i % len(inputs)])
            times.append(time.perf_counter() - t0)
            i += 1
        bare_fps = len(times) / sum(times)
        p50, p95 = np.percentile(np.array(times) * 1e3, [50, 95])
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            det.detect(frames[n % len(frames)])
            n += 1
        detect_fps = n / (time.perf_counter() - t0)
    return bare_fps, float(p50), float(p95), detect_fps


def node(backend: str, threads: int, frames: list[np.ndarray], seconds: float,
         feed_hz: float, model: str = 'nanodet-m-416') -> float:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from edge_vision.conversions import numpy_to_image

    ns = f'/bench_{backend}'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'edge_vision.inference_node', '--ros-args', '-r',
         f'__ns:={ns}', '-p', f'backend:={backend}', '-p', f'threads:={threads}', '-p',
         f'model:={model}'],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    rclpy.init()
    try:
        feeder = rclpy.create_node('bench_feeder')
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        pub = feeder.create_publisher(Image, f'{ns}/image', reliable)
        stamps: list[float] = []
        feeder.create_subscription(Detection2DArray, f'{ns}/detections',
                                   lambda _msg: stamps.append(time.monotonic()), reliable)
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(feeder, timeout_sec=0.1)
        msgs = [numpy_to_image(f, 'bgr8') for f in frames]
        warm_until = time.monotonic() + 3.0
        end = warm_until + seconds
        i = 0
        next_send = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_send:
                msg = msgs[i % len(msgs)]
                msg.header.stamp = feeder.get_clock().now().to_msg()
                pub.publish(msg)
                i += 1
                next_send += 1.0 / feed_hz
            rclpy.spin_once(feeder, timeout_sec=max(0.0, min(0.005,
                                                              next_send - time.monotonic())))
        got = [t for t in stamps if warm_until <= t <= end]
        feeder.destroy_node()
    finally:
        rclpy.try_shutdown()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    return len(got) / seconds


def node_in_process(backend: str, threads: int, frames: list[np.ndarray], seconds: float,
                    model: str = 'nanodet-m-416') -> float:
    import functools
    import tempfile

    import cv2
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from edge_vision.compose import Composition
    from edge_vision.pipeline import pipeline_factories
    from edge_vision.stages import remap_args, stage_remaps

    sys.path.insert(0, os.path.dirname(__file__))
    from bench_pipeline import _probe_class

    folder = tempfile.mkdtemp(prefix='bench_frames_')
    for i, frame in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f'{i:03d}.bmp'), frame)  # no decoding cost
    context = Context()
    rclpy.init(context=context, args=[])
    stages = ('camera', 'inference')
    factories = pipeline_factories(stages, context=context, parameter_overrides={
        'camera': [Parameter('source', value=folder), Parameter('loop', value=True),
                   Parameter('rate', value=-1.0), Parameter('publish_compressed', value=False)],
        'inference': [Parameter('backend', value=backend), Parameter('threads', value=threads),
                      Parameter('async_inference', value=False),
                      Parameter('model', value=model)]})
    probe = functools.partial(_probe_class(), context=context,
                              cli_args=remap_args(stage_remaps([*stages, 'recorder'])['recorder']))
    comp = Composition([*factories, probe], context=context, lossless=True)
    try:
        assert not comp.start()
        arrivals = comp.nodes[-1].arrivals
        warm_until = time.monotonic() + 3.0
        while time.monotonic() < warm_until:
            comp.spin_once(timeout_sec=0.05)
        start_count, t0 = len(arrivals), time.monotonic()
        while time.monotonic() - t0 < seconds:
            comp.spin_once(timeout_sec=0.05)
        return (len(arrivals) - start_count) / (time.monotonic() - t0)
    finally:
        comp.shutdown()
        rclpy.try_shutdown(context=context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backends', default='onnxruntime,openvino,litert')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--model', default='nanodet-m-416',
                        help='any registered model, e.g. selfie-segmentation or face')
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(150, 230)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from edge_vision.dds import apply_transport_defaults
    apply_transport_defaults()
    frames = real_frames()
    print(f'{args.model} on 640x480 frames, {args.threads} threads, {os.cpu_count()} cores')
    print(f'{"backend":>12} {"bare fps":>9} {"p50 ms":>7} {"p95 ms":>7} {"detect fps":>11} '
          f'{"node DDS":>9} {"/bare":>6} {"node in-proc":>13} {"/bare":>6}')
    for backend in args.backends.split(','):
        bare_fps, p50, p95, detect_fps = bare(backend, args.threads, frames, args.seconds,
                                              args.model)
        node_fps = node(backend, args.threads, frames, args.seconds, 1.3 * bare_fps,
                        args.model)
        local_fps = node_in_process(backend, args.threads, frames, args.seconds, args.model)
        print(f'{backend:>12} {bare_fps:9.1f} {p50:7.1f} {p95:7.1f} {detect_fps:11.1f} '
              f'{node_fps:9.1f} {node_fps / bare_fps:6.2f} {local_fps:13.1f} '
              f'{local_fps / bare_fps:6.2f}')


if __name__ == '__main__':
    main()
