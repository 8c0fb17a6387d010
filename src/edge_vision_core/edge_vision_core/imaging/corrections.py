"""Photometric and geometric corrections, as pure functions on native images.

Each function takes an image in a native encoding (see ``_image.NATIVE_ENCODINGS``: mono8,
mono16, bgr8, rgb8, bgr16, rgb16 as (H, W) or (H, W, 3) uint8/uint16 arrays), returns a new
array of the same dtype and channel layout (saturated to the dtype's range, never in place)
and leaves the input untouched. Parameters that depend on the image are computed by separate
functions (:func:`exposure_gamma`, :func:`gray_edge_gains`, :func:`gray_world_gains`,
``metrics.estimate_noise_sigma``), so a caller can smooth them over time or report them.

Intensities are normalised by the image's full scale (255 for 8-bit, ``2**bit_depth - 1`` for
16-bit); noise levels are in 8-bit levels like :mod:`.metrics`.

Costs are printed by ``benchmarks/bench_quality.py``. Per VGA bgr8 frame on a busy 2-core
x86 (medians, ms): gamma solve 0.8 + LUT 0.14; gray-edge white balance 0.9; unsharp mask 0.7;
3x3 kernel 0.3; CLAHE 1.5; resize 0.07; denoising: Gaussian 5x5 0.3, median 5x5 1.0,
bilateral d=5 3.5, non-local means (7x7 patches, 11x11 search) 80 (mono) / 200 (colour). So
every method but non-local means fits a 30 Hz VGA stream on such a CPU; non-local means is for
low rates or small images.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..errors import ConfigError
from ._image import check_image, full_scale, is_colour

__all__ = [
    'DENOISE_METHODS',
    'INTERPOLATIONS',
    'apply_channel_gains',
    'apply_gamma',
    'check_sharpen_kernel',
    'clahe_luma',
    'denoise',
    'exposure_gamma',
    'gray_edge_gains',
    'gray_world_gains',
    'resize',
    'sharpen_kernel',
    'unsharp_mask',
]

#: Denoising methods, cheapest first.
DENOISE_METHODS = ('gaussian', 'median', 'bilateral', 'nlmeans')

#: Interpolation names -> OpenCV flags (``auto``: area when shrinking, linear when enlarging).
INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'linear': cv2.INTER_LINEAR,
    'cubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}

# Constants of the automatic denoising strength, tuned on skimage's camera, coffee and chelsea
# images only (benchmarks/bench_quality_tuning.py); tests use other images.
NLMEANS_H_PER_SIGMA = 0.8  # fastNlMeansDenoising h per 8-bit level of noise sigma
BILATERAL_COLOR_PER_SIGMA = 3.0  # bilateral sigmaColor per 8-bit level of noise sigma


def _check_finite(name: str, value: float, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or \
            not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(f'{name} must be a number in [{lo}, {hi}], got {value!r}')
    return float(value)


# ---------------------------------------------------------------------------------------------
# Exposure


# BT.601 luma weights of (B, G, R), as cv2.COLOR_BGR2GRAY
_LUMA_WEIGHTS_BGR = (0.114, 0.587, 0.299)
# Image statistics (histograms, channel means) of large frames use every k-th row so that about
# this many pixels remain: far more than a mean or a gain needs, at a fraction of the cost.
_STATS_PIXELS = 300_000


def _sample_rows(image: np.ndarray) -> np.ndarray:
    """Every k-th row of a large image (a view), keeping about _STATS_PIXELS pixels."""
    step = max(1, (image.shape[0] * image.shape[1]) // _STATS_PIXELS)
    return image[::step] if step > 1 else image


def _mean_luma_u8(image: np.ndarray, encoding: str) -> float:
    """Mean BT.601 luma / 255 of the rows :func:`_luma_weighted_histogram` reads (uint8)."""
    img = _sample_rows(image)
    pixels = 255.0 * img.shape[0] * img.shape[1]
    sums = cv2.sumElems(img)  # exact integer sums (in doubles); 7x faster than cv2.mean here
    if img.ndim == 2:
        return sums[0] / pixels
    weights = _LUMA_WEIGHTS_BGR if encoding.startswith('bgr') else _LUMA_WEIGHTS_BGR[::-1]
    return sum(w * m for w, m in zip(weights, sums[:len(weights)], strict=True)) / pixels


def _luma_weighted_histogram(image: np.ndarray, encoding: str, scale: float
                             ) -> tuple[np.ndarray, np.ndarray]:
    """(weights, normalised values in [0, 1]) such that mean luma = sum(weights * values).

    Luma is linear in the channels, so the mean luma of any per-channel tone curve f is
    ``sum_c w_c mean(f(channel_c))``: the channel histograms weighted by the luma weights
    describe it exactly (a histogram of luma itself would not: f(luma) != luma(f)).
    """
    img = np.ascontiguousarray(_sample_rows(image))
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels == 1:
        luma_weights: tuple[float, ...] = (1.0,)
    else:
        luma_weights = _LUMA_WEIGHTS_BGR if encoding.startswith('bgr') else \
            _LUMA_WEIGHTS_BGR[::-1]
    if img.dtype == np.uint8:
        bins, hi = 256, 256.0
        values = np.arange(256, dtype=np.float64) / 255.0
    else:
        bins, hi = 1024, scale + 1.0
        values = np.minimum((np.arange(bins) + 0.5) * hi / bins / scale, 1.0)
        img = img.astype(np.float32)
    weights = np.zeros(bins)
    for c, w in enumerate(luma_weights):
        weights += w * cv2.calcHist([img], [c], None, [bins], [0, hi]).ravel()
    return weights / (img.shape[0] * img.shape[1]), values


def exposure_gamma(image: np.ndarray, encoding: str, *, target: float = 0.45,
                   tolerance: float = 0.0, gamma_min: float = 0.25, gamma_max: float = 4.0,
                   bit_depth: int = 0) -> float:
    """The gamma that brings the image's mean luma to ``target`` (fraction of full scale).

    Solves ``mean luma of apply_gamma(image, gamma) = goal`` exactly (bisection on log gamma
    over the channel histograms weighted by the BT.601 luma weights; frames above 0.3 Mpx are
    sampled every k-th row), where ``goal`` is the mean luma clamped to
    ``[target - tolerance, target + tolerance]``: images already within the band keep gamma 1,
    and the gamma is a continuous function of the brightness (no jump at the band's edges, so
    video does not flicker).

    Args:
        image: native image (see the module docstring).
        encoding: its encoding.
        target: wanted mean luma, fraction of full scale, in (0, 1).
        tolerance: half-width of the band around ``target`` that needs no correction.
        gamma_min, gamma_max: limits of the returned gamma (< 1 brightens, > 1 darkens).
        bit_depth: significant bits of 16-bit images (0 = 16).

    Returns:
        The gamma for :func:`apply_gamma`, within ``[gamma_min, gamma_max]``.
    """
    image = check_image(image, encoding)
    target = _check_finite('target', target, 0.01, 0.99)
    tolerance = _check_finite('tolerance', tolerance, 0.0, 1.0)
    gamma_min = _check_finite('gamma_min', gamma_min, 0.01, 1.0)
    gamma_max = _check_finite('gamma_max', gamma_max, 1.0, 100.0)
    if image.dtype == np.uint8:
        # Most frames of a well-exposed camera lie inside the band: their mean luma (the
        # weighted channel means, exactly what the histograms below sum to) settles it
        # without the histograms. Only a mean clearly inside the band takes this path, so
        # the answer is the one the histograms give.
        fast = _mean_luma_u8(image, encoding)
        if target - tolerance + 1e-6 <= fast <= target + tolerance - 1e-6:
            return 1.0
    weights, values = _luma_weighted_histogram(image, encoding,
                                               full_scale(image.dtype, bit_depth))
    mean = float(weights @ values)
    goal = min(max(mean, target - tolerance), target + tolerance)
    if abs(goal - mean) < 1e-6:
        return 1.0

    def mean_after(gamma: float) -> float:
        return float(weights @ np.power(values, gamma))

    lo, hi = math.log(gamma_min), math.log(gamma_max)
    if mean_after(gamma_min) <= goal:  # too dark to reach the goal: brighten as far as allowed
        return gamma_min
    if mean_after(gamma_max) >= goal:
        return gamma_max
    for _ in range(40):  # mean_after falls as gamma grows; 40 halvings: < 1e-10 in log gamma
        mid = 0.5 * (lo + hi)
        if mean_after(math.exp(mid)) > goal:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def apply_gamma(image: np.ndarray, gamma: float, *, bit_depth: int = 0) -> np.ndarray:
    """Map every channel through ``full_scale * (v / full_scale) ** gamma`` (a lookup table).

    Args:
        image: (H, W) or (H, W, C) uint8 or uint16 array.
        gamma: exponent > 0; 1 returns a copy.
        bit_depth: significant bits of 16-bit images (0 = 16); values above full scale clip.
    """
    gamma = _check_finite('gamma', gamma, 1e-3, 1e3)
    _check_integer_image(image)
    scale = full_scale(image.dtype, bit_depth)
    levels = 256 if image.dtype == np.uint8 else 65536
    values = np.minimum(np.arange(levels, dtype=np.float64) / scale, 1.0)
    table = np.rint(np.power(values, gamma) * scale).astype(image.dtype)
    if image.dtype == np.uint8:
        return cv2.LUT(image, table)
    return table[image]


def _check_integer_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16) or \
            image.ndim not in (2, 3):
        raise ConfigError(f'expected a (H, W) or (H, W, C) uint8/uint16 image, got '
                          f'{getattr(image, "shape", None)} {getattr(image, "dtype", None)}')


def clahe_luma(image: np.ndarray, encoding: str, *, clip_limit: float = 2.0,
               tile_grid: int = 8, clahe: cv2.CLAHE | None = None) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (CLAHE) of the luma only.

    Colour images go through YCrCb: Y is equalised, chroma is kept, so hues do not shift.

    Args:
        image: native image.
        encoding: its encoding.
        clip_limit: OpenCV's contrast limit per tile (1 = no amplification; 2-4 typical).
        tile_grid: tiles per side of the image grid.
        clahe: a ``cv2.createCLAHE`` object to reuse (then ``clip_limit``/``tile_grid`` are
            ignored); creating one costs a few microseconds.
    """
    image = check_image(image, encoding)
    if clahe is None:
        clip_limit = _check_finite('clip_limit', clip_limit, 0.1, 100.0)
        if isinstance(tile_grid, bool) or not isinstance(tile_grid, int) or \
                not 1 <= tile_grid <= 64:
            raise ConfigError(f'tile_grid must be an integer in 1..64, got {tile_grid!r}')
        clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))
    if not is_colour(encoding):
        return clahe.apply(np.ascontiguousarray(image))
    rgb = encoding.startswith('rgb')
    to_ycc = cv2.COLOR_RGB2YCrCb if rgb else cv2.COLOR_BGR2YCrCb
    from_ycc = cv2.COLOR_YCrCb2RGB if rgb else cv2.COLOR_YCrCb2BGR
    ycc = cv2.cvtColor(np.ascontiguousarray(image), to_ycc)
    ycc[:, :, 0] = clahe.apply(np.ascontiguousarray(ycc[:, :, 0]))
    return cv2.cvtColor(ycc, from_ycc)


