"""Composition: nodes in one process hand frames over in memory and publish only on demand."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros


def test_camera_to_overlay_in_process(ros_context, tmp_path):
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from edge_vision.camera_node import CameraNode
    from edge_vision.compose import Composition
    from edge_vision.conversions import detections_to_msg, image_to_numpy
    from edge_vision.overlay_node import OverlayNode
    from edge_vision_core import Detections
    from edge_vision_core.viz import color_for

    ns = '/composed'
    camera = functools.partial(
        CameraNode, context=ros_context, namespace=ns, parameter_overrides=[
            Parameter('rate', value=20.0),
            Parameter('camera_info_url', value=f'file://{tmp_path}/none.yaml')])
    overlay = functools.partial(OverlayNode, context=ros_context, namespace=ns,
                                cli_args=['--ros-args', '-r', 'image:=image_raw'])
    comp = Composition([camera, overlay], context=ros_context)
    try:
        assert comp.start() == []
        links = {(r.node, r.topic): r.producer for r in comp.links}
        assert links[(f'{ns}/overlay_node', f'{ns}/image_raw')] == f'{ns}/camera_node'
        assert links[(f'{ns}/overlay_node', f'{ns}/tracks')] is None  # comes over DDS

        # An outside node learns the frame stamps from camera_info (a small message), sends
        # tracks for them, and watches the overlay. Nobody outside subscribes to image_raw.
        from sensor_msgs.msg import CameraInfo

        outside = rclpy.create_node('outside', context=ros_context)
        comp.executor.add_node(outside)
        annotated = []
        tracks_pub = outside.create_publisher(
            Detection2DArray, f'{ns}/tracks',
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        box = Detections([[100, 100, 300, 300]], [0.9], [0], track_ids=[1])
        outside.create_subscription(
            CameraInfo, f'{ns}/camera_info',
            lambda info: tracks_pub.publish(detections_to_msg(box, info.header)),
            qos_profile_sensor_data)
        outside.create_subscription(Image, f'{ns}/image_annotated', annotated.append,
                                    qos_profile_sensor_data)
        camera_node, overlay_node = comp.nodes
        image_raw_out = camera_node.outputs[0]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(annotated) < 5:
            comp.spin_once(timeout_sec=0.05)
        assert len(annotated) >= 5, 'annotated images must arrive from the composed graph'
        img = image_to_numpy(annotated[-1])
        assert img.shape == (480, 640, 3)
        assert tuple(img[200, 100]) == color_for(1)  # the track's box is drawn
        # nobody outside subscribes to image_raw: the camera never serialized a frame,
        # yet the overlay received them in memory
        assert image_raw_out.published == 0 and image_raw_out.emitted >= 5
        assert overlay_node.inputs[0].link.delivered >= 5
        assert np.isfinite(overlay_node._latency_ms)
        outside.destroy_node()
    finally:
        comp.shutdown()


def test_anomaly_heatmap_blends_in_process(ros_context, tmp_path):
    """anomaly -> overlay linked in memory (anomaly.launch.py composed): the heatmap arrives as
    a frame, and the overlay blends it instead of failing on it."""
    from rclpy.parameter import Parameter

    from edge_vision.anomaly_node import AnomalyNode
    from edge_vision.camera_node import CameraNode
    from edge_vision.compose import Composition
    from edge_vision.overlay_node import OverlayNode

    ns = '/composed_anomaly'
    camera = functools.partial(
        CameraNode, context=ros_context, namespace=ns, parameter_overrides=[
            Parameter('rate', value=15.0),
            Parameter('camera_info_url', value=f'file://{tmp_path}/none.yaml')])
    anomaly = functools.partial(
        AnomalyNode, context=ros_context, namespace=ns,
        cli_args=['--ros-args', '-r', 'image:=image_raw'], parameter_overrides=[
            Parameter('learn_on_start', value=True), Parameter('learn_frames', value=5),
            Parameter('learn_every', value=1),
            Parameter('save_path', value=str(tmp_path / 'normal.npz'))])
    overlay = functools.partial(
        OverlayNode, context=ros_context, namespace=ns,
        cli_args=['--ros-args', '-r', 'image:=image_raw', '-r', 'tracks:=anomaly/regions'],
        parameter_overrides=[Parameter('show_anomaly', value=True)])
    comp = Composition([camera, anomaly, overlay], context=ros_context)
    try:
        assert comp.start() == []
        links = {(r.node, r.topic): r.producer for r in comp.links}
        assert links[(f'{ns}/overlay_node', f'{ns}/anomaly/heatmap')] == f'{ns}/anomaly_node'
        _, anomaly_node, overlay_node = comp.nodes
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and overlay_node.drawn < 5:
            comp.spin_once(timeout_sec=0.05)
        assert anomaly_node._last is not None, 'the anomaly node must learn and score'
        assert overlay_node.drawn >= 5, 'the overlay must draw scored frames with the heatmap'
        assert overlay_node.bad_messages == 0 and overlay_node.processing_errors == 0
    finally:
        comp.shutdown()


def test_synced_inputs_in_a_composed_pipeline(ros_context, tmp_path):
    """camera -> inference -> tracker -> overlay -> recorder in one process: the tracker passes
    the inference's frames on with its tracks, the overlay draws on them without receiving the
    images a second time, and the recorder pairs tracks with the overlay's image_annotated."""
    from rclpy.parameter import Parameter

    from edge_vision.pipeline import create_pipeline

    ns = '/composed_sync'
    stages = ['camera', 'inference', 'tracker', 'overlay', 'recorder']
    comp = create_pipeline(stages, context=ros_context, namespace=ns, lossless=True,
                           parameter_overrides={
                               'camera': [Parameter('rate', value=-1.0),
                                          Parameter('camera_info_url',
                                                    value=f'file://{tmp_path}/none.yaml')],
                               'inference': [Parameter('threads', value=1),
                                             Parameter('warmup_runs', value=0)],
                               'recorder': [Parameter('output_dir', value=str(tmp_path))]})
    try:
        assert comp.start() == []
        links = {(r.node, r.topic): r for r in comp.links}
        overlay_image = links[(f'{ns}/overlay_node', f'{ns}/image_raw')]
        assert overlay_image.attached_to == f'{ns}/tracks', str(overlay_image)
        assert links[(f'{ns}/recorder_node', f'{ns}/image_annotated')].producer == \
            f'{ns}/overlay_node'
        nodes = dict(zip(stages, comp.nodes, strict=True))
        tracker, overlay, recorder = nodes['tracker'], nodes['overlay'], nodes['recorder']
        assert tracker._port.image_spec is None  # no camera motion: no image input at all
        assert tracker._port.frame_topic() == f'{ns}/image_raw'  # but frames passed on
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and recorder.video_frames < 12:
            comp.spin_once(timeout_sec=0.05)
        assert recorder.video_frames >= 12, (recorder.stats(), overlay.stats())
        image_spec = overlay._port.image_spec
        assert not image_spec.enabled and image_spec.link is None
        assert image_spec.subscription is None and image_spec.received == 0, \
            'the overlay must not be handed images it only throws away'
        # every pair is drawn: the drawing runs in the overlay's worker, so the pairs delivered
        # by now are drawn a moment later (drawn never exceeds paired)
        stats = overlay.stats()
        deadline = time.monotonic() + 30
        while overlay.drawn < stats['paired'] and time.monotonic() < deadline:
            comp.spin_once(timeout_sec=0.05)
        assert overlay.drawn >= stats['paired'], (overlay.drawn, stats)
        assert overlay.drawn <= overlay.stats()['paired'] and stats['unpaired_dropped'] == 0
        rec = recorder.stats()
        assert rec['paired'] >= 12 and rec['video_missing'] == 0
        assert rec['unpaired_dropped'] == 0 and overlay.processing_errors == 0
        assert tracker.stats()['frames'] >= recorder.frames
        for node in comp.nodes:  # the stats API: numbers only (edge-vision run reports them)
            values = node.stats()
            assert values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                  for v in values.values()), (node.get_name(), values)
    finally:
        comp.shutdown()
    lines = (tmp_path / 'tracks.jsonl').read_text().splitlines()
    assert len({line.split('"frame": ')[1].split(',')[0] for line in lines}) >= 12
