"""Model adapters: pure functions that turn raw output tensors into detections or masks.

Every decoder takes the model's output arrays (in the order the backend returns them) and the
model-input size, and returns :class:`Candidates`: boxes in **model-input pixels** (the
letterboxed image, corner coordinates, x right, y down), scores and class ids, after the score
threshold and before NMS (``nms_done`` tells when the model already ran NMS). :func:`finalize`
then runs class-aware NMS, keeps ``max_detections`` and maps the boxes back into the original
image's pixels through the letterbox inverse, clipped to the image.

Layouts understood (``C`` = number of classes, ``N`` = number of anchors/cells):

- ``nanodet``: per stride ``s`` (8, 16, 32...) class scores ``[1, N_s, C]`` (sigmoid already
  applied) and box distributions ``[1, N_s, 4 * (reg_max + 1)]`` (sides left, top, right,
  bottom; each a softmax over ``reg_max + 1`` bins whose expectation is the distance in units
  of ``s`` from the cell centre ``((i + center_offset) * s, (j + center_offset) * s)``), in any
  output order; or the NanoDet-Plus single output ``[1, sum N_s, C + 4 * (reg_max + 1)]``.
- ``yolov5``: ``[1, N, 5 + C]`` rows ``cx, cy, w, h, objectness, class scores...``;
  score = objectness x class score.
- ``yolov8`` (also YOLOv11): ``[1, 4 + C, N]`` (or transposed ``[1, N, 4 + C]``) rows
  ``cx, cy, w, h, class scores...``, no objectness.
- ``yolo_nms`` (end-to-end exports with NMS inside): either one ``[1, K, 6]`` output with rows
  ``x1, y1, x2, y2, score, class`` or four outputs ``num_dets [1, 1]``, ``boxes [1, K, 4]``
  (x1, y1, x2, y2), ``scores [1, K]``, ``classes [1, K]`` (TensorRT EfficientNMS layout).
- ``ssd_postprocess`` (TFLite ``DetectionPostProcess``): ``boxes [1, K, 4]`` normalised
  ``ymin, xmin, ymax, xmax`` in [0, 1] of the model input, ``classes [1, K]``,
  ``scores [1, K]``, ``count [1]``.
- ``segmentation``: ``[1, C, H, W]`` or ``[1, H, W, C]`` scores (argmax over C), ``[1, 1, H, W]``
  or ``[1, H, W, 1]`` foreground probability with C = 2, or an integer class map ``[1, H, W]``.

YOLO and ``yolo_nms`` boxes are in model-input pixels unless ``normalized=True`` (0..1 of the
input size).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from ..types import Detections
from .letterbox import LetterboxTransform
from .nms import batched_nms

__all__ = [
    'ADAPTERS',
    'Candidates',
    'decode_nanodet',
    'decode_segmentation',
    'decode_ssd_postprocess',
    'decode_yolo_nms',
    'decode_yolov5',
    'decode_yolov8',
    'finalize',
]

#: The adapter names a manifest may use.
ADAPTERS = ('nanodet', 'yolov5', 'yolov8', 'yolo_nms', 'ssd_postprocess', 'segmentation',
            # text models: decoded by edge_vision_core.inference.text (TEXT_ADAPTERS)
            'db_text', 'text_direction', 'ctc_text')


@dataclass(frozen=True)
class Candidates:
    """Decoded boxes before NMS, in model-input pixels.

    Attributes:
        boxes: (N, 4) float32 ``[x1, y1, x2, y2]`` in model-input pixels.
        scores: (N,) float32.
        class_ids: (N,) int32 indices into the model's labels.
        nms_done: True when the model's own NMS already ran (skip ours).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    nms_done: bool = False

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))


def _flat2d(arr: np.ndarray) -> np.ndarray:
    """Drop a leading batch dimension of 1: [1, N, K] -> [N, K]."""
    arr = np.asarray(arr)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    return arr


