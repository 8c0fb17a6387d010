"""Detections / FrameMeta / Frame: validation, selection and geometry."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import DataError, Detections, Frame, FrameMeta


def make(n: int = 3, **kwargs) -> Detections:
    boxes = np.array([[10 * i, 5 * i, 10 * i + 4, 5 * i + 8] for i in range(n)], np.float64)
    return Detections(boxes, np.linspace(0.9, 0.5, n), np.arange(n), **kwargs)


def test_dtypes_are_normalised():
    d = make()
    assert d.boxes.dtype == np.float32 and d.boxes.shape == (3, 4)
    assert d.scores.dtype == np.float32 and d.class_ids.dtype == np.int32
    assert d.track_ids is None and d.masks is None
    assert len(d) == 3


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'boxes': np.zeros((2, 3))}, r'boxes must have shape \(N, 4\)'),
    ({'scores': np.zeros(2)}, 'scores has 2 rows but boxes has 3'),
    ({'class_ids': np.zeros((3, 1))}, r'class_ids must have shape \(N,\)'),
    ({'class_ids': np.array([0.5, 1, 2])}, 'must hold integers'),
    ({'track_ids': np.array([1, 2])}, 'track_ids has 2 rows, expected 3'),
    ({'masks': np.zeros((2, 4, 4))}, r'masks must have shape \(N=3, H, W\)'),
])
def test_invalid_shapes_are_refused_with_the_field_name(kwargs, match):
    base = {'boxes': make().boxes, 'scores': make().scores, 'class_ids': make().class_ids}
    base.update(kwargs)
    with pytest.raises(DataError, match=match):
        Detections(**base)


def test_empty_and_empty_lists():
    assert len(Detections.empty()) == 0
    assert Detections.empty(with_track_ids=True).track_ids.shape == (0,)
    d = Detections([], [], [])
    assert d.boxes.shape == (0, 4)


def test_selection_by_int_slice_mask_and_indices():
    d = make(4, track_ids=[7, 8, 9, 10])
    assert d[1].track_ids.tolist() == [8]
    assert d[-1].track_ids.tolist() == [10]
    assert d[-2].track_ids.tolist() == [9]
    assert d[1:3].track_ids.tolist() == [8, 9]
    assert d[np.array([True, False, False, True])].track_ids.tolist() == [7, 10]
    assert d[[3, 0]].class_ids.tolist() == [3, 0]


def test_geometry():
    d = Detections([[0, 0, 4, 2], [10, 10, 11, 14]], [1, 1], [0, 0])
    np.testing.assert_allclose(d.xywh, [[2, 1, 4, 2], [10.5, 12, 1, 4]])
    np.testing.assert_allclose(d.areas, [8, 4])
    back = Detections.from_xywh(d.xywh, d.scores, d.class_ids)
    np.testing.assert_allclose(back.boxes, d.boxes)


def test_valid_mask_flags_nan_inf_and_degenerate_boxes():
    d = Detections([[0, 0, 1, 1], [np.nan, 0, 1, 1], [0, 0, np.inf, 1], [5, 5, 5, 9],
                    [3, 3, 1, 9], [0, 0, 1, 1]], [1, 1, 1, 1, 1, np.nan], [0] * 6)
    assert d.valid_mask().tolist() == [True, False, False, False, False, False]


def test_concatenate_and_replace():
    a, b = make(2), make(3)
    c = Detections.concatenate([a, b])
    assert len(c) == 5
    assert Detections.concatenate([]).boxes.shape == (0, 4)
    with pytest.raises(DataError, match='with and without track_ids'):
        Detections.concatenate([make(1, track_ids=[1]), make(1)])
    tracked = a.replace(track_ids=[4, 5])
    assert tracked.track_ids.dtype == np.int64 and a.track_ids is None


def test_frame_meta_keeps_exact_nanoseconds():
    meta = FrameMeta.from_sec_nanosec(1_700_000_000, 999_999_999, 'cam_optical_frame')
    assert meta.sec_nanosec == (1_700_000_000, 999_999_999)
    assert meta.stamp_ns == 1_700_000_000_999_999_999
    assert FrameMeta.from_seconds(1.5).sec_nanosec == (1, 500_000_000)


@pytest.mark.parametrize(('call', 'match'), [
    (lambda: FrameMeta(1.5), 'integer number of nanoseconds'),
    (lambda: FrameMeta(-1), '>= 0'),
    (lambda: FrameMeta(0, 5), 'frame_id must be a str'),
    (lambda: FrameMeta.from_sec_nanosec(1, 2_000_000_000), 'nanosec'),
    (lambda: FrameMeta.from_seconds(float('nan')), 'finite'),
    (lambda: Frame(np.zeros(4)), '2-D or 3-D'),
])
def test_bad_metadata_is_refused(call, match):
    with pytest.raises(DataError, match=match):
        call()


def test_frame_size():
    f = Frame(np.zeros((48, 64, 3), np.uint8), FrameMeta(5, 'cam'))
    assert (f.width, f.height, f.encoding) == (64, 48, 'bgr8')


def test_detections_carry_optional_keypoints():
    points = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    dets = Detections(np.zeros((2, 4)), [0.5, 0.9], [0, 0], keypoints=points)
    assert dets[1].keypoints.tolist() == [points[1].tolist()]
    assert dets[np.array([True, False])].keypoints.shape == (1, 3, 2)
    both = Detections.concatenate([dets, dets])
    assert both.keypoints.shape == (4, 3, 2) and 'keypoints' in repr(both)
    with pytest.raises(DataError, match='keypoints'):
        Detections(np.zeros((2, 4)), [0.5, 0.9], [0, 0], keypoints=np.zeros((2, 3)))
    with pytest.raises(DataError, match='keypoints'):
        Detections.concatenate([dets, Detections(np.zeros((1, 4)), [0.1], [0])])
