"""Anomaly benchmark generator: real images that ship in scikit-image, synthetic defects, masks.

:func:`make_benchmark` writes an MVTec-AD-like folder per category::

    <root>/<category>/train/good/000.png            normal images (fit on these)
    <root>/<category>/test/good/000.png             other normal images
    <root>/<category>/test/<defect>/000.png         images with one defect each
    <root>/<category>/ground_truth/<defect>/000_mask.png   255 = defect pixel, 0 = normal

Categories (:data:`CATEGORIES`) are real images from the scikit-image wheel (they work offline):

- *texture* categories (``brick``, ``grass``, ``gravel``, ``ihc``, ``moon``): every image is a
  random crop of the texture at a slightly random scale (+-``scale_jitter``), as a camera sees
  different places of the same material;
- *scene* categories (``coffee``, ``astronaut``): the same view with small random shifts,
  brightness changes and sensor noise, as a fixed patrol camera sees one place day after day.

All images get Gaussian sensor noise (``noise_sigma``). Defects (:data:`DEFECT_KINDS`), each
drawn at a random place with a random size, shape and colour:

=============  ============================================================================
``scratch``    a thin bright or dark anti-aliased curve (quadratic Bezier)
``stain``      an irregular blob blended towards a dark/coloured tint, soft edges
``hole``       an irregular dark blob with radial shading and a lit rim
``foreign``    an irregular patch cut from another image (a foreign object)
``discolor``   a large soft region whose colour (or grey level) shifts
``crack``      a dark, thin, branching random-walk line
``smudge``     a soft region blurred (texture wiped out)
=============  ============================================================================

A defect's mask is the set of pixels it changes by at least one grey level where its opacity
is at least 15 % of its maximum (only the faintest anti-aliasing and soft-edge fringes are left
out: at that level at most about a tenth as many pixels outside the mask change by more than 16
grey levels as there are inside it).
A defect that changes the image too little where it lands (e.g. a smudge on a flat area) is
drawn again elsewhere.

Tuning split (:data:`TUNING_CATEGORIES`, :data:`TUNING_DEFECTS`): the method's settings were
chosen on brick/grass/gravel with scratch/stain/hole/foreign only; the other categories and
defect kinds are held out and reported separately by the benchmark.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..config import check_config, param
from ..errors import ConfigError, SourceError

__all__ = [
    'CATEGORIES',
    'DEFECT_KINDS',
    'HELDOUT_CATEGORIES',
    'HELDOUT_DEFECTS',
    'TUNING_CATEGORIES',
    'TUNING_DEFECTS',
    'BenchmarkConfig',
    'add_defect',
    'load_source_image',
    'make_benchmark',
    'normal_views',
]

_LOG = logging.getLogger(__name__)

#: category -> (scikit-image data function, kind: 'texture' or 'scene').
CATEGORIES: dict[str, tuple[str, str]] = {
    'brick': ('brick', 'texture'),
    'grass': ('grass', 'texture'),
    'gravel': ('gravel', 'texture'),
    'ihc': ('immunohistochemistry', 'texture'),
    'moon': ('moon', 'texture'),
    'coffee': ('coffee', 'scene'),
    'astronaut': ('astronaut', 'scene'),
}
TUNING_CATEGORIES = ('brick', 'grass', 'gravel')
HELDOUT_CATEGORIES = ('ihc', 'moon', 'coffee', 'astronaut')
DEFECT_KINDS = ('scratch', 'stain', 'hole', 'foreign', 'discolor', 'crack', 'smudge')
TUNING_DEFECTS = ('scratch', 'stain', 'hole', 'foreign')
HELDOUT_DEFECTS = ('discolor', 'crack', 'smudge')
#: minimum mean absolute change (grey levels) inside a defect's mask for it to count.
_MIN_VISIBLE_CHANGE = 12.0
#: a pixel belongs to the mask where the defect's opacity reaches this fraction of its maximum.
_MASK_OPACITY = 0.15


@dataclass(frozen=True)
class BenchmarkConfig:
    """What :func:`make_benchmark` generates."""

    categories: tuple[str, ...] = field(default=tuple(CATEGORIES), metadata=param(
        'Categories to generate (names of CATEGORIES).', choices=tuple(CATEGORIES)))
    defects: tuple[str, ...] = field(default=DEFECT_KINDS, metadata=param(
        'Defect kinds, one test folder each.', choices=DEFECT_KINDS))
    image_size: int = field(default=256, metadata=param(
        'Width and height of every image.', min=32, max=2048, unit='px'))
    train_images: int = field(default=24, metadata=param(
        'Normal images in train/good per category.', min=1, max=10000))
    test_good_images: int = field(default=12, metadata=param(
        'Normal images in test/good per category.', min=0, max=10000))
    test_images_per_defect: int = field(default=6, metadata=param(
        'Images in each test/<defect> folder.', min=0, max=10000))
    scale_jitter: float = field(default=0.1, metadata=param(
        'Texture crops are scaled by a random factor in [1 - x, 1 + x].', min=0.0, max=0.5))
    shift: float = field(default=0.03, metadata=param(
        'Scene views are shifted by up to this fraction of the image size.', min=0.0,
        max=0.2))
    noise_sigma: float = field(default=2.0, metadata=param(
        'Standard deviation of the Gaussian sensor noise added to every image.', min=0.0,
        max=50.0, unit='grey levels'))
    seed: int = field(default=0, metadata=param('Random seed (same seed, same images).',
                                                min=0))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.categories:
            raise ConfigError('BenchmarkConfig.categories is empty')



def load_source_image(category: str) -> np.ndarray:
    """The full-size source image of a category as bgr8 (H, W, 3) uint8.

    Raises:
        ConfigError: unknown category.
        SourceError: scikit-image missing or its data not readable.
    """
    if category not in CATEGORIES:
        raise ConfigError(f'unknown category {category!r}; expecting one of '
                          f'{list(CATEGORIES)}')
    return skimage_bgr(CATEGORIES[category][0])


def skimage_bgr(name: str) -> np.ndarray:
    """A scikit-image sample image (``skimage.data.<name>()``) as bgr8 (H, W, 3) uint8.

    Raises:
        SourceError: scikit-image missing or that image not readable here.
    """
    try:
        import skimage.data
    except ImportError as exc:
        raise SourceError('the anomaly benchmark images come from scikit-image: '
                          'pip install scikit-image') from exc
    try:
        image = np.asarray(getattr(skimage.data, name)())
    except Exception as exc:  # skimage raises its own errors for missing data
        raise SourceError(f'scikit-image cannot load its {name!r} image here: {exc}') from exc
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[..., 2::-1])


def _add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return image
    noise = rng.normal(0.0, sigma, image.shape[:2])[..., None]
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def normal_views(source: np.ndarray, kind: str, count: int, size: int,
                 rng: np.random.Generator, *, scale_jitter: float = 0.1,
                 shift: float = 0.03, noise_sigma: float = 2.0) -> list[np.ndarray]:
    """Normal images of one category.

    Args:
        source: bgr8 source image (a texture or a scene).
        kind: ``texture`` (random crops at a jittered scale) or ``scene`` (the whole view,
            shifted by up to ``shift`` of its size, brightness +-5 %).
        count: number of images.
        size: output width = height in pixels.
        rng: random generator (the caller's seed decides the images).

    Returns:
        ``count`` bgr8 (size, size, 3) uint8 images.
    """
    h, w = source.shape[:2]
    out = []
    for _ in range(count):
        if kind == 'texture':
            side = int(round(size * (1.0 + rng.uniform(-scale_jitter, scale_jitter))))
            side = max(1, min(side, h, w))
            x0 = int(rng.integers(0, w - side + 1))
            y0 = int(rng.integers(0, h - side + 1))
            crop = source[y0:y0 + side, x0:x0 + side]
            view = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA
                              if side > size else cv2.INTER_LINEAR)
        elif kind == 'scene':
            side = min(h, w)
            base = source[(h - side) // 2:(h - side) // 2 + side,
                          (w - side) // 2:(w - side) // 2 + side]
            dx, dy = rng.uniform(-shift, shift, 2) * side
            m = np.float32([[size / side, 0, dx * size / side],
                            [0, size / side, dy * size / side]])
            view = cv2.warpAffine(base, m, (size, size), flags=cv2.INTER_AREA
                                  if side > size else cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT101)
            gain = rng.uniform(0.95, 1.05)
            view = np.clip(view.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        else:
            raise ConfigError(f"kind must be 'texture' or 'scene', got {kind!r}")
        out.append(_add_noise(view, noise_sigma, rng))
    return out


# -- shapes -----------------------------------------------------------------------------------

def _blob(shape: tuple[int, int], center: tuple[float, float], radius: float,
          rng: np.random.Generator, irregularity: float = 0.3) -> np.ndarray:
    """(h, w) float32 0/1 irregular blob: a polygon with a random smooth radius profile."""
    angles = np.linspace(0.0, 2 * math.pi, 64, endpoint=False)
    profile = np.ones_like(angles)
    for k in range(2, 6):
        profile += irregularity / k * rng.uniform(0.5, 1.0) * np.cos(
            k * angles + rng.uniform(0, 2 * math.pi))
    aspect = rng.uniform(0.6, 1.0)
    tilt = rng.uniform(0, math.pi)
    x = radius * profile * np.cos(angles)
    y = radius * profile * np.sin(angles) * aspect
    xr = x * math.cos(tilt) - y * math.sin(tilt) + center[0]
    yr = x * math.sin(tilt) + y * math.cos(tilt) + center[1]
    canvas = np.zeros(shape, np.uint8)
    pts = np.round(np.stack([xr, yr], axis=1) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _soft(alpha: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(alpha, (0, 0), sigma) if sigma > 0 else alpha


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 64) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _lines_alpha(shape: tuple[int, int], polylines: Sequence[np.ndarray],
                 thickness: int) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    pts = [np.round(p * 16).astype(np.int32) for p in polylines]
    cv2.polylines(canvas, pts, False, 255, thickness=thickness, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def _blend(image: np.ndarray, overlay: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    out = image.astype(np.float32) * (1 - a) + overlay.astype(np.float32) * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _is_gray(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 1], image[..., 2]))


def _tint(rng: np.random.Generator, gray: bool, dark: bool) -> np.ndarray:
    """A BGR colour: dark or bright grey for grey images, a saturated colour otherwise."""
    if gray:
        level = rng.uniform(10, 60) if dark else rng.uniform(200, 250)
        return np.full(3, level, np.float32)
    hue = rng.uniform(0, 180)
    hsv = np.uint8([[[hue, rng.uniform(150, 255), rng.uniform(40, 110) if dark
                      else rng.uniform(170, 250)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


# -- defects ----------------------------------------------------------------------------------

def _scratch(image, rng, size, _foreign):
    h, w = image.shape[:2]
    length = rng.uniform(0.2, 0.45) * size
    start = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
    angle = rng.uniform(0, 2 * math.pi)
    end = start + length * np.array([math.cos(angle), math.sin(angle)])
    bend = (start + end) / 2 + rng.normal(0, 0.15 * length, 2)
    thickness = max(1, int(round(rng.uniform(1.0, 2.5) * size / 256)))
    alpha = _lines_alpha((h, w), [_bezier(start, bend, end)], thickness)
    alpha *= rng.uniform(0.7, 1.0)
    colour = _tint(rng, _is_gray(image), dark=bool(rng.random() < 0.5))
    return _blend(image, np.broadcast_to(colour, image.shape), alpha), alpha


def _stain(image, rng, size, _foreign):
    h, w = image.shape[:2]
    radius = rng.uniform(0.04, 0.09) * size
    center = rng.uniform([radius, radius], [w - radius, h - radius])
    shape = _soft(_blob((h, w), center, radius, rng, 0.5), radius * 0.15)
    grain = _soft(rng.uniform(0.6, 1.0, (h, w)).astype(np.float32), 1.5)
    alpha = shape * grain * rng.uniform(0.5, 0.8)
    colour = _tint(rng, _is_gray(image), dark=bool(rng.random() < 0.7))
    return _blend(image, np.broadcast_to(colour, image.shape), alpha), alpha


def _hole(image, rng, size, _foreign):
    h, w = image.shape[:2]
    radius = rng.uniform(0.03, 0.06) * size
    center = rng.uniform([radius * 1.5] * 2, [w - radius * 1.5, h - radius * 1.5])
    shape = _blob((h, w), center, radius, rng, 0.35)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.sqrt((xx - center[0]) ** 2 + (yy - center[1]) ** 2) / max(radius, 1.0)
    inside = np.clip(8 + 30 * dist, 0, 60)
    overlay = np.repeat(inside[..., None], 3, axis=2)
    # A lit rim on the side facing a random light direction.
    theta = rng.uniform(0, 2 * math.pi)
    rim = cv2.dilate(shape, np.ones((3, 3), np.uint8)) - cv2.erode(shape, np.ones((3, 3),
                                                                                   np.uint8))
    lit = np.clip(np.cos(np.arctan2(yy - center[1], xx - center[0]) - theta), 0, 1) * rim
    out = _blend(image, overlay, shape)
    out = _blend(out, np.full_like(image, 235), lit * 0.8)
    return out, np.maximum(shape, lit * 0.8)


def _foreign(image, rng, size, foreign):
    h, w = image.shape[:2]
    radius = rng.uniform(0.05, 0.1) * size
    center = rng.uniform([radius] * 2, [w - radius, h - radius])
    fh, fw = foreign.shape[:2]
    side = int(min(fh, fw, max(8, 2.5 * radius * rng.uniform(1.0, 2.0))))
    x0 = int(rng.integers(0, fw - side + 1))
    y0 = int(rng.integers(0, fh - side + 1))
    patch = foreign[y0:y0 + side, x0:x0 + side]
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(0, 360), 1.0)
    patch = cv2.warpAffine(patch, rot, (side, side), borderMode=cv2.BORDER_REFLECT101)
    patch = cv2.resize(patch, (int(2.5 * radius) + 1,) * 2, interpolation=cv2.INTER_AREA)
    overlay = image.copy()
    ph = patch.shape[0]
    px, py = int(center[0] - ph / 2), int(center[1] - ph / 2)
    xa, ya = max(px, 0), max(py, 0)
    xb, yb = min(px + ph, w), min(py + ph, h)
    overlay[ya:yb, xa:xb] = patch[ya - py:yb - py, xa - px:xb - px]
    alpha = _soft(_blob((h, w), center, radius, rng, 0.5), 0.7)
    return _blend(image, overlay, alpha), alpha


def _discolor(image, rng, size, _foreign):
    h, w = image.shape[:2]
    radius = rng.uniform(0.08, 0.14) * size
    center = rng.uniform([radius] * 2, [w - radius, h - radius])
    alpha = _soft(_blob((h, w), center, radius, rng, 0.4), radius * 0.2)
    if _is_gray(image):
        gain = rng.choice([rng.uniform(0.55, 0.7), rng.uniform(1.3, 1.5)])
        overlay = np.clip(image.astype(np.float32) * gain, 0, 255)
        colour = _tint(rng, False, dark=bool(gain < 1))
        overlay = 0.6 * overlay + 0.4 * colour * overlay.mean(axis=2, keepdims=True) / max(
            float(colour.mean()), 1.0)
    else:
        hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(25, 60) * rng.choice([-1, 1])) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1.2, 1.6) + 40, 0, 255)
        overlay = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    return _blend(image, overlay, alpha * rng.uniform(0.75, 1.0)), alpha


def _crack(image, rng, size, _foreign):
    h, w = image.shape[:2]
    step = max(2.0, size / 64)
    lines = []
    start = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h])
    heading = rng.uniform(0, 2 * math.pi)
    for branch in range(int(rng.integers(2, 4))):
        pts = [start if branch == 0 else lines[0][int(rng.integers(len(lines[0]) // 3,
                                                                    len(lines[0])))]]
        direction = heading if branch == 0 else heading + rng.choice([-1, 1]) * rng.uniform(
            0.5, 1.2)
        steps = int(rng.uniform(0.15, 0.3) * size / step) if branch == 0 else int(
            rng.uniform(0.05, 0.12) * size / step)
        for _ in range(max(steps, 3)):
            direction += rng.normal(0, 0.35)
            pts.append(pts[-1] + step * np.array([math.cos(direction), math.sin(direction)]))
        lines.append(np.array(pts))
    thickness = max(1, int(round(rng.uniform(1.0, 2.0) * size / 256)))
    alpha = _lines_alpha((h, w), lines, thickness) * rng.uniform(0.8, 1.0)
    colour = _tint(rng, True, dark=True)
    return _blend(image, np.broadcast_to(colour, image.shape), alpha), alpha


def _smudge(image, rng, size, _foreign):
    h, w = image.shape[:2]
    radius = rng.uniform(0.07, 0.12) * size
    center = rng.uniform([radius] * 2, [w - radius, h - radius])
    alpha = _soft(_blob((h, w), center, radius, rng, 0.4), radius * 0.15)
    blurred = cv2.GaussianBlur(image, (0, 0), rng.uniform(3.0, 6.0) * size / 256)
    return _blend(image, blurred, alpha), alpha


_DEFECTS: dict[str, Callable] = {
    'scratch': _scratch, 'stain': _stain, 'hole': _hole, 'foreign': _foreign,
    'discolor': _discolor, 'crack': _crack, 'smudge': _smudge,
}


def add_defect(image: np.ndarray, kind: str, rng: np.random.Generator,
               foreign: np.ndarray | None = None, tries: int = 20
               ) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic defect on a copy of ``image``.

    Args:
        image: bgr8 (H, W, 3) uint8.
        kind: one of :data:`DEFECT_KINDS`.
        rng: random generator.
        foreign: bgr8 image the ``foreign`` defect cuts its patch from (required for it).
        tries: placements tried until the defect visibly changes the image.

    Returns:
        ``(defective, mask)``: the bgr8 image and an (H, W) bool mask of the defect pixels
        (changed by at least one grey level where the defect's opacity is at least 15 % of its
        maximum).

    Raises:
        ConfigError: unknown kind, missing ``foreign`` image, or no visible placement found.
    """
    if kind not in _DEFECTS:
        raise ConfigError(f'unknown defect kind {kind!r}; expecting one of {list(_DEFECTS)}')
    if kind == 'foreign' and foreign is None:
        raise ConfigError('the foreign defect needs a foreign image to cut a patch from')
    size = min(image.shape[:2])
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(tries):
        out, alpha = _DEFECTS[kind](image, rng, size, foreign)
        diff = np.abs(out.astype(np.int16) - image.astype(np.int16)).max(axis=2)
        mask = (alpha >= _MASK_OPACITY * float(alpha.max())) & (diff >= 1) \
            if alpha.max() > 0 else np.zeros(diff.shape, bool)
        if mask.sum() < 4:
            continue
        change = float(diff[mask].mean())
        if change >= _MIN_VISIBLE_CHANGE:
            return out, mask
        if best is None or change > best[0]:
            best = (change, out, mask)
    if best is None:
        raise ConfigError(f'could not place a visible {kind} defect on this image')
    _LOG.debug('%s defect changes the image by only %.1f grey levels', kind, best[0])
    return best[1], best[2]


def make_benchmark(root: str | Path, config: BenchmarkConfig | None = None) -> dict[str, dict]:
    """Write the MVTec-like benchmark (see the module docstring) under ``root``.

    Args:
        root: output folder (created; existing files of the same names are overwritten).
        config: what to generate (defaults: every category and defect kind).

    Returns:
        ``{category: {'kind', 'train', 'test_good', '<defect>': count, ...}}``.

    Raises:
        SourceError: scikit-image data unavailable or a file that cannot be written.
    """
    config = config or BenchmarkConfig()
    root = Path(root)
    summary: dict[str, dict] = {}
    sources = {name: load_source_image(name) for name in CATEGORIES}
    size = config.image_size
    for ci, category in enumerate(config.categories):
        kind = CATEGORIES[category][1]
        rng = np.random.default_rng([config.seed, ci])
        source = sources[category]

        def views(count: int, _src=source, _kind=kind, _rng=rng) -> list[np.ndarray]:
            return normal_views(_src, _kind, count, size, _rng,
                                scale_jitter=config.scale_jitter, shift=config.shift,
                                noise_sigma=config.noise_sigma)

        others = [sources[n] for n in CATEGORIES if n != category]
        summary[category] = {'kind': kind, **write_category(
            root / category, views, config, add_defect, rng, others)}
    return summary


def write_category(base: Path, views: Callable[[int], list[np.ndarray]], config: object,
                   add: Callable, rng: np.random.Generator, foreign: Sequence[np.ndarray]
                   ) -> dict[str, int]:
    """Write one category in the MVTec-AD layout (shared by the benchmark generators).

    Args:
        base: the category folder.
        views: ``views(n)`` -> n normal images.
        config: has ``train_images``, ``test_good_images``, ``test_images_per_defect`` and
            ``defects``.
        add: ``add(image, defect, rng, foreign_image)`` -> ``(image, mask)``.
        rng: the category's generator (normal views first, then the defects, in this order).
        foreign: images a foreign-object defect may take its patch from.

    Returns:
        ``{'train': n, 'test_good': n, '<defect>': n, ...}``.
    """
    _write_all(base / 'train' / 'good', views(config.train_images))
    _write_all(base / 'test' / 'good', views(config.test_good_images))
    info = {'train': config.train_images, 'test_good': config.test_good_images}
    for defect in config.defects:
        images, masks = [], []
        for image in views(config.test_images_per_defect):
            other = foreign[int(rng.integers(len(foreign)))]
            out, mask = add(image, defect, rng, other)
            images.append(out)
            masks.append(mask.astype(np.uint8) * 255)
        _write_all(base / 'test' / defect, images)
        _write_all(base / 'ground_truth' / defect, masks, suffix='_mask')
        info[defect] = len(images)
    return info


def _write_all(folder: Path, images: Sequence[np.ndarray], suffix: str = '') -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        path = folder / f'{i:03d}{suffix}.png'
        if not cv2.imwrite(str(path), image):
            raise SourceError(f'cannot write {path}')