def _top_pairs(scores: np.ndarray, threshold: float, limit: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, score) of entries of a 2-D score array above threshold, best ``limit``."""
    flat = np.ascontiguousarray(scores).reshape(-1)
    index = np.flatnonzero(flat > threshold)  # 1-D search: several times faster than 2-D nonzero
    values = flat[index]
    if limit and len(values) > limit:
        best = np.argpartition(-values, limit - 1)[:limit]
        index, values = index[best], values[best]
    rows, cols = np.divmod(index, scores.shape[1])
    return rows, cols, values


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _centers(width: int, height: int, stride: int, offset: float) -> np.ndarray:
    """(N, 2) float32 cell centres of one stride level, row-major (y outer, x inner)."""
    nx, ny = -(-width // stride), -(-height // stride)
    xs = (np.arange(nx, dtype=np.float32) + offset) * stride
    ys = (np.arange(ny, dtype=np.float32) + offset) * stride
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    grid.setflags(write=False)
    return grid


def decode_nanodet(outputs: Sequence[np.ndarray], input_size: tuple[int, int], num_classes: int,
                   *, strides: Sequence[int] = (8, 16, 32), reg_max: int = 10,
                   center_offset: float = 0.5, score_threshold: float = 0.35,
                   max_candidates: int = 1000) -> Candidates:
    """Decode NanoDet GFL heads (see the module docstring for the layout).

    Args:
        outputs: the model outputs, any order: per stride a ``[1, N_s, C]`` score and a
            ``[1, N_s, 4 * (reg_max + 1)]`` distribution tensor, or one concatenated
            ``[1, sum N_s, C + 4 * (reg_max + 1)]`` tensor (levels in ``strides`` order).
        input_size: ``(width, height)`` of the model input.
        num_classes: C.
        strides: the stride of every level, e.g. (8, 16, 32).
        reg_max: bins per side minus one.
        center_offset: 0.5 for NanoDet (cell centres), 0.0 for NanoDet-Plus (cell corners).
        score_threshold: keep (cell, class) pairs with score > this.
        max_candidates: keep at most this many best pairs before NMS.

    Raises:
        ModelError: when the outputs do not match the layout.
    """
    width, height = input_size
    bins = reg_max + 1
    counts = [(-(-width // s)) * (-(-height // s)) for s in strides]
    arrays = [_flat2d(o) for o in outputs]
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    if len(arrays) == 1 and arrays[0].shape == (sum(counts), num_classes + 4 * bins):
        start = 0
        for n in counts:
            block = arrays[0][start:start + n]
            levels.append((block[:, :num_classes], block[:, num_classes:]))
            start += n
    else:
        cls_by_n = {a.shape[0]: a for a in arrays if a.ndim == 2 and a.shape[1] == num_classes}
        box_by_n = {a.shape[0]: a for a in arrays if a.ndim == 2 and a.shape[1] == 4 * bins}
        for n, s in zip(counts, strides, strict=True):
            if n not in cls_by_n or n not in box_by_n:
                shapes = [tuple(np.shape(o)) for o in outputs]
                raise ModelError(
                    f'nanodet adapter: no [1, {n}, {num_classes}] score and [1, {n}, {4 * bins}] '
                    f'distribution outputs for stride {s} at input {width}x{height}; the model '
                    f'has outputs {shapes}. Check input_size, strides, reg_max and the labels '
                    f'count ({num_classes}) in the manifest')
            levels.append((cls_by_n[n], box_by_n[n]))
    projection = np.arange(bins, dtype=np.float32)
    boxes, scores, class_ids = [], [], []
    for (cls, reg), stride in zip(levels, strides, strict=True):
        cells, classes, values = _top_pairs(cls, score_threshold, max_candidates)
        if not len(cells):
            continue
        unique, inverse = np.unique(cells, return_inverse=True)
        logits = reg[unique].reshape(-1, 4, bins).astype(np.float32)
        logits = logits - logits.max(axis=2, keepdims=True)
        prob = np.exp(logits)
        dist = (prob @ projection) / prob.sum(axis=2) * stride  # (U, 4) l, t, r, b
        ctr = _centers(width, height, stride, center_offset)[unique]
        level_boxes = np.concatenate([ctr - dist[:, :2], ctr + dist[:, 2:]], axis=1)
        boxes.append(level_boxes[inverse.reshape(-1)])
        scores.append(values)
        class_ids.append(classes)
    if not boxes:
        return Candidates.empty()
    cand = Candidates(np.concatenate(boxes).astype(np.float32),
                      np.concatenate(scores).astype(np.float32),
                      np.concatenate(class_ids).astype(np.int32))
    if len(cand.scores) > max_candidates:
        best = np.argpartition(-cand.scores, max_candidates - 1)[:max_candidates]
        cand = Candidates(cand.boxes[best], cand.scores[best], cand.class_ids[best])
    return cand


def _scale_normalized(boxes: np.ndarray, input_size: tuple[int, int], normalized: bool
                      ) -> np.ndarray:
    if normalized:
        w, h = input_size
        boxes = boxes * np.array([w, h, w, h], np.float32)
    return boxes.astype(np.float32, copy=False)


def decode_yolov5(outputs: Sequence[np.ndarray], input_size: tuple[int, int], num_classes: int,
                  *, score_threshold: float = 0.25, max_candidates: int = 3000,
                  normalized: bool = False) -> Candidates:
    """Decode a YOLOv5-style ``[1, N, 5 + C]`` output (cx, cy, w, h, objectness, classes).

    Raises:
        ModelError: when the output is not ``[1, N, 5 + C]``.
    """
    pred = _flat2d(outputs[0])
    if pred.ndim != 2 or pred.shape[1] != 5 + num_classes:
        raise ModelError(f'yolov5 adapter: expected an output [1, N, {5 + num_classes}] '
                         f'(5 + {num_classes} classes), got {tuple(np.shape(outputs[0]))}; check '
                         f'the labels count or use adapter yolov8 for outputs without '
                         f'objectness')
    keep = pred[:, 4] > score_threshold  # score = obj * cls <= obj
    pred = pred[keep]
    rows, cols, values = _top_pairs(pred[:, 5:] * pred[:, 4:5], score_threshold, max_candidates)
    boxes = _scale_normalized(_xywh_to_xyxy(pred[rows, :4]), input_size, normalized)
    return Candidates(boxes, values.astype(np.float32), cols.astype(np.int32))


def decode_yolov8(outputs: Sequence[np.ndarray], input_size: tuple[int, int], num_classes: int,
                  *, score_threshold: float = 0.25, max_candidates: int = 3000,
                  normalized: bool = False) -> Candidates:
    """Decode a YOLOv8/YOLOv11 ``[1, 4 + C, N]`` output (or its transpose ``[1, N, 4 + C]``).

    Raises:
        ModelError: when neither dimension is ``4 + C``.
    """
    pred = _flat2d(outputs[0])
    # The Ultralytics layout [4 + C, N] wins when both dimensions could be 4 + C.
    rows_first = pred.ndim == 2 and pred.shape[0] != 4 + num_classes \
        and pred.shape[1] == 4 + num_classes
    if pred.ndim != 2 or not (pred.shape[0] == 4 + num_classes or rows_first):
        raise ModelError(f'yolov8 adapter: expected an output [1, {4 + num_classes}, N] '
                         f'(4 + {num_classes} classes), got {tuple(np.shape(outputs[0]))}; check '
                         f'the labels count or use adapter yolov5 for outputs with objectness')
    if not rows_first:
        pred = pred.T
    cells, cols, values = _top_pairs(pred[:, 4:], score_threshold, max_candidates)
    boxes = _scale_normalized(_xywh_to_xyxy(pred[cells, :4]), input_size, normalized)
    return Candidates(boxes, values.astype(np.float32), cols.astype(np.int32))


def decode_yolo_nms(outputs: Sequence[np.ndarray], input_size: tuple[int, int], *,
                    score_threshold: float = 0.25, normalized: bool = False) -> Candidates:
    """Decode end-to-end outputs with NMS inside the model (see the module docstring).

    Raises:
        ModelError: when the outputs match neither layout.
    """
    arrays = [np.asarray(o) for o in outputs]
    pred = _flat2d(arrays[0]) if len(arrays) == 1 else None
    if pred is not None and pred.ndim == 2 and pred.shape[1] == 6:
        boxes, scores, classes = pred[:, :4], pred[:, 4], pred[:, 5]
    elif len(arrays) == 4:
        num = next((a for a in arrays if a.size == 1), None)
        box = next((a for a in arrays if a.ndim >= 2 and a.shape[-1] == 4), None)
        rest = [a for a in arrays if a is not num and a is not box]
        if num is None or box is None or len(rest) != 2:
            raise ModelError(f'yolo_nms adapter: expected num_dets [1, 1], boxes [1, K, 4], '
                             f'scores [1, K], classes [1, K]; got '
                             f'{[tuple(a.shape) for a in arrays]}')
        n = int(num.reshape(-1)[0])
        # scores are fractional, classes whole numbers: tell them apart by content, and fall
        # back on the EfficientNMS order (scores before classes).
        first, second = (r.reshape(-1)[:n] for r in rest)
        if np.all(first == np.round(first)) and not np.all(second == np.round(second)):
            first, second = second, first
        boxes, scores, classes = box.reshape(-1, 4)[:n], first, second
    else:
        raise ModelError(f'yolo_nms adapter: expected one [1, K, 6] output or four outputs '
                         f'(num_dets, boxes, scores, classes); got '
                         f'{[tuple(a.shape) for a in arrays]}')
    keep = scores > score_threshold
    boxes = _scale_normalized(np.asarray(boxes, np.float32)[keep], input_size, normalized)
    return Candidates(boxes, np.asarray(scores, np.float32)[keep],
                      np.asarray(classes)[keep].astype(np.int32), nms_done=True)


def decode_ssd_postprocess(outputs: Sequence[np.ndarray], input_size: tuple[int, int], *,
                           score_threshold: float = 0.5, label_offset: int = 0,
                           output_names: Sequence[str] = ()) -> Candidates:
    """Decode TFLite ``DetectionPostProcess`` outputs (boxes, classes, scores, count).

    Args:
        outputs: the four outputs; identified by shape (boxes ``[1, K, 4]``, count of size 1),
            then by ``output_names`` containing ``class``/``score``, else in the
            ``TFLite_Detection_PostProcess`` order (classes before scores).
        input_size: ``(width, height)`` of the model input.
        score_threshold: keep detections with score > this.
        label_offset: added to the class values to index the labels (e.g. 1 when the labels
            file starts with a background entry the model does not count).
        output_names: the backend's output names, in the order of ``outputs``.

    Raises:
        ModelError: when the outputs do not match the layout.
    """
    arrays = [np.asarray(o) for o in outputs]
    names = list(output_names) or [''] * len(arrays)
    box_i = next((i for i, a in enumerate(arrays) if a.ndim >= 2 and a.shape[-1] == 4), None)
    num_i = next((i for i, a in enumerate(arrays) if a.size == 1 and i != box_i), None)
    rest = [i for i in range(len(arrays)) if i not in (box_i, num_i)]
    if len(arrays) != 4 or box_i is None or num_i is None or len(rest) != 2:
        raise ModelError(f'ssd_postprocess adapter: expected boxes [1, K, 4], classes [1, K], '
                         f'scores [1, K], count [1]; got {[tuple(a.shape) for a in arrays]}')
    cls_i, score_i = rest
    lowered = [names[i].lower() for i in rest]
    if 'score' in lowered[0] or 'class' in lowered[1]:
        cls_i, score_i = score_i, cls_i
    count = int(round(float(arrays[num_i].reshape(-1)[0])))
    yxyx = arrays[box_i].reshape(-1, 4)[:count].astype(np.float32)
    scores = arrays[score_i].reshape(-1)[:count].astype(np.float32)
    classes = np.round(arrays[cls_i].reshape(-1)[:count]).astype(np.int32) + label_offset
    keep = scores > score_threshold
    w, h = input_size
    boxes = yxyx[keep][:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)
    return Candidates(boxes, scores[keep], classes[keep], nms_done=True)


def decode_segmentation(outputs: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """The per-pixel class map of a semantic-segmentation output, in model-output pixels.

    Returns:
        (h, w) uint8 class ids (uint16 when there are more than 256 classes), covering the whole
        model input (possibly at a coarser resolution).

    Raises:
        ModelError: when the output matches no segmentation layout.
    """
    out = np.asarray(outputs[0])
    while out.ndim > 3 and out.shape[0] == 1:
        out = out[0]
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    if out.ndim == 2:
        if np.issubdtype(out.dtype, np.floating) and not np.all(out == np.round(out)):
            return (out > 0.5).astype(dtype)  # a single foreground probability
        return out.astype(dtype)
    if out.ndim == 3:
        if out.shape[0] == 1:
            return decode_segmentation([out[0]], num_classes)
        if out.shape[-1] == 1:
            return decode_segmentation([out[..., 0]], num_classes)
        if out.shape[0] == num_classes:
            return np.argmax(out, axis=0).astype(dtype)
        if out.shape[-1] == num_classes:
            return np.argmax(out, axis=-1).astype(dtype)
    raise ModelError(f'segmentation adapter: expected [1, {num_classes}, H, W], '
                     f'[1, H, W, {num_classes}], [1, 1, H, W] or [1, H, W] output, got '
                     f'{tuple(np.shape(outputs[0]))}; check the labels count')


def finalize(candidates: Candidates, transform: LetterboxTransform, *,
             iou_threshold: float = 0.6, max_detections: int = 100,
             class_agnostic: bool = False, nms_method: str = 'auto') -> Detections:
    """NMS, top-k and the letterbox inverse: candidates -> Detections in image pixels.

    Args:
        candidates: decoder output in model-input pixels.
        transform: the letterbox the model input was made with.
        iou_threshold: class-aware NMS IoU threshold (ignored when ``candidates.nms_done``).
        max_detections: keep at most this many, best first (0 = all).
        class_agnostic: NMS across classes.
        nms_method: see :func:`edge_vision_core.inference.nms.batched_nms`.

    Returns:
        Detections in the original image's pixels, clipped to the image, by decreasing score;
        boxes that end up empty after clipping (entirely in the padding) are dropped.
    """
    if candidates.nms_done:
        keep = np.argsort(-candidates.scores, kind='stable')
        if max_detections:
            keep = keep[:max_detections]
    else:
        keep = batched_nms(candidates.boxes, candidates.scores, candidates.class_ids,
                           iou_threshold, class_agnostic=class_agnostic,
                           max_keep=max_detections, method=nms_method)
    boxes = transform.model_to_image(candidates.boxes[keep])
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(boxes[ok], candidates.scores[keep][ok], candidates.class_ids[keep][ok])
