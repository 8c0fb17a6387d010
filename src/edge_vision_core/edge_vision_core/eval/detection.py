"""Detection metrics: box IoU, greedy matching, per-class AP and mAP, and model agreement.

Conventions:

- Boxes are ``[x1, y1, x2, y2]`` in image pixels (corner coordinates, x right, y down), as in
  :class:`edge_vision_core.types.Detections`. IoU is the continuous area ratio (no "+1" pixel
  convention); a box of zero area has IoU 0 with everything.
- **Matching** (COCO style): within one image and one class, predictions are taken in order of
  decreasing score (ties keep their input order); each is matched to the *unmatched* reference
  box of the same class with the highest IoU, if that IoU is at least the threshold. A
  prediction that finds no such box is a false positive, so a duplicate of an already matched
  box counts as a false positive, and a prediction of the wrong class never matches.
- **AP** per class (all-point interpolation, as PASCAL VOC 2010+ and the COCO toolkit before its
  101-point sampling): predictions of all images are ranked by score, precision and recall are
  accumulated down the ranking, precision is made monotone (``p(r) = max p(r')`` for
  ``r' >= r``) and AP is the area under that step curve: ``sum (r_i - r_{i-1}) * p(r_i)``.
- **mAP** is the mean of the per-class APs over the classes that have at least one reference
  box. Predictions of a class with no reference box do not change mAP (as in COCO); they show
  up in the precision of :func:`detection_agreement` instead. With no reference box at all,
  mAP is NaN.

:func:`detection_agreement` uses these to compare a model variant with its reference (e.g. an
INT8 model with the FP32 one): the reference's detections are the ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError
from ..types import Detections, box_iou

__all__ = [
    'AgreementResult',
    'average_precision',
    'box_iou',
    'detection_agreement',
    'match_detections',
    'mean_average_precision',
]


def _check_threshold(iou_threshold: float) -> None:
    if not (isinstance(iou_threshold, (int, float)) and 0.0 < iou_threshold <= 1.0):
        raise ConfigError(f'iou_threshold must be in (0, 1], got {iou_threshold!r}')


def match_detections(reference: Detections, predicted: Detections,
                     iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match one image's predictions to its reference boxes (see the module docstring).

    Args:
        reference: the reference (ground-truth) detections of the image; scores are ignored.
        predicted: the detections to judge, in the same image pixels.
        iou_threshold: minimum IoU of a match, in (0, 1].

    Returns:
        ``(pred_index, ref_index, iou)``: int64 arrays of the matched pairs and their float64
        IoU, in the order the predictions were matched (decreasing score).

    Raises:
        ConfigError: an iou_threshold outside (0, 1].
    """
    _check_threshold(iou_threshold)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if not len(reference) or not len(predicted):
        return empty
    iou = box_iou(predicted.boxes, reference.boxes)
    iou[predicted.class_ids[:, None] != reference.class_ids[None, :]] = -1.0
    order = np.argsort(-predicted.scores, kind='stable')
    taken = np.zeros(len(reference), bool)
    pairs: list[tuple[int, int, float]] = []
    for p in order:
        row = np.where(taken, -1.0, iou[p])
        best = int(np.argmax(row))
        if row[best] >= iou_threshold:
            taken[best] = True
            pairs.append((int(p), best, float(row[best])))
    if not pairs:
        return empty
    p_idx, r_idx, ious = zip(*pairs, strict=True)
    return np.asarray(p_idx, np.int64), np.asarray(r_idx, np.int64), np.asarray(ious)


def average_precision(scores: np.ndarray, true_positive: np.ndarray, num_reference: int
                      ) -> float:
    """All-point interpolated AP of one class.

    Args:
        scores: (K,) scores of the class's predictions over all images.
        true_positive: (K,) bool, True where the prediction matched a reference box.
        num_reference: number of reference boxes of the class over all images.

    Returns:
        AP in [0, 1]; NaN when ``num_reference`` is 0.
    """
    if num_reference <= 0:
        return math.nan
    scores = np.asarray(scores, np.float64).reshape(-1)
    true_positive = np.asarray(true_positive, bool).reshape(-1)
    if len(scores) != len(true_positive):
        raise DataError(f'average_precision: {len(scores)} scores but '
                        f'{len(true_positive)} true_positive flags')
    if not len(scores):
        return 0.0
    order = np.argsort(-scores, kind='stable')
    tp = np.cumsum(true_positive[order])
    fp = np.cumsum(~true_positive[order])
    recall = tp / num_reference
    precision = tp / np.maximum(tp + fp, 1)
    # Monotone precision envelope, then the area under the recall steps.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def _per_class_hits(references: Sequence[Detections], predictions: Sequence[Detections],
                    iou_threshold: float) -> tuple[dict[int, list[float]], dict[int, list[bool]],
                                                    dict[int, int]]:
    if len(references) != len(predictions):
        raise DataError(f'{len(references)} reference images but {len(predictions)} '
                        f'prediction images; give one Detections per image to both')
    scores: dict[int, list[float]] = {}
    hits: dict[int, list[bool]] = {}
    counts: dict[int, int] = {}
    for ref, pred in zip(references, predictions, strict=True):
        for c in ref.class_ids.tolist():
            counts[c] = counts.get(c, 0) + 1
        matched = np.zeros(len(pred), bool)
        p_idx, _, _ = match_detections(ref, pred, iou_threshold)
        matched[p_idx] = True
        for c, s, m in zip(pred.class_ids.tolist(), pred.scores.tolist(),
                                 matched.tolist(), strict=True):
            scores.setdefault(c, []).append(s)
            hits.setdefault(c, []).append(m)
    return scores, hits, counts


