"""edge_vision: ROS 2 nodes, launch files, configuration and the edge-vision CLI.

The workspace-level ``launch/`` and ``config/`` folders are installed into
``share/edge_vision/`` so ``ros2 launch edge_vision detect.launch.py`` finds them.
"""

import os
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = 'edge_vision'
HERE = Path(__file__).resolve().parent
WORKSPACE = HERE.parent.parent  # src/edge_vision -> repository root


def shared(folder: str, patterns: tuple[str, ...]) -> list[str]:
    """Files of a workspace-level folder, relative to this setup.py (setuptools wants that)."""
    root = WORKSPACE / folder
    files = sorted(p for pattern in patterns for p in root.glob(pattern) if p.is_file())
    return [os.path.relpath(p, HERE) for p in files]


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['data/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', shared('launch', ('*.launch.py', '*.launch.xml'))),
        (f'share/{PACKAGE}/config', shared('config', ('*.yaml', '*.rviz', '*.xml'))),
        (f'share/{PACKAGE}/config/foxglove', shared('config/foxglove', ('*.json',))),
    ],
    python_requires='>=3.10',
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='edge_vision developers',
    maintainer_email='edge-vision@users.noreply.github.com',
    description='ROS 2 nodes and CLI of the edge_vision suite',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'edge-vision = edge_vision.cli:main',
            'anomaly_node = edge_vision.anomaly_node:main',
            'calibration_node = edge_vision.calibration_node:main',
            'camera_node = edge_vision.camera_node:main',
            'foxglove_node = edge_vision.foxglove_node:main',
            'inference_node = edge_vision.inference_node:main',
            'mqtt_bridge_node = edge_vision.mqtt_bridge_node:main',
            'ocr_node = edge_vision.ocr_node:main',
            'overlay_node = edge_vision.overlay_node:main',
            'preprocess_node = edge_vision.preprocess_node:main',
            'privacy_node = edge_vision.privacy_node:main',
            'recorder_node = edge_vision.recorder_node:main',
            'pipeline = edge_vision.pipeline:main',
            'tracker_node = edge_vision.tracker_node:main',
            'web_node = edge_vision.web_node:main',
        ],
    },
)
