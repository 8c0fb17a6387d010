"""MOTChallenge files and tracking metrics (edge_vision_core.eval.mot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_vision_core import ConfigError, ConversionError, DataError, Detections
from edge_vision_core.eval.mot import (
    MotTable,
    detections_from_ground_truth,
    evaluate_tracking,
    hota_available,
    read_mot,
    write_mot,
)

motmetrics = pytest.importorskip('motmetrics')
DATA = Path(motmetrics.__file__).parent / 'data'


def random_table(n: int = 50, seed: int = 0) -> MotTable:
    rng = np.random.default_rng(seed)
    return MotTable(rng.integers(1, 20, n), rng.integers(1, 9, n),
                    np.round(rng.uniform(0, 500, (n, 4)), 2), np.round(rng.uniform(0, 1, n), 4))


def test_write_read_round_trip(tmp_path):
    table = random_table()
    path = tmp_path / 'tracks.txt'
    write_mot(path, table)
    back = read_mot(path)
    order = np.lexsort((table.ids, table.frames))
    np.testing.assert_array_equal(back.frames, table.frames[order])
    np.testing.assert_array_equal(back.ids, table.ids[order])
    np.testing.assert_allclose(back.boxes, table.boxes[order], atol=0.005)
    np.testing.assert_allclose(back.scores, table.scores[order], atol=5e-5)
    np.testing.assert_array_equal(back.extra, -1)
    first = path.read_text().splitlines()[0].split(',')
    assert len(first) == 10 and first[7:] == ['-1', '-1', '-1']


def test_reads_the_shipped_files_and_variants(tmp_path):
    gt = read_mot(DATA / 'TUD-Campus' / 'gt.txt')
    assert len(gt) == 359 and gt.num_frames == 71
    assert gt.boxes[0].tolist() == [399, 182, 121, 229] and gt.ids[0] == 1
    path = tmp_path / 'variants.txt'
    path.write_text('# a comment\n\n1 7 10 20 30 40\n2,-1,1.5,2.5,3,4,0.25,-1,-1,-1\n')
    table = read_mot(path)
    assert table.frames.tolist() == [1, 2] and table.ids.tolist() == [7, -1]
    assert table.scores.tolist() == [1.0, 0.25]  # a missing conf reads as 1
    np.testing.assert_allclose(table.boxes_xyxy[1], [1.5, 2.5, 4.5, 6.5])


@pytest.mark.parametrize(('text', 'match'), [
    ('1,1,10,20\n', r'bad.txt:1: 4 values'),
    ('1,1,10,20,30,40\n1,x,1,2,3,4\n', r'bad.txt:2: not a MOTChallenge line'),
    ('0,1,10,20,30,40\n', r'frames are 1-based'),
    ('1.5,1,10,20,30,40\n', r'frame must be an integer'),
])
def test_malformed_files_name_the_line(tmp_path, text, match):
    path = tmp_path / 'bad.txt'
    path.write_text(text)
    with pytest.raises(ConversionError, match=match):
        read_mot(path)


def test_missing_file_is_a_conversion_error(tmp_path):
    with pytest.raises(ConversionError, match='cannot read MOT file'):
        read_mot(tmp_path / 'nope.txt')


def test_frames_iterate_with_empty_ones_and_convert_boxes():
    table = MotTable([1, 3, 3], [-1, -1, -1], [[10, 20, 30, 40], [0, 0, 5, 5], [1, 1, 2, 2]],
                     [0.5, -1, 0.8])
    frames = list(table.iter_frames(default_score=0.9, last_frame=4))
    assert [f for f, _ in frames] == [1, 2, 3, 4]
    assert [len(d) for _, d in frames] == [1, 0, 2, 0]
    np.testing.assert_allclose(frames[0][1].boxes, [[10, 20, 40, 60]])
    np.testing.assert_allclose(frames[2][1].scores, [0.9, 0.8])
    assert frames[0][1].track_ids is None


def test_from_tracks_needs_track_ids():
    with pytest.raises(DataError, match='without track_ids'):
        MotTable.from_tracks([(1, Detections([[0, 0, 1, 1]], [1], [0]))])
    table = MotTable.from_tracks([(2, Detections([[10, 20, 40, 60]], [0.5], [0], [7]))])
    assert table.frames.tolist() == [2] and table.ids.tolist() == [7]
    np.testing.assert_allclose(table.boxes, [[10, 20, 30, 40]])


def test_perfect_tracks_score_one():
    gt = read_mot(DATA / 'TUD-Campus' / 'gt.txt')
    m = evaluate_tracking(gt, gt.select(np.arange(len(gt))), with_hota=hota_available())
    assert (m.mota, m.idf1, m.id_switches, m.motp, m.precision, m.recall) == (1, 1, 0, 1, 1, 1)
    if m.hota is not None:
        assert m.hota == pytest.approx(1.0) and m.assa == pytest.approx(1.0)


def test_counts_on_a_small_hand_made_case():
    """2 objects x 4 frames; the output misses one box, adds one and swaps an id once."""
    box_a, box_b = [0, 0, 10, 10], [100, 0, 10, 10]
    gt = MotTable([1, 1, 2, 2, 3, 3, 4, 4], [1, 2] * 4, [box_a, box_b] * 4, np.ones(8))
    res = MotTable([1, 1, 2, 3, 3, 3, 4, 4], [11, 12, 11, 11, 13, 99, 11, 13],
                   [box_a, box_b, box_a, box_a, box_b, [300, 300, 5, 5], box_a, box_b],
                   np.ones(8))
    m = evaluate_tracking(gt, res, with_hota=False)
    # misses: b in frame 2; false positives: the box at 300; switches: b 12 -> 13
    assert (m.misses, m.false_positives, m.id_switches) == (1, 1, 1)
    assert m.mota == pytest.approx(1 - 3 / 8)
    assert m.num_objects == 8 and m.num_predictions == 8 and m.num_frames == 4
    assert m.recall == pytest.approx(7 / 8) and m.precision == pytest.approx(7 / 8)


def test_iou_threshold_decides_a_match():
    gt = MotTable([1], [1], [[0, 0, 10, 10]], [1])
    res = MotTable([1], [5], [[4, 0, 10, 10]], [1])  # IoU 60/140 = 0.43
    assert evaluate_tracking(gt, res, 0.5, with_hota=False).misses == 1
    assert evaluate_tracking(gt, res, 0.4, with_hota=False).misses == 0
    with pytest.raises(ConfigError, match='iou_threshold'):
        evaluate_tracking(gt, res, 0.0)


def test_ignored_ground_truth_rows_do_not_count():
    gt = MotTable([1, 1], [1, 2], [[0, 0, 10, 10], [50, 50, 10, 10]], [1, 0])
    res = MotTable([1], [1], [[0, 0, 10, 10]], [1])
    m = evaluate_tracking(gt, res, with_hota=False)
    assert m.num_objects == 1 and m.misses == 0 and m.mota == 1.0


def test_shipped_tracker_output_scores_as_motmetrics_publishes():
    """motmetrics' own test expects these values for TUD-Campus test.txt vs gt.txt."""
    m = evaluate_tracking(read_mot(DATA / 'TUD-Campus' / 'gt.txt'),
                          read_mot(DATA / 'TUD-Campus' / 'test.txt'), with_hota=False)
    assert m.mota == pytest.approx(0.526462, abs=1e-6)
    assert m.idf1 == pytest.approx(0.557659, abs=1e-6)
    assert 1.0 - m.motp == pytest.approx(0.277201, abs=1e-6)
    assert (m.id_switches, m.false_positives, m.misses, m.fragmentations) == (7, 13, 150, 7)
    assert m.recall == pytest.approx(0.582173, abs=1e-6)
    assert m.precision == pytest.approx(0.941441, abs=1e-6)


