"""Feature extractors for patch-level anomaly detection: image -> multi-scale feature maps.

One :class:`FeatureExtractor` produces the maps of the layers it is asked for, from two sources:

- a pretrained CNN **backbone** run by one of the inference backends (onnxruntime, OpenVINO).
  The default, ``efficientnet-lite0-features``, is EfficientNet-Lite0 trained on ImageNet
  (converted by ``tools/models/convert_efficientnet_lite0.py``), cut after its stride-16 stage,
  with stage outputs ``stride4`` (24 channels), ``stride8`` (40) and ``stride16`` (112); input
  RGB ``(pixel - 127) / 128``. The round-1 backbone, ``nanodet-m-416-backbone`` (the CSP
  backbone of the COCO-pretrained NanoDet detector, ``tools/models/derive_backbone.py``;
  ``stride4`` 64, ``stride8`` 128, ``stride16`` 256 channels) still ships. Preprocessing is the
  manifest's: letterbox (or stretch) to the input size, channel order, ``(pixel - mean) / std``.
- built-in **colour/gradient statistics** (no network), layers ``color4``, ``color8``,
  ``color16``: per pixel CIE Lab (OpenCV 8-bit scaling), the Sobel gradient magnitude of L
  and its magnitude along 0, 90, 45 and 135 degrees (8 channels), averaged over cells of 4, 8
  or 16 pixels, plus the standard deviations of L, a, b in the cell (11 channels per layer).
- built-in **local contrast** (no network), layers ``contrast4``, ``contrast8``,
  ``contrast16``: each cell's mean CIE Lab compared with its surroundings (a Gaussian-weighted
  mean of the cells within about :data:`CONTRAST_SIGMA` model-input pixels): L relative to its
  surroundings, ``(L - L_around) / (L_around + 8)``, a and b as differences ``a - a_around``,
  ``b - b_around`` (3 channels per layer; 0 on a flat image).

The CNN describes structure (edges, shapes, textures) and encodes brightness and colour weakly,
so a faint stain (a blob 20-35 % of the way to another colour) on a busy texture barely moves its
features. The colour statistics see it, but also see every change of exposure or illumination:
on the small-defect benchmark, where every image also changes brightness and illumination,
adding them lowered image AUROC by 0.06 (``benchmarks/bench_anomaly.py``, ``with-colour``).
Local contrast keeps what the stain changes (a cell against its surroundings) and drops what
exposure changes (a gain cancels in the ratio, an offset or a gradient across the frame is
almost the same in a cell and around it): the default anomaly model combines the CNN stages with
``contrast8`` (measured in the README's anomaly section: stains 0.91 -> 0.97 image AUROC on the
held-out split).

A backbone is described by a small JSON *feature manifest* next to its model file (keys: see
:class:`FeatureManifest`); :func:`resolve_backbone` accepts a registered name (a
``<name>.json`` in the ``edge_vision_models`` package), a manifest path, or ``none`` (built-in
layers only).

Coordinate frames: the extractor resizes an image into the *model input* (``input_size`` =
``(width, height)`` pixels) with the :class:`~edge_vision_core.inference.LetterboxTransform`
it returns; a map of stride ``s`` has cell ``(i, j)`` (row, column) covering model-input pixels
``[j*s, (j+1)*s) x [i*s, (i+1)*s)``. Maps are float32 ``(C, h, w)`` with
``h = ceil(input_height / s)``, ``w = ceil(input_width / s)``. Letterbox padding and the
optional context ``margin`` are filled with the image's mirror image (see
:meth:`FeatureExtractor.prepare`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..encodings import as_bgr8
from ..errors import BackendError, ConfigError, ModelError
from ..inference.detector import BACKEND_FORMATS
from ..inference.letterbox import LetterboxTransform, compute_letterbox
from ..inference.manifest import models_package_dir, sha256_file

__all__ = [
    'BUILTIN_LAYERS',
    'COLOR_FEATURES',
    'COLOR_LAYERS',
    'CONTRAST_FEATURES',
    'CONTRAST_LAYERS',
    'CONTRAST_SIGMA',
    'DEFAULT_BACKBONE',
    'FeatureExtractor',
    'FeatureManifest',
    'FeatureMapSpec',
    'FeatureMaps',
    'NO_BACKBONE',
    'create_feature_extractor',
    'layer_strides',
    'list_backbones',
    'resolve_backbone',
]

_LOG = logging.getLogger(__name__)

#: the pretrained backbone used unless another is asked for (ImageNet EfficientNet-Lite0).
DEFAULT_BACKBONE = 'efficientnet-lite0-features'
#: the built-in colour/gradient statistics: layer name -> cell size in pixels.
COLOR_LAYERS = {'color4': 4, 'color8': 8, 'color16': 16}
#: version of the colour statistics, stored in fitted models (a change invalidates them).
COLOR_FEATURES = 'color-gradient/2'
#: the built-in local-contrast layers: layer name -> cell size in pixels.
CONTRAST_LAYERS = {'contrast4': 4, 'contrast8': 8, 'contrast16': 16}
#: version of the local contrast, stored in fitted models with :data:`COLOR_FEATURES`.
CONTRAST_FEATURES = 'local-contrast/1'
#: scale of a cell's surroundings in local contrast (Gaussian sigma, model-input pixels).
CONTRAST_SIGMA = 32.0
#: added to the surroundings' L (0-255) in the contrast ratio: dark areas stay bounded.
_CONTRAST_L_OFFSET = 8.0
#: every layer computed without a network: name -> cell size in pixels.
BUILTIN_LAYERS = {**COLOR_LAYERS, **CONTRAST_LAYERS}
#: ``backbone`` value for the built-in layers only (no network).
NO_BACKBONE = 'none'
#: colour-statistics channels averaged per cell (L, a, b, |g|, 4 orientations); + 3 stds.
_COLOR_MEANS = 8


@dataclass(frozen=True)
class FeatureMapSpec:
    """One output of a backbone.

    Attributes:
        name: output tensor name (also the layer name users select, e.g. ``stride8``).
        stride: model-input pixels per feature cell.
        channels: number of channels.
    """

    name: str
    stride: int
    channels: int


@dataclass(frozen=True)
class FeatureManifest:
    """A backbone feature extractor's description (the JSON next to its model file).

    JSON keys: ``name``, ``kind: feature_extractor``, ``file`` (relative to the JSON),
    ``format`` (``onnx``), ``sha256``, ``input`` {``layout`` (NCHW), ``color_order``
    (bgr/rgb), ``mean``, ``std`` (pixel units, model colour order), ``resize``, ``pad_value``,
    ``size_multiple``}, ``feature_maps`` [{``name``, ``stride``, ``channels``}], and free
    ``source``/``license``/``description``.

    Attributes:
        name: backbone id (stored in fitted models).
        path: absolute model file path.
        format: model file format (``onnx``).
        sha256: expected SHA-256 of the file ('' = not checked).
        color_order: ``bgr`` or ``rgb``.
        mean, std: per-channel normalisation ``x = (pixel - mean) / std``.
        resize: the backbone's training-time resize (``letterbox`` or ``stretch``).
        pad_value: letterbox padding value (0..255).
        size_multiple: input width and height must be multiples of this.
        feature_maps: the outputs.
        source: manifest path (for messages).
    """

    name: str
    path: Path
    format: str
    sha256: str
    color_order: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str
    pad_value: float
    size_multiple: int
    feature_maps: tuple[FeatureMapSpec, ...]
    source: str = '<dict>'

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: Path | str,
                  source: str = '<dict>') -> FeatureManifest:
        """Validate a parsed feature manifest.

        Raises:
            ModelError: missing or invalid keys, naming the manifest.
        """
        def fail(message: str) -> ModelError:
            return ModelError(f'feature manifest {source}: {message}')

        if not isinstance(data, Mapping):
            raise fail('must be a JSON object')
        if data.get('kind') != 'feature_extractor':
            raise fail(f"kind must be 'feature_extractor', got {data.get('kind')!r} (a "
                       f'detector manifest is not a feature extractor)')
        try:
            inp = data.get('input', {})
            maps = tuple(FeatureMapSpec(str(m['name']), int(m['stride']), int(m['channels']))
                         for m in data['feature_maps'])
            mean = tuple(float(v) for v in inp.get('mean', (0.0, 0.0, 0.0)))
            std = tuple(float(v) for v in inp.get('std', (1.0, 1.0, 1.0)))
            manifest = cls(
                name=str(data['name']), path=(Path(base_dir) / str(data['file'])).resolve(),
                format=str(data.get('format', 'onnx')), sha256=str(data.get('sha256', '')),
                color_order=str(inp.get('color_order', 'bgr')).lower(),
                mean=mean, std=std,  # type: ignore[arg-type]
                resize=str(inp.get('resize', 'letterbox')),
                pad_value=float(inp.get('pad_value', 0)),
                size_multiple=int(inp.get('size_multiple', 1)),
                feature_maps=maps, source=source)
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(f'invalid or missing value ({type(exc).__name__}: {exc}); needs name, '
                       f'file, input{{mean, std, color_order}} and feature_maps[{{name, '
                       f'stride, channels}}]') from exc
        if str(inp.get('layout', 'NCHW')).upper() != 'NCHW':
            raise fail('only NCHW backbones are supported')
        if manifest.color_order not in ('bgr', 'rgb'):
            raise fail(f'color_order must be bgr or rgb, got {manifest.color_order!r}')
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise fail('mean and std need 3 values each, std > 0')
        if not maps or any(m.stride < 1 or m.channels < 1 for m in maps):
            raise fail('feature_maps must list outputs with stride >= 1 and channels >= 1')
        if manifest.size_multiple < 1:
            raise fail('input.size_multiple must be >= 1')
        return manifest

    @classmethod
    def load(cls, path: str | Path) -> FeatureManifest:
        """Read a feature manifest JSON.

        Raises:
            ModelError: unreadable file or invalid content.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding='utf-8'))
        except OSError as exc:
            raise ModelError(f'cannot read feature manifest {path}: {exc.strerror}') from exc
        except ValueError as exc:
            raise ModelError(f'feature manifest {path} is not valid JSON: {exc}') from exc
        return cls.from_dict(data, path.parent, str(path))


