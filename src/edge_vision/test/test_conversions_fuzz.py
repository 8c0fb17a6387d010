"""Property-based fuzzing of the message -> core conversions every node input goes through.

Property: a conversion either returns a well-formed object or raises an ``EdgeVisionError``
naming the problem (which the node counts and reports); any other exception escapes a
subscription callback and, before node_base guards every input, kills the node. Hypothesis
generates the messages (derandomized: the same examples every run, nothing written to the
working directory); ``EDGE_VISION_FUZZ_EXAMPLES`` raises the count for a soak.
"""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip('hypothesis')
pytest.importorskip('vision_msgs')

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402

from edge_vision_core import ConversionError, EdgeVisionError  # noqa: E402

EXAMPLES = int(os.environ.get('EDGE_VISION_FUZZ_EXAMPLES', '100'))
# Hypothesis keeps caches in ./.hypothesis unless told otherwise: never in the working directory
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), 'edge_vision_hypothesis'))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(hypothesis.HealthCheck))

ENCODINGS = ['bgr8', 'rgb8', 'mono8', 'mono16', 'bgra8', 'rgba16', 'yuyv', 'uyvy',
             'bayer_rggb8', 'bayer_bggr16', '32FC1', '64FC3', '8SC1', '16UC3', '32SC4',
             'foo', '', 'BGR8', '8UC0']
_BYTES = {'8': 1, '16': 2, '32': 4, '64': 8}


def _bytes_per_pixel(encoding: str) -> int:
    from edge_vision_core.encodings import encoding_info

    try:
        info = encoding_info(encoding)
    except EdgeVisionError:
        return 3
    return info.channels * info.dtype.itemsize


@st.composite
def images(draw):
    from sensor_msgs.msg import Image

    encoding = draw(st.sampled_from(ENCODINGS))
    width = draw(st.one_of(st.integers(0, 24), st.sampled_from([100000, 2**32 - 1])))
    height = draw(st.one_of(st.integers(0, 24), st.sampled_from([100000, 2**32 - 1])))
    row = width * _bytes_per_pixel(encoding)
    step = draw(st.one_of(st.just(row), st.integers(0, max(0, row + 8)).filter(
        lambda s: s < 2**32)))
    step = min(step, 2**32 - 1)
    size = height * step
    length = draw(st.one_of(st.just(size), st.integers(0, 64))) if size <= 4096 else \
        draw(st.integers(0, 64))
    msg = Image(height=height, width=width, encoding=encoding, step=step,
                is_bigendian=draw(st.integers(0, 1)))
    msg.data = draw(st.binary(min_size=length, max_size=length))
    return msg


@FUZZ
@given(msg=images(), desired=st.sampled_from(['passthrough', 'bgr8', 'mono8']))
def test_image_to_frame_returns_or_raises_a_clear_error(msg, desired):
    from edge_vision.conversions import image_to_frame

    try:
        frame = image_to_frame(msg, desired)
    except EdgeVisionError as exc:
        assert str(exc)
        return
    assert frame.image.shape[:2] == (msg.height, msg.width)
    if desired == 'bgr8':
        assert frame.image.ndim == 3 and frame.image.shape[2] == 3
        assert frame.image.dtype == np.uint8


_FLOATS = st.one_of(st.floats(-1e4, 1e4), st.sampled_from([math.nan, math.inf, -math.inf,
                                                           1e308]))
_IDS = st.one_of(st.just(''), st.integers(-10, 10**6).map(str),
                 st.sampled_from(['9223372036854775808', '-9223372036854775809', '1' * 40,
                                  'x', '3.5']))
_CLASSES = st.one_of(st.sampled_from(['person', 'car', '0', '79', '', 'é漢']),
                     st.integers(-5, 2**70).map(str))


