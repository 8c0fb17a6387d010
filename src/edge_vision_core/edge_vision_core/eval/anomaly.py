"""Anomaly-detection metrics (image AUROC, pixel AUROC, PRO) and MVTec-AD-style folders.

Folder layout (MVTec AD; :func:`read_anomaly_dataset`)::

    <category>/train/good/*.png                      normal images to fit on
    <category>/test/good/*.png                       normal test images
    <category>/test/<defect>/*.png                   anomalous test images, one folder per type
    <category>/ground_truth/<defect>/<name>_mask.png  non-zero = defect pixel

``root`` may be one category or a folder of categories. A defect image without a mask counts for
image metrics only.

Metrics:

- :func:`auroc`: area under the ROC curve as the Mann-Whitney U statistic,
  ``(sum of positive ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with average ranks for
  ties (a tie between a positive and a negative counts one half), i.e. the probability that a
  random anomalous sample scores higher than a random normal one.
- image AUROC: frame scores of ``test/good`` (negatives) vs defect images (positives), per
  defect type (good vs that type) and over all types.
- pixel AUROC: every pixel of every test image, defect-mask pixels positive.
- PRO (per-region overlap, Bergmann et al. 2021): for thresholds whose pixel false-positive rate
  on normal pixels is in [0, ``max_fpr``], the mean over ground-truth connected regions of the
  fraction of the region above the threshold; :func:`pro_auc` is the area under that curve
  divided by ``max_fpr`` (1.0 is perfect).

Pixel metrics are computed on heatmaps and masks resized so that the longer side is at most
``pixel_max_side`` (256 by default, masks with nearest-neighbour), which keeps the memory and
time of large images bounded; 0 evaluates at full resolution.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError, SourceError
from ..io.files import IMAGE_SUFFIXES

__all__ = [
    'AnomalyDataset',
    'AnomalySample',
    'CategoryResult',
    'DefectResult',
    'auroc',
    'evaluate_category',
    'find_categories',
    'pixel_auroc',
    'pro_auc',
    'read_anomaly_dataset',
]

_LOG = logging.getLogger(__name__)


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    Args:
        scores: (N,) higher = more anomalous.
        labels: (N,) True/1 for anomalous (positive), False/0 for normal.

    Returns:
        AUROC in [0, 1]; 0.5 = chance.

    Raises:
        ConfigError: mismatched lengths, non-finite scores, or only one class present.
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ConfigError(f'auroc: {s.size} scores but {y.size} labels')
    if not np.all(np.isfinite(s)):
        raise ConfigError('auroc: scores must be finite')
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ConfigError(f'auroc needs both classes, got {n_pos} positive and {n_neg} '
                          f'negative samples')
    ranks = rankdata(s)  # average ranks for ties
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def _resize_for_pixels(heatmap: np.ndarray, mask: np.ndarray, max_side: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    if heatmap.shape != mask.shape:
        raise ConfigError(f'heatmap {heatmap.shape} and mask {mask.shape} differ in size')
    h, w = mask.shape
    if max_side <= 0 or max(h, w) <= max_side:
        return heatmap, mask
    scale = max_side / max(h, w)
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return (cv2.resize(heatmap.astype(np.float32), size, interpolation=cv2.INTER_AREA),
            cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0)


def pixel_auroc(heatmaps: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                max_side: int = 256) -> float:
    """Pixel-level AUROC over all images.

    Args:
        heatmaps: per image (H, W) float scores.
        masks: per image (H, W) bool/uint8 defect masks (all zero for normal images).
        max_side: evaluate at this longer side at most (0 = full resolution).

    Raises:
        ConfigError: size mismatch or no defect / no normal pixel.
    """
    pairs = [_resize_for_pixels(np.asarray(h), np.asarray(m) > 0, max_side)
             for h, m in zip(heatmaps, masks, strict=True)]
    if not pairs:
        raise ConfigError('pixel_auroc needs at least one image')
    scores = np.concatenate([h.ravel() for h, _ in pairs])
    labels = np.concatenate([m.ravel() for _, m in pairs])
    return auroc(scores, labels)


def pro_auc(heatmaps: Sequence[np.ndarray], masks: Sequence[np.ndarray],
            max_fpr: float = 0.3, steps: int = 300, max_side: int = 256) -> float:
    """Normalised area under the per-region-overlap curve up to ``max_fpr``.

    Args:
        heatmaps: per image (H, W) float scores.
        masks: per image (H, W) defect masks.
        max_fpr: upper false-positive-rate limit of the integration (MVTec: 0.3).
        steps: FPR sample points in [0, max_fpr].
        max_side: evaluate at this longer side at most (0 = full resolution).

    Returns:
        In [0, 1]; 1 = every region fully covered before any normal pixel is flagged.

    Raises:
        ConfigError: no defect region or no normal pixel.
    """
    if not 0 < max_fpr <= 1:
        raise ConfigError(f'max_fpr must be in (0, 1], got {max_fpr}')
    pairs = [_resize_for_pixels(np.asarray(h, np.float32), np.asarray(m) > 0, max_side)
             for h, m in zip(heatmaps, masks, strict=True)]
    normal = np.sort(np.concatenate([h[~m] for h, m in pairs]))
    regions: list[np.ndarray] = []
    for h, m in pairs:
        if not m.any():
            continue
        count, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        regions.extend(np.sort(h[labels == k]) for k in range(1, count))
    if normal.size == 0 or not regions:
        raise ConfigError('PRO needs normal pixels and at least one defect region')
    fprs = np.linspace(0.0, max_fpr, steps + 1)
    # threshold for each FPR: the score above which a fraction `fpr` of normal pixels lies
    idx = np.clip(np.ceil((1.0 - fprs) * normal.size).astype(np.int64) - 1, 0,
                  normal.size - 1)
    thresholds = normal[idx]
    real_fpr = 1.0 - np.searchsorted(normal, thresholds, side='right') / normal.size
    overlap = np.mean([1.0 - np.searchsorted(r, thresholds, side='right') / r.size
                       for r in regions], axis=0)
    order = np.argsort(real_fpr, kind='stable')
    grid = fprs  # resample the (FPR, overlap) points, both non-decreasing, on a uniform grid
    curve = np.interp(grid, real_fpr[order], overlap[order])
    area = float(np.sum((grid[1:] - grid[:-1]) * (curve[1:] + curve[:-1]) / 2.0))
    return area / max_fpr


@dataclass(frozen=True)
class AnomalySample:
    """One test image: its path, defect type ('good' for normal) and mask path (or None)."""

    path: Path
    defect: str
    mask_path: Path | None = None

    @property
    def is_anomalous(self) -> bool:
        return self.defect != 'good'


@dataclass(frozen=True)
class AnomalyDataset:
    """One category of an MVTec-like folder."""

    root: Path
    category: str
    train: tuple[Path, ...]
    test: tuple[AnomalySample, ...]

    @property
    def defects(self) -> tuple[str, ...]:
        return tuple(sorted({s.defect for s in self.test if s.is_anomalous}))


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file()
                  and p.suffix.lower() in IMAGE_SUFFIXES)


def read_anomaly_dataset(root: str | Path) -> AnomalyDataset:
    """Read one MVTec-like category folder (see the module docstring).

    Raises:
        SourceError: no ``test`` folder, no normal or no anomalous test image.
    """
    root = Path(root).expanduser()
    test_dir = root / 'test'
    if not test_dir.is_dir():
        raise SourceError(f'{root} is not an MVTec-like category: no test/ folder (expected '
                          f'train/good, test/good, test/<defect>, ground_truth/<defect>)')
    samples = [AnomalySample(p, 'good') for p in _images(test_dir / 'good')]
    for sub in sorted(p for p in test_dir.iterdir() if p.is_dir() and p.name != 'good'):
        for image in _images(sub):
            mask = None
            for suffix in ('.png', image.suffix):
                candidate = root / 'ground_truth' / sub.name / f'{image.stem}_mask{suffix}'
                if candidate.is_file():
                    mask = candidate
                    break
            samples.append(AnomalySample(image, sub.name, mask))
    if not any(not s.is_anomalous for s in samples):
        raise SourceError(f'{test_dir / "good"} holds no normal test image')
    if not any(s.is_anomalous for s in samples):
        raise SourceError(f'{test_dir} holds no defect folder with images')
    return AnomalyDataset(root, root.name, tuple(_images(root / 'train' / 'good')),
                          tuple(samples))


def find_categories(root: str | Path) -> list[Path]:
    """``[root]`` if it is a category, else its sub-folders that are categories.

    Raises:
        SourceError: neither.
    """
    root = Path(root).expanduser()
    if (root / 'test').is_dir():
        return [root]
    found = sorted(p for p in root.iterdir() if (p / 'test').is_dir()) if root.is_dir() else []
    if not found:
        raise SourceError(f'{root} holds no MVTec-like category (a folder with test/ and '
                          f'train/good/)')
    return found


@dataclass
class DefectResult:
    """Metrics of one defect type (its images against the category's normal test images)."""

    defect: str
    num_images: int
    image_auroc: float
    pixel_auroc: float | None
    pro: float | None
    detected: int  # defect images whose score exceeded the threshold


@dataclass
class CategoryResult:
    """Metrics of one category.

    Attributes:
        image_auroc, pixel_auroc, pro: over every test image.
        false_alarms: normal test images above the threshold; ``detected``: defect images
            above it (the calibrated threshold's operating point).
        per_defect: the same per defect type.
        fit_seconds: fitting time (0 when a model file was given).
        ms_per_frame: mean :meth:`score` time per test image.
    """

    category: str
    num_train: int
    num_good: int
    num_defect: int
    image_auroc: float
    pixel_auroc: float | None
    pro: float | None
    threshold: float
    false_alarms: int
    detected: int
    fit_seconds: float
    ms_per_frame: float
    per_defect: list[DefectResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path, gray: bool = False) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f'cannot read image {path}')
    return image


