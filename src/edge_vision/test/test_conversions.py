"""Message <-> core conversions, without spinning a node."""

from __future__ import annotations

import array
import struct

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from edge_vision.conversions import (
    camera_info_to_model,
    compressed_to_numpy,
    detections_to_markers,
    detections_to_msg,
    header_to_meta,
    image_to_numpy,
    label_info_to_labels,
    labels_to_label_info,
    meta_to_header,
    model_to_camera_info,
    msg_to_detections,
    numpy_to_compressed,
    numpy_to_image,
)
from edge_vision_core import CameraModel, ConversionError, Detections, FrameMeta

HEADER = Header(stamp=Time(sec=1_700_000_123, nanosec=456_789), frame_id='cam0_optical_frame')


def image_msg(encoding: str, width: int, height: int, step: int, raw: bytes,
              big: bool = False) -> Image:
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=big)
    msg.data = array.array('B', raw)
    return msg


# (encoding, width, height, step, raw bytes, expected) written out by hand
CASES = [
    ('mono8', 2, 2, 3, bytes([0, 255, 0xEE, 7, 8, 0xEE]), np.array([[0, 255], [7, 8]], np.uint8)),
    ('mono16', 2, 1, 4, struct.pack('<HH', 513, 65534), np.array([[513, 65534]], np.uint16)),
    ('16UC1', 1, 2, 4, struct.pack('<HxxHxx', 42, 4242), np.array([[42], [4242]], np.uint16)),
    ('bgr8', 1, 2, 4, bytes([1, 2, 3, 0xEE, 4, 5, 6, 0xEE]),
     np.array([[[1, 2, 3]], [[4, 5, 6]]], np.uint8)),
    ('rgb8', 2, 1, 6, bytes([9, 8, 7, 6, 5, 4]), np.array([[[9, 8, 7], [6, 5, 4]]], np.uint8)),
    ('bgra8', 1, 1, 4, bytes([1, 2, 3, 4]), np.array([[[1, 2, 3, 4]]], np.uint8)),
    ('rgba8', 1, 1, 6, bytes([5, 6, 7, 8, 0xEE, 0xEE]), np.array([[[5, 6, 7, 8]]], np.uint8)),
    ('32FC1', 2, 1, 8, struct.pack('<ff', 0.25, 1e6), np.array([[0.25, 1e6]], np.float32)),
    ('yuv422', 2, 1, 4, bytes([128, 30, 128, 40]), np.array([[[128, 30], [128, 40]]], np.uint8)),
    ('yuyv', 2, 1, 4, bytes([30, 128, 40, 128]), np.array([[[30, 128], [40, 128]]], np.uint8)),
]


@pytest.mark.parametrize(('encoding', 'width', 'height', 'step', 'raw', 'expected'), CASES,
                         ids=[c[0] for c in CASES])
def test_image_round_trip_per_encoding(encoding, width, height, step, raw, expected):
    msg = image_msg(encoding, width, height, step, raw)
    arr = image_to_numpy(msg)
    np.testing.assert_array_equal(arr, expected)
    assert arr.dtype == expected.dtype
    back = numpy_to_image(arr, encoding, HEADER)
    assert (back.encoding, back.width, back.height) == (encoding, width, height)
    assert back.step == width * arr.itemsize * (1 if arr.ndim == 2 else arr.shape[2])
    assert back.is_bigendian == 0
    assert back.header == HEADER and back.header is not HEADER
    np.testing.assert_array_equal(image_to_numpy(back), expected)


def test_image_to_numpy_is_zero_copy():
    msg = numpy_to_image(np.zeros((4, 6, 3), np.uint8), 'bgr8')
    arr = image_to_numpy(msg)
    assert np.shares_memory(arr, np.frombuffer(msg.data, np.uint8))


def test_big_endian_message():
    msg = image_msg('mono16', 2, 1, 4, struct.pack('>HH', 1, 0x1234), big=True)
    np.testing.assert_array_equal(image_to_numpy(msg), [[1, 0x1234]])
    out = numpy_to_image(np.array([[1, 2]], '>u2'), 'mono16')
    assert out.is_bigendian == 1 and bytes(out.data) == struct.pack('>HH', 1, 2)


