"""PatchCore: a memory bank of normal patch embeddings, scored by nearest-neighbour distance.

Roth et al., "Towards Total Recall in Industrial Anomaly Detection" (CVPR 2022), in NumPy:

- fit: the embeddings of every patch of the normal images are pooled, and a *coreset* of them is
  kept: greedy k-center selection (repeatedly add the patch farthest from the bank so far), run
  on a random Gaussian projection of the embeddings to ``projection_dim`` dimensions (the
  paper's speed-up; distances are roughly preserved, Johnson-Lindenstrauss). The bank covers
  the normal patches with the fewest rows for a given worst-case distance.
- score: a patch's anomaly score is the Euclidean distance to its nearest bank row. Two searches
  (``search``): ``exact``, ``sqrt(|q|^2 + |m|^2 - 2 q.m)`` with one BLAS matrix product per
  cache-sized chunk of queries (the bank's squared norms ride in the product as one more
  column), and ``hnsw``, FAISS's graph index (Malkov & Yashunin's HNSW; optional dependency
  ``faiss-cpu``), which searches a bank of every normal patch (128,000 rows of 80 frames) in
  about 17 ms per 1,600 patches where the exact search takes about 290 ms, finding the exact
  nearest row for about 99 % of the patches and a farther one for the rest; the highest scores
  of every frame are then made exact (:meth:`PatchCoreModel.score`). Both searches of an
  ``hnsw`` model are split over the process's search threads (:func:`_search_threads`). A bank
  that holds every normal patch is what made faint defects on busy textures separable (see the
  README's anomaly section; ``benchmarks/bench_anomaly.py``).

A bank kept whole is a measured choice: on the small-faint-defect benchmark a greedy coreset of
8,192 rows left normal texture patches far from their nearest bank row, so faint defects drowned
in the normal scores. Greedy selection still picks the bank when ``coreset_ratio`` < 1 asks for
at most :data:`GREEDY_MAX_ROWS` rows; a larger bank that must be cut (more patches than
``max_memory_bank``) is a uniform random sample, since greedy selection of that many rows
would take minutes.

Memory is bounded while fitting from long streams: :class:`MemoryBankBuilder` compresses its
pool with the same selection whenever it grows past a limit (a coreset of coresets). It
remembers which image every bank row came from, so the detector can score an image against the
bank *without* that image's rows (out-of-fold calibration without refitting).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import ConfigError

__all__ = ['GREEDY_MAX_ROWS', 'SEARCH_METHODS', 'MemoryBankBuilder', 'PatchCoreModel',
           'greedy_coreset', 'hnsw_available', 'nearest_distances', 'one_blas_thread',
           'resolve_search']

#: query rows per matrix product in :func:`nearest_distances`: the (chunk, M) product stays
#: in the cache while its minimum is taken (measured: 256 rows of 1600 x 8192 x 64: 11.3 ms
#: against 16.1 ms for 2048 rows with separate scale/add passes).
_CHUNK = 256
#: nearest-neighbour searches of :class:`PatchCoreModel` (``auto``: ``hnsw`` where FAISS is
#: installed and the bank is larger than :data:`AUTO_HNSW_ROWS`, else ``exact``).
SEARCH_METHODS = ('auto', 'exact', 'hnsw')
#: banks up to this many rows are searched exactly by ``auto`` (as fast as the graph there).
AUTO_HNSW_ROWS = 16384
#: links per node of the HNSW graph (FAISS's ``M``).
HNSW_LINKS = 16
#: hnsw: rows made exact per pass over the bank, as a multiple of ``exact_top``.
VERIFY_WIDTH = 2
#: the largest bank :class:`MemoryBankBuilder` selects greedily; larger ones are random samples.
GREEDY_MAX_ROWS = 16384
#: hnsw: the exhaustive pass of :meth:`PatchCoreModel.exact_nearest` is split into ranges of
#: at least this many bank rows, one per search thread (:func:`_search_threads`).
SPLIT_MIN_ROWS = 8192
#: hnsw: queries per search thread below which a search is not split.
SPLIT_MIN_QUERIES = 64
#: :func:`_blocked_nearest`: queries and bank rows per product (1-2 MB of float32).
_SPLIT_QUERIES = 64
_SPLIT_BLOCK = 8192


def hnsw_available() -> bool:
    """Whether FAISS (``faiss-cpu``) can be imported for the ``hnsw`` search."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_search(search: str, rows: int) -> str:
    """The search a bank of ``rows`` rows gets for the ``search`` setting: ``exact`` or
    ``hnsw``.

    Raises:
        ConfigError: unknown setting, or ``hnsw`` without FAISS (naming the fix).
    """
    if search not in SEARCH_METHODS:
        raise ConfigError(f'unknown nearest-neighbour search {search!r}; expecting one of '
                          f'{list(SEARCH_METHODS)}')
    if search == 'auto':
        return 'hnsw' if rows > AUTO_HNSW_ROWS and hnsw_available() else 'exact'
    if search == 'hnsw' and not hnsw_available():
        raise ConfigError("search 'hnsw' needs FAISS: pip install faiss-cpu (or set search "
                          "to exact or auto)")
    return search


