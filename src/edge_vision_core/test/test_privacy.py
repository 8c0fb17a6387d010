"""Privacy: anonymizing regions, and a filter that fails closed whatever goes wrong."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core import ConfigError, ConversionError, Detections, ModelError
from edge_vision_core.privacy import (
    PrivacyConfig,
    PrivacyFilter,
    anonymize_boxes,
    anonymize_mask,
    detail_kept,
    expand_boxes,
)

FACE = np.array([[175.0, 70.0, 275.0, 178.0]])  # the astronaut's face (see test_inference_*)


def detail(image: np.ndarray, box=None) -> float:
    """Variance of the Laplacian (fine detail) of a region."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    if box is not None:
        x1, y1, x2, y2 = (int(v) for v in box)
        gray = gray[y1:y2, x1:x2]
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def test_detail_kept_measures():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (64, 64), np.uint8)
    assert detail_kept(image, image) == pytest.approx((1.0, 1.0))
    assert detail_kept(image, np.zeros_like(image)) == (0.0, 0.0)
    ratio, corr = detail_kept(image, 255 - image)
    assert ratio == pytest.approx(1.0) and corr == pytest.approx(-1.0)
    blurred = cv2.GaussianBlur(image, (0, 0), 3)
    assert detail_kept(image, blurred, (8, 8, 56, 56))[0] < 0.05


@pytest.fixture(scope='module')
def astronaut() -> np.ndarray:
    data = pytest.importorskip('skimage.data')
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


# -- the pure functions --------------------------------------------------------------------------

