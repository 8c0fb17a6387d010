"""Letterbox geometry: the forward map, its exact inverse, padding, stride and masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core import ConfigError, DataError
from edge_vision_core.inference.letterbox import (
    apply_letterbox,
    compute_letterbox,
    letterbox,
    mask_to_image,
)

SIZES = [  # (image W, H) -> (input W, H)
    ((640, 480), (416, 416)),
    ((480, 640), (416, 416)),
    ((451, 300), (416, 416)),
    ((1920, 1080), (640, 384)),
    ((100, 50), (320, 320)),
    ((416, 416), (416, 416)),
    ((333, 777), (300, 200)),
]


@pytest.mark.parametrize(('src', 'dst'), SIZES)
def test_plan_keeps_aspect_and_fits(src, dst):
    t = compute_letterbox(src, dst)
    nw, nh = t.resized_size
    assert nw <= dst[0] and nh <= dst[1]
    assert nw == dst[0] or nh == dst[1]  # touches one side
    assert abs(nw / nh - src[0] / src[1]) < 2.0 / min(nw, nh)  # aspect within rounding
    assert t.pad_x == (dst[0] - nw) // 2 and t.pad_y == (dst[1] - nh) // 2


@pytest.mark.parametrize(('src', 'dst'), SIZES)
def test_inverse_is_exact(src, dst):
    t = compute_letterbox(src, dst)
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1, (50, 2)) * np.array(src)
    boxes = np.concatenate([xy, xy + rng.uniform(1, 40, (50, 2))], axis=1)
    boxes = np.minimum(boxes, np.array(src * 2))
    back = t.model_to_image(t.image_to_model(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-3)


@pytest.mark.parametrize(('src', 'dst'), SIZES)
def test_pixels_land_where_the_transform_says(src, dst):
    """A white rectangle drawn in the image is found back at its place after the round trip."""
    w, h = src
    box = np.array([w * 0.3, h * 0.2, w * 0.7, h * 0.9]).round()
    image = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = box.astype(int)
    image[y1:y2, x1:x2] = 255
    boxed, t = letterbox(image, dst)
    ys, xs = np.nonzero(boxed > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = t.model_to_image(found)[0]
    # one model-input pixel of rounding at each edge, in image pixels
    tolerance = 1.0 / min(t.scale_x, t.scale_y) + 0.5
    np.testing.assert_allclose(back, box, atol=tolerance)


def test_padding_value_and_position():
    image = np.full((100, 200, 3), 200, np.uint8)
    boxed, t = letterbox(image, (320, 320), pad_value=114)
    assert boxed.shape == (320, 320, 3)
    assert t.pad_x == 0 and t.pad_y == 80 and t.resized_size == (320, 160)
    assert np.all(boxed[:80] == 114) and np.all(boxed[240:] == 114)
    assert np.all(boxed[80:240] == 200)
    top_left = compute_letterbox((200, 100), (320, 320), center=False)
    assert (top_left.pad_x, top_left.pad_y) == (0, 0)


def test_stride_alignment_shrinks_the_input():
    t = compute_letterbox((640, 480), (640, 640), stride=32)
    assert t.dst_size == (640, 480)
    t = compute_letterbox((640, 360), (640, 640), stride=32)
    assert t.dst_size == (640, 384) and t.pad_y == 12


def test_no_scale_up_and_stretch():
    small = compute_letterbox((100, 50), (320, 320), scale_up=False)
    assert small.resized_size == (100, 50) and small.scale_x == 1.0
    stretched = compute_letterbox((640, 480), (300, 300), keep_aspect=False)
    assert stretched.resized_size == (300, 300) and stretched.pad_x == stretched.pad_y == 0
    assert stretched.scale_x == pytest.approx(300 / 640)
    assert stretched.scale_y == pytest.approx(300 / 480)


def test_output_buffer_is_reused():
    image = np.zeros((480, 640, 3), np.uint8)
    t = compute_letterbox((640, 480), (416, 416))
    buf = np.empty((416, 416, 3), np.uint8)
    assert apply_letterbox(image, t, out=buf) is buf


@pytest.mark.parametrize('coarse', [1, 4])
@pytest.mark.parametrize(('src', 'dst'), SIZES[:4])
def test_mask_maps_back_onto_the_image(src, dst, coarse):
    w, h = src
    mask = np.zeros((h, w), np.uint8)
    mask[: h // 2, : w // 3] = 1
    mask[h // 2:, w // 2:] = 2
    boxed, t = letterbox(mask, dst, interpolation=cv2.INTER_NEAREST)
    if coarse > 1:
        boxed = boxed[coarse // 2::coarse, coarse // 2::coarse]
    back = mask_to_image(boxed, t)
    assert back.shape == (h, w) and back.dtype == np.uint8
    assert np.mean(back == mask) > 0.98


def test_bad_sizes_raise():
    with pytest.raises(ConfigError, match='positive'):
        compute_letterbox((0, 10), (416, 416))
    with pytest.raises(DataError, match='planned for'):
        apply_letterbox(np.zeros((10, 10), np.uint8), compute_letterbox((20, 10), (32, 32)))
