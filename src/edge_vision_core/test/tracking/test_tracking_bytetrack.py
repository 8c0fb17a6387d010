"""ByteTracker: state machine, occlusions, ids, invalid input, time handling, configuration."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edge_vision_core import ConfigError, DataError, Detections
from edge_vision_core.tracking import ByteTrackConfig, ByteTracker, TrackState


def boxes_at(centres, size=(30.0, 60.0), scores=None, classes=None) -> Detections:
    """Detections with the given centres (K, 2), one fixed box size."""
    c = np.asarray(centres, float).reshape(-1, 2)
    half = np.asarray(size, float) / 2
    n = len(c)
    return Detections(np.concatenate([c - half, c + half], axis=1),
                      np.full(n, 0.9) if scores is None else scores,
                      np.zeros(n) if classes is None else classes)


def ids_of(out: Detections) -> list[int]:
    return out.track_ids.tolist()


def make(**kwargs) -> ByteTracker:
    return ByteTracker(ByteTrackConfig(**kwargs))


# ------------------------------------------------------------------------ configuration ---

@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'frame_rate': 0.0}, 'frame_rate must be in'),
    ({'high_threshold': 1.5}, 'high_threshold must be in'),
    ({'low_threshold': 0.6}, 'low_threshold .* must not exceed high_threshold'),
    ({'new_track_threshold': 0.4}, 'new_track_threshold .* must be >= high_threshold'),
    ({'min_hits': 0}, 'min_hits must be in'),
    ({'camera_motion': 'gyro'}, "camera_motion must be one of 'none'"),
    ({'output_boxes': 'raw'}, 'output_boxes must be one of'),
    ({'lost_timeout_s': float('nan')}, 'lost_timeout_s must be finite'),
    ({'fuse_score': 1}, 'fuse_score must be bool'),
])
def test_invalid_config_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ByteTrackConfig(**kwargs)


def test_bad_arguments_are_refused():
    tracker = make()
    with pytest.raises(DataError, match='needs Detections'):
        tracker.update(np.zeros((1, 4)))
    with pytest.raises(ConfigError, match='timestamp_s or dt_s, not both'):
        tracker.update(Detections.empty(), 1.0, dt_s=0.1)
    with pytest.raises(DataError, match='must be finite'):
        tracker.update(Detections.empty(), float('inf'))
    with pytest.raises(ConfigError, match='ByteTrackConfig'):
        ByteTracker({'frame_rate': 30})


# -------------------------------------------------------------------------- basic flow ---

def test_moving_object_keeps_its_id_and_output_follows_the_input():
    tracker = make()
    for t in range(30):
        dets = boxes_at([[100 + 5 * t, 200 - 2 * t]])
        out = tracker.update(dets)
        assert ids_of(out) == [1]
        np.testing.assert_array_equal(out.boxes, dets.boxes)  # output_boxes='detection'
        assert out.track_ids.dtype == np.int64
    assert tracker.stats.tracks_started == 1


def test_output_rows_follow_input_order_and_map_back():
    tracker = make()
    centres = [[100, 100], [300, 100], [500, 100]]
    tracker.update(boxes_at(centres))
    shuffled = boxes_at([centres[2], centres[0], centres[1]], scores=[0.7, 0.8, 0.9])
    out = tracker.update(shuffled)
    assert ids_of(out) == [3, 1, 2]
    assert tracker.last_input_indices.tolist() == [0, 1, 2]
    np.testing.assert_allclose(out.scores, [0.7, 0.8, 0.9])


@pytest.mark.parametrize('min_hits', [2, 3])
def test_tentative_then_confirmed_after_min_hits(min_hits):
    tracker = make(min_hits=min_hits)
    tracker.update(boxes_at([[100, 100]]))  # first image: confirmed at once
    reported = []
    for _ in range(5):
        out = tracker.update(boxes_at([[100, 100], [400, 300]]))
        reported.append(ids_of(out))
    # the object that appeared in the second image is reported from its min_hits-th detection
    assert all(r == [1] for r in reported[:min_hits - 1])
    assert all(r == [1, 2] for r in reported[min_hits - 1:])


def test_tentative_track_that_misses_a_frame_is_removed():
    tracker = make()
    tracker.update(boxes_at([[100, 100]]))
    tracker.update(boxes_at([[100, 100], [400, 300]]))  # id 2 tentative
    states = {t.track_id: t.state for t in tracker.tracks(include_tentative=True)}
    assert states == {1: TrackState.CONFIRMED, 2: TrackState.TENTATIVE}
    tracker.update(boxes_at([[100, 100]]))  # id 2 missed -> removed
    assert [t.track_id for t in tracker.tracks(include_tentative=True)] == [1]
    tracker.update(boxes_at([[100, 100], [400, 300]]))
    out = tracker.update(boxes_at([[100, 100], [400, 300]]))
    assert ids_of(out) == [1, 3]  # a new id; 2 is never reused


@pytest.mark.parametrize('frame_rate', [10.0, 30.0])
def test_lost_buffer_scales_with_frame_rate(frame_rate):
    """Lost for lost_timeout_s * frame_rate frames: re-found; one frame more: removed."""
    buffer_frames = int(round(1.0 * frame_rate))
    for gap, same in [(buffer_frames, True), (buffer_frames + 1, False)]:
        tracker = make(frame_rate=frame_rate, lost_timeout_s=1.0)
        for _ in range(5):
            tracker.update(boxes_at([[200, 200]]))
        for k in range(gap - 1):
            assert len(tracker.update(Detections.empty())) == 0
            if k == 0:
                assert tracker.tracks()[0].state == TrackState.LOST
        tracker.update(boxes_at([[200, 200]]))  # tentative if the old track was removed
        out = tracker.update(boxes_at([[200, 200]]))
        assert ids_of(out) == ([1] if same else [2]), f'gap {gap} frames'


def test_id_survives_a_short_occlusion_of_a_moving_object():
    """Object B walks behind nothing for 8 frames (no detection) and comes back further on."""
    tracker = make()
    seen = {}
    for t in range(40):
        a = [100 + 4 * t, 300]
        b = [600 - 6 * t, 150]
        centres = [a] if 15 <= t < 23 else [a, b]
        out = tracker.update(boxes_at(centres))
        for box, tid in zip(out.boxes, out.track_ids, strict=True):
            seen.setdefault('a' if box[1] > 200 else 'b', set()).add(int(tid))
    assert seen == {'a': {1}, 'b': {2}}


def test_crossing_objects_keep_their_ids():
    tracker = make()
    history = {1: [], 2: []}
    for t in range(40):
        left, right = [100 + 10 * t, 200], [500 - 10 * t, 200 + t]
        out = tracker.update(boxes_at([left, right]))
        for box, tid in zip(out.boxes, out.track_ids, strict=True):
            history[int(tid)].append(float(box[0] + box[2]) / 2)
    # id 1 started on the left and must still be moving right at the end
    assert history[1][0] < history[1][-1] and history[2][0] > history[2][-1]


def test_two_instances_have_independent_id_counters():
    first, second = make(), make()
    for t in range(5):
        a = first.update(boxes_at([[100, 100 + t], [300, 100], [500, 100]]))
        b = second.update(boxes_at([[50, 400 + t]]))
    assert ids_of(a) == [1, 2, 3]
    assert ids_of(b) == [1]
    for _ in range(3):
        first.update(boxes_at([[100, 100], [300, 100], [500, 100], [700, 300]]))
    assert second.stats.tracks_started == 1
    assert ids_of(second.update(boxes_at([[50, 405]]))) == [1]


def test_config_can_change_at_run_time_and_keeps_the_tracks():
    from dataclasses import replace

    tracker = make(min_hits=5)
    for _ in range(3):
        tracker.update(boxes_at([[100, 100]]))
    tracker.config = replace(tracker.config, min_hits=2, kalman_std_position=0.1,
                             camera_motion='sparse_flow')
    assert tracker._cmc is not None and tracker._kf.std_position == 0.1
    tracker.update(boxes_at([[300, 300]]))  # new object: tentative
    out = tracker.update(boxes_at([[300, 300]]))  # confirmed after 2 hits under new setting
    assert ids_of(out) == [2] and tracker.stats.tracks_started == 2
    tracker.config = replace(tracker.config, camera_motion='none')
    assert tracker._cmc is None
    with pytest.raises(ConfigError, match='needs a ByteTrackConfig'):
        tracker.config = {'min_hits': 1}


def test_reset_restarts_ids_unless_asked_to_keep_counting():
    tracker = make()
    for _ in range(3):
        tracker.update(boxes_at([[100, 100], [300, 300]]))
    tracker.reset()
    assert tracker.tracks() == [] and tracker.stats.frames == 0
    assert ids_of(tracker.update(boxes_at([[100, 100]]))) == [1]
    tracker.reset(keep_id_counter=True)
    assert ids_of(tracker.update(boxes_at([[100, 100]]))) == [2]


# -------------------------------------------------------------------- scores and classes ---

def test_low_score_detections_extend_tracks_but_do_not_start_them():
    tracker = make()
    for _ in range(3):
        tracker.update(boxes_at([[100, 100]], scores=[0.9]))
    for _ in range(5):  # occluded: the detector is unsure
        out = tracker.update(boxes_at([[100, 100], [400, 400]], scores=[0.3, 0.3]))
        assert ids_of(out) == [1]
    # without the second stage (low threshold raised to the high one) the track is lost
    strict = make(low_threshold=0.5)
    for _ in range(3):
        strict.update(boxes_at([[100, 100]], scores=[0.9]))
    assert len(strict.update(boxes_at([[100, 100]], scores=[0.3]))) == 0
    assert strict.stats.dropped_low_score == 1


@pytest.mark.parametrize(('agnostic', 'expected'), [(False, [2]), (True, [1])])
def test_per_class_or_class_agnostic_matching(agnostic, expected):
    tracker = make(class_agnostic=agnostic)
    for _ in range(3):
        tracker.update(boxes_at([[100, 100]], classes=[0]))
    tracker.update(boxes_at([[100, 100]], classes=[5]))
    out = tracker.update(boxes_at([[100, 100]], classes=[5]))
    assert ids_of(out) == expected
    assert out.class_ids.tolist() == [5]


def test_same_place_different_classes_are_two_tracks():
    tracker = make()
    for _ in range(3):
        out = tracker.update(boxes_at([[100, 100], [100, 100]], classes=[0, 1]))
    assert sorted(ids_of(out)) == [1, 2]
    assert dict(zip(out.track_ids.tolist(), out.class_ids.tolist(), strict=True)) == {1: 0, 2: 1}


# ----------------------------------------------------------------------- invalid input ---

def test_empty_frames_age_and_finally_remove_tracks():
    tracker = make(frame_rate=10, lost_timeout_s=0.5)
    tracker.update(boxes_at([[100, 100], [200, 200]]))
    for _ in range(5):
        out = tracker.update(Detections.empty())
        assert len(out) == 0 and out.track_ids is not None
    assert len(tracker.tracks()) == 2
    tracker.update(Detections.empty())
    assert tracker.tracks() == [] and tracker.stats.tracks_removed == 2


def test_nan_inf_and_zero_area_boxes_are_dropped_and_counted():
    tracker = make()
    good = boxes_at([[100, 100], [300, 300]])
    bad = Detections([[np.nan, 0, 10, 10], [0, 0, np.inf, 5], [5, 5, 5, 20], [9, 9, 3, 3]],
                     [0.9, 0.9, 0.9, 0.9], [0, 0, 0, 0])
    mixed = Detections.concatenate([bad[:2], good[:1], bad[2:], good[1:]])
    mixed.scores[-1] = 0.95
    for _ in range(2):
        out = tracker.update(mixed)
    assert ids_of(out) == [1, 2]
    assert tracker.last_input_indices.tolist() == [2, 5]
    np.testing.assert_array_equal(out.boxes, good.boxes)
    assert tracker.stats.dropped_invalid == 8
    nan_score = Detections([[0, 0, 10, 10]], [np.nan], [0])
    tracker.update(nan_score)
    assert tracker.stats.dropped_invalid == 9


def test_masks_and_keypoints_pass_through_with_the_rows():
    tracker = make()
    dets = boxes_at([[20, 20], [60, 60]])
    masks = np.zeros((2, 100, 100), bool)
    masks[0, :10], masks[1, -10:] = True, True
    points = np.array([[[21, 22], [23, 24]], [[61, 62], [63, 64]]], np.float32)
    out = tracker.update(dets.replace(masks=masks, keypoints=points))
    np.testing.assert_array_equal(out.masks, masks)
    np.testing.assert_array_equal(out.keypoints, points[tracker.last_input_indices])


def test_filtered_boxes_are_kalman_estimates():
    tracker = make(output_boxes='filtered')
    rng = np.random.default_rng(0)
    errors = []
    for t in range(30):
        truth = np.array([100.0 + 3 * t, 100.0])
        noisy = truth + rng.normal(0, 2, 2)
        out = tracker.update(boxes_at([noisy]))
        centre = (out.boxes[0, :2] + out.boxes[0, 2:]) / 2
        if t > 10:
            errors.append(np.linalg.norm(centre - truth) - np.linalg.norm(noisy - truth))
    assert np.mean(errors) < 0  # smoother than the raw detections


# ------------------------------------------------------------------------------- time ---

def test_time_jump_is_predicted_with_the_real_dt():
    """10 px per frame at 10 Hz; the camera skips 0.9 s: the track must be found 90 px on."""
    def run(use_stamps: bool) -> list[int]:
        tracker = make(frame_rate=10.0, lost_timeout_s=2.0)
        out = None
        for t in list(range(10)) + [19, 20]:
            stamp = t / 10.0 if use_stamps else None
            out = tracker.update(boxes_at([[100 + 10 * t, 200]]), stamp)
        return ids_of(out)

    assert run(use_stamps=True) == [1]
    assert run(use_stamps=False) == [2]  # without the real dt the prediction lags behind


def test_time_jump_beyond_the_lost_timeout_removes_tracks():
    tracker = make(frame_rate=10.0, lost_timeout_s=1.0)
    for t in range(5):
        tracker.update(boxes_at([[100, 200]]), 100.0 + t / 10)
    tracker.update(boxes_at([[100, 200]]), 200.0)
    out = tracker.update(boxes_at([[100, 200]]), 200.1)
    assert ids_of(out) == [2]
    assert tracker.stats.tracks_removed == 1


def test_dt_s_equals_timestamps():
    a, b = make(frame_rate=10.0), make(frame_rate=10.0)
    for t in range(8):
        dets = boxes_at([[100 + 7 * t, 200]])
        out_a = a.update(dets, t * 0.25)
        out_b = b.update(dets, dt_s=0.25)
    np.testing.assert_allclose(a.tracks()[0].box, b.tracks()[0].box)
    np.testing.assert_allclose(a.tracks()[0].velocity, [7 / 0.25, 0], atol=2.0)
    assert ids_of(out_a) == ids_of(out_b) == [1]


@pytest.mark.parametrize('bad_stamp', [1.2, 1.1, 0.0])
def test_repeated_or_out_of_order_stamps_are_ignored(bad_stamp, caplog):
    tracker = make(frame_rate=10.0)
    for t in range(3):
        tracker.update(boxes_at([[100 + 5 * t, 200]]), 1.0 + t / 10)
    before = [(t.track_id, t.box.tolist()) for t in tracker.tracks()]
    with caplog.at_level(logging.WARNING, logger='edge_vision_core.tracking.bytetrack'):
        out = tracker.update(boxes_at([[500, 500], [100, 100]]), bad_stamp)
    assert len(out) == 0 and out.track_ids is not None
    assert not tracker.last_update_accepted
    assert tracker.stats.ignored_stamps == 1 and tracker.stats.frames == 3
    assert 'frame ignored' in caplog.text
    assert [(t.track_id, t.box.tolist()) for t in tracker.tracks()] == before
    out = tracker.update(boxes_at([[115, 200]]), 1.3)
    assert tracker.last_update_accepted and ids_of(out) == [1]
    tracker.update(Detections.empty(), dt_s=0.0)
    assert tracker.stats.ignored_stamps == 2


@pytest.mark.parametrize('bogus_ahead_s', [86400.0, 60.0])
def test_a_bogus_future_stamp_does_not_blind_the_tracker(bogus_ahead_s, caplog):
    """One message stamped far ahead used to make every real frame 'not after the previous
    stamp' until restart; the large jump back now restarts the clock (tracks reset, ids go
    on), counted in time_resets."""
    tracker = make(frame_rate=10.0)
    for t in range(3):
        tracker.update(boxes_at([[100 + 5 * t, 200]]), 1000.0 + t / 10)
    tracker.update(boxes_at([[300, 300]]), 1000.2 + bogus_ahead_s)
    with caplog.at_level(logging.WARNING, logger='edge_vision_core.tracking.bytetrack'):
        out = tracker.update(boxes_at([[115, 200]]), 1000.3)
    assert tracker.last_update_accepted
    assert tracker.stats.time_resets == 1 and tracker.stats.ignored_stamps == 0
    assert 'clock jumped back' in caplog.text
    first_id = ids_of(out)[0]
    assert first_id > 1, 'ids keep counting after the reset'
    out = tracker.update(boxes_at([[120, 200]]), 1000.4)
    assert ids_of(out) == [first_id]  # tracking goes on from the new time base


def test_time_jump_reset_can_be_turned_off():
    tracker = make(frame_rate=10.0, time_jump_reset_s=0.0)
    tracker.update(boxes_at([[100, 200]]), 5000.0)
    tracker.update(boxes_at([[100, 200]]), 10.0)
    assert not tracker.last_update_accepted and tracker.stats.time_resets == 0


def test_track_snapshots_report_velocity_in_pixels_per_second():
    tracker = make(frame_rate=20.0)
    for t in range(30):
        tracker.update(boxes_at([[100 + 2 * t, 50]]))
    (info,) = tracker.tracks()
    assert info.track_id == 1 and info.state == TrackState.CONFIRMED and info.hits == 30
    np.testing.assert_allclose(info.velocity, [40.0, 0.0], atol=1.0)
    assert info.time_since_update_s == 0.0