def mean_average_precision(references: Sequence[Detections],
                           predictions: Sequence[Detections],
                           iou_threshold: float = 0.5) -> tuple[float, dict[int, float]]:
    """mAP over images (see the module docstring for the definition).

    Args:
        references: per image, the reference (ground-truth) detections.
        predictions: per image, the predictions with their scores (same image order).
        iou_threshold: IoU a prediction needs to match, in (0, 1] (0.5 for mAP@0.5).

    Returns:
        ``(mAP, {class_id: AP})`` over the classes with reference boxes; mAP is NaN when there
        is no reference box.

    Raises:
        DataError: different image counts.
        ConfigError: a bad threshold.
    """
    _check_threshold(iou_threshold)
    scores, hits, counts = _per_class_hits(references, predictions, iou_threshold)
    per_class = {c: average_precision(np.asarray(scores.get(c, []), np.float64),
                                      np.asarray(hits.get(c, []), bool), n)
                 for c, n in sorted(counts.items())}
    if not per_class:
        return math.nan, {}
    return float(np.mean(list(per_class.values()))), per_class


@dataclass(frozen=True)
class AgreementResult:
    """How well a variant's detections agree with a reference model's.

    Attributes:
        map50: mAP at ``iou_threshold`` of the variant's detections (all of them, ranked by
            score) against the reference detections as ground truth; NaN without reference
            boxes.
        per_class_ap: ``{class_id: AP}`` behind ``map50``.
        mean_iou: mean IoU of the matched pairs at the operating point (variant detections
            with score >= ``score_threshold``); NaN when nothing matched.
        precision, recall: at the operating point: matched / variant detections and
            matched / reference detections (NaN for an empty denominator).
        matched: number of matched pairs at the operating point.
        num_reference: reference boxes over all images.
        num_predicted: variant detections at the operating point over all images.
        iou_threshold, score_threshold: the settings used.
    """

    map50: float
    per_class_ap: dict[int, float] = field(default_factory=dict)
    mean_iou: float = math.nan
    precision: float = math.nan
    recall: float = math.nan
    matched: int = 0
    num_reference: int = 0
    num_predicted: int = 0
    iou_threshold: float = 0.5
    score_threshold: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly copy (NaN stays a float NaN; json writes it as NaN)."""
        return {'map50': self.map50, 'mean_iou': self.mean_iou, 'precision': self.precision,
                'recall': self.recall, 'matched': self.matched,
                'num_reference': self.num_reference, 'num_predicted': self.num_predicted,
                'iou_threshold': self.iou_threshold, 'score_threshold': self.score_threshold,
                'per_class_ap': {str(k): v for k, v in self.per_class_ap.items()}}


def detection_agreement(references: Sequence[Detections], predictions: Sequence[Detections],
                        iou_threshold: float = 0.5, score_threshold: float = 0.0
                        ) -> AgreementResult:
    """Agreement of a model variant with its reference on the same images.

    The reference detections (taken at the reference model's operating threshold) are the
    ground truth. ``predictions`` should be the variant's detections at a *low* score threshold
    so that AP sees the whole ranking; ``score_threshold`` is the operating threshold at which
    precision, recall and the matched boxes' mean IoU are measured.

    Args:
        references: per image, the reference model's detections.
        predictions: per image, the variant's detections (same order and image pixels).
        iou_threshold: IoU of a match, in (0, 1].
        score_threshold: operating threshold of the variant, in [0, 1].

    Raises:
        DataError: different image counts.
        ConfigError: thresholds out of range.
    """
    if not 0.0 <= score_threshold <= 1.0:
        raise ConfigError(f'score_threshold must be in [0, 1], got {score_threshold!r}')
    map50, per_class = mean_average_precision(references, predictions, iou_threshold)
    ious: list[float] = []
    n_pred = 0
    for ref, pred in zip(references, predictions, strict=True):
        keep = pred.scores >= score_threshold
        kept = Detections(pred.boxes[keep], pred.scores[keep], pred.class_ids[keep])
        n_pred += len(kept)
        ious.extend(match_detections(ref, kept, iou_threshold)[2].tolist())
    n_ref = sum(len(r) for r in references)
    matched = len(ious)
    return AgreementResult(
        map50=map50, per_class_ap=per_class,
        mean_iou=float(np.mean(ious)) if ious else math.nan,
        precision=matched / n_pred if n_pred else math.nan,
        recall=matched / n_ref if n_ref else math.nan,
        matched=matched, num_reference=n_ref, num_predicted=n_pred,
        iou_threshold=float(iou_threshold), score_threshold=float(score_threshold))
