"""The text reader: DB text detection -> optional direction -> CTC recognition, one call.

Modelled on MediaPipe Tasks (and :class:`.detector.Detector`): an options dataclass, a factory
(:meth:`TextReader.create`), one :meth:`TextReader.read` per image, ``close()`` and context-
manager support. The maths (box extraction, crops, batching, CTC) lives in :mod:`.text` as pure
functions; this module runs the three models on the project's backends.

Two modes, chosen per call:

- **full frame**: ``read(image)`` finds and reads every text line of the image;
- **regions** (ROI): ``read(image, regions=boxes)`` finds and reads text only inside the given
  ``[x1, y1, x2, y2]`` boxes (e.g. detections of signs or plates); each line says which box it
  came from (``TextLine.region``). A region is read at up to twice its size (at most the
  detection size), so small signs are magnified.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import check_config, param
from ..encodings import as_bgr8
from ..errors import ConfigError, DataError, EdgeVisionError, ModelError
from ..types import FrameMeta
from .adapters import DecodeContext, get_adapter
from .backends import (
    BACKEND_FORMATS,
    PRECISIONS,
    Backend,
    BackendOptions,
    backend_class,
    create_backend,
)
from .manifest import ModelManifest, resolve_model, verify_checksum
from .text import (
    batch_by_width,
    crop_quad,
    decode_ctc_text,
    decode_text_direction,
    dictionary_file,
    line_tensor,
    merge_line_pieces,
    quad_bounds,
    reading_order,
    scaled_input_size,
)

__all__ = ['DEFAULT_BACKEND', 'MIN_IMAGE_SIDE', 'SLOTS', 'FrameText', 'ReadStats', 'TextLine',
           'TextReader', 'TextReaderOptions', 'TextResult', 'calibration_tensors']

#: the TextReader slot of each text adapter.
SLOTS = {'db_text': 'detector', 'ctc_text': 'recognizer', 'text_direction': 'classifier'}

_LOG = logging.getLogger(__name__)

#: images narrower or lower than this (pixels) hold no readable line and are not run through the
#: models (OpenCV 4.5, Ubuntu 22.04's, also fails to resize a 1x1 colour image).
MIN_IMAGE_SIDE = 4

#: what ``backend='auto'`` tries, fastest first on the CPUs measured (benchmarks/bench_ocr.py).
DEFAULT_BACKEND = ('openvino', 'onnxruntime')


@dataclass(frozen=True)
class TextReaderOptions:
    """Settings of a :class:`TextReader` (each becomes a ROS parameter of the OCR node).

    Thresholds left at -1 take the model manifest's value.
    """

    detector: str = field(default='ppocrv4-det', metadata=param(
        'Text detection model (adapter db_text): a registered name (ppocrv4-det, embedded), a '
        'manifest YAML path, or a model file with a sibling <stem>.yaml.', read_only=True))
    recognizer: str = field(default='ppocrv4-rec', metadata=param(
        'Text recognition model (adapter ctc_text) with its dictionary: a registered name '
        '(ppocrv4-rec: Latin and Chinese script), a manifest path or a model file.',
        read_only=True))
    dictionary: str = field(default='', metadata=param(
        "Character file of the recognizer (one character per line, classes 1..C-1) instead of "
        "its manifest's, e.g. the dictionary of another language's model; it must have the "
        "model's class count (checked at load). Empty = the manifest's.", read_only=True))
    classifier: str = field(default='', metadata=param(
        "Direction classifier (adapter text_direction) that turns upside-down lines, e.g. "
        "ppocr-cls; empty = none (lines are read as found).", read_only=True))
    backend: str = field(default='auto', metadata=param(
        "Inference runtime: onnxruntime, openvino (where installed), or auto (openvino if "
        "installed, else onnxruntime: the faster one measured here).", read_only=True))
    device: str = field(default='auto', metadata=param(
        "Device of the backend (cpu, cuda | CPU, GPU, AUTO); 'auto' picks the backend's best "
        "device (CPU for OpenVINO: the text models' input sizes change per image and line).",
        read_only=True))
    threads: int = field(default=0, metadata=param(
        'CPU inference threads per model; 0 lets the runtime decide.', min=0, max=256,
        read_only=True))
    precision: str = field(default='auto', metadata=param(
        "Precision (auto, fp32, fp16, bf16): auto takes each manifest's first file for the "
        "backend (the embedded detector's INT8 OpenVINO file on OpenVINO); fp32/fp16 take a "
        "file of that precision where the manifest has one; passed to the runtime as a hint.",
        choices=PRECISIONS, read_only=True))
    det_size: int = field(default=0, metadata=param(
        "Longest side of the detection input in pixels (a multiple of the model's 32); "
        "smaller is faster and misses small text; 0 uses the manifest value.", min=0,
        max=4096, unit='px'))
    max_upscale: float = field(default=2.0, metadata=param(
        'Scale an image up by at most this factor to reach det_size (small images: more '
        'magnification costs time and can split text into pieces).', min=1.0, max=16.0))
    bin_threshold: float = field(default=-1.0, metadata=param(
        'Pixels with a text probability above this are text; -1 uses the manifest value.',
        min=-1.0, max=1.0))
    box_threshold: float = field(default=-1.0, metadata=param(
        'Minimum mean text probability inside a line box; -1 uses the manifest value.',
        min=-1.0, max=1.0))
    unclip_ratio: float = field(default=-1.0, metadata=param(
        'How much each detected region is grown (area x ratio / perimeter per side); -1 '
        'uses the manifest value.', min=-1.0, max=10.0))
    min_score: float = field(default=-1.0, metadata=param(
        'Minimum recognition score of a line in [0, 1] (mean character probability); -1 uses '
        "the recognizer manifest's value.", min=-1.0, max=1.0))
    merge_gap: float = field(default=0.6, metadata=param(
        'Join the boxes of words of one line that the detector found apart when the gap '
        'between them is below this many line heights (same direction, height and baseline); '
        '0 = keep them apart.', min=0.0, max=5.0))
    space_threshold: float = field(default=-1.0, metadata=param(
        "Insert a space between two characters where the recognizer's space class reaches "
        "this probability in the gap (PP-OCR's Chinese-trained recognizer leaves most gaps "
        "between Latin words blank); 0 = only the spaces it picks itself; -1 uses the "
        "recognizer manifest's value (0.05 for ppocrv4-rec).", min=-1.0, max=1.0))
    max_lines: int = field(default=500, metadata=param(
        'Read at most this many lines per image, the most confident boxes first (the rest are '
        'counted as dropped); 0 = no limit.', min=0, max=100000))
    batch_size: int = field(default=8, metadata=param(
        'Line crops per recognition batch (crops of similar width are batched together).',
        min=1, max=256))
    cache_dir: str = field(default='', metadata=param(
        'Folder for compiled-model caches (OpenVINO); empty = none.', read_only=True))
    verify_checksum: bool = field(default=True, metadata=param(
        "Check each model file's SHA-256 against its manifest before loading.",
        read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.detector.strip() or not self.recognizer.strip():
            raise ConfigError('TextReaderOptions.detector and .recognizer must name models')
        if self.det_size and self.det_size < 32:
            raise ConfigError(f'TextReaderOptions.det_size must be 0 (the manifest value) or '
                              f'>= 32 pixels, got {self.det_size}')


@dataclass(eq=False, frozen=True)
class TextLine:
    """One line of text read in an image.

    Attributes:
        polygon: (4, 2) float32 corners in the image's pixels (corner coordinates, x right,
            y down), clockwise from the top-left corner of the text.
        text: the characters read (may hold spaces).
        score: recognition confidence in [0, 1] (mean probability of the characters).
        box_score: detection confidence in [0, 1] (mean text probability inside the box).
        region: index of the region the line was read in (``read(regions=...)``), -1 in the
            full-frame mode.
    """

    polygon: np.ndarray
    text: str
    score: float
    box_score: float = 0.0
    region: int = -1

    @property
    def box(self) -> np.ndarray:
        """(4,) float32 axis-aligned bounds ``[x0, y0, x1, y1]`` of the polygon."""
        return quad_bounds(self.polygon)[0]

    def __repr__(self) -> str:
        x0, y0, x1, y1 = (round(float(v), 1) for v in self.box)
        return f'TextLine({self.text!r}, score={self.score:.3f}, box=[{x0}, {y0}, {x1}, {y1}])'

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "score", "polygon": [[x, y] x4], "box": [x0, y0, x1, y1], "region"}``
        for JSON (``edge-vision ocr``, the recorder, MQTT): pixels rounded to 0.01, the score
        to 1e-5."""
        return {'text': self.text, 'score': round(float(self.score), 5),
                'polygon': [[round(float(x), 2), round(float(y), 2)] for x, y in self.polygon],
                'box': [round(float(v), 2) for v in self.box], 'region': int(self.region)}


