"""The anomaly detector: learn normal appearance, then score, map and box what is not normal.

One :class:`AnomalyDetector` per camera (what ``anomaly_node`` owns):

- :meth:`AnomalyDetector.fit` from a folder, a glob, a video or any iterable of frames: patch
  embeddings of the normal frames (:mod:`.features`, :mod:`.embedding`) become a PatchCore
  memory bank or PaDiM Gaussians; the frame-score threshold is calibrated on out-of-fold scores
  of the normal frames (each scored by the model without its fold, see :meth:`fit`);
- :meth:`AnomalyDetector.score` per frame: frame score (mean of the ``score_top_k`` highest
  pixels of the smoothed heatmap, times the method's frame weight: PatchCore's reweighting by
  the memory bank's density), decision, heatmap on the image, anomalous regions as
  ``Detections`` and stage timings;
- "learn normal" on a live stream: :meth:`start_learning`, :meth:`learn` per frame,
  :meth:`finish_learning` refits (the node can run it in a worker and keep publishing);
- :meth:`save` / :meth:`load` the one-file model (:mod:`.model_file`, a typed
  :class:`~.model_file.ModelHeader`); loading refuses a file made for another backbone, input
  size or format version.

The method (PatchCore, PaDiM) is an object of the :data:`~.methods.METHODS` table; the detector
only calls its interface (fit, score, frame weight, arrays).

Configuration (:class:`AnomalyConfig`) splits in two: fields that define a fitted model
(backbone, method, input size, resize, layers, patch pool, feature dim, coreset, smoothing) are
read-only and, when a model file is loaded, taken from the file (backbone and an explicit input
size must match it); ``threshold``, ``min_region_area`` and ``max_regions`` may change at run
time (:meth:`AnomalyDetector.update_config`).

Coordinate frames: images are bgr8 (H, W, 3) uint8 (mono8/bgra8 accepted); heatmaps are (H, W)
float32 in the input image's pixels; region boxes ``[x1, y1, x2, y2]`` are image pixels
(corner coordinates, see :mod:`edge_vision_core.types`).

Threading: one detector serves one thread at a time (it reuses buffers and, on OpenVINO, one
inference request). ``finish_learning`` swaps the new model in with one assignment, so a node
may fit in a worker thread only if it pauses scoring meanwhile or uses a second detector.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import check_config, param
from ..encodings import as_bgr8
from ..errors import BackendError, ConfigError, ModelError
from ..inference.letterbox import LetterboxTransform, compute_letterbox
from ..types import Detections
from .embedding import embed, layer_scales, random_projection, valid_cells
from .features import (
    DEFAULT_BACKBONE,
    NO_BACKBONE,
    FeatureExtractor,
    create_feature_extractor,
    layer_strides,
    resolve_backbone,
)
from .methods import METHODS, MethodModel, check_float32, get_method
from .model_file import BackboneRef, ModelHeader, load_model_file, save_model_file
from .patchcore import AUTO_HNSW_ROWS, GREEDY_MAX_ROWS, SEARCH_METHODS
from .postprocess import (
    ANOMALY_LABELS,
    THRESHOLD_MODES,
    background_level,
    border_correction,
    border_rings,
    calibrate_threshold,
    confidence,
    find_regions,
    position_scale,
    score_map,
    to_image,
)

__all__ = [
    'AnomalyConfig',
    'AnomalyDetector',
    'AnomalyResult',
    'AnomalyTimings',
    'FitReport',
    'LearningProgress',
    'iter_frames',
]

_LOG = logging.getLogger(__name__)

#: fields that may change while the detector runs.
RUNTIME_FIELDS = ('threshold', 'min_region_area', 'max_regions')


@dataclass(frozen=True)
class AnomalyConfig:
    """Settings of an :class:`AnomalyDetector` (each field becomes a ROS parameter)."""

    model_path: str = field(default='', metadata=param(
        'Fitted anomaly model (.npz from edge-vision anomaly-fit) loaded at start; empty = '
        'none until fit() or learn-normal mode made one.', read_only=True))
    backbone: str = field(default=DEFAULT_BACKBONE, metadata=param(
        f'CNN backbone for the stride* layers: {DEFAULT_BACKBONE} (ImageNet-pretrained, the '
        'default), nanodet-m-416-backbone (COCO, round 1), a feature manifest .json path, or '
        'none (built-in colour statistics and local contrast only).', read_only=True))
    backend: str = field(default='onnxruntime', metadata=param(
        'Inference runtime of the backbone: onnxruntime or openvino.', read_only=True))
    device: str = field(default='auto', metadata=param(
        "Device of the backend (cpu, cuda | CPU, GPU, NPU, AUTO); 'auto' picks the best here.",
        read_only=True))
    threads: int = field(default=0, metadata=param(
        'CPU threads of the backbone\'s inference and of the memory bank\'s search; 0 lets '
        'the runtime decide (the search: one per core).', min=0, max=256, read_only=True))
    method: str = field(default='patchcore', metadata=param(
        '; '.join(f'{m.name} ({m.description})' for m in METHODS.values()) + '.',
        choices=tuple(METHODS), read_only=True))
    input_width: int = field(default=0, metadata=param(
        'Model input width (multiple of 16); 0 = from the first normal image and '
        'max_input_side.', min=0, max=4096, unit='px', read_only=True))
    input_height: int = field(default=0, metadata=param(
        'Model input height (multiple of 16); 0 = from the first normal image and '
        'max_input_side.', min=0, max=4096, unit='px', read_only=True))
    max_input_side: int = field(default=320, metadata=param(
        'Automatic input size: the longer image side is scaled to this (then both sides '
        'rounded to multiples of 16).', min=32, max=4096, unit='px', read_only=True))
    resize: str = field(default='letterbox', metadata=param(
        'Image -> model input: letterbox (aspect kept, padded) or stretch.',
        choices=('letterbox', 'stretch'), read_only=True))
    context_margin: int = field(default=0, metadata=param(
        'Mirrored image border added around the model input (multiple of 16) so patches at '
        'the image edge see plausible context instead of the network\'s zero padding.',
        min=0, max=256, unit='px', read_only=True))
    layers: tuple[str, ...] = field(
        default=('stride4', 'stride8', 'stride16', 'contrast8'), metadata=param(
            'Feature layers combined into patch embeddings: backbone stages stride4, stride8, '
            'stride16, local contrast contrast4, contrast8, contrast16 (each cell\'s Lab '
            'against its surroundings: faint stains, not exposure) and colour/gradient '
            'statistics color4, color8, color16 (measured: the colour statistics cost accuracy '
            'under brightness changes, contrast8 finds faint stains, stride4 adds PRO).',
            read_only=True))
    patch_stride: int = field(default=8, metadata=param(
        'Patch grid stride in model-input pixels (4, 8 or 16; 0 = the finest layer\'s): finer '
        'layers are averaged down to it, coarser ones interpolated up.', choices=(0, 4, 8, 16),
        read_only=True))
    patch_pool: int = field(default=3, metadata=param(
        'Each layer is averaged over this many cells (odd) around a patch before combining.',
        min=1, max=9, read_only=True))
    feature_dim: int = field(default=0, metadata=param(
        'Random projection of the embeddings to this many dimensions (memory/speed); 0 = the '
        'method default (PatchCore: 64, PaDiM: 100); at least the embedding size = none.',
        min=0, max=4096, read_only=True))
    coreset_ratio: float = field(default=1.0, metadata=param(
        'PatchCore: fraction of normal patches kept in the memory bank (1 = all; a bank of '
        f'up to {GREEDY_MAX_ROWS} rows is a greedy coreset, a larger one a random sample).',
        min=1e-4, max=1.0, read_only=True))
    max_memory_bank: int = field(default=131072, metadata=param(
        'PatchCore: most rows in the memory bank (bounds memory and time per frame; '
        'measured: every patch of 80 frames, 128000 rows searched by HNSW, beat a greedy '
        'coreset of 8192 rows by 0.07 image AUROC and 0.06 PRO, for 12 ms more a frame).',
        min=1, max=4_000_000, read_only=True))
    search: str = field(default='auto', metadata=param(
        'PatchCore nearest-neighbour search: exact (BLAS), hnsw (FAISS graph index, needs '
        'faiss-cpu; about 99 % of patches get their exact nearest row) or auto (hnsw for '
        f'banks over {AUTO_HNSW_ROWS} rows where FAISS is installed, else exact).',
        choices=SEARCH_METHODS, read_only=True))
    search_ef: int = field(default=32, metadata=param(
        'PatchCore hnsw search: candidates kept per query (more = closer to exact, slower).',
        min=1, max=4096, read_only=True))
    search_exact_top: int = field(default=16, metadata=param(
        'PatchCore hnsw search: this many highest patch scores of a frame are recomputed '
        'exhaustively until they are exact (the graph search can only overestimate; 0 = '
        'none; measured: without it a few missed neighbours made false peaks).',
        min=0, max=100000, read_only=True))
    coreset_projection_dim: int = field(default=64, metadata=param(
        'PatchCore: random projection dimension used to select the coreset (0 = none).',
        min=0, max=4096, read_only=True))
    reweight_neighbors: int = field(default=0, metadata=param(
        'PatchCore: frame score reweighted by the memory bank\'s density around the nearest '
        'normal patch of the most anomalous one, over this many bank neighbours (the '
        'paper\'s b; 0 = off).', min=0, max=1024, read_only=True))
    score_top_k: int = field(default=1, metadata=param(
        'Frame score = mean of this many highest pixels of the smoothed heatmap (model-input '
        'pixels; 1 = the maximum).', min=1, max=1 << 20, read_only=True))
    padim_regularization: float = field(default=0.01, metadata=param(
        'PaDiM: value added to each covariance diagonal.', min=1e-9, max=1e3,
        read_only=True))
    border_rings: int = field(default=10, metadata=param(
        'Patch rings along the image edge whose scores are rescaled to the interior\'s '
        'normal level (edge patches see less context and score higher); 0 = off.', min=0,
        max=64, read_only=True))
    position_correction: bool = field(default=True, metadata=param(
        'Rescale each patch position by how much normal images vary there (from the held-out '
        'calibration scores): corners and edges that a small shift or rotation moves stop '
        'deciding the frame score of normal images.', read_only=True))
    background_quantile: float = field(default=0.9, metadata=param(
        'Patch scores are measured above the frame\'s own background: this quantile of its '
        'patch scores, capped at the highest seen on the normal calibration frames (so a '
        'frame that is anomalous all over still scores high), is subtracted; 0 = off '
        '(measured: a normal frame that is blurred or noisy all over no longer outscores a '
        'small defect: +0.014 image AUROC on the tuning split, +0.006 held-out).', min=0.0,
        max=0.99, read_only=True))
    smoothing_sigma: float = field(default=4.0, metadata=param(
        'Gaussian smoothing of the heatmap, in model-input pixels.', min=0.0, max=64.0,
        unit='px', read_only=True))
    threshold_mode: str = field(default='false_alarm_rate', metadata=param(
        'Threshold calibration on out-of-fold normal frame scores: false_alarm_rate (Gumbel '
        'fit of the scores) or quantile.', choices=THRESHOLD_MODES, read_only=True))
    false_alarm_rate: float = field(default=0.01, metadata=param(
        'Target fraction of normal frames flagged (threshold_mode false_alarm_rate).',
        min=1e-6, max=0.5, read_only=True))
    threshold_quantile: float = field(default=0.99, metadata=param(
        'Quantile of the out-of-fold normal frame scores (threshold_mode quantile).', min=0.5,
        max=1.0, read_only=True))
    calibration_folds: int = field(default=5, metadata=param(
        'Threshold calibration: each calibration frame is scored by the model without the '
        'frames of its fold (K-fold); more folds = closer to the final model, same cost.',
        min=2, max=50, read_only=True))
    max_calibration_frames: int = field(default=50, metadata=param(
        'At most this many normal frames (evenly spread) are scored for the calibration; '
        'bounds the memory kept while fitting.', min=2, max=10000, read_only=True))
    threshold: float = field(default=-1.0, metadata=param(
        'Frame-score threshold; -1 uses the calibrated one of the model.', min=-1.0))
    min_region_area: float = field(default=16.0, metadata=param(
        'Anomalous regions whose box is smaller than this are dropped.', min=0.0,
        unit='px^2'))
    max_regions: int = field(default=10, metadata=param(
        'Report at most this many regions per frame, highest scores first (0 = all).',
        min=0, max=1000))
    seed: int = field(default=0, metadata=param(
        'Random seed (channel subset, coreset start, projection).', min=0, read_only=True))
    verify_checksum: bool = field(default=True, metadata=param(
        "Check the backbone file's SHA-256 before loading it.", read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        if self.patch_pool % 2 == 0:
            raise ConfigError(f'AnomalyConfig.patch_pool must be odd, got {self.patch_pool}')
        if not self.layers:
            raise ConfigError('AnomalyConfig.layers needs at least one layer')
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f'AnomalyConfig.layers has duplicates: {list(self.layers)}')
        if (self.input_width == 0) != (self.input_height == 0):
            raise ConfigError('set both AnomalyConfig.input_width and input_height, or '
                              'neither (0 = automatic)')
        for name in ('input_width', 'input_height'):
            if getattr(self, name) % 16:
                raise ConfigError(f'AnomalyConfig.{name} must be a multiple of 16, got '
                                  f'{getattr(self, name)}')
        if not self.backbone.strip():
            raise ConfigError(f'AnomalyConfig.backbone is empty; use {DEFAULT_BACKBONE}')

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(width, height)`` when set explicitly, else None (automatic)."""
        return (self.input_width, self.input_height) if self.input_width else None


