"""Decoders for every supported layout, on synthetic tensors and on synthetic ONNX models.

Expected boxes are derived in the tests from the letterbox formula ``u = x * s + pad``
(independently of the library), then pushed through the model layouts.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from edge_vision_core import ModelError
from edge_vision_core.inference import Detector
from edge_vision_core.inference.adapters import (
    decode_nanodet,
    decode_segmentation,
    decode_ssd_postprocess,
    decode_yolo_nms,
    decode_yolov5,
    decode_yolov8,
)
from edge_vision_core.inference.backends import available_backends

LABELS = ['alpha', 'beta', 'gamma']
# A 640x480 image letterboxed into 320x320: scale 0.5, resized 320x240, pad_y = 40.
IMAGE_W, IMAGE_H, INPUT = 640, 480, 320
SCALE, PAD_X, PAD_Y = 0.5, 0, 40
# objects in image pixels: box, class, score
OBJECTS = [([100.0, 80.0, 300.0, 400.0], 2, 0.9), ([400.0, 100.0, 600.0, 300.0], 0, 0.8)]
ONNX_BACKENDS = [b for b in ('onnxruntime', 'openvino') if b in available_backends()]


def _model_box(box):
    x1, y1, x2, y2 = box
    return [x1 * SCALE + PAD_X, y1 * SCALE + PAD_Y, x2 * SCALE + PAD_X, y2 * SCALE + PAD_Y]


def _rows():
    """(model-space xyxy, class, score) of the objects, a near-duplicate and a weak box."""
    rows = [(_model_box(b), c, s) for b, c, s in OBJECTS]
    dup = np.array(rows[0][0]) + [2, 1, 2, 1]
    rows.append((dup.tolist(), rows[0][1], 0.7))            # suppressed by NMS
    rows.append(([10.0, 50.0, 40.0, 90.0], 1, 0.05))       # below the score threshold
    return rows


def _xywh(b):
    return [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]]


def layout_yolov5():
    out = np.zeros((1, 6, 5 + len(LABELS)), np.float32)
    for i, (b, c, s) in enumerate(_rows()):
        out[0, i, :4] = _xywh(b)
        out[0, i, 4] = 1.0  # objectness
        out[0, i, 5 + c] = s
    return {'output0': out}


def layout_yolov8(transposed=False):
    out = np.zeros((1, 4 + len(LABELS), 9), np.float32)
    for i, (b, c, s) in enumerate(_rows()):
        out[0, :4, i] = _xywh(b)
        out[0, 4 + c, i] = s
    return {'output0': out.transpose(0, 2, 1).copy() if transposed else out}


def layout_yolo_nms_single():
    rows = _rows()
    out = np.zeros((1, 5, 6), np.float32)  # padded rows have score 0
    for i, (b, c, s) in enumerate([rows[0], rows[1], rows[3]]):
        out[0, i] = [*b, s, c]
    return {'output0': out}


def layout_yolo_nms_four():
    rows = _rows()
    kept = [rows[0], rows[1], rows[3]]
    boxes = np.zeros((1, 10, 4), np.float32)
    scores = np.zeros((1, 10), np.float32)
    classes = np.zeros((1, 10), np.float32)
    for i, (b, c, s) in enumerate(kept):
        boxes[0, i], scores[0, i], classes[0, i] = b, s, c
    return {'num_dets': np.array([[len(kept)]], np.float32), 'det_boxes': boxes,
            'det_scores': scores, 'det_classes': classes}


def layout_ssd():
    rows = _rows()
    kept = [rows[0], rows[1], rows[3]]
    boxes = np.zeros((1, 10, 4), np.float32)
    classes = np.zeros((1, 10), np.float32)
    scores = np.zeros((1, 10), np.float32)
    for i, (b, c, s) in enumerate(kept):
        x1, y1, x2, y2 = (v / INPUT for v in b)
        boxes[0, i] = [y1, x1, y2, x2]
        classes[0, i], scores[0, i] = c, s
    return {'boxes': boxes, 'classes': classes, 'scores': scores,
            'count': np.array([len(kept)], np.float32)}


LAYOUTS = {
    'yolov5': ('yolov5', layout_yolov5),
    'yolov8': ('yolov8', layout_yolov8),
    'yolov8-transposed': ('yolov8', lambda: layout_yolov8(transposed=True)),
    'yolo_nms-single': ('yolo_nms', layout_yolo_nms_single),
    'yolo_nms-four': ('yolo_nms', layout_yolo_nms_four),
    'ssd_postprocess': ('ssd_postprocess', layout_ssd),
}


def _check(detections, class_ids=None):
    expected_boxes = np.array([b for b, _, _ in OBJECTS], np.float32)
    assert len(detections) == len(OBJECTS)
    np.testing.assert_allclose(detections.boxes, expected_boxes, atol=0.05)
    assert detections.class_ids.tolist() == [c for _, c, _ in OBJECTS]
    np.testing.assert_allclose(detections.scores, [s for _, _, s in OBJECTS], atol=1e-5)


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_layout_end_to_end_through_a_synthetic_onnx_model(constant_model, layout, backend):
    adapter, build = LAYOUTS[layout]
    manifest = constant_model(build(), {'adapter': adapter, 'labels': LABELS,
                                        'score_threshold': 0.3, 'nms_threshold': 0.5},
                              input_shape=(1, 3, INPUT, INPUT))
    image = np.full((IMAGE_H, IMAGE_W, 3), 90, np.uint8)
    with Detector.create(model=manifest, backend=backend) as detector:
        result = detector.detect(image)
    _check(result.detections)
    assert result.class_names() == ['gamma', 'alpha']


def test_pure_decoders_agree_with_the_layouts():
    size = (INPUT, INPUT)
    for fn, outputs in [(decode_yolov5, layout_yolov5()), (decode_yolov8, layout_yolov8()),
                        (decode_yolov8, layout_yolov8(transposed=True))]:
        cand = fn(list(outputs.values()), size, len(LABELS), score_threshold=0.3)
        assert len(cand.scores) == 3 and not cand.nms_done  # duplicate still there
    cand = decode_yolo_nms(list(layout_yolo_nms_four().values()), size, score_threshold=0.3)
    assert cand.nms_done and len(cand.scores) == 2
    cand = decode_ssd_postprocess(list(layout_ssd().values()), size, score_threshold=0.3,
                                  label_offset=1)
    assert cand.class_ids.tolist() == [3, 1]


def test_normalized_yolo_boxes():
    outputs = layout_yolov8()['output0'].copy()
    outputs[0, :4] /= INPUT
    cand = decode_yolov8([outputs], (INPUT, INPUT), len(LABELS), score_threshold=0.3,
                         normalized=True)
    ref = decode_yolov8(list(layout_yolov8().values()), (INPUT, INPUT), len(LABELS),
                        score_threshold=0.3)
    np.testing.assert_allclose(np.sort(cand.boxes, 0), np.sort(ref.boxes, 0), atol=1e-3)


# -- NanoDet ----------------------------------------------------------------------------------

NANO_STRIDES, NANO_REG_MAX, NANO_SIZE = (8, 16, 32), 3, (64, 48)


def _nanodet_outputs(objects):
    """objects: (stride, col, row, class, score, distances l,t,r,b in strides (float))."""
    bins = NANO_REG_MAX + 1
    w, h = NANO_SIZE
    outs = {}
    for s in NANO_STRIDES:
        n = (-(-w // s)) * (-(-h // s))
        outs[f'cls{s}'] = np.zeros((1, n, len(LABELS)), np.float32)
        outs[f'box{s}'] = np.full((1, n, 4 * bins), -30.0, np.float32)
    for s, col, row, cls, score, dists in objects:
        cols = -(-w // s)
        cell = row * cols + col
        outs[f'cls{s}'][0, cell, cls] = score
        for side, d in enumerate(dists):
            lo = int(np.floor(d))
            frac = d - lo
            logits = outs[f'box{s}'][0, cell, side * bins:(side + 1) * bins]
            logits[:] = -30.0
            # two bins with probabilities (1 - frac, frac) give the expectation d
            if frac == 0:
                logits[lo] = 30.0
            else:
                logits[lo] = np.log(1 - frac)
                logits[lo + 1] = np.log(frac)
    return outs


NANO_OBJECTS = [(8, 3, 2, 1, 0.9, (2.0, 1.0, 3.0, 2.0)), (16, 1, 1, 0, 0.7, (0.5, 1.5, 1.0, 2.5))]


def _nano_expected():
    boxes = []
    for s, col, row, _, _, (left, top, right, bottom) in NANO_OBJECTS:
        cx, cy = (col + 0.5) * s, (row + 0.5) * s
        boxes.append([cx - left * s, cy - top * s, cx + right * s, cy + bottom * s])
    return np.array(boxes, np.float32)


def test_nanodet_distribution_integral_in_any_output_order():
    outs = list(_nanodet_outputs(NANO_OBJECTS).values())
    random.Random(3).shuffle(outs)
    cand = decode_nanodet(outs, NANO_SIZE, len(LABELS), strides=NANO_STRIDES,
                          reg_max=NANO_REG_MAX, score_threshold=0.3)
    order = np.argsort(-cand.scores)
    np.testing.assert_allclose(cand.boxes[order], _nano_expected(), atol=1e-3)
    assert cand.class_ids[order].tolist() == [1, 0]


def test_nanodet_plus_single_output_and_center_offset():
    outs = _nanodet_outputs(NANO_OBJECTS)
    merged = np.concatenate([np.concatenate([outs[f'cls{s}'], outs[f'box{s}']], axis=2)
                             for s in NANO_STRIDES], axis=1)
    cand = decode_nanodet([merged], NANO_SIZE, len(LABELS), strides=NANO_STRIDES,
                          reg_max=NANO_REG_MAX, score_threshold=0.3, center_offset=0.0)
    order = np.argsort(-cand.scores)
    shift = np.array([[8, 8, 8, 8], [16, 16, 16, 16]], np.float32) * 0.5
    np.testing.assert_allclose(cand.boxes[order], _nano_expected() - shift, atol=1e-3)


def test_nanodet_wrong_labels_count_is_named():
    outs = list(_nanodet_outputs(NANO_OBJECTS).values())
    with pytest.raises(ModelError, match='labels count'):
        decode_nanodet(outs, NANO_SIZE, 5, strides=NANO_STRIDES, reg_max=NANO_REG_MAX)


# -- segmentation -----------------------------------------------------------------------------

def _seg_scores():
    """[1, 3, 16, 16] scores: class 1 on the left half, class 2 on the right, 0 nowhere."""
    scores = np.zeros((1, 3, 16, 16), np.float32)
    scores[0, 1, :, :8] = 5.0
    scores[0, 2, :, 8:] = 5.0
    return scores


@pytest.mark.parametrize('layout', ['nchw', 'nhwc', 'classmap', 'probability'])
def test_segmentation_layouts(layout):
    scores = _seg_scores()
    out = {'nchw': scores, 'nhwc': scores.transpose(0, 2, 3, 1),
           'classmap': np.argmax(scores, axis=1).astype(np.int64),
           'probability': (scores[:, 2:3] > 0).astype(np.float32) * 0.9}[layout]
    mask = decode_segmentation([out], 3)
    assert mask.shape == (16, 16) and mask.dtype == np.uint8
    want_left = 0 if layout == 'probability' else 1
    assert np.all(mask[:, :8] == want_left) and np.all(mask[:, 8:] == (
        1 if layout == 'probability' else 2))


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_segmentation_mask_in_image_pixels(constant_model, backend):
    manifest = constant_model({'logits': _seg_scores()},
                              {'adapter': 'segmentation', 'labels': ['bg', 'left', 'right']},
                              input_shape=(1, 3, 64, 64))
    image = np.zeros((60, 120, 3), np.uint8)  # wide: letterboxed with bands top and bottom
    with Detector.create(model=manifest, backend=backend) as detector:
        result = detector.detect(image)
    assert result.mask.shape == (60, 120) and len(result.detections) == 0
    assert np.mean(result.mask[:, :60] == 1) > 0.95
    assert np.mean(result.mask[:, 60:] == 2) > 0.95


def test_layout_errors_name_the_problem():
    with pytest.raises(ModelError, match='objectness'):
        decode_yolov5([np.zeros((1, 10, 7), np.float32)], (64, 64), 3)
    with pytest.raises(ModelError, match='labels count'):
        decode_yolov8([np.zeros((1, 9, 10), np.float32)], (64, 64), 3)
    with pytest.raises(ModelError, match='yolo_nms'):
        decode_yolo_nms([np.zeros((1, 10, 5), np.float32)], (64, 64))
    with pytest.raises(ModelError, match='ssd_postprocess'):
        decode_ssd_postprocess([np.zeros((1, 10, 4), np.float32)], (64, 64))
    with pytest.raises(ModelError, match='segmentation'):
        decode_segmentation([np.zeros((1, 5, 8, 8), np.float32)], 3)
