"""Full-reference image quality: MSE, PSNR and SSIM, equal to scikit-image's.

Conventions (those of ``skimage.metrics`` with its defaults, so results agree to ~1e-7):

- Images are (H, W) single-channel or (H, W, C) channels-last arrays of the same shape. A colour
  image gives the mean of the per-channel values, like ``structural_similarity(...,
  channel_axis=-1)``; there is no N-D volume mode.
- ``data_range`` defaults from the dtype of ``ref`` (scikit-image's ``dtype_range``): the dtype's
  full span for SSIM (255 for uint8, 65535 for uint16, 255 for int8); for PSNR the dtype's
  maximum when ``ref`` has no negative values, else the full span. Floating-point images have no
  natural range: PSNR assumes 1 (or 2 with negative values) like scikit-image, SSIM requires
  ``data_range`` like scikit-image does.
- SSIM uses a ``win_size`` x ``win_size`` uniform window (7), K1 = 0.01, K2 = 0.03 and the sample
  covariance (N - 1 normalisation), and averages the SSIM map after cropping
  ``(win_size - 1) // 2`` pixels from every border (so the border handling of the filter never
  matters).

Speed: SSIM is computed from window sums (``cv2.boxFilter``) in horizontal strips of a few dozen
rows, so the working set stays in cache and no full-size temporaries are allocated; strips run
on a few threads (OpenCV releases the GIL). For 8-bit images the window sums, variances and
covariances are exact integers (the only rounding is the final float32 ratio), other dtypes are
computed in float64. ``benchmarks/bench_quality.py`` compares the speed with scikit-image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ..errors import ConfigError, ConversionError, DataError

__all__ = ['dtype_range', 'mse', 'psnr', 'ssim']

#: dtypes cv2.norm handles directly (others go through numpy).
_CV_NORM_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)
_STRIP_ROWS = 32  # output rows per strip: a strip's ~15 buffers then fit in L2 cache
_MIN_PIXELS_PER_WORKER = 250_000  # below this a thread costs more than it saves


def dtype_range(dtype: np.dtype | type) -> tuple[float, float]:
    """The intensity range scikit-image assumes for a dtype: ``(min, max)``.

    Integers span their full range (uint8: 0..255, int16: -32768..32767), floats -1..1 and
    bool 0..1.

    Raises:
        ConversionError: for dtypes that are not bool, integer or real floating point.
    """
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return 0.0, 1.0
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return float(info.min), float(info.max)
    if np.issubdtype(dt, np.floating):
        return -1.0, 1.0
    raise ConversionError(f'images of dtype {dt} are not supported; use bool, an integer or a '
                          f'real floating-point dtype')


def _check_pair(ref: np.ndarray, img: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(ref, np.ndarray) or not isinstance(img, np.ndarray):
        raise DataError(f'{what} needs two numpy arrays, got {type(ref).__name__} and '
                        f'{type(img).__name__}')
    if ref.shape != img.shape:
        raise DataError(f'{what} needs images of the same shape, got {ref.shape} and '
                        f'{img.shape}; resize or crop one of them first')
    if ref.ndim not in (2, 3) or ref.size == 0:
        raise DataError(f'{what} needs non-empty (H, W) or (H, W, C) images, got shape '
                        f'{ref.shape}')
    for arr in (ref, img):
        dtype_range(arr.dtype)  # raises for complex, object, string... dtypes
    return ref, img


def _check_data_range(data_range: float | None) -> float | None:
    if data_range is None:
        return None
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f'data_range must be a finite number > 0 (the span of possible '
                          f'intensities, e.g. 255 for 8-bit images), got {data_range!r}')
    return value


def mse(ref: np.ndarray, img: np.ndarray) -> float:
    """Mean squared error over all pixels and channels (float64 accumulation).

    Args:
        ref, img: arrays of the same shape, (H, W) or (H, W, C), any real or bool dtype.

    Returns:
        The MSE in squared intensity units of the input dtype.

    Raises:
        DataError: shapes differ or the arrays are not images.
    """
    ref, img = _check_pair(ref, img, 'mse')
    return _mse(ref, img)


def _mse(ref: np.ndarray, img: np.ndarray) -> float:
    channels = 1 if ref.ndim == 2 else ref.shape[2]
    if (ref.dtype == img.dtype and ref.dtype.type in _CV_NORM_DTYPES and channels <= 4
            and ref.dtype.isnative):
        a, b = np.ascontiguousarray(ref), np.ascontiguousarray(img)
        # OpenCV accumulates the squared differences in double precision.
        return float(cv2.norm(a, b, cv2.NORM_L2SQR)) / ref.size
    diff = ref.astype(np.float64) - img.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(ref: np.ndarray, img: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, as ``skimage.metrics.peak_signal_noise_ratio``.

    Args:
        ref: (H, W) or (H, W, C) reference ("true") image.
        img: the image to judge, same shape (its dtype may differ when ``data_range`` is given).
        data_range: the span of possible intensities; None derives it from ``ref``'s dtype
            (see the module docstring).

    Returns:
        ``10 log10(data_range**2 / MSE)``; ``inf`` for identical images.

    Raises:
        DataError: shapes differ, or the dtypes differ with no ``data_range``.
        ConfigError: ``data_range`` is not positive, or ``ref`` lies outside its dtype's
            assumed range (a float image beyond [-1, 1]) with no ``data_range``.
    """
    ref, img = _check_pair(ref, img, 'psnr')
    rng = _check_data_range(data_range)
    if rng is None:
        if ref.dtype != img.dtype:
            raise DataError(f'psnr: the images have different dtypes ({ref.dtype} and '
                            f'{img.dtype}); pass data_range explicitly')
        dmin, dmax = dtype_range(ref.dtype)
        true_min, true_max = float(np.min(ref)), float(np.max(ref))
        if true_max > dmax or true_min < dmin:
            raise ConfigError(f'psnr: the reference holds values in [{true_min}, {true_max}], '
                              f'outside the range assumed for {ref.dtype} ([{dmin}, {dmax}]); '
                              f'pass data_range explicitly (e.g. 255.0 for 0..255 floats)')
        rng = dmax if true_min >= 0 else dmax - dmin
    err = _mse(ref, img)
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(rng * rng / err)


