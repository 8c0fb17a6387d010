"""Model adapters: one table of adapter objects that turn raw output tensors into results.

Every model family is one :class:`Adapter` in :data:`ADAPTERS` (the manifest's ``adapter:``
key names it). An adapter knows

- which of :data:`OUTPUT_KINDS` it produces (``detections``, ``mask``, ``keypoints``, ``text``);
- its manifest options (:attr:`Adapter.options`: a frozen dataclass whose fields, with
  :func:`~edge_vision_core.config.param` metadata, are the adapter's own manifest keys; their
  defaults, ranges and types are checked when the manifest is read) and what else the manifest
  must declare (:meth:`Adapter.check_manifest`);
- the output contract, checked against the loaded model's output shapes before the first frame
  (:meth:`Adapter.check_outputs`);
- how to decode one inference (:meth:`Adapter.decode`) into :class:`Decoded`: boxes, scores,
  class ids (and optional keypoints) in **model-input pixels** (the letterboxed image, corner
  coordinates, x right, y down) before NMS, a per-pixel class map over the model input, or
  text; the :class:`~edge_vision_core.inference.detector.Detector` then runs NMS (unless the
  adapter ran its own: ``Candidates(nms_done=True)``) and maps all of it back into the original
  image's pixels (:func:`finalize`: boxes and ``Detections.keypoints``; :meth:`Adapter.
  mask_to_image`: the mask, nearest neighbour unless the adapter maps its own map);
- the input-size multiple its head needs (:meth:`Adapter.size_multiple`, for ``optimize``).

Adding a model family is one new class here and one entry in the table (see "Adding an adapter"
below); ``register_adapter`` adds one at run time (plugins, tests).

Layouts understood (``C`` = number of classes, ``N`` = number of anchors/cells):

- ``nanodet``: per stride ``s`` (8, 16, 32...) class scores ``[1, N_s, C]`` (sigmoid already
  applied) and box distributions ``[1, N_s, 4 * (reg_max + 1)]`` (sides left, top, right,
  bottom; each a softmax over ``reg_max + 1`` bins whose expectation is the distance in units
  of ``s`` from the cell centre ``((i + center_offset) * s, (j + center_offset) * s)``), in any
  output order; or the NanoDet-Plus single output ``[1, sum N_s, C + 4 * (reg_max + 1)]``.
  Options: ``strides``, ``reg_max``, ``center_offset``.
- ``yolov5``: ``[1, N, 5 + C]`` rows ``cx, cy, w, h, objectness, class scores...``;
  score = objectness x class score. Option: ``normalized_boxes``.
- ``yolov8`` (also YOLOv11): ``[1, 4 + C, N]`` (or transposed ``[1, N, 4 + C]``) rows
  ``cx, cy, w, h, class scores...``, no objectness. Option: ``normalized_boxes``.
- ``yolo_nms`` (end-to-end exports with NMS inside): either one ``[1, K, 6]`` output with rows
  ``x1, y1, x2, y2, score, class`` or four outputs ``num_dets [1, 1]``, ``boxes [1, K, 4]``
  (x1, y1, x2, y2), ``scores [1, K]``, ``classes [1, K]`` (TensorRT EfficientNMS layout).
  Option: ``normalized_boxes``.
- ``ssd_postprocess`` (TFLite ``DetectionPostProcess``): ``boxes [1, K, 4]`` normalised
  ``ymin, xmin, ymax, xmax`` in [0, 1] of the model input, ``classes [1, K]``,
  ``scores [1, K]``, ``count [1]``. Option: ``label_offset``.
- ``segmentation``: ``[1, C, H, W]`` or ``[1, H, W, C]`` scores (argmax over C), ``[1, 1, H, W]``
  or ``[1, H, W, 1]`` foreground probability with C = 2, or an integer class map ``[1, H, W]``.
  A probability map is brought to the image bilinearly before the 0.5 threshold
  (:func:`segmentation_probability`, :meth:`SegmentationAdapter.mask_to_image`), so the
  mask's edges are smooth at any image size.
- ``blazeface`` (MediaPipe face detection): SSD regressors ``[1, N, 4 + 2K]`` and scores
  ``[1, N, 1]`` decoded against anchors, with K keypoints per face (see
  :func:`decode_blazeface`); overlapping faces are merged by the adapter's own weighted NMS.
  Options: ``strides``, ``center_offset``.
- text models (see :mod:`.text` for the layouts; :class:`.ocr.TextReader` chains them):
  ``db_text`` (text line quadrilaterals as boxes + 4 keypoints; options ``size_multiple``,
  ``bin_threshold``, ``unclip_ratio``), ``text_direction`` (the angle label of each input as
  text) and ``ctc_text`` (the characters read; options ``dictionary``, ``size_multiple``,
  ``space_threshold``).

YOLO and ``yolo_nms`` boxes are in model-input pixels unless ``normalized_boxes`` (0..1 of the
input size).

Adding an adapter (say ``centernet``, producing detections)::

    @dataclass(frozen=True)
    class CenterNetOptions:                       # its manifest keys, validated on load
        down_ratio: int = field(default=4, metadata=param(
            'Input pixels per heatmap cell.', min=1, max=64))

        def __post_init__(self) -> None:
            check_config(self)

    class CenterNetAdapter(Adapter):
        name = 'centernet'
        options = CenterNetOptions
        summary = 'CenterNet: class heatmaps, box sizes, centre offsets'
        output_counts, outputs_doc = (3,), 'heatmap, size and offset outputs'  # optional

        def decode(self, outputs, ctx):
            ...  # ctx.options.down_ratio, ctx.input_size, ctx.score_threshold
            return Decoded(Candidates(boxes, scores, class_ids))  # keypoints=... optional

    ADAPTERS = Registry('adapter', ModelError, _check_adapter, [..., CenterNetAdapter()])

Nothing else changes: manifests may then say ``adapter: centernet`` with ``down_ratio``, the
Detector checks the contract, decodes, runs NMS and returns the detections (with
``Detections.keypoints`` for ``keypoints`` producers, ``DetectionResult.mask`` for ``mask``
producers, ``DetectionResult.text`` for ``text`` producers) in image pixels.
:class:`BlazeFaceAdapter` is a complete entry with keypoints and its own NMS.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..config import check_config, config_from_mapping, config_to_mapping, param
from ..errors import ConfigError, ModelError
from ..registry import Registry
from ..types import Detections
from .letterbox import LetterboxTransform, mask_to_image, probability_to_image
from .nms import batched_nms, weighted_nms
from .text import (
    ctc_greedy_decode,
    db_boxes,
    decode_text_direction,
    dictionary_file,
    quad_bounds,
)

if TYPE_CHECKING:
    from .manifest import ModelManifest

__all__ = [
    'ADAPTERS',
    'FACE_KEYPOINTS',
    'OUTPUT_KINDS',
    'Adapter',
    'Candidates',
    'CtcTextAdapter',
    'CtcTextOptions',
    'DbTextAdapter',
    'DbTextOptions',
    'DecodeContext',
    'Decoded',
    'NoOptions',
    'TextDirectionAdapter',
    'decode_blazeface',
    'decode_nanodet',
    'decode_segmentation',
    'decode_ssd_postprocess',
    'decode_yolo_nms',
    'decode_yolov5',
    'decode_yolov8',
    'finalize',
    'get_adapter',
    'register_adapter',
    'segmentation_probability',
    'ssd_anchor_centers',
]

#: What an adapter may produce (:attr:`Adapter.produces`).
OUTPUT_KINDS = ('detections', 'mask', 'keypoints', 'text')


@dataclass(frozen=True)
class Candidates:
    """Decoded boxes before NMS, in model-input pixels.

    Attributes:
        boxes: (N, 4) float32 ``[x1, y1, x2, y2]`` in model-input pixels.
        scores: (N,) float32.
        class_ids: (N,) int32 indices into the model's labels.
        nms_done: True when the model's own NMS already ran (skip ours).
        keypoints: optional (N, K, 2) float32 ``(x, y)`` points per box in model-input pixels
            (face landmarks, the corners of a text quadrilateral...), or None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    nms_done: bool = False
    keypoints: np.ndarray | None = None

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