def test_desired_encoding_converts_like_cv_bridge():
    msg = image_msg('rgb8', 1, 1, 3, bytes([10, 20, 30]))
    np.testing.assert_array_equal(image_to_numpy(msg, 'bgr8'), [[[30, 20, 10]]])
    msg16 = image_msg('mono16', 1, 1, 2, struct.pack('<H', 65535))
    np.testing.assert_array_equal(image_to_numpy(msg16, 'mono8'), [[255]])


def test_passthrough_encoding_name():
    assert numpy_to_image(np.zeros((2, 2), np.float32)).encoding == '32FC1'


@pytest.mark.parametrize(('msg', 'match'), [
    (image_msg('bgr9', 1, 1, 3, b'\0\0\0'), "unsupported image encoding 'bgr9'; supported:"),
    (image_msg('bgr8', 2, 1, 3, b'\0\0\0'), 'step 3 < width 2'),
    (image_msg('mono8', 2, 2, 2, b'\0\0\0'), 'data has 3 bytes'),
    (image_msg('rgb8', 1, 1, 3, b'\0\0\0'), None),
])
def test_bad_image_messages_raise_conversion_errors(msg, match):
    if match is None:
        with pytest.raises(ConversionError, match='unsupported conversion'):
            image_to_numpy(msg, 'uyvy')
    else:
        with pytest.raises(ConversionError, match=match):
            image_to_numpy(msg)


def test_compressed_round_trip():
    img = np.zeros((32, 48, 3), np.uint8)
    img[8:24, 12:36] = (0, 128, 255)
    msg = numpy_to_compressed(img, 'bgr8', 'png', header=HEADER)
    assert isinstance(msg, CompressedImage)
    assert msg.format == 'bgr8; png compressed bgr8' and msg.header == HEADER
    np.testing.assert_array_equal(compressed_to_numpy(msg), img)
    np.testing.assert_array_equal(compressed_to_numpy(msg, 'rgb8'), img[:, :, ::-1])
    jpeg = numpy_to_compressed(img, 'bgr8', 'jpeg', quality=90)
    assert np.abs(compressed_to_numpy(jpeg).astype(int) - img).mean() < 4
    broken = CompressedImage(format='jpeg')
    broken.data = array.array('B', b'garbage')
    with pytest.raises(ConversionError, match='could not decode'):
        compressed_to_numpy(broken)


def test_header_meta_round_trip_is_exact():
    meta = header_to_meta(HEADER)
    assert meta == FrameMeta(1_700_000_123_000_456_789, 'cam0_optical_frame')
    assert meta_to_header(meta) == HEADER


LABELS = ['person', 'bicycle', 'car']


def test_detections_round_trip_with_labels_and_tracks():
    dets = Detections([[10, 20, 50, 100], [0.5, 1.5, 2.5, 3.5]], [0.9, 0.25], [2, 0],
                      track_ids=[17, 3])
    msg = detections_to_msg(dets, HEADER, LABELS)
    assert msg.header == HEADER and all(d.header == HEADER for d in msg.detections)
    first = msg.detections[0]
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (30, 60)
    assert (first.bbox.size_x, first.bbox.size_y) == (40, 80)
    assert first.results[0].hypothesis.class_id == 'car'
    assert first.results[0].hypothesis.score == pytest.approx(0.9)
    assert [d.id for d in msg.detections] == ['17', '3']
    back = msg_to_detections(msg, LABELS)
    np.testing.assert_allclose(back.boxes, dets.boxes)
    np.testing.assert_allclose(back.scores, dets.scores)
    assert back.class_ids.tolist() == [2, 0] and back.track_ids.tolist() == [17, 3]


def test_detections_without_labels_use_indices_and_empty_ids():
    msg = detections_to_msg(Detections([[0, 0, 2, 2]], [0.5], [7]), HEADER)
    assert msg.detections[0].results[0].hypothesis.class_id == '7'
    assert msg.detections[0].id == ''
    back = msg_to_detections(msg)
    assert back.class_ids.tolist() == [7] and back.track_ids is None


