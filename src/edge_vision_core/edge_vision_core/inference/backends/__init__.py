"""Inference backends behind one ABC, and the explicit registry that names them.

``BACKENDS`` maps a name to its class; :func:`create_backend` builds one with errors that list
what is available here, and :func:`available_backends` reports installed runtimes with their
devices (what ``edge-vision detect --list-backends`` prints). ``BACKEND_FORMATS`` says which
manifest file formats each backend reads, derived from the classes' ``suffixes``.
"""

from __future__ import annotations

from ...errors import BackendError, DeviceUnavailableError
from .base import PRECISIONS, Backend, BackendOptions, TensorSpec
from .litert_backend import LiteRtBackend
from .onnxruntime_backend import OnnxRuntimeBackend
from .openvino_backend import OpenVinoBackend
from .tensorrt_backend import TensorRtBackend

__all__ = [
    'BACKENDS',
    'BACKEND_FORMATS',
    'PRECISIONS',
    'Backend',
    'BackendOptions',
    'LiteRtBackend',
    'OnnxRuntimeBackend',
    'OpenVinoBackend',
    'TensorRtBackend',
    'TensorSpec',
    'available_backends',
    'backend_class',
    'create_backend',
]

#: Every backend edge_vision knows, installed here or not.
BACKENDS: dict[str, type[Backend]] = {
    'onnxruntime': OnnxRuntimeBackend,
    'openvino': OpenVinoBackend,
    'litert': LiteRtBackend,
    'tensorrt': TensorRtBackend,
}

#: ``{backend: manifest formats it reads, in order of preference}``, from ``Backend.suffixes``.
BACKEND_FORMATS: dict[str, tuple[str, ...]] = {name: cls.formats()
                                               for name, cls in BACKENDS.items()}


def available_backends() -> dict[str, tuple[str, ...]]:
    """``{name: devices}`` of the backends whose runtime is installed here (imports them)."""
    return {name: cls.devices() for name, cls in BACKENDS.items() if cls.is_installed()}


def _describe_available() -> str:
    found = available_backends()
    if not found:
        return 'none is installed (pip install onnxruntime, openvino or ai-edge-litert)'
    return '; '.join(f'{name} ({", ".join(devs) or "no device"})' for name, devs in found.items())


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under ``name``.

    Raises:
        BackendError: unknown name (listing the known and the installed ones) or a runtime that
            is not installed here.
    """
    key = name.strip().lower()
    if key not in BACKENDS:
        raise BackendError(f'unknown backend {name!r}, expecting one of {list(BACKENDS)}; '
                           f'installed here: {_describe_available()}')
    cls = BACKENDS[key]
    if not cls.is_installed():
        raise BackendError(f'backend {key!r} is not installed here ({cls.install_hint}); '
                           f'installed here: {_describe_available()}')
    return cls


def create_backend(name: str, options: BackendOptions) -> Backend:
    """Load ``options.model_path`` into the backend ``name`` on ``options.device``.

    Raises:
        BackendError: unknown or missing backend, or a device not available here (the message
            lists the backends and devices that are).
        ModelError: the model file is missing, corrupt or not readable by that backend.
    """
    cls = backend_class(name)
    try:
        return cls(options)
    except DeviceUnavailableError as exc:
        raise DeviceUnavailableError(f'{exc}. Installed here: {_describe_available()}'
                                     ) from exc
