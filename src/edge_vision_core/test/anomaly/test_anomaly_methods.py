"""The method table: every anomaly method fits, scores, leaves images out and round-trips its
arrays through the same interface, and the detector runs each one without knowing which."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ConfigError, ModelError
from edge_vision_core.anomaly import METHODS, AnomalyConfig, AnomalyDetector, get_method
from edge_vision_core.anomaly.patchcore import PatchCoreModel

CONFIG = AnomalyConfig(max_memory_bank=256, reweight_neighbors=9)


def normal_grids(count: int, seed: int = 0, shape=(6, 8, 16)) -> list[np.ndarray]:
    """Embedding grids drawn around a fixed per-cell pattern (aligned 'normal images')."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(99).normal(0, 1, shape).astype(np.float32)
    return [base + rng.normal(0, 0.2, shape).astype(np.float32) for _ in range(count)]


def test_the_table_and_its_loud_lookup():
    assert list(METHODS) == ['patchcore', 'padim']
    for name, method in METHODS.items():
        assert get_method(name) is method and method.name == name
        assert method.array_names and method.default_dim > 0 and method.size_unit
    with pytest.raises(ConfigError, match=r"Invalid anomaly method 'knn', expecting one of "
                                          r"\['patchcore', 'padim'\]"):
        get_method('knn')


@pytest.mark.parametrize('name', list(METHODS))
def test_every_method_fits_scores_leaves_out_and_restores(name):
    method = get_method(name)
    grids = normal_grids(12)
    valid = np.ones(grids[0].shape[:2], bool)
    fitter = method.fitter(CONFIG)
    for i, grid in enumerate(grids):
        fitter.add(grid, valid, i)
    model = fitter.build()
    assert model.dim == 16 and model.size >= 1
    test = normal_grids(1, seed=5)[0]
    normal = model.score(test)
    assert normal.shape == (6, 8) and normal.dtype == np.float32 and (normal >= 0).all()
    broken = test.copy()
    broken[2, 3] += 3.0  # one anomalous patch
    scores = model.score(broken)
    assert np.unravel_index(np.argmax(scores), scores.shape) == (2, 3)
    assert scores[2, 3] > 3 * normal.max()
    # leaving images out changes the model, and leaving out what was added raises its scores
    held = fitter.without(model, [0, 1, 2], grids[:3])
    assert held.score(grids[0]).mean() > model.score(grids[0]).mean()
    restored = method.from_arrays(model.arrays(), model.dim, (6, 8), CONFIG)
    np.testing.assert_allclose(restored.score(broken), scores, rtol=1e-5)
    weight = model.frame_weight(broken, (2, 3))
    assert 0.0 < weight <= 1.0


@pytest.mark.parametrize('name', list(METHODS))
def test_from_arrays_checks_the_declared_shapes(name):
    method = get_method(name)
    fitter = method.fitter(CONFIG)
    valid = np.ones((6, 8), bool)
    for i, grid in enumerate(normal_grids(4)):
        fitter.add(grid, valid, i)
    arrays = fitter.build().arrays()
    with pytest.raises(ModelError, match='the header declares'):
        method.from_arrays(arrays, 15, (6, 8), CONFIG)
    first = method.array_names[0]
    with pytest.raises(ModelError, match=f"'{first}' has dtype float64"):
        method.from_arrays({**arrays, first: arrays[first].astype(np.float64)}, 16, (6, 8),
                           CONFIG)


def test_patchcore_reweighting_stays_in_its_bounds_and_trusts_sparse_matches():
    rng = np.random.default_rng(1)
    dense = rng.normal(0, 0.05, (200, 8)).astype(np.float32)  # a tight cluster
    sparse = (rng.normal(0, 1, (20, 8)) * 10 + 30).astype(np.float32)  # far apart rows
    model = PatchCoreModel(np.concatenate([dense, sparse]), neighbors=9)
    near_dense = np.full((1, 1, 8), 0.5, np.float32)
    near_sparse = (sparse[0] + 0.5)[None, None]
    w_dense = model.frame_weight(near_dense, (0, 0))
    w_sparse = model.frame_weight(near_sparse, (0, 0))
    assert 1 - 1 / 9 - 1e-6 <= w_dense < w_sparse <= 1.0
    assert w_dense == pytest.approx(1 - 1 / 9, abs=0.02)  # all neighbours equally close
    assert PatchCoreModel(dense, neighbors=0).frame_weight(near_dense, (0, 0)) == 1.0


@pytest.mark.parametrize('name', list(METHODS))
def test_the_detector_runs_every_method_through_the_table(name, small_bench, tmp_path, fast,
                                                           read_folder):
    """fit -> score -> save -> load for each table entry with the same detector code."""
    images = read_folder(small_bench / 'coffee' / 'test' / 'hole')[:2]
    with AnomalyDetector(fast, method=name, layers=('stride8', 'color8')) as det:
        report = det.fit(small_bench / 'coffee' / 'train' / 'good')
        assert report.model_size == det.model_info.fit['model_size'] > 0
        expected = [det.score(image).score for image in images]
        path = det.save(tmp_path / f'{name}.npz')
    with AnomalyDetector.from_file(path) as loaded:
        assert loaded.model_info.method == loaded.config.method == name
        got = [loaded.score(image).score for image in images]
    np.testing.assert_allclose(got, expected, rtol=1e-3)
