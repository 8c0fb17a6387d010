"""The detection pipeline for one camera: camera -> preprocess -> inference -> tracker -> overlay.

    ros2 launch edge_vision detect.launch.py                          # synthetic camera
    ros2 launch edge_vision detect.launch.py source:=/dev/video0 backend:=openvino
    ros2 launch edge_vision detect.launch.py composed:=true rviz:=true
    ros2 launch edge_vision detect.launch.py namespace:=front use_tracking:=false
    ros2 launch edge_vision detect.launch.py web:=true bag:=/data/run1   # live view + bag
    ros2 launch edge_vision detect.launch.py privacy:=faces       # anonymized images only

Arguments (``ros2 launch edge_vision detect.launch.py --show-args``): ``namespace`` (one
camera per namespace), ``source``, ``model``, ``backend``, ``device``, ``use_preprocess``,
``use_tracking``, ``use_anomaly``, ``anomaly_model``, ``rviz``, ``composed`` (all stages in one
process, frames handed over in memory: the fast path), ``config_dir`` (the parameter files;
default: this package's ``config/``, one ``<stage>.yaml`` per node), ``mqtt``,
``mqtt_broker``, ``mqtt_params`` (the MQTT bridge), ``web``/``web_host``/``web_port``
(web_node's live view), ``bag`` (recorder_node writes a rosbag2 MCAP bag) and ``ocr``
(ocr_node; the overlay draws its text)::

    ros2 launch edge_vision detect.launch.py mqtt:=true mqtt_broker:=mqtts://broker:8883 \
        mqtt_params:=/etc/edge_vision/mqtt.yaml

``privacy:=faces|persons|faces+persons`` (default ``off``) adds privacy_node: the overlay (hence
``image_annotated``, rviz and the web view), the bag's images, the MQTT bridge's snapshots
and the compressed stream (``image_private/compressed``; the camera's ``image_raw/compressed``
is turned off) then read the anonymized ``image_private``, and a frame the filter cannot
anonymize goes nowhere.

Parameters come from ``<config_dir>/<stage>.yaml`` and then the arguments above. Topics, all
relative to the namespace: ``image_raw``, ``camera_info`` (camera), ``image``,
``image/camera_info``, ``quality`` (preprocess), ``detections``, ``label_info`` (inference),
``tracks`` (tracker), ``image_annotated`` (overlay), ``anomaly*`` (anomaly), ``text`` (ocr).
QoS is the suite's default end to end (reliable publishers, best-effort image subscribers,
REP-2003).
"""

import os
import tempfile

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from edge_vision.stages import select_stages, stage_remaps
from edge_vision_core.inference import DetectorOptions

_DETECTOR = DetectorOptions()  # the one place of the model/backend/device defaults

ARGUMENTS = [
    ('namespace', 'camera0', 'Namespace of this camera\'s pipeline.'),
    ('source', 'synthetic', 'Frame source: synthetic, a device, a video file, a folder or a URL.'),
    ('model', _DETECTOR.model, 'Detection model: a registered name or a manifest YAML path.'),
    ('backend', _DETECTOR.backend, 'Inference backend: onnxruntime, openvino, litert, tensorrt.'),
    ('device', _DETECTOR.device,
     'Backend device (cpu, cuda, GPU, NPU, ...; auto = the best one).'),
    ('inference_threads', str(_DETECTOR.threads),
     'CPU inference threads (0 = the runtime decides).'),
    ('use_preprocess', 'true', 'Run preprocess_node (image quality and undistortion).'),
    ('use_tracking', 'true', 'Run tracker_node (stable ids on tracks).'),
    ('use_anomaly', 'false', 'Run anomaly_node on the corrected images.'),
    ('anomaly_model', '', 'Fitted anomaly model file (empty: learn normal first).'),
    ('rviz', 'false', 'Start rviz2 with config/edge_vision.rviz.'),
    ('composed', 'false', 'All stages in one process (in-memory handover) instead of one '
                          'process per node.'),
    ('config_dir', '', 'Folder with <stage>.yaml parameter files (empty: the package\'s).'),
    ('log_level', 'info', 'Logging level of the nodes.'),
    ('ocr', 'false', 'Run ocr_node (text of the whole image; mode roi in ocr.yaml reads inside '
                     'detections only); the overlay draws the lines.'),
    ('mqtt', 'false', 'Run mqtt_bridge_node: tracks, events, health and snapshots to an MQTT '
                      'broker, allow-listed commands back.'),
    ('mqtt_broker', '', 'Broker URL of the MQTT bridge (mqtts://host:8883; empty: the '
                        'parameter files\' broker.url).'),
    ('privacy', 'off', 'Anonymize every image that leaves the device: faces, persons, '
                       'faces+persons or off (privacy_node).'),
    ('mqtt_params', '', 'Extra parameter YAML of mqtt_bridge_node (TLS and credential files, '
                        'device_id, allow-lists).'),
    ('web', 'false', 'Serve the live web view (web_node) on web_host:web_port.'),
    ('web_host', '127.0.0.1', 'Address of the live web view (127.0.0.1: this device only).'),
    ('web_port', '8080', 'TCP port of the live web view.'),
    ('bag', '', 'Record a rosbag2 MCAP bag here (recorder_node; a .mcap file or a folder).'),
]


