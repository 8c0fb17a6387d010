"""OCR accuracy: word accuracy and character accuracy (1 - CER) against ground-truth lines.

Predicted lines are matched to ground-truth lines by place, not by order: each predicted line
goes to the ground-truth line its quadrilateral overlaps most, when that overlap covers at
least ``min_overlap`` of the predicted line's area (ground-truth boxes are grown by a third of
their height first: a reader's box is looser than the ink). The predicted lines of one
ground-truth line are joined left to right with a space (a reader may split a line in two).

Texts are compared after Unicode NFKC normalisation (full-width punctuation and letters become
their ASCII forms) with runs of whitespace collapsed; letter case counts.

- **word accuracy** = words of the ground truth found in the matched prediction (multiset
  intersection of the whitespace-separated words, per line) / words of the ground truth;
- **character accuracy** = 1 - CER, CER = sum of Levenshtein distances between each
  ground-truth line and its matched prediction ('' when none) / characters of the ground truth
  (it can go below 0 when a reader inserts much more than there is);
- **word precision** = matched words / words predicted (predicted lines that match no
  ground-truth line count as wrong words), so a reader cannot win by printing everything.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ['OcrScore', 'edit_distance', 'match_lines', 'normalize_text', 'score_image',
           'sum_scores']


def normalize_text(text: str) -> str:
    """NFKC, whitespace runs collapsed to one space, stripped."""
    return ' '.join(unicodedata.normalize('NFKC', text).split())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions of one character)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _grow(quad: np.ndarray, fraction: float) -> np.ndarray:
    """A quadrilateral grown on every side by ``fraction`` of its height."""
    q = np.asarray(quad, np.float32).reshape(4, 2)
    height = 0.5 * (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1]))
    centre, (w, h), angle = cv2.minAreaRect(q)
    if w <= 0 or h <= 0:
        return q
    return cv2.boxPoints((centre, (w + 2 * fraction * height, h + 2 * fraction * height),
                          angle))


def _area(quad: np.ndarray) -> float:
    return float(abs(cv2.contourArea(np.asarray(quad, np.float32).reshape(-1, 1, 2))))


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area of two convex quadrilaterals (non-convex ones use their hulls)."""
    pa = cv2.convexHull(np.asarray(a, np.float32).reshape(-1, 1, 2))
    pb = cv2.convexHull(np.asarray(b, np.float32).reshape(-1, 1, 2))
    area, _ = cv2.intersectConvexConvex(pa, pb)
    return max(float(area), 0.0)


def match_lines(truth: Sequence[np.ndarray], predicted: Sequence[np.ndarray],
                min_overlap: float = 0.3) -> np.ndarray:
    """For each predicted quad the index of its ground-truth line, -1 for none.

    Args:
        truth: (4, 2) ground-truth quadrilaterals.
        predicted: (4, 2) predicted quadrilaterals.
        min_overlap: least fraction of the predicted area inside the (grown) ground truth.

    Returns:
        (len(predicted),) int64.
    """
    grown = [_grow(t, 1 / 3) for t in truth]
    out = np.full(len(predicted), -1, np.int64)
    for i, quad in enumerate(predicted):
        area = _area(quad)
        if area <= 0 or not grown:
            continue
        overlaps = np.array([_overlap(quad, g) for g in grown])
        best = int(overlaps.argmax())
        if overlaps[best] >= min_overlap * area:
            out[i] = best
    return out


@dataclass(frozen=True)
class OcrScore:
    """Counts behind the accuracies (add them over images with :func:`sum_scores`).

    Attributes:
        words: ground-truth words; words_found: of them found; words_predicted: all words
            read (matched or not); chars: ground-truth characters; char_errors: summed edit
            distances; lines: ground-truth lines; lines_exact: of them read exactly.
    """

    words: int = 0
    words_found: int = 0
    words_predicted: int = 0
    chars: int = 0
    char_errors: int = 0
    lines: int = 0
    lines_exact: int = 0

    @property
    def word_accuracy(self) -> float:
        return self.words_found / self.words if self.words else 1.0

    @property
    def word_precision(self) -> float:
        return self.words_found / self.words_predicted if self.words_predicted else 1.0

    @property
    def char_accuracy(self) -> float:
        return 1.0 - self.char_errors / self.chars if self.chars else 1.0

    @property
    def line_accuracy(self) -> float:
        return self.lines_exact / self.lines if self.lines else 1.0

    def as_dict(self) -> dict[str, float]:
        return {'word_accuracy': round(self.word_accuracy, 4),
                'char_accuracy': round(self.char_accuracy, 4),
                'word_precision': round(self.word_precision, 4),
                'line_accuracy': round(self.line_accuracy, 4), 'words': self.words,
                'chars': self.chars, 'lines': self.lines}


def sum_scores(scores: Sequence[OcrScore]) -> OcrScore:
    """Field-wise sum."""
    total = OcrScore()
    for s in scores:
        total = OcrScore(*(a + b for a, b in zip(
            (total.words, total.words_found, total.words_predicted, total.chars,
             total.char_errors, total.lines, total.lines_exact),
            (s.words, s.words_found, s.words_predicted, s.chars, s.char_errors, s.lines,
             s.lines_exact), strict=True)))
    return total


def score_image(truth: Sequence[tuple[str, np.ndarray]],
                predicted: Sequence[tuple[str, np.ndarray]],
                min_overlap: float = 0.3) -> OcrScore:
    """Score one image's predicted lines against its ground truth.

    Args:
        truth: ``(text, (4, 2) quad)`` per ground-truth line.
        predicted: ``(text, (4, 2) quad)`` per line read.
        min_overlap: see :func:`match_lines`.
    """
    owner = match_lines([q for _, q in truth], [q for _, q in predicted], min_overlap)
    words = found = chars = errors = exact = 0
    predicted_words = sum(len(normalize_text(t).split()) for t, _ in predicted)
    for index, (text, quad) in enumerate(truth):
        mine = [i for i in range(len(predicted)) if owner[i] == index]
        direction = np.asarray(quad, np.float32).reshape(4, 2)
        axis = direction[1] - direction[0]
        mine.sort(key=lambda i: float(np.asarray(predicted[i][1]).reshape(4, 2).mean(0) @ axis))
        read = normalize_text(' '.join(predicted[i][0] for i in mine))
        want = normalize_text(text)
        want_words = Counter(want.split())
        words += sum(want_words.values())
        found += sum((want_words & Counter(read.split())).values())
        chars += len(want)
        errors += edit_distance(want, read)
        exact += int(want == read)
    return OcrScore(words, found, predicted_words, chars, errors, len(truth), exact)
