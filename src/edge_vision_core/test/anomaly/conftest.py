"""Shared factories for the anomaly tests: a small generated benchmark and fitted detectors.

Everything is generated from images that ship in the scikit-image wheel into pytest's temporary
folders; nothing is committed. Images are small (128 px, model input 128x128) so the whole
anomaly suite runs in well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_vision_core.anomaly import AnomalyConfig, AnomalyDetector
from edge_vision_core.anomaly.synthetic_defects import BenchmarkConfig, make_benchmark

#: what the small benchmark holds (a texture and a fixed-view scene).
SMALL = BenchmarkConfig(categories=('brick', 'coffee'), defects=('scratch', 'hole', 'foreign'),
                        image_size=128, train_images=10, test_good_images=6,
                        test_images_per_defect=3, seed=7)
#: detector settings for fast tests (model input 128x128).
FAST = AnomalyConfig(input_width=128, input_height=128, max_memory_bank=1024)


@pytest.fixture(scope='session')
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a small MVTec-like benchmark (categories brick and coffee)."""
    root = tmp_path_factory.mktemp('anomaly_bench')
    make_benchmark(root, SMALL)
    return root


def _read_folder(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p)) for p in sorted(folder.glob('*.png'))]


@pytest.fixture
def read_folder() -> Callable[[Path], list[np.ndarray]]:
    """``read_folder(path)``: every PNG of a folder as bgr8, sorted by name."""
    return _read_folder


@pytest.fixture
def fast() -> AnomalyConfig:
    """Detector settings for fast tests: model input 128x128, bank of at most 1024 rows."""
    return FAST


@pytest.fixture(scope='session')
def brick_detector(small_bench: Path) -> AnomalyDetector:
    """A PatchCore detector (default features) fitted on the small benchmark's brick."""
    detector = AnomalyDetector(FAST)
    detector.fit(small_bench / 'brick' / 'train' / 'good')
    yield detector
    detector.close()


@pytest.fixture
def make_detector() -> Callable[..., AnomalyDetector]:
    """``make_detector(**overrides)``: an unfitted detector with the fast settings (closed at
    the end of the test)."""
    made: list[AnomalyDetector] = []

    def factory(**overrides: object) -> AnomalyDetector:
        detector = AnomalyDetector(FAST, **overrides)
        made.append(detector)
        return detector

    yield factory
    for detector in made:
        detector.close()
