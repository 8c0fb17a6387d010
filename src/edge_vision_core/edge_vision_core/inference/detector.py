"""The detector: manifest + backend + adapter behind one ``detect(image)`` call.

Modelled on MediaPipe Tasks' ObjectDetector: an options dataclass, a factory
(:meth:`Detector.create`), one call per frame, ``close()`` and context-manager support. A ROS
node owns one Detector: it creates it in ``on_configure`` (so a bad model fails configure with
the reason), calls :meth:`Detector.detect` per image (or the three stages separately to overlap
capture and inference), and closes it in ``on_cleanup``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..config import check_config, param
from ..encodings import as_bgr8
from ..errors import ConfigError, ModelError
from ..types import Detections
from .adapters import Adapter, DecodeContext, finalize, get_adapter
from .backends import (
    BACKEND_FORMATS,
    PRECISIONS,
    Backend,
    BackendOptions,
    backend_class,
    create_backend,
)
from .letterbox import LetterboxTransform, apply_letterbox, compute_letterbox
from .manifest import ModelManifest, resolve_model, verify_checksum
from .nms import NMS_METHODS

__all__ = ['BACKEND_FORMATS', 'DetectionResult', 'Detector', 'DetectorOptions',
           'Postprocessed', 'PreparedInput', 'StageTimings']

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorOptions:
    """Settings of a :class:`Detector` (each field becomes a ROS parameter of inference_node).

    Thresholds left at -1 take the model manifest's value.
    """

    model: str = field(default='nanodet-m-416', metadata=param(
        'Model: a registered name (nanodet-m-416, the embedded default), a manifest YAML path, '
        "a model file with a sibling <stem>.yaml manifest, or 'auto': the configuration "
        '`edge-vision tune` chose for this device (model variant, backend, device, threads, '
        'workers), else the shipped INT8 variant nanodet-m-416-int8.', read_only=True))
    backend: str = field(default='onnxruntime', metadata=param(
        'Inference runtime: onnxruntime, openvino, litert or tensorrt (where installed).',
        read_only=True))
    device: str = field(default='auto', metadata=param(
        "Device of the backend (cpu, cuda, tensorrt | CPU, GPU, NPU, AUTO | cpu, edgetpu | "
        "cuda); 'auto' picks the backend's best device.", read_only=True))
    threads: int = field(default=0, metadata=param(
        'CPU inference threads; 0 lets the runtime decide.', min=0, max=256, read_only=True))
    precision: str = field(default='auto', metadata=param(
        'Precision hint (auto, fp32, fp16, bf16): fp16 picks an fp16 model file when the '
        'manifest has one and asks the runtime for it where the device supports it; auto keeps '
        'full precision on CPUs.', choices=PRECISIONS,
        read_only=True))
    score_threshold: float = field(default=-1.0, metadata=param(
        'Minimum detection score in [0, 1]; -1 uses the model manifest value.', min=-1.0,
        max=1.0))
    nms_threshold: float = field(default=-1.0, metadata=param(
        'IoU above which NMS suppresses a box of the same class, in [0, 1]; -1 uses the '
        'manifest value.', min=-1.0, max=1.0))
    max_detections: int = field(default=-1, metadata=param(
        'Keep at most this many detections per image (0 = no limit); -1 uses the manifest '
        'value.', min=-1, max=100000))
    class_agnostic_nms: bool = field(default=False, metadata=param(
        'Run NMS across classes (a box suppresses overlapping boxes of any class).'))
    nms_method: str = field(default='auto', metadata=param(
        'NMS implementation: auto, numpy or opencv (same results).', choices=NMS_METHODS))
    delegate: str = field(default='', metadata=param(
        'LiteRT only: external delegate library (e.g. libedgetpu.so.1).', read_only=True))
    cache_dir: str = field(default='', metadata=param(
        'Folder for compiled-model caches (OpenVINO, TensorRT provider); empty = none.',
        read_only=True))
    verify_checksum: bool = field(default=True, metadata=param(
        "Check the model file's SHA-256 against the manifest before loading.", read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.model.strip():
            raise ConfigError('DetectorOptions.model must name a model or a file')


@dataclass(frozen=True)
class StageTimings:
    """Wall-clock milliseconds of the three stages of one :meth:`Detector.detect` call."""

    pre_ms: float = 0.0
    infer_ms: float = 0.0
    post_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.pre_ms + self.infer_ms + self.post_ms


@dataclass(eq=False)
class DetectionResult:
    """What one image produced.

    Which fields are filled depends on what the model's adapter produces
    (``Detector.produces``).

    Attributes:
        detections: boxes in the input image's pixels (clipped), scores, class ids (indices
            into ``labels``); empty for models that produce no detections (segmentation).
            ``keypoints`` producers fill ``detections.keypoints``: (N, K, 2) float32
            ``(x, y)`` in the input image's pixels, row ``i`` belonging to detection ``i``
            (clipped to the image unless the adapter says otherwise,
            :attr:`~.adapters.Adapter.clip_keypoints`).
        labels: the model's class names (``labels[class_id]``).
        timings: pre-processing, inference and post-processing milliseconds.
        image_size: ``(width, height)`` of the input image.
        mask: ``mask`` producers (segmentation): (H, W) uint8 class id per input-image pixel.
        text: ``text`` producers: ``(text, confidence)`` per text read.
    """

    detections: Detections
    labels: tuple[str, ...]
    timings: StageTimings
    image_size: tuple[int, int]
    mask: np.ndarray | None = None
    text: tuple[tuple[str, float], ...] | None = None

    def class_names(self) -> list[str]:
        """The label of every detection (``str(class_id)`` when out of the label range)."""
        n = len(self.labels)
        return [self.labels[c] if 0 <= c < n else str(int(c))
                for c in self.detections.class_ids]


@dataclass
class PreparedInput:
    """Output of :meth:`Detector.preprocess`.

    Attributes:
        inputs: the model's input tensors (one image tensor), ready for :meth:`Detector.infer`.
        transform: the letterbox from the image to the model input (for the inverse).
        pre_ms: milliseconds the preprocessing took.
    """

    inputs: list[np.ndarray]
    transform: LetterboxTransform
    pre_ms: float = 0.0


@dataclass(eq=False)
class Postprocessed:
    """Output of :meth:`Detector.postprocess`: the decoded results in image pixels (see
    :class:`DetectionResult` for each field)."""

    detections: Detections
    mask: np.ndarray | None = None
    text: tuple[tuple[str, float], ...] | None = None


class Detector:
    """Object detector (or semantic segmenter) on one backend.

    Model contract (checked at creation against the manifest, errors name the file):

    - one image input of rank 4: ``[1, 3, H, W]`` (layout NCHW) or ``[1, H, W, 3]`` (NHWC),
      ``H, W`` = the manifest's ``input_size`` (or dynamic), float32 normalised as
      ``(pixel - mean) / std`` in the manifest's colour order, or uint8/int8 raw pixels for
      quantized models;
    - outputs as the manifest's adapter expects (see :mod:`.adapters`), with as many class
      scores as the manifest has labels.

    Coordinate frame: :meth:`detect` takes a ``bgr8`` (H, W, 3) uint8 image (mono8 (H, W) and
    bgra8 (H, W, 4) are converted) and returns boxes ``[x1, y1, x2, y2]`` in that image's
    pixels (corner coordinates, see :mod:`edge_vision_core.types`), clipped to the image; the
    letterbox is undone exactly.

    Use :meth:`create` (or :meth:`from_manifest`); the instance holds the runtime until
    :meth:`close`. One Detector serves one thread at a time (it reuses its input buffers); to
    overlap capture and inference, keep the newest frame aside and let one worker thread call
    :meth:`detect` (the runtimes release the GIL while they compute).
    """

    def __init__(self, manifest: ModelManifest, backend: Backend, options: DetectorOptions
                 ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.adapter: Adapter = get_adapter(manifest.adapter)
        self._closed = False
        m = manifest
        self.options = options
        self.update_options(options)
        self._input = backend.inputs[0] if backend.inputs else None
        self._check_contract()
        self._input_size = m.input_size
        dtype = self._input.dtype
        self._float_input = np.issubdtype(dtype, np.floating)
        channels = m.channels
        order = {'bgr': [0, 1, 2], 'rgb': [2, 1, 0], 'gray': [0]}[m.color_order]
        self._channel_order = order
        self._scale = (1.0 / np.asarray(m.std[:channels], np.float64)).tolist()
        self._offset = (-np.asarray(m.mean[:channels], np.float64)
                        / np.asarray(m.std[:channels], np.float64)).tolist()
        # the same for (h, w, c) float inputs: one scale when all channels share it, no offset
        # pass when there is none
        self._scale32 = np.float32(self._scale[0]) if len(set(self._scale)) == 1 else \
            np.asarray(self._scale, np.float32)
        self._offset32 = np.asarray(self._offset, np.float32) if any(self._offset) else None
        self._letterboxed: np.ndarray | None = None
        self._blob: np.ndarray | None = None
        self._batch_ready: dict[int, str] = {}
        #: why :meth:`detect_batch` runs images one by one ('' while batches run or untried).
        self.batch_note = ''
        self._cached_plan: tuple[tuple[int, int], LetterboxTransform] | None = None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def create(cls, options: DetectorOptions | None = None, **overrides: Any) -> Detector:
        """Resolve the model, load it into the backend and check the model contract.

        Args:
            options: settings (defaults: the embedded model on ONNX Runtime).
            **overrides: fields of DetectorOptions to replace, e.g. ``backend='openvino'``.

        Raises:
            ConfigError: invalid option values.
            BackendError: unknown/missing backend or unavailable device (lists what is here).
            ModelError: unknown model, missing/corrupt file, or a manifest that does not match
                the model (naming the file and the mismatch).
        """
        options = options or DetectorOptions()
        if overrides:
            from dataclasses import replace
            options = replace(options, **overrides)
        if options.model.strip().lower() == 'auto':
            options = _auto_options(options)
        return cls.from_manifest(resolve_model(options.model), options)

    @classmethod
    def from_manifest(cls, manifest: ModelManifest, options: DetectorOptions | None = None,
                      **overrides: Any) -> Detector:
        """Like :meth:`create` with an already loaded manifest (``options.model`` ignored)."""
        options = options or DetectorOptions()
        if overrides:
            from dataclasses import replace
            options = replace(options, **overrides)
        name = options.backend.strip().lower()
        backend_class(name)  # unknown / missing backend: fail before touching files
        model_file = manifest.pick_file(BACKEND_FORMATS[name], options.precision)
        if options.verify_checksum:
            verify_checksum(model_file)
        backend = create_backend(name, BackendOptions(
            model_path=str(model_file.path), device=options.device, threads=options.threads,
            precision=options.precision, delegate=options.delegate,
            cache_dir=options.cache_dir))
        try:
            return cls(manifest, backend, options)
        except BaseException:
            backend.close()
            raise

    # -- properties ---------------------------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def produces(self) -> frozenset[str]:
        """What the model's adapter produces (a subset of ``adapters.OUTPUT_KINDS``)."""
        return self.adapter.produces

    @property
    def is_segmentation(self) -> bool:
        """True when the model produces a per-pixel class mask."""
        return 'mask' in self.adapter.produces

    @property
    def input_size(self) -> tuple[int, int]:
        """``(width, height)`` of the model input."""
        return self._input_size

    @property
    def model_path(self) -> Path:
        return Path(self.backend.options.model_path)

    # -- the three stages ---------------------------------------------------------------------

    def preprocess(self, image: np.ndarray) -> PreparedInput:
        """Letterbox and normalise one image into the model's input tensor.

        The returned tensor lives in a buffer reused by the next call: run inference on it
        before preprocessing the next image (or copy it).
        """
        t0 = time.perf_counter()
        image = as_bgr8(image, 'detect() input', keep_mono=self.manifest.color_order == 'gray')
        h, w = image.shape[:2]
        plan = self._cached_plan
        if plan is None or plan[0] != (w, h):
            transform = compute_letterbox((w, h), self._input_size,
                                          keep_aspect=self.manifest.resize == 'letterbox')
            self._cached_plan = plan = ((w, h), transform)
        transform = plan[1]
        m = self.manifest
        if m.color_order == 'gray' and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxed = apply_letterbox(image, transform, pad_value=m.pad_value, out=self._letterboxed)
        self._letterboxed = boxed
        tensor = self._to_tensor(boxed)
        return PreparedInput([tensor], transform, (time.perf_counter() - t0) * 1e3)

    def infer(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run the backend on prepared inputs (releases the GIL inside the runtimes)."""
        self._check_open()
        return self.backend.run(inputs)

    def postprocess(self, outputs: list[np.ndarray], transform: LetterboxTransform
                    ) -> Postprocessed:
        """Decode raw outputs with the model's adapter and map them into image pixels."""
        decoded = self.adapter.decode(outputs, DecodeContext(
            self.manifest, self.score_threshold, tuple(self.backend.output_names),
            self.nms_threshold, self.max_detections))
        dets = Detections.empty()
        if decoded.candidates is not None:
            dets = finalize(decoded.candidates, transform, iou_threshold=self.nms_threshold,
                            max_detections=self.max_detections,
                            class_agnostic=self.options.class_agnostic_nms,
                            nms_method=self.options.nms_method,
                            clip_keypoints=self.adapter.clip_keypoints)
        mask = (None if decoded.mask is None
                else self.adapter.mask_to_image(decoded.mask, transform))
        return Postprocessed(dets, mask, decoded.text)

    def detect(self, image: np.ndarray) -> DetectionResult:
        """Detect objects in one image.

        Args:
            image: (H, W, 3) uint8 BGR (also (H, W) mono8 or (H, W, 4) BGRA).

        Returns:
            DetectionResult with detections in ``image``'s pixels and the stage timings.

        Raises:
            DataError: an image of another shape or dtype.
            BackendError: the detector was closed.
        """
        self._check_open()
        prepared = self.preprocess(image)
        t1 = time.perf_counter()
        outputs = self.backend.run(prepared.inputs)
        t2 = time.perf_counter()
        post = self.postprocess(outputs, prepared.transform)
        t3 = time.perf_counter()
        timings = StageTimings(prepared.pre_ms, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return DetectionResult(post.detections, self.labels, timings,
                               prepared.transform.src_size, post.mask, post.text)

    __call__ = detect

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[DetectionResult]:
        """Detect objects in several images with one inference call (e.g. the newest frame of
        each camera), where the backend and model can run a batch
        (:meth:`~.backends.Backend.prepare_batch`); otherwise one call per image, with the same
        results. :attr:`batch_note` says why a batch could not run.

        Args:
            images: (H, W, 3) uint8 BGR images (each as :meth:`detect` takes; sizes may differ).

        Returns:
            One DetectionResult per image, in order; each image's ``timings`` are its share of
            the batch (pre- and post-processing its own, inference the batch's divided by the
            batch size).
        """
        self._check_open()
        n = len(images)
        if n <= 1:
            return [self.detect(image) for image in images]
        reason = self._batch_ready.get(n)
        if reason is None:
            reason = self._batch_ready[n] = self.backend.prepare_batch(n)
            if reason and not self.batch_note:
                self.batch_note = reason
                _LOG.info('one inference call per image: %s', reason)
        if reason:
            return [self.detect(image) for image in images]
        prepared = []
        batch: np.ndarray | None = None
        for i, image in enumerate(images):
            item = self.preprocess(image)
            tensor = item.inputs[0]
            if batch is None:
                batch = np.empty((n, *tensor.shape[1:]), tensor.dtype)
            batch[i] = tensor[0]
            prepared.append(item)
        t1 = time.perf_counter()
        outputs = self.backend.run([batch])
        infer_ms = (time.perf_counter() - t1) * 1e3 / n
        results = []
        for i, item in enumerate(prepared):
            t2 = time.perf_counter()
            mine = [o[i:i + 1] if o.ndim and o.shape[0] == n else o for o in outputs]
            post = self.postprocess(mine, item.transform)
            timings = StageTimings(item.pre_ms, infer_ms, (time.perf_counter() - t2) * 1e3)
            results.append(DetectionResult(post.detections, self.labels, timings,
                                           item.transform.src_size, post.mask, post.text))
        return results

    def warmup(self, runs: int = 2) -> None:
        """Run a few dummy inferences so the first real frame does not pay for lazy set-up."""
        w, h = self._input_size
        blank = np.zeros((h, w, 3), np.uint8)
        for _ in range(runs):
            self.detect(blank)

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backend (model memory, device handles); safe to call twice."""
        if not self._closed:
            self._closed = True
            self.backend.close()

    def _check_open(self) -> None:
        if self._closed:
            from ..errors import BackendError
            raise BackendError('the detector was closed; create a new one')

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update_options(self, options: DetectorOptions) -> None:
        """Take the per-frame settings of ``options``: score and NMS thresholds, max
        detections (negative = the manifest's) and the NMS kind. The model, backend, device
        and threads stay those it was created with."""
        self.options = dataclasses.replace(
            self.options, score_threshold=options.score_threshold,
            nms_threshold=options.nms_threshold, max_detections=options.max_detections,
            class_agnostic_nms=options.class_agnostic_nms, nms_method=options.nms_method)
        m = self.manifest
        self.score_threshold = (m.score_threshold if options.score_threshold < 0
                                else options.score_threshold)
        self.nms_threshold = (m.nms_threshold if options.nms_threshold < 0
                              else options.nms_threshold)
        self.max_detections = (m.max_detections if options.max_detections < 0
                               else options.max_detections)

    def __repr__(self) -> str:
        return (f'Detector({self.manifest.name}, {self.backend.name}:{self.backend.device}, '
                f'{self.model_path.name})')

    # -- internals ----------------------------------------------------------------------------

    def _to_tensor(self, boxed: np.ndarray) -> np.ndarray:
        """(h, w[, c]) uint8 letterboxed BGR/gray -> the model's input tensor."""
        m = self.manifest
        h, w = boxed.shape[:2]
        if self._float_input and m.layout == 'NCHW':
            shape = (1, m.channels, h, w)
            if self._blob is None or self._blob.shape != shape:
                self._blob = np.empty(shape, np.float32)
            planes = [boxed] if boxed.ndim == 2 else cv2.split(boxed)
            # One fused pass per channel: x = pixel * (1/std) - mean/std, written in place.
            for c, source in enumerate(self._channel_order):
                cv2.addWeighted(planes[source], self._scale[c], planes[source], 0.0,
                                self._offset[c], dst=self._blob[0, c], dtype=cv2.CV_32F)
            tensor = self._blob
        else:
            # (h, w, c) in the model's channel order: BGR and gray need no reordering.
            if boxed.ndim == 2:
                hwc = boxed[..., None]
            elif self._channel_order == list(range(boxed.shape[2])):
                hwc = boxed
            else:
                planes = cv2.split(boxed)
                hwc = cv2.merge([planes[i] for i in self._channel_order])
            if not self._float_input:
                tensor = hwc.transpose(2, 0, 1)[None] if m.layout == 'NCHW' else hwc[None]
                return np.ascontiguousarray(tensor, self._input.dtype)
            tensor = hwc.astype(np.float32) * self._scale32
            if self._offset32 is not None:
                tensor += self._offset32
            tensor = tensor[None]
        if tensor.dtype != self._input.dtype:
            tensor = tensor.astype(self._input.dtype)
        return tensor

    def _check_contract(self) -> None:
        """The manifest and the loaded model agree on input and outputs (ModelError if not)."""
        m, b = self.manifest, self.backend
        where = f'model {self.model_path} (manifest {m.source})'
        if len(b.inputs) != 1:
            raise ModelError(f'{where}: expected one image input, the model has '
                             f'{len(b.inputs)} ({[t.name for t in b.inputs]})')
        shape = b.inputs[0].shape
        if len(shape) != 4:
            raise ModelError(f'{where}: the image input must have rank 4 ([1, C, H, W] or '
                             f'[1, H, W, C]), the model input {b.inputs[0].name!r} has shape '
                             f'{list(shape)} (rank {len(shape)})')
        c, hh, ww = (shape[1], shape[2], shape[3]) if m.layout == 'NCHW' else (
            shape[3], shape[1], shape[2])
        if c is not None and c != m.channels:
            other = 'NHWC' if m.layout == 'NCHW' else 'NCHW'
            raise ModelError(f'{where}: layout {m.layout} with color_order {m.color_order} '
                             f'needs {m.channels} channels, the model input has shape '
                             f'{list(shape)}; is the layout {other}?')
        w, h = m.input_size
        if (hh is not None and hh != h) or (ww is not None and ww != w):
            raise ModelError(f'{where}: input_size is {w}x{h} but the model input is '
                             f'{ww}x{hh} (shape {list(shape)}); fix input_size')
        problem = self.adapter.check_outputs([t.shape for t in b.outputs], m)
        if problem:
            raise ModelError(f'{where}: {problem}')


def _auto_options(options: DetectorOptions) -> DetectorOptions:
    """``model: auto`` for one detector: the first worker of
    :func:`edge_vision_core.optimize.tune.plan_inference`."""
    from dataclasses import replace

    from ..optimize.tune import plan_inference

    spec = plan_inference('auto', options.backend, options.device, options.threads,
                          options.precision, workers=1).workers[0]
    return replace(options, model=spec.model, backend=spec.backend, device=spec.device,
                   threads=spec.threads, precision=spec.precision or options.precision)

