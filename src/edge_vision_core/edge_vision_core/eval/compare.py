"""Compare the detections and tracks of two runs (two recorded bags).

Replaying a recording through the pipeline, or re-running it with another model, backend or
threshold, gives a second bag; :func:`compare_bags` says how the results differ, per results
topic (every ``vision_msgs/Detection2DArray`` topic both bags carry: ``detections``,
``tracks``, ``anomaly/regions``):

- messages in each run, and frames only one of them has (frames are paired by header stamp,
  which a replay keeps; ``by_order`` pairs the n-th messages instead, for two live runs);
- boxes matched one to one per frame, class-aware, greedily by IoU (>= ``iou_threshold``): the
  matched count and mean IoU, the boxes of run A with no partner (``missing`` from B) and those of
  run B (``extra``);
- identity switches on track topics: a track of run A whose matched partner in run B changes id
  (as MOTA counts them, with run A as the reference).

:meth:`TopicDiff.differs` applies a :class:`Tolerance`; identical runs differ in nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError
from ..types import Detections
from .detection import match_detections

__all__ = ['FrameResults', 'Tolerance', 'TopicDiff', 'compare_bags', 'compare_results',
           'results_from_bag']

RESULTS_TYPE = 'vision_msgs/msg/Detection2DArray'


@dataclass(eq=False)
class FrameResults:
    """The results of one message: stamp, boxes (xyxy), class names, scores, ids (track ids as
    strings, '' on detections)."""

    stamp_ns: int
    boxes: np.ndarray
    classes: list[str]
    scores: np.ndarray
    ids: list[str]

    def detections(self, class_index: dict[str, int]) -> Detections:
        """As :class:`Detections` with class ids from ``class_index`` (extended as needed)."""
        ids = [class_index.setdefault(c, len(class_index)) for c in self.classes]
        return Detections(self.boxes, self.scores, np.asarray(ids, np.int32))


def _frame_results(stamp_ns: int, msg: object) -> FrameResults:
    dets = list(msg.detections)
    boxes = np.zeros((len(dets), 4), np.float64)
    classes, scores, ids = [], np.zeros(len(dets)), []
    for i, det in enumerate(dets):
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        boxes[i] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        best = max(det.results, key=lambda r: r.hypothesis.score) if det.results else None
        classes.append(best.hypothesis.class_id if best is not None else '')
        scores[i] = best.hypothesis.score if best is not None else 0.0
        ids.append(str(det.id))
    return FrameResults(stamp_ns, boxes, classes, scores, ids)


def results_from_bag(path: str | os.PathLike, topics: Iterable[str] | None = None
                     ) -> dict[str, list[FrameResults]]:
    """Every ``Detection2DArray`` message of a bag, per topic, in recording order."""
    from ..bag.reader import BagReader

    reader = BagReader(path)
    wanted = [t for t, kind in reader.topics().items() if kind == RESULTS_TYPE]
    if topics is not None:
        wanted = [t for t in wanted if t in set(topics)]
    out: dict[str, list[FrameResults]] = {t: [] for t in wanted}
    if not wanted:
        return out
    for item, msg in reader.decoded(wanted):
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        out[item.topic].append(_frame_results(stamp, msg))
    return out


@dataclass(frozen=True)
class Tolerance:
    """How much two runs may differ and still count as the same.

    Attributes:
        frames: frames (messages) that only one run has.
        unmatched_fraction: (missing + extra) / boxes of run A.
        mean_iou: the lowest acceptable mean IoU of matched boxes.
        id_switches: identity switches on track topics.
    """

    frames: int = 0
    unmatched_fraction: float = 0.0
    mean_iou: float = 0.999
    id_switches: int = 0

    def __post_init__(self) -> None:
        if self.frames < 0 or self.id_switches < 0 or not 0 <= self.unmatched_fraction <= 1 \
                or not 0 <= self.mean_iou <= 1:
            raise ConfigError(f'invalid tolerance {self}: counts >= 0, fractions in [0, 1]')


@dataclass
class TopicDiff:
    """How one results topic differs between run A and run B."""

    topic: str
    messages_a: int = 0
    messages_b: int = 0
    frames_compared: int = 0
    frames_only_a: int = 0
    frames_only_b: int = 0
    boxes_a: int = 0
    boxes_b: int = 0
    matched: int = 0
    missing: int = 0
    extra: int = 0
    iou_sum: float = 0.0
    id_switches: int = 0
    tracks: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def mean_iou(self) -> float:
        """Mean IoU of the matched boxes (1.0 when nothing was matched and nothing missed)."""
        if self.matched:
            return self.iou_sum / self.matched
        return 1.0 if not (self.missing or self.extra) else 0.0

    @property
    def unmatched_fraction(self) -> float:
        return (self.missing + self.extra) / max(1, self.boxes_a)

    def differs(self, tol: Tolerance = Tolerance()) -> list[str]:
        """The ways this topic differs beyond ``tol`` (empty: the same)."""
        out = list(self.notes)
        only = self.frames_only_a + self.frames_only_b
        if only > tol.frames:
            out.append(f'{only} frames only in one run ({self.frames_only_a} only in A, '
                       f'{self.frames_only_b} only in B)')
        if self.unmatched_fraction > tol.unmatched_fraction:
            out.append(f'{self.missing} boxes missing and {self.extra} extra of {self.boxes_a} '
                       f'({self.unmatched_fraction:.2%})')
        if self.mean_iou < tol.mean_iou:
            out.append(f'mean IoU of matched boxes {self.mean_iou:.4f} < {tol.mean_iou}')
        if self.id_switches > tol.id_switches:
            out.append(f'{self.id_switches} identity switches')
        return out

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.pop('iou_sum')
        data['mean_iou'] = self.mean_iou
        return data


def compare_results(topic: str, a: list[FrameResults], b: list[FrameResults],
                    iou_threshold: float = 0.5, by_order: bool = False) -> TopicDiff:
    """Compare one topic's messages of two runs (see the module docstring)."""
    diff = TopicDiff(topic, messages_a=len(a), messages_b=len(b))
    if by_order:
        n = min(len(a), len(b))
        pairs = list(zip(a[:n], b[:n], strict=True))
        diff.frames_only_a, diff.frames_only_b = len(a) - n, len(b) - n
    else:
        by_stamp_b: dict[int, FrameResults] = {}
        for item in b:
            by_stamp_b.setdefault(item.stamp_ns, item)
        stamps_a = {item.stamp_ns for item in a}
        pairs = [(item, by_stamp_b[item.stamp_ns]) for item in a if item.stamp_ns in by_stamp_b]
        diff.frames_only_a = sum(1 for item in a if item.stamp_ns not in by_stamp_b)
        diff.frames_only_b = sum(1 for s in by_stamp_b if s not in stamps_a)
        if a and b and not pairs:
            diff.notes.append('no stamp in common: these are not runs of the same recording '
                              '(compare two live runs with --by-order)')
    diff.tracks = any(i for item in a for i in item.ids) or \
        any(i for item in b for i in item.ids)
    classes: dict[str, int] = {}
    partner: dict[str, str] = {}  # track id in A -> its last matched id in B
    for fa, fb in pairs:
        da, db = fa.detections(classes), fb.detections(classes)
        diff.boxes_a += len(da)
        diff.boxes_b += len(db)
        ib, ia, ious = match_detections(da, db, iou_threshold)
        diff.matched += len(ia)
        diff.iou_sum += float(np.sum(ious))
        diff.missing += len(da) - len(ia)
        diff.extra += len(db) - len(ib)
        if diff.tracks:
            for i_a, i_b in zip(ia.tolist(), ib.tolist(), strict=True):
                id_a, id_b = fa.ids[i_a], fb.ids[i_b]
                if id_a in partner and partner[id_a] != id_b:
                    diff.id_switches += 1
                partner[id_a] = id_b
    return diff


def compare_bags(path_a: str | os.PathLike, path_b: str | os.PathLike,
                 topics: Iterable[str] | None = None, iou_threshold: float = 0.5,
                 by_order: bool = False) -> list[TopicDiff]:
    """Compare every results topic of two bags (those of either run; a topic only one run has
    is reported as such)."""
    a = results_from_bag(path_a, topics)
    b = results_from_bag(path_b, topics)
    out = []
    for topic in sorted(set(a) | set(b)):
        diff = compare_results(topic, a.get(topic, []), b.get(topic, []), iou_threshold,
                               by_order)
        if topic not in a or topic not in b:
            diff.notes.append(f'only run {"A" if topic in a else "B"} recorded {topic}')
        out.append(diff)
    return out
