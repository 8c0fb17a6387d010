"""A harder anomaly benchmark: small, faint defects on real images with ordinary nuisance.

:func:`make_small_defect_benchmark` writes the MVTec-AD layout of
:mod:`.synthetic_defects` (``<category>/train/good``, ``test/good``, ``test/<defect>``,
``ground_truth/<defect>/<name>_mask.png``) at 256 x 256 pixels by default.

Categories (:data:`SMALL_CATEGORIES`) are images that ship in the scikit-image wheel: textures
(``brick``, ``grass``, ``gravel``, ``moon``) as random crops, scenes (``camera``, ``coffee``,
``text``, ``astronaut``, ``chelsea``, ``page``) as one view. Every image, normal or not, gets
the **nuisance** a real camera adds (:func:`nuisance_view`): a shift of a few pixels (scenes) or
another place of the material (textures), a rotation of up to ``rotation`` degrees and a scale
change of up to ``scale``, a brightness gain and offset, a linear illumination gradient, sensor
noise and, for some images, a slight defocus blur.

Defects (:data:`SMALL_DEFECTS`) are 10-25 pixels across at 256 pixels and faint:

============  ===============================================================================
``stain``     an irregular soft blob blended towards a dark or coloured tint with opacity
              0.2-0.35
``scratch``   a 1-2 pixel wide curve 12-25 pixels long, brighter by 35-60 grey levels
``dent``      a local warp (the surface pushed in or out by 2-4 pixels over 10-25 pixels)
              with a faint shading (one flank up to 10-20 grey levels lighter, the other as
              much darker), as a dent under a side light
``foreign``   a small patch (10-20 pixels) of another image with feathered edges
============  ===============================================================================

A defect's mask is where its opacity (warp: displacement) reaches 25 % of its maximum and the
image changed by at least one grey level. Split: the method was tuned on
:data:`TUNING_SMALL_CATEGORIES` with seed 0; :data:`HELDOUT_SMALL_CATEGORIES` with another seed
were never looked at while tuning (see ``benchmarks/bench_anomaly.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..config import check_config, param
from ..errors import ConfigError
from .synthetic_defects import _blob, _is_gray, skimage_bgr, write_category

__all__ = [
    'HELDOUT_SMALL_CATEGORIES',
    'SMALL_CATEGORIES',
    'SMALL_DEFECTS',
    'TUNING_SMALL_CATEGORIES',
    'SmallDefectConfig',
    'add_small_defect',
    'make_small_defect_benchmark',
    'nuisance_view',
    'small_source_image',
]

#: category -> (scikit-image data function, kind: 'texture' or 'scene').
SMALL_CATEGORIES: dict[str, tuple[str, str]] = {
    'brick': ('brick', 'texture'),
    'grass': ('grass', 'texture'),
    'gravel': ('gravel', 'texture'),
    'moon': ('moon', 'texture'),
    'camera': ('camera', 'scene'),
    'coffee': ('coffee', 'scene'),
    'text': ('text', 'scene'),
    'astronaut': ('astronaut', 'scene'),
    'chelsea': ('chelsea', 'scene'),
    'page': ('page', 'scene'),
}
TUNING_SMALL_CATEGORIES = ('brick', 'grass', 'camera', 'coffee')
HELDOUT_SMALL_CATEGORIES = ('gravel', 'text', 'astronaut', 'moon')
SMALL_DEFECTS = ('stain', 'scratch', 'dent', 'foreign')
_MASK_LEVEL = 0.25


@dataclass(frozen=True)
class SmallDefectConfig:
    """What :func:`make_small_defect_benchmark` generates."""

    categories: tuple[str, ...] = field(default=TUNING_SMALL_CATEGORIES, metadata=param(
        'Categories to generate (names of SMALL_CATEGORIES).',
        choices=tuple(SMALL_CATEGORIES)))
    defects: tuple[str, ...] = field(default=SMALL_DEFECTS, metadata=param(
        'Defect kinds, one test folder each.', choices=SMALL_DEFECTS))
    image_size: int = field(default=256, metadata=param(
        'Width and height of every image (defect sizes scale with it).', min=64, max=2048,
        unit='px'))
    train_images: int = field(default=80, metadata=param(
        'Normal images in train/good per category.', min=1, max=10000))
    test_good_images: int = field(default=20, metadata=param(
        'Normal images in test/good per category.', min=0, max=10000))
    test_images_per_defect: int = field(default=10, metadata=param(
        'Images in each test/<defect> folder.', min=0, max=10000))
    shift: float = field(default=4.0, metadata=param(
        'Scenes: random shift up to this many pixels (at 256 px).', min=0.0, max=64.0,
        unit='px'))
    rotation: float = field(default=3.0, metadata=param(
        'Random rotation up to this many degrees.', min=0.0, max=45.0, unit='deg'))
    scale: float = field(default=0.04, metadata=param(
        'Random scale change up to this fraction.', min=0.0, max=0.5))
    seed: int = field(default=0, metadata=param('Random seed (same seed, same images).',
                                                min=0))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.categories:
            raise ConfigError('SmallDefectConfig.categories is empty')


def small_source_image(category: str) -> np.ndarray:
    """The source image of a category, bgr8 (H, W, 3) uint8.

    Raises:
        ConfigError: unknown category. SourceError: scikit-image or its data missing.
    """
    if category not in SMALL_CATEGORIES:
        raise ConfigError(f'unknown category {category!r}; expecting one of '
                          f'{list(SMALL_CATEGORIES)}')
    return skimage_bgr(SMALL_CATEGORIES[category][0])


def nuisance_view(source: np.ndarray, kind: str, size: int, rng: np.random.Generator, *,
                  shift: float = 4.0, rotation: float = 3.0, scale: float = 0.04
                  ) -> np.ndarray:
    """One normal image: geometry (place/shift, rotation, scale), then photometric nuisance.

    Args:
        source: bgr8 texture or scene.
        kind: ``texture`` (a random place of the material) or ``scene`` (the centred square
            view, shifted by up to ``shift`` pixels at 256 px).
        size: output width = height.
        rng: random generator.

    Returns:
        bgr8 (size, size, 3) uint8.
    """
    h, w = source.shape[:2]
    side = min(h, w)
    angle = rng.uniform(-rotation, rotation)
    zoom = size / side * (1.0 + rng.uniform(-scale, scale))
    if kind == 'texture':
        zoom = 1.0 + rng.uniform(-scale, scale)
        r = size * 0.75 / zoom  # the rotated view stays inside the source
        cx = rng.uniform(min(r, w / 2), max(w - r, w / 2))
        cy = rng.uniform(min(r, h / 2), max(h - r, h / 2))
    elif kind == 'scene':
        px = shift * side / size
        cx = w / 2 + rng.uniform(-px, px)
        cy = h / 2 + rng.uniform(-px, px)
    else:
        raise ConfigError(f"kind must be 'texture' or 'scene', got {kind!r}")
    m = cv2.getRotationMatrix2D((cx, cy), angle, zoom)
    m[:, 2] += (size / 2 - cx, size / 2 - cy)
    view = cv2.warpAffine(source, m, (size, size), flags=cv2.INTER_AREA if zoom < 1
                          else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    out = view.astype(np.float32) * rng.uniform(0.9, 1.1) + rng.uniform(-8, 8)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    out += (rng.uniform(0, 12) * (xx * math.cos(theta) + yy * math.sin(theta)))[..., None]
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 0.8) * size / 256)
    out += rng.normal(0.0, rng.uniform(1.0, 3.0), out.shape[:2])[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# -- defects ----------------------------------------------------------------------------------

def _centre(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    pad = radius + 0.08 * size
    return rng.uniform([pad, pad], [size - pad, size - pad])


def _stain(image, rng, size, _foreign):
    radius = rng.uniform(5, 12.5) * size / 256
    shape = _blob(image.shape[:2], _centre(rng, size, radius), radius, rng, 0.4)
    alpha = cv2.GaussianBlur(shape, (0, 0), max(radius * 0.25, 0.8)) * rng.uniform(0.2, 0.35)
    if _is_gray(image):
        tint = np.full(3, rng.choice([rng.uniform(0, 40), rng.uniform(215, 255)]), np.float32)
    else:
        hsv = np.uint8([[[rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(30, 120)]]])
        tint = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
    out = image.astype(np.float32) * (1 - alpha[..., None]) + tint * alpha[..., None]
    return out, alpha


def _scratch(image, rng, size, _foreign):
    length = rng.uniform(12, 25) * size / 256
    start = _centre(rng, size, length)
    angle = rng.uniform(0, 2 * math.pi)
    end = start + length * np.array([math.cos(angle), math.sin(angle)])
    bend = (start + end) / 2 + rng.normal(0, 0.12 * length, 2)
    t = np.linspace(0, 1, 48)[:, None]
    curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t ** 2 * end
    canvas = np.zeros(image.shape[:2], np.uint8)
    thickness = max(1, int(round(rng.uniform(1.0, 2.0) * size / 256)))
    cv2.polylines(canvas, [np.round(curve * 16).astype(np.int32)], False, 255, thickness,
                  cv2.LINE_AA, shift=4)
    alpha = canvas.astype(np.float32) / 255.0
    delta = rng.uniform(35, 60)
    return image.astype(np.float32) + (delta * alpha)[..., None], alpha


def _dent(image, rng, size, _foreign):
    radius = rng.uniform(5, 12.5) * size / 256
    c = _centre(rng, size, radius)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - c[0], yy - c[1]
    r = np.sqrt(dx * dx + dy * dy) / radius
    bump = np.where(r < 1, np.cos(np.minimum(r, 1) * math.pi / 2) ** 2, 0).astype(np.float32)
    amplitude = rng.uniform(2.0, 4.0) * size / 256 * rng.choice([-1.0, 1.0])
    # radial displacement: sample from further out (push in) or further in (bulge)
    norm = np.maximum(r * radius, 1e-3)
    map_x = xx + amplitude * bump * dx / norm * np.minimum(r * 2, 1)
    map_y = yy + amplitude * bump * dy / norm * np.minimum(r * 2, 1)
    warped = cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    light = rng.uniform(0, 2 * math.pi)
    shade = bump * (dx * math.cos(light) + dy * math.sin(light)) / radius
    shade /= max(float(np.abs(shade).max()), 1e-6)  # peak 1: the lit and the shaded flank
    out = warped.astype(np.float32) + (rng.uniform(10, 20) * shade)[..., None]
    return out, bump


def _foreign(image, rng, size, foreign):
    side = int(round(rng.uniform(10, 20) * size / 256))
    fh, fw = foreign.shape[:2]
    grab = int(min(fh, fw, side * rng.uniform(1.5, 4.0)))
    x0, y0 = int(rng.integers(0, fw - grab + 1)), int(rng.integers(0, fh - grab + 1))
    patch = cv2.resize(foreign[y0:y0 + grab, x0:x0 + grab], (side, side),
                       interpolation=cv2.INTER_AREA)
    c = _centre(rng, size, side)
    shape = _blob(image.shape[:2], c, side / 2, rng, 0.3)
    alpha = cv2.GaussianBlur(shape, (0, 0), 0.8) * rng.uniform(0.75, 1.0)
    overlay = image.astype(np.float32).copy()
    x, y = int(c[0] - side / 2), int(c[1] - side / 2)
    overlay[y:y + side, x:x + side] = patch
    out = image.astype(np.float32) * (1 - alpha[..., None]) + overlay * alpha[..., None]
    return out, alpha


_SMALL: dict[str, Callable] = {'stain': _stain, 'scratch': _scratch, 'dent': _dent,
                               'foreign': _foreign}


def add_small_defect(image: np.ndarray, kind: str, rng: np.random.Generator,
                     foreign: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One small, faint defect on a copy of ``image``.

    Args:
        image: bgr8 (H, W, 3) uint8, square.
        kind: one of :data:`SMALL_DEFECTS`.
        rng: random generator.
        foreign: bgr8 image the ``foreign`` defect takes its patch from.

    Returns:
        ``(defective bgr8 image, (H, W) bool mask)``; the mask is where the defect's opacity
        (or displacement) reaches 25 % of its maximum and the image changed.

    Raises:
        ConfigError: unknown kind or missing ``foreign`` image.
    """
    if kind not in _SMALL:
        raise ConfigError(f'unknown defect kind {kind!r}; expecting one of {list(_SMALL)}')
    if kind == 'foreign' and foreign is None:
        raise ConfigError('the foreign defect needs a foreign image to take a patch from')
    size = min(image.shape[:2])
    for _ in range(20):
        out, alpha = _SMALL[kind](image, rng, size, foreign)
        out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        diff = np.abs(out.astype(np.int16) - image.astype(np.int16)).max(axis=2)
        mask = (alpha >= _MASK_LEVEL * float(alpha.max())) & (diff >= 1)
        if mask.sum() >= 6:
            return out, mask
    raise ConfigError(f'could not place a visible {kind} defect on this image')


def make_small_defect_benchmark(root: str | Path, config: SmallDefectConfig | None = None
                                ) -> dict[str, dict]:
    """Write the benchmark (see the module docstring) under ``root``.

    Returns:
        ``{category: {'kind', 'train', 'test_good', '<defect>': count, ...}}``.

    Raises:
        SourceError: scikit-image data unavailable or a file that cannot be written.
    """
    config = config or SmallDefectConfig()
    root = Path(root)
    sources = {name: small_source_image(name) for name in SMALL_CATEGORIES}
    size = config.image_size
    summary: dict[str, dict] = {}
    for ci, category in enumerate(config.categories):
        kind = SMALL_CATEGORIES[category][1]
        rng = np.random.default_rng([config.seed, ci, 18])
        source = sources[category]

        def views(count: int, _src=source, _kind=kind, _rng=rng) -> list[np.ndarray]:
            return [nuisance_view(_src, _kind, size, _rng, shift=config.shift,
                                  rotation=config.rotation, scale=config.scale)
                    for _ in range(count)]

        others = [sources[n] for n in SMALL_CATEGORIES if n != category]
        summary[category] = {'kind': kind, **write_category(
            root / category, views, config, add_small_defect, rng, others)}
    return summary
