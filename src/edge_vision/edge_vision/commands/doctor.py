"""Check that this ROS 2 environment can carry edge_vision's traffic, with numbers.

``edge-vision doctor`` starts a publisher in a second process that sends synthetic camera frames
(``sensor_msgs/Image``) and matching ``vision_msgs/Detection2DArray`` messages, receives them
here with edge_vision's default QoS (reliable publishers, best-effort image subscribers, as
REP-2003 recommends), and reports: the ROS 2 and DDS set-up, the type hashes seen on the graph
against upstream vision_msgs 4.1.1, how many frames arrived intact, and their latency. It exits
non-zero when something would make a real pipeline go silent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..dds import apply_transport_defaults, wheels_distro

HELP = 'check the ROS 2 environment: rclpy, type hashes, and image delivery over DDS'
NAMESPACE = '/edge_vision_doctor'
FRAME_ID = 'doctor_optical_frame'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--seconds', type=float, default=3.0, help='publishing time (3)')
    parser.add_argument('--rate', type=float, default=30.0, help='frames per second (30)')
    parser.add_argument('--size', default='640x480', help='frame size WxH (640x480)')
    parser.add_argument('--transport', default='auto',
                        choices=('auto', 'default', 'large-data', 'profile'),
                        help='DDS transport: auto = edge_vision defaults, default = Fast DDS '
                             'as shipped, large-data = FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA, '
                             'profile = the bundled large-frame XML profile')
    parser.add_argument('--min-delivery', type=float, default=0.9,
                        help='fraction of images that must arrive (0.9)')
    parser.add_argument('--publisher', action='store_true', help=argparse.SUPPRESS)


def _parse_size(text: str) -> tuple[int, int]:
    from edge_vision_core import ConfigError
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise ConfigError(f'--size must look like 640x480, got {text!r}') from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise ConfigError(f'--size must be between 16x16 and 8192x8192, got {text}')
    return width, height


def _configure_transport(choice: str) -> str:
    if choice == 'auto':
        return apply_transport_defaults()
    for var in ('FASTDDS_BUILTIN_TRANSPORTS', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                'FASTDDS_DEFAULT_PROFILES_FILE'):
        os.environ.pop(var, None)
    os.environ['EDGE_VISION_DDS_DEFAULTS'] = '0'
    if choice == 'large-data':
        os.environ['FASTDDS_BUILTIN_TRANSPORTS'] = 'LARGE_DATA'
    elif choice == 'profile':
        os.environ.pop('EDGE_VISION_DDS_DEFAULTS')
        apply_transport_defaults()
    return f'Fast DDS transport forced to {choice!r}'


def _qos():
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          history=HistoryPolicy.KEEP_LAST)
    best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                             history=HistoryPolicy.KEEP_LAST)
    return reliable, best_effort


def _frame(width: int, height: int, index: int) -> np.ndarray:
    """A frame whose content encodes its index, so corruption is detectable."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = (index * 7 % 256, index * 13 % 256, index * 29 % 256)
    img[0, :4, 0] = np.frombuffer(np.uint32(index).tobytes(), np.uint8)
    return img


def _run_publisher(args: argparse.Namespace) -> int:
    """Child process: wait for the subscriber, publish the frames, exit."""
    import rclpy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from edge_vision_core import Detections

    from ..conversions import detections_to_msg, numpy_to_image

    width, height = _parse_size(args.size)
    rclpy.init()
    node = rclpy.create_node('publisher', namespace=NAMESPACE)
    reliable, _ = _qos()
    pub_img = node.create_publisher(Image, 'image_raw', reliable)
    pub_det = node.create_publisher(Detection2DArray, 'detections', reliable)
    deadline = time.monotonic() + 15.0
    while (pub_img.get_subscription_count() == 0 or pub_det.get_subscription_count() == 0) \
            and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    count = max(1, int(round(args.seconds * args.rate)))
    period = 1.0 / args.rate
    start = time.monotonic()
    for i in range(count):
        now = node.get_clock().now().to_msg()
        msg = numpy_to_image(_frame(width, height, i), 'bgr8')
        msg.header.stamp, msg.header.frame_id = now, FRAME_ID
        pub_img.publish(msg)
        dets = Detections([[i % width, 1, i % width + 10, 11]], [0.5], [i % 80])
        pub_det.publish(detections_to_msg(dets, msg.header))
        rclpy.spin_once(node, timeout_sec=0)
        delay = start + (i + 1) * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    # the last reliable samples may still be on their way: exit once the subscriber has
    # acknowledged them all (a fixed pause lost the tail when the subscriber was busy)
    from rclpy.duration import Duration
    for pub in (pub_img, pub_det):
        pub.wait_for_all_acked(Duration(seconds=5))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


