"""Comparing two runs' results, and replaying a recording as a frame source."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ConfigError, SourceError
from edge_vision_core.eval.compare import FrameResults, Tolerance, compare_results


def _frame(stamp: int, boxes, ids=None, classes=None) -> FrameResults:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    return FrameResults(stamp, boxes, classes or ['person'] * n, np.full(n, 0.9),
                        [str(i) for i in ids] if ids is not None else [''] * n)


RUN = [_frame(1, [[0, 0, 10, 10], [20, 20, 40, 40]], [1, 2]),
       _frame(2, [[1, 0, 11, 10], [21, 20, 41, 40]], [1, 2]),
       _frame(3, [[2, 0, 12, 10]], [1])]


@pytest.mark.parametrize('other, expect', [
    (RUN, {}),
    ([_frame(1, [[0, 0, 10, 10], [20, 20, 40, 40]], [1, 2]),
      _frame(2, [[1, 0, 11, 10], [21, 20, 41, 40]], [1, 2])],
     {'frames_only_a': 1}),
    ([_frame(1, [[0, 0, 10, 10]], [1]), *RUN[1:]], {'missing': 1}),
    ([*RUN[:2], _frame(3, [[2, 0, 12, 10], [50, 50, 60, 60]], [1, 3])], {'extra': 1}),
    ([RUN[0], _frame(2, [[1, 0, 11, 10], [21, 20, 41, 40]], [2, 1]), RUN[2]],
     {'id_switches': 3}),  # 1->2 and 2->1 at frame 2, and back 2->1 at frame 3
    ([*RUN[:2], _frame(3, [[2, 0, 12, 10]], [1], ['car'])], {'missing': 1, 'extra': 1}),
])
def test_compare_counts_each_kind_of_difference(other, expect):
    diff = compare_results('/tracks', RUN, other)
    fields = ('frames_only_a', 'frames_only_b', 'missing', 'extra', 'id_switches')
    assert {f: getattr(diff, f) for f in fields if getattr(diff, f)} == expect
    assert bool(diff.differs()) == bool(expect)


def test_shifted_boxes_lower_the_mean_iou_and_a_tolerance_accepts_them():
    moved = [_frame(f.stamp_ns, f.boxes + [1, 0, 1, 0], [1, 2][:len(f.boxes)]) for f in RUN]
    diff = compare_results('/tracks', RUN, moved)
    assert diff.matched == 5 and 0.6 < diff.mean_iou < 0.9
    assert diff.differs() and not diff.differs(Tolerance(mean_iou=0.6))


def test_runs_without_common_stamps_are_paired_by_order_on_request():
    later = [_frame(f.stamp_ns + 1000, f.boxes, [1, 2][:len(f.boxes)]) for f in RUN]
    by_stamp = compare_results('/tracks', RUN, later)
    assert any('no stamp in common' in n for n in by_stamp.differs())
    assert not compare_results('/tracks', RUN, later, by_order=True).differs()


def test_tolerance_is_validated():
    with pytest.raises(ConfigError):
        Tolerance(unmatched_fraction=2.0)


# -- the bag source ------------------------------------------------------------------------


def _record_images(path, frames, topic='/cam/image_raw/compressed', fmt='png'):
    """A bag of CompressedImage messages serialized by rclpy (the real CDR)."""
    rclpy_ser = pytest.importorskip('rclpy.serialization')
    pytest.importorskip('sensor_msgs.msg')
    import cv2
    from sensor_msgs.msg import CompressedImage

    from edge_vision_core.bag import BagConfig, BagTopic, BagWriter, full_definition

    name = 'sensor_msgs/msg/CompressedImage'
    with BagWriter(BagConfig(path=str(path))) as writer:
        writer.add_topic(BagTopic(topic, name, full_definition(name)))
        for stamp, frame_id, image in frames:
            msg = CompressedImage(format=f'bgr8; {fmt} compressed bgr8')
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg.header.frame_id = frame_id
            msg.data = cv2.imencode(f'.{fmt}', image)[1].tobytes()
            writer.write(topic, rclpy_ser.serialize_message(msg), stamp + 5)


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(n)]


def test_a_bag_replays_its_images_with_their_stamps_and_frame_ids(tmp_path):
    from edge_vision_core.io.sources import BagSource, SourceConfig, open_source, parse_source

    images = _images(5)
    stamps = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(5)]
    path = tmp_path / 'run.mcap'
    _record_images(path, [(s, 'cam_optical', im) for s, im in zip(stamps, images, strict=True)])
    assert parse_source(str(path)) is BagSource
    source = open_source(SourceConfig(source=str(path)))
    source.open()
    assert source.native_fps == pytest.approx(10.0) and source.frame_count == 5
    got = [source.read() for _ in range(5)]
    assert source.read() is None
    assert [f.stamp_ns for f in got] == stamps
    assert {f.frame_id for f in got} == {'cam_optical'}
    for frame, image in zip(got, images, strict=True):
        np.testing.assert_array_equal(frame.image, image)  # PNG: lossless
    source.close()


def test_a_looping_bag_keeps_stamps_increasing(tmp_path):
    from edge_vision_core.io.sources import SourceConfig, open_source

    path = tmp_path / 'loop.mcap'
    _record_images(path, [(1_000_000_000 + i * 50_000_000, 'f', im)
                          for i, im in enumerate(_images(3))])
    source = open_source(SourceConfig(source=str(path), loop=True))
    source.open()
    stamps = [source.read().stamp_ns for _ in range(7)]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    source.close()


def test_bag_source_names_the_topic_to_choose(tmp_path):
    from edge_vision_core.io.sources import BagSource, SourceConfig, parse_source

    path = tmp_path / 'two'
    path.mkdir()
    _record_images(path / 'a.mcap', [(1, 'f', _images(1)[0])], topic='/a/image')
    _record_images(path / 'b.mcap', [(2, 'f', _images(1)[0])], topic='/b/image')
    assert parse_source(str(path)) is BagSource
    with pytest.raises(SourceError, match='name one as'):
        BagSource(SourceConfig(source=str(path))).open()
    with pytest.raises(SourceError, match='no image topic'):
        BagSource(SourceConfig(source=f'{path}#/c/image')).open()
    chosen = BagSource(SourceConfig(source=f'{path}#/b/image'))
    chosen.open()
    assert chosen.read().stamp_ns == 2
    chosen.close()
    with pytest.raises(SourceError, match='not found'):
        BagSource(SourceConfig(source=str(tmp_path / 'nope.mcap'))).open()
