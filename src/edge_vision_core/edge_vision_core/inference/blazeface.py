"""The ``blazeface`` adapter: MediaPipe face detection (BlazeFace) outputs -> faces + keypoints.

Pure functions, no runtime: :func:`ssd_anchor_centers` builds the SSD anchors of the model,
:func:`decode_blazeface` turns the raw outputs into candidates in model-input pixels, and
:func:`decode_faces` runs the whole decoding (threshold, weighted NMS, letterbox inverse) into
:class:`~edge_vision_core.types.Detections` with ``keypoints``.

Model contract (MediaPipe's face detection graphs; the shipped ``face-short`` and ``face-full``
models, see ``tools/models/convert_mediapipe.py``):

- input ``[1, H, W, 3]`` RGB scaled to [-1, 1] (``(pixel - 127.5) / 127.5``), the image
  letterboxed into it (aspect kept, black padding): 128x128 (short range, faces within about
  2 m) or 192x192 (full range, up to about 5 m);
- outputs, told apart by their last dimension: regressors ``[1, N, 4 + 2K]`` and scores
  ``[1, N, 1]`` (logits: score = sigmoid(clip(logit, -100, 100))), one row per anchor;
- anchors (SSD, fixed size): per stride ``s`` of the manifest's ``strides`` a grid of
  ``ceil(W / s) x ceil(H / s)`` cells, row-major, centred at ``((col + offset) * W / cols,
  (row + offset) * H / rows)`` with ``offset`` = the manifest's ``center_offset`` (0.5);
  consecutive equal strides share one grid, and every cell holds the same number of anchors
  per stride entry (derived from N: 2 for the short-range model's ``[8, 16, 16, 16]``, so
  16x16x2 + 8x8x6 = 896; 1 for the full-range ``[4]``, 48x48 = 2304);
- regressor row (input pixels, because the graphs scale by the input size): box centre offset
  from the anchor ``dx, dy``, box size ``w, h``, then K keypoint offsets ``(kx, ky)`` from the
  anchor. The K = 6 face keypoints are :data:`FACE_KEYPOINTS` (the person's right eye first).

Overlapping candidates are merged by weighted NMS (:func:`edge_vision_core.inference.nms.
weighted_nms`), as MediaPipe's graphs do, with the manifest's ``nms_threshold`` (0.3).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..errors import ModelError
from ..types import Detections
from .adapters import Candidates
from .letterbox import LetterboxTransform
from .nms import weighted_nms

__all__ = ['FACE_KEYPOINTS', 'decode_blazeface', 'decode_faces', 'ssd_anchor_centers']

#: The 6 keypoints of MediaPipe face detection, in output order ("right" = the person's right).
FACE_KEYPOINTS = ('right_eye', 'left_eye', 'nose_tip', 'mouth_center', 'right_ear_tragion',
                  'left_ear_tragion')


@functools.lru_cache(maxsize=16)
def ssd_anchor_centers(input_size: tuple[int, int], strides: tuple[int, ...],
                       num_anchors: int, offset: float = 0.5) -> np.ndarray:
    """(N, 2) float32 anchor centres ``(x, y)`` in model-input pixels, in the model's order.

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


def _split_outputs(outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
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
                     score_threshold: float = 0.5, max_candidates: int = 1000
                     ) -> tuple[Candidates, np.ndarray]:
    """Decode BlazeFace outputs into candidates before NMS (see the module docstring).

    Args:
        outputs: regressors ``[1, N, 4 + 2K]`` and scores ``[1, N, 1]``, in any order.
        input_size: ``(width, height)`` of the model input.
        strides: the anchor layers' strides (manifest ``strides``).
        anchor_offset: the manifest's ``center_offset``.
        score_threshold: keep anchors whose sigmoid score is > this.
        max_candidates: keep at most this many best anchors.

    Returns:
        ``(candidates, keypoints)``: boxes in model-input pixels with class 0, and (M, K, 2)
        float32 keypoints in model-input pixels, one row per candidate.

    Raises:
        ModelError: outputs that match no BlazeFace layout, or anchors that do not fit.
    """
    regs, logits = _split_outputs(outputs)
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
    return Candidates(boxes, scores[keep].astype(np.float32),
                      np.zeros(len(keep), np.int32)), keypoints


def decode_faces(outputs: Sequence[np.ndarray], transform: LetterboxTransform, *,
                 strides: Sequence[int], anchor_offset: float = 0.5,
                 score_threshold: float = 0.5, iou_threshold: float = 0.3,
                 max_detections: int = 100) -> Detections:
    """BlazeFace outputs -> faces in the original image's pixels, with keypoints.

    Args:
        outputs: the model's two outputs.
        transform: the letterbox the model input was made with (its ``dst_size`` is the
            model input size).
        strides, anchor_offset: the anchor layout (manifest ``strides``, ``center_offset``).
        score_threshold: minimum score.
        iou_threshold: weighted-NMS merge threshold.
        max_detections: keep at most this many faces, best first (0 = all).

    Returns:
        Detections (class 0 = face) with boxes clipped to the image, by decreasing score, and
        ``keypoints`` (N, K, 2) in image pixels (not clipped: a keypoint may lie outside).
    """
    cand, keypoints = decode_blazeface(outputs, transform.dst_size, strides=strides,
                                       anchor_offset=anchor_offset,
                                       score_threshold=score_threshold)
    finite = np.isfinite(cand.boxes).all(axis=1) & np.isfinite(keypoints).all(axis=(1, 2))
    boxes, scores, (points,) = weighted_nms(cand.boxes[finite], cand.scores[finite],
                                            iou_threshold, (keypoints[finite],),
                                            max_keep=max_detections)
    boxes = transform.model_to_image(boxes)
    points = transform.points_to_image(points, clip=False)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(boxes[ok], scores[ok], np.zeros(int(ok.sum()), np.int32),
                      keypoints=points[ok])