@dataclass(frozen=True)
class AnomalyTimings:
    """Milliseconds of one :meth:`AnomalyDetector.score` call."""

    pre_ms: float = 0.0
    features_ms: float = 0.0
    score_ms: float = 0.0
    post_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.pre_ms + self.features_ms + self.score_ms + self.post_ms


@dataclass(eq=False)
class AnomalyResult:
    """What one frame produced.

    Attributes:
        score: frame anomaly score (max of the smoothed heatmap, at least 0; the units of the
            patch distances, comparable only to this model's threshold).
        threshold: the threshold in force.
        is_anomalous: ``score > threshold``.
        heatmap: (H, W) float32 smoothed patch scores on the input image's pixels, measured
            above the frame's background level (``background_quantile``; negative below it).
        regions: anomalous regions (boxes in image pixels, ``scores`` = peak confidence,
            ``class_ids`` 0 = ``labels[0]`` = "anomaly").
        timings: stage milliseconds.
        image_size: ``(width, height)`` of the input image.
    """

    score: float
    threshold: float
    is_anomalous: bool
    heatmap: np.ndarray
    regions: Detections
    timings: AnomalyTimings
    image_size: tuple[int, int]
    labels: tuple[str, ...] = ANOMALY_LABELS

    @property
    def confidence(self) -> float:
        """``score / (score + threshold)`` in [0, 1): 0.5 at the threshold (for messages)."""
        return float(confidence(self.score, self.threshold))

    def heatmap_mono8(self, max_value: float = 0.0) -> np.ndarray:
        """(H, W) uint8 heatmap for display: 0 = score 0, 255 = ``max_value`` and above
        (default: twice the threshold, so the threshold is mid-grey 128)."""
        top = max_value if max_value > 0 else 2.0 * max(self.threshold, 1e-12)
        # below the frame's background (background_quantile) the scores are negative: black
        return cv2.convertScaleAbs(np.maximum(self.heatmap, 0.0), alpha=255.0 / top)