def test_detections_to_markers_outline_each_valid_box_at_the_depth():
    from visualization_msgs.msg import Marker

    cam = CameraModel.from_intrinsics(640, 480, 500.0, 500.0, 320.0, 240.0)
    dets = Detections([[100, 50, 220, 300], [np.nan, 0, 5, 5], [300, 300, 340, 420]],
                      [0.9, 0.8, 0.4], [2, 0, 0], track_ids=[17, 4, 3])
    markers = detections_to_markers(dets, cam, 2.0, HEADER, LABELS, lifetime_s=0.25).markers
    assert markers[0].action == Marker.DELETEALL
    boxes = [m for m in markers if m.type == Marker.LINE_STRIP]
    texts = [m for m in markers if m.type == Marker.TEXT_VIEW_FACING]
    assert len(boxes) == len(texts) == 2  # the NaN box is skipped
    assert all(m.header == HEADER for m in markers)
    assert [t.text for t in texts] == ['#17 car 0.90', '#3 person 0.40']
    assert boxes[0].lifetime.sec == 0 and boxes[0].lifetime.nanosec == 250_000_000
    points = np.array([[p.x, p.y, p.z] for p in boxes[1].points])
    assert points.shape == (5, 3) and np.all(points[:, 2] == 2.0)
    pixels = (points @ cam.K.T)[:, :2] / 2.0
    np.testing.assert_allclose(pixels[:4], [[300, 300], [340, 300], [340, 420], [300, 420]],
                               atol=1e-9)
    assert texts[0].pose.position.y < boxes[0].points[0].y  # the label sits above the box
    only_clear = detections_to_markers(Detections.empty(), cam, 2.0, HEADER).markers
    assert [m.action for m in only_clear] == [Marker.DELETEALL]


def test_empty_detections_keep_the_header():
    msg = detections_to_msg(Detections.empty(), HEADER)
    assert msg.header == HEADER and len(msg.detections) == 0
    assert len(msg_to_detections(msg)) == 0


def test_best_hypothesis_wins_and_missing_results_are_kept():
    det = Detection2D()
    for name, score in (('bicycle', 0.2), ('car', 0.7)):
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = name, score
        det.results.append(hyp)
    msg = Detection2DArray(detections=[det, Detection2D()])
    back = msg_to_detections(msg, LABELS)
    assert back.class_ids.tolist() == [2, -1]
    np.testing.assert_allclose(back.scores, [0.7, 0.0])


def test_unknown_class_names_and_bad_ids_are_refused():
    msg = detections_to_msg(Detections([[0, 0, 1, 1]], [1], [1]), HEADER, LABELS)
    with pytest.raises(ConversionError, match="unknown class 'bicycle'.*LabelInfo"):
        msg_to_detections(msg)
    msg.detections[0].id = 'abc'
    with pytest.raises(ConversionError, match='integer track id'):
        msg_to_detections(msg, LABELS)


def test_label_info_round_trip():
    info = labels_to_label_info(LABELS, HEADER, threshold=0.35)
    assert [(c.class_id, c.class_name) for c in info.class_map] == [
        (0, 'person'), (1, 'bicycle'), (2, 'car')]
    assert info.threshold == pytest.approx(0.35)
    assert label_info_to_labels(info) == LABELS


def test_camera_info_round_trip():
    cam = CameraModel.from_intrinsics(640, 480, 520.5, 519.0, 321.2, 242.8,
                                      [-0.28, 0.07, 0.001, -0.0005, 0.0])
    msg = model_to_camera_info(cam, HEADER)
    assert msg.header == HEADER and msg.distortion_model == 'plumb_bob'
    assert list(msg.k) == [520.5, 0, 321.2, 0, 519.0, 242.8, 0, 0, 1]
    assert list(msg.d) == [-0.28, 0.07, 0.001, -0.0005, 0.0]
    assert camera_info_to_model(msg).allclose(cam)


def test_uncalibrated_camera_info():
    model = camera_info_to_model(CameraInfo(width=640, height=480))
    assert not model.is_calibrated


