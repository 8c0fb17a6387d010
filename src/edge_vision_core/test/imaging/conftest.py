"""Shared factories for the imaging tests: real images shipped in the scikit-image wheel.

The corrections' defaults were tuned on ``camera``, ``coffee`` and ``chelsea`` only
(``benchmarks/bench_quality_tuning.py``); the tests judge them on other images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import skimage.data as skimage_data

#: Images the correction defaults were tuned on; tests of the corrections must not use them.
TUNING_IMAGES = frozenset({'camera', 'coffee', 'chelsea', 'cat'})  # cat is chelsea


def _load(name: str) -> tuple[np.ndarray, str]:
    img = getattr(skimage_data, name)()
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    if img.ndim == 3:
        return np.ascontiguousarray(img[:, :, 2::-1]), 'bgr8'  # RGB(A) -> BGR
    return np.ascontiguousarray(img), 'mono8'


@pytest.fixture
def load_image() -> Callable[[str], tuple[np.ndarray, str]]:
    """``load_image(name) -> (image, encoding)``: a scikit-image sample as bgr8 or mono8."""
    return _load


@pytest.fixture
def tuning_images() -> frozenset[str]:
    """Names of the images the correction defaults were tuned on."""
    return TUNING_IMAGES


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