_OFF = ('off', 'false', 'none', 'no', '0', '')


def _truthy(value: str) -> bool:
    return value.strip().lower() in ('1', 'true', 'yes', 'on')


def _plain(value: object) -> object:
    """The Python values of (nested) ParameterValues, for a YAML parameter file."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value.value if isinstance(value, ParameterValue) else value


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _setup(context, *args, **kwargs):
    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    share = get_package_share_directory('edge_vision')
    config_dir = arg['config_dir'] or os.path.join(share, 'config')
    stages = select_stages(preprocess=_truthy(arg['use_preprocess']),
                           tracking=_truthy(arg['use_tracking']),
                           anomaly=_truthy(arg['use_anomaly']),
                           recorder=bool(arg['bag']), ocr=_truthy(arg['ocr']),
                           privacy=arg['privacy'].strip().lower() not in _OFF)
    if _truthy(arg['web']):
        stages.append('web')
    # typed: launch_ros would turn source:=0 (or a device named 0) into an INTEGER parameter
    overrides = {
        'camera': {'source': ParameterValue(arg['source'], value_type=str)},
        'inference': {'model': ParameterValue(arg['model'], value_type=str),
                      'backend': ParameterValue(arg['backend'], value_type=str),
                      'device': ParameterValue(arg['device'], value_type=str),
                      'threads': ParameterValue(int(arg['inference_threads']), value_type=int)},
        'overlay': {'show_anomaly': ParameterValue('anomaly' in stages, value_type=bool),
                    'show_text': ParameterValue('ocr' in stages, value_type=bool)},
    }
    if 'privacy' in stages:  # privacy_node validates the value (configure fails, loudly)
        overrides['privacy'] = {'hide': ParameterValue(arg['privacy'].strip(), value_type=str)}
        overrides['camera']['publish_compressed'] = ParameterValue(False, value_type=bool)
    if arg['anomaly_model']:
        overrides['anomaly'] = {
            'model_path': ParameterValue(arg['anomaly_model'], value_type=str)}
    mqtt_files = [arg['mqtt_params']] if arg['mqtt_params'] else []
    if _truthy(arg['mqtt']):
        stages.append('mqtt_bridge')
        overrides['mqtt_bridge'] = {'broker': {
            'url': ParameterValue(arg['mqtt_broker'], value_type=str)}} \
            if arg['mqtt_broker'] else {}
    if arg['bag']:
        overrides['recorder'] = {'bag.path': ParameterValue(arg['bag'], value_type=str)}
    overrides['web'] = {'host': ParameterValue(arg['web_host'], value_type=str),
                        'port': ParameterValue(int(arg['web_port']), value_type=int)}
    remaps = stage_remaps(stages)
    ns = arg['namespace']
    ros_args = ['--log-level', arg['log_level']]
    actions = []
    if _truthy(arg['composed']):
        # one process: every node's file, then the overrides, by node name (the values are
        # plain Python values of the right type, so YAML keeps a '0' source a string)
        params = {f'/**/{stage}_node': {'ros__parameters': _plain(values)}
                  for stage, values in overrides.items() if stage in stages}
        handle, path = tempfile.mkstemp(prefix='edge_vision_', suffix='.yaml')
        with os.fdopen(handle, 'w') as f:
            yaml.safe_dump(params, f)
        # the file is read when the process starts; remove it when launch shuts down
        actions.append(RegisterEventHandler(OnShutdown(
            on_shutdown=lambda event, context, path=path: _remove(path))))
        files = [os.path.join(config_dir, f'{stage}.yaml') for stage in stages] + mqtt_files
        # no name=: a __node remap would rename every node of the process
        actions.append(Node(
            package='edge_vision', executable='pipeline', namespace=ns,
            output='screen', emulate_tty=True,
            arguments=['--stages', ','.join(stages)],
            parameters=[f for f in files if os.path.isfile(f)] + [path],
            ros_arguments=ros_args))
    else:
        for stage in stages:
            files = [os.path.join(config_dir, f'{stage}.yaml')]
            files += mqtt_files if stage == 'mqtt_bridge' else []
            actions.append(Node(
                package='edge_vision', executable=f'{stage}_node', name=f'{stage}_node',
                namespace=ns, output='screen', emulate_tty=True,
                parameters=[f for f in files if os.path.isfile(f)] + [overrides.get(stage, {})],
                remappings=remaps[stage], ros_arguments=ros_args))
    if _truthy(arg['rviz']):
        actions.append(Node(
            package='rviz2', executable='rviz2', name='rviz2', output='screen',
            arguments=['-d', os.path.join(share, 'config', 'edge_vision.rviz')],
            remappings=[(f'/camera0/{topic}', f'/{ns.strip("/")}/{topic}')
                        for topic in ('image_annotated', 'image_raw', 'markers')]))
    return actions


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=_setup)])
