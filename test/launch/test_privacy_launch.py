"""launch_testing: detect.launch.py privacy:=faces, one process per node and composed.

Every image that leaves the graph is the filtered one: image_annotated is drawn on
image_private frames only, image_private (+ /compressed) keep the camera's headers, and the
camera's image_raw/compressed is off. All processes exit cleanly.
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

NAMESPACE = 'launch_privacy'


@pytest.mark.launch_test
@launch_testing.parametrize('composed', ['false', 'true'])
def generate_test_description(composed):
    share = get_package_share_directory('edge_vision')
    detect = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'detect.launch.py')),
        launch_arguments={'namespace': NAMESPACE, 'composed': composed,
                          'privacy': 'faces'}.items())
    return launch.LaunchDescription([detect, launch_testing.actions.ReadyToTest()])


def collect(seconds_limit: float = 90.0, want: int = 10) -> dict:
    """Headers of the image topics until ``want`` annotated images arrived, and the publisher
    counts of the topics that must (not) be offered."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    rclpy.init()
    node = rclpy.create_node('privacy_launch_listener')
    topics = {'image_raw': Image, 'image_private': Image, 'image_annotated': Image,
              'image_private/compressed': CompressedImage,
              'image_raw/compressed': CompressedImage}
    got = {topic: [] for topic in topics}
    for topic, kind in topics.items():
        node.create_subscription(kind, f'/{NAMESPACE}/{topic}',
                                 lambda m, k=topic: got[k].append(m.header),
                                 qos_profile_sensor_data)
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds_limit and (
                len(got['image_annotated']) < want or not got['image_private/compressed']):
            rclpy.spin_once(node, timeout_sec=0.1)
        got['publishers'] = {topic: node.count_publishers(f'/{NAMESPACE}/{topic}')
                             for topic in topics}
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return got


class TestPrivacyPipeline(unittest.TestCase):

    def test_only_filtered_images_leave(self, proc_output, composed):
        got = collect()
        self.assertGreaterEqual(len(got['image_annotated']), 10, f'{composed=}')
        self.assertEqual(got['publishers']['image_raw/compressed'], 0)
        self.assertEqual(got['image_raw/compressed'], [])
        self.assertEqual(got['publishers']['image_private'], 1)

        def key(header):
            return header.stamp.sec, header.stamp.nanosec

        private = {key(h) for h in got['image_private']}
        camera = {key(h) for h in got['image_raw']}
        # the first few annotated images may have been filtered before this listener matched
        annotated = [key(h) for h in got['image_annotated']][3:]
        self.assertTrue(annotated and all(k in private for k in annotated))
        self.assertGreaterEqual(len(private & camera), len(private) // 2)
        for topic in ('image_private', 'image_private/compressed', 'image_annotated'):
            for header in got[topic]:
                self.assertEqual(header.frame_id, 'camera_optical_frame', topic)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_clean_exit(self, proc_info, composed):
        launch_testing.asserts.assertExitCodes(proc_info)
