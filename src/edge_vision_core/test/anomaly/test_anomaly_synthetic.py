"""The benchmark generator: defects and their masks agree, layout, determinism."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edge_vision_core import ConfigError
from edge_vision_core.anomaly.synthetic_defects import (
    CATEGORIES,
    DEFECT_KINDS,
    BenchmarkConfig,
    add_defect,
    load_source_image,
    make_benchmark,
    normal_views,
)


@pytest.fixture(scope='module')
def views() -> dict[str, np.ndarray]:
    """One normal 160 px view of a grey texture, a colour texture and a colour scene."""
    rng = np.random.default_rng(5)
    out = {}
    for name in ('gravel', 'ihc', 'astronaut'):
        kind = CATEGORIES[name][1]
        out[name] = normal_views(load_source_image(name), kind, 1, 160, rng)[0]
    return out


@pytest.mark.parametrize('kind', DEFECT_KINDS)
@pytest.mark.parametrize('name', ['gravel', 'ihc', 'astronaut'])
def test_defect_mask_covers_what_changed(views, kind, name):
    image = views[name]
    rng = np.random.default_rng([DEFECT_KINDS.index(kind), len(name)])
    foreign = load_source_image('brick' if name == 'astronaut' else 'coffee')
    out, mask = add_defect(image, kind, rng, foreign)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert mask.shape == image.shape[:2] and mask.dtype == bool
    diff = np.abs(out.astype(np.int16) - image.astype(np.int16)).max(axis=2)
    area = int(mask.sum())
    assert 4 <= area < 0.25 * mask.size
    # inside: visibly changed; outside: only faint fringes (soft edges, anti-aliasing)
    assert diff[mask].mean() >= 8.0
    assert (diff[mask] >= 1).all()
    strong_outside = int(((diff > 16) & ~mask).sum())
    assert strong_outside <= 0.2 * area, (strong_outside, area)


def test_unknown_defect_and_missing_foreign_image(views):
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match='unknown defect'):
        add_defect(views['gravel'], 'dent', rng)
    with pytest.raises(ConfigError, match='foreign image'):
        add_defect(views['gravel'], 'foreign', rng)


def test_benchmark_layout_and_determinism(tmp_path):
    config = BenchmarkConfig(categories=('grass',), defects=('stain', 'crack'), image_size=48,
                             train_images=3, test_good_images=2, test_images_per_defect=2,
                             seed=3)
    summary = make_benchmark(tmp_path / 'a', config)
    make_benchmark(tmp_path / 'b', config)
    make_benchmark(tmp_path / 'c', BenchmarkConfig(**{**config.__dict__, 'seed': 4}))
    assert summary == {'grass': {'kind': 'texture', 'train': 3, 'test_good': 2, 'stain': 2,
                                 'crack': 2}}
    files = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*.png'))
    assert [str(p) for p in files] == [
        'grass/ground_truth/crack/000_mask.png', 'grass/ground_truth/crack/001_mask.png',
        'grass/ground_truth/stain/000_mask.png', 'grass/ground_truth/stain/001_mask.png',
        'grass/test/crack/000.png', 'grass/test/crack/001.png',
        'grass/test/good/000.png', 'grass/test/good/001.png',
        'grass/test/stain/000.png', 'grass/test/stain/001.png',
        'grass/train/good/000.png', 'grass/train/good/001.png', 'grass/train/good/002.png']

    def digest(root):
        return hashlib.sha256(b''.join((root / p).read_bytes() for p in files)).hexdigest()

    assert digest(tmp_path / 'a') == digest(tmp_path / 'b')
    assert digest(tmp_path / 'a') != digest(tmp_path / 'c')


def test_config_validation():
    with pytest.raises(ConfigError, match='categories'):
        BenchmarkConfig(categories=('lava',))
    with pytest.raises(ConfigError, match='image_size'):
        BenchmarkConfig(image_size=8)
