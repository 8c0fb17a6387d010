"""Image sets for quantization calibration and for accuracy agreement, with their hashes.

Calibration images (what post-training quantization runs the FP32 model on to measure the
ranges of the activations) come from:

- a **folder** of images, a glob or one image (listed by
  :func:`edge_vision_core.io.sources.list_files`: sorted by name; when there are more than
  asked, an evenly spaced subset is taken), or
- a **video** file (frames sampled evenly over its length), or
- the **default**: the colour and grey photographs that ship inside scikit-image (astronaut,
  cat, coffee cup, motorcycle stereo pair, rocket, cameraman) and three of its textures (brick,
  grass, gravel), each seen through random crops, mirror flips and brightness/contrast/gamma
  changes (seeded, so the set and its hash are reproducible). It works offline and needs no
  data of the project. Its limit: a handful of scenes, none of them a street, a room or a night
  image; activation ranges measured on them can be too narrow for other domains. Calibrate
  with frames of the camera the model will serve (``--calib DIR|VIDEO``) for deployment.

The agreement set of ``edge-vision bench`` (:func:`default_eval_images`) is the same scikit-image
photographs, each whole, mirrored and as a centre crop (fixed transforms, no randomness);
scenes overlap with the default calibration set but the views differ.

Every image is a (H, W, 3) uint8 BGR array (OpenCV's channel order). :func:`image_set_sha256`
hashes a set (shapes and pixels, in order) so a report names exactly what it measured.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError, SourceError
from ..io.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from ..io.sources import (
    CorruptFrameError,
    SourceConfig,
    SourceFrame,
    VideoFileSource,
    list_files,
    parse_source,
    read_image,
)

__all__ = [
    'IMAGE_SUFFIXES',
    'VIDEO_SUFFIXES',
    'ImageSet',
    'agreement_sets',
    'default_calibration_images',
    'default_eval_images',
    'image_set_sha256',
    'load_image_set',
    'sample_images',
]

_LOG = logging.getLogger(__name__)


#: scikit-image sample photographs that ship in its wheel (no download).
_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'motorcycle_left', 'motorcycle_right', 'rocket',
           'camera')
_TEXTURES = ('brick', 'grass', 'gravel')


@dataclass(frozen=True)
class ImageSet:
    """An ordered set of images with its provenance.

    Attributes:
        images: (H, W, 3) uint8 BGR arrays.
        names: one name per image (file name, ``frame_<n>`` or ``<sample>_<view>``).
        source: where they came from ('scikit-image samples', a folder or a video path).
        sha256: :func:`image_set_sha256` of ``images``.
    """

    images: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(self.images)

    def describe(self) -> dict[str, object]:
        """JSON-friendly summary (no pixels)."""
        return {'source': self.source, 'count': len(self.images), 'sha256': self.sha256,
                'names': list(self.names)}


def image_set_sha256(images: Sequence[np.ndarray]) -> str:
    """SHA-256 over the images in order (each one's shape, dtype and pixel bytes)."""
    digest = hashlib.sha256()
    for image in images:
        array = np.ascontiguousarray(image)
        digest.update(f'{array.shape}{array.dtype.str}'.encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _to_bgr(image: np.ndarray) -> np.ndarray:
    """Grey, RGB or RGBA (scikit-image order) -> contiguous uint8 BGR."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    return np.ascontiguousarray(image[..., ::-1])


def sample_images(names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """``(name, bgr8 image)`` of scikit-image sample photographs by function name
    (``motorcycle_left``/``motorcycle_right``: the stereo pair)."""
    try:
        import skimage.data as data
    except ImportError as exc:
        raise SourceError('the default image set needs scikit-image (pip install scikit-image); '
                          'or give a folder of images or a video') from exc
    out = []
    for name in names:
        if name.startswith('motorcycle_'):
            pair = data.stereo_motorcycle()
            image = pair[0] if name.endswith('left') else pair[1]
        else:
            image = getattr(data, name)()
        out.append((name, _to_bgr(image)))
    return out


def _augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random view: crop (35-100 % of the area), mirror, contrast/brightness, gamma."""
    h, w = image.shape[:2]
    area = rng.uniform(0.35, 1.0)
    aspect = np.exp(rng.uniform(np.log(0.75), np.log(1.33)))
    cw = int(np.clip(round(w * np.sqrt(area * aspect)), 16, w))
    ch = int(np.clip(round(h * np.sqrt(area / aspect)), 16, h))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    view = image[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        view = view[:, ::-1]
    alpha, beta = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
    view = cv2.convertScaleAbs(np.ascontiguousarray(view), alpha=alpha, beta=beta)
    gamma = np.exp(rng.uniform(np.log(0.7), np.log(1.4)))
    table = np.clip(((np.arange(256) / 255.0) ** gamma) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(view, table)


def default_calibration_images(count: int = 32, seed: int = 0) -> ImageSet:
    """The offline default calibration set (see the module docstring).

    Args:
        count: number of images (>= 1); the samples are cycled, each view random.
        seed: seed of the augmentations (the same seed gives the same set).

    Raises:
        ConfigError: count < 1.
        SourceError: scikit-image is not installed.
    """
    if count < 1:
        raise ConfigError(f'the calibration set needs at least 1 image, got count={count}')
    samples = sample_images(_PHOTOS + _TEXTURES)
    rng = np.random.default_rng(seed)
    images, names = [], []
    for i in range(count):
        name, image = samples[i % len(samples)]
        images.append(_augment(image, rng))
        names.append(f'{name}_aug{i}')
    return ImageSet(tuple(images), tuple(names), f'scikit-image samples (seed {seed})',
                    image_set_sha256(images))


def default_eval_images() -> ImageSet:
    """The fixed agreement set of the benchmark: 7 photographs x (whole, mirrored, centre crop).
    """
    images, names = [], []
    for name, image in sample_images(_PHOTOS):
        h, w = image.shape[:2]
        crop = image[h // 6:h - h // 6, w // 6:w - w // 6]
        for view, pixels in (('full', image), ('mirror', image[:, ::-1]), ('crop', crop)):
            images.append(np.ascontiguousarray(pixels))
            names.append(f'{name}_{view}')
    return ImageSet(tuple(images), tuple(names), 'scikit-image samples (fixed views)',
                    image_set_sha256(images))


def agreement_sets(clip_frames: int = 12, photos: bool = True) -> dict[str, ImageSet]:
    """The small shipped sets that autotuning checks a variant's agreement on.

    ``clip``: ``clip_frames`` frames evenly spaced over the bundled street clip (the
    ``edge_vision_models`` package's sample: what ``edge-vision run`` plays, many small
    pedestrians); ``photos``: :func:`default_eval_images` (scikit-image's photographs: people,
    a cat, a cup, a motorcycle, a rocket; larger objects). A set whose package is missing is left
    out (the caller reports it).

    Raises:
        ConfigError: ``clip_frames < 0`` or no set at all.
    """
    if clip_frames < 0:
        raise ConfigError(f'clip_frames must be >= 0, got {clip_frames}')
    sets: dict[str, ImageSet] = {}
    if clip_frames:
        try:
            from edge_vision_models import sample_path
        except ImportError:
            _LOG.warning('edge_vision_models is not installed: no clip frames in the '
                         'agreement set')
        else:
            sets['clip'] = _from_video(str(sample_path()), clip_frames)
    if photos:
        try:
            sets['photos'] = default_eval_images()
        except SourceError as exc:
            _LOG.warning('no photographs in the agreement set: %s', exc)
    if not sets:
        raise ConfigError('no agreement images: install edge_vision_models (the bundled clip) '
                          'or scikit-image (the photographs)')
    return sets


def _evenly(n: int, count: int) -> list[int]:
    if n <= count:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / max(count - 1, 1))) for i in range(count)})


def _from_files(spec: str, count: int) -> ImageSet:
    """An evenly spaced subset of the images of a folder, glob or single image file."""
    files = list_files(spec)
    images, names = [], []
    for index in _evenly(len(files), count):
        try:
            image = read_image(files[index])
        except CorruptFrameError as exc:
            _LOG.warning('skipping: %s', exc)
            continue
        images.append(image)
        names.append(files[index].name)
    if not images:
        raise SourceError(f'none of the images of {spec!r} could be decoded')
    return ImageSet(tuple(images), tuple(names), spec, image_set_sha256(images))


def _from_video(spec: str, count: int) -> ImageSet:
    """Frames sampled evenly over a video's length (by seeking where it declares its length)."""
    frames: list[SourceFrame] = []
    with VideoFileSource(SourceConfig(source=spec)) as video:
        for index in _evenly(video.frame_count, count) if video.frame_count else ():
            video.seek(index)
            frame = video.read()
            if frame is not None:
                frames.append(frame)
        if not frames:  # no frame count or no seeking: read all, keep an even subset
            video.seek(0)
            every = list(iter(video.read, None))
            frames = [every[i] for i in _evenly(len(every), count)]
    if not frames:
        raise SourceError(f'the video {spec} gave no frame')
    images = [f.image for f in frames]
    names = [f'frame_{f.index}' for f in frames]
    return ImageSet(tuple(images), tuple(names), spec, image_set_sha256(images))


def load_image_set(source: str | Path = '', count: int = 32, seed: int = 0) -> ImageSet:
    """Calibration (or evaluation) images from a folder, a video or the default set.

    Args:
        source: a folder of images, a video file, or '' for
            :func:`default_calibration_images`.
        count: how many images at most (>= 1).
        seed: seed of the default set's augmentations.

    Raises:
        ConfigError: count < 1.
        SourceError: a missing path, a folder without images, an unreadable video (the
            message says what to give instead).
    """
    if count < 1:
        raise ConfigError(f'the image set needs at least 1 image, got count={count}')
    text = str(source).strip()
    if not text:
        return default_calibration_images(count, seed)
    files = list_files(text)  # a missing path, an empty folder or glob: a clear error
    if parse_source(text) is VideoFileSource:
        return _from_video(str(files[0]), count)
    return _from_files(text, count)
