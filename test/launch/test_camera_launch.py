"""launch_testing: camera.launch.py on the synthetic source.

Frames and camera_info arrive with identical headers, and the node exits cleanly on shutdown.
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

NAMESPACE = 'launch_cam'


@pytest.mark.launch_test
def generate_test_description():
    share = get_package_share_directory('edge_vision')
    camera = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'camera.launch.py')),
        launch_arguments={'namespace': NAMESPACE, 'rate': '20.0',
                          'frame_id': 'launch_optical_frame',
                          'camera_info_url': 'file:///tmp/edge_vision_launch_test/c.yaml'}.items())
    return launch.LaunchDescription([camera, launch_testing.actions.ReadyToTest()])


class TestCameraStreams(unittest.TestCase):

    def test_images_and_camera_info_share_headers(self, proc_output):
        import rclpy
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        rclpy.init()
        node = rclpy.create_node('camera_launch_listener')
        images, infos = [], []
        node.create_subscription(Image, f'/{NAMESPACE}/image_raw', images.append,
                                 qos_profile_sensor_data)
        node.create_subscription(CameraInfo, f'/{NAMESPACE}/camera_info', infos.append,
                                 qos_profile_sensor_data)
        try:
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline and (len(images) < 20 or len(infos) < 20):
                rclpy.spin_once(node, timeout_sec=0.1)
        finally:
            node.destroy_node()
            rclpy.shutdown()
        self.assertGreaterEqual(len(images), 20)
        info_headers = {(i.header.stamp.sec, i.header.stamp.nanosec): i.header for i in infos}
        matched = [m for m in images
                   if info_headers.get((m.header.stamp.sec, m.header.stamp.nanosec))
                   == m.header]
        self.assertGreaterEqual(len(matched), len(images) * 0.9)
        self.assertEqual(images[-1].header.frame_id, 'launch_optical_frame')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_clean_exit(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