@dataclass
class _Stats:
    received: int = 0
    intact: int = 0
    headers_ok: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    if args.publisher:
        return _run_publisher(args)
    width, height = _parse_size(args.size)
    transport = _configure_transport(args.transport)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from ..conversions import header_to_meta, image_to_numpy, msg_to_detections
    from ..type_hashes import UPSTREAM_TYPE_HASHES

    expected = max(1, int(round(args.seconds * args.rate)))
    print('edge_vision doctor')
    print(f'  python {sys.version.split()[0]}, numpy {np.__version__}, '
          f'OpenCV {_cv2_version()}')
    distro = os.environ.get('ROS_DISTRO') or f'{wheels_distro()} (PyPI wheels)'
    print(f'  ROS 2 {distro}, {os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")}, '
          f'ROS_DOMAIN_ID={os.environ.get("ROS_DOMAIN_ID", "0")}')
    print(f'  transport: {transport}')

    rclpy.init()
    node = rclpy.create_node('subscriber', namespace=NAMESPACE)
    reliable, best_effort = _qos()
    images, detections = _Stats(), _Stats()

    def on_image(msg: Image) -> None:
        arrival = node.get_clock().now().nanoseconds
        images.received += 1
        meta = header_to_meta(msg.header)
        images.latencies_ms.append((arrival - meta.stamp_ns) / 1e6)
        images.headers_ok += meta.frame_id == FRAME_ID
        arr = image_to_numpy(msg)
        index = int(np.frombuffer(arr[0, :4, 0].tobytes(), np.uint32)[0])
        if arr.shape == (height, width, 3) and np.array_equal(arr[1:], _frame(width, height,
                                                                             index)[1:]):
            images.intact += 1

    def on_detections(msg: Detection2DArray) -> None:
        arrival = node.get_clock().now().nanoseconds
        detections.received += 1
        meta = header_to_meta(msg.header)
        detections.latencies_ms.append((arrival - meta.stamp_ns) / 1e6)
        dets = msg_to_detections(msg)
        detections.headers_ok += meta.frame_id == FRAME_ID and all(
            d.header == msg.header for d in msg.detections)
        detections.intact += len(dets) == 1

    node.create_subscription(Image, 'image_raw', on_image, best_effort)
    node.create_subscription(Detection2DArray, 'detections', on_detections, reliable)
    child_args = [sys.executable, '-m', 'edge_vision.cli', 'doctor', '--publisher',
                  '--seconds', str(args.seconds), '--rate', str(args.rate), '--size', args.size]
    child = subprocess.Popen(child_args, env=dict(os.environ))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    hashes: dict[str, str] = {}
    try:
        deadline = time.monotonic() + args.seconds + 30.0
        while child.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if len(hashes) < len(_HASHED_TOPICS):  # until both publishers are discovered
                hashes.update(_graph_hashes(node))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        node.destroy_node()
        rclpy.try_shutdown()

    ok = True
    for type_name, seen in sorted(hashes.items()):
        want = UPSTREAM_TYPE_HASHES.get(type_name)
        verdict = 'matches upstream' if seen == want else f'DIFFERS from upstream {want}'
        ok &= seen == want
        print(f'  type hash {type_name}: {seen[:22]}... {verdict}')
    if not hashes:
        print('  type hashes: not reported by this ROS 2 distro (Humble predates them)')
    ok &= _report('image_raw', f'{width}x{height} bgr8', images, expected, args.min_delivery)
    ok &= _report('detections', 'Detection2DArray', detections, expected, 1.0)
    print(f'  result: {"OK" if ok else "PROBLEMS FOUND"}')
    if not ok and args.transport != 'default':
        print('  hint: images that do not arrive usually mean the DDS shared-memory segment is '
              'smaller than a frame; see `edge-vision doctor --help` for transports to try')
    return 0 if ok and child.returncode == 0 else 1


def _report(topic: str, what: str, stats: _Stats, expected: int, minimum: float) -> bool:
    lat = np.array(stats.latencies_ms) if stats.latencies_ms else np.array([np.nan])
    ok = (stats.received >= minimum * expected and stats.intact == stats.received
          and stats.headers_ok == stats.received)
    print(f'  {topic} ({what}): {stats.received}/{expected} delivered, {stats.intact} intact, '
          f'{stats.headers_ok} with stamp/frame_id preserved, latency p50 '
          f'{np.nanpercentile(lat, 50):.2f} ms p95 {np.nanpercentile(lat, 95):.2f} ms'
          f'{"" if ok else "  <-- PROBLEM"}')
    return ok


_HASHED_TOPICS = ('image_raw', 'detections')


def _graph_hashes(node) -> dict[str, str]:
    out = {}
    for topic in _HASHED_TOPICS:
        for info in node.get_publishers_info_by_topic(f'{NAMESPACE}/{topic}'):
            type_hash = getattr(info, 'topic_type_hash', None)
            if type_hash is not None:
                out[info.topic_type] = str(type_hash)
    return out


def _cv2_version() -> str:
    import cv2
    return cv2.__version__