def ssim(ref: np.ndarray, img: np.ndarray, *, data_range: float | None = None,
         win_size: int = 7, k1: float = 0.01, k2: float = 0.03,
         workers: int | None = None) -> float:
    """Mean structural similarity, as ``skimage.metrics.structural_similarity``.

    Equals ``structural_similarity(ref, img, data_range=..., win_size=win_size, K1=k1, K2=k2)``
    for (H, W) images and the same with ``channel_axis=-1`` for (H, W, C) images (uniform
    window, sample covariance; see the module docstring).

    Args:
        ref: (H, W) or (H, W, C) reference image, both sides at least ``win_size``.
        img: the image to compare, same shape and dtype.
        data_range: span of possible intensities; None takes it from the (integer) dtype.
            Required for floating-point images, like scikit-image.
        win_size: side of the square window in pixels, odd, >= 3.
        k1, k2: the SSIM stabilising constants (C1 = (k1 R)^2, C2 = (k2 R)^2).
        workers: threads to spread the strips over; None uses ``cv2.getNumThreads()`` (at
            most 8), 1 runs in the calling thread. Small images always use one.

    Returns:
        The mean SSIM in [-1, 1] (1 for identical images).

    Raises:
        DataError: shapes or dtypes differ.
        ConfigError: the image is smaller than the window, a float image has no
            ``data_range``, or a parameter is out of range.
    """
    ref, img = _check_pair(ref, img, 'ssim')
    if isinstance(win_size, bool) or not isinstance(win_size, (int, np.integer)) or \
            win_size < 3 or win_size % 2 == 0:
        raise ConfigError(f'ssim: win_size must be an odd integer >= 3, got {win_size!r}')
    win_size = int(win_size)
    if min(ref.shape[:2]) < win_size:
        raise ConfigError(f'ssim: the images ({ref.shape[1]}x{ref.shape[0]}) must be at least '
                          f'win_size={win_size} pixels on each side; pass a smaller odd '
                          f'win_size')
    for name, k in (('k1', k1), ('k2', k2)):
        if not (isinstance(k, (int, float)) and math.isfinite(k) and k > 0):
            raise ConfigError(f'ssim: {name} must be a finite number > 0, got {k!r}')
    if ref.dtype != img.dtype:
        raise DataError(f'ssim: the images have different dtypes ({ref.dtype} and '
                        f'{img.dtype}); convert one of them')
    rng = _check_data_range(data_range)
    if rng is None:
        if not np.issubdtype(ref.dtype, np.integer) and ref.dtype != np.bool_:
            raise ConfigError(f'ssim: {ref.dtype} images have no natural intensity range; '
                              f'pass data_range (e.g. 1.0 for images in [0, 1])')
        dmin, dmax = dtype_range(ref.dtype)
        rng = dmax - dmin
    if workers is None:
        workers = min(8, max(1, cv2.getNumThreads()))
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f'ssim: workers must be an integer >= 1 or None, got {workers!r}')
    return _ssim_mean(ref, img, float(rng), win_size, float(k1), float(k2), workers)


