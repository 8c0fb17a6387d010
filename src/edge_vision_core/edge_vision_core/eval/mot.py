"""MOTChallenge text files and multi-object tracking metrics.

File format (MOTChallenge 2D, one object per line, comma separated; whitespace separation is read
too)::

    frame, id, x, y, w, h, conf, X, Y, Z

``frame`` is 1-based, ``id`` the track id (-1 in detection files), ``x, y`` the top-left corner
and ``w, h`` the size of the box in image pixels, ``conf`` the detection score (in ground truth:
1 = evaluate, 0 = ignore), and ``X, Y, Z`` world coordinates (-1 when unknown; MOT16+ ground
truth uses columns 8 and 9 for class and visibility instead). Lines with fewer than 6 values are
errors; a missing ``conf`` reads as 1.

Metrics (:func:`evaluate_tracking`): CLEAR-MOT (MOTA, MOTP, ID switches, ...) and IDF1 computed
by ``motmetrics`` from IoU distances that this module computes itself, and HOTA (DetA, AssA)
computed by TrackEval's reference implementation when the ``trackeval`` package is installed.
Ground-truth rows with ``conf == 0`` are ignored (not counted as misses); MOT16+ class and
visibility filtering is not applied.

Why the IoU distances are computed here: ``motmetrics`` 1.4 builds them with
``motmetrics.distances.iou_matrix``, which calls ``np.asfarray`` (removed in numpy 2). Feeding
``MOTAccumulator.update`` our own distance matrices uses only motmetrics' public, numpy-neutral
API, so the same code runs on numpy 1.21 and 2.x without patching numpy or motmetrics.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, ConversionError, DataError
from ..types import Detections, box_iou

__all__ = [
    'MotTable',
    'TrackingMetrics',
    'detections_from_ground_truth',
    'evaluate_tracking',
    'hota_available',
    'read_mot',
    'write_mot',
]


@dataclass(eq=False)
class MotTable:
    """Rows of a MOTChallenge file as a struct of arrays (row i of every array is one line).

    Attributes:
        frames: (N,) int64 1-based frame numbers.
        ids: (N,) int64 object/track ids (-1 for detections).
        boxes: (N, 4) float64 ``[x, y, w, h]``: top-left corner and size in image pixels.
        scores: (N,) float64 the ``conf`` column.
        extra: (N, 3) float64 the remaining columns (world X, Y, Z, or class/visibility in
            MOT16+ ground truth); -1 when absent.
    """

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    extra: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, np.int64).reshape(-1)
        n = len(self.frames)
        self.ids = np.asarray(self.ids, np.int64).reshape(-1)
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float64).reshape(-1)
        extra = np.asarray(self.extra, np.float64)
        self.extra = np.full((n, 3), -1.0) if extra.size == 0 and n else extra.reshape(-1, 3)
        for name in ('ids', 'boxes', 'scores', 'extra'):
            if len(getattr(self, name)) != n:
                raise DataError(f'MotTable.{name} has {len(getattr(self, name))} rows, '
                                f'frames has {n}')

    def __len__(self) -> int:
        return len(self.frames)

    def select(self, mask: np.ndarray) -> MotTable:
        """The rows where ``mask`` (bool (N,) or index array) selects."""
        return MotTable(self.frames[mask], self.ids[mask], self.boxes[mask], self.scores[mask],
                        self.extra[mask])

    @property
    def num_frames(self) -> int:
        """The largest frame number (0 for an empty table)."""
        return int(self.frames.max()) if len(self) else 0

    @property
    def boxes_xyxy(self) -> np.ndarray:
        """(N, 4) float64 ``[x1, y1, x2, y2]`` image-pixel boxes."""
        return np.concatenate([self.boxes[:, :2], self.boxes[:, :2] + self.boxes[:, 2:]], 1)

    def detections(self, frame: int, default_score: float | None = None) -> Detections:
        """The rows of one frame as Detections (class 0, ``track_ids`` from ``ids`` if >= 0).

        Args:
            frame: 1-based frame number.
            default_score: when not None, replaces negative ``conf`` values (-1 means "no
                score" in many files).
        """
        rows = np.flatnonzero(self.frames == frame)
        scores = self.scores[rows].copy()
        if default_score is not None:
            scores[scores < 0] = default_score
        ids = self.ids[rows]
        return Detections(self.boxes_xyxy[rows], scores, np.zeros(len(rows), np.int32),
                          ids if len(ids) and np.all(ids >= 0) else None)

    def iter_frames(self, default_score: float | None = None,
                    last_frame: int | None = None) -> Iterator[tuple[int, Detections]]:
        """``(frame, Detections)`` for every frame 1..last_frame, empty frames included."""
        last = self.num_frames if last_frame is None else last_frame
        order = np.argsort(self.frames, kind='stable')
        frames = self.frames[order]
        starts = np.searchsorted(frames, np.arange(1, last + 2))
        sub = self.select(order)
        for f in range(1, last + 1):
            rows = np.arange(starts[f - 1], starts[f])
            part = sub.select(rows)
            yield f, part.detections(f, default_score) if len(rows) else Detections.empty()

    @classmethod
    def from_tracks(cls, tracks: Sequence[tuple[int, Detections]]) -> MotTable:
        """Build from ``(frame, tracked Detections)`` pairs (the tracker's outputs)."""
        frames, ids, boxes, scores = [], [], [], []
        for frame, dets in tracks:
            if dets.track_ids is None:
                raise DataError(f'frame {frame}: Detections without track_ids cannot be '
                                f'written as tracks')
            frames.append(np.full(len(dets), frame, np.int64))
            ids.append(dets.track_ids)
            b = dets.boxes.astype(np.float64)
            boxes.append(np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1))
            scores.append(dets.scores.astype(np.float64))
        if not frames:
            return cls(np.zeros(0), np.zeros(0), np.zeros((0, 4)), np.zeros(0))
        return cls(np.concatenate(frames), np.concatenate(ids), np.concatenate(boxes),
                   np.concatenate(scores))


def read_mot(path: str | os.PathLike) -> MotTable:
    """Read a MOTChallenge text file.

    Raises:
        ConversionError: the file is missing or a line is malformed (the message names the line).
    """
    try:
        with open(path, encoding='utf-8') as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise ConversionError(f'cannot read MOT file {os.fspath(path)!r}: {exc.strerror}') \
            from exc
    rows = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith('#'):
            continue
        parts = text.replace(',', ' ').split()
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ConversionError(f'{os.fspath(path)}:{number}: not a MOTChallenge line '
                                  f'(numbers expected): {text[:80]!r}') from None
        if len(values) < 6:
            raise ConversionError(f'{os.fspath(path)}:{number}: {len(values)} values; a '
                                  f'MOTChallenge line has at least frame,id,x,y,w,h')
        values = (values + [1.0, -1.0, -1.0, -1.0])[:10] if len(values) < 10 else values[:10]
        if values[0] < 1 or values[0] != int(values[0]):
            raise ConversionError(f'{os.fspath(path)}:{number}: frame must be an integer >= 1 '
                                  f'(MOTChallenge frames are 1-based), got {parts[0]}')
        rows.append(values)
    data = np.asarray(rows, np.float64).reshape(-1, 10)
    return MotTable(data[:, 0], data[:, 1], data[:, 2:6], data[:, 6], data[:, 7:10])


def write_mot(path: str | os.PathLike, table: MotTable) -> None:
    """Write a MOTChallenge text file, rows sorted by frame then id (boxes to 0.01 px).

    Raises:
        ConversionError: the file cannot be written.
    """
    order = np.lexsort((table.ids, table.frames))
    lines = []
    for i in order:
        x, y, w, h = table.boxes[i]
        ex = table.extra[i]
        lines.append(f'{table.frames[i]},{table.ids[i]},{x:.2f},{y:.2f},{w:.2f},{h:.2f},'
                     f'{table.scores[i]:.4g},{ex[0]:g},{ex[1]:g},{ex[2]:g}\n')
    try:
        with open(path, 'w', encoding='utf-8') as fh:
            fh.writelines(lines)
    except OSError as exc:
        raise ConversionError(f'cannot write MOT file {os.fspath(path)!r}: {exc.strerror}') \
            from exc


def detections_from_ground_truth(gt: MotTable, *, drop: float = 0.0, jitter: float = 0.0,
                                 false_positives: float = 0.0, low_score_fraction: float = 0.0,
                                 seed: int = 0) -> MotTable:
    """Detections made from ground truth: ids removed, optionally corrupted like a detector.

    Args:
        gt: ground truth (rows with ``conf == 0`` are skipped).
        drop: probability that a true box is missed.
        jitter: standard deviation of the noise added to each box edge, as a fraction of the
            box width (x edges) or height (y edges).
        false_positives: mean number of false boxes per frame (Poisson); their sizes are drawn
            from the ground-truth boxes, positions uniformly over the ground truth's extent,
            scores uniformly in [0.1, 0.7].
        low_score_fraction: fraction of true boxes given a low score (uniform in [0.1, 0.5),
            as occluded objects get) instead of a high one (uniform in [0.5, 1.0]). With 0 and no
            other corruption, every score is 1.
        seed: random seed (the result is a pure function of the arguments, the same on every
            numpy version).

    Returns:
        A detection table (ids -1), sorted by frame.
    """
    for name, value in (('drop', drop), ('low_score_fraction', low_score_fraction)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f'{name} must be in [0, 1], got {value}')
    if jitter < 0 or false_positives < 0:
        raise ConfigError('jitter and false_positives must be >= 0')
    # The legacy RandomState keeps its streams across numpy versions (Generator does not
    # promise that), so the same seed gives the same detections on numpy 1.21 and 2.x.
    rng = np.random.RandomState(seed)
    gt = gt.select(gt.scores != 0)
    keep = rng.random_sample(len(gt)) >= drop
    det = gt.select(keep)
    n = len(det)
    xyxy = det.boxes_xyxy
    size = np.concatenate([det.boxes[:, 2:], det.boxes[:, 2:]], axis=1)
    xyxy = xyxy + rng.normal(0.0, jitter, (n, 4)) * size if jitter > 0 else xyxy
    corrupt = drop > 0 or jitter > 0 or false_positives > 0 or low_score_fraction > 0
    if corrupt:
        low = rng.random_sample(n) < low_score_fraction
        scores = np.where(low, rng.uniform(0.1, 0.5, n), rng.uniform(0.5, 1.0, n))
    else:
        scores = np.ones(n)
    frames = [det.frames]
    boxes = [xyxy]
    all_scores = [scores]
    if false_positives > 0 and len(gt):
        lo, hi = gt.boxes_xyxy[:, :2].min(0), gt.boxes_xyxy[:, 2:].max(0)
        counts = rng.poisson(false_positives, gt.num_frames)
        total = int(counts.sum())
        wh = gt.boxes[rng.randint(0, len(gt), total), 2:]
        tl = rng.uniform(lo, np.maximum(lo + 1, hi - wh))
        frames.append(np.repeat(np.arange(1, gt.num_frames + 1), counts))
        boxes.append(np.concatenate([tl, tl + wh], axis=1))
        all_scores.append(rng.uniform(0.1, 0.7, total))
    frames_a = np.concatenate(frames)
    boxes_a = np.concatenate(boxes)
    wh = np.maximum(boxes_a[:, 2:] - boxes_a[:, :2], 1.0)
    order = np.argsort(frames_a, kind='stable')
    return MotTable(frames_a[order], np.full(len(frames_a), -1),
                    np.concatenate([boxes_a[:, :2], wh], axis=1)[order],
                    np.concatenate(all_scores)[order])


@dataclass(frozen=True)
class TrackingMetrics:
    """Scores of a tracker output against ground truth (fractions in [0, 1], not percent).

    Attributes:
        mota: multi-object tracking accuracy, ``1 - (FN + FP + IDSW) / GT`` (can be < 0).
        idf1: identity F1 score (Ristani et al. 2016).
        id_switches: times a ground-truth object changed its matched track id.
        motp: mean IoU of the matched pairs (MOTChallenge convention, higher is better;
            motmetrics' own ``motp`` is ``1 -`` this).
        precision, recall: of the matched boxes.
        num_frames, num_objects, num_predictions: frames, ground-truth boxes, output boxes.
        false_positives, misses: unmatched output and ground-truth boxes.
        mostly_tracked, mostly_lost: ground-truth tracks covered >= 80 % / <= 20 % of their life.
        fragmentations: times a ground-truth track's coverage was interrupted.
        hota, deta, assa: HOTA and its detection/association parts (averaged over IoU
            thresholds 0.05..0.95), or None when TrackEval is not installed.
    """

    mota: float
    idf1: float
    id_switches: int
    motp: float
    precision: float
    recall: float
    num_frames: int
    num_objects: int
    num_predictions: int
    false_positives: int
    misses: int
    mostly_tracked: int
    mostly_lost: int
    fragmentations: int
    hota: float | None = None
    deta: float | None = None
    assa: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        """The metrics as a plain dict (JSON-ready)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _frame_pairs(gt: MotTable, res: MotTable) -> Iterator[tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]]:
    """Per frame (1..last): ground-truth ids, result ids and their IoU matrix."""
    last = max(gt.num_frames, res.num_frames)
    g_sorted = gt.select(np.argsort(gt.frames, kind='stable'))
    r_sorted = res.select(np.argsort(res.frames, kind='stable'))
    g_start = np.searchsorted(g_sorted.frames, np.arange(1, last + 2))
    r_start = np.searchsorted(r_sorted.frames, np.arange(1, last + 2))
    g_xyxy, r_xyxy = g_sorted.boxes_xyxy, r_sorted.boxes_xyxy
    for f in range(last):
        gs = slice(g_start[f], g_start[f + 1])
        rs = slice(r_start[f], r_start[f + 1])
        yield g_sorted.ids[gs], r_sorted.ids[rs], box_iou(g_xyxy[gs], r_xyxy[rs])


def hota_available() -> bool:
    """Whether TrackEval (``pip install trackeval``) is importable for HOTA."""
    try:
        _import_trackeval_hota()
    except ImportError:
        return False
    return True


def _import_trackeval_hota() -> type:
    # TrackEval prints a line about its optional dataset dependencies on import; keep it off
    # the caller's stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        from trackeval.metrics import HOTA
    return HOTA


def _hota(gt: MotTable, res: MotTable, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
          ) -> tuple[float, float, float] | None:
    """HOTA, DetA, AssA from the per-frame ``(gt ids, result ids, IoU)`` of
    :func:`_frame_pairs` (None without TrackEval)."""
    try:
        hota_cls = _import_trackeval_hota()
    except ImportError:
        return None
    gt_ids_u, res_ids_u = np.unique(gt.ids), np.unique(res.ids)
    data: dict = {'gt_ids': [], 'tracker_ids': [], 'similarity_scores': []}
    for g_ids, r_ids, iou in pairs:
        data['gt_ids'].append(np.searchsorted(gt_ids_u, g_ids))
        data['tracker_ids'].append(np.searchsorted(res_ids_u, r_ids))
        data['similarity_scores'].append(iou)
    data.update(num_timesteps=len(data['gt_ids']), num_gt_ids=len(gt_ids_u),
                num_tracker_ids=len(res_ids_u), num_gt_dets=len(gt), num_tracker_dets=len(res))
    with contextlib.redirect_stdout(io.StringIO()):
        out = hota_cls().eval_sequence(data)
    return (float(np.mean(out['HOTA'])), float(np.mean(out['DetA'])),
            float(np.mean(out['AssA'])))


def evaluate_tracking(gt: MotTable, res: MotTable, iou_threshold: float = 0.5,
                      with_hota: bool = True) -> TrackingMetrics:
    """Score a tracker output against ground truth.

    Args:
        gt: ground truth; rows with ``conf == 0`` are ignored.
        res: tracker output (ids >= 0).
        iou_threshold: least IoU for a ground-truth box and an output box to match (CLEAR-MOT
            and IDF1; MOTChallenge uses 0.5).
        with_hota: also compute HOTA when TrackEval is installed.

    Raises:
        ConfigError: ``motmetrics`` is missing (``pip install motmetrics``) or the threshold is
            out of range.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ConfigError(f'iou_threshold must be in (0, 1], got {iou_threshold}')
    try:
        import motmetrics as mm
    except ImportError as exc:
        raise ConfigError('tracking metrics need motmetrics: pip install motmetrics') from exc
    gt = gt.select(gt.scores != 0)
    acc = mm.MOTAccumulator(auto_id=True)
    max_dist = 1.0 - iou_threshold
    pairs = list(_frame_pairs(gt, res))  # CLEAR-MOT/IDF1 and HOTA share the IoU matrices
    for g_ids, r_ids, iou in pairs:
        dist = 1.0 - iou
        dist[dist > max_dist + 1e-12] = np.nan
        acc.update(g_ids.tolist(), r_ids.tolist(), dist)
    names = ['mota', 'idf1', 'num_switches', 'motp', 'precision', 'recall', 'num_frames',
             'num_objects', 'num_predictions', 'num_false_positives', 'num_misses',
             'mostly_tracked', 'mostly_lost', 'num_fragmentations']
    summary = mm.metrics.create().compute(acc, metrics=names, name='seq')
    row = {k: summary[k].iloc[0] for k in names}

    def num(key: str) -> float:
        value = float(row[key])
        return value if np.isfinite(value) else 0.0

    hota = _hota(gt, res, pairs) if with_hota and len(gt) else None
    return TrackingMetrics(
        mota=num('mota'), idf1=num('idf1'), id_switches=int(num('num_switches')),
        motp=1.0 - float(row['motp']) if np.isfinite(float(row['motp'])) else 0.0,
        precision=num('precision'), recall=num('recall'), num_frames=int(num('num_frames')),
        num_objects=int(num('num_objects')), num_predictions=int(num('num_predictions')),
        false_positives=int(num('num_false_positives')), misses=int(num('num_misses')),
        mostly_tracked=int(num('mostly_tracked')), mostly_lost=int(num('mostly_lost')),
        fragmentations=int(num('num_fragmentations')),
        hota=None if hota is None else hota[0], deta=None if hota is None else hota[1],
        assa=None if hota is None else hota[2])
