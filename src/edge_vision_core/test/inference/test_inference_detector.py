"""The embedded default detector on real photographs, and the Detector API contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge_vision_core import ConfigError, DataError
from edge_vision_core.inference import DetectorOptions
from edge_vision_core.inference.backends import available_backends

pytest.importorskip('edge_vision_models')
INSTALLED = [b for b in ('onnxruntime', 'openvino', 'litert') if b in available_backends()]

# image -> (expected class, a point of the image the object's box must contain)
EXPECTED = {
    'astronaut': ('person', (200, 300)),
    'chelsea': ('cat', (220, 150)),
    'motorcycle': ('motorcycle', (400, 250)),
}


@pytest.mark.parametrize('backend', INSTALLED)
@pytest.mark.parametrize('image_name', list(EXPECTED))
def test_default_model_finds_the_expected_object(backend, image_name, default_detector,
                                                 real_images):
    image = real_images[image_name]
    result = default_detector(backend).detect(image)
    label, (px, py) = EXPECTED[image_name]
    names = result.class_names()
    assert label in names, f'{image_name}: found {names}'
    box = result.detections.boxes[names.index(label)]
    assert box[0] <= px <= box[2] and box[1] <= py <= box[3], box
    h, w = image.shape[:2]
    boxes = result.detections.boxes
    assert np.all(boxes >= 0) and np.all(boxes[:, [0, 2]] <= w) and np.all(boxes[:, [1, 3]] <= h)
    assert result.image_size == (w, h)
    t = result.timings
    assert t.pre_ms > 0 and t.infer_ms > 0 and t.post_ms > 0
    assert t.total_ms == pytest.approx(t.pre_ms + t.infer_ms + t.post_ms)


def test_blank_image_gives_no_detection(default_detector):
    result = default_detector('onnxruntime').detect(np.zeros((240, 320, 3), np.uint8))
    assert len(result.detections) == 0


def test_mono_and_bgra_inputs_match_bgr(default_detector, real_images):
    import cv2

    detector = default_detector('onnxruntime')
    bgr = real_images['astronaut']
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    via_gray = detector.detect(gray).detections
    expected = detector.detect(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)).detections
    np.testing.assert_allclose(via_gray.boxes, expected.boxes)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    np.testing.assert_allclose(detector.detect(bgra).detections.boxes,
                               detector.detect(bgr).detections.boxes)


@pytest.mark.parametrize('bad', [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 2),
                                                                             np.uint8),
                                 np.zeros((0, 10, 3), np.uint8), [[1, 2, 3]]],
                         ids=['float', 'two-channel', 'empty', 'list'])
def test_bad_images_raise_data_error(default_detector, bad):
    with pytest.raises(DataError, match='uint8'):
        default_detector('onnxruntime').detect(bad)


def test_options_override_the_manifest_thresholds(default_detector, real_images):
    from edge_vision_core.inference import Detector

    base = default_detector('onnxruntime')
    assert base.score_threshold == base.manifest.score_threshold
    with Detector.create(score_threshold=0.7, max_detections=1) as strict:
        result = strict.detect(real_images['astronaut'])
        assert len(result.detections) <= 1
        assert np.all(result.detections.scores > 0.7)


def test_update_options_changes_thresholds_of_a_loaded_detector(real_images):
    from edge_vision_core.inference import Detector

    with Detector.create(score_threshold=0.1) as det:
        loose = det.detect(real_images['astronaut']).detections
        det.update_options(DetectorOptions(score_threshold=0.7, max_detections=1))
        strict = det.detect(real_images['astronaut']).detections
        assert len(loose) > len(strict) and len(strict) <= 1
        assert np.all(strict.scores > 0.7) and det.options.max_detections == 1
        det.update_options(DetectorOptions())  # negative = back to the manifest's values
        assert det.score_threshold == det.manifest.score_threshold
        assert det.max_detections == det.manifest.max_detections


@pytest.mark.parametrize(('field', 'value'), [('threads', -1), ('precision', 'int4'),
                                             ('score_threshold', 1.5), ('model', ' '),
                                             ('nms_method', 'fast')])
def test_options_are_validated(field, value):
    with pytest.raises(ConfigError):
        DetectorOptions(**{field: value})


def test_importing_inference_imports_no_runtime():
    code = ('import sys, edge_vision_core.inference, edge_vision_core.inference.backends;'
            'bad = [m for m in ("onnxruntime", "openvino", "ai_edge_litert", "tflite_runtime",'
            ' "tensorrt", "rclpy", "edge_vision_models") if m in sys.modules];'
            'print(bad); sys.exit(1 if bad else 0)')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nchw_bgr_normalisation_matches_the_manifest(default_detector, real_images):
    from edge_vision_core.inference import letterbox

    detector = default_detector('onnxruntime')
    m = detector.manifest
    image = real_images['coffee']
    prepared = detector.preprocess(image)
    boxed, _ = letterbox(image, m.input_size, pad_value=m.pad_value)
    expected = ((boxed.astype(np.float64) - np.array(m.mean)) / np.array(m.std))
    expected = expected.transpose(2, 0, 1)[None]  # manifest colour order is bgr: no swap
    np.testing.assert_allclose(prepared.inputs[0], expected, atol=1e-4)


@pytest.mark.parametrize('input_type', ['float', 'uint8'])
def test_nhwc_rgb_inputs(constant_model, input_type):
    from edge_vision_core.inference import Detector, letterbox

    outputs = {'output0': np.zeros((1, 4 + 2, 20), np.float32)}
    manifest = constant_model(outputs, {'adapter': 'yolov8', 'labels': ['a', 'b'],
                                        'layout': 'NHWC', 'color_order': 'rgb',
                                        'scale': 1 / 255, 'input_size': [64, 48]},
                              input_shape=(1, 48, 64, 3), input_type=input_type)
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    with Detector.create(model=manifest) as detector:
        tensor = detector.preprocess(image).inputs[0]
        boxed, _ = letterbox(image, (64, 48), pad_value=114)
        rgb = boxed[..., ::-1][None]
        if input_type == 'uint8':
            assert tensor.dtype == np.uint8
            np.testing.assert_array_equal(tensor, rgb)
        else:
            np.testing.assert_allclose(tensor, rgb / 255.0, atol=1e-6)
        assert len(detector.detect(image).detections) == 0
