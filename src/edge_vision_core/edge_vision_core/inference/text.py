"""Text models as pure functions: DB text detection, text direction, CTC text recognition.

The adapters ``db_text``, ``text_direction`` and ``ctc_text`` of the adapter table
(:mod:`.adapters`) decode with these functions; :class:`.ocr.TextReader` chains the three.

- ``db_text`` (Differentiable Binarization, Liao et al., AAAI 2020; PaddleOCR's PP-OCR
  detectors): one image input ``[1, 3, H, W]`` of any size that is a multiple of the options'
  ``size_multiple``; one output ``[1, 1, H, W]`` (or ``[1, H, W]``) of text probabilities in
  [0, 1] at the input's resolution. :func:`db_boxes` binarizes it at ``bin_threshold``, takes
  the outer contour of every connected region, its minimum-area rectangle, scores it by the mean
  probability inside, drops those under the box threshold (the manifest's
  ``score_threshold``), and grows the rest by ``area * unclip_ratio / perimeter`` on every side
  (DB shrank the text regions by that much in training).
- ``text_direction`` (PP-OCR's angle classifier): input ``[B, 3, h, w]`` (``input_size``
  ``[w, h]``), output ``[B, K]`` probabilities of the manifest's labels (``['0', '180']``: the
  line is upright or upside down).
- ``ctc_text`` (CRNN/SVTR recognizers trained with CTC): input ``[B, 3, h, W]`` with the
  height fixed (``input_size[1]``) and any width, output ``[B, T, C]`` per-step class
  probabilities, T = W / 8 for PP-OCR. Class 0 is the CTC blank, class ``i >= 1`` is line
  ``i - 1`` of the options' ``dictionary`` file (so C = 1 + dictionary size).
  :func:`ctc_greedy_decode` takes the best class per step, merges repeats, drops blanks.

Coordinates follow :mod:`edge_vision_core.types`: pixel corner coordinates, x right, y down.
A text line is a quadrilateral ``(4, 2)`` float32, corners clockwise from the top-left corner
of the text (top-left, top-right, bottom-right, bottom-left for upright text). Nothing here
touches a runtime.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError

__all__ = [
    'batch_by_width',
    'crop_quad',
    'ctc_greedy_decode',
    'db_boxes',
    'decode_ctc_text',
    'decode_text_direction',
    'dictionary_file',
    'line_tensor',
    'merge_line_pieces',
    'order_quad',
    'quad_bounds',
    'read_dictionary',
    'reading_order',
    'scaled_input_size',
]

#: a tall crop (height >= this x width) is vertical text: turned 90 degrees before reading.
VERTICAL_RATIO = 1.5


# -- geometry --------------------------------------------------------------------------------

def scaled_input_size(image_size: tuple[int, int], limit: int, multiple: int
                      ) -> tuple[int, int]:
    """The ``(width, height)`` of a dynamic-size model input for an image.

    The longer side is scaled to ``limit`` (up or down), the aspect kept, and both sides
    rounded to the nearest multiple of ``multiple`` (at least one multiple).

    Args:
        image_size: ``(width, height)`` of the image, both >= 1.
        limit: target length of the longer side in pixels.
        multiple: the model's size granularity (32 for PP-OCR detectors).
    """
    w, h = image_size
    scale = limit / max(w, h)
    step = max(1, int(multiple))

    def fit(v: float) -> int:
        return max(step, int(math.floor(v * scale / step + 0.5)) * step)  # half up

    return fit(w), fit(h)


def order_quad(points: np.ndarray) -> np.ndarray:
    """Four corners ordered clockwise (on screen, y down), starting at the top-left one.

    The top-left corner is the upper of the two left-most corners, so a line tilted by less
    than 45 degrees starts at the top-left of its first character.

    Args:
        points: (4, 2) corners in any order.

    Returns:
        (4, 2) float32.
    """
    pts = np.asarray(points, np.float32).reshape(4, 2)
    centre = pts.mean(axis=0)
    angle = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angle, kind='stable')]  # increasing angle = clockwise when y is down
    left = np.argsort(pts[:, 0], kind='stable')[:2]
    start = left[0] if pts[left[0], 1] <= pts[left[1], 1] else left[1]
    return np.roll(pts, -int(start), axis=0)


def quad_bounds(quads: np.ndarray) -> np.ndarray:
    """(N, 4) ``[x0, y0, x1, y1]`` axis-aligned bounds of (N, 4, 2) quadrilaterals."""
    q = np.asarray(quads, np.float32).reshape(-1, 4, 2)
    return np.concatenate([q.min(axis=1), q.max(axis=1)], axis=1)


def reading_order(quads: np.ndarray) -> np.ndarray:
    """Indices that sort text lines top to bottom, then left to right within a row.

    Lines whose vertical centres are closer than half the smaller line height share a row.

    Args:
        quads: (N, 4, 2) lines.

    Returns:
        (N,) int64 permutation.
    """
    bounds = quad_bounds(quads)
    if len(bounds) < 2:
        return np.arange(len(bounds))
    cy = (bounds[:, 1] + bounds[:, 3]) / 2
    height = np.maximum(bounds[:, 3] - bounds[:, 1], 1.0)
    rows: list[list[int]] = []
    row_cy = row_h = 0.0
    for i in np.argsort(cy, kind='stable'):
        if rows and abs(cy[i] - row_cy) < 0.5 * min(height[i], row_h):
            rows[-1].append(int(i))
        else:
            rows.append([int(i)])
            row_cy, row_h = float(cy[i]), float(height[i])
    return np.array([i for row in rows for i in sorted(row, key=lambda j: bounds[j, 0])],
                    np.int64)


def merge_line_pieces(quads: np.ndarray, scores: np.ndarray, gap: float = 0.6,
                      max_angle: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Join the words of one line that the detector found as separate boxes.

    A DB detector splits a line where the gap between words is wide for the input scale (large
    text, wide word spacing). Two boxes are joined when they run in the same direction (within
    ``max_angle`` degrees), have similar heights (ratio >= 0.6), sit on the same line (centre
    offset across the line < 0.3 x the smaller height) and the gap between their ends is below
    ``gap`` x the larger height. Joined boxes become the rectangle that spans them along the
    first box's direction.

    Args:
        quads: (N, 4, 2) lines ordered by :func:`order_quad`.
        scores: (N,) their scores (a joined box gets the length-weighted mean).
        gap: largest gap between joined boxes, in line heights (0 = never join).
        max_angle: largest direction difference in degrees.

    Returns:
        ``(quads, scores)`` with the joined lines (order: by the first box of each group).
    """
    q = np.asarray(quads, np.float32).reshape(-1, 4, 2)
    n = len(q)
    if n < 2 or gap <= 0:
        return q, np.asarray(scores, np.float32)
    along = (q[:, 1] - q[:, 0] + q[:, 2] - q[:, 3]) / 2
    length = np.maximum(np.linalg.norm(along, axis=1), 1e-6)
    unit = along / length[:, None]
    height = (np.linalg.norm(q[:, 3] - q[:, 0], axis=1) + np.linalg.norm(q[:, 2] - q[:, 1],
                                                                         axis=1)) / 2
    centre = q.mean(axis=1)
    cos_max = math.cos(math.radians(max_angle))
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        normal = np.array([-unit[i, 1], unit[i, 0]], np.float32)
        delta = centre - centre[i]
        lo, hi = np.minimum(height, height[i]), np.maximum(height, height[i])
        ok = (unit @ unit[i] >= cos_max) & (lo >= 0.6 * hi) \
            & (np.abs(delta @ normal) < 0.3 * lo) \
            & (np.abs(delta @ unit[i]) - (length + length[i]) / 2 < gap * hi)
        ok[i] = False
        for j in np.flatnonzero(ok):
            parent[root(int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    if len(groups) == n:
        return q, np.asarray(scores, np.float32)
    out_q, out_s = [], []
    for members in sorted(groups.values(), key=lambda m: m[0]):
        if len(members) == 1:
            out_q.append(q[members[0]])
            out_s.append(float(scores[members[0]]))
            continue
        first = members[0]
        u = unit[first]
        v = np.array([-u[1], u[0]], np.float32)
        points = q[members].reshape(-1, 2)
        a, b = points @ u, points @ v
        corners = [u * a.min() + v * b.min(), u * a.max() + v * b.min(),
                   u * a.max() + v * b.max(), u * a.min() + v * b.max()]
        out_q.append(order_quad(np.array(corners, np.float32)))
        weights = length[members]
        out_s.append(float(np.average(np.asarray(scores)[members], weights=weights)))
    return np.stack(out_q).astype(np.float32), np.asarray(out_s, np.float32)


# -- db_text ---------------------------------------------------------------------------------

def _mean_inside(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean of ``prob`` over the pixels whose centres fall in the polygon ``corners``."""
    h, w = prob.shape
    x0 = int(np.clip(np.floor(corners[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    shifted = np.round(corners - np.array([x0, y0], np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def db_boxes(prob: np.ndarray, *, bin_threshold: float = 0.3, box_threshold: float = 0.5,
             unclip_ratio: float = 1.6, min_size: float = 3.0, max_candidates: int = 1000,
             dilate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Text boxes from a DB probability map.

    Args:
        prob: (H, W) text probabilities in [0, 1] (leading axes of length 1 are dropped).
        bin_threshold: pixels above it are text.
        box_threshold: keep regions whose mean probability inside their rectangle is >= this.
        unclip_ratio: each rectangle grows by ``area * unclip_ratio / perimeter`` on every
            side (the inverse of DB's training-time shrink). The region's minimum-area
            rectangle is grown, so the grown outline is again a rectangle (offsetting a polygon
            with rounded corners, as the reference implementation does with a clipping library,
            has this rectangle as its minimum-area box).
        min_size: drop regions whose shorter side is below this (map pixels), and grown boxes
            whose shorter side is below ``min_size + 2``.
        max_candidates: look at most at this many regions, largest first.
        dilate: dilate the binary map by a 2x2 kernel first (joins characters of a line).

    Returns:
        ``(quads, scores)``: (N, 4, 2) float32 corners in map pixels (corner coordinates,
        ordered by :func:`order_quad`) and (N,) float32 box scores.

    Raises:
        ModelError: when ``prob`` is not a 2-D map.
    """
    prob = np.asarray(prob)
    while prob.ndim > 2 and prob.shape[0] == 1:
        prob = prob[0]
    if prob.ndim != 2 or 0 in prob.shape:
        raise ModelError(f'db_text: expected a [1, 1, H, W] probability map, got shape '
                         f'{tuple(np.shape(prob))}')
    prob = prob.astype(np.float32, copy=False)
    mask = (prob > bin_threshold).astype(np.uint8)
    if dilate:
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
    contours = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) > max_candidates:
        areas = np.array([cv2.contourArea(c) for c in contours])
        keep = np.argsort(-areas, kind='stable')[:max_candidates]
        contours = [contours[i] for i in sorted(keep)]
    quads, scores = [], []
    for contour in contours:
        centre, (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < min_size:
            continue
        # contour points are pixel indices; +0.5 makes them pixel-centre corner coordinates
        score = _mean_inside(prob, cv2.boxPoints((centre, (w, h), angle)))
        if score < box_threshold:
            continue
        grow = w * h * unclip_ratio / (2.0 * (w + h))
        w, h = w + 2 * grow, h + 2 * grow
        if min(w, h) < min_size + 2:
            continue
        corners = cv2.boxPoints(((centre[0] + 0.5, centre[1] + 0.5), (w, h), angle))
        quads.append(order_quad(corners))
        scores.append(score)
    if not quads:
        return np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32)
    return np.stack(quads).astype(np.float32), np.asarray(scores, np.float32)


# -- crops -------------------------------------------------------------------------------------

def crop_quad(image: np.ndarray, quad: np.ndarray, height: int = 0) -> np.ndarray:
    """The text line inside ``quad``, rectified to an upright rectangle.

    The top edge (corners 0 -> 1) becomes the top of the crop; a crop at least
    :data:`VERTICAL_RATIO` times taller than wide is turned 90 degrees counter-clockwise
    (vertical text then reads left to right).

    Args:
        image: (H, W, C) or (H, W) image.
        quad: (4, 2) corners as :func:`order_quad` orders them, in image pixels.
        height: when > 0, scale the crop to this height (aspect kept, area interpolation
            when shrinking) after rectifying.

    Returns:
        The crop, at least 1 x 1 pixels.
    """
    q = np.asarray(quad, np.float32).reshape(4, 2)
    width = max(np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3]))
    tall = max(np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1]))
    w, h = max(1, int(round(width))), max(1, int(round(tall)))
    # corner coordinates -> OpenCV's pixel-centre coordinates on both sides
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32) - 0.5
    matrix = cv2.getPerspectiveTransform(q - 0.5, dst)
    crop = cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    if h >= VERTICAL_RATIO * w:
        crop = np.ascontiguousarray(np.rot90(crop))
        w, h = h, w
    if height > 0 and h != height:
        new_w = max(1, int(math.ceil(w * height / h)))
        crop = cv2.resize(crop, (new_w, height),
                          interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
    return crop


def line_tensor(crops: Sequence[np.ndarray], height: int, width: int, mean: Sequence[float],
                std: Sequence[float], *, max_width: int = 0, multiple: int = 8
                ) -> tuple[np.ndarray, np.ndarray]:
    """One NCHW float32 batch of line crops, left-aligned and padded on the right.

    Args:
        crops: (h, w, 3) uint8 crops in the model's colour order.
        height: model input height; crops are scaled to it, aspect kept.
        width: the batch width before rounding: at least the widest scaled crop unless
            ``max_width`` caps it (wider crops are squeezed to it).
        mean, std: per-channel normalisation in pixel units (``(x - mean) / std``).
        max_width: when > 0, no crop is wider than this.
        multiple: the batch width is rounded up to a multiple of this.

    Returns:
        ``(tensor, widths)``: (B, 3, height, W) float32 with the padding at 0 (the
        normalised mean), and (B,) int32 the width each crop occupies.
    """
    batch_w = max(multiple, -(-int(width) // multiple) * multiple)
    if max_width:
        batch_w = min(batch_w, max(multiple, max_width // multiple * multiple))
    tensor = np.zeros((len(crops), 3, height, batch_w), np.float32)
    widths = np.zeros(len(crops), np.int32)
    scale = np.float32(1.0) / np.asarray(std, np.float32)
    offset = -np.asarray(mean, np.float32) * scale
    for i, crop in enumerate(crops):
        h, w = crop.shape[:2]
        new_w = min(batch_w, max(1, int(math.ceil(w * height / h))))
        if (h, w) != (height, new_w):
            crop = cv2.resize(crop, (new_w, height),
                              interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
        if crop.ndim == 2 or crop.shape[2] == 1:
            crop = np.repeat(crop.reshape(height, new_w, 1), 3, axis=2)
        # NumPy, not cv2 with dst=: the target is a strided view of the batch
        tensor[i, :, :, :new_w] = (crop.astype(np.float32) * scale + offset).transpose(2, 0, 1)
        widths[i] = new_w
    return tensor, widths


def batch_by_width(widths: Sequence[int], max_batch: int, spread: float = 1.5
                   ) -> list[np.ndarray]:
    """Group line crops into batches of similar widths (a batch costs its widest crop).

    Crops are sorted by width; a batch closes when it holds ``max_batch`` crops or the next
    crop is more than ``spread`` times wider than the batch's first (narrowest) one.

    Args:
        widths: (N,) scaled crop widths in pixels.
        max_batch: most crops per batch (>= 1).
        spread: the widest crop of a batch is at most this multiple of its narrowest.

    Returns:
        Index arrays into ``widths``, narrowest batch first.
    """
    w = np.asarray(widths, np.float64).reshape(-1)
    order = np.argsort(w, kind='stable')
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < max_batch and w[i] <= spread * w[batches[-1][0]]:
            batches[-1].append(int(i))
        else:
            batches.append([int(i)])
    return [np.asarray(b, np.int64) for b in batches]


# -- text_direction --------------------------------------------------------------------------

def decode_text_direction(outputs: Sequence[np.ndarray], labels: Sequence[str]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Angles and scores of a direction classifier's ``[B, K]`` output.

    Args:
        outputs: the model outputs; the first is ``[B, K]`` probabilities, K = len(labels).
        labels: the angle of each class in degrees, as text (``'0'``, ``'180'``).

    Returns:
        ``(angles, scores)``: (B,) int32 degrees and (B,) float32 probabilities.

    Raises:
        ModelError: another shape or a label that is not a number of degrees.
    """
    probs = np.asarray(outputs[0], np.float32) if len(outputs) else np.zeros((0,))
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ModelError(f'text_direction: expected a [B, {len(labels)}] output (one '
                         f'probability per label {list(labels)}), got {tuple(probs.shape)}')
    try:
        degrees = np.array([int(float(v)) for v in labels], np.int32)
    except ValueError as exc:
        raise ModelError(f'text_direction: labels must be angles in degrees, got '
                         f'{list(labels)}') from exc
    best = probs.argmax(axis=1)
    return degrees[best], probs[np.arange(len(probs)), best]


# -- ctc_text --------------------------------------------------------------------------------

def read_dictionary(path: str | Path) -> tuple[str, ...]:
    """The characters of a CTC dictionary file: one entry per line, UTF-8.

    Only the line break is removed, so entries that are whitespace (a space, U+3000) survive.
    A final line break does not make an empty last entry.

    Raises:
        ModelError: unreadable file, not UTF-8, empty, or an empty entry (naming the line).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode('utf-8')
    except OSError as exc:
        raise ModelError(f'cannot read the dictionary {path}: {exc.strerror}') from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f'the dictionary {path} is not UTF-8 text: {exc}') from exc
    lines = text.split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    entries = tuple(line[:-1] if line.endswith('\r') else line for line in lines)
    if not entries:
        raise ModelError(f'the dictionary {path} is empty')
    empty = [i + 1 for i, e in enumerate(entries) if e == '']
    if empty:
        raise ModelError(f'the dictionary {path} has empty entries at line(s) {empty[:5]}; '
                         f'every line must hold one character or token')
    return entries


@functools.lru_cache(maxsize=16)
def _cached_dictionary(path: str, stamp: tuple[int, int]) -> tuple[str, ...]:
    return read_dictionary(path)


def dictionary_file(path: str | Path) -> tuple[str, ...]:
    """:func:`read_dictionary`, cached per file (and re-read when the file changes)."""
    try:
        info = Path(path).stat()
    except OSError as exc:
        raise ModelError(f'cannot read the dictionary {path}: {exc.strerror}') from exc
    return _cached_dictionary(str(path), (info.st_mtime_ns, info.st_size))


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis unless the values already are probabilities."""
    lo, hi = float(scores.min(initial=0.0)), float(scores.max(initial=0.0))
    if lo >= 0.0 and hi <= 1.0 + 1e-3:
        return scores
    shifted = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def ctc_greedy_decode(scores: np.ndarray, dictionary: Sequence[str],
                      steps: Sequence[int] | None = None, blank: int = 0,
                      space_threshold: float = 0.0) -> list[tuple[str, float]]:
    """Best-path CTC decoding: best class per step, repeats merged, blanks dropped.

    Recognizers trained mostly on scripts without spaces (PP-OCR's Chinese models) often let
    the blank win the gap between two Latin words while the space class still rises there
    (0.05-0.7 at word gaps, at most 0.01 inside words on the rendered evaluation set).
    ``space_threshold`` > 0 inserts a space between two characters when the space class
    reaches it on a step between them.

    Args:
        scores: (B, T, C) per-step class probabilities (logits are softmaxed first).
        dictionary: the C - 1 entries of classes 1..C-1 (class 0 is the blank).
        steps: per item, the number of leading steps that cover its image (padding on the
            right is ignored); None = all T.
        blank: index of the blank class.
        space_threshold: see above; 0 turns it off (also when the dictionary has no ' ').

    Returns:
        Per item ``(text, score)``: score = mean probability of the kept steps (0.0 for an
        empty text).

    Raises:
        ModelError: a shape that does not match the dictionary.
    """
    probs = np.asarray(scores)
    if probs.ndim == 2:
        probs = probs[None]
    if probs.ndim != 3 or probs.shape[2] != len(dictionary) + 1:
        raise ModelError(f'ctc_text: expected [B, T, {len(dictionary) + 1}] class scores (1 '
                         f'blank + {len(dictionary)} dictionary entries), got '
                         f'{tuple(np.shape(scores))}; the dictionary does not belong to this '
                         f'model')
    probs = _as_probabilities(probs.astype(np.float32, copy=False))
    best = probs.argmax(axis=2)
    conf = np.take_along_axis(probs, best[..., None], axis=2)[..., 0]
    table = ('',) + tuple(dictionary)
    space = table.index(' ') if space_threshold > 0 and ' ' in table else -1
    out: list[tuple[str, float]] = []
    for b in range(probs.shape[0]):
        n = probs.shape[1] if steps is None else int(min(max(steps[b], 0), probs.shape[1]))
        seq = best[b, :n]
        keep = seq != blank
        keep[1:] &= seq[1:] != seq[:-1]
        if not keep.any():
            out.append(('', 0.0))
            continue
        at = np.flatnonzero(keep)
        chars = [table[i] if i < len(table) else '' for i in seq[at].tolist()]
        if space >= 0 and len(at) > 1:
            gap = probs[b, :n, space]
            spaced = [chars[0]]
            for k in range(1, len(at)):
                if chars[k] != ' ' and spaced[-1] != ' ' and at[k] - at[k - 1] > 1 and \
                        gap[at[k - 1] + 1:at[k]].max() >= space_threshold:
                    spaced.append(' ')
                spaced.append(chars[k])
            chars = spaced
        out.append((''.join(chars), float(conf[b, :n][keep].mean())))
    return out


def decode_ctc_text(outputs: Sequence[np.ndarray], dictionary: Sequence[str],
                    widths: Sequence[int] | None = None, input_width: int = 0,
                    space_threshold: float = 0.0) -> list[tuple[str, float]]:
    """Decode a CTC recognizer's ``[B, T, C]`` output of a batch of padded line crops.

    Args:
        outputs: the model outputs; the first is ``[B, T, C]``.
        dictionary: entries of classes 1..C-1.
        widths: (B,) pixels each crop occupies in the batch (see :func:`line_tensor`); the
            steps beyond (plus one) are ignored. None: use every step.
        input_width: the batch tensor's width W (needed with ``widths``).
        space_threshold: see :func:`ctc_greedy_decode`.
    """
    if not len(outputs):
        raise ModelError('ctc_text: the model returned no output')
    scores = np.asarray(outputs[0])
    steps = None
    if widths is not None and input_width > 0 and scores.ndim == 3:
        per_px = scores.shape[1] / float(input_width)
        steps = [int(math.ceil(w * per_px)) + 1 for w in widths]
    return ctc_greedy_decode(scores, dictionary, steps, space_threshold=space_threshold)