def list_backbones() -> dict[str, Path]:
    """``{name: feature manifest path}`` of the backbones shipped in ``edge_vision_models``."""
    folder = models_package_dir()
    found: dict[str, Path] = {}
    for path in sorted(folder.glob('*.json')) if folder is not None else ():
        try:
            kind = json.loads(path.read_text(encoding='utf-8')).get('kind')
        except (OSError, ValueError, AttributeError):
            continue
        if kind == 'feature_extractor':
            found[path.stem] = path
    return found


def resolve_backbone(spec: str) -> FeatureManifest | None:
    """The feature manifest a backbone name or path refers to; None for ``none``.

    Args:
        spec: a registered name (``efficientnet-lite0-features``), a feature manifest ``.json``
            path, or ``none`` (no network: built-in layers only).

    Raises:
        ModelError: unknown name (listing the known ones) or an invalid manifest.
    """
    text = str(spec).strip()
    if text.lower() == NO_BACKBONE:
        return None
    path = Path(text).expanduser()
    if path.suffix.lower() == '.json':
        if not path.is_file():
            raise ModelError(f'feature manifest {path} does not exist')
        return FeatureManifest.load(path)
    known = list_backbones()
    if text in known:
        return FeatureManifest.load(known[text])
    names = ', '.join([*known, NO_BACKBONE])
    raise ModelError(f'unknown backbone {text!r}; known: {names} (or a feature manifest .json '
                     f'path). The shipped backbone comes with the edge_vision_models package')


