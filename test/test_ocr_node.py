"""ocr_node for real: over DDS in its own process, and composed with camera and inference in one
process (roi mode through the synchronised input); bad input counted, the node stays up.

The signs are drawn with OpenCV's Hershey fonts (no font files needed)."""

from __future__ import annotations

import shutil
import time

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip('edge_vision_msgs.msg', reason='edge_vision_msgs is built by make setup')


def sign(text: str, size=(480, 200), scale: float = 2.2) -> np.ndarray:
    """A dark text on a light board, bgr8."""
    image = np.full((size[1], size[0], 3), 236, np.uint8)
    cv2.putText(image, text, (30, size[1] // 2 + 25), cv2.FONT_HERSHEY_DUPLEX, scale,
                (25, 25, 25), 4, cv2.LINE_AA)
    return image


def grid_of_lines(rows: int, cols: int) -> np.ndarray:
    """``rows * cols`` short text lines on one image."""
    image = np.full((rows * 30 + 20, cols * 70 + 20, 3), 245, np.uint8)
    for r in range(rows):
        for c in range(cols):
            cv2.putText(image, f'{r % 10}{c % 10}', (15 + c * 70, 32 + r * 30),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    return image


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = 'sign_cam'):
    from edge_vision.conversions import meta_to_header, numpy_to_image
    from edge_vision_core import FrameMeta

    msg = numpy_to_image(array, encoding)
    msg.header = meta_to_header(FrameMeta(stamp_ns, frame_id))
    return msg


def stamp_key(header) -> tuple[int, int, str]:
    return header.stamp.sec, header.stamp.nanosec, header.frame_id


def test_ocr_node_over_dds_reads_signs_and_survives_bad_input(node_process, ros_context,
                                                               spin_until, publish_until,
                                                               diagnostics):
    """Another process publishes images; ocr_node answers each with a TextArray whose header
    is the image's: the sign's text, nothing for a blank image, an empty result for a tiny one,
    a 16-bit image read like its 8-bit twin, a float image refused and counted."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from edge_vision_msgs.msg import TextArray

    ns = '/ocr_dds'
    node = node_process('edge_vision.ocr_node', {'diagnostics_period': 0.3, 'threads': 1}, ns)
    probe = rclpy.create_node('ocr_driver', context=ros_context)
    pub = probe.create_publisher(Image, f'{ns}/image', 5)
    texts = {}
    probe.create_subscription(TextArray, f'{ns}/text',
                              lambda m: texts.__setitem__(stamp_key(m.header), m),
                              QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    diag = diagnostics(probe)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(probe)
    try:
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0 and
                          probe.count_publishers(f'{ns}/text') > 0, 60), node.output()

        def ask(array, encoding, stamp_ns, timeout=60.0):
            msg = image_msg(array, encoding, stamp_ns)
            key = stamp_key(msg.header)
            # resent until answered: the first samples after discovery can be lost
            assert publish_until(executor, [(pub, msg)], lambda: key in texts, timeout), \
                (encoding, array.shape, node.output()[-3000:])
            return [(line.text, line.score, line.region) for line in texts[key].lines]

        lines = ask(sign('DOCK 7'), 'bgr8', 1_700_000_000_123_456_789)
        assert [t for t, _, _ in lines] == ['DOCK 7'], lines
        assert all(0.5 <= s <= 1.0 and r == -1 for _, s, r in lines)
        assert ask(np.full((200, 480, 3), 236, np.uint8), 'bgr8', 1_700_000_001_000_000_000) == []
        # 16-bit: scaled to 8 bits like cv_bridge, the same sign is read
        wide = cv2.cvtColor(sign('GATE 42'), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
        assert [t for t, _, _ in ask(wide, 'mono16', 1_700_000_002_000_000_000)] == ['GATE 42']
        assert ask(np.full((4, 5, 3), 200, np.uint8), 'bgr8', 1_700_000_003_000_000_000) == []

        # float images carry no colour: dropped, counted, named in the log; the node goes on
        floating = image_msg(np.full((60, 80), 0.5, np.float32), '32FC1',
                             1_700_000_004_000_000_000)
        name = f'{ns}/ocr_node'
        assert publish_until(executor, [(pub, floating)],
                             lambda: int(diag.value(name, 'bad_messages') or 0) >= 1, 30), \
            node.output()[-3000:]
        assert '32FC1' in node.wait_for_output('32FC1', 10)
        assert [t for t, _, _ in ask(sign('BAY 3'), 'bgr8', 1_700_000_005_000_000_000)] == \
            ['BAY 3']
        assert spin_until(executor, lambda: int(diag.value(name, 'images_too_small') or 0) >= 1
                          and int(diag.value(name, 'frames') or 0) >= 5, 20)
        assert int(diag.value(name, 'empty_frames')) >= 2
        assert diag.value(name, 'backend') in ('openvino', 'onnxruntime')
        assert node.alive()
    finally:
        executor.shutdown()
        probe.destroy_node()
    assert node.stop() == 0


def test_corrupt_model_fails_configure_and_the_node_stays_up(node_process, ros_context,
                                                            spin_until, diagnostics, tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from edge_vision_models import models_dir

    for path in models_dir().glob('ppocrv4-det*'):
        shutil.copy(path, tmp_path / path.name)
    onnx = tmp_path / 'ppocrv4-det.onnx'
    onnx.write_bytes(onnx.read_bytes()[:5000])
    ns = '/ocr_corrupt'
    node = node_process('edge_vision.ocr_node', {
        'diagnostics_period': 0.3, 'backend': 'onnxruntime',
        'detector': str(tmp_path / 'ppocrv4-det.yaml')}, ns)
    probe = rclpy.create_node('ocr_corrupt_probe', context=ros_context)
    diag = diagnostics(probe)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(probe)
    try:
        name = f'{ns}/ocr_node'
        assert spin_until(executor, lambda: diag.status(name) is not None, 60), node.output()
        status = diag.status(name)
        assert status.level == bytes([2]) and 'configure failed' in status.message, status
        assert 'ppocrv4-det' in status.message and 'corrupt or truncated' in node.output()
        assert node.alive(), 'a bad model must leave the node up, unconfigured'
    finally:
        executor.shutdown()
        probe.destroy_node()
    assert node.stop() == 0


def test_max_lines_caps_a_thousand_lines_in_process(ros_context, spin_until, publish_until):
    """1000 text lines on one image: at most max_lines are read, the rest counted."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from edge_vision.ocr_node import OcrNode
    from edge_vision_msgs.msg import TextArray

    ns = '/ocr_many'
    node = OcrNode(context=ros_context, namespace=ns, parameter_overrides=[
        Parameter('max_lines', value=40), Parameter('threads', value=1),
        Parameter('warmup', value=False)])
    probe = rclpy.create_node('ocr_many_probe', context=ros_context)
    pub = probe.create_publisher(Image, f'{ns}/image', 5)
    got = []
    probe.create_subscription(TextArray, f'{ns}/text', got.append,
                              QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(probe)
    executor.add_node(node)
    try:
        assert node.autostart(), node.last_error
        image = grid_of_lines(50, 20)
        msg = image_msg(image, 'bgr8', 1_000_000_000)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 20)
        assert publish_until(executor, [(pub, msg)], lambda: bool(got), 180)
        lines = got[0].lines
        assert stamp_key(got[0].header) == stamp_key(msg.header)
        assert 0 < len(lines) <= 40
        stats = node.stats()
        assert stats['lines_dropped'] >= 900, stats
        assert stats['lines_published'] >= len(lines) and node.processing_errors == 0
    finally:
        executor.shutdown()
        node.release()
        node.destroy_node()
        probe.destroy_node()


def test_roi_mode_composed_with_inference_reads_inside_detections_only(ros_context, tmp_path):
    """camera -> inference -> ocr (roi, class person) in one process: the OCR port takes the
    frames the detections carry (no second image input), reads the badge inside the person's
    box and not the sign beside it; the TextArray header is the camera image's."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from edge_vision.compose import Composition
    from edge_vision.pipeline import pipeline_factories
    from edge_vision_msgs.msg import TextArray

    skimage_data = pytest.importorskip('skimage.data')
    canvas = np.full((512, 1024, 3), 235, np.uint8)
    canvas[:, :512] = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.rectangle(canvas, (120, 330), (330, 395), (255, 255, 255), -1)
    cv2.putText(canvas, 'CREW 7', (128, 380), cv2.FONT_HERSHEY_DUPLEX, 1.6, (20, 20, 20), 3)
    cv2.putText(canvas, 'EXIT 9', (640, 260), cv2.FONT_HERSHEY_DUPLEX, 2.0, (20, 20, 20), 4)
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f'{i}.png'), canvas)

    ns = '/ocr_composed'
    factories = pipeline_factories(['camera', 'inference', 'ocr'], context=ros_context,
                                   namespace=ns, parameter_overrides={
        'camera': [Parameter('source', value=str(folder)), Parameter('rate', value=-1.0),
                   Parameter('camera_info_url', value=f'file://{tmp_path}/none.yaml')],
        'inference': [Parameter('threads', value=1), Parameter('warmup_runs', value=0)],
        'ocr': [Parameter('mode', value='roi'), Parameter('roi_classes', value=['person']),
                Parameter('threads', value=1)]})
    comp = Composition(factories, context=ros_context, lossless=True)
    probe = rclpy.create_node('ocr_composed_probe', context=ros_context)
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    images, dets, texts = {}, {}, {}
    probe.create_subscription(Image, f'{ns}/image_raw',
                              lambda m: images.__setitem__(stamp_key(m.header), m), 10)
    probe.create_subscription(Detection2DArray, f'{ns}/detections',
                              lambda m: dets.__setitem__(stamp_key(m.header), m), reliable)
    probe.create_subscription(TextArray, f'{ns}/text',
                              lambda m: texts.__setitem__(stamp_key(m.header), m), reliable)
    comp.executor.add_node(probe)
    try:
        assert comp.start() == []
        links = {(r.node, r.topic): r for r in comp.links}
        ocr_image = links[(f'{ns}/ocr_node', f'{ns}/image_raw')]
        assert ocr_image.attached_to == f'{ns}/detections', str(ocr_image)
        ocr = comp.nodes[2]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (set(texts) & set(images)):
            comp.spin_once(timeout_sec=0.05)
        common = set(texts) & set(images)
        assert common, (ocr.stats(), sorted(texts), sorted(images), ocr.last_error)
        key = sorted(common)[0]
        lines = texts[key].lines
        # the badge inside the person's box only (case aside: Hershey's R and r look alike to
        # the recognizer at this size), never the sign beside the person
        assert [line.text.upper() for line in lines] == ['CREW 7'], [x.text for x in lines]
        det = dets[key]
        person = [i for i, d in enumerate(det.detections)
                  if d.results[0].hypothesis.class_id == 'person']
        assert lines[0].region in person
        box = det.detections[lines[0].region].bbox
        xs = [p.x for p in lines[0].polygon]
        assert box.center.position.x - box.size_x * 0.6 <= min(xs) <= max(xs) <= \
            box.center.position.x + box.size_x * 0.6
        spec = ocr.synced_inputs[0].image_spec
        assert not spec.enabled and spec.received == 0, 'frames come with the detections'
        stats = ocr.stats()
        assert stats['regions_read'] >= 1 and ocr.processing_errors == 0
    finally:
        comp.executor.remove_node(probe)
        probe.destroy_node()
        comp.shutdown()


def test_full_frame_text_reaches_overlay_recorder_composed(ros_context, tmp_path):
    """camera -> inference -> overlay (show_text) -> recorder (write_text), with ocr_node
    reading whole frames, in one process (lossless links): the recorder's text.jsonl has the
    sign with the camera's stamps, and the overlay draws the lines."""
    import json

    from rclpy.parameter import Parameter

    from edge_vision.pipeline import create_pipeline

    folder = tmp_path / 'frames'
    folder.mkdir()
    board = np.full((360, 640, 3), 90, np.uint8)
    board[80:280, 80:560] = sign('DOCK 7')
    for i in range(4):
        cv2.imwrite(str(folder / f'{i}.png'), board)
    ns = '/ocr_chain'
    stages = ['camera', 'inference', 'overlay', 'recorder', 'ocr']
    comp = create_pipeline(stages, context=ros_context, namespace=ns, parameter_overrides={
        'camera': [Parameter('source', value=str(folder)), Parameter('loop', value=True),
                   Parameter('rate', value=4.0),
                   Parameter('camera_info_url', value=f'file://{tmp_path}/none.yaml')],
        'inference': [Parameter('threads', value=1), Parameter('warmup_runs', value=0)],
        'overlay': [Parameter('show_text', value=True), Parameter('text_max_age_s', value=5.0)],
        'recorder': [Parameter('output_dir', value=str(tmp_path / 'out')),
                     Parameter('write_text', value=True), Parameter('write_video', value=False)],
        'ocr': [Parameter('threads', value=1)]}, lossless=True)
    try:
        assert comp.start() == []
        nodes = dict(zip(stages, comp.nodes, strict=True))
        links = {(r.node, r.topic): r.producer for r in comp.links}
        assert links[(f'{ns}/recorder_node', f'{ns}/text')] == f'{ns}/ocr_node'
        assert links[(f'{ns}/overlay_node', f'{ns}/text')] == f'{ns}/ocr_node'
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (
                nodes['recorder'].text_lines >= 2 and nodes['overlay'].texts_drawn >= 1):
            comp.spin_once(timeout_sec=0.05)
        assert nodes['recorder'].text_lines >= 2, nodes['ocr'].stats()
        assert nodes['overlay'].texts_drawn >= 1, nodes['overlay'].stats()
        assert nodes['recorder'].stats()['text_lines'] == nodes['recorder'].text_lines
    finally:
        comp.shutdown()
    rows = [json.loads(line) for line in
            (tmp_path / 'out' / 'text.jsonl').read_text().splitlines()]
    read = [row for row in rows if row['text'] is not None]
    assert {row['text'] for row in read} == {'DOCK 7'}, rows
    tracks = {json.loads(line)['stamp'] for line in
              (tmp_path / 'out' / 'tracks.jsonl').read_text().splitlines()}
    # lossless: every camera frame reaches the recorder in order, so text of a frame up to the
    # last one recorded has its tracks line (later frames may still have been on their way)
    recorded = {row['stamp'] for row in read if row['stamp'] <= max(tracks)}
    assert len(recorded) >= 1 and recorded <= tracks, 'text of a stamp no camera frame had'
    x0, y0, x1, y1 = read[0]['box']
    assert 80 <= x0 < x1 <= 560 and 80 <= y0 < y1 <= 280 and read[0]['region'] == -1


@pytest.mark.parametrize('classes, labels, padding, expected', [
    ((), ('person', 'sign'), 0.0, [[10, 20, 30, 60], [100, 100, 140, 120]]),
    (('sign',), ('person', 'sign'), 0.0, [[np.nan] * 4, [100, 100, 140, 120]]),
    (('sign',), None, 0.0, [[np.nan] * 4, [np.nan] * 4]),  # no names known: ids only
    (('1',), None, 0.5, [[np.nan] * 4, [80, 90, 160, 130]]),
])
def test_roi_boxes_keep_detection_indices(classes, labels, padding, expected):
    from edge_vision.ocr_node import roi_boxes
    from edge_vision_core import Detections, FrameDetections, FrameMeta

    dets = Detections([[10, 20, 30, 60], [100, 100, 140, 120]], [0.9, 0.8], [0, 1])
    boxes = roi_boxes(FrameDetections(FrameMeta(1), dets, (200, 200)), labels, classes,
                      padding)
    np.testing.assert_allclose(boxes, np.array(expected, float))