@dataclass(eq=False, frozen=True)
class FrameText:
    """The text lines read in one frame: what ocr_node emits in process (the twin of
    ``edge_vision_msgs/TextArray``).

    Attributes:
        meta: the source image's stamp and frame id (unchanged).
        lines: the lines, polygons in that image's pixels, in reading order.
        image_size: ``(width, height)`` of the image read ((0, 0) when unknown, e.g. from a
            message).
    """

    meta: FrameMeta
    lines: tuple[TextLine, ...] = ()
    image_size: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class ReadStats:
    """What one :meth:`TextReader.read` call did.

    Attributes:
        det_ms, cls_ms, rec_ms: milliseconds of detection (with its pre/post-processing),
            direction classification and recognition (with cropping and decoding).
        found: line boxes the detector found.
        dropped: boxes not read because of ``max_lines``.
        rejected: lines read but dropped for a score under ``min_score`` or an empty text.
        det_input: ``(width, height)`` of the (last) detection input.
    """

    det_ms: float = 0.0
    cls_ms: float = 0.0
    rec_ms: float = 0.0
    found: int = 0
    dropped: int = 0
    rejected: int = 0
    det_input: tuple[int, int] = (0, 0)

    @property
    def total_ms(self) -> float:
        return self.det_ms + self.cls_ms + self.rec_ms