@pytest.mark.parametrize('method', ['blur', 'pixelate', 'fill'])
def test_boxes_lose_their_detail_and_nothing_else_changes(method, astronaut):
    image = astronaut.copy()
    assert anonymize_boxes(image, FACE, method=method, margin=0.0) == 1
    x1, y1, x2, y2 = FACE[0].astype(int)
    outside = np.ones(image.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(image[outside], astronaut[outside])
    ratio, corr = detail_kept(astronaut, image, FACE[0])
    assert abs(corr) < 0.05  # none of the face's fine detail is left
    if method != 'pixelate':  # block edges are detail of their own
        assert ratio < 0.05
    if method == 'fill':
        assert np.all(image[y1:y2, x1:x2] == 0)


def test_strength_and_margin(astronaut):
    weak, strong = astronaut.copy(), astronaut.copy()
    anonymize_boxes(weak, FACE, method='pixelate', strength=0.05, margin=0.0)
    anonymize_boxes(strong, FACE, method='pixelate', strength=0.5, margin=0.0)
    assert detail_kept(astronaut, strong, FACE[0])[1] < detail_kept(astronaut, weak, FACE[0])[1]
    grown = expand_boxes(FACE, 0.5, (512, 512))
    assert grown.tolist() == [[125, 16, 325, 232]]
    assert expand_boxes(np.array([[-10, -10, 600, 600]]), 0.2, (512, 512)).tolist() == \
        [[0, 0, 512, 512]]


def test_fill_colour_and_mono_images(astronaut):
    image = astronaut.copy()
    anonymize_boxes(image, FACE, method='fill', margin=0.0, fill_color=(10, 20, 30))
    assert np.all(image[80, 200] == [10, 20, 30])
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    hidden = gray.copy()
    assert anonymize_boxes(hidden, FACE, method='blur', margin=0.0) == 1
    assert detail(hidden, FACE[0]) < 0.05 * detail(gray, FACE[0])


def test_mask_hides_only_its_pixels(astronaut):
    image = astronaut.copy()
    mask = np.zeros(image.shape[:2], bool)
    mask[100:300, 50:200] = True
    assert anonymize_mask(image, mask, method='pixelate', strength=0.2) == 200 * 150
    assert np.array_equal(image[~mask], astronaut[~mask])
    assert abs(detail_kept(astronaut, image, (50, 100, 200, 300))[1]) < 0.05
    grown = astronaut.copy()
    assert anonymize_mask(grown, mask, method='fill', dilation_px=5) > 200 * 150
    assert np.all(grown[98, 120] == 0)  # 2 px above the mask: inside the dilation


@pytest.mark.parametrize(('call', 'error', 'match'), [
    (lambda im: anonymize_boxes(im, np.array([[np.nan, 0, 5, 5]])), ConversionError,
     'non-finite'),
    (lambda im: anonymize_boxes(im.astype(np.float32), FACE), ConversionError, 'uint8'),
    (lambda im: anonymize_mask(im, np.ones((5, 5), bool)), ConversionError, '5x5'),
    (lambda im: anonymize_boxes(im, FACE, method='smudge'), ConfigError, 'smudge'),
])
def test_bad_input_to_the_pure_functions(call, error, match, astronaut):
    with pytest.raises(error, match=match):
        call(astronaut.copy())


@pytest.mark.parametrize('kwargs', [{'hide': 'hands'}, {'method': 'emboss'},
                                    {'strength': 0.0}, {'fill_color': (1, 2)},
                                    {'person_class': ' '}])
def test_config_is_validated(kwargs):
    with pytest.raises(ConfigError):
        PrivacyConfig(**kwargs)


# -- the filter with the real models -------------------------------------------------------------

@pytest.fixture(scope='module')
def faces_filter():
    pytest.importorskip('edge_vision_models')
    with PrivacyFilter.create(PrivacyConfig(hide='faces', method='blur', threads=2)) as f:
        yield f


@pytest.mark.parametrize('method', ['blur', 'pixelate', 'fill'])
def test_faces_are_hidden_and_no_longer_found(method, astronaut, faces_filter):
    privacy = PrivacyFilter(PrivacyConfig(hide='faces', method=method),
                            face_detector=faces_filter.face_detector)
    before = astronaut.copy()
    result = privacy.apply(astronaut)
    assert not result.withheld and result.faces == 1
    assert np.array_equal(astronaut, before), 'the input must not be modified'
    elsewhere = (0, 300, 512, 512)  # the suit and the helmet below the face
    assert abs(detail_kept(astronaut, result.image, FACE[0])[1]) < 0.05
    assert detail_kept(astronaut, result.image, elsewhere) == pytest.approx((1.0, 1.0))
    detector = faces_filter.face_detector
    assert len(detector.detect(result.image).detections) == 0
    assert privacy.stats.passed == 1 and privacy.stats.withheld == 0


def test_persons_by_mask_and_by_boxes(astronaut):
    pytest.importorskip('edge_vision_models')
    config = PrivacyConfig(hide='persons', method='fill', person_source='mask+boxes', threads=2)
    with PrivacyFilter.create(config) as privacy:
        result = privacy.apply(astronaut)
    assert not result.withheld and result.person_pixels > 100_000 and result.person_boxes == 1
    assert np.all(result.image[400, 200] == 0)  # the suit is filled
    assert np.array_equal(result.image[5, 505], astronaut[5, 505])  # far from the person box


def test_results_handed_in_replace_the_models(astronaut):
    privacy = PrivacyFilter(PrivacyConfig(hide='faces+persons', method='fill'))
    mask = np.zeros(astronaut.shape[:2], np.uint8)
    mask[300:, :100] = 1
    faces = Detections(FACE, [0.9], [0])
    result = privacy.apply(astronaut, faces=faces, person_mask=mask,
                           mask_labels=('background', 'person'))
    assert not result.withheld and result.faces == 1 and result.person_pixels > 0
    assert np.all(result.image[350, 50] == 0) and np.all(result.image[120, 220] == 0)
    low = privacy.apply(astronaut, faces=Detections(FACE, [0.2], [0]),
                        person_mask=np.zeros_like(mask), mask_labels=('background', 'person'))
    assert low.faces == 0 and np.array_equal(low.image, astronaut)  # below min_score


# -- failing closed -------------------------------------------------------------------------------

def _closed_detector():
    from edge_vision_core.inference import Detector

    detector = Detector.create(model='face-short', threads=1)
    detector.close()
    return detector


def _wrong_layout_face_model(tmp_path):
    """A face manifest over a model whose two outputs disagree on the anchor count ([1, 10, 16]
    and [1, 12, 1]): it passes the load-time check, decoding every frame then fails."""
    onnx = pytest.importorskip('onnx')
    import yaml
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node('ReduceMax', ['input'], ['peak'], keepdims=0),
             helper.make_node('Constant', [], ['zero'],
                              value=numpy_helper.from_array(np.array(0.0, np.float32)))]
    nodes.append(helper.make_node('Mul', ['peak', 'zero'], ['nothing']))
    outputs = []
    for name, shape in (('regressors', [1, 10, 16]), ('classificators', [1, 12, 1])):
        nodes += [helper.make_node('Constant', [], [f'{name}_c'], value=numpy_helper.from_array(
                      np.zeros(shape, np.float32))),
                  helper.make_node('Add', [f'{name}_c', 'nothing'], [name])]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(
        nodes, 'wrong', [helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                                       [1, 64, 64, 3])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / 'wrong.onnx'))
    (tmp_path / 'wrong.yaml').write_text(yaml.safe_dump({
        'name': 'wrong', 'adapter': 'blazeface', 'file': 'wrong.onnx', 'layout': 'NHWC',
        'input_size': [64, 64], 'labels': ['face'], 'strides': [8]}))
    from edge_vision_core.inference import Detector
    return Detector.create(model=str(tmp_path / 'wrong.yaml'))


