"""Calibrate a camera live: camera_node + calibration_node.

    ros2 launch edge_vision calibrate.launch.py source:=/dev/video0 cols:=9 rows:=6 square:=0.025
    ros2 launch edge_vision calibrate.launch.py pattern:=charuco cols:=7 rows:=5 \\
        square:=0.04 marker:=0.03 dictionary:=DICT_4X4_50

Move the board through the view (near, far, tilted, in every corner). Progress is on
``<namespace>/calibration_node/progress`` (and /diagnostics); the node calibrates when coverage
is complete (or on ``ros2 service call <namespace>/calibration_node/calibrate
std_srvs/srv/Trigger``), writes ``~/.ros/camera_info/<camera_name>.yaml`` and hands the result to
the camera's ``set_camera_info``, so the running camera publishes it at once.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ('namespace', 'camera0', 'Namespace of the camera.'),
    ('source', '0', 'The camera to calibrate (device, file, folder or URL).'),
    ('camera_name', 'camera', 'Camera name (file name of the calibration).'),
    ('pattern', 'chessboard', 'Target: chessboard or charuco.'),
    ('cols', '9', 'Chessboard: inner corners per row; ChArUco: squares per row.'),
    ('rows', '6', 'Chessboard: inner corners per column; ChArUco: squares per column.'),
    ('square', '0.025', 'Square size in metres.'),
    ('marker', '0.0', 'ChArUco marker size in metres.'),
    ('dictionary', 'DICT_4X4_50', 'ChArUco ArUco dictionary.'),
    ('model', 'pinhole', 'Camera model: pinhole, rational or fisheye.'),
]


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(n, default_value=d, description=t)
                for n, d, t in ARGUMENTS]
    arg = {n: LaunchConfiguration(n) for n, _, _ in ARGUMENTS}
    config = PathJoinSubstitution([FindPackageShare('edge_vision'), 'config'])
    camera = Node(
        package='edge_vision', executable='camera_node', name='camera_node',
        namespace=arg['namespace'], output='screen', emulate_tty=True,
        parameters=[PathJoinSubstitution([config, 'camera.yaml']), {
            # typed: launch_ros would turn the default source '0' into an INTEGER parameter
            'source': ParameterValue(arg['source'], value_type=str),
            'camera_name': ParameterValue(arg['camera_name'], value_type=str)}])
    calibration = Node(
        package='edge_vision', executable='calibration_node', name='calibration_node',
        namespace=arg['namespace'], output='screen', emulate_tty=True,
        remappings=[('image', 'image_raw')],
        parameters=[PathJoinSubstitution([config, 'calibration.yaml']), {
            'camera_name': ParameterValue(arg['camera_name'], value_type=str),
            'target.pattern': ParameterValue(arg['pattern'], value_type=str),
            'target.cols': ParameterValue(arg['cols'], value_type=int),
            'target.rows': ParameterValue(arg['rows'], value_type=int),
            'target.square_size': ParameterValue(arg['square'], value_type=float),
            'target.marker_size': ParameterValue(arg['marker'], value_type=float),
            'target.dictionary': ParameterValue(arg['dictionary'], value_type=str),
            'calibration.model': ParameterValue(arg['model'], value_type=str),
            'set_camera_info_service': 'set_camera_info'}])
    return LaunchDescription([*declared, camera, calibration])
