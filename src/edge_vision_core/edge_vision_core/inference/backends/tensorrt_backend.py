"""Native TensorRT backend for serialized engines (``.engine``/``.plan``), e.g. on Jetson.

Needs the ``tensorrt`` Python package (JetPack ships it) and ``cuda-python`` for device memory
(``pip install cuda-python``). An engine is built for one GPU and TensorRT version: build it on
the target with ``trtexec --onnx=model.onnx --saveEngine=model.engine [--fp16]``. Uses the
TensorRT >= 8.5 named-tensor API (``execute_async_v3``). Device: ``cuda`` (or ``cuda:N``).
Where ``tensorrt`` is not importable the backend reports itself as not installed, and the
cross-backend test skips it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import BackendError
from .base import Backend, TensorSpec

__all__ = ['TensorRtBackend']


def _import():
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendError('backend tensorrt needs the tensorrt package (JetPack, or pip '
                           'install tensorrt on x86 with CUDA) and cuda-python') from exc
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as exc:
            raise BackendError('backend tensorrt needs cuda-python for device memory: pip '
                               'install cuda-python') from exc
    return tensorrt, cudart


def _check(result):
    """cuda-python returns (error, value...): raise on error, return the value(s)."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendError(f'tensorrt: CUDA call failed with error {err}')
    return rest[0] if len(rest) == 1 else rest


class TensorRtBackend(Backend):
    """Serialized TensorRT engines on an NVIDIA GPU (see the module docstring)."""

    name = 'tensorrt'
    suffixes = ('.engine', '.plan', '.trt')
    install_hint = 'install TensorRT (JetPack on Jetson, pip install tensorrt elsewhere) and ' \
                   'pip install cuda-python'

    runtime = staticmethod(_import)

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        if not cls.is_installed():
            return ()
        _, cudart = _import()
        try:
            count = _check(cudart.cudaGetDeviceCount())
        except BackendError:
            return ()
        return ('cuda',) + tuple(f'cuda:{i}' for i in range(int(count))) if count else ()

    def _load(self, path: Path) -> None:
        trt, cudart = _import()
        self._cudart = cudart
        index = int(self.device.split(':')[1]) if ':' in self.device else 0
        _check(cudart.cudaSetDevice(index))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise BackendError(f'tensorrt could not deserialize {path}: the engine was built '
                               f'for another TensorRT version or GPU, or the file is corrupt; '
                               f'rebuild it here with trtexec')
        self._context = self._engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate())
        self._device_buffers: dict[str, int] = {}
        self._host_outputs: dict[str, np.ndarray] = {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            shape = tuple(int(d) for d in self._engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise BackendError(f'tensorrt: tensor {name} of {path.name} has a dynamic shape '
                                   f'{shape}; build the engine with a fixed input shape')
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            spec = TensorSpec(name, shape, dtype)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            ptr = _check(cudart.cudaMalloc(nbytes))
            self._device_buffers[name] = int(ptr)
            self._context.set_tensor_address(name, int(ptr))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(spec)
            else:
                self.outputs.append(spec)
                self._host_outputs[name] = np.empty(shape, dtype)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._check_open()
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for spec, value in zip(self.inputs, inputs, strict=True):
            host = np.ascontiguousarray(value, spec.dtype)
            _check(cudart.cudaMemcpyAsync(self._device_buffers[spec.name], host.ctypes.data,
                                          host.nbytes, h2d, self._stream))
        if not self._context.execute_async_v3(self._stream):
            raise BackendError('tensorrt: execute_async_v3 failed (see the TensorRT log)')
        outputs = []
        for spec in self.outputs:
            host = self._host_outputs[spec.name]
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, self._device_buffers[spec.name],
                                          host.nbytes, d2h, self._stream))
            outputs.append(host)
        _check(cudart.cudaStreamSynchronize(self._stream))
        return [o.copy() for o in outputs]

    def _release(self) -> None:
        cudart = getattr(self, '_cudart', None)
        for ptr in getattr(self, '_device_buffers', {}).values():
            cudart.cudaFree(ptr)
        if getattr(self, '_stream', None) is not None:
            cudart.cudaStreamDestroy(self._stream)
        self._device_buffers, self._stream = {}, None
        self._context = self._engine = self._runtime = None