@dataclass(frozen=True)
class FitReport:
    """How a fit went.

    Attributes:
        num_images: normal frames used.
        num_calibration: frames scored out-of-fold to calibrate the threshold.
        num_patches: patch embeddings seen.
        model_size: memory-bank rows (PatchCore) or grid cells (PaDiM).
        threshold: the calibrated threshold.
        calibration_scores: their out-of-fold frame scores.
        input_size: ``(width, height)`` of the model input.
        feature_seconds, fit_seconds: time in feature extraction and in model building.
    """

    num_images: int
    num_calibration: int
    num_patches: int
    model_size: int
    threshold: float
    calibration_scores: tuple[float, ...]
    input_size: tuple[int, int]
    feature_seconds: float
    fit_seconds: float


@dataclass(frozen=True)
class LearningProgress:
    """State of learn-normal mode: ``collected`` of ``target`` frames."""

    collected: int
    target: int

    @property
    def done(self) -> bool:
        return self.collected >= self.target


def iter_frames(source: str | Path | Iterable[np.ndarray], every: int = 1,
                max_frames: int = 0) -> Iterator[np.ndarray]:
    """bgr8 frames from a folder, a glob, a video file, a camera or an iterable of images.

    Args:
        source: a frame source string of :mod:`edge_vision_core.io.sources` (folder, glob,
            video file; also a camera ``0``/``/dev/video0`` or a stream URL, which never end:
            give ``max_frames``), or an iterable of (H, W[, C]) uint8 arrays.
        every: keep every n-th frame (video subsampling).
        max_frames: stop after this many kept frames (0 = all).

    Raises:
        SourceError: the path cannot be opened or holds no frame.
        ConfigError: bad ``every``/``max_frames``.
    """
    if every < 1 or max_frames < 0:
        raise ConfigError(f'every must be >= 1 and max_frames >= 0, got {every}, {max_frames}')
    kept = 0
    if isinstance(source, (str, Path)):
        from ..io.sources import read_frames

        for frame in read_frames(source, every=every, max_frames=max_frames,
                                 on_corrupt=lambda exc: _LOG.warning('skipping a frame: %s',
                                                                     exc)):
            yield frame.image
        return
    for index, image in enumerate(source):
        if index % every:
            continue
        yield image
        kept += 1
        if max_frames and kept >= max_frames:
            break


