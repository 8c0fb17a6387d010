"""The detection pipeline in one process: camera -> preprocess -> inference -> tracker -> overlay.

The ``pipeline`` executable (``detect.launch.py composed:=true``) and ``edge-vision run`` use
:func:`create_pipeline` to start the chosen stages as real nodes in one process, linked in memory
by :class:`edge_vision.compose.Composition`. Every stage keeps its normal topics, parameters,
services, lifecycle interface and diagnostics; parameters come from the usual ``--ros-args``
(``--params-file config/camera.yaml ...``; node names are the stage names plus ``_node``).

Topic wiring is by name, as between processes: ``image_raw`` (camera -> preprocess), ``image``
(preprocess -> inference, overlay, anomaly), ``detections`` (inference -> tracker), ``tracks``
(tracker -> overlay, recorder), ``image_annotated`` (overlay -> recorder). When a stage is left
out, its consumers are remapped to what feeds it (no preprocess: ``image`` -> ``image_raw``; no
tracker: ``tracks`` -> ``detections``).

    ros2 run edge_vision pipeline --stages camera,preprocess,inference,tracker,overlay \\
        --ros-args -r __ns:=/camera0 -p source:=/dev/video0
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from edge_vision_core import ConfigError

from .camera_node import CameraNode
from .compose import Composition
from .foxglove_node import FoxgloveNode
from .inference_node import InferenceNode
from .node_base import EdgeVisionNode, spin_until_stopped
from .overlay_node import OverlayNode
from .preprocess_node import PreprocessNode
from .privacy_node import PrivacyNode
from .recorder_node import RecorderNode
from .stages import remap_args, stage_remaps
from .tracker_node import TrackerNode
from .web_node import WebNode

__all__ = ['DEFAULT_STAGES', 'STAGES', 'create_pipeline', 'main', 'pipeline_factories']

#: stage name -> node class, in pipeline order.
STAGES: dict[str, type[EdgeVisionNode]] = {
    'camera': CameraNode,
    'preprocess': PreprocessNode,
    'inference': InferenceNode,
    'tracker': TrackerNode,
    'privacy': PrivacyNode,
    'overlay': OverlayNode,
    'recorder': RecorderNode,
    'web': WebNode,
    'foxglove': FoxgloveNode,
}
DEFAULT_STAGES = ('camera', 'preprocess', 'inference', 'tracker', 'overlay')


def _register_anomaly() -> None:
    try:
        from .anomaly_node import AnomalyNode
    except ImportError:  # the anomaly stage is optional
        return
    STAGES['anomaly'] = AnomalyNode


def _register_ocr() -> None:
    try:
        from .ocr_node import OcrNode
    except ImportError:  # the OCR stage is optional
        return
    STAGES['ocr'] = OcrNode


def _register_mqtt() -> None:
    from .mqtt_bridge_node import MqttBridgeNode  # after anomaly: the order select_stages uses

    STAGES['mqtt_bridge'] = MqttBridgeNode


def parse_stages(text: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a stage list (comma-separated or a sequence) and return it in pipeline order."""
    _register_anomaly()
    _register_ocr()
    _register_mqtt()
    names = [s.strip() for s in (text.split(',') if isinstance(text, str) else text)
             if s.strip()]
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise ConfigError(f'unknown pipeline stage(s) {", ".join(unknown) or "(none)"}; '
                          f'expecting some of {", ".join(STAGES)}')
    return tuple(n for n in STAGES if n in names)


def pipeline_factories(stages: Sequence[str] = DEFAULT_STAGES, *, context: object = None,
                       namespace: str = '', parameter_overrides: dict[str, list] | None = None
                       ) -> list[functools.partial]:
    """One node factory per stage (in pipeline order), with the remaps of
    :func:`edge_vision.stages.stage_remaps`, for a :class:`Composition` (see
    :func:`create_pipeline`; benchmarks add their own nodes to the list)."""
    stages = parse_stages(stages)
    remaps = stage_remaps(stages)
    overrides = parameter_overrides or {}
    factories = []
    for stage in stages:
        kwargs: dict[str, object] = {}
        if context is not None:
            kwargs['context'] = context
        if namespace:
            kwargs['namespace'] = namespace
        if remaps[stage]:
            kwargs['cli_args'] = remap_args(remaps[stage])
        if overrides.get(stage):
            kwargs['parameter_overrides'] = list(overrides[stage])
        factories.append(functools.partial(STAGES[stage], **kwargs))
    return factories


def create_pipeline(stages: Sequence[str] = DEFAULT_STAGES, *, context: object = None,
                    namespace: str = '', parameter_overrides: dict[str, list] | None = None,
                    lossless: bool = False) -> Composition:
    """The chosen stages as one :class:`Composition` (not started: call ``start()``).

    Args:
        stages: stage names (see :data:`STAGES`).
        context: rclpy context (default: the global one).
        namespace: namespace of every node (e.g. ``/camera0``).
        parameter_overrides: per stage, ``rclpy.parameter.Parameter`` objects to set.
        lossless: blocking links: every frame goes through every stage (files, benchmarks).
    """
    factories = pipeline_factories(stages, context=context, namespace=namespace,
                                   parameter_overrides=parameter_overrides)
    return Composition(factories, context=context, lossless=lossless)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``pipeline`` executable: the stages in one process, spinning until shutdown."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.utilities import remove_ros_args

    from .dds import apply_transport_defaults

    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog='pipeline', description=__doc__.split('\n\n')[0])
    parser.add_argument('--stages', default=','.join(DEFAULT_STAGES),
                        help=f'comma-separated stages (default {",".join(DEFAULT_STAGES)})')
    parser.add_argument('--lossless', action='store_true',
                        help='every frame through every stage (producers wait)')
    args = parser.parse_args(remove_ros_args(argv)[1:])
    note = apply_transport_defaults()
    rclpy.init(args=argv)
    comp = None
    try:
        comp = create_pipeline(args.stages, lossless=args.lossless)
        comp.nodes[0].get_logger().info(note)
        for error in comp.start():
            comp.nodes[0].get_logger().error(f'stage did not start: {error}')
        for link in comp.links:
            comp.nodes[0].get_logger().info(str(link))
        spin_until_stopped(comp.spin)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ConfigError as exc:
        print(f'pipeline: {exc}', file=sys.stderr)
        return 2
    finally:
        if comp is not None:
            comp.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
