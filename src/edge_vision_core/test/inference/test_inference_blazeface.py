"""The blazeface adapter: anchors, decoding, weighted NMS, the Detector's path (letterbox
inverse, unclipped keypoints), and the shipped face models on real photos through every
installed backend."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ModelError
from edge_vision_core.inference import Detector
from edge_vision_core.inference.adapters import (
    FACE_KEYPOINTS,
    decode_blazeface,
    ssd_anchor_centers,
)
from edge_vision_core.inference.backends import available_backends
from edge_vision_core.inference.nms import weighted_nms
from edge_vision_core.types import box_iou

INSTALLED = [b for b in ('onnxruntime', 'openvino', 'litert') if b in available_backends()]
# The astronaut's face in skimage's 512x512 photo, read off the picture (hairline to chin,
# ear to ear): a detection must overlap it well.
ASTRONAUT_FACE = np.array([[175.0, 70.0, 275.0, 178.0]])


# -- anchors -------------------------------------------------------------------------------------

@pytest.mark.parametrize(('size', 'strides', 'count', 'first', 'last'), [
    # short range: 16x16 cells x 2 anchors, then 8x8 cells x 6 (three stride-16 layers x 2)
    ((128, 128), (8, 16, 16, 16), 896, (4.0, 4.0), (120.0, 120.0)),
    # full range: 48x48 cells x 1 anchor
    ((192, 192), (4,), 2304, (2.0, 2.0), (190.0, 190.0)),
])
def test_anchor_layouts_of_the_published_options(size, strides, count, first, last):
    centers = ssd_anchor_centers(size, strides, count, 0.5)
    assert centers.shape == (count, 2)
    assert tuple(centers[0]) == first and tuple(centers[-1]) == last
    if count == 896:  # both anchors of a cell share its centre; the stride-16 grid follows
        assert tuple(centers[1]) == first and tuple(centers[2]) == (12.0, 4.0)
        assert tuple(centers[512]) == (8.0, 8.0) and tuple(centers[517]) == (8.0, 8.0)
        assert tuple(centers[518]) == (24.0, 8.0)


def test_anchor_count_that_does_not_fit_is_a_model_error():
    with pytest.raises(ModelError, match='strides'):
        ssd_anchor_centers((128, 128), (8, 16, 16, 16), 900, 0.5)


# -- decoding ------------------------------------------------------------------------------------

def _raw(size=(128, 128), strides=(8, 16, 16, 16), count=896, hits=()):
    """Regressors/logits with faces at given anchors: (anchor, dx, dy, w, h, logit)."""
    regs = np.zeros((1, count, 16), np.float32)
    logits = np.full((1, count, 1), -8.0, np.float32)
    for anchor, dx, dy, w, h, logit in hits:
        regs[0, anchor, :4] = (dx, dy, w, h)
        regs[0, anchor, 4:] = np.arange(12, dtype=np.float32) - 6  # keypoint offsets
        logits[0, anchor, 0] = logit
    return regs, logits


def test_decode_boxes_and_keypoints_relative_to_the_anchor():
    # anchor 20 = the first anchor of cell 10 (two per cell): column 10 of row 0
    regs, logits = _raw(hits=[(20, 1.5, -2.0, 10.0, 12.0, 3.0)])
    cand = decode_blazeface([logits, regs], (128, 128), strides=(8, 16, 16, 16))
    points = cand.keypoints
    anchor = np.array([10 * 8 + 4.0, 4.0])
    centre = anchor + [1.5, -2.0]
    np.testing.assert_allclose(cand.boxes[0], [*(centre - [5, 6]), *(centre + [5, 6])],
                               atol=1e-5)
    assert cand.scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-6)
    np.testing.assert_allclose(points[0], (np.arange(12) - 6).reshape(6, 2) + anchor, atol=1e-5)
    assert points.shape == (1, len(FACE_KEYPOINTS), 2)


def test_scores_below_threshold_and_huge_logits_are_handled():
    regs, logits = _raw(hits=[(0, 0, 0, 8, 8, 1e6), (5, 0, 0, 8, 8, -0.1)])
    cand = decode_blazeface([regs, logits], (128, 128), strides=(8, 16, 16, 16),
                            score_threshold=0.5)
    assert len(cand.scores) == 1 and cand.scores[0] == pytest.approx(1.0)
    empty = decode_blazeface([regs, np.full_like(logits, -9)], (128, 128),
                             strides=(8, 16, 16, 16))
    assert empty.boxes.shape == (0, 4) and empty.keypoints.shape == (0, 6, 2)


@pytest.mark.parametrize('outputs', [
    [np.zeros((1, 896, 16), np.float32)],
    [np.zeros((1, 896, 15), np.float32), np.zeros((1, 896, 1), np.float32)],
    [np.zeros((1, 896, 16), np.float32), np.zeros((1, 890, 1), np.float32)],
])
def test_unexpected_layouts_are_model_errors(outputs):
    with pytest.raises(ModelError, match='blazeface'):
        decode_blazeface(outputs, (128, 128), strides=(8, 16, 16, 16))


def test_the_detector_maps_boxes_and_keypoints_back_through_the_letterbox(constant_model):
    # a 256x128 image letterboxed into 128x128: scale 0.5, pad_y 32
    regs, logits = _raw(hits=[(2 * (8 * 16 + 8), 0, 0, 20, 20, 4.0),  # cell (8, 8): (68, 68)
                              (2 * (6 * 16), 0, 0, 20, 20, 3.0)])  # cell (6, 0): (4, 52)
    manifest = constant_model({'regressors': regs, 'classificators': logits}, {
        'adapter': 'blazeface', 'strides': [8, 16, 16, 16], 'center_offset': 0.5,
        'labels': ['face'], 'score_threshold': 0.5, 'nms_threshold': 0.3, 'pad_value': 0},
        input_shape=(1, 3, 128, 128))
    with Detector.create(model=manifest, backend='onnxruntime') as detector:
        assert detector.produces == {'detections', 'keypoints'}
        dets = detector.detect(np.zeros((128, 256, 3), np.uint8)).detections
    np.testing.assert_allclose(dets.boxes[0], [(58 - 0) * 2, (58 - 32) * 2, 78 * 2,
                                               (78 - 32) * 2], atol=1e-4)
    np.testing.assert_allclose(dets.keypoints[0, 0], [(68 - 6) * 2, (68 - 5 - 32) * 2],
                               atol=1e-4)
    assert dets.class_ids.tolist() == [0, 0]
    # the face at the left border: its box is clipped to the image, its keypoints are not
    np.testing.assert_allclose(dets.boxes[1], [0, (42 - 32) * 2, 14 * 2, (62 - 32) * 2],
                               atol=1e-4)
    np.testing.assert_allclose(dets.keypoints[1, 0], [(4 - 6) * 2, (52 - 5 - 32) * 2],
                               atol=1e-4)


@pytest.mark.parametrize(('outputs', 'keys', 'match'), [
    ({'regressors': np.zeros((1, 896, 16))}, {}, r'blazeface needs a regressor output'),
    (None, {'strides': []}, r'adapter blazeface: .*at least one stride'),
    (None, {'center_offset': 2.0}, r'adapter blazeface: .*center_offset'),
    (None, {'reg_max': 7}, r'reg_max is an option of adapter nanodet'),
])
def test_the_manifest_options_and_the_output_contract_are_checked(constant_model, outputs, keys,
                                                                   match):
    regs, logits = _raw()
    path = constant_model(outputs or {'regressors': regs, 'classificators': logits},
                          {'adapter': 'blazeface', 'labels': ['face'], **keys},
                          input_shape=(1, 3, 128, 128))
    with pytest.raises(ModelError, match=match):
        Detector.create(model=path, backend='onnxruntime')


# -- weighted NMS ------------------------------------------------------------------------------

def test_weighted_nms_merges_a_cluster_into_its_weighted_mean():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.3, 0.8], np.float32)
    extra = np.array([[[0, 0]], [[4, 8]], [[7, 7]]], np.float32)
    out, out_scores, (points,) = weighted_nms(boxes, scores, 0.3, (extra,))
    np.testing.assert_allclose(out[0], (0.9 * boxes[0] + 0.3 * boxes[1]) / 1.2, rtol=1e-6)
    np.testing.assert_allclose(points[0, 0], [1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(out[1], boxes[2])
    assert out_scores.tolist() == pytest.approx([0.9, 0.8])


def test_weighted_nms_edge_cases():
    boxes, scores, extras = weighted_nms(np.zeros((0, 4)), np.zeros(0), 0.3)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and extras == ()
    # a degenerate box (zero area) still ends its own cluster: no endless loop
    boxes, scores, _ = weighted_nms(np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32),
                                    np.array([0.5, 0.4]), 0.3)
    assert len(boxes) == 2
    boxes, _, _ = weighted_nms(np.random.default_rng(0).uniform(0, 100, (50, 4)),
                               np.linspace(1, 0.5, 50), 0.3, max_keep=3)
    assert len(boxes) == 3


# -- the shipped models on real photos ---------------------------------------------------------

@pytest.mark.parametrize('backend', INSTALLED)
@pytest.mark.parametrize('model', ['face-short', 'face-full', 'face'])
def test_finds_the_astronauts_face_with_its_keypoints(model, backend, shipped_detector,
                                                      real_images):
    dets = shipped_detector(model, backend).detect(real_images['astronaut']).detections
    assert len(dets) == 1, dets
    assert box_iou(dets.boxes, ASTRONAUT_FACE)[0, 0] > 0.6, dets.boxes
    points = dict(zip(FACE_KEYPOINTS, dets.keypoints[0].tolist(), strict=True))
    x1, y1, x2, y2 = dets.boxes[0]
    for name in ('right_eye', 'left_eye', 'nose_tip', 'mouth_center'):
        assert x1 < points[name][0] < x2 and y1 < points[name][1] < y2, (name, points)
    # facing the camera: the person's right eye is on the image's left, eyes above the mouth
    assert points['right_eye'][0] < points['nose_tip'][0] < points['left_eye'][0]
    assert max(points['right_eye'][1], points['left_eye'][1]) < points['mouth_center'][1]


@pytest.mark.parametrize('model', ['face-short', 'face-full'])
def test_no_face_in_photos_without_people(model, shipped_detector, real_images):
    for name in ('coffee', 'motorcycle'):
        assert len(shipped_detector(model, 'onnxruntime').detect(real_images[name]).detections) \
            == 0, name


@pytest.mark.parametrize('model', ['face-short', 'face-full'])
def test_backends_agree_and_the_box_follows_the_face(model, shipped_detector, real_images):
    image = real_images['astronaut']
    reference = shipped_detector(model, 'onnxruntime').detect(image).detections
    for backend in INSTALLED[1:]:
        other = shipped_detector(model, backend).detect(image).detections
        assert len(other) == 1 and box_iou(other.boxes, reference.boxes)[0, 0] > 0.98, backend
    # the same photo on a wider canvas, shifted right by 100 px: the box shifts with it
    canvas = np.zeros((512, 640, 3), np.uint8)
    canvas[:, 100:612] = image
    moved = shipped_detector(model, 'onnxruntime').detect(canvas).detections
    assert len(moved) == 1
    assert box_iou(moved.boxes - [100, 0, 100, 0], reference.boxes)[0, 0] > 0.8
