"""Several cameras, one detection pipeline each (namespaces camera0, camera1, ...).

    ros2 launch edge_vision multi_camera.launch.py cameras:=2
    ros2 launch edge_vision multi_camera.launch.py sources:=/dev/video0,/dev/video2 composed:=true

Each camera gets its own camera -> preprocess -> inference -> tracker -> overlay chain (see
detect.launch.py), so the cameras' topics, parameters and failures stay separate and each
namespace looks exactly like a single-camera set-up.

One inference node per camera, not one shared node: on a multi-core CPU two detectors with one
thread each give more aggregate frames per second than one detector with two threads serving
both streams in turn, at the cost of one more copy of the model in memory. Measured with
``benchmarks/bench_multi_camera.py`` (nanodet-m-416, ONNX Runtime, 2 cores): one shared
detector 40.3 fps for both cameras, one per camera 46.5 fps (+15 %), 190 MB more resident
memory. On a single accelerator (one GPU/NPU) a shared model would save that memory; pass
``threads`` to split the CPU between the cameras.

Arguments: ``cameras`` (count, used when ``sources`` is empty: synthetic cameras), ``sources``
(comma-separated, one per camera), ``backend``, ``device``, ``threads`` (inference threads per
camera), ``use_tracking``, ``composed``, ``rviz`` (for camera0).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from edge_vision_core.inference import DetectorOptions

_DETECTOR = DetectorOptions()  # the one place of the backend/device defaults

ARGUMENTS = [
    ('cameras', '2', 'Number of synthetic cameras when sources is empty.'),
    ('sources', '', 'Comma-separated sources, one per camera (devices, files, URLs).'),
    ('backend', _DETECTOR.backend, 'Inference backend of every camera.'),
    ('device', _DETECTOR.device, 'Backend device of every camera.'),
    ('threads', '1', 'Inference threads per camera.'),
    ('use_tracking', 'true', 'Run a tracker per camera.'),
    ('composed', 'false', 'Each camera\'s stages in one process.'),
    ('rviz', 'false', 'Start rviz2 for camera0.'),
]


def _setup(context, *args, **kwargs):
    arg = {n: LaunchConfiguration(n).perform(context) for n, _, _ in ARGUMENTS}
    sources = [s.strip() for s in arg['sources'].split(',') if s.strip()]
    if not sources:
        sources = ['synthetic'] * max(1, int(arg['cameras']))
    config = os.path.join(get_package_share_directory('edge_vision'), 'config')
    detect = os.path.join(get_package_share_directory('edge_vision'), 'launch',
                          'detect.launch.py')
    actions = []
    for i, source in enumerate(sources):
        actions.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(detect),
            launch_arguments={
                'namespace': f'camera{i}', 'source': source, 'backend': arg['backend'],
                'device': arg['device'], 'use_tracking': arg['use_tracking'],
                'composed': arg['composed'], 'config_dir': config,
                'rviz': arg['rviz'] if i == 0 else 'false',
                'inference_threads': arg['threads'],
            }.items()))
    return actions


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(n, default_value=d, description=t)
                for n, d, t in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=_setup)])
