"""Patch embeddings: multi-scale feature maps -> one feature vector per patch of a common grid.

Pure NumPy/OpenCV, shared by PatchCore and PaDiM:

1. every selected layer map (C, h_l, w_l) is averaged over a ``pool x pool`` neighbourhood of
   cells (stride 1; at the edges over the cells that exist): each vector then describes a
   patch and its immediate surroundings (PatchCore's "locally aware" features);
2. every map is brought to the grid of stride ``stride`` (finer maps averaged down, coarser
   ones bilinearly interpolated up; cell (i, j) of stride s is centred at model-input pixel
   ``((j + 0.5) s, (i + 0.5) s)``);
3. each layer is multiplied by its *layer scale* and the layers are concatenated along channels.
   The scales (:func:`layer_scales`, measured on the first normal image) give every layer the
   same total variance, so a 256-channel CNN stage does not drown a 15-channel colour layer in
   the Euclidean distances;
4. optionally the vector is multiplied by a fixed random Gaussian projection to ``feature_dim``
   dimensions (:func:`random_projection`; distances are roughly preserved, Johnson-
   Lindenstrauss), which bounds the memory and the time per frame.

The result is an (h, w, D) float32 grid. :func:`valid_cells` marks the cells whose centre lies
on the image rather than on letterbox padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..errors import ConfigError
from ..inference.letterbox import LetterboxTransform
from .features import FeatureMaps
from .patchcore import one_blas_thread

__all__ = ['embed', 'layer_scales', 'random_projection', 'valid_cells']


def _box_pool(hwc: np.ndarray, pool: int) -> np.ndarray:
    """Mean over the ``pool x pool`` cells around each cell that exist; (h, w, C) float32.

    At the grid edge only the cells inside the grid are averaged (no padding is counted, so an
    edge cell does not weigh its neighbours twice as reflection would).
    """
    if pool <= 1:
        return hwc
    r = pool // 2
    h, w = hwc.shape[:2]
    padded = np.pad(hwc, ((r, r), (r, r), (0, 0)))
    rows = padded[0:h].copy()
    for k in range(1, pool):
        rows += padded[k:k + h]
    out = rows[:, 0:w].copy()
    for k in range(1, pool):
        out += rows[:, k:k + w]
    ys = np.minimum(np.arange(h) + r, h - 1) - np.maximum(np.arange(h) - r, 0) + 1
    xs = np.minimum(np.arange(w) + r, w - 1) - np.maximum(np.arange(w) - r, 0) + 1
    out /= (ys[:, None] * xs[None, :]).astype(np.float32)[..., None]
    return out


#: OpenCV resizes at most this many channels at once (CV_CN_MAX).
_CV_MAX_CHANNELS = 512


def _resize_channels(hwc: np.ndarray, size: tuple[int, int], finer: bool) -> np.ndarray:
    """(h, w, C) -> (H, W, C): area-averaged down (a finer layer) or bilinear up, in chunks of
    at most 512 channels (OpenCV's limit; wide stages such as a 672-channel expansion)."""
    mode = cv2.INTER_AREA if finer else cv2.INTER_LINEAR
    chunks = [cv2.resize(np.ascontiguousarray(hwc[..., i:i + _CV_MAX_CHANNELS]), size,
                         interpolation=mode)
              for i in range(0, hwc.shape[2], _CV_MAX_CHANNELS)]
    chunks = [c[..., None] if c.ndim == 2 else c for c in chunks]
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=2)