WITHHELD_CASES = {
    'no model loaded': (lambda tmp, img: (PrivacyFilter(PrivacyConfig()), img, {}),
                        'no face model is loaded'),
    'closed detector': (lambda tmp, img: (PrivacyFilter(
        PrivacyConfig(), face_detector=_closed_detector()), img, {}), 'closed'),
    'exception in the detector': (lambda tmp, img: (PrivacyFilter(
        PrivacyConfig(), face_detector=_wrong_layout_face_model(tmp)), img, {}),
        'blazeface adapter'),
    'mask of another size': (lambda tmp, img: (
        PrivacyFilter(PrivacyConfig(hide='persons')), img,
        {'person_mask': np.zeros((256, 256), np.uint8), 'mask_labels': ('bg', 'person')}),
        '256x256 but its image is 512x512'),
    'unknown class ids': (lambda tmp, img: (
        PrivacyFilter(PrivacyConfig(hide='persons')), img,
        {'person_mask': np.full((512, 512), 5, np.uint8), 'mask_labels': ('bg', 'person')}),
        r'class id\(s\) 5'),
    'mask labels without a person': (lambda tmp, img: (
        PrivacyFilter(PrivacyConfig(hide='persons')), img,
        {'person_mask': np.zeros((512, 512), np.uint8), 'mask_labels': ('bg', 'car')}),
        "no class 'person'"),
    'empty image': (lambda tmp, img: (PrivacyFilter(PrivacyConfig()), img[:0], {
        'faces': Detections.empty()}), 'non-empty'),
    'float image': (lambda tmp, img: (PrivacyFilter(PrivacyConfig()), img.astype(np.float32),
                                      {'faces': Detections.empty()}), 'uint8'),
    'not an image': (lambda tmp, img: (PrivacyFilter(PrivacyConfig()), None,
                                       {'faces': Detections.empty()}), 'NoneType'),
    'NaN face box': (lambda tmp, img: (PrivacyFilter(PrivacyConfig()), img, {
        'faces': Detections(np.array([[np.nan, 0, 10, 10]]), [0.9], [0])}), 'non-finite'),
}


@pytest.mark.parametrize('case', list(WITHHELD_CASES))
def test_fails_closed(case, tmp_path, astronaut):
    pytest.importorskip('edge_vision_models')
    make, match = WITHHELD_CASES[case]
    privacy, image, kwargs = make(tmp_path, astronaut)
    result = privacy.apply(image, **kwargs)
    assert result.withheld and result.image is None
    assert result.faces == result.person_pixels == 0
    assert pytest.importorskip('re').search(match, result.reason), result.reason
    assert privacy.stats.withheld == 1 and privacy.stats.passed == 0
    assert privacy.stats.last_reason == result.reason and sum(privacy.stats.reasons.values()) == 1


def test_a_corrupt_model_file_stops_create(tmp_path):
    pytest.importorskip('edge_vision_models')
    from edge_vision_models import models_dir

    src = models_dir()
    (tmp_path / 'face-full.onnx').write_bytes((src / 'face-full.onnx').read_bytes()[:50_000])
    (tmp_path / 'face-full.yaml').write_text((src / 'face-full.yaml').read_text())
    with pytest.raises(ModelError, match='corrupt'):
        PrivacyFilter.create(PrivacyConfig(face_model=str(tmp_path / 'face-full.yaml')))


def test_a_person_model_without_persons_stops_create():
    pytest.importorskip('edge_vision_models')
    with pytest.raises(ModelError, match="no class 'person'"):
        PrivacyFilter.create(PrivacyConfig(hide='persons', person_model='face-short'))


def test_after_close_every_image_is_withheld(astronaut):
    pytest.importorskip('edge_vision_models')
    privacy = PrivacyFilter.create(PrivacyConfig(threads=1))
    assert not privacy.apply(astronaut).withheld
    privacy.close()
    result = privacy.apply(astronaut)
    assert result.withheld and 'no face model' in result.reason
    assert privacy.stats.frames == 2 and privacy.stats.withheld == 1


def test_tiles_find_a_small_face_the_whole_frame_misses(astronaut):
    """A 50 px face in a 1280x720 frame is 7 px at face-full's 192x192 input: missed; on a 2x2
    grid of tiles it is 13 px: found, at the right place, keypoints included."""
    pytest.importorskip('edge_vision_models')
    from edge_vision_core.inference import Detector
    from edge_vision_core.privacy import detect_tiled
    from edge_vision_core.types import box_iou

    scale = 50 / 108
    small = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[400:400 + small.shape[0], 900:900 + small.shape[1]] = small
    face = FACE * scale + [900, 400, 900, 400]
    with Detector.create(model='face-full', score_threshold=0.4, threads=2) as detector:
        assert len(detect_tiled(detector, frame, 1)) == 0
        found = detect_tiled(detector, frame, 2)
        assert len(found) == 1 and box_iou(found.boxes, face)[0, 0] > 0.5
        x1, y1, x2, y2 = found.boxes[0]
        assert np.all((found.keypoints[0, :4] > [x1, y1]) & (found.keypoints[0, :4] < [x2, y2]))
        # a frame smaller than the model input is not tiled (the tiles would gain nothing)
        tiny = cv2.resize(astronaut, (160, 160))
        assert len(detect_tiled(detector, tiny, 3)) == len(detector.detect(tiny).detections)
    privacy = PrivacyFilter(PrivacyConfig(face_tiles=2), face_detector=Detector.create(
        model='face-full', score_threshold=0.4, threads=1), owns_models=True)
    with privacy:
        result = privacy.apply(frame)
    assert result.faces == 1 and abs(detail_kept(frame, result.image, face[0])[1]) < 0.1
