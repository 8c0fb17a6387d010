"""PSNR and SSIM equal scikit-image's on real images, for every dtype and layout we accept."""

from __future__ import annotations

import math
import warnings

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from edge_vision_core import ConfigError, DataError
from edge_vision_core.imaging import mse, psnr, ssim
from edge_vision_core.imaging.reference import dtype_range

IMAGES = ('astronaut', 'camera', 'coffee', 'brick', 'text', 'rocket', 'immunohistochemistry')
TOL = 1e-4


def _degraded(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blurred = cv2.GaussianBlur(img, (0, 0), 1.3).astype(np.float64)
    return np.clip(np.rint(blurred + rng.normal(0.0, 6.0, img.shape)), 0, 255).astype(np.uint8)


def _skimage_ssim(a: np.ndarray, b: np.ndarray, **kw: object) -> float:
    with warnings.catch_warnings():  # skimage warns about the assumed range of uint16 images
        warnings.simplefilter('ignore', UserWarning)
        return float(structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None,
                                           **kw))


@pytest.mark.parametrize('name', IMAGES)
@pytest.mark.parametrize('kind', ['uint8', 'float32', 'float64', 'uint16', 'gray_uint8'])
def test_psnr_and_ssim_equal_scikit_image(name, kind, load_image, rng):
    ref, _ = load_image(name)
    img = _degraded(ref, rng)
    if kind == 'gray_uint8' and ref.ndim == 3:
        ref, img = ref[:, :, 1].copy(), img[:, :, 1].copy()
    kw = {}
    if kind.startswith('float'):
        ref, img = ref.astype(kind) / 255, img.astype(kind) / 255
        kw = {'data_range': 1.0}
    elif kind == 'uint16':
        ref, img = ref.astype(np.uint16) * 257, img.astype(np.uint16) * 257
    assert abs(ssim(ref, img, **kw) - _skimage_ssim(ref, img, **kw)) < TOL
    assert abs(psnr(ref, img) - peak_signal_noise_ratio(ref, img)) < TOL
    assert abs(psnr(ref, img, **kw) - peak_signal_noise_ratio(ref, img, **kw)) < TOL


@pytest.mark.parametrize('win_size', [3, 5, 11, 15])
def test_ssim_window_sizes_and_constants(win_size, load_image, rng):
    ref, _ = load_image('astronaut')
    img = _degraded(ref, rng)
    ours = ssim(ref, img, win_size=win_size, k1=0.02, k2=0.05)
    theirs = _skimage_ssim(ref, img, win_size=win_size, K1=0.02, K2=0.05)
    assert abs(ours - theirs) < TOL


@pytest.mark.parametrize(('a', 'b'), [
    (255, 254), (0, 1), (255, 0), (128, 128),
], ids=['bright-flat', 'dark-flat', 'opposite', 'equal'])
def test_ssim_is_exact_on_flat_images_where_float32_cancellation_would_fail(a, b):
    # Flat bright images make u_xx - u_x^2 cancel catastrophically in float32; the uint8 path
    # uses exact integer window sums, so it must still match skimage's float64 result.
    ref = np.full((40, 50), a, np.uint8)
    img = np.full((40, 50), b, np.uint8)
    img[10:20, 10:30] = 37  # some structure as well
    assert abs(ssim(ref, img) - _skimage_ssim(ref, img)) < 1e-6


def test_threads_do_not_change_the_result(load_image, rng):
    ref, _ = load_image('astronaut')
    ref = cv2.resize(ref, (1280, 720))
    img = _degraded(ref, rng)
    assert ssim(ref, img, workers=1) == pytest.approx(ssim(ref, img, workers=4), abs=1e-12)


def test_identical_images():
    img = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert psnr(img, img) == math.inf
    assert mse(img, img) == 0.0


def test_more_than_four_channels_and_other_dtypes(rng):
    ref = rng.integers(0, 256, (30, 40, 6)).astype(np.uint8)
    img = np.clip(ref + rng.normal(0, 20, ref.shape), 0, 255).astype(np.uint8)
    assert abs(ssim(ref, img) - _skimage_ssim(ref, img)) < TOL
    ref16, img16 = ref.astype(np.int16) - 100, img.astype(np.int16) - 100
    assert abs(ssim(ref16, img16) - _skimage_ssim(ref16, img16)) < TOL
    assert abs(psnr(ref16, img16) - peak_signal_noise_ratio(ref16, img16)) < TOL


def test_dtype_ranges_follow_scikit_image():
    assert dtype_range(np.uint8) == (0, 255)
    assert dtype_range(np.int8) == (-128, 127)
    assert dtype_range(np.float32) == (-1, 1)
    assert dtype_range(np.bool_) == (0, 1)


@pytest.mark.parametrize(('call', 'error', 'match'), [
    (lambda a: ssim(a, a[:-1]), DataError, 'same shape'),
    (lambda a: psnr(a, a.astype(np.float32)), DataError, 'different dtypes'),
    (lambda a: ssim(a, a.astype(np.float32)), DataError, 'different dtypes'),
    (lambda a: ssim(a.astype(np.float32), a.astype(np.float32)), ConfigError,
     'pass data_range'),
    (lambda a: psnr(a.astype(np.float32) + 2, a.astype(np.float32)), ConfigError,
     'pass data_range'),
    (lambda a: ssim(a, a, data_range=0), ConfigError, 'data_range must be a finite number > 0'),
    (lambda a: psnr(a, a, data_range=float('nan')), ConfigError, 'data_range must be a finite'),
    (lambda a: ssim(a, a, win_size=4), ConfigError, 'odd integer'),
    (lambda a: ssim(a[:5], a[:5]), ConfigError, 'at least win_size=7'),
    (lambda a: ssim(a, a, k1=-1), ConfigError, 'k1 must be'),
    (lambda a: ssim(a, a, workers=0), ConfigError, 'workers must be'),
    (lambda a: ssim(a.tolist(), a), DataError, 'numpy arrays'),
    (lambda a: mse(a[None, None], a[None, None]), DataError, r'\(H, W\) or \(H, W, C\)'),
])
def test_bad_arguments_raise_errors_that_name_the_fix(call, error, match):
    """Bad images are DataErrors, bad settings ConfigErrors."""
    a = np.zeros((20, 20), np.uint8)
    with pytest.raises(error, match=match):
        call(a)