def embed(features: FeatureMaps, layers: Sequence[str], pool: int = 3, stride: int = 0,
          scales: Sequence[float] | None = None, projection: np.ndarray | None = None
          ) -> tuple[np.ndarray, int]:
    """One embedding vector per cell of a common grid.

    Args:
        features: the extractor's maps of one image.
        layers: layer names to combine (at least one), e.g. ``('stride8', 'color8')``.
        pool: neighbourhood (odd, >= 1) averaged per layer before combining.
        stride: grid stride in model-input pixels (0 = the finest selected layer's); the grid
            has ``ceil(input size / stride)`` cells per axis.
        scales: one factor per layer (None = 1).
        projection: optional (D_in, D) float32 matrix applied last.

    Returns:
        ``(grid, stride)``: (h, w, D) float32 embeddings and the grid's stride in model-input
        pixels.

    Raises:
        ConfigError: unknown layer, bad pool size, mismatched scales/projection.
    """
    if not layers:
        raise ConfigError('at least one feature layer is needed')
    if pool < 1 or pool % 2 == 0:
        raise ConfigError(f'patch pool size must be odd and >= 1, got {pool}')
    missing = [name for name in layers if name not in features.maps]
    if missing:
        raise ConfigError(f'layers {missing} are not produced by this feature extractor; it '
                          f'has {list(features.maps)}')
    if scales is not None and len(scales) != len(layers):
        raise ConfigError(f'{len(scales)} layer scales for {len(layers)} layers')
    if stride <= 0:
        stride = min(features.strides[n] for n in layers)
    in_w, in_h = features.transform.dst_size
    h, w = -(-in_h // stride), -(-in_w // stride)
    parts = []
    for i, name in enumerate(layers):
        hwc = np.ascontiguousarray(features.maps[name].transpose(1, 2, 0), np.float32)
        hwc = _box_pool(hwc, pool)
        if hwc.shape[:2] != (h, w):
            hwc = _resize_channels(hwc, (w, h), features.strides[name] < stride)
        if scales is not None and scales[i] != 1.0:
            hwc = hwc * np.float32(scales[i])
        parts.append(hwc)
    grid = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
    if projection is not None:
        if projection.shape[0] != grid.shape[2]:
            raise ConfigError(f'projection expects {projection.shape[0]} channels, the '
                              f'embedding has {grid.shape[2]}')
        with one_blas_thread():  # BLAS threads left spinning slow the search that follows
            grid = grid.reshape(-1, grid.shape[2]) @ projection
        grid = grid.reshape(h, w, -1)
    return np.ascontiguousarray(grid, np.float32), stride


def layer_scales(features: FeatureMaps, layers: Sequence[str], pool: int = 3,
                 stride: int = 0, valid: np.ndarray | None = None) -> list[float]:
    """Per-layer factors that give every layer the same total variance (1) in the embedding.

    Args:
        features: maps of a normal image.
        layers, pool, stride: as for :func:`embed`.
        valid: optional (h, w) bool cells to measure on (letterbox padding excluded).

    Returns:
        One factor per layer: ``1 / sqrt(sum of the layer's per-channel variances)`` (1 for a
        constant layer).
    """
    out = []
    for name in layers:
        grid, _ = embed(features, [name], pool, stride)
        rows = grid[valid] if valid is not None else grid.reshape(-1, grid.shape[2])
        total = float(rows.astype(np.float64).var(axis=0).sum())
        out.append(1.0 / np.sqrt(total) if total > 1e-12 else 1.0)
    return out


def random_projection(dim_in: int, dim_out: int, seed: int) -> np.ndarray | None:
    """A (dim_in, dim_out) float32 Gaussian projection scaled by ``1 / sqrt(dim_out)``.

    Returns None (no projection) when ``dim_out`` is 0 or not smaller than ``dim_in``.
    """
    if dim_out <= 0 or dim_out >= dim_in:
        return None
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((dim_in, dim_out)) / np.sqrt(dim_out)).astype(np.float32)


def valid_cells(transform: LetterboxTransform, grid_shape: tuple[int, int],
                stride: int) -> np.ndarray:
    """(h, w) bool: cells whose centre lies on the resized image (not on padding).

    Args:
        transform: the image -> model-input letterbox.
        grid_shape: ``(h, w)`` of the embedding grid.
        stride: model-input pixels per cell.
    """
    h, w = grid_shape
    cx = (np.arange(w) + 0.5) * stride
    cy = (np.arange(h) + 0.5) * stride
    x0, y0 = transform.pad_x, transform.pad_y
    x1, y1 = x0 + transform.resized_size[0], y0 + transform.resized_size[1]
    return ((cy >= y0) & (cy < y1))[:, None] & ((cx >= x0) & (cx < x1))[None, :]
