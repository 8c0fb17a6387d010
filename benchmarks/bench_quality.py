"""Speed of the image-quality code: SSIM against scikit-image, and every metric and correction.

Usage: ``.venv/bin/python benchmarks/bench_quality.py [--repeat 15] [--skip-corrections]``

1. SSIM (and PSNR) at 1920x1080 on the same frames, ours and scikit-image's, in one run: real
   images (scikit-image's astronaut and coffee, resized) against a blurred + noisy version,
   colour (bgr8, ``channel_axis=-1``) and grey (mono8). Calls alternate between the two
   implementations so a busy machine slows both alike; times are medians. Also the largest
   absolute difference of the values.
2. The cost of each no-reference metric and each correction per frame at VGA (640x480) and
   1080p, bgr8: median milliseconds over ``--repeat`` calls, on the calling thread's view of
   this machine (OpenCV may use its own threads; ``cv2.getNumThreads()`` is printed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import skimage.data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from edge_vision_core import CameraModel
from edge_vision_core.imaging import PreprocessConfig, Preprocessor, Undistorter, psnr, ssim
from edge_vision_core.imaging import corrections as cor
from edge_vision_core.imaging.metrics import estimate_noise_sigma, measure_quality

SIZES = {'VGA': (640, 480), '1080p': (1920, 1080)}


def median_ms(repeat: int, fn: Callable[[], object]) -> float:
    fn()  # warm-up: first-call allocations, OpenCV's lazy initialisation
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def frame(name: str, size: tuple[int, int]) -> np.ndarray:
    img = getattr(skimage.data, name)()[:, :, ::-1]  # RGB -> BGR
    return cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_CUBIC)


def degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5).astype(np.float32)
    return np.clip(np.rint(blurred + rng.normal(0, 8, img.shape)), 0, 255).astype(np.uint8)


def bench_ssim(repeat: int) -> None:
    rng = np.random.default_rng(0)
    print('1) SSIM/PSNR at 1920x1080, ours vs skimage.metrics on the same frames (median ms;\n'
          '   "1 thread": ours with workers=1, i.e. without using a second core)')
    print('   ratio: skimage / ours per interleaved repetition, median [min-max] (the load on\n'
          '   the machine drifts less within one repetition than between medians)')
    print(f'{"frame":>16} {"ours":>7} {"1 thread":>8} {"skimage":>8} {"ratio":>17} '
          f'{"1-thr ratio":>11} {"max |diff|":>10} {"PSNR ours":>9} {"skimage":>8} '
          f'{"max |diff|":>10}')
    for name in ('astronaut', 'coffee'):
        ref = frame(name, SIZES['1080p'])
        img = degrade(ref, rng)
        for layout in ('bgr8', 'mono8'):
            a, b = (ref, img) if layout == 'bgr8' else (ref[:, :, 1].copy(), img[:, :, 1].copy())
            axis = -1 if layout == 'bgr8' else None
            times: dict[str, list[float]] = {k: [] for k in ('ours', 'one', 'sk', 'po', 'ps')}
            diff = pdiff = 0.0
            for _ in range(max(3, repeat // 3)):  # interleaved: load hits all alike
                t0 = time.perf_counter()
                v_ours = ssim(a, b)
                t1 = time.perf_counter()
                ssim(a, b, workers=1)
                t2 = time.perf_counter()
                v_theirs = structural_similarity(a, b, channel_axis=axis)
                t3 = time.perf_counter()
                p_ours = psnr(a, b)
                t4 = time.perf_counter()
                p_theirs = peak_signal_noise_ratio(a, b)
                t5 = time.perf_counter()
                for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4),
                                   strict=True):
                    times[key].append(dt * 1e3)
                diff = max(diff, abs(v_ours - v_theirs))
                pdiff = max(pdiff, abs(p_ours - p_theirs))
            m = {k: statistics.median(v) for k, v in times.items()}
            ratios = [s / o for s, o in zip(times['sk'], times['ours'], strict=True)]
            ratios_one = [s / o for s, o in zip(times['sk'], times['one'], strict=True)]
            spread = f'{statistics.median(ratios):5.1f}x [{min(ratios):.1f}-{max(ratios):.1f}]'
            print(f'{name + " " + layout:>16} {m["ours"]:7.1f} {m["one"]:8.1f} {m["sk"]:8.1f} '
                  f'{spread:>17} {statistics.median(ratios_one):10.1f}x {diff:10.1e} '
                  f'{m["po"]:9.2f} {m["ps"]:8.2f} {pdiff:10.1e}')


def cases_for(size: tuple[int, int], rng: np.random.Generator
              ) -> dict[str, Callable[[], object]]:
    """The operations to time on one frame size (bgr8 astronaut, degraded as needed)."""
    w, h = size
    clean = frame('astronaut', size)
    noisy = degrade(clean, rng)
    dark = cv2.convertScaleAbs(clean, alpha=0.35)
    gray = cv2.cvtColor(noisy, cv2.COLOR_BGR2GRAY)
    camera = CameraModel.from_intrinsics(w, h, 0.8 * w, 0.8 * w, w / 2, h / 2,
                                         [-0.25, 0.07, 0.001, 0.0, 0.0])
    und = Undistorter()
    und.rectify(noisy, camera)
    sigma = estimate_noise_sigma(noisy, 'bgr8')
    gamma = cor.exposure_gamma(dark, 'bgr8')
    clahe = cv2.createCLAHE(2.0, (8, 8))
    kernel = PreprocessConfig().sharpen_kernel
    default = Preprocessor()
    default.process(dark, 'bgr8', camera)  # builds its undistortion maps
    full = Preprocessor(PreprocessConfig(enable_denoise=True, enable_white_balance=True,
                                         enable_sharpen=True, exposure_tolerance=0.0))
    full.process(noisy, 'bgr8', camera)
    return {
        'metrics: measure_quality (all)': lambda: measure_quality(noisy, 'bgr8'),
        'metrics: measure_quality, decimation 2':
            lambda: measure_quality(noisy, 'bgr8', decimation=2),
        'metrics: measure_quality, mono8': lambda: measure_quality(gray, 'mono8'),
        'metrics: noise sigma only (immerkaer_mad)': lambda: estimate_noise_sigma(noisy, 'bgr8'),
        'metrics: noise sigma only (immerkaer)':
            lambda: estimate_noise_sigma(noisy, 'bgr8', method='immerkaer'),
        'full-reference: ssim': lambda: ssim(clean, noisy),
        'full-reference: psnr': lambda: psnr(clean, noisy),
        'exposure: solve gamma': lambda: cor.exposure_gamma(dark, 'bgr8'),
        'exposure: apply gamma (LUT)': lambda: cor.apply_gamma(dark, gamma),
        'clahe (luma, YCrCb)': lambda: cor.clahe_luma(dark, 'bgr8', clahe=clahe),
        'white balance: gray_edge gains + apply': lambda: cor.apply_channel_gains(
            noisy, cor.gray_edge_gains(noisy, 'bgr8')),
        'white balance: gray_world gains + apply': lambda: cor.apply_channel_gains(
            noisy, cor.gray_world_gains(noisy, 'bgr8')),
        'sharpen: unsharp mask': lambda: cor.unsharp_mask(noisy),
        'sharpen: 3x3 kernel': lambda: cor.sharpen_kernel(noisy, kernel),
        'denoise: gaussian 5x5': lambda: cor.denoise(noisy, 'bgr8', method='gaussian'),
        'denoise: median 5x5': lambda: cor.denoise(noisy, 'bgr8', method='median'),
        'denoise: bilateral d=5':
            lambda: cor.denoise(noisy, 'bgr8', method='bilateral', noise_sigma=sigma),
        'denoise: nlmeans 7/11 (colour)':
            lambda: cor.denoise(noisy, 'bgr8', method='nlmeans', noise_sigma=sigma),
        'denoise: nlmeans 7/11 (mono8)':
            lambda: cor.denoise(gray, 'mono8', method='nlmeans', noise_sigma=sigma),
        'undistort: remap (cached maps)': lambda: und.rectify(noisy, camera),
        'undistort: build maps (once per calibration)':
            lambda: Undistorter().rectified_camera(camera),
        'resize to half (area)': lambda: cor.resize(noisy, w // 2, h // 2),
        'Preprocessor: defaults (metrics, gate, exposure, undistort)':
            lambda: default.process(dark, 'bgr8', camera),
        'Preprocessor: + bilateral, gray-edge WB, unsharp':
            lambda: full.process(noisy, 'bgr8', camera),
    }


def bench_costs(repeat: int) -> None:
    rng = np.random.default_rng(1)
    print('\n2) cost per bgr8 frame (median ms)')
    rows: dict[str, dict[str, float]] = {}
    for label, size in SIZES.items():
        for key, fn in cases_for(size, rng).items():
            slow = 'nlmeans' in key or 'build maps' in key
            runs = max(3, repeat // 5) if slow else repeat
            rows.setdefault(key, {})[label] = median_ms(runs, fn)
    print(f'{"operation":>60} ' + ' '.join(f'{s:>9}' for s in SIZES))
    for key, cells in rows.items():
        print(f'{key:>60} ' + ' '.join(f'{cells[s]:9.2f}' for s in SIZES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeat', type=int, default=15)
    parser.add_argument('--skip-corrections', action='store_true',
                        help='only the SSIM comparison')
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f'CPU cores: {os.cpu_count()}, cv2.getNumThreads(): {cv2.getNumThreads()}, '
          f'OpenCV {cv2.__version__}, numpy {np.__version__}, load average {load:.2f}\n')
    bench_ssim(args.repeat)
    if not args.skip_corrections:
        bench_costs(args.repeat)


if __name__ == '__main__':
    main()
