"""PatchCore: a memory bank of normal patch embeddings, scored by nearest-neighbour distance.

Roth et al., "Towards Total Recall in Industrial Anomaly Detection" (CVPR 2022), in NumPy:

- fit: the embeddings of every patch of the normal images are pooled, and a *coreset* of them is
  kept: greedy k-center selection (repeatedly add the patch farthest from the bank so far), run
  on a random Gaussian projection of the embeddings to ``projection_dim`` dimensions (the
  paper's speed-up; distances are roughly preserved, Johnson-Lindenstrauss). The bank covers
  the normal patches with the fewest rows for a given worst-case distance.
- score: a patch's anomaly score is the Euclidean distance to its nearest bank row, computed as
  ``sqrt(|q|^2 + |m|^2 - 2 q.m)`` with one BLAS matrix product per chunk of queries.

Memory is bounded while fitting from long streams: :class:`MemoryBankBuilder` compresses its
pool with the same greedy selection whenever it grows past a limit (a coreset of coresets). It
remembers which image every bank row came from, so the detector can score an image against the
bank *without* that image's rows (out-of-fold calibration without refitting).
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..errors import ConfigError

__all__ = ['MemoryBankBuilder', 'PatchCoreModel', 'greedy_coreset', 'nearest_distances']

#: query rows per matrix product in :func:`nearest_distances` (bounds the temporary matrix).
_CHUNK = 2048


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS limited to one thread (threadpoolctl; no limit where it is not installed).

    The greedy selection is thousands of small matrix-vector products in a row: with two BLAS
    threads each one pays a thread hand-over, and on a busy 2-core machine that made them 10x
    slower (20,000 x 32 rows: 0.57 ms per product with one thread, 5.4 ms with two).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api='blas')


def greedy_coreset(features: np.ndarray, size: int, projection_dim: int = 128,
                   seed: int = 0) -> np.ndarray:
    """Indices of a greedy k-center coreset of ``features``.

    Args:
        features: (N, D) float32 embeddings.
        size: rows to keep (>= 1); all rows when ``size >= N``.
        projection_dim: dimension of the random projection the distances are computed in
            (0 or >= D: no projection).
        seed: random seed (projection and first centre).

    Returns:
        (min(size, N),) int64 row indices, in selection order.
    """
    n, d = features.shape
    if size >= n:
        return np.arange(n, dtype=np.int64)
    if size < 1:
        raise ConfigError(f'coreset size must be >= 1, got {size}')
    rng = np.random.default_rng(seed)
    x = np.asarray(features, np.float32)
    if 0 < projection_dim < d:
        proj = rng.standard_normal((d, projection_dim)).astype(np.float32)
        proj /= np.float32(np.sqrt(projection_dim))
        x = x @ proj
    with _one_blas_thread():
        return _greedy(np.ascontiguousarray(x), size, rng)


def _greedy(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    half_sq = 0.5 * np.einsum('ij,ij->i', x, x)
    chosen = np.empty(size, np.int64)
    chosen[0] = int(rng.integers(n))
    # half the squared distance of every row to its nearest chosen row so far, minus the row's
    # own half squared norm (a constant per row, so the argmax is unchanged):
    # |x - c|^2 / 2 - |x|^2 / 2 = |c|^2 / 2 - x.c
    best = np.empty(n, np.float32)
    dist = np.empty(n, np.float32)
    np.dot(x, -x[chosen[0]], out=best)
    best += half_sq[chosen[0]]
    for k in range(1, size):
        i = int(np.argmax(np.add(best, half_sq, out=dist)))
        chosen[k] = i
        np.dot(x, -x[i], out=dist)  # one matrix-vector product per selected row
        dist += half_sq[i]
        np.minimum(best, dist, out=best)
    return chosen


def nearest_distances(queries: np.ndarray, bank: np.ndarray,
                      bank_sq: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distance of every query row to its nearest bank row.

    Args:
        queries: (N, D) float32.
        bank: (M, D) float32, M >= 1.
        bank_sq: optional precomputed (M,) squared norms of the bank rows.

    Returns:
        (N,) float32 distances (>= 0).
    """
    q = np.asarray(queries, np.float32)
    m = np.asarray(bank, np.float32)
    if bank_sq is None:
        bank_sq = np.einsum('ij,ij->i', m, m)
    out = np.empty(len(q), np.float32)
    mt = m.T
    for start in range(0, len(q), _CHUNK):
        block = q[start:start + _CHUNK]
        # min over the bank of |m|^2 - 2 q.m, then + |q|^2
        prod = block @ mt
        prod *= np.float32(-2.0)
        prod += bank_sq[None, :]
        best = prod.min(axis=1) + np.einsum('ij,ij->i', block, block)
        out[start:start + len(block)] = np.sqrt(np.maximum(best, 0.0))
    return out


