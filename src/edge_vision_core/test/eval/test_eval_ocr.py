"""OCR scoring (word accuracy, 1 - CER) and the rendered text scenes."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core.eval.ocr import (
    edit_distance,
    match_lines,
    normalize_text,
    score_image,
    sum_scores,
)


def box(x, y, w=100, h=20):
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)


@pytest.mark.parametrize('a, b, distance', [
    ('', '', 0), ('abc', '', 3), ('kitten', 'sitting', 3), ('EXIT', 'EXlT', 1),
    ('ab', 'ba', 2), ('Bay 31', 'Bay31', 1),
])
def test_edit_distance(a, b, distance):
    assert edit_distance(a, b) == edit_distance(b, a) == distance


def test_normalize_folds_width_and_spaces():
    assert normalize_text(' Ｒｏｏｍ\u3000１２：  A ') == 'Room 12: A'


def test_match_by_place_not_order():
    truth = [box(0, 0), box(0, 100)]
    predicted = [box(5, 102, 90), box(300, 300), box(-3, -4, 106, 28)]
    assert match_lines(truth, predicted).tolist() == [1, -1, 0]


@pytest.mark.parametrize('predicted, words, chars, exact', [
    ([('EMERGENCY EXIT', box(0, 0))], 2, 14, 1),
    ([('EMERGENCYEXIT', box(0, 0))], 0, 13, 0),            # a lost space costs both words
    ([('EXIT', box(60, 0, 40)), ('EMERGENCY', box(0, 0, 55))], 2, 14, 1),  # split, re-joined
    ([('EMERGENCY EXlT', box(0, 0))], 1, 13, 0),
    ([], 0, 0, 0),
])
def test_score_one_line(predicted, words, chars, exact):
    score = score_image([('EMERGENCY EXIT', box(0, 0))], predicted)
    assert score.words == 2 and score.words_found == words
    assert score.chars == 14 and score.chars - score.char_errors == chars
    assert score.lines_exact == exact


def test_unmatched_predictions_cost_precision_not_accuracy():
    truth = [('Bay 31', box(0, 0))]
    score = score_image(truth, [('Bay 31', box(0, 0)), ('noise here', box(400, 400))])
    assert score.word_accuracy == 1.0 and score.word_precision == pytest.approx(0.5)
    total = sum_scores([score, score_image(truth, [])])
    assert total.words == 4 and total.words_found == 2 and total.char_accuracy == 0.5
    assert set(total.as_dict()) >= {'word_accuracy', 'char_accuracy', 'word_precision'}


def need_scenes():
    """Skip where the text scenes cannot be rendered (no Pillow, scikit-image or font)."""
    pytest.importorskip('PIL')
    pytest.importorskip('skimage.data')
    from edge_vision_core import ConfigError
    from edge_vision_core.eval.text_scenes import font_paths

    try:
        font_paths()
    except ConfigError as exc:
        pytest.skip(str(exc))


def test_scenes_are_reproducible_with_ground_truth_inside_the_image():
    need_scenes()
    from edge_vision_core.eval.text_scenes import make_scene, make_split

    a, b = make_scene(7), make_scene(7)
    assert np.array_equal(a.image, b.image) and a.info == b.info
    assert not np.array_equal(a.image, make_scene(8).image)
    scene = make_scene(11, (640, 480), objects=3)
    h, w = scene.image.shape[:2]
    assert (w, h) == (640, 480) and scene.image.dtype == np.uint8 and scene.lines
    for line in scene.lines:
        assert line.text.strip() and line.polygon.shape == (4, 2)
        assert (line.polygon >= 0).all() and (line.polygon[:, 0] <= w).all()
        assert (line.polygon[:, 1] <= h).all()
    with pytest.raises(ValueError, match='unknown split'):
        make_split('train')


def test_split_round_trip_through_files(tmp_path):
    need_scenes()
    import cv2

    from edge_vision_core.eval.text_scenes import make_scene, read_ground_truth, write_split

    scenes = [make_scene(3, (320, 240), objects=1), make_scene(4, (320, 240), objects=1)]
    target = write_split(scenes, tmp_path)
    truth = read_ground_truth(target)
    assert sorted(truth) == ['000003.png', '000004.png']
    assert [t.text for t in truth['000003.png']] == [line.text for line in scenes[0].lines]
    assert cv2.imread(str(tmp_path / '000004.png')).shape == (240, 320, 3)
