"""launch_testing: detect.launch.py on the synthetic source, one process per node and composed.

Tracks arrive within a bound, headers are consistent along the chain
(image_raw -> image -> detections -> tracks -> image_annotated), all processes exit cleanly.
"""

from __future__ import annotations

import os
import time
import unittest

import pytest

for _module in ('launch_testing', 'launch_ros', 'launch_testing_ros'):
    pytest.importorskip(_module, reason=f'ROS 2 {_module} is not installed (not on PyPI): run '
                                        f'these tests in a sourced ROS 2 workspace')

import launch  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

NAMESPACE = 'launch_detect'


@pytest.mark.launch_test
@launch_testing.parametrize('composed', ['false', 'true'])
def generate_test_description(composed):
    share = get_package_share_directory('edge_vision')
    detect = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'detect.launch.py')),
        launch_arguments={'namespace': NAMESPACE, 'composed': composed}.items())
    return launch.LaunchDescription([detect, launch_testing.actions.ReadyToTest()])


def collect(seconds_limit: float = 90.0, want_tracks: int = 10) -> dict:
    """Subscribe to the chain's topics until ``want_tracks`` tracks messages (and a few camera
    frames: publishers start sending only once they have discovered this listener) arrived."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    rclpy.init()
    node = rclpy.create_node('detect_launch_listener')
    got = {'image_raw': [], 'image': [], 'detections': [], 'tracks': [],
           'image_annotated': [], 'first_tracks_s': None}
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    for topic, kind, qos in (('image_raw', Image, qos_profile_sensor_data),
                             ('image', Image, qos_profile_sensor_data),
                             ('detections', Detection2DArray, reliable),
                             ('tracks', Detection2DArray, reliable),
                             ('image_annotated', Image, qos_profile_sensor_data)):
        node.create_subscription(kind, f'/{NAMESPACE}/{topic}',
                                 lambda m, k=topic: got[k].append(m.header), qos)
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds_limit and (
                len(got['tracks']) < want_tracks or len(got['image_raw']) < 5):
            rclpy.spin_once(node, timeout_sec=0.1)
            if got['tracks'] and got['first_tracks_s'] is None:
                got['first_tracks_s'] = time.monotonic() - start
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return got


class TestDetectPipeline(unittest.TestCase):

    def test_tracks_arrive_with_camera_headers(self, proc_output, composed):
        got = collect()
        self.assertGreaterEqual(len(got['tracks']), 10, f'tracks must arrive ({composed=})')
        self.assertLess(got['first_tracks_s'], 60.0)
        camera = {(h.stamp.sec, h.stamp.nanosec) for h in got['image_raw']}
        self.assertTrue(camera, 'image_raw must be published while subscribed')
        for key in ('image', 'detections', 'tracks', 'image_annotated'):
            for header in got[key]:
                self.assertEqual(header.frame_id, 'camera_optical_frame', key)
        # stamps flow unchanged: results carry the stamps of camera frames
        stamps = [(h.stamp.sec, h.stamp.nanosec) for h in got['tracks']]
        self.assertGreaterEqual(len([s for s in stamps if s in camera]), len(stamps) // 2)
        self.assertEqual(stamps, sorted(stamps), 'tracks stamps must increase')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_clean_exit(self, proc_info, composed):
        launch_testing.asserts.assertExitCodes(proc_info)
