"""OpenVINO backend: CPU, GPU, NPU and AUTO devices; reads ONNX, OpenVINO IR and TFLite.

Devices are OpenVINO's names (``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ``AUTO``; case-insensitive
here); ``auto`` maps to OpenVINO's ``AUTO`` plug-in, which picks the best device present.
``threads`` sets the CPU's ``INFERENCE_NUM_THREADS``; ``precision`` sets
``INFERENCE_PRECISION_HINT`` (``fp32``/``fp16``/``bf16`` -> ``f32``/``f16``/``bf16``). With
``precision='auto'`` the CPU runs f32 (OpenVINO alone would pick bf16 on CPUs with BF16 units,
faster but visibly less exact: ask for ``bf16`` explicitly); GPU and NPU keep their own default
(f16). The compiled model is tuned for latency (one request at a time). A model whose only
dynamic dimension is the batch is compiled for batch 1; :meth:`OpenVinoBackend.prepare_batch`
compiles other batch sizes (several cameras in one call) on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import BackendError
from .base import Backend, TensorSpec

__all__ = ['OpenVinoBackend']


def _import():
    try:
        import openvino
    except ImportError as exc:
        raise BackendError('backend openvino needs the openvino package: pip install openvino'
                           ) from exc
    return openvino


class OpenVinoBackend(Backend):
    """ONNX, IR (.xml + .bin) and TFLite models on OpenVINO (see the module docstring)."""

    name = 'openvino'
    device_case = staticmethod(str.upper)
    suffixes = ('.xml', '.onnx', '.tflite')
    install_hint = 'pip install openvino'

    runtime = staticmethod(_import)

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        if not cls.is_installed():
            return ()
        found = tuple(_import().Core().available_devices)
        return (*found, 'AUTO') if found else ()

    def resolve_device(self, device: str) -> str:
        if device.strip().lower() == 'auto':
            return 'AUTO' if self.devices() else super().resolve_device(device)
        return super().resolve_device(device)

    def _load(self, path: Path) -> None:
        ov = _import()
        core = ov.Core()
        if self.options.cache_dir:
            core.set_property({'CACHE_DIR': self.options.cache_dir})
        config: dict[str, object] = {'PERFORMANCE_HINT': 'LATENCY'}
        hints = {'fp32': 'f32', 'fp16': 'f16', 'bf16': 'bf16'}
        # On CPU, 'auto' means f32: OpenVINO's own default there is bf16 on CPUs with BF16
        # units, which moved NanoDet boxes by up to 2.5% (IoU 0.975) against the other runtimes.
        cpu: dict[str, object] = {'INFERENCE_PRECISION_HINT': hints.get(
            self.options.precision, 'f32')}
        if self.options.threads:
            cpu['INFERENCE_NUM_THREADS'] = self.options.threads
        base = self.device.split('.')[0]
        if base == 'CPU':
            config.update(cpu)
        elif base == 'AUTO':
            config['DEVICE_PROPERTIES'] = {'CPU': cpu}
        elif self.options.precision != 'auto':
            config['INFERENCE_PRECISION_HINT'] = hints[self.options.precision]
        model = core.read_model(str(path))
        self._batch_reshapable = False
        if len(model.inputs) == 1:
            shape = model.inputs[0].get_partial_shape()
            if shape.rank.is_static and len(shape) >= 1 and shape[0].is_dynamic and \
                    all(d.is_static for d in list(shape)[1:]):
                # a dynamic batch only: compile for batch 1 (static shapes are faster on CPU);
                # prepare_batch compiles other sizes on demand
                model.reshape([1, *[d.get_length() for d in list(shape)[1:]]])
                self._batch_reshapable = True
            elif shape.is_static and len(shape) >= 1 and shape[0].get_length() == 1:
                self._batch_reshapable = True
        self._core, self._model, self._config = core, model, config
        self._compiled = core.compile_model(model, self.device, config)
        self._request = self._compiled.create_infer_request()
        self._requests = {1: self._request}

        def spec(port) -> TensorSpec:
            shape = port.get_partial_shape()
            dims = tuple(d.get_length() if d.is_static else None for d in shape)
            try:
                name = port.get_any_name()
            except RuntimeError:
                name = ''
            return TensorSpec(name, dims, np.dtype(port.get_element_type().to_dtype()))

        self.inputs = [spec(p) for p in self._compiled.inputs]
        self.outputs = [spec(p) for p in self._compiled.outputs]

    @property
    def compiled_model(self):
        """The ``openvino.CompiledModel`` (for benchmarks and advanced use)."""
        self._check_open()
        return self._compiled

    def prepare_batch(self, size: int) -> str:
        if size in self._requests:
            return ''
        if not self._batch_reshapable:
            return super().prepare_batch(size)
        batched = self._model.clone()
        shape = list(batched.inputs[0].get_partial_shape())
        batched.reshape([size, *[d.get_length() for d in shape[1:]]])
        folded = [o.get_any_name() for o in batched.outputs
                  if o.get_partial_shape().rank.is_static and len(o.get_partial_shape())
                  and o.get_partial_shape()[0] != size]
        if folded:  # e.g. a Reshape to [1, C, -1] written into the graph
            return (f'{Path(self.options.model_path).name}: at a batch of {size} the outputs '
                    f'{folded} do not have the batch first (the graph fixes it to 1); export '
                    f'it with a dynamic batch (edge_vision_core.optimize.onnx_ops.'
                    f'set_batch_dynamic)')
        compiled = self._core.compile_model(batched, self.device, self._config)
        self._requests[size] = compiled.create_infer_request()
        return ''

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._check_open()
        request = self._request
        size = inputs[0].shape[0] if inputs and inputs[0].ndim else 1
        if size != 1 and size in self._requests:
            request = self._requests[size]
        request.infer(list(inputs), share_inputs=True)
        return [request.get_output_tensor(i).data.copy() for i in range(len(self.outputs))]

    def _release(self) -> None:
        self._request = None
        self._requests = {}
        self._compiled = self._model = self._core = None
