"""Each correction brings a degraded real image measurably closer to the original.

The defaults were tuned on the tuning images only (the ``tuning_images`` fixture); these tests use
other scikit-image samples. Each correction undoes one degradation under a stated condition of
the scene, checked on the clean image with our own metrics rather than by picking images:

- exposure: the scene is normally exposed (mean luma within the default target band
  0.45 +- 0.1): an automatic exposure cannot know that a night scene is meant to be dark;
- sharpening and CLAHE: the scene has fine detail (variance of Laplacian >= 100); on smooth
  or synthetic images there is nothing for a blur to have removed;
- denoising: the scene's own fine texture is weaker than the noise (noise estimate of the clean
  image <= 3 levels; texture at the noise scale, as in grass or gravel, is indistinguishable
  from noise) and the noise was not clipped (under 10 % of the noisy values at 0 or 255:
  clipping turns zero-mean noise into a bias that no denoiser removes).

"Measurably closer" means PSNR up by more than 0.1 dB and SSIM up, both against the original.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core import ConfigError
from edge_vision_core.imaging import PreprocessConfig, measure_quality, psnr, ssim
from edge_vision_core.imaging import corrections as cor

CANDIDATES = ('astronaut', 'rocket', 'immunohistochemistry', 'hubble_deep_field', 'brick',
              'text', 'moon', 'coins', 'clock', 'page', 'cell', 'gravel', 'grass', 'colorwheel')
DEFAULTS = PreprocessConfig()


def _load_small(load_image, name: str) -> tuple[np.ndarray, str]:
    img, enc = load_image(name)
    if max(img.shape[:2]) > 520:  # keep the tests fast
        s = 512 / max(img.shape[:2])
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return img, enc


def _closer(clean: np.ndarray, degraded: np.ndarray, fixed: np.ndarray) -> tuple[float, float]:
    """(PSNR gain in dB, SSIM gain) of ``fixed`` over ``degraded``, both against ``clean``."""
    return psnr(clean, fixed) - psnr(clean, degraded), ssim(clean, fixed) - ssim(clean, degraded)


def _noisy(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(img + rng.normal(0.0, sigma, img.shape)), 0, 255).astype(np.uint8)


def test_tests_do_not_use_the_tuning_images(tuning_images):
    assert not tuning_images & set(CANDIDATES)


def _assert_closer(clean: np.ndarray, degraded: np.ndarray, fixed: np.ndarray,
                   what: str) -> None:
    d_psnr, d_ssim = _closer(clean, degraded, fixed)
    assert d_psnr > 0.1 and d_ssim > 0.0, f'{what}: PSNR {d_psnr:+.2f} dB, SSIM {d_ssim:+.4f}'


@pytest.mark.parametrize('name', CANDIDATES)
def test_automatic_exposure_undoes_darkening(name, load_image):
    img, enc = _load_small(load_image, name)
    target, band = DEFAULTS.exposure_target, DEFAULTS.exposure_tolerance
    if abs(measure_quality(img, enc).brightness - target) > band:
        pytest.skip(f'{name} is not normally exposed')
    for darken, value in (('gamma', 1.5), ('gamma', 2.2), ('gamma', 3.0), ('gain', 0.6),
                          ('gain', 0.4), ('gain', 0.25)):
        dark = cor.apply_gamma(img, value) if darken == 'gamma' else \
            cv2.convertScaleAbs(img, alpha=value)
        gamma = cor.exposure_gamma(dark, enc, target=target, tolerance=band)
        if abs(measure_quality(dark, enc).brightness - target) <= band:
            assert gamma == 1.0  # still within the band: left alone by design
            continue
        assert gamma < 1.0
        fixed = cor.apply_gamma(dark, gamma)
        _assert_closer(img, dark, fixed, f'{darken} {value}')
        assert measure_quality(fixed, enc).brightness == pytest.approx(target - band, abs=0.01)


@pytest.mark.parametrize('name', CANDIDATES)
def test_clahe_undoes_strong_darkening(name, load_image):
    img, enc = _load_small(load_image, name)
    if measure_quality(img, enc).sharpness < 100:
        pytest.skip(f'{name} has no fine detail')
    for gain in (0.4, 0.25):
        dark = cv2.convertScaleAbs(img, alpha=gain)
        fixed = cor.clahe_luma(dark, enc, clip_limit=DEFAULTS.clahe_clip_limit,
                               tile_grid=DEFAULTS.clahe_tiles)
        _assert_closer(img, dark, fixed, f'gain {gain}')


@pytest.mark.parametrize('name', CANDIDATES)
@pytest.mark.parametrize('method', ['unsharp', 'kernel'])
def test_sharpening_undoes_gaussian_blur(name, method, load_image):
    img, enc = _load_small(load_image, name)
    if measure_quality(img, enc).sharpness < 100:
        pytest.skip(f'{name} has no fine detail')
    for blur in (0.8, 1.2, 1.6, 2.0):
        blurred = cv2.GaussianBlur(img, (0, 0), blur)
        if method == 'unsharp':
            fixed = cor.unsharp_mask(blurred, sigma=DEFAULTS.sharpen_sigma,
                                     amount=DEFAULTS.sharpen_amount)
        else:
            fixed = cor.sharpen_kernel(blurred, DEFAULTS.sharpen_kernel)
        _assert_closer(img, blurred, fixed, f'blur {blur}')
        assert measure_quality(fixed, enc).sharpness > measure_quality(blurred, enc).sharpness


@pytest.mark.parametrize('name', CANDIDATES)
@pytest.mark.parametrize(('method', 'sigmas'), [
    ('bilateral', (10.0, 20.0)), ('nlmeans', (10.0, 25.0)), ('gaussian', (25.0,)),
])
def test_denoising_undoes_gaussian_noise(name, method, sigmas, load_image, rng):
    img, enc = _load_small(load_image, name)
    if measure_quality(img, enc).noise_sigma > 3.0:
        pytest.skip(f'{name} has fine texture at the noise scale')
    checked = 0
    for sigma in sigmas:
        noisy = _noisy(img, sigma, rng)
        if np.mean((noisy == 0) | (noisy == 255)) > 0.1:
            continue  # the noise added is clipped
        checked += 1
        measured = measure_quality(noisy, enc).noise_sigma
        fixed = cor.denoise(noisy, enc, method=method, noise_sigma=measured,
                            strength=DEFAULTS.denoise_strength, ksize=DEFAULTS.denoise_ksize,
                            search_window=DEFAULTS.denoise_search_window)
        _assert_closer(img, noisy, fixed, f'sigma {sigma}')
        assert measure_quality(fixed, enc).noise_sigma < measured
    if not checked:
        pytest.skip(f'the noise added to {name} is clipped at every strength')


@pytest.mark.parametrize('name', CANDIDATES)
def test_median_denoising_removes_impulse_noise(name, load_image, rng):
    img, enc = _load_small(load_image, name)
    if measure_quality(img, enc).noise_sigma > 3.0:
        pytest.skip(f'{name} has fine texture at the noise scale')
    for fraction in (0.02, 0.1):
        noisy = img.copy()
        hit = rng.random(img.shape[:2]) < fraction
        values = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)
        noisy[hit] = values[:, None] if noisy.ndim == 3 else values
        fixed = cor.denoise(noisy, enc, method='median', ksize=3)
        _assert_closer(img, noisy, fixed, f'{fraction:.0%} impulses')


@pytest.mark.parametrize('name', ['astronaut', 'rocket', 'immunohistochemistry',
                                  'hubble_deep_field', 'colorwheel'])
@pytest.mark.parametrize('cast', [0.2, 0.3])
def test_gray_edge_white_balance_undoes_a_colour_cast(name, cast, load_image):
    img, enc = _load_small(load_image, name)
    tinted = cor.apply_channel_gains(img, (1.0 - cast, 1.0, 1.0 + cast))
    gains = cor.gray_edge_gains(tinted, enc, max_gain=DEFAULTS.wb_max_gain)
    _assert_closer(img, tinted, cor.apply_channel_gains(tinted, gains), f'cast {cast}')


@pytest.mark.parametrize('gains_of', [cor.gray_edge_gains, cor.gray_world_gains])
def test_white_balance_gains_cancel_any_channel_gain(gains_of, load_image):
    # Both estimators are equivariant: a cast (a, b, c) changes the gains by (1/a, 1/b, 1/c)
    # up to the common normalisation, so the balanced result does not depend on the cast.
    img, enc = _load_small(load_image, 'astronaut')
    base = np.array(gains_of(img, enc, max_gain=10.0))
    cast = np.array([0.7, 1.0, 0.85])  # gains <= 1: no clipping, only rounding
    tinted = cor.apply_channel_gains(img, tuple(cast))
    ratio = np.array(gains_of(tinted, enc, max_gain=10.0)) * cast / base
    assert np.allclose(ratio / ratio.mean(), 1.0, atol=0.02)


def test_exposure_gamma_hits_the_target_exactly_and_respects_the_band(load_image):
    img, enc = _load_small(load_image, 'brick')
    dark = cv2.convertScaleAbs(img, alpha=0.3)
    gamma = cor.exposure_gamma(dark, enc, target=0.45)
    assert measure_quality(cor.apply_gamma(dark, gamma), enc).brightness == \
        pytest.approx(0.45, abs=0.005)  # rounding of the LUT to integers
    banded = cor.exposure_gamma(dark, enc, target=0.45, tolerance=0.1)
    assert measure_quality(cor.apply_gamma(dark, banded), enc).brightness == \
        pytest.approx(0.35, abs=0.005)  # the nearest edge of the band
    assert cor.exposure_gamma(img, enc, target=0.45, tolerance=0.1) == 1.0
    black = np.zeros((16, 16), np.uint8)
    assert cor.exposure_gamma(black, 'mono8', gamma_min=0.3) == 0.3  # cannot brighten zero


@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8', 'mono8'])
@pytest.mark.parametrize('shape', [(240, 320), (1080, 1920)])  # 1080p: sampled rows
def test_exposure_mean_without_histograms_is_the_histograms_mean(encoding, shape, load_image):
    """The band test of 8-bit frames uses the channel means; they must be the mean luma the
    histograms give (same rows, same weights, same channel order)."""
    img, _ = _load_small(load_image, 'coffee')
    img = cv2.resize(img, shape[::-1])
    if encoding == 'rgb8':
        img = np.ascontiguousarray(img[:, :, ::-1])
    elif encoding == 'mono8':
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    weights, values = cor._luma_weighted_histogram(img, encoding, 255.0)
    assert cor._mean_luma_u8(img, encoding) == pytest.approx(float(weights @ values), abs=1e-8)
    mean = float(weights @ values)
    for target, tolerance in ((mean, 0.01), (mean + 0.02, 0.01), (mean - 0.0101, 0.01)):
        gamma = cor.exposure_gamma(img, encoding, target=target, tolerance=tolerance)
        assert (gamma == 1.0) == (abs(target - mean) <= tolerance), (target, gamma)


def test_exposure_on_16_bit_images_matches_8_bit(load_image):
    img, _ = _load_small(load_image, 'brick')
    dark = cv2.convertScaleAbs(img, alpha=0.3)
    g8 = cor.exposure_gamma(dark, 'mono8')
    g16 = cor.exposure_gamma(dark.astype(np.uint16) * 257, 'mono16')
    g12 = cor.exposure_gamma(dark.astype(np.uint16) * 16, 'mono16', bit_depth=12)
    assert g16 == pytest.approx(g8, rel=0.02) and g12 == pytest.approx(g8, rel=0.02)
    out = cor.apply_gamma(dark.astype(np.uint16) * 16, g12, bit_depth=12)
    assert out.dtype == np.uint16 and out.max() <= 4095


@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8', 'bgr16', 'mono8', 'mono16'])
@pytest.mark.parametrize('step', ['clahe', 'denoise', 'unsharp', 'kernel', 'gamma', 'wb',
                                  'resize'])
def test_every_correction_keeps_dtype_and_layout_and_leaves_the_input_alone(
        encoding, step, load_image):
    img, _ = _load_small(load_image, 'astronaut')
    img = img[:64, :80]
    if encoding.startswith('mono'):
        img = img[:, :, 1]
    if encoding.startswith('rgb'):
        img = img[:, :, ::-1]
    if encoding.endswith('16'):
        img = img.astype(np.uint16) * 257
    img = np.ascontiguousarray(img)
    before = img.copy()
    run = {
        'clahe': lambda: cor.clahe_luma(img, encoding),
        'denoise': lambda: cor.denoise(img, encoding, method='bilateral', noise_sigma=5),
        'unsharp': lambda: cor.unsharp_mask(img, threshold=2.0),
        'kernel': lambda: cor.sharpen_kernel(img, DEFAULTS.sharpen_kernel),
        'gamma': lambda: cor.apply_gamma(img, 0.7),
        'wb': lambda: cor.apply_channel_gains(img, cor.gray_edge_gains(img, encoding)),
        'resize': lambda: cor.resize(img, 40, 32),
    }
    out = run[step]()
    assert out.dtype == img.dtype and out.ndim == img.ndim
    assert out.shape[2:] == img.shape[2:]
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize(('call', 'match'), [
    (lambda im: cor.sharpen_kernel(im, [0, -1, 0, -1, 4, -1, 0, -1, 0]), 'sums to 0'),
    (lambda im: cor.sharpen_kernel(im, [1.0, 0.0]), 'k\\*k values with k odd'),
    (lambda im: cor.sharpen_kernel(im, [float('nan')] * 9), 'NaN'),
    (lambda im: cor.unsharp_mask(im, sigma=0.0), 'sigma must be a number in'),
    (lambda im: cor.unsharp_mask(im, amount=float('inf')), 'amount must be'),
    (lambda im: cor.denoise(im, 'mono8', method='wiener'), "unknown denoise method 'wiener'"),
    (lambda im: cor.denoise(im, 'mono8', ksize=4), 'ksize must be an odd integer'),
    (lambda im: cor.exposure_gamma(im, 'mono8', target=1.5), 'target must be'),
    (lambda im: cor.apply_gamma(im, -1.0), 'gamma must be'),
    (lambda im: cor.apply_gamma(im.astype(np.float32), 0.5), 'uint8/uint16'),
    (lambda im: cor.apply_channel_gains(im, (1.0, 1.0)), '2 gains for an image with 1'),
    (lambda im: cor.resize(im, 0, 10), 'resize width must be'),
    (lambda im: cor.resize(im, 10, 10, 'bogus'), "unknown interpolation 'bogus'"),
    (lambda im: cor.clahe_luma(im, 'mono8', tile_grid=0), 'tile_grid must be'),
])
def test_absurd_parameters_raise_config_errors(call, match):
    img = np.full((32, 32), 100, np.uint8)
    with pytest.raises(ConfigError, match=match):
        call(img)
