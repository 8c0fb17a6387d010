"""LiteRT (TensorFlow Lite) backend: XNNPACK on CPU, or an external delegate such as Coral.

The runtime is ``ai-edge-litert`` (``ai_edge_litert.interpreter``) when installed, else the older
``tflite-runtime`` (``tflite_runtime.interpreter``). Devices: ``cpu`` (the built-in XNNPACK
delegate with ``threads`` threads) and ``edgetpu`` (the Coral Edge TPU delegate
``libedgetpu.so.1``, offered only when that library loads here; models must be compiled for the
Edge TPU). ``delegate`` names any other external delegate library to load instead.
Quantized outputs are dequantized to float32; quantized inputs are quantized from float inputs.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import BackendError
from .base import Backend, TensorSpec

__all__ = ['EDGETPU_LIBRARY', 'LiteRtBackend']

EDGETPU_LIBRARY = {'darwin': 'libedgetpu.1.dylib', 'win32': 'edgetpu.dll'}.get(
    sys.platform, 'libedgetpu.so.1')


def _import():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter
        except ImportError as exc:
            raise BackendError('backend litert needs ai-edge-litert (pip install ai-edge-litert)'
                               ' or tflite-runtime (pip install tflite-runtime)') from exc
    return interpreter


@functools.lru_cache(maxsize=1)
def _edgetpu_present() -> bool:
    try:
        ctypes.CDLL(EDGETPU_LIBRARY)
    except OSError:
        return False
    return True


class LiteRtBackend(Backend):
    """TFLite models on LiteRT / tflite-runtime (see the module docstring)."""

    name = 'litert'
    suffixes = ('.tflite',)
    install_hint = 'pip install ai-edge-litert (or tflite-runtime)'

    runtime = staticmethod(_import)

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        if not cls.is_installed():
            return ()
        return ('edgetpu', 'cpu') if _edgetpu_present() else ('cpu',)

    def resolve_device(self, device: str) -> str:
        if device.strip().lower() == 'auto':
            return 'cpu'  # an Edge TPU needs a model compiled for it: never picked implicitly
        return super().resolve_device(device)

    def _load(self, path: Path) -> None:
        interp = _import()
        delegates = []
        library = self.options.delegate or (EDGETPU_LIBRARY if self.device == 'edgetpu' else '')
        if library:
            try:
                delegates.append(interp.load_delegate(library))
            except (OSError, ValueError) as exc:
                raise BackendError(f'litert could not load the delegate {library!r}: {exc}; '
                                   f'install it (Coral: the libedgetpu1-std package) or choose '
                                   f'device cpu') from exc
        self._interpreter = interp.Interpreter(
            model_path=str(path), num_threads=self.options.threads or None,
            experimental_delegates=delegates or None)
        self._interpreter.allocate_tensors()
        self._describe()

    def _describe(self) -> None:
        """Read the tensors' shapes and types (after loading or resizing)."""

        def spec(detail: dict) -> TensorSpec:
            scale, zero = detail.get('quantization', (0.0, 0))
            quant = (float(scale), int(zero)) if scale else None
            return TensorSpec(detail['name'], tuple(int(d) for d in detail['shape']),
                              np.dtype(detail['dtype']), quant)

        self._in = self._interpreter.get_input_details()
        self._out = self._interpreter.get_output_details()
        self.inputs = [spec(d) for d in self._in]
        self.outputs = [spec(d) for d in self._out]

    def prepare_batch(self, size: int) -> str:
        if not self.inputs or self.inputs[0].shape[:1] == (size,):
            return ''
        if len(self.inputs) != 1:
            return super().prepare_batch(size)
        interp = self._interpreter
        before = self.inputs[0].shape
        try:
            interp.resize_tensor_input(self._in[0]['index'], [size, *before[1:]])
            interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            return f'litert cannot resize the input of this model to a batch of {size}: {exc}'
        self._describe()
        folded = [t.name for t in self.outputs if t.shape[:1] != (size,)]
        if folded:  # e.g. a Reshape to [1, C, -1] in the graph: undo the resize
            interp.resize_tensor_input(self._in[0]['index'], list(before))
            interp.allocate_tensors()
            self._describe()
            return (f'{Path(self.options.model_path).name}: at a batch of {size} the outputs '
                    f'{folded} do not have the batch first (the graph fixes it to 1); run the '
                    f'images one by one or use a model exported with a dynamic batch')
        return ''

    @property
    def interpreter(self):
        """The LiteRT ``Interpreter`` (for benchmarks and advanced use)."""
        self._check_open()
        return self._interpreter

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._check_open()
        if len(inputs) == 1 and self.inputs and inputs[0].ndim and \
                inputs[0].shape[0] != self.inputs[0].shape[0]:
            reason = self.prepare_batch(int(inputs[0].shape[0]))
            if reason:
                raise BackendError(reason)
        interp = self._interpreter
        for spec, detail, value in zip(self.inputs, self._in, inputs, strict=True):
            if spec.quantization and value.dtype != spec.dtype:
                scale, zero = spec.quantization
                info = np.iinfo(spec.dtype)
                value = np.clip(np.round(value / scale + zero), info.min, info.max)
            interp.set_tensor(detail['index'], np.asarray(value, spec.dtype))
        interp.invoke()
        results = []
        for spec, detail in zip(self.outputs, self._out, strict=True):
            value = interp.get_tensor(detail['index'])
            if spec.quantization:
                scale, zero = spec.quantization
                value = (value.astype(np.float32) - zero) * np.float32(scale)
            results.append(value)
        return results

    def _release(self) -> None:
        self._interpreter = None
