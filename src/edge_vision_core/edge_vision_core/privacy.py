"""Privacy: hide faces and/or whole persons before an image leaves the device, failing closed.

Two layers:

- pure functions that anonymize regions of a bgr8/mono8 image in place:
  :func:`anonymize_boxes` (rectangles, grown by a margin) and :func:`anonymize_mask` (a
  boolean mask, dilated), by ``blur``, ``pixelate`` or ``fill``;
- :class:`PrivacyFilter`: finds what to hide (a face detector, a person segmenter and/or a
  person detector, or results handed in by the caller) and returns either the anonymized image
  or **no image**. It fails closed: a model that is not loaded, an exception anywhere (model,
  decoding, anonymizing), an image it cannot read, a mask of another size than the image or
  with class ids its labels do not know, a face box that is not finite -> the result is
  *withheld* (``result.image is None``) with the reason, and counted in :attr:`PrivacyFilter.
  stats`. It never returns the unfiltered input. An image with nothing to hide is returned
  (as a copy): that is a filtered image.

``strength`` is the size of the smallest detail that survives, as a fraction of the region's
shorter side: the pixel blocks of ``pixelate`` are that large, the Gaussian of ``blur`` has
half that sigma (it removes detail of about the same size). 0.25 leaves about 4 x 4 blocks on
a face. ``fill`` paints the region with ``fill_color``. For masks the region is the bounding
box of the mask's pixels.

Use (the ``edge-vision anonymize`` command and the privacy stage do this)::

    with PrivacyFilter.create(PrivacyConfig(hide='faces', method='pixelate')) as privacy:
        result = privacy.apply(image)
        if result.withheld:
            log(result.reason)          # publish nothing
        else:
            publish(result.image)
"""

from __future__ import annotations

import collections
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .config import check_config, param
from .errors import ConfigError, ConversionError, EdgeVisionError, ModelError
from .segmentation import check_class_mask
from .types import Detections

__all__ = [
    'HIDE_TARGETS',
    'METHODS',
    'PERSON_SOURCES',
    'PrivacyConfig',
    'PrivacyFilter',
    'PrivacyResult',
    'PrivacyStats',
    'anonymize_boxes',
    'anonymize_mask',
    'detail_kept',
    'detect_tiled',
    'expand_boxes',
]

HIDE_TARGETS = ('faces', 'persons', 'faces+persons')
METHODS = ('blur', 'pixelate', 'fill')
PERSON_SOURCES = ('mask', 'boxes', 'mask+boxes')