def evaluate_category(detector: Any, dataset: AnomalyDataset, *, fit: bool = True,
                      pixel_max_side: int = 256, heatmap_dir: str | Path | None = None
                      ) -> CategoryResult:
    """Fit (optionally) and score one category.

    Args:
        detector: an :class:`~edge_vision_core.anomaly.AnomalyDetector` (fitted, or fitted
            here on ``train/good`` when ``fit``).
        dataset: the category.
        fit: fit on ``dataset.train`` first.
        pixel_max_side: resolution limit of the pixel metrics (0 = full).
        heatmap_dir: if given, write each test image's mono8 heatmap there
            (``<defect>/<name>.png``).

    Raises:
        SourceError: unreadable images, or ``fit`` without training images.
    """
    fit_seconds = 0.0
    if fit:
        if not dataset.train:
            raise SourceError(f'{dataset.root / "train" / "good"} holds no training image')
        t0 = time.perf_counter()
        detector.fit(_read(p) for p in dataset.train)
        fit_seconds = time.perf_counter() - t0
    scores, labels, heatmaps, masks, defects = [], [], [], [], []
    total_ms = 0.0
    for sample in dataset.test:
        image = _read(sample.path)
        t0 = time.perf_counter()
        result = detector.score(image)
        total_ms += (time.perf_counter() - t0) * 1e3
        scores.append(result.score)
        labels.append(sample.is_anomalous)
        defects.append(sample.defect)
        heatmaps.append(result.heatmap)
        if sample.is_anomalous:
            masks.append(None if sample.mask_path is None else _read(sample.mask_path, True) > 0)
        else:
            masks.append(np.zeros(image.shape[:2], bool))
        if masks[-1] is not None and masks[-1].shape != result.heatmap.shape:
            raise SourceError(f'mask {sample.mask_path} is {masks[-1].shape[::-1]} but its '
                              f'image is {result.heatmap.shape[::-1]}')
        if heatmap_dir is not None:
            out = Path(heatmap_dir) / dataset.category / sample.defect
            out.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / f'{sample.path.stem}.png'), result.heatmap_mono8())
    threshold = detector.threshold
    scores_a = np.asarray(scores)
    labels_a = np.asarray(labels)
    defects_a = np.asarray(defects)

    # every image at the pixel metrics' resolution once (normal images serve every defect)
    pixels = [None if m is None else _resize_for_pixels(np.asarray(h, np.float32),
                                                        np.asarray(m) > 0, pixel_max_side)
              for h, m in zip(heatmaps, masks, strict=True)]

    def pixel_metrics(index: np.ndarray) -> tuple[float | None, float | None]:
        chosen = [pixels[i] for i in index if pixels[i] is not None]
        hm = [h for h, _ in chosen]
        mk = [m for _, m in chosen]
        if not any(m.any() for m in mk):
            return None, None
        return pixel_auroc(hm, mk, max_side=0), pro_auc(hm, mk, max_side=0)

    good = np.flatnonzero(~labels_a)
    per_defect = []
    for defect in dataset.defects:
        idx = np.flatnonzero(defects_a == defect)
        both = np.concatenate([good, idx])
        pa, pro = pixel_metrics(both)
        per_defect.append(DefectResult(
            defect, len(idx), auroc(scores_a[both], labels_a[both]), pa, pro,
            int((scores_a[idx] > threshold).sum())))
    pa, pro = pixel_metrics(np.arange(len(scores)))
    return CategoryResult(
        dataset.category, len(dataset.train), len(good), int(labels_a.sum()),
        auroc(scores_a, labels_a), pa, pro, float(threshold),
        int((scores_a[good] > threshold).sum()),
        int((scores_a[labels_a] > threshold).sum()), fit_seconds,
        total_ms / max(len(scores), 1), per_defect)
