"""The launch files evaluated by real launch/launch_ros (no process is started): parameters arrive
with their declared types whatever the launch arguments look like, and composed detect.launch.py
leaves no temporary file behind.
"""

from __future__ import annotations

import glob
import os
import tempfile

import pytest

for _module in ('launch', 'launch_ros'):
    pytest.importorskip(_module, reason=f'ROS 2 {_module} is not installed (not on PyPI): run '
                                        f'these tests in a sourced ROS 2 workspace')

from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch import LaunchContext, LaunchDescription  # noqa: E402
from launch.events import Shutdown  # noqa: E402
from launch.launch_description_sources import (  # noqa: E402
    get_launch_description_from_python_launch_file,
)
from launch_ros.actions import Node  # noqa: E402
from launch_ros.utilities import evaluate_parameters  # noqa: E402


def _nodes(name: str, arguments: dict[str, str]) -> tuple[LaunchContext, dict[str, dict]]:
    """``{executable: {parameter: value}}`` of the Node actions of launch file ``name``."""
    path = os.path.join(get_package_share_directory('edge_vision'), 'launch', name)
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    found: dict[str, dict] = {}

    def walk(entities):
        for entity in entities:
            if isinstance(entity, Node):  # evaluate its parameters, do not start it
                values = {}
                for item in evaluate_parameters(context, entity._Node__parameters or []):
                    if isinstance(item, dict):
                        values.update(item)
                found[entity._Node__node_executable] = values
                continue
            walk(entity.visit(context) or [])

    walk(get_launch_description_from_python_launch_file(path).entities)
    return context, found


@pytest.mark.parametrize(('name', 'arguments', 'executable', 'expected'), [
    ('camera.launch.py', {'source': '0', 'rate': '10', 'frame_id': '7'}, 'camera_node',
     {'source': '0', 'rate': 10.0, 'frame_id': '7'}),
    ('calibrate.launch.py', {}, 'camera_node', {'source': '0'}),
    ('calibrate.launch.py', {'camera_name': '1'}, 'calibration_node',
     {'camera_name': '1', 'target.cols': 9, 'target.square_size': 0.025}),
    ('anomaly.launch.py', {'source': '2'}, 'camera_node', {'source': '2'}),
    ('detect.launch.py', {'source': '0', 'device': '0'}, 'inference_node', {'device': '0'}),
    ('detect.launch.py', {'source': '0'}, 'camera_node', {'source': '0'}),
])
def test_parameters_arrive_with_their_declared_types(name, arguments, executable, expected):
    _, nodes = _nodes(name, arguments)
    got = nodes[executable]
    for key, value in expected.items():
        assert got[key] == value and type(got[key]) is type(value), (key, got[key])


def test_composed_detect_launch_removes_its_parameter_file():
    pattern = os.path.join(tempfile.gettempdir(), 'edge_vision_*.yaml')
    before = set(glob.glob(pattern))
    context, nodes = _nodes('detect.launch.py', {'composed': 'true', 'source': '0'})
    assert 'pipeline' in nodes
    created = set(glob.glob(pattern)) - before
    assert len(created) == 1
    assert "source: '0'" in open(next(iter(created))).read()
    for handler in list(context._event_handlers):
        if handler.matches(Shutdown()):
            handler.handle(Shutdown(), context)
    assert not set(glob.glob(pattern)) - before, 'the parameter file outlived the launch'


def test_launch_descriptions_are_launch_descriptions():
    for name in ('camera.launch.py', 'calibrate.launch.py', 'detect.launch.py',
                 'anomaly.launch.py', 'multi_camera.launch.py'):
        path = os.path.join(get_package_share_directory('edge_vision'), 'launch', name)
        assert isinstance(get_launch_description_from_python_launch_file(path),
                          LaunchDescription)
