"""No-reference metrics move with controlled degradations of real images, in the right units."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge_vision_core import ConfigError, ConversionError
from edge_vision_core.imaging import estimate_noise_sigma, measure_quality

# No tuning happens in the metrics, but stay off the tuning images anyway.
IMAGES = ('astronaut', 'rocket', 'brick', 'text', 'moon', 'coins', 'clock', 'page',
          'immunohistochemistry', 'hubble_deep_field', 'gravel', 'grass')


def _noisy(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(img + rng.normal(0.0, sigma, img.shape)), 0, 255).astype(np.uint8)


def _gamma(img: np.ndarray, gamma: float) -> np.ndarray:
    table = np.rint(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return cv2.LUT(img, table)


def _strictly_decreasing(values: list[float]) -> bool:
    return all(a > b for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize('name', IMAGES)
def test_sharpness_falls_with_blur(name, load_image):
    img, enc = load_image(name)
    blurs = [0.0, 0.7, 1.4, 2.8, 5.6]
    frames = [img if s == 0 else cv2.GaussianBlur(img, (0, 0), s) for s in blurs]
    metrics = [measure_quality(f, enc) for f in frames]
    assert _strictly_decreasing([m.sharpness for m in metrics])
    assert _strictly_decreasing([m.tenengrad for m in metrics])
    # blur keeps the mean level
    assert max(abs(m.brightness - metrics[0].brightness) for m in metrics) < 0.01


@pytest.mark.parametrize('name', IMAGES)
def test_brightness_and_contrast_fall_with_darkening(name, load_image):
    img, enc = load_image(name)
    gammas = [1.0, 1.5, 2.2, 3.0]  # darkening by a gamma > 1
    m_gamma = [measure_quality(_gamma(img, g), enc) for g in gammas]
    assert _strictly_decreasing([m.brightness for m in m_gamma])
    scales = [1.0, 0.7, 0.4, 0.2, 0.05]  # darkening by an exposure (gain) change
    m_scale = [measure_quality(cv2.convertScaleAbs(img, alpha=s), enc) for s in scales]
    assert _strictly_decreasing([m.brightness for m in m_scale])
    assert _strictly_decreasing([m.contrast for m in m_scale])
    # a gain scales mean and standard deviation alike (up to rounding and clipping)
    for s, m in zip(scales, m_scale, strict=True):
        assert m.brightness == pytest.approx(s * m_scale[0].brightness, abs=2 / 255)
    under = [m.underexposed for m in m_scale]
    assert all(a <= b for a, b in zip(under, under[1:], strict=False)) and under[-1] > under[0]


@pytest.mark.parametrize('name', IMAGES)
def test_noise_sigma_rises_with_noise_and_tracks_the_true_sigma(name, load_image, rng):
    """The estimate follows the noise actually added, within a justified tolerance.

    ``sigma_real`` is the standard deviation of the noise in the 8-bit result (after rounding
    and clipping, which shrink it in dark and bright areas). Image structure the Immerkaer
    operator does not cancel adds to the estimate: at most what it reads on the clean image,
    ``sigma_0`` (at low noise the two add almost linearly for a median). Sampling error of the
    median over >= 60k pixels is ~1 %; clipped noise is not Gaussian, which costs up to ~10 %
    on images with large black or white areas (hubble_deep_field, astronaut). Hence:
    ``0.85 sigma_real <= estimate <= 1.1 sigma_real + 1.5 sigma_0``.
    """
    img, enc = load_image(name)
    sigma_0 = estimate_noise_sigma(img, enc)
    estimates = [sigma_0]
    for sigma in (2.0, 4.0, 8.0, 16.0, 32.0):
        noisy = _noisy(img, sigma, rng)
        sigma_real = float(np.sqrt(np.mean((noisy.astype(np.float64) - img) ** 2)))
        est = measure_quality(noisy, enc).noise_sigma
        assert 0.85 * sigma_real <= est <= 1.1 * sigma_real + 1.5 * sigma_0, (sigma, sigma_real)
        estimates.append(est)
    assert all(a < b for a, b in zip(estimates, estimates[1:], strict=False))


@pytest.mark.parametrize('method', ['immerkaer_mad', 'immerkaer'])
@pytest.mark.parametrize('sigma', [1.0, 3.0, 10.0])
def test_noise_estimate_is_accurate_without_image_structure(method, sigma, rng):
    # A smooth ramp is cancelled exactly by the operator: only the noise is left. The
    # tolerance is the sampling error of 250k pixels plus the 8-bit rounding (sigma 0.29).
    ramp = np.add.outer(np.linspace(60, 180, 500), np.linspace(0, 20, 500))
    noisy = np.clip(np.rint(ramp + rng.normal(0.0, sigma, ramp.shape)), 0, 255).astype(np.uint8)
    truth = math.hypot(sigma, 1 / math.sqrt(12))
    assert estimate_noise_sigma(noisy, 'mono8', method=method) == pytest.approx(truth, rel=0.05)


def test_colour_noise_is_the_per_channel_sigma(load_image, rng):
    img, enc = load_image('immunohistochemistry')
    independent = _noisy(img, 10.0, rng)
    shared = np.clip(np.rint(img + rng.normal(0, 10.0, img.shape[:2])[:, :, None]), 0,
                     255).astype(np.uint8)
    for noisy in (independent, shared):
        assert measure_quality(noisy, enc).noise_sigma == pytest.approx(10.0, rel=0.1)


def test_snr_follows_brightness_over_noise(load_image, rng):
    img, enc = load_image('rocket')
    clean, noisy = measure_quality(img, enc), measure_quality(_noisy(img, 8.0, rng), enc)
    assert noisy.snr_db < clean.snr_db
    assert noisy.snr_db == pytest.approx(
        20 * math.log10(255 * noisy.brightness / noisy.noise_sigma), abs=1e-9)
    black = measure_quality(np.zeros((32, 32), np.uint8), 'mono8')
    flat = measure_quality(np.full((32, 32), 100, np.uint8), 'mono8')
    assert black.snr_db == -math.inf and flat.snr_db == math.inf
    assert black.underexposed == 1.0 and flat.noise_sigma == 0.0 and flat.sharpness == 0.0


def test_clipped_fractions_count_the_saturated_pixels():
    img = np.full((100, 100), 128, np.uint8)
    img[:10] = 0  # 10 % black
    img[10:35] = 255  # 25 % white
    m = measure_quality(img, 'mono8')
    assert (m.underexposed, m.overexposed) == (0.10, 0.25)


@pytest.mark.parametrize('dark, bright', [(0.0, 1.0), (0.02, 0.98), (0.1, 0.9),
                                           (3 / 255, 250 / 255), (0.5, 0.5 + 1e-9)])
def test_clipped_fractions_match_a_count_of_every_level(dark, bright, rng):
    """The 8-bit fast path (thresholds at integer levels) counts exactly the pixels at or
    below / at or above the levels, including levels that fall on an integer."""
    img = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    m = measure_quality(img, 'mono8', dark_level=dark, bright_level=bright)
    assert m.underexposed == np.count_nonzero(img <= dark * 255) / img.size
    assert m.overexposed == np.count_nonzero(img >= bright * 255) / img.size


def test_units_do_not_depend_on_bit_depth_or_channel_order(load_image, rng):
    img, enc = load_image('astronaut')
    noisy = _noisy(img, 6.0, rng)
    m8 = measure_quality(noisy, 'bgr8')
    m16 = measure_quality(noisy.astype(np.uint16) * 257, 'bgr16')
    m12 = measure_quality(noisy.astype(np.uint16) * 16, 'bgr16', bit_depth=12)
    m_rgb = measure_quality(np.ascontiguousarray(noisy[:, :, ::-1]), 'rgb8')
    # 8-bit luma is rounded to integers, 16-bit luma 257 times finer, and the 8-bit noise median
    # is interpolated in its histogram while the 16-bit one is exact: ~1 % apart at most
    for other, rel in ((m16, 2e-2), (m12, 2e-2), (m_rgb, 1e-9)):
        for key in ('brightness', 'contrast', 'sharpness', 'tenengrad', 'noise_sigma'):
            assert getattr(other, key) == pytest.approx(getattr(m8, key), rel=rel), key
    gray = cv2.cvtColor(noisy, cv2.COLOR_BGR2GRAY)
    m_mono = measure_quality(gray, 'mono8')
    assert m_mono.brightness == pytest.approx(m8.brightness, abs=1e-12)
    assert m_mono.sharpness == pytest.approx(m8.sharpness, rel=1e-12)


def test_decimation_keeps_the_noise_estimate(load_image, rng):
    img, enc = load_image('brick')
    noisy = _noisy(img, 8.0, rng)
    full = measure_quality(noisy, enc)
    half = measure_quality(noisy, enc, decimation=2)
    assert (half.width, half.height, half.decimation) == (256, 256, 2)
    assert half.noise_sigma == pytest.approx(full.noise_sigma, rel=0.1)
    assert half.brightness == pytest.approx(full.brightness, abs=0.01)


def test_metrics_are_plain_python_numbers(load_image):
    img, enc = load_image('text')
    values = measure_quality(img, enc).as_dict()
    assert all(type(v) in (int, float) for v in values.values())


@pytest.mark.parametrize(('image', 'encoding', 'error', 'match'), [
    (np.zeros((20, 20), np.float32), 'mono8', ConversionError, 'needs a \\(H, W\\) uint8'),
    (np.zeros((20, 20, 3), np.uint8), 'mono8', ConversionError, 'needs a \\(H, W\\) uint8'),
    (np.zeros((20, 20), np.uint8), 'bgr8', ConversionError, 'needs a \\(H, W, 3\\) uint8'),
    (np.zeros((4, 20), np.uint8), 'mono8', ConversionError, 'at least 8x8'),
    (np.zeros((20, 20), np.uint8), '32FC1', ConversionError, 'not processed natively'),
    ([[0] * 20] * 20, 'mono8', ConversionError, 'numpy array'),
])
def test_bad_images_are_refused_with_the_reason(image, encoding, error, match):
    with pytest.raises(error, match=match):
        measure_quality(image, encoding)


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'decimation': 0}, 'decimation must be an integer in 1..16'),
    ({'decimation': 2.5}, 'decimation must be an integer'),
    ({'noise_method': 'wavelet'}, "unknown noise method 'wavelet'"),
    ({'dark_level': 1.5}, 'dark_level must be a fraction'),
    ({'dark_level': 0.6, 'bright_level': 0.4}, 'must be below bright_level'),
    ({'bit_depth': 20}, 'bit_depth must be'),
])
def test_bad_parameters_raise_config_errors(kwargs, match):
    img = np.zeros((20, 20), np.uint16)
    with pytest.raises(ConfigError, match=match):
        measure_quality(img, 'mono16', **kwargs)
