"""inference_node in its own process with the embedded default model."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def astronaut_bgr():
    data = pytest.importorskip('skimage.data')
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def _driver(ros_context, ns):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray, LabelInfo

    from edge_vision.qos import latched_qos

    node = rclpy.create_node('inference_driver', context=ros_context)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, f'{ns}/image', reliable)
    got = {'dets': [], 'labels': []}
    node.create_subscription(Detection2DArray, f'{ns}/detections', got['dets'].append, reliable)
    node.create_subscription(LabelInfo, f'{ns}/label_info', got['labels'].append, latched_qos())
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    return node, pub, got, executor


def test_detects_a_person_keeps_the_header_and_refuses_bad_encodings(
        node_process, ros_context, spin_until, publish_until, astronaut_bgr):
    from edge_vision.conversions import (
        label_info_to_labels,
        meta_to_header,
        msg_to_detections,
        numpy_to_image,
    )
    from edge_vision_core import FrameMeta

    ns = '/infer_test'
    proc = node_process('edge_vision.inference_node', {'threads': 1}, ns)
    node, pub, got, executor = _driver(ros_context, ns)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0 and got['labels'],
                      60), proc.output()
    labels = label_info_to_labels(got['labels'][-1])
    assert len(labels) == 80 and labels[0] == 'person'
    header = meta_to_header(FrameMeta(1_234_567_890_123_456_789, 'astro_optical'))
    for encoding, image in (('bgr8', astronaut_bgr), ('rgb8', astronaut_bgr[:, :, ::-1])):
        count = len(got['dets'])
        msg = numpy_to_image(np.ascontiguousarray(image), encoding, header)
        assert publish_until(executor, [(pub, msg)], lambda c=count: len(got['dets']) > c, 30), \
            proc.output()
        msg = got['dets'][-1]
        assert msg.header == header
        dets = msg_to_detections(msg, labels)
        names = [labels[c] for c in dets.class_ids]
        assert 'person' in names, names
        person = dets.boxes[names.index('person')]
        # the astronaut fills the left two thirds of the 512x512 picture
        assert person[0] < 100 and person[2] > 250 and person[3] > 400
        assert msg.detections[0].results[0].hypothesis.class_id in labels
    bad = numpy_to_image(np.zeros((8, 8), np.float32), '32FC1', header)
    assert publish_until(executor, [(pub, bad)], lambda: 'dropped a message on /infer_test/image'
                         in proc.output(), 20), proc.output()
    assert "'32FC1'" in proc.output() or '32FC1' in proc.output()
    assert proc.alive()
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0


@pytest.mark.parametrize(('params', 'expected'), [
    ({'backend': 'tensorflow'}, "unknown backend 'tensorflow'"),
    ({'backend': 'openvino', 'device': 'NPU'}, "device 'NPU' is not available"),
    ({'model': '/nonexistent/model.yaml'}, '/nonexistent/model.yaml'),
])
def test_bad_model_or_backend_fails_configure_clearly(node_process, params, expected):
    proc = node_process('edge_vision.inference_node', params, '/infer_bad')
    proc.wait_for_output('configure failed')
    out = proc.output()
    assert 'configure failed' in out and expected in out, out
    assert 'installed here' in out.lower() or 'model' in expected
    assert proc.alive(), 'a bad model must not crash the node'
    assert proc.stop() == 0


def test_corrupt_model_file_is_named(node_process, tmp_path):
    from pathlib import Path

    from edge_vision_models import __file__ as models_init

    src = Path(models_init).parent / 'models'
    manifest = (src / 'nanodet-m-416.yaml').read_text()
    (tmp_path / 'nanodet-m-416.onnx').write_bytes(
        (src / 'nanodet-m-416.onnx').read_bytes()[:100_000])
    (tmp_path / 'nanodet-m-416.yaml').write_text(manifest)
    proc = node_process('edge_vision.inference_node',
                        {'model': str(tmp_path / 'nanodet-m-416.yaml')}, '/infer_corrupt')
    proc.wait_for_output('configure failed')
    out = proc.output()
    assert 'nanodet-m-416.onnx' in out and 'corrupt' in out, out
    assert proc.alive()
    assert proc.stop() == 0


def _segmentation_scores(classes: int = 3) -> np.ndarray:
    """Class scores of a constant segmenter: class 1 on the left half, the last on the right."""
    scores = np.zeros((1, classes, 16, 16), np.float32)
    scores[0, 1, :, :8] = 5.0
    scores[0, classes - 1, :, 8:] = 5.0
    return scores


@pytest.mark.parametrize(('classes', 'encoding'), [(3, 'mono8'), (300, 'mono16')])
def test_segmentation_model_publishes_a_class_mask(node_process, ros_context,
                                                   spin_until, publish_until,
                                                   constant_segmenter, classes, encoding):
    """The class mask has the image's header and size; mono16 above 256 classes."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import LabelInfo

    from edge_vision.conversions import (
        image_to_numpy,
        label_info_to_labels,
        meta_to_header,
        numpy_to_image,
    )
    from edge_vision.qos import latched_qos
    from edge_vision_core import FrameMeta

    ns = '/seg_test'
    names = ['background', 'left'] + [f'class{i}' for i in range(2, classes)]
    proc = node_process('edge_vision.inference_node',
                        {'model': constant_segmenter(names, _segmentation_scores(classes)),
                         'threads': 1}, ns)
    node = rclpy.create_node('seg_driver', context=ros_context)
    pub = node.create_publisher(Image, f'{ns}/image',
                                QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    masks, labels = [], []
    node.create_subscription(Image, f'{ns}/mask', masks.append, qos_profile_sensor_data)
    node.create_subscription(LabelInfo, f'{ns}/label_info', labels.append, latched_qos())
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    header = meta_to_header(FrameMeta(7_000_000_001, 'seg_optical'))
    msg = numpy_to_image(np.zeros((60, 120, 3), np.uint8), 'bgr8', header)
    assert publish_until(executor, [(pub, msg)], lambda: masks and labels, 40), proc.output()
    mask_msg = masks[-1]
    assert mask_msg.encoding == encoding and mask_msg.header == header
    mask = image_to_numpy(mask_msg)
    assert mask.shape == (60, 120)
    assert np.mean(mask[:, :60] == 1) > 0.95 and np.mean(mask[:, 60:] == classes - 1) > 0.95
    assert label_info_to_labels(labels[-1]) == names
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0


def test_a_parameter_change_during_a_slow_detect_lands_between_frames(ros_context, spin_until):
    """The DDS mailbox worker runs detect under the node's handler lock: a set_parameters
    request arriving mid-detect is applied after it, never during it."""
    import threading
    import time

    import rclpy
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from edge_vision.conversions import meta_to_header, numpy_to_image
    from edge_vision.inference_node import InferenceNode
    from edge_vision_core import FrameMeta

    ns = '/infer_lock'
    node = InferenceNode(context=ros_context, namespace=ns, parameter_overrides=[
        Parameter('threads', value=1), Parameter('warmup_runs', value=0),
        Parameter('diagnostics_period', value=0.0)])
    assert node.autostart(), node.last_error
    assert node._image.mailbox and node._image.queue is not None  # the async worker
    detector = node._detector
    events: list[tuple[str, float]] = []
    started, release = threading.Event(), threading.Event()
    real_detect, real_update = detector.detect, detector.update_options

    def slow_detect(image):  # the real detect, held until the test has sent a change
        events.append(('detect start', time.monotonic()))
        started.set()
        release.wait(20)
        result = real_detect(image)
        events.append(('detect end', time.monotonic()))
        return result

    def recorded_update(options):
        events.append(('parameters applied', time.monotonic()))
        return real_update(options)

    detector.detect, detector.update_options = slow_detect, recorded_update
    driver = rclpy.create_node('lock_driver', context=ros_context)
    pub = driver.create_publisher(Image, f'{ns}/image',
                                  QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    client = driver.create_client(SetParameters, f'{ns}/inference_node/set_parameters')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(driver)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        msg = numpy_to_image(np.zeros((64, 64, 3), np.uint8), 'bgr8',
                             meta_to_header(FrameMeta(1, 'cam')))
        deadline = time.monotonic() + 30
        while not started.is_set() and time.monotonic() < deadline:
            pub.publish(msg)
            started.wait(0.2)
        assert started.is_set(), 'no frame reached detect'
        assert client.wait_for_service(timeout_sec=20)
        request = SetParameters.Request(
            parameters=[Parameter('score_threshold', value=0.55).to_parameter_msg()])
        future = client.call_async(request)
        time.sleep(1.0)  # plenty of time for the request to be applied, if nothing holds it
        release.set()
        deadline = time.monotonic() + 20
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert future.done() and future.result().results[0].successful
        assert node._detector.score_threshold == pytest.approx(0.55)
        names = [name for name, _ in events]
        assert names[:3] == ['detect start', 'detect end', 'parameters applied'], events
    finally:
        release.set()
        executor.shutdown()
        node.release()
        driver.destroy_node()
        node.destroy_node()


def test_read_only_parameters_can_be_fixed_while_unconfigured(node_process, ros_context,
                                                              spin_until, call_service,
                                                              change_state):
    """After a failed configure the log's advice works: set the read-only `model` over DDS,
    then configure and activate through the lifecycle service."""
    import rclpy
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from vision_msgs.msg import LabelInfo

    from edge_vision.qos import latched_qos

    ns = '/infer_fix'
    proc = node_process('edge_vision.inference_node', {
        'model': '/nonexistent/model.yaml', 'threads': 1, 'warmup_runs': 0}, ns)
    out = proc.wait_for_output('configure failed')
    assert 'ros2 param set' in out and 'ros2 lifecycle set' in out, out
    node = rclpy.create_node('fix_driver', context=ros_context)
    labels = []
    node.create_subscription(LabelInfo, f'{ns}/label_info', labels.append, latched_qos())
    set_params = node.create_client(SetParameters, f'{ns}/inference_node/set_parameters')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)

    def call(client, request):
        assert client.wait_for_service(timeout_sec=30), proc.output()
        answer = call_service(executor, client, request, timeout=30)  # asked again if lost
        assert answer is not None, proc.output()
        return answer

    result = call(set_params, SetParameters.Request(
        parameters=[Parameter('model', value='nanodet-m-416').to_parameter_msg()]))
    assert result.results[0].successful, result.results[0].reason
    for transition in ('configure', 'activate'):
        assert change_state(executor, node, f'{ns}/inference_node', transition, 60), \
            proc.output()
    assert spin_until(executor, lambda: bool(labels), 30), proc.output()
    assert len(labels[-1].class_map) == 80
    # configured again: read-only parameters are locked while the model is in use
    result = call(set_params, SetParameters.Request(
        parameters=[Parameter('model', value='/other.yaml').to_parameter_msg()]))
    assert not result.results[0].successful and 'read-only' in result.results[0].reason
    assert proc.alive()
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0


@pytest.mark.parametrize('model', ['selfie-segmentation', 'face'])
def test_embedded_segmenter_and_face_model_end_to_end(node_process, ros_context, spin_until,
                                                      publish_until, astronaut_bgr, model):
    """The shipped person segmenter publishes a mono8 mask with the image's header and
    background/person labels; the face model publishes the face as a detection."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray, LabelInfo

    from edge_vision.conversions import (
        image_to_numpy,
        label_info_to_labels,
        meta_to_header,
        msg_to_detections,
        numpy_to_image,
    )
    from edge_vision.qos import latched_qos
    from edge_vision_core import FrameMeta

    ns = f'/embedded_{model.replace("-", "_")}'
    proc = node_process('edge_vision.inference_node', {'model': model, 'threads': 1}, ns)
    node = rclpy.create_node('embedded_driver', context=ros_context)
    reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, f'{ns}/image', reliable)
    masks, dets, labels = [], [], []
    node.create_subscription(Image, f'{ns}/mask', masks.append, qos_profile_sensor_data)
    node.create_subscription(Detection2DArray, f'{ns}/detections', dets.append, reliable)
    node.create_subscription(LabelInfo, f'{ns}/label_info', labels.append, latched_qos())
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    header = meta_to_header(FrameMeta(42_000_000_007, 'astro_optical'))
    msg = numpy_to_image(astronaut_bgr, 'bgr8', header)
    segmenter = model == 'selfie-segmentation'
    assert publish_until(executor, [(pub, msg)],
                         lambda: labels and dets and (masks or not segmenter), 60), proc.output()
    assert dets[-1].header == header
    if segmenter:
        assert label_info_to_labels(labels[-1]) == ['background', 'person']
        assert masks[-1].encoding == 'mono8' and masks[-1].header == header
        mask = image_to_numpy(masks[-1])
        assert mask.shape == (512, 512) and set(np.unique(mask).tolist()) == {0, 1}
        assert np.mean(mask[90:170, 180:260]) > 0.95 and np.mean(mask[0:60, 420:]) < 0.02
        assert len(dets[-1].detections) == 0
    else:
        assert label_info_to_labels(labels[-1]) == ['face']
        faces = msg_to_detections(dets[-1], ['face'])
        assert len(faces) == 1
        assert dets[-1].detections[0].results[0].hypothesis.class_id == 'face'
        x1, y1, x2, y2 = faces.boxes[0]
        assert 150 < x1 < 200 and 50 < y1 < 100 and 250 < x2 < 300 and 150 < y2 < 200
        assert not masks
    assert proc.alive()
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0


def test_a_pool_of_two_workers_publishes_in_frame_order(node_process, ros_context, spin_until,
                                                        astronaut_bgr):
    """workers:=2 over DDS: frames sent back to back go through the inference pool; the
    detections leave in the order the frames were stamped, none twice, each for a frame that
    was sent."""
    import time

    from edge_vision.conversions import meta_to_header, numpy_to_image
    from edge_vision_core import FrameMeta

    ns = '/infer_pool'
    proc = node_process('edge_vision.inference_node',
                        {'workers': 2, 'threads': 1, 'model': 'auto'}, ns)
    node, pub, got, executor = _driver(ros_context, ns)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0 and got['labels'],
                      90), proc.output()
    assert '2 worker(s) x 1 thread(s)' in proc.output()
    sent = []
    for index in range(40):
        stamp = 1_000_000_000 * (index + 1)
        sent.append(stamp)
        pub.publish(numpy_to_image(astronaut_bgr, 'bgr8', meta_to_header(FrameMeta(stamp, 'c'))))
        end = time.monotonic() + 0.03
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)
    assert spin_until(executor, lambda: len(got['dets']) >= 8, 60), proc.output()
    spin_until(executor, lambda: False, 2.0)  # the last frames in flight
    stamps = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in got['dets']]
    assert stamps == sorted(set(stamps)), stamps
    assert set(stamps) <= set(sent)
    assert all(len(m.detections) > 0 for m in got['dets'])
    assert proc.alive()
    executor.shutdown()
    node.destroy_node()
    assert proc.stop() == 0


def test_nodes_of_one_batch_group_share_a_detector_and_keep_their_own_frames(
        ros_context, spin_until, publish_until, astronaut_bgr):
    """Two cameras' inference nodes in one process with one batch_group: one detector serves
    both, each node publishes its own camera's detections with that camera's header; a node
    with other detector settings is refused naming both; the last node out closes the group."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from edge_vision.conversions import meta_to_header, msg_to_detections, numpy_to_image
    from edge_vision.inference_node import InferenceNode
    from edge_vision_core import FrameMeta
    from edge_vision_core.inference import Detector, batching

    data = pytest.importorskip('skimage.data')
    images = {'a': astronaut_bgr, 'b': np.ascontiguousarray(data.coffee()[:, :, ::-1])}

    def node(ns: str, model: str = 'nanodet-m-416-int8') -> InferenceNode:
        return InferenceNode(context=ros_context, namespace=ns, parameter_overrides=[
            Parameter('batch_group', value='test_cams'), Parameter('model', value=model),
            Parameter('threads', value=1), Parameter('warmup_runs', value=0),
            Parameter('diagnostics_period', value=0.0)])

    nodes = {name: node(f'/batch_{name}') for name in images}
    other = node('/batch_c', 'nanodet-m-416')
    driver = rclpy.create_node('batch_driver', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        assert all(n.autostart() for n in nodes.values()), [n.last_error for n in nodes.values()]
        shared = nodes['a']._shared
        assert shared is not None and shared is nodes['b']._shared and shared.users == 2
        assert not other.autostart()
        assert "batch group 'test_cams' already runs" in other.last_error, other.last_error
        assert '(nanodet-m-416-int8)' in other.last_error and \
            'asks for onnxruntime:auto:1 (nanodet-m-416)' in other.last_error, other.last_error
        assert shared.users == 2
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        got: dict[str, list] = {name: [] for name in images}
        pubs, msgs = {}, []
        for name, image in images.items():
            pubs[name] = driver.create_publisher(Image, f'/batch_{name}/image', reliable)
            driver.create_subscription(Detection2DArray, f'/batch_{name}/detections',
                                       got[name].append, reliable)
            header = meta_to_header(FrameMeta(1_000 + ord(name), f'cam_{name}'))
            msgs.append((pubs[name], numpy_to_image(image, 'bgr8', header)))
        for n in (*nodes.values(), driver):
            executor.add_node(n)
        assert publish_until(executor, msgs, lambda: all(got.values()), 60)
        labels = nodes['a']._labels
        with Detector.create(model='nanodet-m-416-int8', backend='onnxruntime',
                             threads=1) as ref:
            for name, image in images.items():
                msg = got[name][-1]
                assert msg.header.frame_id == f'cam_{name}'
                assert msg.header.stamp.nanosec == 1_000 + ord(name)
                want = ref.detect(image).detections
                dets = msg_to_detections(msg, labels)
                assert len(want.boxes) > 0
                np.testing.assert_allclose(np.sort(dets.boxes, axis=0),
                                           np.sort(want.boxes, axis=0), atol=0.05)
        assert shared.stats.frames >= 2 and shared.stats.failed == 0
        assert nodes['a'].stats()['batch_users'] == 2
    finally:
        executor.shutdown()
        for n in (*nodes.values(), other):
            n.release()
            n.destroy_node()
        driver.destroy_node()
    assert shared.users == 0 and 'test_cams' not in batching._GROUPS
    with pytest.raises(Exception, match='closed'):
        shared.detector.detect(astronaut_bgr)