@st.composite
def detection_arrays(draw):
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    msg = Detection2DArray()
    msg.header.stamp.sec = draw(st.integers(-(2**31), 2**31 - 1))
    msg.header.stamp.nanosec = draw(st.integers(0, 2**32 - 1))
    same_id = draw(st.one_of(st.none(), _IDS))
    dets = []
    for _ in range(draw(st.integers(0, 6))):
        det = Detection2D()
        det.bbox.center.position.x = draw(_FLOATS)
        det.bbox.center.position.y = draw(_FLOATS)
        det.bbox.size_x, det.bbox.size_y = draw(_FLOATS), draw(_FLOATS)
        hyps = []
        for _ in range(draw(st.integers(0, 3))):
            hyp = ObjectHypothesisWithPose()
            hyp.hypothesis.class_id = draw(_CLASSES)
            hyp.hypothesis.score = draw(_FLOATS)
            hyps.append(hyp)
        det.results = hyps
        det.id = same_id if same_id is not None else draw(_IDS)
        dets.append(det)
    msg.detections = dets
    return msg


@FUZZ
@given(msg=detection_arrays())
def test_detections_convert_or_raise_a_clear_error(msg):
    from edge_vision.conversions import msg_to_frame_detections

    labels = ['person', 'car']
    try:
        item = msg_to_frame_detections(msg, labels, extend_labels=True)
    except EdgeVisionError as exc:
        assert str(exc)
        return
    assert len(item.detections) == len(msg.detections)


@st.composite
def camera_infos(draw):
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.width = draw(st.sampled_from([0, 1, 640, 100000, 2**32 - 1]))
    msg.height = draw(st.sampled_from([0, 1, 480, 100000]))
    msg.distortion_model = draw(st.sampled_from(['plumb_bob', 'rational_polynomial',
                                                 'equidistant', '', 'fisheye?']))
    msg.d = draw(st.lists(_FLOATS, max_size=16))
    msg.k = draw(st.lists(_FLOATS, min_size=9, max_size=9))
    msg.r = draw(st.lists(_FLOATS, min_size=9, max_size=9))
    msg.p = draw(st.lists(_FLOATS, min_size=12, max_size=12))
    msg.binning_x, msg.binning_y = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 9))
    msg.roi.x_offset = draw(st.integers(0, 2**32 - 1))
    msg.roi.width = draw(st.integers(0, 2**32 - 1))
    return msg


@FUZZ
@given(msg=camera_infos())
def test_camera_info_converts_or_raises_a_clear_error(msg):
    from edge_vision.conversions import camera_info_to_model

    try:
        model = camera_info_to_model(msg)
    except EdgeVisionError as exc:
        assert str(exc)
        return
    assert np.isfinite(model.K).all()


@FUZZ
@given(data=st.binary(max_size=2048), fmt=st.sampled_from(
    ['jpeg', 'png', 'bgr8; jpeg compressed bgr8', 'rgb8; png compressed', '', 'h264']),
    desired=st.sampled_from(['passthrough', 'bgr8', 'mono8']))
def test_compressed_images_decode_or_raise_a_clear_error(data, fmt, desired):
    from sensor_msgs.msg import CompressedImage

    from edge_vision.conversions import compressed_to_numpy

    msg = CompressedImage(format=fmt)
    msg.data = data
    try:
        compressed_to_numpy(msg, desired)
    except EdgeVisionError as exc:
        assert str(exc)


def test_a_valid_jpeg_still_decodes():
    """The property above would hold for a function that refuses everything."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    from edge_vision.conversions import compressed_to_numpy

    image = np.full((12, 16, 3), (10, 200, 30), np.uint8)
    msg = CompressedImage(format='bgr8; png compressed bgr8')
    msg.data = cv2.imencode('.png', image)[1].tobytes()
    np.testing.assert_array_equal(compressed_to_numpy(msg, 'bgr8'), image)


@FUZZ
@given(entries=st.lists(st.tuples(st.integers(0, 65535), st.sampled_from(
    ['person', '', 'é漢', 'x' * 300, ' '])), max_size=30))
def test_label_info_converts_or_refuses_ids_out_of_range(entries):
    from vision_msgs.msg import LabelInfo, VisionClass

    from edge_vision.conversions import MAX_CLASS_ID, label_info_to_labels

    msg = LabelInfo(class_map=[VisionClass(class_id=i, class_name=n) for i, n in entries])
    if any(i > MAX_CLASS_ID for i, _ in entries):
        with pytest.raises(ConversionError, match=f'out of range.*0 to {MAX_CLASS_ID}'):
            label_info_to_labels(msg)
        return
    labels = label_info_to_labels(msg)
    for class_id, _ in entries:
        assert labels[class_id] in {n for i, n in entries if i == class_id}