def test_invalid_camera_info_names_the_frame():
    msg = CameraInfo(width=640, height=480, distortion_model='plumb_bob')
    msg.header.frame_id = 'left_optical'
    msg.d = [0.1, 0.2, 0.3]
    msg.k = [500.0, 0, 320, 0, 500, 240, 0, 0, 1]
    with pytest.raises(ConversionError, match="frame_id 'left_optical'.*coefficients"):
        camera_info_to_model(msg)


# --- malformed input found by fuzzing: clear ConversionErrors, never OpenCV assertions -------

@pytest.mark.parametrize(('encoding', 'width', 'height', 'step'), [
    ('rgb8', 0, 4, 0), ('mono8', 4, 0, 4), ('yuyv', 0, 0, 0), ('bayer_rggb8', 0, 2, 0),
    ('bgr8', 0, 0, 0),
])
def test_an_image_without_pixels_is_refused_by_every_node_input(encoding, width, height, step):
    from edge_vision.conversions import image_to_frame

    msg = image_msg(encoding, width, height, step, b'')
    with pytest.raises(ConversionError, match='empty'):
        image_to_frame(msg, 'bgr8')


def test_empty_arrays_convert_without_opencv():
    from edge_vision_core.encodings import convert_encoding

    out = convert_encoding(np.zeros((0, 5, 3), np.uint8), 'rgb8', 'mono8')
    assert out.shape == (0, 5) and out.dtype == np.uint8


@pytest.mark.parametrize('encoding', ['yuyv', 'uyvy', 'yuv422', 'yuv422_yuy2'])
def test_odd_width_packed_yuv_is_refused(encoding):
    from edge_vision.conversions import image_to_frame

    msg = image_msg(encoding, 3, 2, 6, bytes(12))
    with pytest.raises(ConversionError, match='width must be even, got 3'):
        image_to_frame(msg, 'bgr8')


@pytest.mark.parametrize(('class_id', 'track_id', 'match'), [
    (str(2**63), '', 'out of range'),
    ('40000', '', 'out of range'),
    ('-2', '', 'out of range'),
    ('0', str(2**63), 'does not fit a 64-bit track id'),
    ('0', str(-(2**63) - 1), 'does not fit a 64-bit track id'),
])
def test_class_and_track_ids_beyond_their_types_are_refused(class_id, track_id, match):
    det = Detection2D(id=track_id)
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id, hyp.hypothesis.score = class_id, 0.5
    det.results.append(hyp)
    with pytest.raises(ConversionError, match=match):
        msg_to_detections(Detection2DArray(detections=[det]))


def test_a_label_info_with_an_absurd_class_id_is_refused():
    from vision_msgs.msg import LabelInfo, VisionClass

    info = LabelInfo(class_map=[VisionClass(class_id=0, class_name='person'),
                                VisionClass(class_id=65535, class_name='last')])
    with pytest.raises(ConversionError, match='class id 65535 is out of range'):
        label_info_to_labels(info)


def test_label_table_grows_linearly_and_stays_bounded():
    """A label list of the largest accepted size is indexed once, not scanned per name (the
    old table compared every name with every other: 20-26 s for one LabelInfo of 65536)."""
    from vision_msgs.msg import LabelInfo, VisionClass

    from edge_vision.conversions import MAX_CLASS_ID
    from edge_vision.synced import LabelTable

    class CountingStr(str):
        compared = 0

        def __eq__(self, other):
            CountingStr.compared += 1
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    table = LabelTable()
    info = LabelInfo(class_map=[VisionClass(class_id=i, class_name=f'c{i}')
                                for i in range(MAX_CLASS_ID + 1)])
    names = [CountingStr(n) for n in label_info_to_labels(info)]
    table.update(names)
    table.update(names)  # again: nothing new
    assert len(table) == MAX_CLASS_ID + 1
    # a dict lookup compares a name with at most a few others on hash collisions
    assert CountingStr.compared < 4 * len(names)
    # names first seen in results are appended, up to the bound
    msg = detections_to_msg(Detections([[0, 0, 1, 1]], [1], [0]), HEADER, ['new-class'])
    with pytest.raises(ConversionError, match='already holds'):
        table.from_msg(msg)