def _auto_input_size(image_size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = image_size
    scale = max_side / max(w, h)
    return (max(32, int(round(w * scale / 16)) * 16), max(32, int(round(h * scale / 16)) * 16))


class AnomalyDetector:
    """Patch-feature anomaly detector (PatchCore or PaDiM) on a pretrained backbone.

    Args:
        config: settings (defaults: PatchCore on the stride-4, -8 and -16 stages of
            ``efficientnet-lite0-features``, onnxruntime).
        **overrides: fields of :class:`AnomalyConfig` to replace.

    Raises:
        ConfigError: invalid settings.
        ModelError: ``model_path`` unreadable or made for another backbone/size/version.
        BackendError: backend or device unavailable.
    """

    def __init__(self, config: AnomalyConfig | None = None, **overrides: Any) -> None:
        config = config or AnomalyConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self._extractor: FeatureExtractor | None = None
        self._model: MethodModel | None = None
        self._header: ModelHeader | None = None
        self._projection: np.ndarray | None = None
        self._position: np.ndarray | None = None
        self._learning: list[np.ndarray] | None = None
        self._learning_target = 0
        self._closed = False
        if config.model_path:
            self.load(config.model_path)  # checks the file against backbone and input size
            return
        layer_strides(config.backbone, config.layers)  # unknown backbone/layer: fail now
        if config.input_size is not None:
            self._ensure_extractor(config.input_size, config.resize, config.context_margin,
                                   config.layers)

    @classmethod
    def from_file(cls, path: str | Path, config: AnomalyConfig | None = None,
                  **overrides: Any) -> AnomalyDetector:
        """A detector that loads the fitted model ``path`` (``config.model_path`` ignored).

        The fields that define the model (method, layers, resize, margin, smoothing...) come
        from the file; ``backbone`` and a non-zero input size must match it (see :meth:`load`).

        Args:
            path: the ``.npz`` model.
            config: the other settings (backend, device, run-time thresholds...).
            **overrides: fields of :class:`AnomalyConfig` to replace.

        Raises:
            ModelError: see :meth:`load`.
        """
        base = config or AnomalyConfig()
        return cls(dataclasses.replace(base, **{**overrides, 'model_path': str(path)}))

    # -- properties ---------------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        return self._model is not None

    @property
    def threshold(self) -> float:
        """The threshold in force (config override, else the calibrated one)."""
        if self.config.threshold >= 0:
            return float(self.config.threshold)
        if self._header is None:
            raise ModelError('the anomaly detector has no model yet: fit() it, load() a model '
                             'file or run learn-normal mode')
        return self._header.threshold

    @property
    def model_info(self) -> ModelHeader | None:
        """The fitted model's header (method, backbone, input size, threshold...), or None."""
        return self._header

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the model input, once known."""
        return None if self._extractor is None else self._extractor.input_size

    @property
    def extractor(self) -> FeatureExtractor | None:
        """The feature extractor (created once the input size is known)."""
        return self._extractor

    @property
    def labels(self) -> tuple[str, ...]:
        return ANOMALY_LABELS

    # -- configuration ------------------------------------------------------------------------

    def update_config(self, **changes: Any) -> AnomalyConfig:
        """Change run-time settings (``threshold``, ``min_region_area``, ``max_regions``).

        Raises:
            ConfigError: a read-only field or an invalid value (nothing is changed then).
        """
        fixed = sorted(set(changes) - set(RUNTIME_FIELDS))
        if fixed:
            raise ConfigError(f'{", ".join(fixed)} cannot change while the detector runs '
                              f'(read-only); run-time settings: {", ".join(RUNTIME_FIELDS)}')
        self.config = dataclasses.replace(self.config, **changes)
        return self.config

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, source: str | Path | Iterable[np.ndarray], *, every: int = 1,
            max_frames: int = 0) -> FitReport:
        """Learn normal appearance from normal frames and calibrate the threshold.

        The model-input size is the configured one, else the current model's, else derived
        from the first frame (``max_input_side``). Every frame goes into the model. Up to
        ``max_calibration_frames`` frames, evenly spread, are also kept and split into
        ``calibration_folds`` folds; each is scored by the model *without* its fold's frames
        (PaDiM: their sums subtracted; PatchCore: the bank rows that came from them removed,
        which makes the scores, and so the threshold, slightly conservative). Those
        out-of-fold scores give the border correction and the threshold.

        Args:
            source: a folder, a glob, a video file, or an iterable of bgr8 images (e.g. N live
                frames); at least 2 frames.
            every: use every n-th frame.
            max_frames: use at most this many frames (0 = all).

        Returns:
            A :class:`FitReport`; the new model replaces the current one.

        Raises:
            SourceError: unreadable source. ConfigError: fewer than 2 frames or bad images.
        """
        self._check_open()
        t_start = time.perf_counter()
        cfg = self.config
        method = get_method(cfg.method)
        fitter = method.fitter(cfg)
        kept: list[tuple[int, np.ndarray, np.ndarray, LetterboxTransform]] = []
        keep_every = 1
        feature_seconds = 0.0
        count = num_patches = stride = 0
        scales: list[float] = []
        projection: np.ndarray | None = None
        layers = list(cfg.layers)
        for image in iter_frames(source, every, max_frames):
            image = as_bgr8(image, 'normal image')
            if count == 0:
                size = self._target_input_size(image)
                extractor = self._ensure_extractor(size, cfg.resize, cfg.context_margin,
                                                   cfg.layers)
            t0 = time.perf_counter()
            features = extractor.extract(image)
            if count == 0:
                grid, stride = embed(features, layers, cfg.patch_pool, cfg.patch_stride)
                valid = valid_cells(features.transform, grid.shape[:2], stride)
                scales = layer_scales(features, layers, cfg.patch_pool, stride, valid)
                projection = random_projection(
                    grid.shape[2], cfg.feature_dim or method.default_dim, cfg.seed)
            grid, stride = embed(features, layers, cfg.patch_pool, stride, scales, projection)
            valid = valid_cells(features.transform, grid.shape[:2], stride)
            feature_seconds += time.perf_counter() - t0
            num_patches += int(valid.sum())
            fitter.add(grid, valid, count)
            if count % keep_every == 0:
                kept.append((count, grid, valid, features.transform))
                if len(kept) > cfg.max_calibration_frames:  # keep every other one, go on
                    keep_every *= 2
                    kept = [k for k in kept if k[0] % keep_every == 0]
            count += 1
        if count < 2:
            raise ConfigError(f'fitting needs at least 2 normal frames (the threshold is '
                              f'calibrated on frames the model is scored without), got {count}')
        t_fit = time.perf_counter()
        model = fitter.build()
        folds = min(cfg.calibration_folds, len(kept))
        patches = [np.empty(0)] * len(kept)
        held_models: list[MethodModel] = [model] * len(kept)
        for fold in range(folds):
            members = list(range(fold, len(kept), folds))
            held = fitter.without(model, [kept[i][0] for i in members],
                                  [kept[i][1] for i in members])
            for i in members:
                patches[i] = _patch_scores(held, kept[i][1], kept[i][2])
                held_models[i] = held
        rings = [border_rings(v, cfg.border_rings) for _, _, v, _ in kept]
        correction = border_correction(patches, rings, cfg.border_rings)
        patches = [p * correction[r] for p, r in zip(patches, rings, strict=True)]
        position = None
        if cfg.position_correction:
            position = position_scale(patches, np.logical_and.reduce([k[2] for k in kept]))
            patches = [p * position for p in patches]
        cap = 0.0
        if cfg.background_quantile > 0:
            levels = [background_level(p, k[2], cfg.background_quantile)
                      for p, k in zip(patches, kept, strict=True)]
            cap = max(levels)
            # not clipped at 0: the smoothed map's peak is then exactly the peak above the
            # background (measured, tuning split: clipping the patches cost 0.005 image AUROC,
            # clipping the map 0.006 pixel AUROC and 0.011 PRO)
            patches = [p - level for p, level in zip(patches, levels, strict=True)]
        scores = [_frame_score(held_models[i], k[1], patches[i], k[2], stride, k[3],
                               cfg.smoothing_sigma, cfg.score_top_k)[0]
                  for i, k in enumerate(kept)]
        threshold = calibrate_threshold(scores, cfg.threshold_mode,
                                        quantile=cfg.threshold_quantile,
                                        false_alarm_rate=cfg.false_alarm_rate)
        fit_seconds = time.perf_counter() - t_fit
        self._model = model
        self._projection = projection
        self._position = position
        self._header = self._make_header(model, stride, scales, correction, threshold, scores,
                                         count, cap)
        report = FitReport(count, len(kept), num_patches, model.size, threshold, tuple(scores),
                           extractor.input_size, feature_seconds, fit_seconds)
        _LOG.info('anomaly model fitted on %d frames (%d scored out-of-fold) in %.1f s: %s of '
                  '%d %s, threshold %.4g', count, len(kept), time.perf_counter() - t_start,
                  cfg.method, model.size, method.size_unit, threshold)
        return report

    # -- learn-normal mode --------------------------------------------------------------------

    def start_learning(self, num_frames: int) -> LearningProgress:
        """Start collecting ``num_frames`` live frames as normal (replaces a running session).

        Raises:
            ConfigError: ``num_frames`` < 2.
        """
        if num_frames < 2:
            raise ConfigError(f'learn-normal needs at least 2 frames, got {num_frames}')
        self._learning = []
        self._learning_target = int(num_frames)
        return LearningProgress(0, self._learning_target)

    @property
    def learning(self) -> LearningProgress | None:
        """Progress of learn-normal mode, or None when it is not running."""
        if self._learning is None:
            return None
        return LearningProgress(len(self._learning), self._learning_target)

    def learn(self, image: np.ndarray) -> LearningProgress:
        """Add one live frame to learn-normal mode (ignored once enough were collected).

        The frame is stored resized to the model input (a copy), so memory is about
        ``num_frames x input width x input height x 3`` bytes.

        Raises:
            ConfigError: learn-normal mode is not running, or a bad image.
        """
        if self._learning is None:
            raise ConfigError('learn-normal mode is not running; call start_learning(n) first')
        if len(self._learning) < self._learning_target:
            image = as_bgr8(image, 'normal frame')
            h, w = image.shape[:2]
            transform = compute_letterbox((w, h), self._target_input_size(image),
                                          keep_aspect=self.config.resize == 'letterbox')
            if transform.resized_size != (w, h):
                image = cv2.resize(image, transform.resized_size, interpolation=cv2.INTER_AREA)
            self._learning.append(np.array(image, copy=True))
        return LearningProgress(len(self._learning), self._learning_target)

    def finish_learning(self) -> FitReport:
        """Fit on the frames collected by learn-normal mode and end it.

        Raises:
            ConfigError: not running or fewer than 2 frames collected.
        """
        if self._learning is None:
            raise ConfigError('learn-normal mode is not running; call start_learning(n) first')
        frames, self._learning = self._learning, None
        return self.fit(frames)

    def cancel_learning(self) -> None:
        """Drop the frames collected so far; the current model stays."""
        self._learning = None

    def reset(self) -> None:
        """Cancel learn-normal mode (the fitted model and settings stay)."""
        self.cancel_learning()

    # -- scoring ------------------------------------------------------------------------------

    def score(self, image: np.ndarray) -> AnomalyResult:
        """Score one frame.

        Args:
            image: bgr8 (H, W, 3) uint8 (mono8/bgra8 accepted), any size.

        Returns:
            :class:`AnomalyResult` (score, decision, heatmap, regions, timings).

        Raises:
            ModelError: no model fitted or loaded yet.
            ConfigError: a bad image.
        """
        self._check_open()
        if self._model is None or self._extractor is None or self._header is None:
            raise ModelError('the anomaly detector has no model yet: fit() it, load() a model '
                             'file or run learn-normal mode')
        header = self._header
        t0 = time.perf_counter()
        features = self._extractor.extract(image)
        t1 = time.perf_counter()
        stride = header.stride
        grid, _ = embed(features, header.layers, header.patch_pool, stride,
                        header.layer_scales, self._projection)
        valid = valid_cells(features.transform, grid.shape[:2], stride)
        patch = _patch_scores(self._model, grid, valid)
        correction = header.border_correction
        if len(correction) > 1:
            patch = patch * np.asarray(correction, np.float32)[
                border_rings(valid, len(correction) - 1)]
        if self._position is not None:
            patch = patch * self._position
        if header.background_quantile > 0:
            level = min(background_level(patch, valid, header.background_quantile),
                        header.background_cap)
            patch = patch - level
        t2 = time.perf_counter()
        frame_score, smoothed = _frame_score(self._model, grid, patch, valid, stride,
                                             features.transform, header.smoothing_sigma,
                                             header.score_top_k)
        threshold = self.threshold
        regions = find_regions(smoothed, features.transform, threshold,
                               self.config.min_region_area, self.config.max_regions)
        heatmap = to_image(smoothed, features.transform)
        t3 = time.perf_counter()
        timings = AnomalyTimings(features.pre_ms, (t1 - t0) * 1e3 - features.pre_ms,
                                 (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return AnomalyResult(frame_score, threshold, frame_score > threshold, heatmap,
                             regions, timings, features.transform.src_size)

    __call__ = score

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to one ``.npz`` file (see :mod:`.model_file`).

        Raises:
            ModelError: nothing fitted yet, or the file cannot be written.
        """
        if self._model is None or self._header is None:
            raise ModelError('nothing to save: the anomaly detector has no model yet')
        arrays = dict(self._model.arrays())
        if self._projection is not None:
            arrays['projection'] = self._projection
        if self._position is not None:
            arrays['position_scale'] = self._position
        return save_model_file(path, self._header, arrays)

    def load(self, path: str | Path) -> ModelHeader:
        """Load a fitted model file, replacing the current model.

        The file defines the method, layers, input size, resize, margin, smoothing, frame
        score and threshold; the configured ``backbone`` (when the model uses backbone layers)
        and an explicit input size must match it.

        Raises:
            ModelError: unreadable/corrupt/forged file, another format version, an invalid
                header field, arrays of other shapes than the header declares, or a model
                made for another backbone (naming both; or another backbone file checksum),
                another version of the built-in colour or contrast layers, or another input
                size than configured.
        """
        self._check_open()
        header, arrays = load_model_file(path)
        cfg = self.config
        source = str(path)
        configured = _backbone_id(cfg.backbone) or cfg.backbone.strip()
        header.check_compatible(source, backbone_id=configured if header.uses_backbone
                                else NO_BACKBONE, input_size=cfg.input_size)
        try:
            layer_strides(cfg.backbone, header.layers)
        except ConfigError as exc:
            raise ModelError(f'anomaly model {source}: {exc}; refit it') from exc
        extractor = self._ensure_extractor(header.input_size, header.resize,
                                           header.context_margin, header.layers)
        header.check_compatible(source, backbone_id=extractor.id,
                                backbone_digest=extractor.digest if header.uses_backbone
                                else None, input_size=extractor.input_size)
        if extractor.color and header.color_features != extractor.color:
            raise ModelError(f'anomaly model {source} was fitted with built-in features '
                             f'{header.color_features!r}, this edge_vision_core computes '
                             f'{extractor.color!r}; refit the model (edge-vision anomaly-fit)')
        projection = arrays.pop('projection', None)
        position = arrays.pop('position_scale', None)
        method = get_method(header.method)
        try:
            if header.position_correction:
                stored = {} if position is None else {'position_scale': position}
                position = check_float32(stored, 'position_scale', header.grid)
            model = method.from_arrays(arrays, header.embedding_dim, header.grid, cfg)
            w, h = header.input_size
            probe = extractor.extract(np.zeros((h, w, 3), np.uint8))
            grid, _ = embed(probe, header.layers, header.patch_pool, header.stride,
                            header.layer_scales, projection)
            if grid.shape[2] != header.embedding_dim or grid.shape[:2] != header.grid:
                raise ModelError(f'its header declares embedding dimension '
                                 f'{header.embedding_dim} on grid {list(header.grid)}, its '
                                 f'layers {list(header.layers)} give {grid.shape[2]} channels '
                                 f'on grid {list(grid.shape[:2])}')
        except (ConfigError, ModelError, ValueError, TypeError) as exc:
            raise ModelError(f'anomaly model {source} is inconsistent: {exc}; refit it'
                             ) from exc
        self._model = model
        self._header = header
        self._projection = None if projection is None else np.asarray(projection, np.float32)
        self._position = position if header.position_correction else None
        self.config = dataclasses.replace(
            cfg, method=header.method, layers=header.layers, patch_pool=header.patch_pool,
            patch_stride=header.stride, resize=header.resize,
            context_margin=header.context_margin, smoothing_sigma=header.smoothing_sigma,
            score_top_k=header.score_top_k, reweight_neighbors=header.reweight_neighbors,
            position_correction=header.position_correction)
        _LOG.info('loaded anomaly model %s: %s on %s at %dx%d, threshold %.4g', source,
                  header.method, header.backbone.id, *header.input_size, header.threshold)
        return header

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backbone runtime (safe to call twice)."""
        if not self._closed:
            self._closed = True
            if self._extractor is not None:
                self._extractor.close()
            self._learning = None

    def __enter__(self) -> AnomalyDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = 'fitted' if self._model is not None else 'not fitted'
        return (f'AnomalyDetector({self.config.method}, {self._extractor!r}, {state})')

    # -- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError('the anomaly detector was closed; create a new one')

    def _ensure_extractor(self, size: tuple[int, int], resize: str, margin: int,
                          layers: Iterable[str]) -> FeatureExtractor:
        """The extractor for these settings: the current one when it matches, else a new one
        (and the current model, made for the old one, is dropped)."""
        layers = tuple(layers)
        ex = self._extractor
        if ex is not None and ex.input_size == tuple(size) and ex.resize == resize \
                and ex.margin == margin and tuple(ex.layers) == layers:
            return ex
        cfg = self.config
        new = create_feature_extractor(cfg.backbone, tuple(size), layers, resize=resize,
                                       margin=margin, backend=cfg.backend, device=cfg.device,
                                       threads=cfg.threads,
                                       verify_checksum=cfg.verify_checksum)
        if ex is not None:
            ex.close()
        self._extractor = new
        self._model = None
        self._header = None
        self._projection = None
        return new

    def _target_input_size(self, image: np.ndarray) -> tuple[int, int]:
        """The backbone input size for ``image``: the configured one, else the fitted model's,
        else one derived from the image (``max_input_side``)."""
        if self.config.input_size is not None:
            return self.config.input_size
        if self._header is not None:
            return self.input_size
        h, w = image.shape[:2]
        return _auto_input_size((w, h), self.config.max_input_side)

    def _make_header(self, model: MethodModel, stride: int, scales: list[float],
                     correction: np.ndarray, threshold: float, scores: list[float],
                     count: int, background_cap: float) -> ModelHeader:
        from .. import __version__

        cfg = self.config
        ex = self._extractor
        grid = ((-(-ex.input_size[1] // stride)), (-(-ex.input_size[0] // stride)))
        return ModelHeader(
            method=cfg.method,
            backbone=BackboneRef(ex.id, ex.digest),
            color_features=ex.color,
            input_size=tuple(ex.input_size),
            resize=ex.resize,
            context_margin=ex.margin,
            layers=tuple(cfg.layers),
            layer_scales=tuple(float(v) for v in scales),
            patch_pool=cfg.patch_pool,
            stride=stride,
            grid=grid,
            embedding_dim=model.dim,
            border_correction=tuple(float(f) for f in correction),
            position_correction=cfg.position_correction,
            smoothing_sigma=cfg.smoothing_sigma,
            score_top_k=cfg.score_top_k,
            reweight_neighbors=cfg.reweight_neighbors,
            background_quantile=float(cfg.background_quantile),
            background_cap=float(background_cap),
            threshold=float(threshold),
            calibration={
                'mode': cfg.threshold_mode, 'false_alarm_rate': cfg.false_alarm_rate,
                'quantile': cfg.threshold_quantile, 'num_images': len(scores),
                'scores': [float(s) for s in scores]},
            fit={'coreset_ratio': cfg.coreset_ratio, 'max_memory_bank': cfg.max_memory_bank,
                 'padim_regularization': cfg.padim_regularization, 'seed': cfg.seed,
                 'model_size': model.size},
            created={'utc': datetime.now(timezone.utc).isoformat(timespec='seconds'),
                     'edge_vision_core': __version__, 'num_images': count})


def _patch_scores(model: MethodModel, grid: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(h, w) patch scores; cells on letterbox padding get the lowest valid score."""
    patch = model.score(grid)
    if not valid.all() and valid.any():
        patch = np.where(valid, patch, patch[valid].min())
    return patch


def _frame_score(model: MethodModel, grid: np.ndarray, patch: np.ndarray, valid: np.ndarray,
                 stride: int, transform: LetterboxTransform, sigma: float, top_k: int
                 ) -> tuple[float, np.ndarray]:
    """``(frame score, smoothed map)``: the mean of the ``top_k`` highest pixels of the
    smoothed map, times the model's frame weight at the most anomalous valid cell."""
    smoothed = score_map(patch, stride, transform, sigma)
    flat = smoothed.ravel()
    k = min(int(top_k), flat.size)
    top = float(flat.max()) if k <= 1 else float(np.partition(flat, flat.size - k)[-k:].mean())
    top = max(top, 0.0)  # measured above the frame's background, the map can be negative
    masked = np.where(valid, patch, -np.inf)
    cell = np.unravel_index(int(np.argmax(masked)), patch.shape)
    return top * model.frame_weight(grid, (int(cell[0]), int(cell[1]))), smoothed


def _backbone_id(spec: str) -> str | None:
    """The backbone name ``spec`` resolves to (``none`` for none), or None if unknown here."""
    try:
        manifest = resolve_backbone(spec)
    except ModelError:
        return None
    return NO_BACKBONE if manifest is None else manifest.name