# ---------------------------------------------------------------------------------------------
# White balance


def gray_world_gains(image: np.ndarray, encoding: str, *, max_gain: float = 4.0,
                     bit_depth: int = 0) -> tuple[float, ...]:
    """Gray-world white balance: per-channel gains that make the channel means equal.

    The gray-world assumption (Buchsbaum 1980) is that a scene averages to grey; each channel is
    scaled to the mean of the three channel means, so overall brightness is kept. Pixels with a
    saturated channel (>= 98 % of full scale) are left out of the means: their colour is
    unknown. Frames above 0.3 Mpx are sampled every k-th row.

    Args:
        image: native colour image (mono images get ``(1.0,)``).
        encoding: its encoding.
        max_gain: gains are limited to ``[1 / max_gain, max_gain]``.
        bit_depth: significant bits of 16-bit images (0 = 16).

    Returns:
        One gain per channel, in the image's channel order.
    """
    image = check_image(image, encoding)
    max_gain = _check_finite('max_gain', max_gain, 1.0, 100.0)
    if not is_colour(encoding):
        return (1.0,)
    scale = full_scale(image.dtype, bit_depth)
    img = np.ascontiguousarray(_sample_rows(image))
    limit = 0.98 * scale
    brightest = cv2.max(cv2.max(img[:, :, 0], img[:, :, 1]), img[:, :, 2])
    mask = (brightest < limit).astype(np.uint8)
    if cv2.countNonZero(mask) < 0.01 * mask.size:  # nearly all saturated: use everything
        mask = None
    means = np.array(cv2.mean(img, mask=mask)[:3])
    if np.any(means <= 0):
        return (1.0, 1.0, 1.0)
    gray = float(means.mean())
    gains = np.clip(gray / means, 1.0 / max_gain, max_gain)
    return tuple(float(g) for g in gains)


