"""config/*.yaml are generated from the nodes' parameter declarations and stay in sync."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros

CONFIG = Path(__file__).resolve().parent.parent / 'config'


def test_every_node_has_an_up_to_date_parameter_file():
    from edge_vision.commands.params import node_classes, render

    classes = node_classes()
    assert 'camera_node' in classes
    for name, cls in classes.items():
        path = CONFIG / f'{name.removesuffix("_node")}.yaml'
        assert path.is_file(), f'missing {path}: run `edge-vision params --all --write config`'
        assert path.read_text() == render(name, cls), \
            f'{path} is stale: run `edge-vision params --all --write config`'


def test_parameter_files_hold_valid_values_for_their_config_classes():
    from edge_vision.commands.params import node_classes
    from edge_vision.node_base import BaseConfig
    from edge_vision_core.config import config_fields, config_from_mapping

    for name, cls in node_classes().items():
        doc = yaml.safe_load((CONFIG / f'{name.removesuffix("_node")}.yaml').read_text())
        values = doc[f'/**/{name}']['ros__parameters']
        for prefix, group in (('', BaseConfig), *cls.PARAMETERS):
            mine = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)
                    and k[len(prefix):] in {f.name for f in config_fields(group)}}
            config_from_mapping(group, mine)


def test_a_node_starts_from_its_parameter_file(node_process, ros_context, spin_until, tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node = node_process('edge_vision.camera_node',
                        {'rate': 10.0, 'camera_info_url': f'file://{tmp_path}/c.yaml'},
                        '/from_file', params_file=str(CONFIG / 'camera.yaml'))
    listener = rclpy.create_node('config_listener', context=ros_context)
    got = []
    listener.create_subscription(Image, '/from_file/image_raw', got.append,
                                 qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(listener)
    assert spin_until(executor, lambda: len(got) >= 3, 20), node.output()
    assert got[0].header.frame_id == 'camera_optical_frame'
    executor.shutdown()
    listener.destroy_node()
