"""One camera_node in its own namespace.

    ros2 launch edge_vision camera.launch.py                      # synthetic scene
    ros2 launch edge_vision camera.launch.py source:=/dev/video0 namespace:=front
    ros2 launch edge_vision camera.launch.py source:=clip.mp4 loop:=true rate:=15.0

Parameters come from ``config/camera.yaml`` (``params_file``), then the arguments below.
Topics: ``<namespace>/image_raw``, ``camera_info``, ``image_raw/compressed``; service
``<namespace>/set_camera_info``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ('namespace', 'camera0', 'Namespace of the camera (one per camera).'),
    ('source', 'synthetic', 'Frame source: synthetic, a device, a file, a folder or a URL.'),
    ('rate', '0.0', 'Publishing rate in Hz (0 = the source\'s own, -1 = as fast as possible).'),
    ('loop', 'false', 'Restart files and folders at the end.'),
    ('frame_id', 'camera_optical_frame', 'Optical frame of the images.'),
    ('camera_name', 'camera', 'Camera name (${NAME} in camera_info_url).'),
    ('camera_info_url', '', 'Calibration file URL (empty: ~/.ros/camera_info/<name>.yaml).'),
    ('width', '0', 'Requested width (0 = source default).'),
    ('height', '0', 'Requested height (0 = source default).'),
]


def generate_launch_description() -> LaunchDescription:
    params_file = DeclareLaunchArgument(
        'params_file',
        default_value=PathJoinSubstitution([FindPackageShare('edge_vision'), 'config',
                                            'camera.yaml']),
        description='Parameter file of camera_node.')
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    # typed: launch_ros would turn source:=0 into an INTEGER parameter, rate:=10 into one too
    overrides = {
        'source': ParameterValue(arg['source'], value_type=str),
        'rate': ParameterValue(arg['rate'], value_type=float),
        'loop': ParameterValue(arg['loop'], value_type=bool),
        'frame_id': ParameterValue(arg['frame_id'], value_type=str),
        'camera_name': ParameterValue(arg['camera_name'], value_type=str),
        'camera_info_url': ParameterValue(arg['camera_info_url'], value_type=str),
        'width': ParameterValue(arg['width'], value_type=int),
        'height': ParameterValue(arg['height'], value_type=int),
    }
    camera = Node(
        package='edge_vision', executable='camera_node', name='camera_node',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'), overrides])
    return LaunchDescription([params_file, *declared, camera])
