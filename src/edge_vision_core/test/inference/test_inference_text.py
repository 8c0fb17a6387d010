"""Text-model post-processing on constructed arrays: DB boxes, quads, crops, batching, CTC."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge_vision_core import ModelError
from edge_vision_core.inference.text import (
    batch_by_width,
    crop_quad,
    ctc_greedy_decode,
    db_boxes,
    decode_ctc_text,
    decode_text_direction,
    line_tensor,
    merge_line_pieces,
    order_quad,
    read_dictionary,
    reading_order,
    scaled_input_size,
)

# -- DB box extraction ------------------------------------------------------------------------


def prob_map(shape=(120, 200), rects=(), value=0.9):
    """A probability map with filled (possibly rotated) rectangles ((cx, cy), (w, h), angle)."""
    prob = np.full(shape, 0.02, np.float32)
    for rect in rects:
        cv2.fillPoly(prob, [np.round(cv2.boxPoints(rect)).astype(np.int32)], value)
    return prob


def test_db_box_grows_the_shrunk_region_by_the_unclip_distance():
    # a 60 x 10 text kernel centred at (100.5, 50.5) in pixel-centre terms: rows 46-55, cols
    # 71-130, i.e. corner coordinates x 71..131, y 46..56
    prob = np.full((100, 200), 0.01, np.float32)
    prob[46:56, 71:131] = 0.95
    quads, scores = db_boxes(prob, unclip_ratio=1.5, dilate=False)
    assert quads.shape == (1, 4, 2) and scores[0] == pytest.approx(0.95, abs=1e-3)
    # minAreaRect of the contour through pixel centres is 59 x 9; grow = A * r / L
    w, h = 59.0, 9.0
    grow = w * h * 1.5 / (2 * (w + h))
    x0, y0 = quads[0].min(axis=0)
    x1, y1 = quads[0].max(axis=0)
    assert x1 - x0 == pytest.approx(w + 2 * grow, abs=0.01)
    assert y1 - y0 == pytest.approx(h + 2 * grow, abs=0.01)
    assert (x0 + x1) / 2 == pytest.approx(101.0, abs=0.01)  # corner coordinates: centre 101
    assert (y0 + y1) / 2 == pytest.approx(51.0, abs=0.01)
    np.testing.assert_allclose(quads[0][0], [x0, y0], atol=0.01)  # starts top-left, clockwise
    np.testing.assert_allclose(quads[0][2], [x1, y1], atol=0.01)


@pytest.mark.parametrize('case, kwargs, count', [
    ('two lines', {}, 2),
    ('weak region under the box threshold', {'box_threshold': 0.95}, 0),
    ('binarize above every pixel', {'bin_threshold': 0.99}, 0),
    ('at most one candidate: the larger', {'max_candidates': 1}, 1),
])
def test_db_filters(case, kwargs, count):
    prob = prob_map(rects=[((60, 30), (80, 12), 0), ((120, 90), (100, 16), 0)])
    quads, scores = db_boxes(prob, **kwargs)
    assert len(quads) == len(scores) == count, case
    if case.startswith('at most'):
        assert quads[0][:, 1].mean() == pytest.approx(90.5, abs=1)  # the 100 x 16 one


def test_db_drops_specks_and_keeps_rotated_lines():
    prob = prob_map(rects=[((100, 60), (120, 14), -20)])
    prob[5:7, 5:7] = 0.9  # a 2 x 2 speck: below min_size
    quads, _ = db_boxes(prob)
    assert len(quads) == 1
    top = quads[0][1] - quads[0][0]
    assert math.degrees(math.atan2(top[1], top[0])) == pytest.approx(-20, abs=2)


def test_db_empty_and_malformed_maps():
    quads, scores = db_boxes(np.zeros((1, 1, 64, 64), np.float32))
    assert quads.shape == (0, 4, 2) and scores.shape == (0,)
    quads, _ = db_boxes(np.full((32, 32), np.nan, np.float32))
    assert len(quads) == 0
    with pytest.raises(ModelError, match='probability map'):
        db_boxes(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ModelError, match='probability map'):
        db_boxes(np.zeros((0, 5), np.float32))


def test_db_text_adapter_gives_quads_as_keypoints_in_input_pixels():
    from edge_vision_core.inference.adapters import DecodeContext, get_adapter
    from edge_vision_core.inference.manifest import ModelManifest

    manifest = ModelManifest.from_dict({'name': 'db', 'adapter': 'db_text', 'file': 'db.onnx',
                                        'input_size': [128, 64], 'labels': ['text'],
                                        'unclip_ratio': 1.0})
    prob = prob_map((64, 128), rects=[((32, 32), (40, 10), 0), ((100, 20), (30, 8), 0)])
    decoded = get_adapter('db_text').decode([prob[None, None]], DecodeContext(manifest, 0.5))
    cand = decoded.candidates
    assert cand.nms_done and cand.keypoints.shape == (2, 4, 2)
    assert cand.class_ids.tolist() == [0, 0] and cand.scores.min() > 0.7
    np.testing.assert_allclose(cand.boxes[:, :2], cand.keypoints.min(axis=1))
    np.testing.assert_allclose(cand.boxes[:, 2:], cand.keypoints.max(axis=1))
    left = int(np.argmin(cand.boxes[:, 0]))
    assert cand.keypoints[left][:, 0].mean() == pytest.approx(32.5, abs=1.0)


# -- geometry -------------------------------------------------------------------------------

@pytest.mark.parametrize('size, limit, multiple, expected', [
    ((960, 720), 960, 32, (960, 736)),
    ((1920, 1080), 960, 32, (960, 544)),
    ((200, 50), 960, 32, (960, 256)),       # small images are scaled up
    ((1, 1), 960, 32, (960, 960)),
    ((5000, 10), 640, 32, (640, 32)),       # never below one multiple
])
def test_scaled_input_size(size, limit, multiple, expected):
    assert scaled_input_size(size, limit, multiple) == expected


@pytest.mark.parametrize('shuffle', [(0, 1, 2, 3), (2, 0, 3, 1), (3, 2, 1, 0)])
def test_order_quad_starts_top_left_clockwise(shuffle):
    quad = np.array([[10, 20], [110, 5], [115, 40], [15, 55]], np.float32)
    np.testing.assert_array_equal(order_quad(quad[list(shuffle)]), quad)


def test_reading_order_rows_then_columns():
    def box(x, y, w=50, h=20):
        return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    quads = np.array([box(200, 100), box(10, 104), box(10, 10), box(120, 12, h=18)],
                     np.float32)
    assert reading_order(quads).tolist() == [2, 3, 1, 0]
    assert reading_order(np.zeros((0, 4, 2), np.float32)).tolist() == []


# -- crops and batches --------------------------------------------------------------------------

def test_crop_quad_rectifies_a_rotated_line():
    image = np.full((200, 300, 3), 255, np.uint8)
    cv2.putText(image, 'ABC', (60, 110), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 5)
    rot = cv2.getRotationMatrix2D((150, 100), 30, 1.0)
    turned = cv2.warpAffine(image, rot, (300, 200), borderValue=(255, 255, 255))
    quad = np.array([[50, 50], [230, 50], [230, 125], [50, 125]], np.float32)
    quad = cv2.transform(quad[None], rot)[0]
    crop = crop_quad(turned, order_quad(quad))
    straight = image[50:125, 50:230]
    assert crop.shape[:2] == straight.shape[:2]
    assert np.abs(crop.astype(int) - straight.astype(int)).mean() < 12
    scaled = crop_quad(turned, order_quad(quad), height=48)
    assert scaled.shape[0] == 48 and scaled.shape[1] == math.ceil(180 * 48 / 75)


def test_crop_quad_turns_vertical_lines():
    image = np.zeros((100, 100, 3), np.uint8)
    quad = np.array([[40, 10], [60, 10], [60, 90], [40, 90]], np.float32)
    assert crop_quad(image, quad).shape[:2] == (20, 80)


def test_line_tensor_pads_on_the_right_with_the_normalised_mean():
    crops = [np.full((24, 40, 3), 255, np.uint8), np.full((48, 30, 3), 0, np.uint8)]
    tensor, widths = line_tensor(crops, 48, 80, (127.5,) * 3, (127.5,) * 3)
    assert tensor.shape == (2, 3, 48, 80) and widths.tolist() == [80, 30]
    assert np.allclose(tensor[0], 1.0)
    assert np.allclose(tensor[1, :, :, :30], -1.0) and np.allclose(tensor[1, :, :, 30:], 0.0)
    tensor, widths = line_tensor(crops, 48, 500, (0,) * 3, (1,) * 3, max_width=64)
    assert tensor.shape[3] == 64 and widths.tolist() == [64, 30]


def test_batch_by_width_groups_similar_widths():
    batches = batch_by_width([100, 30, 310, 40, 35, 300, 90], max_batch=2)
    assert [b.tolist() for b in batches] == [[1, 4], [3], [6, 0], [5, 2]]
    assert sorted(i for b in batch_by_width([50] * 5, 2) for i in b) == list(range(5))


# -- CTC and direction --------------------------------------------------------------------------

DICT = ('a', 'b', 'c', ' ')


def scores_of(path, space_gap=(), classes=5, peak=0.9):
    """(1, T, C) probabilities whose best class per step is ``path`` (0 = blank)."""
    out = np.full((1, len(path), classes), (1 - peak) / (classes - 1), np.float32)
    for t, k in enumerate(path):
        out[0, t, k] = peak
    for t, p in space_gap:
        out[0, t, 4] = p
        out[0, t, 0] = 1 - p - 3 * (1 - peak) / (classes - 1)
    return out


@pytest.mark.parametrize('path, text', [
    ([1, 1, 0, 1, 2, 2, 0], 'aab'),       # repeats merge, a blank separates a doubled letter
    ([0, 0, 0], ''),
    ([3, 0, 4, 0, 1], 'c a'),             # the space class itself
])
def test_ctc_greedy(path, text):
    (decoded, score), = ctc_greedy_decode(scores_of(path), DICT)
    assert decoded == text
    assert score == (pytest.approx(0.9) if text else 0.0)


def test_ctc_gap_spaces_and_steps():
    probs = scores_of([1, 0, 0, 0, 2, 0, 3], space_gap=[(2, 0.2)])
    assert ctc_greedy_decode(probs, DICT)[0][0] == 'abc'
    assert ctc_greedy_decode(probs, DICT, space_threshold=0.1)[0][0] == 'a bc'
    assert ctc_greedy_decode(probs, DICT, space_threshold=0.3)[0][0] == 'abc'
    assert ctc_greedy_decode(probs, DICT, steps=[5])[0][0] == 'ab'
    # decode_ctc_text: steps from widths (T / W steps per pixel, plus one)
    assert decode_ctc_text([probs], DICT, widths=[32], input_width=56)[0][0] == 'ab'
    assert decode_ctc_text([probs], DICT, widths=[24], input_width=56)[0][0] == 'a'


def test_ctc_logits_and_wrong_dictionary():
    logits = np.log(scores_of([1, 0, 2]))
    assert ctc_greedy_decode(logits * 3 + 7, DICT)[0][0] == 'ab'
    with pytest.raises(ModelError, match='dictionary does not belong'):
        ctc_greedy_decode(scores_of([1]), DICT[:2])


def test_direction():
    angles, probs = decode_text_direction([np.array([[0.8, 0.2], [0.05, 0.95]])], ['0', '180'])
    assert angles.tolist() == [0, 180] and probs.tolist() == pytest.approx([0.8, 0.95])
    with pytest.raises(ModelError, match='expected'):
        decode_text_direction([np.zeros((2, 3))], ['0', '180'])
    with pytest.raises(ModelError, match='degrees'):
        decode_text_direction([np.zeros((1, 2))], ['up', 'down'])


def test_read_dictionary_keeps_whitespace_entries(tmp_path):
    path = tmp_path / 'keys.txt'
    path.write_bytes('a\r\n\u3000\n \nb\n'.encode())
    assert read_dictionary(path) == ('a', '\u3000', ' ', 'b')
    path.write_bytes(b'a\n\nb\n')
    with pytest.raises(ModelError, match='empty entries at line'):
        read_dictionary(path)
    path.write_bytes(b'\xff\xfe')
    with pytest.raises(ModelError, match='UTF-8'):
        read_dictionary(path)
    with pytest.raises(ModelError, match='cannot read'):
        read_dictionary(tmp_path / 'missing.txt')


def test_merge_joins_the_words_of_a_line_only():
    def quad(x, y, w, h=20.0, angle=0.0):
        return order_quad(cv2.boxPoints(((x + w / 2, y + h / 2), (w, h), angle)))

    quads = np.stack([quad(0, 0, 60), quad(68, 1, 40),     # one line: gap 8 < 0.6 x 20
                      quad(160, 0, 50),                      # gap 52: another word group
                      quad(0, 40, 60), quad(70, 40, 50, h=8),  # heights differ
                      quad(0, 100, 60), quad(40, 130, 60)])  # another line below
    scores = np.array([0.9, 0.6, 0.8, 0.7, 0.7, 0.5, 0.5], np.float32)
    merged, merged_scores = merge_line_pieces(quads, scores)
    assert len(merged) == 6
    np.testing.assert_allclose(merged[0], [[0, 0], [108, 0], [108, 21], [0, 21]], atol=1e-4)
    assert merged_scores[0] == pytest.approx((0.9 * 60 + 0.6 * 40) / 100)
    same, _ = merge_line_pieces(quads, scores, gap=0)
    assert len(same) == 7
    tilted = np.stack([quad(0, 0, 60, angle=20), quad(0, 0, 60, angle=-20)])
    assert len(merge_line_pieces(tilted, scores[:2])[0]) == 2