def gray_edge_gains(image: np.ndarray, encoding: str, *, max_gain: float = 4.0
                    ) -> tuple[float, ...]:
    """Gray-edge white balance: per-channel gains that make the mean edge strengths equal.

    The first-order gray-edge hypothesis (van de Weijer, Gevers and Gijsenij, "Edge-based color
    constancy", IEEE TIP 2007) is that the average *gradient* of a scene is achromatic. It
    holds far better than gray-world on scenes dominated by one colour (a brown table, an
    orange cat), see ``benchmarks/bench_quality_tuning.py``. Gradients are 3x3 Sobel
    magnitudes (Minkowski norm p = 1) on a copy shrunk with area averaging by
    ``max(2, ceil(longer side / 480))`` (2 for VGA, 4 for 1080p): the pre-smoothing of the
    method, and far fewer pixels. Gains are normalised to keep the mean level, like
    :func:`gray_world_gains`.

    Args:
        image: native colour image (mono images get ``(1.0,)``).
        encoding: its encoding.
        max_gain: gains are limited to ``[1 / max_gain, max_gain]``.

    Returns:
        One gain per channel, in the image's channel order.
    """
    image = check_image(image, encoding)
    max_gain = _check_finite('max_gain', max_gain, 1.0, 100.0)
    if not is_colour(encoding):
        return (1.0,)
    h, w = image.shape[:2]
    factor = max(2, math.ceil(max(h, w) / 480))
    small = cv2.resize(np.ascontiguousarray(image), (max(w // factor, 3), max(h // factor, 3)),
                       interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    edges = np.array(cv2.mean(cv2.magnitude(gx, gy))[:3])
    if np.any(edges <= 0):  # a flat channel: nothing to go by
        return (1.0, 1.0, 1.0)
    gains = np.clip(float(edges.mean()) / edges, 1.0 / max_gain, max_gain)
    return tuple(float(g) for g in gains)


def apply_channel_gains(image: np.ndarray, gains: tuple[float, ...]) -> np.ndarray:
    """Multiply each channel by its gain, saturating to the dtype's range."""
    _check_integer_image(image)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if len(gains) != channels:
        raise ConfigError(f'{len(gains)} gains for an image with {channels} channel(s)')
    values = [_check_finite('gain', g, 0.0, 1e3) for g in gains]
    if channels == 1:
        return cv2.convertScaleAbs(image, alpha=values[0]) if image.dtype == np.uint8 else \
            cv2.multiply(image, values[0])
    return cv2.multiply(np.ascontiguousarray(image), (*values, 0.0)[:4])


# ---------------------------------------------------------------------------------------------
# Sharpening


def unsharp_mask(image: np.ndarray, *, sigma: float = 1.0, amount: float = 1.0,
                 threshold: float = 0.0, bit_depth: int = 0) -> np.ndarray:
    """Unsharp masking: ``image + amount * (image - GaussianBlur(image, sigma))``.

    Args:
        image: (H, W) or (H, W, C) uint8/uint16 array.
        sigma: standard deviation of the Gaussian in pixels (the scale of the detail boosted;
            about the blur to undo).
        amount: gain of the detail (0 = no change; 0.5-2 typical).
        threshold: details smaller than this many 8-bit levels are left alone, so flat noisy
            areas are not amplified (0 = sharpen everything).
        bit_depth: significant bits of 16-bit images (0 = 16), for ``threshold``.
    """
    _check_integer_image(image)
    sigma = _check_finite('sigma', sigma, 0.1, 50.0)
    amount = _check_finite('amount', amount, 0.0, 20.0)
    threshold = _check_finite('threshold', threshold, 0.0, 255.0)
    img = np.ascontiguousarray(image)
    blurred = cv2.GaussianBlur(img, (0, 0), sigma)
    sharp = cv2.addWeighted(img, 1.0 + amount, blurred, -amount, 0.0)
    if threshold > 0.0:
        level = threshold * full_scale(image.dtype, bit_depth) / 255.0
        small = cv2.absdiff(img, blurred) < level
        sharp[small] = img[small]
    return sharp


def check_sharpen_kernel(kernel: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """Validate a sharpening kernel; return it as a (k, k) float32 array.

    Raises:
        ConfigError: not k*k values with k odd, NaN/inf values, or a sum other than 1.
    """
    k = np.asarray(kernel, dtype=np.float32)
    side = int(round(math.sqrt(k.size)))
    if side * side != k.size or side % 2 == 0 or side < 1:
        raise ConfigError(f'a sharpening kernel needs k*k values with k odd (9 for 3x3, 25 for '
                          f'5x5), got {k.size}')
    k = k.reshape(side, side)
    if not np.all(np.isfinite(k)):
        raise ConfigError('the sharpening kernel contains NaN or inf')
    if abs(float(k.sum()) - 1.0) > 1e-3:
        raise ConfigError(f'the sharpening kernel sums to {float(k.sum()):.4g}; it must sum to 1 '
                          f'(otherwise it changes the brightness: divide it by its sum)')
    return k


def sharpen_kernel(image: np.ndarray, kernel: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """Convolve with a generic square sharpening kernel (``cv2.filter2D``, reflected borders).

    Args:
        image: (H, W) or (H, W, C) uint8/uint16 array.
        kernel: (k, k) array, or k*k values row-major, k odd; it must sum to 1 so flat areas
            keep their level (e.g. ``[0, -1, 0, -1, 5, -1, 0, -1, 0]``).
    """
    _check_integer_image(image)
    k = check_sharpen_kernel(kernel)
    return cv2.filter2D(np.ascontiguousarray(image), -1, k, borderType=cv2.BORDER_REFLECT_101)


# ---------------------------------------------------------------------------------------------
# Denoising


def denoise(image: np.ndarray, encoding: str, *, method: str = 'gaussian',
            noise_sigma: float = 5.0, strength: float = 1.0, ksize: int = 5,
            search_window: int = 11, bit_depth: int = 0) -> np.ndarray:
    """Reduce noise with an edge-affordable filter.

    Methods (costs per VGA frame in the module docstring):

    - ``gaussian``: ``GaussianBlur`` with a ``ksize`` x ``ksize`` kernel (sigma from ksize);
      cheapest, blurs edges.
    - ``median``: ``medianBlur(ksize)``; removes impulse noise, keeps step edges (16-bit images:
      ksize 3 or 5).
    - ``bilateral``: ``bilateralFilter`` with diameter ``ksize``, colour sigma
      ``3 x strength x noise_sigma`` and space sigma ``ksize / 2``; edge-preserving.
    - ``nlmeans``: ``fastNlMeansDenoising`` (``...Colored`` for 8-bit colour) with
      ``h = 0.8 x strength x noise_sigma``, 7x7 patches and a ``search_window`` search area;
      best quality, by far the most expensive.

    Args:
        image: native image.
        encoding: its encoding.
        method: one of :data:`DENOISE_METHODS`.
        noise_sigma: noise standard deviation in 8-bit levels (e.g. from
            :func:`.metrics.estimate_noise_sigma`); sets the strength of bilateral and nlmeans.
        strength: multiplier of the noise-dependent strength.
        ksize: odd kernel size for gaussian/median/bilateral (3..15).
        search_window: odd search-area size for nlmeans (7..35).
        bit_depth: significant bits of 16-bit images (0 = 16).
    """
    image = np.ascontiguousarray(check_image(image, encoding))
    if method not in DENOISE_METHODS:
        raise ConfigError(f'unknown denoise method {method!r}; expecting one of '
                          f'{", ".join(DENOISE_METHODS)}')
    noise_sigma = _check_finite('noise_sigma', noise_sigma, 0.0, 255.0)
    strength = _check_finite('strength', strength, 0.0, 20.0)
    for name, value, lo, hi in (('ksize', ksize, 3, 15), ('search_window', search_window, 7,
                                                           35)):
        if isinstance(value, bool) or not isinstance(value, int) or value % 2 == 0 or \
                not lo <= value <= hi:
            raise ConfigError(f'{name} must be an odd integer in {lo}..{hi}, got {value!r}')
    to_native = full_scale(image.dtype, bit_depth) / 255.0
    if method == 'gaussian':
        return cv2.GaussianBlur(image, (ksize, ksize), 0)
    if method == 'median':
        if image.dtype == np.uint16 and ksize > 5:
            raise ConfigError('median denoising of 16-bit images supports ksize 3 or 5 only')
        return cv2.medianBlur(image, ksize)
    if method == 'bilateral':
        sigma_color = max(BILATERAL_COLOR_PER_SIGMA * strength * noise_sigma, 1e-3) * to_native
        if image.dtype == np.uint8:
            return cv2.bilateralFilter(image, ksize, sigma_color, ksize / 2.0)
        out = cv2.bilateralFilter(image.astype(np.float32), ksize, sigma_color, ksize / 2.0)
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    h = max(NLMEANS_H_PER_SIGMA * strength * noise_sigma, 1e-3)
    if image.dtype == np.uint8:
        if is_colour(encoding):
            return cv2.fastNlMeansDenoisingColored(image, None, h, h, 7, search_window)
        return cv2.fastNlMeansDenoising(image, None, h, 7, search_window)
    # 16-bit: OpenCV supports it with the L1 patch norm only, one channel at a time
    planes = cv2.split(image) if image.ndim == 3 else [image]
    out = [cv2.fastNlMeansDenoising(p, h=[h * to_native], templateWindowSize=7,
                                    searchWindowSize=search_window, normType=cv2.NORM_L1)
           for p in planes]
    return cv2.merge(out) if image.ndim == 3 else out[0]


# ---------------------------------------------------------------------------------------------
# Resize


def resize(image: np.ndarray, width: int, height: int, interpolation: str = 'auto'
           ) -> np.ndarray:
    """Resize to ``width`` x ``height`` pixels.

    Args:
        image: (H, W) or (H, W, C) array.
        width, height: output size in pixels (> 0).
        interpolation: a key of :data:`INTERPOLATIONS` or ``auto`` (area when shrinking, linear
            when enlarging).
    """
    for name, value in (('width', width), ('height', height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                not 1 <= value <= 32768:
            raise ConfigError(f'resize {name} must be an integer in 1..32768, got {value!r}')
    if interpolation == 'auto':
        shrink = width * height < image.shape[0] * image.shape[1]
        flag = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    elif interpolation in INTERPOLATIONS:
        flag = INTERPOLATIONS[interpolation]
    else:
        raise ConfigError(f'unknown interpolation {interpolation!r}; expecting auto or one of '
                          f'{", ".join(INTERPOLATIONS)}')
    if (width, height) == (image.shape[1], image.shape[0]):
        return image.copy()
    return cv2.resize(np.ascontiguousarray(image), (int(width), int(height)),
                      interpolation=flag)