@pytest.mark.skipif(not hota_available(), reason='trackeval not installed (HOTA)')
def test_hota_separates_detection_from_association():
    gt = read_mot(DATA / 'TUD-Campus' / 'gt.txt')
    shuffled = gt.select(np.arange(len(gt)))
    shuffled.ids = np.where(gt.frames % 2 == 0, gt.ids + 100, gt.ids)  # ids flip every frame
    m = evaluate_tracking(gt, shuffled)
    assert m.deta == pytest.approx(1.0)
    assert m.assa < 0.7 and m.hota < 0.85


def test_detections_from_ground_truth():
    gt = read_mot(DATA / 'TUD-Campus' / 'gt.txt')
    clean = detections_from_ground_truth(gt)
    assert np.all(clean.ids == -1) and np.all(clean.scores == 1.0)
    order = np.argsort(gt.frames, kind='stable')
    np.testing.assert_allclose(clean.boxes, gt.boxes[order])
    kwargs = {'drop': 0.2, 'jitter': 0.05, 'false_positives': 2.0, 'low_score_fraction': 0.3}
    a = detections_from_ground_truth(gt, seed=3, **kwargs)
    b = detections_from_ground_truth(gt, seed=3, **kwargs)
    c = detections_from_ground_truth(gt, seed=4, **kwargs)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert len(a) != len(c) or not np.array_equal(a.boxes, c.boxes)
    # about 80 % of the true boxes plus about 2 false ones per frame
    assert 0.7 * len(gt) + 100 < len(a) < 0.9 * len(gt) + 190
    assert np.all(np.diff(a.frames) >= 0) and np.all(a.boxes[:, 2:] >= 1)
    with pytest.raises(ConfigError, match='drop must be in'):
        detections_from_ground_truth(gt, drop=1.5)