def one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS limited to one thread (threadpoolctl; no limit where it is not installed).

    Used around small products on the per-frame path, and around the greedy selection. The
    greedy selection is thousands of small matrix-vector products in a row: with two BLAS
    threads each one pays a thread hand-over, and on a busy 2-core machine that made them 10x
    slower (20,000 x 32 rows: 0.57 ms per product with one thread, 5.4 ms with two).
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return contextlib.nullcontext()
    # finding the BLAS libraries reads the process's memory map (about 1 ms, too much for
    # every frame): done once, and again after FAISS brought its own OpenBLAS
    faiss_loaded = 'faiss' in sys.modules
    if not _BLAS or _BLAS[0][1] != faiss_loaded:
        _BLAS[:] = [(ThreadpoolController(), faiss_loaded)]
    return _BLAS[0][0].limit(limits=1, user_api='blas')


#: [(threadpoolctl controller, whether FAISS was loaded when it looked)] of one_blas_thread.
_BLAS: list = []


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
    with one_blas_thread():
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
    return _augmented_nearest(np.asarray(queries, np.float32),
                              _augmented_bank(np.asarray(bank, np.float32), bank_sq))


def _augmented_bank(bank: np.ndarray, bank_sq: np.ndarray | None = None) -> np.ndarray:
    """(D', M) float32: the bank's rows as columns, then their squared norms, zero-padded to a
    multiple of 8 rows (whole SIMD lanes for the matrix product)."""
    m, d = bank.shape
    if bank_sq is None:
        bank_sq = np.einsum('ij,ij->i', bank, bank)
    out = np.zeros(((d + 8) // 8 * 8, m), np.float32)
    out[:d] = bank.T
    out[d] = bank_sq
    return out


def _augmented_nearest(q: np.ndarray, bank_t: np.ndarray) -> np.ndarray:
    """Distances of the rows of ``q`` to their nearest column of an :func:`_augmented_bank`:
    ``[-2q, 1, 0...] . [m, |m|^2, 0...] = |m|^2 - 2 q.m``, minimised, plus ``|q|^2``."""
    n, d = q.shape
    # fewer rows a product for large banks: the (rows, M) product stays about 32 MB at most
    rows = max(32, min(_CHUNK, (1 << 23) // bank_t.shape[1]))
    aug = np.zeros((min(n, rows), bank_t.shape[0]), np.float32)
    aug[:, d] = 1.0
    prod = np.empty((len(aug), bank_t.shape[1]), np.float32)
    out = np.empty(n, np.float32)
    for start in range(0, n, rows):
        block = q[start:start + rows]
        k = len(block)
        np.multiply(block, np.float32(-2.0), out=aug[:k, :d])
        np.dot(aug[:k], bank_t, out=prod[:k])
        prod[:k].min(axis=1, out=out[start:start + k])
    return _to_distances(out, q)


def _to_distances(partial: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Euclidean distances from the minima of ``|m|^2 - 2 q.m`` (in place): plus ``|q|^2``,
    clipped at 0 (rounding), square root."""
    partial += np.einsum('ij,ij->i', q, q)
    return np.sqrt(np.maximum(partial, 0.0, out=partial), out=partial)


def _blocked_nearest(q2: np.ndarray, bank: np.ndarray, bank_sq: np.ndarray) -> np.ndarray:
    """``min over rows m of |m|^2 - 2 q.m`` for the rows of ``q2`` (= ``-2 q``) against an
    (M, D) ``bank``: products of at most :data:`_SPLIT_QUERIES` queries x
    :data:`_SPLIT_BLOCK` bank rows, each minimised while it is still in the cache (a 1-2 MB
    buffer, not the whole (N, M) product)."""
    n, m = len(q2), len(bank)
    best = np.full(n, np.inf, np.float32)
    prod = np.empty((min(n, _SPLIT_QUERIES), min(m, _SPLIT_BLOCK)), np.float32)
    part = np.empty(len(prod), np.float32)
    for start in range(0, n, _SPLIT_QUERIES):
        rows = q2[start:start + _SPLIT_QUERIES]
        k = len(rows)
        for first in range(0, m, _SPLIT_BLOCK):
            block = bank[first:first + _SPLIT_BLOCK]
            out = prod[:k, :len(block)]
            if not out.flags.c_contiguous:  # the last, shorter block
                out = np.empty((k, len(block)), np.float32)
            np.dot(rows, block.T, out=out)
            out += bank_sq[first:first + len(block)]
            out.min(axis=1, out=part[:k])
            np.minimum(best[start:start + k], part[:k], out=best[start:start + k])
    return best


def _split_nearest(q: np.ndarray, bank: np.ndarray, bank_sq: np.ndarray,
                   threads: int) -> np.ndarray:
    """Exhaustive nearest-row distances of the rows of ``q`` in an (M, D) ``bank`` with its
    squared row norms: the bank split into one row range (of at least
    :data:`SPLIT_MIN_ROWS`) per search thread (:func:`_in_parallel`, at most ``threads``),
    each searched by :func:`_blocked_nearest`, their minima combined."""
    m = len(bank)
    parts = max(1, min(threads, m // SPLIT_MIN_ROWS))
    edges = np.linspace(0, m, parts + 1).astype(int)
    q2 = q * np.float32(-2.0)
    results = _in_parallel([(_blocked_nearest, q2, bank[a:b], bank_sq[a:b])
                            for a, b in zip(edges[:-1], edges[1:], strict=True)])
    best = results[0]
    for other in results[1:]:
        np.minimum(best, other, out=best)
    return _to_distances(best, q)


def _hnsw_search(index, rows: np.ndarray, params) -> np.ndarray:
    """Squared distances of ``rows`` to their nearest row found in a FAISS ``index``."""
    return index.search(rows, 1, params=params)[0][:, 0]


def _search_threads() -> tuple[ThreadPoolExecutor | None, int]:
    """The process's search threads: (executor of ``count - 1`` threads, ``count``); the
    caller's thread is the other one (:func:`_in_parallel`); no executor where the count is 1.

    As many as FAISS's OpenMP would use (``OMP_NUM_THREADS``, else the cores), each limited to
    one OpenMP thread: an HNSW search split over these threads is as fast as FAISS's own
    OpenMP loop, and the exhaustive pass that follows it is not slowed down by OpenMP workers
    still spinning on the other cores (measured on 2 cores, grass bank, 32 verified patches:
    HNSW + split pass 34.3 ms a frame with FAISS's threads, 28.2 ms with these). Made once per
    process (again in a forked child, where the parent's threads do not exist).
    """
    with _POOL_LOCK:
        if _POOL[2] != os.getpid():
            import faiss

            count = max(1, int(faiss.omp_get_max_threads()))
            pool = None
            if count > 1:
                pool = ThreadPoolExecutor(count - 1, thread_name_prefix='patchcore-search',
                                          initializer=faiss.omp_set_num_threads,
                                          initargs=(1,))
            _POOL[:] = [pool, count, os.getpid()]
        return _POOL[0], _POOL[1]


def _in_parallel(calls: list[tuple]) -> list:
    """``[f(*args) for f, *args in calls]``: the first call on this thread, each other one on a
    search thread (FAISS's searches and NumPy's matrix products release the GIL), every one
    with a single OpenMP thread."""
    pool = _search_threads()[0]
    if pool is None:
        return [_one_omp_thread(call) for call in calls]
    futures = [pool.submit(*call) for call in calls[1:]]
    first = _one_omp_thread(calls[0])
    return [first, *(future.result() for future in futures)]


def _one_omp_thread(call: tuple) -> object:
    """``f(*args)`` with FAISS's OpenMP limited to this thread (its setting put back)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return call[0](*call[1:])
    finally:
        faiss.omp_set_num_threads(before)


#: [executor or None, thread count, process id] of :func:`_search_threads`.
_POOL: list = [None, 1, None]
_POOL_LOCK = threading.Lock()


class PatchCoreModel:
    """A fitted memory bank.

    Args:
        memory_bank: (M, D) float32 normal patch embeddings, M >= 1.
        neighbors: ``b`` of the paper's frame-score reweighting (:meth:`frame_weight`);
            0 or 1 = no reweighting.
        search: ``auto``, ``exact`` or ``hnsw`` (:func:`resolve_search`).
        ef_search: HNSW: candidates kept while searching (more = closer to exact, slower).
        exact_top: HNSW: this many highest patch scores of a frame are made exact
            (:meth:`score`; 0 = none).
        threads: HNSW: search threads a frame uses at most (0 = one per core, the
            process's :func:`_search_threads`).

    Raises:
        ConfigError: a bad bank, or ``hnsw`` without FAISS.
    """

    method = 'patchcore'

    def __init__(self, memory_bank: np.ndarray, neighbors: int = 0, search: str = 'exact',
                 ef_search: int = 32, exact_top: int = 16, threads: int = 0) -> None:
        bank = np.ascontiguousarray(memory_bank, np.float32)
        if bank.ndim != 2 or len(bank) == 0:
            raise ConfigError(f'memory bank must be (M >= 1, D), got {bank.shape}')
        self.neighbors = int(neighbors)
        self.search = resolve_search(search, len(bank))
        self.ef_search = int(ef_search)
        self.exact_top = int(exact_top)
        self.threads = max(0, int(threads))
        self.memory_bank = bank
        self._sq = np.einsum('ij,ij->i', bank, bank)
        self._bank_t: np.ndarray | None = None  # exact: the augmented bank, made once
        self._index = None  # hnsw: the FAISS graph (which holds its own copy of the bank)
        self._excluded: np.ndarray | None = None  # hnsw: rows left out (see without_rows)
        self._selector: tuple = ()  # hnsw: FAISS selectors of the rows searched
        if self.search == 'hnsw':
            self._hnsw_index()  # built now (seconds for 128,000 rows), not on the first frame

    def without_rows(self, drop: np.ndarray) -> PatchCoreModel:
        """This model without the bank rows where ``drop`` (an (M,) bool mask) is true.

        An exact model gets a smaller bank; an HNSW model shares this one's graph and skips
        the dropped rows while searching (no second graph to build).
        """
        drop = np.asarray(drop, bool)
        if drop.shape != (self.size,):
            raise ConfigError(f'row mask of shape {drop.shape} for a bank of {self.size} rows')
        if self.search == 'exact':
            return PatchCoreModel(self.memory_bank[~drop], self.neighbors, 'exact')
        import faiss

        other = copy.copy(self)  # the same bank arrays and graph (built in __init__)
        other._excluded = np.flatnonzero(drop).astype(np.int64)
        # both selectors are kept: FAISS's Python objects do not hold the one they wrap
        dropped = faiss.IDSelectorBatch(other._excluded)
        other._selector = (dropped, faiss.IDSelectorNot(dropped))
        return other

    def _hnsw_index(self):
        if self._index is None:
            import faiss

            # exhaustive searches of a few queries use FAISS's matrix-product path (its default
            # above 20 queries; measured 3-5x faster than its one-query-at-a-time loop)
            faiss.cvar.distance_compute_blas_threshold = 1
            index = faiss.IndexHNSWFlat(self.dim, HNSW_LINKS)
            # one thread while inserting: the graph (and every score) is the same each time
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                index.add(self.memory_bank)
            finally:
                faiss.omp_set_num_threads(threads)
            self._index = index
        return self._index

    def nearest(self, queries: np.ndarray) -> np.ndarray:
        """(N,) float32 distance of each (N, D) query row to its nearest bank row."""
        q = np.ascontiguousarray(queries, np.float32)
        if self.search == 'hnsw':
            import faiss

            params = faiss.SearchParametersHNSW()
            params.efSearch = self.ef_search
            if self._selector:
                params.sel = self._selector[1]
            index = self._hnsw_index()
            parts = max(1, min(self._threads(), len(q) // SPLIT_MIN_QUERIES))
            dist = np.concatenate(_in_parallel(
                [(_hnsw_search, index, rows, params) for rows in np.array_split(q, parts)]))
            return np.sqrt(np.maximum(dist, 0.0))
        return self.exact_nearest(q)

    def _threads(self) -> int:
        """Search threads of one frame: ``threads``, at most the process's."""
        count = _search_threads()[1]
        return min(count, self.threads) if self.threads else count

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
        d_m_skip = np.full(len(bank), -np.inf, np.float32)
        if self._excluded is not None:
            d_q[self._excluded] = np.inf  # rows this model leaves out
            d_m_skip[self._excluded] = np.inf
        best = int(np.argmin(d_q))
        d_m = np.maximum(self._sq - 2.0 * (bank @ bank[best]), d_m_skip)
        d_m[best] = -np.inf  # m* first, then its b - 1 nearest rows
        support = np.argpartition(d_m, b - 1)[:b]
        dist = np.sqrt(np.maximum(d_q[support] + float(q @ q), 0.0)).astype(np.float64)
        soft = np.exp(dist - dist.max())  # softmax of the distances (stable form)
        p_best = float(soft[support == best][0] / soft.sum())
        return 1.0 - p_best

    def exact_nearest(self, queries: np.ndarray) -> np.ndarray:
        """:meth:`nearest` by exhaustive search (the rows this model leaves out skipped).

        An HNSW model splits the bank into one row range per search thread
        (:func:`_split_nearest`, one BLAS thread each, products in cache-sized blocks): a pass
        of 32 queries over 128,000 rows took 12.5 ms with FAISS on one thread and 6.2-7.3 ms
        split in two (2-core AMD EPYC, bank in the cache). BLAS's own threads are not used:
        two such processes on two cores took 1.5 s a pass instead of 15 ms with them spinning
        against each other. A model that leaves rows out (the fit's out-of-fold calibration)
        searches the graph's copy with FAISS's selector instead.
        """
        q = np.ascontiguousarray(queries, np.float32)
        if self.search != 'hnsw':
            if self._bank_t is None:
                self._bank_t = _augmented_bank(self.memory_bank, self._sq)
            return _augmented_nearest(q, self._bank_t)
        import faiss

        if self._selector:
            params = faiss.SearchParameters()
            params.sel = self._selector[1]
            flat = faiss.downcast_index(self._hnsw_index().storage)
            with one_blas_thread():
                dist, _ = flat.search(q, 1, params=params)
            return np.sqrt(np.maximum(dist[:, 0], 0.0))
        with one_blas_thread():
            return _split_nearest(q, self.memory_bank, self._sq, self._threads())

    def score(self, grid: np.ndarray) -> np.ndarray:
        """Patch scores of an (h, w, D) embedding grid -> (h, w) float32 distances.

        With the ``hnsw`` search the highest scores are made exact: a graph search can only
        miss the nearest row (never find a nearer one), so a patch's approximate score is at
        least its exact one. The ``exact_top`` highest scores are recomputed exhaustively
        until they are all exact; every other patch then scores below them, exactly or not.
        The peaks that decide the frame score are exact (measured: a miss on one of 1,600
        patches made a normal frame's score a false peak), the rest of the heatmap is within
        about 1 % of exact.
        """
        h, w, d = grid.shape
        if d != self.dim:
            raise ConfigError(f'embeddings have {d} channels, the memory bank {self.dim}')
        flat = grid.reshape(-1, d)
        scores = self.nearest(flat)
        if self.search == 'hnsw' and self.exact_top > 0:
            k = min(self.exact_top, len(scores))
            # a pass over the bank costs about the same for a few more queries: the first pass
            # takes the VERIFY_WIDTH * k highest not yet exact (on real frames one pass is
            # usually enough), each further pass twice as many (a few passes at worst, where
            # many neighbours were missed)
            wide = min(VERIFY_WIDTH * k, len(scores))
            exact = np.zeros(len(scores), bool)
            while True:
                top = np.argpartition(scores, len(scores) - k)[-k:]
                if exact[top].all():
                    break
                pending = np.where(exact, -np.inf, scores)
                todo = np.argpartition(pending, len(scores) - wide)[-wide:]
                todo = todo[~exact[todo]]
                scores[todo] = self.exact_nearest(flat[todo])
                exact[todo] = True
                wide = min(2 * wide, len(scores))
        return scores.reshape(h, w)

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
        pool_limit: when the pooled rows exceed this, they are compressed to ``max_size`` rows
            (0 = ``max(8 * max_size, 65536)``).

    Rows are selected greedily (:func:`greedy_coreset`) up to :data:`GREEDY_MAX_ROWS`, by a
    uniform random sample above that.
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
            keep = self._select(pooled, self.max_size, self.seed + self._compressions)
            self._compressions += 1
            self._pool, self._sources = [pooled[keep]], [sources[keep]]
            self._pooled = len(keep)

    def _select(self, pooled: np.ndarray, size: int, seed: int) -> np.ndarray:
        if size >= len(pooled):
            return np.arange(len(pooled), dtype=np.int64)
        if size <= GREEDY_MAX_ROWS:
            return greedy_coreset(pooled, size, self.projection_dim, seed)
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(len(pooled), size, replace=False)).astype(np.int64)

    def build(self, **model_args: object) -> tuple[PatchCoreModel, np.ndarray]:
        """The memory bank of everything added so far (the pool is kept).

        Args:
            model_args: passed to :class:`PatchCoreModel` (``neighbors``, ``search``, ...).

        Returns:
            ``(model, sources)``: the bank and the (M,) ``source`` of each of its rows.
        """
        if not self._pool:
            raise ConfigError('no normal patches were added')
        pooled = np.concatenate(self._pool) if len(self._pool) > 1 else self._pool[0]
        sources = np.concatenate(self._sources)
        size = min(self.max_size, max(1, int(np.ceil(self.ratio * self.total))))
        keep = self._select(pooled, size, self.seed)
        return PatchCoreModel(pooled[keep], **model_args), sources[keep]