class PatchCoreModel:
    """A fitted memory bank.

    Args:
        memory_bank: (M, D) float32 normal patch embeddings, M >= 1.
        neighbors: ``b`` of the paper's frame-score reweighting (:meth:`frame_weight`);
            0 or 1 = no reweighting.
    """

    method = 'patchcore'

    def __init__(self, memory_bank: np.ndarray, neighbors: int = 0) -> None:
        bank = np.ascontiguousarray(memory_bank, np.float32)
        if bank.ndim != 2 or len(bank) == 0:
            raise ConfigError(f'memory bank must be (M >= 1, D), got {bank.shape}')
        self.memory_bank = bank
        self.neighbors = int(neighbors)
        self._sq = np.einsum('ij,ij->i', bank, bank)

    @property
    def dim(self) -> int:
        return int(self.memory_bank.shape[1])

    @property
    def size(self) -> int:
        """Rows of the memory bank."""
        return int(len(self.memory_bank))

    def frame_weight(self, grid: np.ndarray, cell: tuple[int, int]) -> float:
        """The paper's reweighting of the frame score by the bank's density around the match.

        For the most anomalous patch ``q`` (at ``cell``), its nearest bank row ``m*`` and the
        ``b`` bank rows nearest to ``m*`` (``m*`` included), the weight is
        ``1 - softmax(|q - m|)`` taken at ``m*``: close to 1 when ``m*`` sits alone in a sparse
        region of the bank (a rare normal patch matched poorly: the score is trusted), down to
        ``1 - 1/b`` when its neighbours are as close to ``q`` as ``m*`` is (a dense, well
        covered region: the distance says less).

        Returns:
            A factor in ``[1 - 1/b, 1]`` (1 when ``neighbors`` < 2 or the bank is too small).
        """
        b = self.neighbors
        bank = self.memory_bank
        if b < 2 or len(bank) <= b:
            return 1.0
        q = np.asarray(grid[cell], np.float32)
        d_q = self._sq - 2.0 * (bank @ q)
        best = int(np.argmin(d_q))
        d_m = self._sq - 2.0 * (bank @ bank[best])
        d_m[best] = -np.inf  # m* first, then its b - 1 nearest rows
        support = np.argpartition(d_m, b - 1)[:b]
        dist = np.sqrt(np.maximum(d_q[support] + float(q @ q), 0.0)).astype(np.float64)
        soft = np.exp(dist - dist.max())  # softmax of the distances (stable form)
        p_best = float(soft[support == best][0] / soft.sum())
        return 1.0 - p_best

    def score(self, grid: np.ndarray) -> np.ndarray:
        """Patch scores of an (h, w, D) embedding grid -> (h, w) float32 distances."""
        h, w, d = grid.shape
        if d != self.dim:
            raise ConfigError(f'embeddings have {d} channels, the memory bank {self.dim}')
        return nearest_distances(grid.reshape(-1, d), self.memory_bank, self._sq).reshape(h, w)

    def arrays(self) -> dict[str, np.ndarray]:
        """What the model file stores."""
        return {'memory_bank': self.memory_bank}


class MemoryBankBuilder:
    """Collects normal patch embeddings and selects the memory bank, in bounded memory.

    Args:
        max_size: most rows the final bank may have.
        ratio: fraction of all collected patches to keep (the bank has
            ``min(max_size, ceil(ratio * N))`` rows).
        projection_dim: random projection used by the greedy selection.
        seed: random seed.
        pool_limit: when the pooled rows exceed this, they are compressed to ``max_size`` rows by
            greedy selection (0 = ``max(8 * max_size, 65536)``).
    """

    def __init__(self, max_size: int, ratio: float, projection_dim: int = 128, seed: int = 0,
                 pool_limit: int = 0) -> None:
        if max_size < 1 or not 0 < ratio <= 1:
            raise ConfigError(f'memory bank needs max_size >= 1 and 0 < ratio <= 1, got '
                              f'{max_size} and {ratio}')
        self.max_size = int(max_size)
        self.ratio = float(ratio)
        self.projection_dim = int(projection_dim)
        self.seed = int(seed)
        self.pool_limit = int(pool_limit) or max(8 * self.max_size, 65536)
        self._pool: list[np.ndarray] = []
        self._sources: list[np.ndarray] = []
        self._pooled = 0
        self.total = 0  # patches seen
        self._compressions = 0

    def add(self, embeddings: np.ndarray, source: int = 0) -> None:
        """Add (N, D) normal patch embeddings of one image (``source`` identifies it)."""
        rows = np.ascontiguousarray(embeddings, np.float32)
        if rows.ndim != 2:
            raise ConfigError(f'embeddings must be (N, D), got {rows.shape}')
        self._pool.append(rows)
        self._sources.append(np.full(len(rows), source, np.int64))
        self._pooled += len(rows)
        self.total += len(rows)
        if self._pooled > self.pool_limit:
            pooled, sources = np.concatenate(self._pool), np.concatenate(self._sources)
            keep = greedy_coreset(pooled, self.max_size, self.projection_dim,
                                  self.seed + self._compressions)
            self._compressions += 1
            self._pool, self._sources = [pooled[keep]], [sources[keep]]
            self._pooled = len(keep)

    def build(self) -> tuple[PatchCoreModel, np.ndarray]:
        """The coreset memory bank of everything added so far (the pool is kept).

        Returns:
            ``(model, sources)``: the bank and the (M,) ``source`` of each of its rows.
        """
        if not self._pool:
            raise ConfigError('no normal patches were added')
        pooled = np.concatenate(self._pool) if len(self._pool) > 1 else self._pool[0]
        sources = np.concatenate(self._sources)
        size = min(self.max_size, max(1, int(np.ceil(self.ratio * self.total))))
        keep = greedy_coreset(pooled, size, self.projection_dim, self.seed)
        return PatchCoreModel(pooled[keep]), sources[keep]