@dataclass(eq=False)
class TextResult:
    """Lines of one image with the statistics of the call (:meth:`TextReader.read_result`)."""

    lines: list[TextLine]
    stats: ReadStats
    image_size: tuple[int, int]


class _Model:
    """One text model (manifest + loaded backend) checked against its adapter."""

    def __init__(self, manifest: ModelManifest, adapter: str, options: TextReaderOptions,
                 backend_name: str) -> None:
        if manifest.adapter != adapter:
            raise ModelError(f'model {manifest.name!r} ({manifest.source}) has adapter '
                             f'{manifest.adapter!r}; this slot needs a {adapter} model')
        if manifest.layout != 'NCHW' or manifest.color_order not in ('bgr', 'rgb'):
            raise ModelError(f'text model {manifest.name!r} ({manifest.source}): only NCHW '
                             f'inputs in bgr or rgb are supported, the manifest says '
                             f'{manifest.layout} {manifest.color_order}')
        self.manifest = manifest
        formats = BACKEND_FORMATS.get(backend_name, ())
        exact = [f for fmt in formats for f in manifest.files
                 if f.format == fmt and f.precision == options.precision]
        # an explicit fp32/fp16 asks for that file even where a faster INT8 one comes first
        model_file = exact[0] if exact else manifest.pick_file(formats, options.precision)
        if options.verify_checksum:
            verify_checksum(model_file)
        device = options.device
        if backend_name == 'openvino' and device.strip().lower() == 'auto':
            # the text models take a new input size per image (detector) and per line batch
            # (recognizer): NPUs take no dynamic shapes, and AUTO's device hand-over cost 25 %
            # against CPU here (benchmarks/bench_ocr.py)
            device = 'CPU'
        self.backend: Backend = create_backend(backend_name, BackendOptions(
            model_path=str(model_file.path), device=device, threads=options.threads,
            precision=options.precision, cache_dir=options.cache_dir))
        try:
            self._check_contract()
        except BaseException:
            self.backend.close()
            raise
        self.dtype = self.backend.inputs[0].dtype
        self.swap_rb = manifest.color_order == 'rgb'

    def _check_contract(self) -> None:
        """One [N, 3, H, W] image input, and the outputs the adapter needs (ModelError)."""
        m, inputs = self.manifest, self.backend.inputs
        where = f'{m.adapter} model {m.name!r} ({m.source})'
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f'{where}: expected one image input [N, 3, H, W], the model has '
                             f'{[list(t.shape) for t in inputs]}')
        channels = inputs[0].shape[1]
        if channels is not None and channels != m.channels:
            raise ModelError(f'{where}: the input has {channels} channels, the manifest '
                             f'(color_order {m.color_order}) needs {m.channels}; is the layout '
                             f'NCHW?')
        if m.adapter == 'ctc_text' and inputs[0].shape[2] not in (None, m.input_size[1]):
            raise ModelError(f'{where}: the input height is {inputs[0].shape[2]}, the manifest '
                             f'says input_size [w, {m.input_size[1]}]; fix input_size')
        problem = get_adapter(m.adapter).check_outputs([t.shape for t in self.backend.outputs],
                                                       m)
        if problem:
            raise ModelError(f'{where}: {problem}')

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run the model on one input; a runtime failure becomes a ModelError naming it."""
        if tensor.dtype != self.dtype:
            tensor = tensor.astype(self.dtype)
        try:
            return self.backend.run([tensor])
        except EdgeVisionError:
            raise
        except Exception as exc:  # runtimes raise their own exception types
            m = self.manifest
            raise ModelError(f'{self.backend.name} failed to run {m.adapter} model {m.name!r} '
                             f'({m.source}) on an input of shape {list(tensor.shape)}: '
                             f'{type(exc).__name__}: {str(exc).strip()[:300]}; the model file '
                             f'does not match its manifest or is damaged') from exc

    def close(self) -> None:
        self.backend.close()


def _with_dictionary(manifest: ModelManifest, path: str) -> ModelManifest:
    """``manifest`` with another dictionary file (ModelError when it cannot be read)."""
    file = Path(path.strip()).expanduser()
    if not file.is_file():
        raise ModelError(f'dictionary {str(file)!r} (option dictionary) is not a file: give a '
                         f'text file with one character per line, or leave it empty for the '
                         f"recognizer manifest's")
    dictionary_file(file)  # readable and well-formed, else its own error
    return dataclasses.replace(manifest, options=dataclasses.replace(
        manifest.options, dictionary=str(file.resolve())))


def _pick_backend(name: str) -> str:
    key = name.strip().lower()
    if key != 'auto':
        backend_class(key)  # unknown / not installed: the registry's error
        return key
    for candidate in DEFAULT_BACKEND:
        try:
            backend_class(candidate)
        except Exception:
            continue
        return candidate
    backend_class(DEFAULT_BACKEND[-1])  # raises with what is installed
    return DEFAULT_BACKEND[-1]


class TextReader:
    """Reads the text lines of images with a DB detector, a direction classifier (optional)
    and a CTC recognizer, on one backend.

    Model contract (checked at creation, errors name the file; see :mod:`.text`):

    - detector (``db_text``): input ``[1, 3, H, W]`` float32, H and W multiples of the
      manifest's ``size_multiple``, ``(pixel - mean) / std`` in its colour order; output
      ``[1, 1, H, W]`` text probabilities;
    - classifier (``text_direction``, optional): input ``[B, 3, h, w]`` (``input_size``),
      output ``[B, K]`` probabilities of the angle labels;
    - recognizer (``ctc_text``): input ``[B, 3, h, W]`` (h = ``input_size[1]``, any W), output
      ``[B, T, 1 + len(dictionary)]`` per-step class probabilities, class 0 = CTC blank.

    Coordinate frame: :meth:`read` takes a ``bgr8`` (H, W, 3) uint8 image (mono8 and bgra8 are
    converted) and returns lines whose polygons are in that image's pixels (corner
    coordinates, x right, y down), in reading order (top to bottom, left to right).

    One TextReader serves one thread at a time. Use :meth:`create`; :meth:`close` (or
    ``with``) releases the runtimes.
    """

    def __init__(self, options: TextReaderOptions, detector: _Model, recognizer: _Model,
                 classifier: _Model | None = None) -> None:
        self.options = options
        self.detector_model = detector
        self.recognizer_model = recognizer
        self.classifier_model = classifier
        self._closed = False
        self.last_stats = ReadStats()
        self.update_options(options)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(cls, options: TextReaderOptions | None = None, **overrides: Any) -> TextReader:
        """Resolve the models, load them into the backend and check their contracts.

        Args:
            options: settings (default: the embedded PP-OCRv4 models, backend auto).
            **overrides: fields of TextReaderOptions to replace, e.g. ``backend='openvino'``.

        Raises:
            ConfigError: invalid option values.
            BackendError: unknown/missing backend or unavailable device (lists what is here).
            ModelError: unknown model, missing/corrupt file, wrong adapter, or a manifest that
                does not match its model (naming the file and the mismatch).
        """
        return cls.from_manifests({}, options, **overrides)

    @classmethod
    def from_manifests(cls, manifests: Mapping[str, ModelManifest],
                       options: TextReaderOptions | None = None, **overrides: Any
                       ) -> TextReader:
        """Like :meth:`create`, with already loaded manifests for some slots.

        Args:
            manifests: ``{'detector' | 'recognizer' | 'classifier': manifest}``; the other
                slots come from ``options``. A manifest with one file pins the file that runs.
            options, overrides: as for :meth:`create`.
        """
        unknown = sorted(set(manifests) - {'detector', 'recognizer', 'classifier'})
        if unknown:
            raise ConfigError(f'unknown text model slot(s) {unknown}, expecting detector, '
                              f'recognizer or classifier')
        options = options or TextReaderOptions()
        if overrides:
            options = dataclasses.replace(options, **overrides)
        backend = _pick_backend(options.backend)
        loaded: list[_Model] = []
        try:
            for slot, adapter in (('detector', 'db_text'), ('recognizer', 'ctc_text'),
                                  ('classifier', 'text_direction')):
                given, spec = manifests.get(slot), getattr(options, slot)
                if given is not None or spec.strip():
                    manifest = given if given is not None else resolve_model(spec)
                    if slot == 'recognizer' and options.dictionary.strip():
                        manifest = _with_dictionary(manifest, options.dictionary)
                    loaded.append(_Model(manifest, adapter, options, backend))
            return cls(options, *loaded)
        except BaseException:
            for model in loaded:
                model.close()
            raise

    # -- properties ---------------------------------------------------------------------------

    @property
    def backend_name(self) -> str:
        return self.detector_model.backend.name

    @property
    def dictionary(self) -> tuple[str, ...]:
        return dictionary_file(self.recognizer_model.manifest.options.dictionary)

    # -- reading ------------------------------------------------------------------------------

    def read(self, image: np.ndarray, regions: np.ndarray | Sequence | None = None
             ) -> list[TextLine]:
        """Find and read the text lines of one image (or of regions of it).

        Args:
            image: (H, W, 3) uint8 BGR (also (H, W) mono8 or (H, W, 4) BGRA).
            regions: None for the whole image, or (N, 4) ``[x1, y1, x2, y2]`` boxes in image
                pixels to read inside (clipped to the image; empty or non-finite boxes are
                skipped).

        Returns:
            The lines in reading order (``last_stats`` holds the timings and counts).

        Raises:
            DataError: an image of another dtype/shape, or malformed regions.
            BackendError: the reader was closed.
        """
        return self.read_result(image, regions).lines

    __call__ = read

    def read_result(self, image: np.ndarray, regions: np.ndarray | Sequence | None = None
                    ) -> TextResult:
        """:meth:`read` with the call's statistics."""
        self._check_open()
        image = as_bgr8(image, 'read() input')
        h, w = image.shape[:2]
        if min(h, w) < MIN_IMAGE_SIDE:
            self.last_stats = ReadStats()
            return TextResult([], self.last_stats, (w, h))
        t0 = time.perf_counter()
        quads_all, scores_all, owners = [], [], []
        det_input = (0, 0)
        for index, x0, y0, crop, size in self._areas(image, regions):
            quads, scores, det_input = self.detect(crop, size)
            quads, scores = merge_line_pieces(quads, scores, self.options.merge_gap)
            if len(quads):
                quads_all.append(quads + np.array([x0, y0], np.float32))
                scores_all.append(scores)
                owners.append(np.full(len(quads), index))
        quads = np.concatenate(quads_all) if quads_all else np.zeros((0, 4, 2), np.float32)
        scores = np.concatenate(scores_all) if scores_all else np.zeros(0, np.float32)
        owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        found = len(quads)
        if self.max_lines and found > self.max_lines:
            keep = np.sort(np.argsort(-scores, kind='stable')[:self.max_lines])
            quads, scores, owner = quads[keep], scores[keep], owner[keep]
        order = reading_order(quads)
        quads, scores, owner = quads[order], scores[order], owner[order]
        t1 = time.perf_counter()
        height = self.recognizer_model.manifest.input_size[1]
        crops = [crop_quad(image, q, height) for q in quads]
        cls_ms = 0.0
        if self.classifier_model is not None and crops:
            t_cls = time.perf_counter()
            flipped = self.classify(crops)
            for i in np.flatnonzero(flipped):
                crops[i] = np.ascontiguousarray(crops[i][::-1, ::-1])
                quads[i] = np.roll(quads[i], 2, axis=0)
            cls_ms = (time.perf_counter() - t_cls) * 1e3
        texts = self.recognize(crops)
        lines, rejected = [], 0
        for quad, box_score, region, (text, score) in zip(quads, scores, owner, texts,
                                                          strict=True):
            if not text.strip() or score < self.min_score:
                rejected += 1
                continue
            lines.append(TextLine(quad.astype(np.float32), text, float(score),
                                  float(box_score), int(region)))
        t3 = time.perf_counter()
        stats = ReadStats(det_ms=(t1 - t0) * 1e3, cls_ms=cls_ms,
                          rec_ms=(t3 - t1) * 1e3 - cls_ms,
                          found=found, dropped=found - len(quads), rejected=rejected,
                          det_input=det_input)
        self.last_stats = stats
        return TextResult(lines, stats, (w, h))

    def detect(self, image: np.ndarray, size: int = 0
               ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Stage 1: the text line boxes of a bgr8 image.

        Args:
            image: (H, W, 3) uint8 BGR.
            size: longest side of the detection input; 0 = the reader's ``det_size``.

        Returns:
            ``(quads, scores, input_size)``: (N, 4, 2) float32 in image pixels, (N,) float32
            box scores, and the ``(width, height)`` the detector ran at.
        """
        self._check_open()
        model = self.detector_model
        m = model.manifest
        h, w = image.shape[:2]
        limit = min(size or self.det_size, max(h, w) * self.options.max_upscale)
        in_w, in_h = scaled_input_size((w, h), int(round(limit)), m.options.size_multiple)
        resized = cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        tensor = _nchw(resized, m, model.swap_rb)
        outputs = model.run(tensor)
        candidates = get_adapter(m.adapter).decode(
            outputs, DecodeContext(self._det_manifest, self.box_threshold)).candidates
        # map pixels (= model-input pixels) -> image pixels
        map_h, map_w = np.shape(outputs[0])[-2:]
        quads = candidates.keypoints * np.array([w / map_w, h / map_h], np.float32)
        np.clip(quads[..., 0], 0, w, out=quads[..., 0])
        np.clip(quads[..., 1], 0, h, out=quads[..., 1])
        return quads, candidates.scores, (in_w, in_h)

    def classify(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Stage 2 (with a classifier): which crops are upside down.

        Args:
            crops: (h, w, 3) uint8 BGR line crops.

        Returns:
            (N,) bool, True where the classifier says 180 degrees with at least its
            manifest's ``score_threshold``.
        """
        self._check_open()
        model = self.classifier_model
        if model is None or not len(crops):
            return np.zeros(len(crops), bool)
        m = model.manifest
        width, height = m.input_size
        flipped = np.zeros(len(crops), bool)
        for start in range(0, len(crops), self.options.batch_size):
            batch = [_channels(c, model.swap_rb)
                     for c in crops[start:start + self.options.batch_size]]
            tensor, _ = line_tensor(batch, height, width, m.mean, m.std, max_width=width,
                                    multiple=1)
            angles, probs = decode_text_direction(model.run(tensor), m.labels)
            flipped[start:start + len(batch)] = (angles == 180) & (probs >= m.score_threshold)
        return flipped

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Stage 3: read line crops (batched by width).

        Args:
            crops: (h, w, 3) uint8 BGR upright line crops (any height; scaled to the
                model's).

        Returns:
            Per crop ``(text, score)``; ``('', 0.0)`` where nothing was read.
        """
        self._check_open()
        model = self.recognizer_model
        m = model.manifest
        height = m.input_size[1]
        if not len(crops):
            return []
        widths = [max(1, int(np.ceil(c.shape[1] * height / max(c.shape[0], 1)))) for c in crops]
        out: list[tuple[str, float]] = [('', 0.0)] * len(crops)
        for batch in batch_by_width(widths, self.options.batch_size):
            items = [_channels(crops[i], model.swap_rb) for i in batch]
            widest = max(widths[i] for i in batch)
            tensor, used = line_tensor(items, height, widest, m.mean, m.std,
                                       max_width=_MAX_LINE_WIDTH,
                                       multiple=m.options.size_multiple)
            decoded = decode_ctc_text(model.run(tensor), self.dictionary, used, tensor.shape[3],
                                      self.space_threshold)
            for i, result in zip(batch, decoded, strict=True):
                out[i] = result
        return out

    def warmup(self, size: tuple[int, int] = (640, 480)) -> None:
        """Run each model once on a blank image so the first real frame pays no set-up."""
        blank = np.full((size[1], size[0], 3), 255, np.uint8)
        cv2.putText(blank, 'WARM UP', (20, size[1] // 2), cv2.FONT_HERSHEY_SIMPLEX, 2,
                    (0, 0, 0), 4)
        self.read(blank)

    # -- settings and lifetime ----------------------------------------------------------------

    def update_options(self, options: TextReaderOptions) -> None:
        """Take the per-image settings of ``options`` (detection size, thresholds, max lines,
        batch size; negative = the manifest's). Models, backend, device and threads stay."""
        keep = ('detector', 'recognizer', 'dictionary', 'classifier', 'backend', 'device',
                'threads', 'precision', 'cache_dir', 'verify_checksum')
        self.options = dataclasses.replace(
            options, **{k: getattr(self.options, k) for k in keep})
        det = self.detector_model.manifest
        rec = self.recognizer_model.manifest
        o = self.options
        self.det_size = o.det_size or max(det.input_size)
        opts = det.options
        self.bin_threshold = opts.bin_threshold if o.bin_threshold < 0 else o.bin_threshold
        self.box_threshold = det.score_threshold if o.box_threshold < 0 else o.box_threshold
        self.unclip_ratio = opts.unclip_ratio if o.unclip_ratio < 0 else o.unclip_ratio
        self._det_manifest = dataclasses.replace(det, options=dataclasses.replace(
            opts, bin_threshold=self.bin_threshold, unclip_ratio=self.unclip_ratio))
        self.min_score = rec.score_threshold if o.min_score < 0 else o.min_score
        self.space_threshold = (rec.options.space_threshold if o.space_threshold < 0
                                else o.space_threshold)
        self.max_lines = o.max_lines

    def close(self) -> None:
        """Release the models; safe to call twice."""
        if not self._closed:
            self._closed = True
            for model in (self.detector_model, self.recognizer_model, self.classifier_model):
                if model is not None:
                    model.close()

    def _check_open(self) -> None:
        if self._closed:
            from ..errors import BackendError
            raise BackendError('the text reader was closed; create a new one')

    def __enter__(self) -> TextReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        models = [self.detector_model, self.classifier_model, self.recognizer_model]
        names = '+'.join(m.manifest.name for m in models if m is not None)
        backend = self.detector_model.backend
        return f'TextReader({names}, {backend.name}:{backend.device}, det_size={self.det_size})'

    # -- internals ----------------------------------------------------------------------------

    def _areas(self, image: np.ndarray, regions: np.ndarray | Sequence | None):
        """(region index, x0, y0, crop, detection size) of the whole image (index -1) or of
        each usable region."""
        h, w = image.shape[:2]
        if regions is None:
            yield -1, 0, 0, image, self.det_size
            return
        boxes = np.asarray(regions, np.float64)
        if boxes.size == 0:
            return
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise DataError(f'regions must be (N, 4) [x1, y1, x2, y2] boxes, got shape '
                              f'{boxes.shape}')
        for index, (x1, y1, x2, y2) in enumerate(boxes):
            if not np.all(np.isfinite([x1, y1, x2, y2])):
                continue
            x0, y0 = int(np.clip(np.floor(x1), 0, w)), int(np.clip(np.floor(y1), 0, h))
            xe, ye = int(np.clip(np.ceil(x2), 0, w)), int(np.clip(np.ceil(y2), 0, h))
            if xe - x0 < 2 or ye - y0 < 2:
                continue
            crop = image[y0:ye, x0:xe]
            size = min(self.det_size, 2 * max(xe - x0, ye - y0))
            yield index, x0, y0, crop, max(size, 32)


def calibration_tensors(manifest: ModelManifest, images: Sequence[np.ndarray], *,
                        limit: int = 200, size: int = 0) -> list[np.ndarray]:
    """Model inputs of a text model for quantization calibration, made from photographs of
    text exactly as :class:`TextReader` makes them.

    - ``db_text``: one ``[1, 3, H, W]`` detection input per image (longest side ``size`` or
      the manifest's);
    - ``ctc_text`` / ``text_direction``: one ``[1, 3, h, w]`` input per text line that the
      embedded detector (FP32, ONNX Runtime) finds in the images, at most ``limit``.

    Args:
        manifest: the model to calibrate.
        images: (H, W, 3) uint8 BGR images with text.
        limit: most line tensors returned.
        size: detection input size (db_text); 0 = the manifest's.

    Raises:
        ModelError: a manifest that is not a text model.
    """
    if manifest.adapter not in SLOTS:
        raise ModelError(f'{manifest.name}: not a text model (adapter {manifest.adapter})')
    swap = manifest.color_order == 'rgb'
    if manifest.adapter == 'db_text':
        out = []
        for image in images:
            image = as_bgr8(image, 'calibration image')
            h, w = image.shape[:2]
            size_wh = scaled_input_size((w, h), size or max(manifest.input_size),
                                        manifest.options.size_multiple)
            out.append(_nchw(cv2.resize(image, size_wh), manifest, swap))
        return out
    tensors: list[np.ndarray] = []
    width, height = manifest.input_size
    with TextReader.create(backend='onnxruntime', device='cpu') as reader:
        for image in images:
            image = as_bgr8(image, 'calibration image')
            quads, _, _ = reader.detect(image)
            for quad in quads[reading_order(quads)]:
                crop = _channels(crop_quad(image, quad, height), swap)
                if manifest.adapter == 'text_direction':
                    tensor, _ = line_tensor([crop], height, width, manifest.mean, manifest.std,
                                            max_width=width, multiple=1)
                else:
                    tensor, _ = line_tensor([crop], height, crop.shape[1], manifest.mean,
                                            manifest.std, max_width=_MAX_LINE_WIDTH,
                                            multiple=manifest.options.size_multiple)
                tensors.append(tensor)
                if len(tensors) >= limit:
                    return tensors
    return tensors


#: recognition crops wider than this (pixels at the model's height) are squeezed to it.
_MAX_LINE_WIDTH = 2400


def _channels(crop: np.ndarray, swap_rb: bool) -> np.ndarray:
    return np.ascontiguousarray(crop[..., ::-1]) if swap_rb else crop


def _nchw(image: np.ndarray, manifest: ModelManifest, swap_rb: bool) -> np.ndarray:
    """(h, w, 3) uint8 BGR -> (1, 3, h, w) float32 normalised in the model's colour order."""
    h, w = image.shape[:2]
    tensor = np.empty((1, 3, h, w), np.float32)
    planes = cv2.split(image)
    if swap_rb:
        planes = planes[::-1]
    for c in range(3):
        scale = 1.0 / manifest.std[c]
        cv2.addWeighted(planes[c], scale, planes[c], 0.0, -manifest.mean[c] * scale,
                        dst=tensor[0, c], dtype=cv2.CV_32F)
    return tensor