def segmentation_probability(outputs: Sequence[np.ndarray]) -> np.ndarray | None:
    """The foreground probability of a single-channel segmentation output, else None.

    Returns:
        (h, w) float32 probability in model-output pixels when the first output is a float
        ``[1, 1, H, W]``, ``[1, H, W, 1]`` or ``[1, H, W]`` map that is not a class map (not
        all whole numbers); None for class scores ``[1, C, H, W]`` and integer class maps
        (use :func:`decode_segmentation` for those).
    """
    out = np.asarray(outputs[0])
    while out.ndim > 2 and out.shape[0] == 1:
        out = out[0]
    if out.ndim == 3 and out.shape[-1] == 1:
        out = out[..., 0]
    if out.ndim != 2 or out.size == 0 or not np.issubdtype(out.dtype, np.floating) \
            or np.all(out == np.round(out)):
        return None
    return out.astype(np.float32, copy=False)


#: The 6 keypoints of MediaPipe face detection, in output order ("right" = the person's right).
FACE_KEYPOINTS = ('right_eye', 'left_eye', 'nose_tip', 'mouth_center', 'right_ear_tragion',
                  'left_ear_tragion')


@functools.lru_cache(maxsize=16)
def ssd_anchor_centers(input_size: tuple[int, int], strides: tuple[int, ...],
                       num_anchors: int, offset: float = 0.5) -> np.ndarray:
    """(N, 2) float32 anchor centres ``(x, y)`` in model-input pixels, in the model's order.

    The SSD anchors of MediaPipe's BlazeFace graphs (fixed size): per stride ``s`` a grid of
    ``ceil(W / s) x ceil(H / s)`` cells, row-major, centred at ``((col + offset) * W / cols,
    (row + offset) * H / rows)``; consecutive equal strides share one grid, and every cell holds
    the same number of anchors per stride entry (derived from N: 2 for the short-range model's
    ``[8, 16, 16, 16]``, so 16x16x2 + 8x8x6 = 896; 1 for the full-range ``[4]``, 48x48 = 2304).

    Args:
        input_size: ``(width, height)`` of the model input.
        strides: one entry per anchor layer; consecutive equal strides share a grid.
        num_anchors: N, the number of rows of the model's outputs.
        offset: cell-centre offset (0.5 = the centre of each cell).

    Raises:
        ModelError: when N is not a whole multiple of the grid cells the strides give.
    """
    width, height = input_size
    groups: list[list[int]] = []  # [stride, layers sharing it]
    for stride in strides:
        if groups and groups[-1][0] == stride:
            groups[-1][1] += 1
        else:
            groups.append([int(stride), 1])
    grids = [(-(-width // s), -(-height // s), layers) for s, layers in groups]
    slots = sum(cols * rows * layers for cols, rows, layers in grids)
    if slots == 0 or num_anchors % slots:
        raise ModelError(f'blazeface adapter: {num_anchors} anchors do not fit the strides '
                         f'{list(strides)} at input {width}x{height} ({slots} cell slots); '
                         f'check strides and input_size in the manifest')
    per_layer = num_anchors // slots
    parts = []
    for cols, rows, layers in grids:
        xs = (np.arange(cols, dtype=np.float64) + offset) * (width / cols)
        ys = (np.arange(rows, dtype=np.float64) + offset) * (height / rows)
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 1, 2)
        parts.append(np.repeat(grid, layers * per_layer, axis=1).reshape(-1, 2))
    centers = np.concatenate(parts).astype(np.float32)
    centers.setflags(write=False)
    return centers


def _blazeface_outputs(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(regressors (N, 4 + 2K), score logits (N,)) from the two outputs, in any order."""
    arrays = [np.asarray(o) for o in outputs]
    flat = []
    for a in arrays:
        while a.ndim > 2 and a.shape[0] == 1:
            a = a[0]
        flat.append(a)
    scores = [a for a in flat if a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)]
    regs = [a for a in flat if a.ndim == 2 and a.shape[1] >= 4 and (a.shape[1] - 4) % 2 == 0]
    if len(arrays) != 2 or len(scores) != 1 or len(regs) != 1 \
            or len(scores[0]) != len(regs[0]):
        raise ModelError(f'blazeface adapter: expected regressors [1, N, 4 + 2K] and scores '
                         f'[1, N, 1], got {[tuple(a.shape) for a in arrays]}')
    return regs[0].astype(np.float32, copy=False), scores[0].reshape(-1).astype(np.float32)


def decode_blazeface(outputs: Sequence[np.ndarray], input_size: tuple[int, int], *,
                     strides: Sequence[int], anchor_offset: float = 0.5,
                     score_threshold: float = 0.5, max_candidates: int = 1000) -> Candidates:
    """Decode MediaPipe BlazeFace outputs into candidates before NMS.

    Model contract (MediaPipe's face detection graphs; the shipped ``face-short`` and
    ``face-full`` models, see ``tools/models/convert_mediapipe.py``): input ``[1, H, W, 3]``
    RGB scaled to [-1, 1], the image letterboxed into it: 128x128 (short range, faces within
    about 2 m) or 192x192 (full range, up to about 5 m); outputs, told apart by their last
    dimension, regressors ``[1, N, 4 + 2K]`` and score logits ``[1, N, 1]`` (score =
    sigmoid(clip(logit, -100, 100))), one row per anchor (:func:`ssd_anchor_centers`). A
    regressor row holds, in input pixels, the box centre's offset from the anchor ``dx, dy``,
    the box size ``w, h``, then K keypoint offsets ``(kx, ky)`` from the anchor; the K = 6 face
    keypoints are :data:`FACE_KEYPOINTS` (the person's right eye first).

    Args:
        outputs: regressors ``[1, N, 4 + 2K]`` and scores ``[1, N, 1]``, in any order.
        input_size: ``(width, height)`` of the model input.
        strides: the anchor layers' strides (manifest ``strides``).
        anchor_offset: the manifest's ``center_offset``.
        score_threshold: keep anchors whose sigmoid score is > this.
        max_candidates: keep at most this many best anchors.

    Returns:
        Candidates with boxes in model-input pixels, class 0, and ``keypoints`` (M, K, 2)
        float32 in model-input pixels, one row per candidate.

    Raises:
        ModelError: outputs that match no BlazeFace layout, or anchors that do not fit.
    """
    regs, logits = _blazeface_outputs(outputs)
    anchors = ssd_anchor_centers(tuple(int(v) for v in input_size),
                                 tuple(int(s) for s in strides), len(regs),
                                 float(anchor_offset))
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    keep = np.flatnonzero(scores > score_threshold)
    if len(keep) > max_candidates:
        keep = keep[np.argsort(-scores[keep], kind='stable')[:max_candidates]]
    rows, centers = regs[keep], anchors[keep]
    ctr = rows[:, :2] + centers
    half = rows[:, 2:4] / 2
    boxes = np.concatenate([ctr - half, ctr + half], axis=1).astype(np.float32)
    num_points = (regs.shape[1] - 4) // 2
    keypoints = (rows[:, 4:].reshape(len(keep), num_points, 2)
                 + centers[:, None, :]).astype(np.float32)
    return Candidates(boxes, scores[keep].astype(np.float32), np.zeros(len(keep), np.int32),
                      keypoints=keypoints)


def finalize(candidates: Candidates, transform: LetterboxTransform, *,
             iou_threshold: float = 0.6, max_detections: int = 100,
             class_agnostic: bool = False, nms_method: str = 'auto',
             clip_keypoints: bool = True) -> Detections:
    """NMS, top-k and the letterbox inverse: candidates -> Detections in image pixels.

    Args:
        candidates: decoder output in model-input pixels.
        transform: the letterbox the model input was made with.
        iou_threshold: class-aware NMS IoU threshold (ignored when ``candidates.nms_done``).
        max_detections: keep at most this many, best first (0 = all).
        class_agnostic: NMS across classes.
        nms_method: see :func:`edge_vision_core.inference.nms.batched_nms`.
        clip_keypoints: clip the keypoints to the image like the boxes (False: a keypoint may
            lie outside, e.g. the ear of a face cut by the image border).

    Returns:
        Detections in the original image's pixels, clipped to the image, by decreasing score;
        boxes that end up empty after clipping (entirely in the padding) are dropped. When the
        candidates carry keypoints, ``Detections.keypoints`` holds the kept boxes' keypoints
        (N, K, 2) in image pixels, row ``i`` belonging to detection ``i``.
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
    points = None
    if candidates.keypoints is not None:
        points = transform.points_to_image(candidates.keypoints[keep][ok], clip=clip_keypoints)
    return Detections(boxes[ok], candidates.scores[keep][ok], candidates.class_ids[keep][ok],
                      keypoints=points)


# -- the adapter table --------------------------------------------------------------------------

@dataclass(frozen=True)
class NoOptions:
    """The options of an adapter that has no manifest keys of its own."""


@dataclass(frozen=True)
class DecodeContext:
    """What :meth:`Adapter.decode` gets besides the output tensors.

    Attributes:
        manifest: the model's manifest (labels, input size, ``options``...).
        score_threshold: keep results scoring above this (the detector's current threshold).
        output_names: the backend's output names, in the order of the outputs.
        nms_threshold: the detector's current NMS IoU threshold, for adapters that run their
            own NMS (``Candidates(nms_done=True)``); None: the manifest's.
        max_detections: the detector's current limit (0 = all), for the same; None: the
            manifest's.
    """

    manifest: ModelManifest
    score_threshold: float
    output_names: tuple[str, ...] = ()
    nms_threshold: float | None = None
    max_detections: int | None = None

    def __post_init__(self) -> None:
        if self.nms_threshold is None:
            object.__setattr__(self, 'nms_threshold', self.manifest.nms_threshold)
        if self.max_detections is None:
            object.__setattr__(self, 'max_detections', self.manifest.max_detections)

    @property
    def options(self) -> Any:
        """The adapter's options (an instance of its :attr:`Adapter.options`)."""
        return self.manifest.options

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the model input."""
        return self.manifest.input_size

    @property
    def num_classes(self) -> int:
        return self.manifest.num_classes


@dataclass(frozen=True, eq=False)
class Decoded:
    """What one inference decoded to, in model-input space (see the module docstring).

    Attributes:
        candidates: boxes, scores, class ids (and optional keypoints) before NMS, for adapters
            that produce ``detections``; None otherwise.
        mask: for adapters that produce ``mask``, an (h, w) map covering the whole model input
            (possibly coarser) that the adapter's :meth:`Adapter.mask_to_image` turns into the
            image's class mask: integer class ids by default, or what the adapter's own
            ``mask_to_image`` interpolates (the segmentation adapter: a float foreground
            probability); None otherwise.
        text: ``(text, confidence)`` per text the model read, for adapters that produce
            ``text``; None otherwise.
    """

    candidates: Candidates | None = None
    mask: np.ndarray | None = None
    text: tuple[tuple[str, float], ...] | None = None


class Adapter(ABC):
    """One model family: its manifest options, output contract and decoder.

    Subclasses set the class attributes and implement :meth:`decode`; the other methods have
    defaults. Instances are stateless and shared by every Detector (register one instance).

    Class attributes:
        name: registry key, the manifest's ``adapter:`` value (lower case).
        produces: the subset of :data:`OUTPUT_KINDS` that :meth:`decode` fills.
        options: a frozen dataclass whose fields (with ``param`` metadata and defaults) are
            this adapter's own manifest keys; its ``__post_init__`` validates them
            (``check_config`` plus cross-field checks). :class:`NoOptions` for none.
        summary: one line for listings and docs.
        output_counts: the numbers of model outputs the layout allows (None: any), checked
            by the default :meth:`check_outputs`; ``outputs_doc`` names them for the message.
        clip_keypoints: clip keypoints to the image like the boxes (False where a keypoint
            may rightly lie outside the image, e.g. the ear of a face cut by its border).
    """

    name: ClassVar[str] = ''
    produces: ClassVar[frozenset[str]] = frozenset({'detections'})
    options: ClassVar[type] = NoOptions
    summary: ClassVar[str] = ''
    output_counts: ClassVar[tuple[int, ...] | None] = None
    outputs_doc: ClassVar[str] = ''
    clip_keypoints: ClassVar[bool] = True
    #: ``edge-vision optimize`` may make variants at other input sizes (False where the family
    #: fixes the size, e.g. a text recognizer's height).
    resizable: ClassVar[bool] = True
    #: the model takes any input size that is a multiple of :meth:`size_multiple`: a size
    #: variant keeps the file and only changes the manifest's default size.
    dynamic_input: ClassVar[bool] = False

    @abstractmethod
    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        """Decode one inference.

        Args:
            outputs: the model outputs in the backend's order.
            ctx: manifest, options, score and NMS thresholds, output names.

        Raises:
            ModelError: when the outputs do not match the adapter's layout.
        """

    def mask_to_image(self, mask: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
        """The (H, W) class mask in the original image's pixels from :attr:`Decoded.mask`.

        The default maps integer class ids back through the letterbox by nearest neighbour
        (:func:`~.letterbox.mask_to_image`); an adapter whose ``mask`` is something to
        interpolate first (a probability) overrides this.
        """
        return mask_to_image(mask, transform)

    def check_outputs(self, shapes: Sequence[tuple[int | None, ...]],
                      manifest: ModelManifest) -> str | None:
        """What is wrong with the loaded model's output shapes (None = dynamic dimension) for
        this manifest, or None when they fit; called once when a Detector is created. The
        default checks the number of outputs against :attr:`output_counts`."""
        if self.output_counts is not None and len(shapes) not in self.output_counts:
            return f'{self.name} needs {self.outputs_doc}, the model has {len(shapes)} outputs'
        return None

    def check_manifest(self, manifest: ModelManifest) -> str | None:
        """What the manifest lacks for this adapter (cross-key checks beyond the options), or
        None; called when a manifest is read."""
        return None

    def size_multiple(self, options: Any) -> int:
        """Input sizes of this family must be multiples of this (its coarsest stride)."""
        return 32

    def parse_options(self, values: Mapping[str, Any]) -> Any:
        """The adapter's options from the manifest's keys (the others are ignored).

        Raises:
            ConfigError: a value of the wrong type or out of range.
        """
        keys = self.option_keys()
        return config_from_mapping(self.options, {k: v for k, v in values.items() if k in keys})

    def option_keys(self) -> tuple[str, ...]:
        """This adapter's own manifest keys."""
        return tuple(f.name for f in dataclasses.fields(self.options))

    def options_to_dict(self, options: Any) -> dict[str, Any]:
        """The options as manifest keys (plain lists and scalars), for writing a manifest."""
        return config_to_mapping(options)

    def resolve_files(self, options: Any, base: Path) -> Any:
        """The options with the files they name made absolute against the manifest's folder
        ``base`` (called when a manifest is read; default: unchanged)."""
        return options

    def __repr__(self) -> str:
        return f'<adapter {self.name}: {", ".join(sorted(self.produces))}>'


@dataclass(frozen=True)
class NanodetOptions:
    """Manifest keys of the ``nanodet`` adapter (head geometry)."""

    strides: tuple[int, ...] = field(default=(8, 16, 32), metadata=param(
        'Stride of every head level, e.g. [8, 16, 32].', min=1, max=1024))
    reg_max: int = field(default=10, metadata=param(
        'Bins per box side minus one.', min=0, max=256))
    center_offset: float = field(default=0.5, metadata=param(
        'Cell-centre offset: 0.5 for NanoDet, 0.0 for NanoDet-Plus.', min=0.0, max=1.0))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.strides:
            raise ConfigError('NanodetOptions.strides needs at least one stride')


class NanodetAdapter(Adapter):
    name = 'nanodet'
    options = NanodetOptions
    summary = 'NanoDet / NanoDet-Plus GFL heads (per-stride scores and box distributions)'

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        o = ctx.options
        return Decoded(decode_nanodet(outputs, ctx.input_size, ctx.num_classes,
                                      strides=o.strides, reg_max=o.reg_max,
                                      center_offset=o.center_offset,
                                      score_threshold=ctx.score_threshold))

    def check_outputs(self, shapes: Sequence[tuple[int | None, ...]],
                      manifest: ModelManifest) -> str | None:
        o, n = manifest.options, manifest.num_classes
        bins = 4 * (o.reg_max + 1)
        last = [s[-1] if s else None for s in shapes]
        cls_outs = [s for s in shapes if s and s[-1] == n]
        if len(shapes) == 1 and shapes[0] and shapes[0][-1] is not None:
            if shapes[0][-1] != n + bins:
                return (f'nanodet single output must have {n} + {bins} (labels + 4 x '
                        f'(reg_max + 1)) channels, got {list(shapes[0])}; check the labels '
                        f'count and reg_max')
        elif len(cls_outs) != len(o.strides) or any(
                v not in (n, bins) for v in last if v is not None):
            return (f'nanodet expects, per stride {list(o.strides)}, a [1, N, {n}] score '
                    f'output ({n} labels) and a [1, N, {bins}] distribution output (reg_max '
                    f'{o.reg_max}); the model has outputs {[list(s) for s in shapes]}. Check '
                    f'the labels count')
        return None

    def size_multiple(self, options: NanodetOptions) -> int:
        return max(options.strides)


@dataclass(frozen=True)
class BoxOptions:
    """Manifest keys of the YOLO adapters (``yolov5``, ``yolov8``, ``yolo_nms``)."""

    normalized_boxes: bool = field(default=False, metadata=param(
        'Boxes in 0..1 of the input size instead of model-input pixels.'))

    def __post_init__(self) -> None:
        check_config(self)


class _ClassScoreYolo(Adapter):
    """YOLO heads with per-class scores: one output whose rows hold ``box_values`` numbers
    and the class scores, the row length on one of ``class_axes`` (of a rank-``rank`` output,
    any rank when None); ``decoder`` is :func:`decode_yolov5` or :func:`decode_yolov8`."""

    options = BoxOptions
    decoder: ClassVar[Any]
    box_values: ClassVar[int]
    layout: ClassVar[str]  # the expected shape, with {w} for the row length
    class_axes: ClassVar[tuple[int, ...]]
    rank: ClassVar[int | None] = None
    other: ClassVar[str]  # the adapter for the other layout

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        return Decoded(self.decoder(outputs, ctx.input_size, ctx.num_classes,
                                    score_threshold=ctx.score_threshold,
                                    normalized=ctx.options.normalized_boxes))

    def check_outputs(self, shapes: Sequence[tuple[int | None, ...]],
                      manifest: ModelManifest) -> str | None:
        n = manifest.num_classes
        width = self.box_values + n
        s = tuple(shapes[0]) if shapes else ()
        if not s or (self.rank is not None and len(s) != self.rank):
            return None
        dims = [s[a] for a in self.class_axes]
        if None in dims or width in dims:
            return None
        return (f'{self.name} output must be {self.layout.format(w=width)} ({self.box_values} '
                f'+ {n} labels), the model has {list(s)}; the labels count does not match the '
                f'class outputs (or the model needs adapter {self.other})')


class Yolov5Adapter(_ClassScoreYolo):
    name = 'yolov5'
    summary = 'YOLOv5-style [1, N, 5 + C] (boxes, objectness, class scores)'
    decoder = staticmethod(decode_yolov5)
    box_values, layout, class_axes, other = 5, '[1, N, {w}]', (-1,), 'yolov8'


class Yolov8Adapter(_ClassScoreYolo):
    name = 'yolov8'
    summary = 'YOLOv8/YOLOv11 [1, 4 + C, N] (boxes, class scores; no objectness)'
    decoder = staticmethod(decode_yolov8)
    box_values, layout, class_axes, rank, other = 4, '[1, {w}, N]', (1, 2), 3, 'yolov5'


class YoloNmsAdapter(Adapter):
    name = 'yolo_nms'
    options = BoxOptions
    summary = 'end-to-end exports with NMS inside ([1, K, 6] or EfficientNMS four outputs)'
    output_counts = (1, 4)
    outputs_doc = 'one [1, K, 6] output or four outputs (num_dets, boxes, scores, classes)'

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        return Decoded(decode_yolo_nms(outputs, ctx.input_size,
                                       score_threshold=ctx.score_threshold,
                                       normalized=ctx.options.normalized_boxes))


@dataclass(frozen=True)
class SsdOptions:
    """Manifest keys of the ``ssd_postprocess`` adapter."""

    label_offset: int = field(default=0, metadata=param(
        'Added to the class values to index the labels (1 when the labels start with a '
        'background entry the model does not count).', min=-1000, max=1000))

    def __post_init__(self) -> None:
        check_config(self)


class SsdPostprocessAdapter(Adapter):
    name = 'ssd_postprocess'
    options = SsdOptions
    summary = 'TFLite DetectionPostProcess (boxes, classes, scores, count)'
    output_counts = (4,)
    outputs_doc = 'the 4 outputs of DetectionPostProcess (boxes, classes, scores, count)'

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        return Decoded(decode_ssd_postprocess(outputs, ctx.input_size,
                                              score_threshold=ctx.score_threshold,
                                              label_offset=ctx.options.label_offset,
                                              output_names=ctx.output_names))


class SegmentationAdapter(Adapter):
    name = 'segmentation'
    produces = frozenset({'mask'})
    summary = 'semantic segmentation: per-pixel class scores, probability or class map'

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        prob = segmentation_probability(outputs)
        if prob is not None:  # kept as a probability: mask_to_image interpolates it
            return Decoded(mask=prob)
        return Decoded(mask=decode_segmentation(outputs, ctx.num_classes))

    def mask_to_image(self, mask: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
        """A foreground probability (float) is brought to the image bilinearly, then
        thresholded at 0.5 (smooth edges at any image size); class ids map as usual."""
        if np.issubdtype(mask.dtype, np.floating):
            return (probability_to_image(mask, transform) > 0.5).astype(np.uint8)
        return mask_to_image(mask, transform)

    def check_outputs(self, shapes: Sequence[tuple[int | None, ...]],
                      manifest: ModelManifest) -> str | None:
        n = manifest.num_classes
        s = shapes[0] if shapes else ()
        if len(s) == 4 and None not in s and n not in (s[1], s[3]) and 1 not in (s[1], s[3]):
            return (f'segmentation output {list(s)} has no axis of {n} classes (labels); '
                    f'check the labels')
        return None


@dataclass(frozen=True)
class BlazeFaceOptions:
    """Manifest keys of the ``blazeface`` adapter (the SSD anchor layout)."""

    strides: tuple[int, ...] = field(default=(8, 16, 16, 16), metadata=param(
        'Stride of every anchor layer; consecutive equal strides share one grid, e.g. '
        '[8, 16, 16, 16] (short range) or [4] (full range).', min=1, max=1024))
    center_offset: float = field(default=0.5, metadata=param(
        'Anchor-centre offset within its cell (0.5 = the cell centre).', min=0.0, max=1.0))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.strides:
            raise ConfigError('BlazeFaceOptions.strides needs at least one stride')


class BlazeFaceAdapter(Adapter):
    """MediaPipe face detection (:func:`decode_blazeface`). Overlapping candidates are merged
    by weighted NMS (:func:`~.nms.weighted_nms`, as MediaPipe's graphs do: smoother boxes and
    keypoints than greedy NMS when a face fires several anchors) with the detector's NMS
    threshold, so the Detector's own NMS is skipped. Keypoints are not clipped to the image."""

    name = 'blazeface'
    produces = frozenset({'detections', 'keypoints'})
    options = BlazeFaceOptions
    summary = 'MediaPipe BlazeFace face detection: anchors, boxes + keypoints, weighted NMS'
    clip_keypoints = False

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        o = ctx.options
        cand = decode_blazeface(outputs, ctx.input_size, strides=o.strides,
                                anchor_offset=o.center_offset,
                                score_threshold=ctx.score_threshold)
        finite = np.isfinite(cand.boxes).all(axis=1) & np.isfinite(cand.keypoints).all(axis=(1, 2))
        boxes, scores, (points,) = weighted_nms(cand.boxes[finite], cand.scores[finite],
                                                ctx.nms_threshold, (cand.keypoints[finite],),
                                                max_keep=ctx.max_detections)
        return Decoded(Candidates(boxes, scores, np.zeros(len(scores), np.int32),
                                  nms_done=True, keypoints=points))

    def check_outputs(self, shapes: Sequence[tuple[int | None, ...]],
                      manifest: ModelManifest) -> str | None:
        regs = [s for s in shapes if len(s) == 3 and s[-1] is not None and s[-1] >= 4
                and (s[-1] - 4) % 2 == 0]
        if len(shapes) != 2 or len(regs) != 1 or not any(s and s[-1] == 1 for s in shapes):
            return (f'blazeface needs a regressor output [1, N, 4 + 2K] and a score output '
                    f'[1, N, 1], the model has {[list(s) for s in shapes]}')
        return None


@dataclass(frozen=True)
class DbTextOptions:
    """Manifest keys of the ``db_text`` adapter (the box threshold is ``score_threshold``)."""

    size_multiple: int = field(default=32, metadata=param(
        'Input sides must be multiples of this (the coarsest stride); input_size is then the '
        'default longest side of the input.', min=1, max=1024))
    bin_threshold: float = field(default=0.3, metadata=param(
        'Pixels with a text probability above this are text.', min=0.0, max=1.0))
    unclip_ratio: float = field(default=1.6, metadata=param(
        'Each text region grows by area x ratio / perimeter on every side.', min=0.0,
        max=10.0))

    def __post_init__(self) -> None:
        check_config(self)


class DbTextAdapter(Adapter):
    """DB text detection: quadrilaterals as boxes (their bounds) with the 4 corners as
    keypoints, class 0 (``text``), already without overlaps (no NMS). The output map has the
    input's resolution (PP-OCR), so its pixels are model-input pixels."""

    name = 'db_text'
    produces = frozenset({'detections', 'keypoints'})
    options = DbTextOptions
    summary = 'DB text detection (PP-OCR): text probability map -> line quadrilaterals'
    dynamic_input = True

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        if not len(outputs):
            raise ModelError('db_text: the model returned no output')
        o = ctx.options
        quads, scores = db_boxes(outputs[0], bin_threshold=o.bin_threshold,
                                 box_threshold=ctx.score_threshold,
                                 unclip_ratio=o.unclip_ratio,
                                 max_candidates=max(ctx.manifest.max_detections, 1))
        return Decoded(Candidates(quad_bounds(quads), scores, np.zeros(len(quads), np.int32),
                                  nms_done=True, keypoints=quads))

    def check_outputs(self, shapes: Sequence[tuple[int | None, ...]],
                      manifest: ModelManifest) -> str | None:
        shape = tuple(shapes[0]) if shapes else ()
        w, h = manifest.input_size
        spatial_ok = all(d is None or d == want for d, want in zip(shape[-2:], (h, w),
                                                                    strict=False))
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[1] not in (1, None)) \
                or not spatial_ok:
            return (f'db_text expects a [1, 1, H, W] text probability map at the input\'s '
                    f'resolution, the model outputs {[list(s) for s in shapes]}; is this a '
                    f'text detector?')
        return None

    def size_multiple(self, options: DbTextOptions) -> int:
        return options.size_multiple


class TextDirectionAdapter(Adapter):
    """Text direction: per input, its angle label (``'0'``, ``'180'``) and probability."""

    name = 'text_direction'
    produces = frozenset({'text'})
    summary = 'text line direction classifier (PP-OCR): [B, K] angle probabilities'
    resizable = False

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        angles, probs = decode_text_direction(outputs, ctx.manifest.labels)
        return Decoded(text=tuple((str(int(a)), float(p)) for a, p in zip(angles, probs,
                                                                           strict=True)))

    def check_outputs(self, shapes: Sequence[tuple[int | None, ...]],
                      manifest: ModelManifest) -> str | None:
        shape = tuple(shapes[0]) if shapes else ()
        if len(shape) != 2 or shape[1] not in (manifest.num_classes, None):
            return (f'text_direction expects [B, {manifest.num_classes}] probabilities of the '
                    f'labels {list(manifest.labels)}, the model outputs '
                    f'{[list(s) for s in shapes]}')
        return None


@dataclass(frozen=True)
class CtcTextOptions:
    """Manifest keys of the ``ctc_text`` adapter."""

    dictionary: str = field(default='', metadata=param(
        'UTF-8 file of the characters of classes 1..C-1, one per line (class 0 is the CTC '
        'blank), relative to the manifest.'))
    size_multiple: int = field(default=8, metadata=param(
        'Input widths are rounded up to multiples of this (the horizontal stride).', min=1,
        max=1024))
    space_threshold: float = field(default=0.0, metadata=param(
        "Insert a space between two characters where the space class reaches this probability "
        "in the gap (recognizers trained mostly without spaces leave the gaps between words "
        "blank); 0 = off.", min=0.0, max=1.0))

    def __post_init__(self) -> None:
        check_config(self)


class CtcTextAdapter(Adapter):
    """CTC text recognition: the characters of each input (best path), with confidence."""

    name = 'ctc_text'
    produces = frozenset({'text'})
    options = CtcTextOptions
    summary = 'CTC text recognition (CRNN/SVTR, PP-OCR): [B, T, 1 + dictionary] -> text'
    resizable = False
    dynamic_input = True

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        if not len(outputs):
            raise ModelError('ctc_text: the model returned no output')
        o = ctx.options
        return Decoded(text=tuple(ctc_greedy_decode(outputs[0], dictionary_file(o.dictionary),
                                                    space_threshold=o.space_threshold)))

    def resolve_files(self, options: CtcTextOptions, base: Path) -> CtcTextOptions:
        if not options.dictionary:
            return options
        return dataclasses.replace(options, dictionary=str((base / options.dictionary).resolve()))

    def check_manifest(self, manifest: ModelManifest) -> str | None:
        if not manifest.options.dictionary:
            return ("needs 'dictionary' (a file of the characters of classes 1..C-1, one per "
                    "line)")
        try:
            dictionary_file(manifest.options.dictionary)
        except ModelError as exc:
            return str(exc)
        return None

    def check_outputs(self, shapes: Sequence[tuple[int | None, ...]],
                      manifest: ModelManifest) -> str | None:
        classes = len(dictionary_file(manifest.options.dictionary)) + 1
        shape = tuple(shapes[0]) if shapes else ()
        if len(shape) != 3 or shape[2] not in (classes, None):
            return (f'ctc_text expects class scores [B, T, {classes}] (1 blank + '
                    f'{classes - 1} dictionary entries), the model outputs '
                    f'{[list(s) for s in shapes]}; the dictionary does not belong to this '
                    f'model')
        return None

    def size_multiple(self, options: CtcTextOptions) -> int:
        return options.size_multiple


def _check_adapter(adapter: Adapter, table: Mapping[str, Adapter]) -> None:
    if not isinstance(adapter, Adapter):
        raise TypeError(f'an adapter must be an Adapter instance, got {adapter!r}')
    if not adapter.name or adapter.name != adapter.name.lower():
        raise ValueError(f'adapter name {adapter.name!r} must be a non-empty lower-case name')
    unknown = set(adapter.produces) - set(OUTPUT_KINDS)
    if not adapter.produces or unknown:
        raise ValueError(f'adapter {adapter.name!r} produces {sorted(adapter.produces)}; '
                         f'expecting a non-empty subset of {list(OUTPUT_KINDS)}')
    if not dataclasses.is_dataclass(adapter.options):
        raise TypeError(f'adapter {adapter.name!r}: options must be a dataclass, got '
                        f'{adapter.options!r}')


#: Every model family, by the name a manifest's ``adapter:`` uses. One entry per family.
ADAPTERS: Registry[Adapter] = Registry('adapter', ModelError, _check_adapter, [
    NanodetAdapter(),
    Yolov5Adapter(),
    Yolov8Adapter(),
    YoloNmsAdapter(),
    SsdPostprocessAdapter(),
    SegmentationAdapter(),
    BlazeFaceAdapter(),
    DbTextAdapter(),
    TextDirectionAdapter(),
    CtcTextAdapter(),
])


def get_adapter(name: str) -> Adapter:
    """The adapter registered under ``name`` (case-insensitive).

    Raises:
        ModelError: "unknown adapter 'x', expecting one of [...]".
    """
    return ADAPTERS.lookup(name.strip().lower() if isinstance(name, str) else name)


def register_adapter(adapter: Adapter) -> Adapter:
    """Add ``adapter`` to :data:`ADAPTERS` at run time (a plugin, a test) and return it.

    Adapters shipped with edge_vision are entries of the table literal above instead.

    Raises:
        ValueError: the name is taken or invalid, or ``produces`` names an unknown kind.
        TypeError: not an Adapter instance, or options that are not a dataclass.
    """
    return ADAPTERS.register(adapter)

