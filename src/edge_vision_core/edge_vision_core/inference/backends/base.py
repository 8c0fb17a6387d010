"""The backend contract: one small ABC that every inference runtime implements.

A backend owns one loaded model on one device. It is created once (loading can take seconds),
then :meth:`Backend.run` is called per frame with the input arrays and returns the outputs as
NumPy arrays in the model's output order; :meth:`Backend.close` releases the runtime's memory
and device handles (also on ``with`` exit). Runtimes are imported inside the backend's methods,
never at import time, so importing this package costs nothing.

Devices are named per runtime (case-insensitive): ``cpu``, ``cuda``, ``tensorrt`` (ONNX Runtime);
``CPU``, ``GPU``, ``NPU``, ``AUTO`` (OpenVINO); ``cpu``, ``edgetpu`` (LiteRT); ``cuda``
(TensorRT). ``auto`` always means the best device the backend has here.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...config import check_config, param
from ...errors import BackendError, ConfigError, DeviceUnavailableError, ModelError
from ..manifest import FORMATS

__all__ = ['PRECISIONS', 'Backend', 'BackendOptions', 'TensorSpec']

_LOG = logging.getLogger(__name__)

PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')


@dataclass(frozen=True)
class BackendOptions:
    """How to load a model into a backend.

    Attributes are ROS-parameter friendly scalars; see each field's description.
    """

    model_path: str = field(default='', metadata=param(
        'Path of the model file (.onnx, .xml/.bin OpenVINO IR, .tflite, .engine/.plan).',
        read_only=True))
    device: str = field(default='auto', metadata=param(
        "Device to run on, as the backend names it (cpu, cuda, tensorrt; CPU, GPU, NPU, AUTO; "
        "edgetpu); 'auto' picks the backend's best device here.", read_only=True))
    threads: int = field(default=0, metadata=param(
        'CPU threads for inference; 0 lets the runtime decide.', min=0, max=256,
        read_only=True))
    precision: str = field(default='auto', metadata=param(
        'Precision hint: auto (full precision on CPUs, the device default elsewhere), fp32, '
        'fp16 (OpenVINO GPU/NPU, TensorRT, ONNX Runtime TensorRT provider) or bf16 (OpenVINO '
        'CPU with BF16 units); backends ignore hints they cannot apply.',
        choices=PRECISIONS, read_only=True))
    delegate: str = field(default='', metadata=param(
        'LiteRT only: path or name of an external delegate library (e.g. libedgetpu.so.1); '
        'empty uses the default for the device.', read_only=True))
    cache_dir: str = field(default='', metadata=param(
        'Folder for compiled-model caches (OpenVINO, TensorRT provider); empty disables '
        'caching.', read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and element type of one model input or output.

    Attributes:
        name: the tensor name in the model.
        shape: dimensions; None where the dimension is dynamic.
        dtype: NumPy element type the backend exchanges.
        quantization: ``(scale, zero_point)`` for quantized tensors, else None
            (real = scale * (q - zero_point)).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    quantization: tuple[float, int] | None = None


class Backend(ABC):
    """One model loaded in one inference runtime on one device.

    Subclasses set :attr:`name`, :attr:`suffixes`, implement the class methods
    :meth:`is_installed` / :meth:`devices` and the instance methods :meth:`_load`,
    :meth:`run` and :meth:`_release`.

    Args:
        options: model path, device, threads and precision hint.

    Raises:
        BackendError: the runtime is not installed or the device is not available here.
        ModelError: the model file is missing, unreadable or rejected by the runtime.
    """

    #: registry name of the backend ('onnxruntime', ...).
    name: ClassVar[str] = ''
    #: model file suffixes the backend reads, in order of preference (the one source of what
    #: it reads: :meth:`formats` derives the manifest formats from it).
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: the pip package(s) that provide the runtime (for error messages).
    install_hint: ClassVar[str] = ''
    #: how the runtime spells device names (``GPU.1`` for OpenVINO, ``cuda:1`` for others).
    device_case: ClassVar[Callable[[str], str]] = staticmethod(str.lower)

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self._closed = False
        if not self.is_installed():
            raise BackendError(f'backend {self.name!r} is not installed here; '
                               f'{self.install_hint}')
        path = Path(options.model_path)
        if not options.model_path or not path.is_file():
            raise ModelError(f'model file {options.model_path!r} does not exist')
        if self.suffixes and path.suffix.lower() not in self.suffixes:
            raise ModelError(f'backend {self.name!r} cannot read {path.name}: it reads '
                             f'{", ".join(self.suffixes)} files')
        self.device = self.resolve_device(options.device)
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        try:
            self._load(path)
        except (BackendError, ModelError, ConfigError):
            raise
        except Exception as exc:  # runtimes raise their own exception types
            raise ModelError(f'{self.name} could not load {path} on {self.device}: '
                             f'{type(exc).__name__}: {str(exc).strip()[:500]}. The file is '
                             f'corrupt, truncated or not a model this runtime reads') from exc
        _LOG.debug('%s loaded %s on %s: inputs %s outputs %s', self.name, path.name,
                   self.device, self.inputs, self.outputs)

    # -- to implement -------------------------------------------------------------------------

    @staticmethod
    @abstractmethod
    def runtime() -> Any:
        """Import and return the runtime module; BackendError saying what to install if it
        cannot be imported."""

    @classmethod
    def is_installed(cls) -> bool:
        """True when the runtime can be imported here (cheap; imports it)."""
        try:
            cls.runtime()
        except BackendError:
            return False
        return True

    @classmethod
    def formats(cls) -> tuple[str, ...]:
        """The manifest file formats (:data:`~edge_vision_core.inference.manifest.FORMATS`)
        this backend reads, in its order of preference, from :attr:`suffixes`."""
        found = (fmt for suffix in cls.suffixes for fmt, known in FORMATS.items()
                 if suffix in known)
        return tuple(dict.fromkeys(found))

    @classmethod
    @abstractmethod
    def devices(cls) -> tuple[str, ...]:
        """The devices this runtime can use on this machine (empty if not installed)."""

    @abstractmethod
    def _load(self, path: Path) -> None:
        """Load ``path`` on ``self.device``; fill ``self.inputs`` and ``self.outputs``."""

    @abstractmethod
    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run the model once.

        Args:
            inputs: one array per model input, in ``self.inputs`` order, with the input's dtype
                and shape.

        Returns:
            One array per model output, in ``self.outputs`` order (dequantized to float32 for
            quantized outputs). Arrays are owned by the caller.
        """

    @abstractmethod
    def _release(self) -> None:
        """Drop the runtime objects (called once by :meth:`close`)."""

    # -- batching -----------------------------------------------------------------------------

    def prepare_batch(self, size: int) -> str:
        """Make :meth:`run` take ``size`` images stacked on the first axis of the (one) input.

        The default accepts a model whose batch dimension is dynamic (or already ``size``);
        backends that can reshape a fixed batch themselves (OpenVINO, LiteRT) override it.

        Returns:
            '' when a batch of ``size`` can run, else why not (the caller then runs the images
            one by one).
        """
        if not self.inputs:
            return 'the model has no input'
        first = self.inputs[0].shape[0] if self.inputs[0].shape else 1
        if first is None or first == size:
            return ''
        return (f'{Path(self.options.model_path).name} has a fixed batch of {first} on '
                f'{self.name}; export it with a dynamic batch (edge_vision_core.optimize.'
                f'onnx_ops.set_batch_dynamic) to run several images in one call')

    # -- shared -------------------------------------------------------------------------------

    def resolve_device(self, device: str) -> str:
        """Map a requested device (case-insensitive, 'auto') to one of :meth:`devices`.

        Raises:
            DeviceUnavailableError: listing the devices available here.
        """
        available = self.devices()
        wanted = device.strip()
        if wanted.lower() == 'auto' and available:
            return available[0]
        for candidate in available:
            if candidate.lower() == wanted.lower():
                return candidate
        prefix = wanted.split('.')[0].split(':')[0].lower()
        if any(c.lower() == prefix for c in available) and prefix != wanted.lower():
            return self.device_case(wanted)
        raise DeviceUnavailableError(f'device {device!r} is not available for backend '
                                     f'{self.name!r} here; available: '
                                     f'{", ".join(available) or "none"}')

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the model and the runtime's resources; calling it twice is harmless."""
        if not self._closed:
            self._closed = True
            self._release()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f'backend {self.name!r} was closed; create a new one')

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = 'closed' if self._closed else self.device
        return f'{type(self).__name__}({Path(self.options.model_path).name}, {state})'
