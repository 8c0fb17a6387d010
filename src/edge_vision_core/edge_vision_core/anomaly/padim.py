"""PaDiM: one multivariate Gaussian per patch position, scored by Mahalanobis distance.

Defard et al., "PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and
Localization" (ICPR 2021), in NumPy:

- fit: for every cell (i, j) of the embedding grid, the mean and covariance of the normal
  images' embeddings at that cell, regularised as ``cov + eps * I`` (so a few images suffice);
  the inverse (precision) is stored. Sums are accumulated image by image
  (:class:`PadimAccumulator`, float64), so fitting from a long stream needs no image buffer.
- score: ``sqrt((x - mean)^T precision (x - mean))`` per cell.

PaDiM assumes the images are aligned (a fixed camera, parts in a fixture): each position has its
own model. For unaligned content (textures, a moving camera) PatchCore is the better choice.
Memory: ``cells x D x D`` float32 (e.g. 40 x 30 cells, D = 100: 48 MB), hence the random channel
reduction (``feature_dim``).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ['PadimAccumulator', 'PadimModel']


class PadimModel:
    """Per-cell Gaussians.

    Args:
        mean: (h, w, D) float32 per-cell means.
        precision: (h, w, D, D) float32 per-cell inverse covariances (symmetric positive
            definite).
    """

    method = 'padim'

    def __init__(self, mean: np.ndarray, precision: np.ndarray) -> None:
        mean = np.ascontiguousarray(mean, np.float32)
        precision = np.ascontiguousarray(precision, np.float32)
        if mean.ndim != 3 or precision.shape != mean.shape + (mean.shape[2],):
            raise ConfigError(f'PaDiM needs mean (h, w, D) and precision (h, w, D, D), got '
                              f'{mean.shape} and {precision.shape}')
        self.mean = mean
        self.precision = precision

    @property
    def dim(self) -> int:
        return int(self.mean.shape[2])

    @property
    def grid_shape(self) -> tuple[int, int]:
        return int(self.mean.shape[0]), int(self.mean.shape[1])

    @property
    def size(self) -> int:
        """Grid cells (one Gaussian each)."""
        return int(self.mean.shape[0] * self.mean.shape[1])

    def frame_weight(self, grid: np.ndarray, cell: tuple[int, int]) -> float:
        """No reweighting (1): every cell has its own model."""
        return 1.0

    def score(self, grid: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of an (h, w, D) embedding grid -> (h, w) float32."""
        if grid.shape != self.mean.shape:
            raise ConfigError(f'embedding grid {grid.shape} does not match the PaDiM model '
                              f'{self.mean.shape}; was the model fitted at another input size?')
        h, w, d = grid.shape
        diff = (grid - self.mean).reshape(h * w, d, 1)
        prec = self.precision.reshape(h * w, d, d)
        proj = np.matmul(prec, diff)[..., 0]
        m2 = np.einsum('pd,pd->p', diff[..., 0], proj)
        return np.sqrt(np.maximum(m2, 0.0)).reshape(h, w).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """What the model file stores."""
        return {'mean': self.mean, 'precision': self.precision}


class PadimAccumulator:
    """Running per-cell sums for :class:`PadimModel`.

    Args:
        regularization: ``eps`` added to every covariance diagonal (PaDiM: 0.01).
    """

    def __init__(self, regularization: float = 0.01) -> None:
        if regularization <= 0:
            raise ConfigError(f'PaDiM regularization must be > 0, got {regularization}')
        self.regularization = float(regularization)
        self.count = 0
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None

    def add(self, grid: np.ndarray) -> None:
        """Add one image's (h, w, D) embedding grid."""
        g = np.asarray(grid, np.float64)
        if self._sum is None:
            h, w, d = g.shape
            self._sum = np.zeros((h, w, d))
            self._outer = np.zeros((h, w, d, d))
        elif g.shape != self._sum.shape:
            raise ConfigError(f'embedding grid {g.shape} differs from the first one '
                              f'{self._sum.shape}; PaDiM needs one input size')
        self._sum += g
        self._outer += g[..., :, None] * g[..., None, :]
        self.count += 1

    def build(self, without: list[np.ndarray] | None = None) -> PadimModel:
        """Means and regularised precisions of what was added (needs >= 1 image).

        Args:
            without: grids that were added and are to be left out (out-of-fold models).
        """
        if self._sum is None or self.count == 0:
            raise ConfigError('no normal images were added')
        total, outer, n = self._sum, self._outer, self.count
        if without:
            total, outer = total.copy(), outer.copy()
            for grid in without:
                g = np.asarray(grid, np.float64)
                total -= g
                outer -= g[..., :, None] * g[..., None, :]
            n -= len(without)
            if n < 1:
                raise ConfigError('leaving those images out leaves none')
        mean = total / n
        # unbiased covariance (population for a single image), then + eps I
        denom = max(n - 1, 1)
        cov = (outer - n * mean[..., :, None] * mean[..., None, :]) / denom
        d = mean.shape[2]
        cov += self.regularization * np.eye(d)
        precision = np.linalg.inv(cov)
        precision = 0.5 * (precision + np.swapaxes(precision, -1, -2))
        return PadimModel(mean.astype(np.float32), precision.astype(np.float32))
