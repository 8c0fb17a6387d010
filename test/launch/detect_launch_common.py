"""Shared checks of the detect.launch.py launch tests (separate processes and composed).

Not a test module itself: test_detect_launch_*.py import it after their launch_testing skip.
"""

from __future__ import annotations

import time

NAMESPACE = 'launch_detect'


def collect(seconds_limit: float = 90.0, want_tracks: int = 10) -> dict:
    """Subscribe to the chain's topics until ``want_tracks`` tracks messages arrived."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    rclpy.init()
    node = rclpy.create_node('detect_launch_listener')
    got = {'image_raw': [], 'image': [], 'detections': [], 'tracks': [], 'annotated': [],
           'first_tracks_s': None}
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    for topic, kind, qos in (('image_raw', Image, qos_profile_sensor_data),
                             ('image', Image, qos_profile_sensor_data),
                             ('detections', Detection2DArray, reliable),
                             ('tracks', Detection2DArray, reliable),
                             ('image_annotated', Image, qos_profile_sensor_data)):
        key = 'annotated' if topic == 'image_annotated' else topic
        node.create_subscription(kind, f'/{NAMESPACE}/{topic}',
                                 lambda m, k=key: got[k].append(m.header), qos)
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds_limit and len(got['tracks']) < want_tracks:
            rclpy.spin_once(node, timeout_sec=0.1)
            if got['tracks'] and got['first_tracks_s'] is None:
                got['first_tracks_s'] = time.monotonic() - start
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return got


def check_chain(testcase, got: dict) -> None:
    """Tracks arrived in time and every header along the chain is a camera frame's header."""
    testcase.assertGreaterEqual(len(got['tracks']), 10, 'tracks must arrive')
    testcase.assertLess(got['first_tracks_s'], 60.0)
    camera = {(h.stamp.sec, h.stamp.nanosec): h.frame_id for h in got['image_raw']}
    testcase.assertTrue(camera, 'image_raw must be published while subscribed')
    for key in ('image', 'detections', 'tracks', 'annotated'):
        for header in got[key]:
            testcase.assertEqual(header.frame_id, 'camera_optical_frame', key)
    # stamps flow unchanged: results carry the stamps of camera frames
    stamps = [(h.stamp.sec, h.stamp.nanosec) for h in got['tracks']]
    seen = [s for s in stamps if s in camera]
    testcase.assertGreaterEqual(len(seen), len(stamps) // 2)
    testcase.assertEqual(stamps, sorted(stamps), 'tracks stamps must increase')