# ---------------------------------------------------------------------------------------------
# SSIM in strips
#
# With window sums s_x = sum(x), s_xx = sum(x^2), s_xy = sum(x y) over n = win^2 pixels, the
# sample (co)variances are v_x = (n s_xx - s_x^2) / (n (n - 1)) and the means u_x = s_x / n, so
#
#   SSIM = (2 u_x u_y + C1)(2 v_xy + C2) / ((u_x^2 + u_y^2 + C1)(v_x + v_y + C2))
#        = (2 s_x s_y + C1 n^2)(2 (n s_xy - s_x s_y) + C2 n (n-1))
#          / ((s_x^2 + s_y^2 + C1 n^2)((n s_xx - s_x^2) + (n s_yy - s_y^2) + C2 n (n-1)))
#
# where the numerator/denominator factors are exact integers for 8-bit input (the largest,
# n^2 * 255^2 * 2 for win 7, is 3.1e8 < 2^31).


def _ssim_mean(ref: np.ndarray, img: np.ndarray, rng: float, win: int, k1: float, k2: float,
               workers: int) -> float:
    pad = (win - 1) // 2
    n = win * win
    c1 = (k1 * rng) ** 2 * n * n
    c2 = (k2 * rng) ** 2 * n * (n - 1)
    exact = ref.dtype == np.uint8 and n * n * 2 * 255 * 255 < 2**31
    if not exact:
        ref, img = ref.astype(np.float64), img.astype(np.float64)
    planes = [(ref, img)]
    if ref.ndim == 3 and ref.shape[2] > 4:  # OpenCV filters take at most 4 interleaved channels
        planes = [(np.ascontiguousarray(ref[..., c]), np.ascontiguousarray(img[..., c]))
                  for c in range(ref.shape[2])]
    out_h = ref.shape[0] - 2 * pad
    out_w = ref.shape[1] - 2 * pad
    tasks = [(a, b, r0, min(r0 + _STRIP_ROWS, out_h))
             for a, b in planes for r0 in range(0, out_h, _STRIP_ROWS)]
    strip = _strip_sum_exact if exact else _strip_sum_float

    def run(chunk: Sequence[tuple[np.ndarray, np.ndarray, int, int]]) -> float:
        return sum(strip(a, b, r0, r1, win, c1, c2) for a, b, r0, r1 in chunk)

    workers = max(1, min(workers, ref.size // _MIN_PIXELS_PER_WORKER, len(tasks)))
    total = _map_sum(run, tasks, workers)
    return total / (out_h * out_w * (1 if ref.ndim == 2 else ref.shape[2]))


def _map_sum(run: Callable[[Sequence], float], tasks: list, workers: int) -> float:
    # Threads started per call (~0.15 ms): a pool kept between calls was slower whenever the
    # caller did other work between two calls (mono 1080p 19.5 vs 13.8 ms, interleaved with
    # scikit-image's SSIM), its idle threads waking up on a busy core.
    if workers == 1:
        return run(tasks)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix='ssim') as pool:
        return sum(pool.map(run, [tasks[i::workers] for i in range(workers)]))


def _channel_sum(arr: np.ndarray) -> float:
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    return float(sum(cv2.sumElems(arr)[:channels]))


def _box_sums(win: int, pad: int, depth: int, *arrays: np.ndarray) -> list[np.ndarray]:
    # Unnormalised window sums, cropped to the rows/columns whose window lies inside the strip.
    return [cv2.boxFilter(a, depth, (win, win), normalize=False,
                          borderType=cv2.BORDER_REFLECT)[pad:-pad, pad:-pad] for a in arrays]


def _strip_sum_exact(x: np.ndarray, y: np.ndarray, r0: int, r1: int, win: int, c1: float,
                     c2: float) -> float:
    """Sum of the SSIM map over output rows [r0, r1) of uint8 images (exact integer terms)."""
    pad = (win - 1) // 2
    n = win * win
    xs, ys = x[r0:r1 + 2 * pad], y[r0:r1 + 2 * pad]
    x16, y16 = xs.astype(np.uint16), ys.astype(np.uint16)  # products <= 255^2 fit uint16
    xy = np.multiply(x16, y16)
    # only s_xx + s_yy is needed: one window sum of x^2 + y^2 (<= 2 * 255^2, int32) instead
    # of two (4 box filters a strip instead of 5: about 7 % of the time)
    squares = cv2.add(np.multiply(x16, x16), np.multiply(y16, y16), dtype=cv2.CV_32S)
    sx, sy, ssq, sxy = _box_sums(win, pad, cv2.CV_32S, xs, ys, squares, xy)
    # int32 arithmetic in OpenCV (about twice NumPy's speed on int32 here: 1080p mono SSIM
    # 56 vs 70 ms, benchmarks/bench_quality.py). OpenCV saturates instead of wrapping, but no
    # term can reach 2^31 (see above), so the results are the exact integers.
    scalar = (n,) * 4
    pxy = cv2.multiply(sx, sy)
    pxx = cv2.multiply(sx, sx)
    pyy = cv2.multiply(sy, sy)
    cov = cv2.subtract(cv2.multiply(sxy, scalar), pxy)  # n s_xy - s_x s_y
    var = cv2.multiply(ssq, scalar)
    cv2.add(pxx, pyy, dst=pxx)  # s_x^2 + s_y^2
    cv2.subtract(var, pxx, dst=var)  # (n s_xx - s_x^2) + (n s_yy - s_y^2)
    a1 = pxy.astype(np.float32)
    a1 *= 2.0
    a1 += c1
    a2 = cov.astype(np.float32)
    a2 *= 2.0
    a2 += c2
    b1 = pxx.astype(np.float32)
    b1 += c1
    b2 = var.astype(np.float32)
    b2 += c2
    a1 *= a2
    b1 *= b2
    a1 /= b1
    return _channel_sum(a1)


def _strip_sum_float(x: np.ndarray, y: np.ndarray, r0: int, r1: int, win: int, c1: float,
                     c2: float) -> float:
    """Sum of the SSIM map over output rows [r0, r1) of float64 images."""
    pad = (win - 1) // 2
    n = float(win * win)
    xs, ys = x[r0:r1 + 2 * pad], y[r0:r1 + 2 * pad]
    sx, sy, sxx, syy, sxy = _box_sums(win, pad, cv2.CV_64F, xs, ys, xs * xs, ys * ys, xs * ys)
    pxy = sx * sy
    a1 = 2.0 * pxy + c1
    a2 = 2.0 * (n * sxy - pxy) + c2
    b1 = sx * sx + sy * sy
    b2 = n * (sxx + syy) - b1 + c2
    b1 += c1
    a1 *= a2
    b1 *= b2
    a1 /= b1
    return _channel_sum(a1)