def test_instance_images_travel_as_mono8_or_mono16_with_their_header():
    """The instance image convention of edge_vision_core.segmentation through a message."""
    from edge_vision.conversions import frame_to_image, image_to_frame
    from edge_vision_core import Detections, Frame, FrameMeta
    from edge_vision_core.segmentation import (
        instance_encoding,
        instance_image,
        masks_from_instance_image,
    )

    meta = FrameMeta(123_456_789_000, 'cam_optical')
    for count in (3, 300):
        boxes = np.array([[i % 60, 0, i % 60 + 2, 20] for i in range(count)], np.float32)
        dets = Detections(boxes, np.linspace(1, 0.1, count), np.zeros(count))
        inst = instance_image(dets, np.ones((20, 64), np.uint8), ['person'],
                              ['background', 'person'])
        msg = frame_to_image(Frame(inst, meta, instance_encoding(count)))
        assert msg.encoding == ('mono8' if count < 255 else 'mono16')
        back = image_to_frame(msg)
        assert back.meta == meta and np.array_equal(back.image, inst)
        assert masks_from_instance_image(back.image, count).shape == (count, 20, 64)


# --- image quality diagnostics (preprocess_node's quality topic) ---------------------------------

def _quality(image, encoding='bgr8', camera=None, **settings):
    from edge_vision_core.imaging import PreprocessConfig, Preprocessor

    return Preprocessor(PreprocessConfig(**settings)).process(image, encoding, camera)


def _photo():
    data = pytest.importorskip('skimage.data')
    return np.ascontiguousarray(data.astronaut()[..., ::-1])


def test_quality_status_of_a_good_frame_is_ok_with_every_value_as_text():
    from edge_vision.conversions import quality_to_status

    status = quality_to_status(_quality(_photo()), '/pre: image quality', 'cam0_optical_frame')
    assert status.level == bytes([0]) and status.message == 'ok'
    assert status.name == '/pre: image quality' and status.hardware_id == 'cam0_optical_frame'
    values = {kv.key: kv.value for kv in status.values}
    assert all(isinstance(v, str) for v in values.values())
    assert {'brightness', 'contrast', 'noise_sigma', 'sharpness', 'snr_db', 'verdict', 'reasons',
            'dropped', 'steps', 'gamma', 'time_metrics_input_ms', 'time_total_ms'} <= set(values)
    assert values['verdict'] == 'ok' and values['dropped'] == 'false'
    assert values['skipped_undistort'] == 'no camera model (camera_info) given'
    assert 'width' not in values and 'converted_from' not in values
    assert 0.0 < float(values['brightness']) < 1.0


@pytest.mark.parametrize(('action', 'message'), [('flag', 'too_dark'),
                                                 ('drop', 'too_dark; frame dropped')])
def test_quality_of_a_gated_frame_warns_and_names_the_reason(action, message):
    from edge_vision.conversions import quality_key_values, quality_level, quality_summary

    result = _quality(np.zeros((64, 64, 3), np.uint8), gate_action=action)
    assert quality_level(result) == 1 and quality_summary(result) == message
    values = dict(quality_key_values(result))
    assert values['verdict'] == 'fail' and values['reasons'] == 'too_dark'
    assert values['dropped'] == str(action == 'drop').lower()


def test_quality_values_carry_output_metrics_comparison_parameters_and_conversion():
    from edge_vision.conversions import quality_key_values, quality_level

    photo = _photo()
    rng = np.random.default_rng(3)
    noisy = np.clip(np.rint(photo + rng.normal(0.0, 12.0, photo.shape)), 0, 255).astype(np.uint8)
    bgra = np.dstack([noisy, np.full(noisy.shape[:2], 255, np.uint8)])
    result = _quality(bgra, 'bgra8', enable_denoise=True, compare_output=True,
                      output_metrics=True)
    values = dict(quality_key_values(result))
    for key in ('output_noise_sigma', 'denoise_sigma', 'psnr_output_vs_input_db',
                'ssim_output_vs_input', 'time_denoise_ms', 'time_convert_ms'):
        assert key in values
    assert values['converted_from'] == 'bgra8' and 'denoise' in values['steps'].split(',')
    assert float(values['output_noise_sigma']) < float(values['noise_sigma'])
    assert float(values['psnr_output_vs_input_db']) == pytest.approx(result.psnr, rel=1e-5)
    assert quality_level(result) == 0


