"""PatchCore's nearest-neighbour searches: the exact BLAS search against a float64 brute force,
FAISS's HNSW graph (never below exact, exact at the top of every frame, reproducible, rows left
out for the calibration really left out), the ``search`` setting and the bank builder."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edge_vision_core import ConfigError
from edge_vision_core.anomaly import patchcore
from edge_vision_core.anomaly.patchcore import (
    GREEDY_MAX_ROWS,
    MemoryBankBuilder,
    PatchCoreModel,
    greedy_coreset,
    nearest_distances,
    resolve_search,
)


def brute_force(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Nearest-row distances from every difference vector in float64, a few queries at a time
    (all at once, the scene's 1,200 x 20,000 x 16 differences took 3 GB and 15 s)."""
    bank = bank.astype(np.float64)
    out = np.empty(len(queries))
    for start in range(0, len(queries), 16):
        diff = queries[start:start + 16].astype(np.float64)[:, None, :] - bank[None, :, :]
        out[start:start + 16] = np.sqrt(np.einsum('qmd,qmd->qm', diff, diff).min(axis=1))
    return out


def clustered(rows: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Rows in tight clusters of near-duplicates, like the patches of many views of one scene
    (the case where a graph search misses neighbours)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (max(rows // 50, 1), dim))
    return (centres[rng.integers(0, len(centres), rows)]
            + rng.normal(0, 0.05, (rows, dim))).astype(np.float32)


@pytest.mark.parametrize(('queries', 'rows'), [(1, 1), (300, 37), (257, 4096), (70, 70000)])
def test_exact_search_matches_a_float64_brute_force(queries, rows):
    """Chunk edges (256 queries a product, fewer for a large bank) and a one-row bank."""
    rng = np.random.default_rng(rows)
    bank = rng.normal(0, 1, (rows, 13)).astype(np.float32)
    q = rng.normal(0, 1, (queries, 13)).astype(np.float32)
    got = nearest_distances(q, bank)
    assert got.shape == (queries,) and got.dtype == np.float32
    np.testing.assert_allclose(got, brute_force(q, bank), rtol=1e-4, atol=1e-4)
    model = PatchCoreModel(bank, search='exact')
    np.testing.assert_allclose(model.nearest(q), got, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope='module')
def scene():
    pytest.importorskip('faiss')
    bank = clustered(20000)
    rng = np.random.default_rng(5)
    grid = (bank[rng.integers(0, len(bank), 30 * 40)]
            + rng.normal(0, 0.08, (30 * 40, 16))).astype(np.float32).reshape(30, 40, 16)
    grid[7, 9] += 1.5  # one anomalous patch
    return bank, grid, brute_force(grid.reshape(-1, 16), bank).reshape(30, 40)


def test_hnsw_scores_are_never_below_exact_and_exact_at_the_top(scene):
    bank, grid, exact = scene
    # a narrow search misses neighbours: without the exact pass some scores are too high
    loose = PatchCoreModel(bank, search='hnsw', ef_search=1, exact_top=0).score(grid)
    assert (loose >= exact - 1e-4).all()
    assert (loose > exact + 1e-3).sum() > 0
    model = PatchCoreModel(bank, search='hnsw', ef_search=1, exact_top=16)
    scores = model.score(grid)
    assert (scores >= exact - 1e-4).all()
    top = np.sort(scores.ravel())[-16:]
    np.testing.assert_allclose(top, np.sort(exact.ravel())[-16:], rtol=1e-4)
    assert np.unravel_index(np.argmax(scores), scores.shape) == (7, 9)
    # the default search width finds almost every nearest row
    default = PatchCoreModel(bank, search='hnsw').score(grid)
    assert np.mean(np.abs(default - exact) < 1e-3) > 0.97


def test_hnsw_scores_are_reproducible(scene):
    bank, grid, _ = scene
    first = PatchCoreModel(bank, search='hnsw').score(grid)
    np.testing.assert_array_equal(PatchCoreModel(bank, search='hnsw').score(grid), first)


def test_searches_split_over_threads_match_one_search(scene, monkeypatch):
    """The HNSW model's per-frame searches run on several threads: the graph search split by
    queries, the exhaustive pass by bank rows (three threads here, uneven ranges), with
    the same results as one search over everything."""
    from concurrent.futures import ThreadPoolExecutor

    import faiss

    bank, grid, exact = scene
    queries = grid.reshape(-1, 16)
    model = PatchCoreModel(bank, search='hnsw')
    params = faiss.SearchParametersHNSW()
    params.efSearch = model.ef_search
    whole = np.sqrt(np.maximum(model._hnsw_index().search(queries, 1, params=params)[0][:, 0],
                               0))
    with ThreadPoolExecutor(3, initializer=faiss.omp_set_num_threads, initargs=(1,)) as pool:
        monkeypatch.setattr(patchcore, '_search_threads', lambda: (pool, 3))
        monkeypatch.setattr(patchcore, 'SPLIT_MIN_ROWS', 6000)  # 20,000 rows: 3 ranges
        calls = []
        real = patchcore._blocked_nearest
        monkeypatch.setattr(patchcore, '_blocked_nearest',
                            lambda q2, b, sq: calls.append(len(b)) or real(q2, b, sq))
        np.testing.assert_array_equal(model.nearest(queries), whole)
        split = model.exact_nearest(queries)
    assert sorted(calls) == [6666, 6667, 6667]
    # the model's ``threads`` bounds them (the anomaly config's threads): 2 of the 3 here
    two = PatchCoreModel(bank, search='hnsw', threads=2)
    with ThreadPoolExecutor(3, initializer=faiss.omp_set_num_threads, initargs=(1,)) as pool:
        monkeypatch.setattr(patchcore, '_search_threads', lambda: (pool, 3))
        widths = []
        real_parallel = patchcore._in_parallel
        monkeypatch.setattr(patchcore, '_in_parallel',
                            lambda c: widths.append(len(c)) or real_parallel(c))
        np.testing.assert_array_equal(two.nearest(queries), whole)
        np.testing.assert_allclose(two.exact_nearest(queries), split, rtol=1e-4, atol=1e-4)
    assert widths == [2, 2]
    # one thread (one core, or OMP_NUM_THREADS=1): every share on the caller's thread
    monkeypatch.setattr(patchcore, '_search_threads', lambda: (None, 1))
    assert patchcore._in_parallel([(int, '1'), (int, '2'), (int, '3')]) == [1, 2, 3]
    np.testing.assert_array_equal(model.nearest(queries), whole)
    np.testing.assert_allclose(split, exact.ravel(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(split, nearest_distances(queries, bank), rtol=1e-4, atol=1e-4)


def test_rows_left_out_are_never_found(scene):
    """The calibration's out-of-fold models: a graph model skips the dropped rows (searched
    and exhaustively) like an exact model of the rest of the bank."""
    bank, grid, _ = scene
    model = PatchCoreModel(bank, search='hnsw', exact_top=16)
    drop = np.zeros(len(bank), bool)
    drop[::3] = True
    held = model.without_rows(drop)
    rest = PatchCoreModel(bank[~drop], search='exact')
    left_out = bank[drop][:50]  # their own nearest row is themselves: not any more
    np.testing.assert_allclose(held.exact_nearest(left_out), rest.nearest(left_out), atol=1e-4)
    assert (held.nearest(left_out) >= rest.nearest(left_out) - 1e-4).all()
    assert (held.nearest(left_out) > 1e-3).all()
    np.testing.assert_allclose(np.sort(held.score(grid).ravel())[-16:],
                               np.sort(rest.score(grid).ravel())[-16:], atol=1e-4)
    # the full model still has them: 0 up to float32 rounding of |q|^2 + |m|^2 - 2 q.m
    assert model.exact_nearest(left_out).max() < 0.1 * held.exact_nearest(left_out).min()
    # an exact model drops rows by keeping the rest
    assert PatchCoreModel(bank, search='exact').without_rows(drop).size == (~drop).sum()


def test_the_search_setting_resolves_and_names_the_fix(monkeypatch):
    assert resolve_search('exact', 10**6) == 'exact'
    assert resolve_search('auto', patchcore.AUTO_HNSW_ROWS) == 'exact'
    with pytest.raises(ConfigError, match="unknown nearest-neighbour search 'kd'"):
        resolve_search('kd', 10)
    if patchcore.hnsw_available():
        assert resolve_search('auto', patchcore.AUTO_HNSW_ROWS + 1) == 'hnsw'
    monkeypatch.setitem(sys.modules, 'faiss', None)  # as if faiss-cpu were not installed
    assert not patchcore.hnsw_available()
    assert resolve_search('auto', 10**6) == 'exact'
    with pytest.raises(ConfigError, match='pip install faiss-cpu'):
        PatchCoreModel(np.ones((4, 2), np.float32), search='hnsw')


def test_the_bank_builder_keeps_every_patch_and_samples_only_above_the_greedy_limit():
    rng = np.random.default_rng(2)
    rows = rng.normal(0, 1, (GREEDY_MAX_ROWS + 5000, 4)).astype(np.float32)
    rows[:, 0] = np.arange(len(rows))  # each row names itself
    whole = MemoryBankBuilder(max_size=10**6, ratio=1.0)
    for i, part in enumerate(np.array_split(rows, 7)):
        whole.add(part, source=i)
    model, sources = whole.build(search='exact')
    np.testing.assert_array_equal(model.memory_bank, rows)
    assert np.bincount(sources).tolist() == [len(p) for p in np.array_split(rows, 7)]
    # a cap above the greedy limit: a random sample of distinct rows, sources kept with them
    capped = MemoryBankBuilder(max_size=GREEDY_MAX_ROWS + 1000, ratio=1.0)
    capped.add(rows[:10000], source=0)
    capped.add(rows[10000:], source=1)
    model, sources = capped.build()
    assert model.size == GREEDY_MAX_ROWS + 1000
    assert len(np.unique(model.memory_bank, axis=0)) == model.size
    np.testing.assert_array_equal(sources, (model.memory_bank[:, 0] >= 10000).astype(int))
    # a small ratio: the greedy coreset, as before
    small = MemoryBankBuilder(max_size=8192, ratio=0.1, projection_dim=0, seed=3)
    small.add(rows[:3000])
    model, _ = small.build()
    np.testing.assert_array_equal(model.memory_bank,
                                  rows[:3000][greedy_coreset(rows[:3000], 300, 0, 3)])
