"""How the defaults of the image corrections were chosen: PSNR/SSIM gains on the tuning images.

Usage: ``.venv/bin/python benchmarks/bench_quality_tuning.py [--section all|sharpen|denoise|
exposure|clahe|white_balance]``

Only the *tuning* images (scikit-image's ``camera``, ``coffee`` and ``chelsea``) are used here;
the tests in ``src/edge_vision_core/test/imaging`` check the chosen defaults on other images
(astronaut, rocket, brick, ...), so the defaults are not fitted to what the tests measure.

For each correction and parameter value it degrades every tuning image in a controlled way
(Gaussian blur, additive Gaussian noise, darkening, a colour cast), applies the correction and
prints the mean gain in PSNR (dB) and SSIM over the images and strengths (higher is better; a
negative gain means the correction made things worse).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import cv2
import numpy as np
import skimage.data

from edge_vision_core.imaging import corrections as cor
from edge_vision_core.imaging.metrics import estimate_noise_sigma
from edge_vision_core.imaging.reference import psnr, ssim

TUNING_IMAGES = ('camera', 'coffee', 'chelsea')


def tuning_images() -> list[tuple[str, np.ndarray, str]]:
    out = []
    for name in TUNING_IMAGES:
        img = getattr(skimage.data, name)()
        if img.ndim == 3:
            out.append((name, np.ascontiguousarray(img[:, :, ::-1]), 'bgr8'))
        else:
            out.append((name, img, 'mono8'))
    return out


def gains(clean: np.ndarray, degraded: np.ndarray, fixed: np.ndarray) -> tuple[float, float]:
    return (psnr(clean, fixed) - psnr(clean, degraded), ssim(clean, fixed) - ssim(clean, degraded))


def table(title: str, params: list[object], strengths: list[float],
          degrade: Callable[[np.ndarray, str, float, np.random.Generator], np.ndarray],
          fix: Callable[[np.ndarray, str, object], np.ndarray], colour_only: bool = False
          ) -> None:
    images = [t for t in tuning_images() if not colour_only or t[1].ndim == 3]
    print(f'\n{title}: mean gain over {", ".join(t[0] for t in images)} (dB PSNR / SSIM)')
    print(f'{"param":>28} ' + ' '.join(f'{s:>15}' for s in strengths))
    for p in params:
        cells = []
        for s in strengths:
            dp, ds = [], []
            for _, img, enc in images:
                rng = np.random.default_rng(0)
                bad = degrade(img, enc, s, rng)
                a, b = gains(img, bad, fix(bad, enc, p))
                dp.append(a)
                ds.append(b)
            cells.append(f'{np.mean(dp):+6.2f}/{np.mean(ds):+.3f}')
        print(f'{p!s:>28} ' + ' '.join(f'{c:>15}' for c in cells))


def add_noise(img: np.ndarray, enc: str, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(img + rng.normal(0.0, sigma, img.shape)), 0, 255).astype(np.uint8)


def blur(img: np.ndarray, enc: str, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def darken(img: np.ndarray, enc: str, gamma: float, rng: np.random.Generator) -> np.ndarray:
    return cor.apply_gamma(img, gamma)


def scale(img: np.ndarray, enc: str, factor: float, rng: np.random.Generator) -> np.ndarray:
    return cv2.convertScaleAbs(img, alpha=factor)


def cast(img: np.ndarray, enc: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    if img.ndim == 2:
        return img
    return cor.apply_channel_gains(img, (1.0 - strength, 1.0, 1.0 + strength))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--section', default='all',
                        choices=('all', 'sharpen', 'denoise', 'exposure', 'clahe',
                                 'white_balance'))
    args = parser.parse_args()

    def want(section: str) -> bool:
        return args.section in ('all', section)

    if want('sharpen'):
        table('unsharp mask (sigma, amount) on Gaussian blur sigma',
              [(s, a) for s in (0.8, 1.0, 1.5, 2.0) for a in (0.5, 1.0, 1.5, 2.0)],
              [0.8, 1.2, 1.6, 2.0], blur,
              lambda im, enc, p: cor.unsharp_mask(im, sigma=p[0], amount=p[1]))
        table('3x3 kernel [0,-a,0,-a,1+4a,-a,0,-a,0] (a) on Gaussian blur sigma',
              [0.25, 0.5, 0.75, 1.0], [0.8, 1.2, 1.6, 2.0], blur,
              lambda im, enc, a: cor.sharpen_kernel(im, [0, -a, 0, -a, 1 + 4 * a, -a, 0, -a, 0]))
    if want('denoise'):
        def auto(method: str, **kw: object) -> Callable[[np.ndarray, str, object], np.ndarray]:
            def run(im: np.ndarray, enc: str, p: object) -> np.ndarray:
                sigma = estimate_noise_sigma(im, enc)
                return cor.denoise(im, enc, method=method, noise_sigma=sigma, strength=p, **kw)
            return run
        noise = [2.0, 5.0, 10.0, 20.0, 30.0]
        table(f'nlmeans strength (h = {cor.NLMEANS_H_PER_SIGMA} x strength x estimated sigma), '
              f'search 11', [
            0.6, 0.8, 1.0, 1.2, 1.5], noise, add_noise, auto('nlmeans'))
        table(f'bilateral strength (sigmaColor = {cor.BILATERAL_COLOR_PER_SIGMA} x strength x '
              f'sigma), d=5',
              [0.5, 1.0, 1.5, 2.0], noise, add_noise, auto('bilateral'))
        table('gaussian ksize', [3, 5, 7], noise, add_noise,
              lambda im, enc, k: cor.denoise(im, enc, method='gaussian', ksize=k))
        table('median ksize', [3, 5], noise, add_noise,
              lambda im, enc, k: cor.denoise(im, enc, method='median', ksize=k))
    if want('exposure'):
        def gamma_fix(im: np.ndarray, enc: str, target: object) -> np.ndarray:
            return cor.apply_gamma(im, cor.exposure_gamma(im, enc, target=target))
        table('auto gamma target on darkening by gamma', [0.35, 0.4, 0.45, 0.5],
              [1.5, 2.0, 3.0], darken, gamma_fix)
        table('auto gamma target on darkening by scale', [0.35, 0.4, 0.45, 0.5],
              [0.6, 0.4, 0.25], scale, gamma_fix)
    if want('clahe'):
        table('CLAHE clip limit (8x8 tiles) on darkening by scale', [1.0, 2.0, 3.0, 4.0],
              [0.6, 0.4, 0.25], scale,
              lambda im, enc, c: cor.clahe_luma(im, enc, clip_limit=c))
    if want('white_balance'):
        methods = {'gray_world': cor.gray_world_gains, 'gray_edge': cor.gray_edge_gains}
        table('white balance method on a colour cast (1 - s, 1, 1 + s), colour images only',
              list(methods), [0.1, 0.2, 0.3], cast,
              lambda im, enc, m: cor.apply_channel_gains(im, methods[m](im, enc)),
              colour_only=True)

if __name__ == '__main__':
    main()
