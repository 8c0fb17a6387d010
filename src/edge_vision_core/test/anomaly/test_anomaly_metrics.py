"""Anomaly metrics: AUROC (ties), pixel AUROC, PRO, and the MVTec-like folder reader."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge_vision_core import ConfigError, SourceError
from edge_vision_core.eval.anomaly import (
    auroc,
    find_categories,
    pixel_auroc,
    pro_auc,
    read_anomaly_dataset,
)


def pairwise_auroc(scores, labels) -> float:
    """The definition: P(positive > negative) + 0.5 P(tie), over all pairs."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize('scores, labels, expected', [
    ([1, 2, 3, 4], [0, 0, 1, 1], 1.0),
    ([4, 3, 2, 1], [0, 0, 1, 1], 0.0),
    ([5, 5, 5, 5], [0, 1, 0, 1], 0.5),
    # pairs (pos, neg): (2,1) win, (2,2) tie, (3,1) win, (3,2) win -> 3.5 / 4
    ([1, 2, 2, 3], [0, 0, 1, 1], 0.875),
    # one positive between two negatives
    ([0.1, 0.5, 0.9], [False, True, False], 0.5),
])
def test_auroc_hand_made_cases(scores, labels, expected):
    assert auroc(scores, labels) == pytest.approx(expected)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_auroc_equals_the_pairwise_definition_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, 60).astype(float)  # heavy ties
    labels = rng.random(60) < 0.3
    labels[:2] = [True, False]
    assert auroc(scores, labels) == pytest.approx(pairwise_auroc(scores, labels))


def test_auroc_matches_scikit_learn():
    metrics = pytest.importorskip('sklearn.metrics')
    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=500), 1)
    labels = rng.random(500) < 0.2
    assert auroc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores))


@pytest.mark.parametrize('scores, labels, message', [
    ([1, 2], [1, 1], 'both classes'),
    ([1, 2], [0, 0], 'both classes'),
    ([1, 2, 3], [0, 1], 'labels'),
    ([1, np.nan], [0, 1], 'finite'),
])
def test_auroc_rejects_bad_input(scores, labels, message):
    with pytest.raises(ConfigError, match=message):
        auroc(scores, labels)


def test_pixel_auroc_perfect_and_after_downscaling():
    mask = np.zeros((64, 64), bool)
    mask[16:32, 16:32] = True
    heat = np.where(mask, 2.0, 1.0).astype(np.float32)
    normal = np.ones((64, 64), np.float32)
    clean = np.zeros((64, 64), bool)
    assert pixel_auroc([heat, normal], [mask, clean], max_side=0) == 1.0
    assert pixel_auroc([heat, normal], [mask, clean], max_side=32) == 1.0
    # an inverted map is the worst possible
    assert pixel_auroc([-heat], [mask], max_side=0) == 0.0
    with pytest.raises(ConfigError, match='differ in size'):
        pixel_auroc([heat], [mask[:10]])


def test_pro_of_a_region_covered_in_two_steps():
    # 10,000 normal pixels with scores spread evenly over [0, 1); one region of 200 pixels:
    # half above every normal pixel, half at 0.9 (covered once 10 % of normal pixels are).
    normal = (np.arange(10000, dtype=np.float32) / 10000).reshape(100, 100)
    image = np.zeros((20, 20), np.float32)
    mask = np.zeros((20, 20), bool)
    mask[:10, :20] = True
    image[:5, :20] = 2.0
    image[5:10, :20] = 0.9
    pro = pro_auc([normal, image[10:], image[:10]], [np.zeros_like(normal, bool),
                                                    np.zeros((10, 20), bool), mask[:10]],
                  max_side=0)
    # overlap 0.5 up to FPR 0.1, then 1.0 up to 0.3: (0.5 * 0.1 + 1.0 * 0.2) / 0.3
    assert pro == pytest.approx((0.05 + 0.2) / 0.3, abs=0.01)


def test_pro_averages_regions_not_pixels():
    normal = np.linspace(0, 1, 10000, dtype=np.float32).reshape(100, 100)
    image = np.zeros((40, 40), np.float32)
    mask = np.zeros((40, 40), bool)
    mask[:10, :10] = True       # large region: found
    image[:10, :10] = 5.0
    mask[30:32, 30:32] = True   # small region: scored like the lowest normal pixel
    image[30:32, 30:32] = -1.0
    pro = pro_auc([normal, image], [np.zeros_like(normal, bool), mask], max_side=0)
    assert pro == pytest.approx(0.5, abs=0.01)  # pixel-wise it would be 100 / 104


def test_pro_needs_a_region():
    with pytest.raises(ConfigError, match='region'):
        pro_auc([np.zeros((4, 4))], [np.zeros((4, 4), bool)])


def test_reader_finds_categories_masks_and_defects(small_bench):
    roots = find_categories(small_bench)
    assert [r.name for r in roots] == ['brick', 'coffee']
    assert find_categories(small_bench / 'brick') == [small_bench / 'brick']
    data = read_anomaly_dataset(small_bench / 'brick')
    assert data.category == 'brick' and len(data.train) == 10
    assert data.defects == ('foreign', 'hole', 'scratch')
    good = [s for s in data.test if not s.is_anomalous]
    bad = [s for s in data.test if s.is_anomalous]
    assert len(good) == 6 and len(bad) == 9
    assert all(s.mask_path is not None and s.mask_path.is_file() for s in bad)
    assert all(s.mask_path.name == f'{s.path.stem}_mask.png' for s in bad)


def test_reader_rejects_other_layouts(tmp_path):
    with pytest.raises(SourceError, match='test/'):
        read_anomaly_dataset(tmp_path)
    with pytest.raises(SourceError, match='no MVTec-like category'):
        find_categories(tmp_path)
    (tmp_path / 'test' / 'good').mkdir(parents=True)
    with pytest.raises(SourceError, match='no normal test image'):
        read_anomaly_dataset(tmp_path)