@dataclass(eq=False)
class FeatureMaps:
    """Feature maps of one image.

    Attributes:
        maps: layer name -> (C, h, w) float32 map (see the module docstring for the grid).
        strides: layer name -> stride in model-input pixels.
        transform: image pixels -> model-input pixels (letterbox or stretch).
        pre_ms, infer_ms: milliseconds spent resizing/normalising and computing features.
    """

    maps: dict[str, np.ndarray]
    strides: dict[str, int]
    transform: LetterboxTransform
    pre_ms: float = 0.0
    infer_ms: float = 0.0


class FeatureExtractor:
    """image (bgr8) -> :class:`FeatureMaps` of the requested layers, at a fixed input size.

    Backbone model contract: one input ``[1, 3, H, W]`` float32 (H, W fixed to the input size
    plus twice the margin, or dynamic) normalised as the manifest says, and outputs named as
    the manifest's ``feature_maps``, each ``[1, C, ceil(H / stride), ceil(W / stride)]``.

    Args:
        input_size: ``(width, height)`` of the model input; multiples of 16 (the backbone's
            ``size_multiple``).
        layers: the layer names to produce: backbone outputs (``stride8``...) and/or built-in
            layers (colour statistics ``color8``..., local contrast ``contrast8``...).
        backbone: the backbone's feature manifest, or None (built-in layers only). It is loaded
            only when a backbone layer is requested.
        resize: ``letterbox`` (aspect kept) or ``stretch``.
        margin: mirrored context border in pixels (multiple of 16) added around the input.
        backend, device, threads: the inference backend (see
            :class:`~edge_vision_core.inference.BackendOptions`).
        verify_checksum: check the backbone file's SHA-256 before loading it.

    Attributes:
        id: the backbone used (its manifest name), or ``none`` when only built-in layers are.
        digest: SHA-256 of the backbone model file ('' without one).
        color: the versions of the built-in layers produced, joined by ``+``
            (:data:`COLOR_FEATURES`, :data:`CONTRAST_FEATURES`; '' when none).
        layers: ``{layer name: stride}`` produced.

    Raises:
        ConfigError: bad size, margin or layer names (listing the available ones).
        BackendError: unknown/missing backend or device.
        ModelError: missing/corrupt backbone file or outputs that do not match its manifest.
    """

    def __init__(self, input_size: tuple[int, int], layers: Sequence[str],
                 backbone: FeatureManifest | None = None, *, resize: str = 'letterbox',
                 margin: int = 0, backend: str = 'onnxruntime', device: str = 'auto',
                 threads: int = 0, verify_checksum: bool = True) -> None:
        if resize not in ('letterbox', 'stretch'):
            raise ConfigError(f"resize must be 'letterbox' or 'stretch', got {resize!r}")
        w, h = (int(v) for v in input_size)
        if w < 16 or h < 16 or w % 16 or h % 16:
            raise ConfigError(f'input size must be multiples of 16 and at least 16x16, got '
                              f'{w}x{h}; e.g. {max(16, round(w / 16) * 16)}x'
                              f'{max(16, round(h / 16) * 16)}')
        if margin < 0 or margin % 16:
            raise ConfigError(f'context margin must be a multiple of 16 (>= 0), got {margin}')
        if not layers:
            raise ConfigError('at least one feature layer is needed')
        available = dict(BUILTIN_LAYERS)
        if backbone is not None:
            available.update({m.name: m.stride for m in backbone.feature_maps})
        unknown = [name for name in layers if name not in available]
        if unknown:
            where = (f'backbone {backbone.name!r}' if backbone is not None
                     else f'backbone {NO_BACKBONE!r}')
            raise ConfigError(f'layers {unknown} are not available with {where}; available: '
                              f'{list(available)}')
        self.input_size = (w, h)
        self.resize = resize
        self.margin = int(margin)
        self.layers = {name: available[name] for name in layers}
        self._color = [name for name in layers if name in COLOR_LAYERS]
        self._contrast = [name for name in layers if name in CONTRAST_LAYERS]
        self._net = [name for name in layers if name not in BUILTIN_LAYERS]
        self.color = '+'.join(version for version, used in (
            (COLOR_FEATURES, self._color), (CONTRAST_FEATURES, self._contrast)) if used)
        self.manifest = backbone if self._net else None
        self.id = self.manifest.name if self.manifest is not None else NO_BACKBONE
        self.digest = ''
        self.backend = None
        self._plan: tuple[tuple[int, int], LetterboxTransform] | None = None
        self._closed = False
        if self.manifest is not None:
            self._load_backbone(self.manifest, backend, device, threads, verify_checksum)

    # -- backbone -----------------------------------------------------------------------------

    def _load_backbone(self, manifest: FeatureManifest, backend: str, device: str, threads: int,
                       verify_checksum: bool) -> None:
        from ..inference.backends import BackendOptions, backend_class, create_backend

        k = manifest.size_multiple
        w, h = self.input_size
        if w % k or h % k or self.margin % k:
            raise ConfigError(f'backbone {manifest.name!r} needs the input size and margin in '
                              f'multiples of {k}, got {w}x{h} and {self.margin}')
        name = backend.strip().lower()
        backend_class(name)  # unknown or missing backend: fail before reading files
        formats = BACKEND_FORMATS.get(name, ())
        if manifest.format not in formats:
            raise ModelError(f'backbone {manifest.name!r} ships as {manifest.format}, which '
                             f'backend {name!r} does not read (it reads '
                             f'{", ".join(formats) or "other formats"}); use onnxruntime or '
                             f'openvino')
        if not manifest.path.is_file():
            raise ModelError(f'backbone model file {manifest.path} does not exist '
                             f'(manifest {manifest.source})')
        digest = sha256_file(manifest.path)
        if verify_checksum and manifest.sha256 and digest != manifest.sha256.lower():
            raise ModelError(f'backbone model file {manifest.path} is corrupt or was changed: '
                             f'SHA-256 {digest}, the manifest {manifest.source} expects '
                             f'{manifest.sha256}. Reinstall edge_vision_models or re-run '
                             f'tools/models/derive_backbone.py')
        self.digest = digest
        self.backend = create_backend(name, BackendOptions(
            model_path=str(manifest.path), device=device, threads=threads))
        try:
            self._check_contract()
        except BaseException:
            self.backend.close()
            raise
        self._order = {'bgr': [0, 1, 2], 'rgb': [2, 1, 0]}[manifest.color_order]
        mean = np.asarray(manifest.mean, np.float64)
        std = np.asarray(manifest.std, np.float64)
        self._scale = (1.0 / std).tolist()
        self._offset = (-mean / std).tolist()
        m = self.margin
        self._blob = np.empty((1, 3, h + 2 * m, w + 2 * m), np.float32)

    def _check_contract(self) -> None:
        b, m = self.backend, self.manifest
        where = f'backbone {m.path.name} (manifest {m.source})'
        if len(b.inputs) != 1 or len(b.inputs[0].shape) != 4:
            raise ModelError(f'{where}: expected one [1, 3, H, W] input, the model has '
                             f'{[(t.name, t.shape) for t in b.inputs]}')
        _, c, hh, ww = b.inputs[0].shape
        w, h = (v + 2 * self.margin for v in self.input_size)
        if c not in (None, 3) or hh not in (None, h) or ww not in (None, w):
            raise ModelError(f'{where}: input shape {list(b.inputs[0].shape)} does not take '
                             f'[1, 3, {h}, {w}] (input size plus context margin); use the '
                             f"model's input size")
        names = b.output_names
        missing = [s.name for s in m.feature_maps if s.name not in names]
        if missing:
            raise ModelError(f'{where}: outputs {missing} named in the manifest are not model '
                             f'outputs ({names})')
        self._index = {s.name: names.index(s.name) for s in m.feature_maps}

    # -- per frame ----------------------------------------------------------------------------

    def transform_for(self, image_size: tuple[int, int]) -> LetterboxTransform:
        """The image -> model-input transform for an image of ``(width, height)``."""
        plan = self._plan
        if plan is None or plan[0] != tuple(image_size):
            transform = compute_letterbox(tuple(image_size), self.input_size,
                                          keep_aspect=self.resize == 'letterbox')
            self._plan = plan = (tuple(image_size), transform)
        return plan[1]

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, LetterboxTransform]:
        """Resize a bgr8/mono8/bgra8 image into the model input.

        The image is resized as the detector does (letterbox or stretch), but the letterbox
        padding, and the context ``margin`` around the input, are filled with the image's own
        mirror image instead of a constant, so cells at the image edge see plausible content
        (padding cells are never scored). The result is ``(h + 2 margin, w + 2 margin, 3)``.
        """
        image = as_bgr8(image)
        h, w = image.shape[:2]
        transform = self.transform_for((w, h))
        rw, rh = transform.resized_size
        resized = image if (rw, rh) == (w, h) else cv2.resize(image, (rw, rh),
                                                               interpolation=cv2.INTER_LINEAR)
        dw, dh = transform.dst_size
        m = self.margin
        top, left = transform.pad_y + m, transform.pad_x + m
        bottom, right = dh - rh - transform.pad_y + m, dw - rw - transform.pad_x + m
        return _mirror_border(resized, top, bottom, left, right), transform

    def extract(self, image: np.ndarray) -> FeatureMaps:
        """Feature maps of one image.

        Args:
            image: (H, W, 3) uint8 BGR (also mono8 (H, W) or bgra8 (H, W, 4)), any size.

        Raises:
            ConfigError: an image of another dtype/shape.
            BackendError: the extractor was closed.
        """
        if self._closed:
            raise BackendError(f'feature extractor {self.id!r} was closed; create a new one')
        t0 = time.perf_counter()
        boxed, transform = self.prepare(image)
        t1 = time.perf_counter()
        maps: dict[str, np.ndarray] = {}
        if self._net:
            maps.update(self._backbone_maps(boxed))
        if self._color or self._contrast:
            lab = cv2.cvtColor(boxed, cv2.COLOR_BGR2LAB).astype(np.float32)
            if self._color:
                maps.update(self._color_maps(lab))
            if self._contrast:
                maps.update(self._contrast_maps(lab))
        t2 = time.perf_counter()
        return FeatureMaps(maps, dict(self.layers), transform, (t1 - t0) * 1e3,
                           (t2 - t1) * 1e3)

    def _crop(self, full: np.ndarray, stride: int) -> np.ndarray:
        """(C, H', W') map of the input with margin -> the cells of the input itself."""
        w, h = self.input_size
        k = self.margin // stride
        return full[:, k:k + -(-h // stride), k:k + -(-w // stride)]

    def _backbone_maps(self, boxed: np.ndarray) -> dict[str, np.ndarray]:
        planes = cv2.split(boxed)
        for c, i in enumerate(self._order):
            cv2.addWeighted(planes[i], self._scale[c], planes[i], 0.0, self._offset[c],
                            dst=self._blob[0, c], dtype=cv2.CV_32F)
        outputs = self.backend.run([self._blob])
        bh, bw = boxed.shape[:2]
        maps = {}
        for spec in self.manifest.feature_maps:
            if spec.name not in self._net:
                continue
            out = np.asarray(outputs[self._index[spec.name]], np.float32)
            s = spec.stride
            want = (1, spec.channels, -(-bh // s), -(-bw // s))
            if out.shape != want:
                raise ModelError(f'backbone {self.id!r}: output {spec.name} has shape '
                                 f'{list(out.shape)}, expected {list(want)} (stride {s}); the '
                                 f'manifest does not match the model')
            maps[spec.name] = self._crop(out[0], s)
        return maps

    def _color_maps(self, lab: np.ndarray) -> dict[str, np.ndarray]:
        gray = np.ascontiguousarray(lab[..., 0])
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
        diag = np.float32(math.sqrt(0.5))
        # per pixel: L, a, b, |gradient|, and the gradient's magnitude along 0, 90, 45 and 135
        # degrees (oriented edge energies), then L^2, a^2, b^2 for the standard deviations
        channels = cv2.merge([lab, cv2.magnitude(gx, gy), np.abs(gx), np.abs(gy),
                              np.abs(gx + gy) * diag, np.abs(gx - gy) * diag, lab * lab])
        h, w = gray.shape
        maps = {}
        for name in self._color:
            stride = COLOR_LAYERS[name]
            cells = cv2.resize(channels, (-(-w // stride), -(-h // stride)),
                               interpolation=cv2.INTER_AREA)
            mean = cells[..., :_COLOR_MEANS]
            std = np.sqrt(np.maximum(cells[..., _COLOR_MEANS:] - mean[..., :3] ** 2, 0.0))
            both = np.concatenate([mean, std], axis=2).transpose(2, 0, 1)
            maps[name] = np.ascontiguousarray(self._crop(both, stride), np.float32)
        return maps

    def _contrast_maps(self, lab: np.ndarray) -> dict[str, np.ndarray]:
        h, w = lab.shape[:2]
        maps = {}
        for name in self._contrast:
            stride = CONTRAST_LAYERS[name]
            cells = cv2.resize(lab, (-(-w // stride), -(-h // stride)),
                               interpolation=cv2.INTER_AREA)
            around = cv2.GaussianBlur(cells, (0, 0), CONTRAST_SIGMA / stride,
                                      borderType=cv2.BORDER_REFLECT)
            rel = cells - around
            rel[..., 0] /= around[..., 0] + _CONTRAST_L_OFFSET
            maps[name] = np.ascontiguousarray(self._crop(rel.transpose(2, 0, 1), stride),
                                              np.float32)
        return maps

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backbone runtime (safe to call twice)."""
        if not self._closed:
            self._closed = True
            if self.backend is not None:
                self.backend.close()

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.input_size
        runtime = (f'{self.backend.name}:{self.backend.device}, ' if self.backend is not None
                   else '')
        return (f'FeatureExtractor({self.id}, {runtime}{w}x{h}, {self.resize}, '
                f'layers {list(self.layers)})')


def _mirror_border(image: np.ndarray, top: int, bottom: int, left: int, right: int
                   ) -> np.ndarray:
    """Pad with the mirrored image (repeated mirroring when the border exceeds the image)."""
    out = image
    while top or bottom or left or right:
        h, w = out.shape[:2]
        t, b = min(top, h - 1), min(bottom, h - 1)
        lft, r = min(left, w - 1), min(right, w - 1)
        if h < 2 or w < 2:
            return cv2.copyMakeBorder(out, top, bottom, left, right, cv2.BORDER_REPLICATE)
        out = cv2.copyMakeBorder(out, t, b, lft, r, cv2.BORDER_REFLECT_101)
        top, bottom, left, right = top - t, bottom - b, left - lft, right - r
    return out


def create_feature_extractor(backbone: str, input_size: tuple[int, int],
                             layers: Sequence[str], *, resize: str = 'letterbox',
                             margin: int = 0, backend: str = 'onnxruntime',
                             device: str = 'auto', threads: int = 0,
                             verify_checksum: bool = True) -> FeatureExtractor:
    """A :class:`FeatureExtractor` by backbone name/path (see :func:`resolve_backbone`).

    Raises:
        ConfigError, BackendError, ModelError: as :class:`FeatureExtractor`.
    """
    manifest = None
    if any(name not in BUILTIN_LAYERS for name in layers):
        manifest = resolve_backbone(backbone)
    return FeatureExtractor(input_size, layers, manifest, resize=resize, margin=margin,
                            backend=backend, device=device, threads=threads,
                            verify_checksum=verify_checksum)


def layer_strides(backbone: str, layers: Sequence[str]) -> dict[str, int]:
    """``{layer: stride}`` of ``layers`` without loading the backbone.

    Raises:
        ConfigError: a layer the backbone (or the built-in layers) does not have.
        ModelError: unknown backbone (only resolved when a backbone layer is asked for).
    """
    available = dict(BUILTIN_LAYERS)
    if any(name not in BUILTIN_LAYERS for name in layers):
        manifest = resolve_backbone(backbone)
        if manifest is not None:
            available.update({m.name: m.stride for m in manifest.feature_maps})
    unknown = [name for name in layers if name not in available]
    if unknown:
        raise ConfigError(f'layers {unknown} are not available with backbone {backbone!r}; '
                          f'available: {list(available)}')
    return {name: available[name] for name in layers}
