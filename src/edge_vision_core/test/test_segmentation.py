"""Class masks checked against their image, and the instance image convention."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ConversionError, DataError, Detections
from edge_vision_core.segmentation import (
    check_class_mask,
    instance_encoding,
    instance_image,
    instance_masks,
    masks_from_instance_image,
)

MASK_LABELS = ('background', 'person', 'car')
DET_LABELS = ('person', 'bicycle', 'car')


@pytest.mark.parametrize(('mask', 'size', 'labels', 'match'), [
    (np.zeros((10, 20), np.uint8), (20, 12), 3, r'20x10 but its image is 20x12'),
    (np.full((4, 4), 7, np.uint8), None, 3, r'class id\(s\) 7 .* only 3'),
    (np.zeros((4, 4), np.float32), None, 3, 'integer'),
    (np.zeros((4, 4, 3), np.uint8), None, 3, r'\(H, W\)'),
    (np.zeros((0, 4), np.uint8), None, 3, 'non-empty'),
])
def test_bad_class_masks_are_refused_naming_the_problem(mask, size, labels, match):
    with pytest.raises(ConversionError, match=match):
        check_class_mask(mask, size, labels)


def test_a_good_class_mask_passes_unchanged():
    mask = np.array([[0, 1], [2, 1]], np.uint16)
    assert check_class_mask(mask, (2, 2), 3) is mask


def _scene():
    """A 100x200 mask: a person blob left, a car blob right; four detections."""
    mask = np.zeros((100, 200), np.uint8)
    mask[10:90, 20:90] = 1   # person
    mask[40:90, 120:190] = 2  # car
    dets = Detections(
        boxes=np.array([[15, 5, 75, 95],       # 0: person box over most of the person blob
                        [110, 30, 195, 95],    # 1: car box
                        [50, 0, 100, 60],      # 2: a second person box overlapping 0
                        [0, 0, 200, 100]]),    # 3: a bicycle: the mask has no such class
        scores=np.array([0.9, 0.8, 0.5, 0.7]),
        class_ids=np.array([0, 2, 0, 1]))
    return mask, dets


def test_instance_image_convention():
    mask, dets = _scene()
    inst = instance_image(dets, mask, DET_LABELS, MASK_LABELS)
    assert inst.shape == mask.shape and inst.dtype == np.uint8
    assert set(np.unique(inst).tolist()) == {0, 1, 2, 3}  # index + 1; the bicycle (4) none
    # each detection owns the pixels of its own class inside its box
    assert np.array_equal(inst == 1, (mask == 1) & _box(15, 5, 75, 95))
    assert np.array_equal(inst == 2, mask == 2)
    # the overlap of the two person boxes went to the higher score (detection 0)
    assert np.array_equal(inst == 3, (mask == 1) & _box(75, 10, 90, 60))
    # person pixels outside every person box stay 0
    assert np.all(inst[60:90, 75:90] == 0)


def _box(x1, y1, x2, y2):
    inside = np.zeros((100, 200), bool)
    inside[y1:y2, x1:x2] = True
    return inside


def test_equal_scores_give_the_overlap_to_the_lower_index():
    mask = np.ones((10, 10), np.uint8)
    dets = Detections(np.array([[0, 0, 6, 10], [4, 0, 10, 10]]), np.array([0.5, 0.5]),
                      np.array([0, 0]))
    inst = instance_image(dets, mask, DET_LABELS, MASK_LABELS)
    assert np.all(inst[:, 4:6] == 1) and np.all(inst[:, 6:] == 2)


def test_instance_masks_and_round_trip():
    mask, dets = _scene()
    with_masks = instance_masks(dets, mask, DET_LABELS, MASK_LABELS)
    assert with_masks.masks.shape == (4, 100, 200)
    assert with_masks.masks[1].sum() == (mask == 2).sum()
    assert not with_masks.masks[3].any()
    again = masks_from_instance_image(instance_image(dets, mask, DET_LABELS, MASK_LABELS), 4)
    assert np.array_equal(again, with_masks.masks)


def test_encoding_follows_the_detection_count():
    assert instance_encoding(0) == 'mono8' and instance_encoding(254) == 'mono8'
    assert instance_encoding(255) == 'mono16' and instance_encoding(65535) == 'mono16'
    with pytest.raises(DataError, match='65535'):
        instance_encoding(65536)
    mask = np.ones((40, 300), np.uint8)
    boxes = np.array([[i, 0, i + 1, 40] for i in range(300)], np.float32)
    dets = Detections(boxes, np.ones(300), np.zeros(300))
    inst = instance_image(dets, mask, DET_LABELS, MASK_LABELS)
    assert inst.dtype == np.uint16 and inst[0, 299] == 300 and inst[0, 0] == 1


def test_bad_inputs_are_refused_or_skipped():
    mask, dets = _scene()
    with pytest.raises(ConversionError, match='detection array has 2'):
        masks_from_instance_image(np.full((5, 5), 3, np.uint8), 2)
    with pytest.raises(ConversionError, match='class id'):
        instance_image(dets, np.full((100, 200), 9, np.uint8), DET_LABELS, MASK_LABELS)
    nan = dets.replace(boxes=np.array([[np.nan, 0, 10, 10], *dets.boxes[1:]], np.float32))
    inst = instance_image(nan, mask, DET_LABELS, MASK_LABELS)
    assert not np.any(inst == 1)  # a NaN box owns nothing
    empty = instance_image(Detections.empty(), mask, DET_LABELS, MASK_LABELS)
    assert empty.dtype == np.uint8 and not empty.any()


def test_detector_plus_segmenter_on_a_real_photo(real_photo):
    """NanoDet's person box x the person segmenter's mask: one instance, the person."""
    pytest.importorskip('edge_vision_models')
    from edge_vision_core.inference import Detector

    with Detector.create(threads=2) as detector, \
            Detector.create(model='selfie-segmentation', threads=2) as segmenter:
        dets = detector.detect(real_photo)
        seg = segmenter.detect(real_photo)
    inst = instance_image(dets.detections, seg.mask, dets.labels, seg.labels)
    person = dets.class_names().index('person')
    owned = inst == person + 1
    assert owned.sum() > 0.8 * (seg.mask == 1).sum()  # nearly all person pixels are in its box
    assert np.all(seg.mask[owned] == 1)


@pytest.fixture
def real_photo():
    data = pytest.importorskip('skimage.data')
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def test_class_mask_blend_and_instance_outlines():
    from edge_vision_core.viz import blend_class_mask, color_for, draw_instance_outlines

    mask, dets = _scene()
    image = np.full((100, 200, 3), 200, np.uint8)
    blend_class_mask(image, mask, 1.0)
    assert np.all(image[0, 0] == 200)  # background untouched
    assert tuple(image[50, 40]) == color_for(1 + 1000) and tuple(image[60, 150]) == \
        color_for(2 + 1000)
    with pytest.raises(DataError, match='size'):
        blend_class_mask(image, mask[:50], 0.5)
    canvas = np.zeros((100, 200, 3), np.uint8)
    draw_instance_outlines(canvas, instance_image(dets, mask, DET_LABELS, MASK_LABELS), dets,
                           thickness=1)
    edge = canvas[60, 115:125].astype(float).max(axis=0)  # across the car blob's left edge
    want = np.array(color_for(1002), float)
    # drawn in the car detection's colour (anti-aliased: a little darker)
    assert edge @ want / np.linalg.norm(edge) / np.linalg.norm(want) > 0.99
    assert not canvas[60:80, 140:170].any()  # outlines only, the inside stays empty
