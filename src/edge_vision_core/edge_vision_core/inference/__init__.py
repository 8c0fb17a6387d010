"""Inference: backends per accelerator, model adapters/decoders, letterbox, NMS, model manifests.

The parts, each usable on its own:

- :mod:`.backends`: ``Backend`` ABC and the ``BACKENDS`` registry (onnxruntime, openvino,
  litert, tensorrt), runtimes imported lazily; ``BACKEND_FORMATS`` (what each reads);
- :mod:`.letterbox`: aspect-preserving resize and its exact inverse;
- :mod:`.nms`: class-aware NMS (NumPy and OpenCV 4.5+ implementations) and weighted NMS;
- :mod:`.adapters`: the ``ADAPTERS`` table of model families (NanoDet, YOLOv5/v8/v11,
  end-to-end NMS exports, TFLite SSD, semantic segmentation, MediaPipe BlazeFace faces with
  keypoints): each entry's manifest options, output contract and pure decoder;
  ``register_adapter`` adds one;
- :mod:`.manifest`: the per-model YAML and the registry of shipped models;
- :mod:`.detector`: ``Detector`` = manifest + backend + adapter, ``detect(image)`` per frame.

Importing this package imports no inference runtime.
"""

from __future__ import annotations

from .adapters import (
    ADAPTERS,
    OUTPUT_KINDS,
    Adapter,
    Candidates,
    DecodeContext,
    Decoded,
    finalize,
    get_adapter,
    register_adapter,
)
from .backends import (
    BACKEND_FORMATS,
    BACKENDS,
    Backend,
    BackendOptions,
    TensorSpec,
    available_backends,
    create_backend,
)
from .detector import DetectionResult, Detector, DetectorOptions, PreparedInput, StageTimings
from .letterbox import LetterboxTransform, compute_letterbox, letterbox, mask_to_image
from .manifest import ModelFile, ModelManifest, list_models, load_manifest, resolve_model
from .nms import batched_nms

__all__ = [
    'ADAPTERS',
    'BACKENDS',
    'BACKEND_FORMATS',
    'OUTPUT_KINDS',
    'Adapter',
    'Backend',
    'BackendOptions',
    'Candidates',
    'DecodeContext',
    'Decoded',
    'DetectionResult',
    'Detector',
    'DetectorOptions',
    'LetterboxTransform',
    'ModelFile',
    'ModelManifest',
    'PreparedInput',
    'StageTimings',
    'TensorSpec',
    'available_backends',
    'batched_nms',
    'compute_letterbox',
    'create_backend',
    'finalize',
    'get_adapter',
    'letterbox',
    'list_models',
    'load_manifest',
    'mask_to_image',
    'register_adapter',
    'resolve_model',
]
