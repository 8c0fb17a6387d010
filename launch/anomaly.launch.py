"""Anomaly detection for one camera: camera -> preprocess -> anomaly (+ overlay with the heatmap).

    ros2 launch edge_vision anomaly.launch.py source:=/dev/video0
    ros2 service call /camera0/anomaly_node/learn_normal std_srvs/srv/Trigger   # scene is normal
    ros2 launch edge_vision anomaly.launch.py model:=~/.ros/edge_vision/camera0_anomaly.npz

Without ``model`` the anomaly node waits for ``~/learn_normal`` (or learns at once with
``learn_on_start:=true``), then refits, saves the model and starts scoring. Topics:
``anomaly`` (vision_msgs/Classification), ``anomaly/heatmap``, ``anomaly/regions``, and
``image_annotated`` with the heatmap blended in (overlay_node, ``tracks`` remapped to
``anomaly/regions``).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

ARGUMENTS = [
    ('namespace', 'camera0', 'Namespace of the camera.'),
    ('source', 'synthetic', 'Frame source (device, file, folder, URL, synthetic).'),
    ('model', '', 'Fitted anomaly model (.npz); empty = learn normal first.'),
    ('learn_on_start', 'false', 'Without a model, learn normal appearance right away.'),
    ('backend', 'onnxruntime', 'Backbone runtime: onnxruntime or openvino.'),
    ('overlay', 'true', 'Publish image_annotated with the heatmap and regions.'),
]


def _setup(context, *args, **kwargs):
    arg = {n: LaunchConfiguration(n).perform(context) for n, _, _ in ARGUMENTS}
    config = os.path.join(get_package_share_directory('edge_vision'), 'config')
    ns = arg['namespace']

    def node(stage, overrides, remappings=()):
        files = [os.path.join(config, f'{stage}.yaml')]
        return Node(package='edge_vision', executable=f'{stage}_node', name=f'{stage}_node',
                    namespace=ns, output='screen', emulate_tty=True,
                    parameters=[f for f in files if os.path.isfile(f)] + [overrides],
                    remappings=list(remappings))

    # typed: launch_ros would turn a source like '0' into an INTEGER parameter
    actions = [
        node('camera', {'source': ParameterValue(arg['source'], value_type=str)}),
        node('preprocess', {}),
        node('anomaly', {
            'model_path': ParameterValue(os.path.expanduser(arg['model']), value_type=str),
            'learn_on_start': ParameterValue(arg['learn_on_start'].lower() == 'true',
                                             value_type=bool),
            'backend': ParameterValue(arg['backend'], value_type=str)}),
    ]
    if arg['overlay'].lower() == 'true':
        actions.append(node('overlay', {'show_anomaly': True},
                            [('tracks', 'anomaly/regions')]))
    return actions


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(n, default_value=d, description=t)
                for n, d, t in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=_setup)])
