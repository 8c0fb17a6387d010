"""launch_testing: detect.launch.py (composed) on the synthetic source.

Tracks arrive within a bound, headers are consistent along the chain
(image_raw -> image -> detections -> tracks -> image_annotated), all processes exit cleanly.
"""

from __future__ import annotations

import os
import sys
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

sys.path.insert(0, os.path.dirname(__file__))
from detect_launch_common import NAMESPACE, check_chain, collect  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    share = get_package_share_directory('edge_vision')
    detect = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'detect.launch.py')),
        launch_arguments={'namespace': NAMESPACE, 'composed': 'true'}.items())
    return launch.LaunchDescription([detect, launch_testing.actions.ReadyToTest()])


class TestDetectPipeline(unittest.TestCase):

    def test_tracks_arrive_with_camera_headers(self, proc_output):
        check_chain(self, collect())


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_clean_exit(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