def test_quality_warnings_raise_the_level_and_reach_the_message():
    from edge_vision.conversions import quality_level, quality_summary

    camera = CameraModel.from_intrinsics(640, 480, 500, 500, 320, 240, [-0.2, 0.05, 0, 0, 0])
    result = _quality(_photo(), camera=camera)
    assert result.warnings and result.verdict.ok
    assert quality_level(result) == 1
    assert quality_summary(result) == '; '.join(['ok', *result.warnings])


def _text_lines():
    from edge_vision_core.inference.ocr import TextLine

    quad = np.array([[10.5, 20.0], [110.25, 18.0], [111.0, 42.5], [11.0, 44.0]], np.float32)
    return [TextLine(quad, 'ROOM 12B', 0.9875, 0.8, -1),
            TextLine(quad + 100, 'Ausgang \u00e4\u00f6 \u51fa\u53e3', 0.51, 0.6, 3)]


def test_text_lines_round_trip_with_the_header():
    pytest.importorskip('edge_vision_msgs.msg')
    from edge_vision.conversions import msg_to_text_lines, text_lines_to_msg

    lines = _text_lines()
    msg = text_lines_to_msg(lines, HEADER)
    assert msg.header == HEADER and msg.header is not HEADER
    assert [len(item.polygon) for item in msg.lines] == [4, 4]
    assert msg.lines[0].polygon[1].x == pytest.approx(110.25)
    assert msg.lines[1].text == 'Ausgang \u00e4\u00f6 \u51fa\u53e3' and msg.lines[1].region == 3
    back = msg_to_text_lines(msg)
    for a, b in zip(lines, back, strict=True):
        np.testing.assert_allclose(a.polygon, b.polygon)
        assert (a.text, a.region) == (b.text, b.region)
        assert a.score == pytest.approx(b.score)
    empty = text_lines_to_msg([], HEADER)
    assert empty.lines == [] and empty.header == HEADER and msg_to_text_lines(empty) == []


def test_frame_text_round_trips_with_its_stamp_and_to_dict_is_json():
    pytest.importorskip('edge_vision_msgs.msg')
    import json

    from edge_vision.conversions import frame_text_to_msg, header_to_meta, msg_to_frame_text
    from edge_vision_core.inference.ocr import FrameText

    item = FrameText(header_to_meta(HEADER), tuple(_text_lines()), (640, 480))
    msg = frame_text_to_msg(item)
    assert msg.header == HEADER
    back = msg_to_frame_text(msg)
    assert back.meta == item.meta and [x.text for x in back.lines] == [x.text for x in item.lines]
    record = item.lines[1].to_dict()
    assert json.loads(json.dumps(record)) == record
    assert record['region'] == 3 and record['box'] == [110.5, 118.0, 211.0, 144.0]
    assert record['polygon'][1] == [210.25, 118.0] and record['score'] == 0.51


@pytest.mark.parametrize('corners, score, match', [
    ([(0, 0), (1, 0), (1, 1)], 0.5, '3 corners'),
    ([(0, 0), (1, 0), (1, 1), (0, float('nan'))], 0.5, 'non-finite'),
    ([(0, 0), (1, 0), (1, 1), (0, 1)], float('inf'), 'non-finite'),
])
def test_malformed_text_messages_are_refused(corners, score, match):
    pytest.importorskip('edge_vision_msgs.msg')
    from vision_msgs.msg import Point2D

    from edge_vision.conversions import msg_to_text_lines
    from edge_vision_msgs.msg import TextArray, TextLine

    msg = TextArray(lines=[TextLine(polygon=[Point2D(x=float(x), y=float(y)) for x, y in corners],
                                    text='x', score=score)])
    with pytest.raises(ConversionError, match=match):
        msg_to_text_lines(msg)