@dataclass(frozen=True)
class PrivacyConfig:
    """What the privacy filter hides and how (each field is a parameter of the privacy stage)."""

    hide: str = field(default='faces', metadata=param(
        'What to hide: faces (a face detector), persons (whole people: a person mask and/or '
        'person boxes) or faces+persons.', choices=HIDE_TARGETS))
    method: str = field(default='blur', metadata=param(
        'How: blur (Gaussian), pixelate (large blocks) or fill (solid colour).',
        choices=METHODS))
    strength: float = field(default=0.25, metadata=param(
        'Size of the smallest detail that survives, as a fraction of the region\'s shorter '
        'side (pixel block size; blur sigma is half of it). Ignored by fill.', min=0.02,
        max=1.0))
    margin: float = field(default=0.3, metadata=param(
        'Boxes grow by this fraction of their width/height on every side before hiding (face '
        'boxes are tight: hair, ears and chin lie outside).', min=0.0, max=2.0))
    mask_dilation: float = field(default=0.01, metadata=param(
        'Person masks grow by this fraction of the image\'s shorter side (the mask is coarser '
        'than the image).', min=0.0, max=0.2))
    min_score: float = field(default=0.4, metadata=param(
        'Hide faces and person boxes with at least this score (lower hides more, including '
        'false alarms).', min=0.0, max=1.0))
    face_tiles: int = field(default=2, metadata=param(
        'Also run the face detector on an N x N grid of overlapping tiles (besides the whole '
        'frame), so small faces reach the model at a size it sees: 2 finds most 32-48 px faces '
        'in a VGA frame, at 5 detector runs per frame instead of 1 (0 or 1: whole frame only).',
        min=0, max=6))
    fill_color: tuple[int, ...] = field(default=(0, 0, 0), metadata=param(
        'BGR colour of method fill (mono8 images use the first value).', min=0, max=255))
    face_model: str = field(default='face', metadata=param(
        'Face detector: a registered model (face = face-full, face-short) or a manifest.',
        read_only=True))
    person_source: str = field(default='mask', metadata=param(
        'Where persons come from: mask (a segmentation model\'s person pixels), boxes (a '
        'detector\'s person boxes) or mask+boxes (both, their union).', choices=PERSON_SOURCES,
        read_only=True))
    person_model: str = field(default='selfie-segmentation', metadata=param(
        'Person segmentation model (person_source mask).', read_only=True))
    person_box_model: str = field(default='nanodet-m-416', metadata=param(
        'Person detector (person_source boxes).', read_only=True))
    person_class: str = field(default='person', metadata=param(
        'Class name of persons in the segmentation and detection labels.', read_only=True))
    backend: str = field(default='onnxruntime', metadata=param(
        'Inference runtime of the privacy models.', read_only=True))
    device: str = field(default='auto', metadata=param(
        'Device of the backend.', read_only=True))
    threads: int = field(default=0, metadata=param(
        'CPU inference threads (0 = the runtime decides).', min=0, max=256, read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        if len(self.fill_color) != 3:
            raise ConfigError(f'PrivacyConfig.fill_color must be three values (B, G, R), got '
                              f'{list(self.fill_color)}')
        if not self.person_class.strip():
            raise ConfigError('PrivacyConfig.person_class must name a class, e.g. person')

    @property
    def hides_faces(self) -> bool:
        return 'faces' in self.hide

    @property
    def hides_persons(self) -> bool:
        return 'persons' in self.hide


# -- anonymizing (pure functions) ------------------------------------------------------------

def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        shape = getattr(image, 'shape', None)
        dtype = getattr(image, 'dtype', type(image).__name__)
        raise ConversionError(f'privacy filter needs a non-empty bgr8 (H, W, 3) or mono8 (H, W) '
                              f'uint8 image, got {dtype} {shape}')
    return image


def expand_boxes(boxes: np.ndarray, margin: float, image_size: tuple[int, int]) -> np.ndarray:
    """(N, 4) int32 pixel ranges ``[x1, y1, x2, y2)``: boxes grown by ``margin`` x their size on
    every side, rounded outwards and clipped to the image.

    Raises:
        ConversionError: a box that is not finite (it cannot be hidden).
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not np.all(np.isfinite(b)):
        raise ConversionError('a region to hide has a non-finite box (NaN/inf): cannot hide it')
    wh = np.maximum(b[:, 2:] - b[:, :2], 0.0)
    grown = np.concatenate([b[:, :2] - wh * margin, b[:, 2:] + wh * margin], axis=1)
    out = np.concatenate([np.floor(grown[:, :2]), np.ceil(grown[:, 2:])], axis=1)
    width, height = image_size
    out[:, 0::2] = np.clip(out[:, 0::2], 0, width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, height)
    return out.astype(np.int32)


def _obscure(patch: np.ndarray, method: str, strength: float,
             fill_color: tuple[int, ...]) -> np.ndarray:
    """An anonymized copy of a (h, w[, 3]) uint8 patch."""
    h, w = patch.shape[:2]
    if method == 'fill':
        color = fill_color if patch.ndim == 3 else fill_color[:1]
        return np.broadcast_to(np.asarray(color, np.uint8), patch.shape).copy()
    detail = max(2.0, strength * min(h, w))
    if method == 'pixelate':
        small = (max(1, int(round(w / detail))), max(1, int(round(h / detail))))
        tiny = cv2.resize(patch, small, interpolation=cv2.INTER_AREA)
        return cv2.resize(tiny, (w, h), interpolation=cv2.INTER_NEAREST)
    if method == 'blur':
        # a Gaussian of sigma detail / 2, computed on a shrunken copy (same result, far fewer
        # operations for large sigmas): shrink so the sigma is 2 px, blur, enlarge
        sigma = detail / 2
        factor = max(1.0, sigma / 2)
        small = (max(1, int(round(w / factor))), max(1, int(round(h / factor))))
        tiny = cv2.resize(patch, small, interpolation=cv2.INTER_AREA) if factor > 1 else patch
        tiny = cv2.GaussianBlur(tiny, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(tiny, (w, h), interpolation=cv2.INTER_LINEAR) if factor > 1 else tiny
    raise ConfigError(f"Invalid privacy method {method!r}, expecting one of {list(METHODS)}")


def anonymize_boxes(image: np.ndarray, boxes: np.ndarray, *, method: str = 'blur',
                    strength: float = 0.25, margin: float = 0.25,
                    fill_color: tuple[int, ...] = (0, 0, 0)) -> int:
    """Anonymize rectangles of ``image`` in place.

    Args:
        image: (H, W, 3) bgr8 or (H, W) mono8, modified in place.
        boxes: (N, 4) ``[x1, y1, x2, y2]`` in the image's pixels.
        method, strength, margin, fill_color: see :class:`PrivacyConfig`.

    Returns:
        The number of non-empty regions hidden.

    Raises:
        ConversionError: an image of another kind, or a non-finite box.
        ConfigError: an unknown method.
    """
    _check_image(image)
    height, width = image.shape[:2]
    done = 0
    for x1, y1, x2, y2 in expand_boxes(boxes, margin, (width, height)).tolist():
        if x2 > x1 and y2 > y1:
            image[y1:y2, x1:x2] = _obscure(image[y1:y2, x1:x2], method, strength, fill_color)
            done += 1
    return done


def anonymize_mask(image: np.ndarray, mask: np.ndarray, *, method: str = 'blur',
                   strength: float = 0.25, dilation_px: int = 0,
                   fill_color: tuple[int, ...] = (0, 0, 0)) -> int:
    """Anonymize the pixels of a boolean mask in place (the mask's bounding box is the region
    the strength refers to).

    Args:
        image: (H, W, 3) bgr8 or (H, W) mono8, modified in place.
        mask: (H, W) bool (or 0/non-0) of the same size.
        dilation_px: grow the mask by this many pixels first.

    Returns:
        The number of pixels hidden.

    Raises:
        ConversionError: an image of another kind or a mask of another size.
    """
    _check_image(image)
    m = np.asarray(mask)
    if m.shape != image.shape[:2]:
        raise ConversionError(f'the mask to hide is {m.shape[1]}x{m.shape[0]} but the image is '
                              f'{image.shape[1]}x{image.shape[0]}')
    m = m.astype(np.uint8) if m.dtype != np.uint8 else m
    if dilation_px > 0:
        size = 2 * int(dilation_px) + 1
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    ys, xs = np.nonzero(m)
    if not len(ys):
        return 0
    y1, y2, x1, x2 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    region = image[y1:y2, x1:x2]
    hidden = _obscure(region, method, strength, fill_color)
    inside = m[y1:y2, x1:x2] != 0
    np.copyto(region, hidden, where=inside[..., None] if region.ndim == 3 else inside)
    return int(len(ys))


def detail_kept(original: np.ndarray, filtered: np.ndarray, box: Any = None
                ) -> tuple[float, float]:
    """How much fine detail of ``original`` is left in ``filtered`` (in ``box``, else all).

    Returns:
        ``(variance ratio, correlation)``: the variance of the Laplacian of ``filtered`` over
        that of ``original`` (1 = as sharp; blur and fill drive it to 0, but pixelation's
        block edges keep it high), and the correlation of the two Laplacians (1 = the same
        fine detail, 0 = none of the original's left: meaningful for every method).
    """
    def laplacian(image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        if box is not None:
            x1, y1, x2, y2 = (int(round(float(v))) for v in box)
            gray = gray[y1:y2, x1:x2]
        return cv2.Laplacian(gray, cv2.CV_64F)

    a, b = laplacian(original), laplacian(filtered)
    var_a = float(a.var())
    ratio = float(b.var()) / var_a if var_a > 0 else 0.0
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return ratio, float((a * b).sum()) / norm if norm > 0 else 0.0


def detect_tiled(detector: Any, image: np.ndarray, tiles: int, overlap: float = 0.25,
                 iou_threshold: float = 0.3) -> Detections:
    """A single-class detector run on the whole image and on a ``tiles`` x ``tiles`` grid of
    overlapping tiles, merged by weighted NMS: small objects reach the model larger.

    Tiles that would be smaller than the model's input are not run (nothing to gain). Boxes and
    keypoints come back in the image's pixels; the score of a merged box is its best score.

    Args:
        detector: an :class:`edge_vision_core.inference.Detector` (one class, e.g. faces).
        image: the image the detector takes.
        tiles: grid size N (N x N tiles); 0 or 1 runs the whole image only.
        overlap: fraction of a tile shared with its neighbour.
        iou_threshold: weighted-NMS merge threshold.
    """
    from .inference.nms import weighted_nms

    parts = [detector.detect(image).detections]
    if tiles <= 1:
        return parts[0]
    height, width = image.shape[:2]
    tw = int(np.ceil(width / (tiles - (tiles - 1) * overlap)))
    th = int(np.ceil(height / (tiles - (tiles - 1) * overlap)))
    in_w, in_h = detector.input_size
    if tw < in_w and th < in_h:
        return parts[0]
    for row in range(tiles):
        for col in range(tiles):
            x = int(round(col * (width - tw) / (tiles - 1)))
            y = int(round(row * (height - th) / (tiles - 1)))
            found = detector.detect(image[y:y + th, x:x + tw]).detections
            points = None if found.keypoints is None else found.keypoints + [x, y]
            parts.append(found.replace(boxes=found.boxes + [x, y, x, y], keypoints=points))
    merged = Detections.concatenate(parts)
    extras = () if merged.keypoints is None else (merged.keypoints,)
    boxes, scores, extra = weighted_nms(merged.boxes, merged.scores, iou_threshold, extras)
    return Detections(boxes, scores, np.zeros(len(scores), np.int32),
                      keypoints=extra[0] if extra else None)


# -- the filter --------------------------------------------------------------------------------

@dataclass
class PrivacyResult:
    """What :meth:`PrivacyFilter.apply` made of one image.

    Attributes:
        image: the anonymized image (a new array), or None when the image is withheld.
        reason: why it was withheld ('' when it was not).
        faces: face regions hidden.
        person_boxes: person boxes hidden.
        person_pixels: person-mask pixels hidden.
        timings: milliseconds: ``models`` (the detectors this filter ran), ``faces`` and
            ``persons`` (each step, its model included), ``total``.
    """

    image: np.ndarray | None
    reason: str = ''
    faces: int = 0
    person_boxes: int = 0
    person_pixels: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def withheld(self) -> bool:
        return self.image is None


@dataclass
class PrivacyStats:
    """Counters of a :class:`PrivacyFilter` (for diagnostics)."""

    frames: int = 0
    passed: int = 0
    withheld: int = 0
    reasons: collections.Counter = field(default_factory=collections.Counter)
    last_reason: str = ''


class PrivacyFilter:
    """Hides faces and/or persons, or withholds the image (see the module docstring).

    Models: a face detector (``hide`` with faces), a person segmenter (``person_source`` with
    mask) and a person detector (with boxes), each an
    :class:`edge_vision_core.inference.Detector`. :meth:`create` loads the ones ``config``
    needs; the constructor takes them ready-made (or None). For every model, results computed
    elsewhere can be handed to :meth:`apply` instead (a pipeline whose inference stage already
    ran the face model): given results win, a missing model with no given results withholds.

    One filter serves one thread at a time (its detectors do). ``close()`` releases the models
    it owns; after it every image is withheld.
    """

    def __init__(self, config: PrivacyConfig | None = None, *, face_detector: Any = None,
                 person_segmenter: Any = None, person_detector: Any = None,
                 owns_models: bool = False) -> None:
        self.config = config or PrivacyConfig()
        self.face_detector = face_detector
        self.person_segmenter = person_segmenter
        self.person_detector = person_detector
        self._owns = owns_models
        self.stats = PrivacyStats()

    @classmethod
    def create(cls, config: PrivacyConfig | None = None, **overrides: Any) -> PrivacyFilter:
        """Load the models ``config`` needs (on ``config.backend``).

        Raises:
            ConfigError, ModelError, BackendError: a bad setting or a model that does not load
                (missing, corrupt, unknown): the caller must not run without its filter.
        """
        from .inference import Detector, DetectorOptions

        config = config or PrivacyConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        loaded: dict[str, Any] = {}

        def load(key: str, model: str, score: float) -> None:
            loaded[key] = Detector.create(DetectorOptions(
                model=model, backend=config.backend, device=config.device,
                threads=config.threads, score_threshold=score))

        try:
            if config.hides_faces:
                load('face_detector', config.face_model, config.min_score)
            if config.hides_persons and 'mask' in config.person_source:
                load('person_segmenter', config.person_model, -1.0)
                cls._check_labels(loaded['person_segmenter'], config, 'person_model')
            if config.hides_persons and 'boxes' in config.person_source:
                load('person_detector', config.person_box_model, config.min_score)
                cls._check_labels(loaded['person_detector'], config, 'person_box_model')
        except BaseException:
            for detector in loaded.values():
                detector.close()
            raise
        return cls(config, owns_models=True, **loaded)

    @staticmethod
    def _check_labels(detector: Any, config: PrivacyConfig, key: str) -> None:
        if config.person_class not in detector.labels:
            raise ModelError(f'{key} {detector.manifest.name!r} has no class '
                             f'{config.person_class!r} (its labels: '
                             f'{", ".join(detector.labels[:10])}...); choose a person model or '
                             f'set person_class')

    # -- per image -------------------------------------------------------------------------

    def apply(self, image: np.ndarray, *, faces: Detections | None = None,
              person_mask: np.ndarray | None = None,
              mask_labels: tuple[str, ...] | list[str] | None = None,
              persons: Detections | None = None,
              person_labels: tuple[str, ...] | list[str] | None = None) -> PrivacyResult:
        """Anonymize one image, or withhold it.

        Args:
            image: (H, W, 3) bgr8 or (H, W) mono8 uint8; never modified.
            faces: face detections of this image (boxes in its pixels) computed elsewhere;
                None runs the filter's face detector.
            person_mask: (H, W) class mask of this image computed elsewhere; None runs the
                filter's segmenter.
            mask_labels: the class names of ``person_mask`` (default: the segmenter's).
            persons: detections of this image computed elsewhere (persons are those of class
                ``person_class``); None runs the filter's person detector.
            person_labels: the class names of ``persons`` (default: the detector's).

        Returns:
            The result: the anonymized copy, or ``image=None`` with the reason.
        """
        self.stats.frames += 1
        t0 = time.perf_counter()
        timings: dict[str, float] = {'models': 0.0}
        try:
            source = _check_image(image)
            out = source.copy()
            cfg = self.config
            n_faces = n_boxes = n_pixels = 0
            if cfg.hides_faces:
                t = time.perf_counter()
                found = faces if faces is not None else self._run(
                    'face_detector', source, 'face', timings)
                keep = found.scores >= cfg.min_score
                n_faces = anonymize_boxes(out, found.boxes[keep], method=cfg.method,
                                          strength=cfg.strength, margin=cfg.margin,
                                          fill_color=cfg.fill_color)
                timings['faces'] = (time.perf_counter() - t) * 1e3
            if cfg.hides_persons:
                t = time.perf_counter()
                if 'mask' in cfg.person_source:
                    n_pixels = self._hide_mask(out, source, person_mask, mask_labels, timings)
                if 'boxes' in cfg.person_source:
                    n_boxes = self._hide_person_boxes(out, source, persons, person_labels,
                                                      timings)
                timings['persons'] = (time.perf_counter() - t) * 1e3
        except Exception as exc:  # fail closed: whatever went wrong, nothing leaves
            reason = str(exc) if isinstance(exc, EdgeVisionError) else \
                f'{type(exc).__name__}: {exc}'
            self.stats.withheld += 1
            self.stats.reasons[type(exc).__name__] += 1
            self.stats.last_reason = reason
            timings['total'] = (time.perf_counter() - t0) * 1e3
            return PrivacyResult(None, reason, timings=timings)
        self.stats.passed += 1
        timings['total'] = (time.perf_counter() - t0) * 1e3
        return PrivacyResult(out, '', n_faces, n_boxes, n_pixels, timings)

    def _run(self, key: str, image: np.ndarray, what: str, timings: dict[str, float]) -> Any:
        """Run one of the filter's models (faces on tiles too): Detections, or the class mask
        of the segmenter."""
        detector = getattr(self, key)
        if detector is None:
            raise ModelError(f'no {what} model is loaded ({key} is None: not created, failed to '
                             f'load or closed) and no {what} results were given')
        t = time.perf_counter()
        if key == 'face_detector':
            result = detect_tiled(detector, image, self.config.face_tiles)
        elif key == 'person_segmenter':
            result = detector.detect(image).mask
        else:
            result = detector.detect(image).detections
        timings['models'] += (time.perf_counter() - t) * 1e3
        return result

    def _labels(self, given: Any, key: str, what: str) -> Any:
        """The labels handed in, else those of the model ``key``."""
        if given is not None:
            return given
        detector = getattr(self, key)
        if detector is None:
            raise ConversionError(f'{what} was given without its labels')
        return detector.labels

    def _hide_mask(self, out: np.ndarray, source: np.ndarray, mask: np.ndarray | None,
                   labels: tuple[str, ...] | list[str] | None,
                   timings: dict[str, float]) -> int:
        cfg = self.config
        if mask is None:
            mask = self._run('person_segmenter', source, 'person segmentation', timings)
            if mask is None:
                raise ModelError('the person segmentation model returned no mask: it is not a '
                                 'segmentation model')
        labels = self._labels(labels, 'person_segmenter', 'a person mask')
        height, width = source.shape[:2]
        mask = check_class_mask(mask, (width, height), len(labels))
        ids = [i for i, name in enumerate(labels) if name == cfg.person_class]
        if not ids:
            raise ConversionError(f'the mask labels have no class {cfg.person_class!r}: '
                                  f'{list(labels)[:10]}')
        dilation = int(round(cfg.mask_dilation * min(height, width)))
        return anonymize_mask(out, np.isin(mask, ids), method=cfg.method, strength=cfg.strength,
                              dilation_px=dilation, fill_color=cfg.fill_color)

    def _hide_person_boxes(self, out: np.ndarray, source: np.ndarray,
                           persons: Detections | None,
                           labels: tuple[str, ...] | list[str] | None,
                           timings: dict[str, float]) -> int:
        cfg = self.config
        if persons is None:
            persons = self._run('person_detector', source, 'person detection', timings)
        labels = self._labels(labels, 'person_detector', 'person detections')
        ids = [i for i, name in enumerate(labels) if name == cfg.person_class]
        keep = np.isin(persons.class_ids, ids) & (persons.scores >= cfg.min_score)
        return anonymize_boxes(out, persons.boxes[keep], method=cfg.method,
                               strength=cfg.strength, margin=cfg.margin,
                               fill_color=cfg.fill_color)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Release the models this filter loaded; later images are withheld."""
        for key in ('face_detector', 'person_segmenter', 'person_detector'):
            detector = getattr(self, key)
            setattr(self, key, None)
            if detector is not None and self._owns:
                detector.close()

    def __enter__(self) -> PrivacyFilter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        cfg = self.config
        return (f'PrivacyFilter(hide={cfg.hide}, method={cfg.method}, '
                f'strength={cfg.strength}, withheld {self.stats.withheld}/{self.stats.frames})')
