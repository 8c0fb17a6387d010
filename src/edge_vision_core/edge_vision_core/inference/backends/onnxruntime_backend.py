"""ONNX Runtime backend: CPU, and the CUDA / TensorRT execution providers where installed.

Devices: ``cpu`` (CPUExecutionProvider), ``cuda`` (CUDAExecutionProvider), ``tensorrt``
(TensorrtExecutionProvider, with CUDA and CPU as fallbacks for unsupported nodes). ``auto``
picks cuda when the CUDA provider is there, else cpu; tensorrt is used only when asked for
(onnxruntime-gpu lists its provider even where the TensorRT libraries are missing).
``threads`` sets the intra-op thread count; ``precision='fp16'`` enables FP16 in the TensorRT
provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import BackendError
from .base import Backend, TensorSpec

__all__ = ['OnnxRuntimeBackend']

_PROVIDERS = {
    'tensorrt': 'TensorrtExecutionProvider',
    'cuda': 'CUDAExecutionProvider',
    'cpu': 'CPUExecutionProvider',
}
_DTYPES = {
    'tensor(float)': np.float32, 'tensor(float16)': np.float16, 'tensor(double)': np.float64,
    'tensor(uint8)': np.uint8, 'tensor(int8)': np.int8, 'tensor(int32)': np.int32,
    'tensor(int64)': np.int64, 'tensor(bool)': np.bool_,
}


def _import():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError('backend onnxruntime needs the onnxruntime package: '
                           'pip install onnxruntime (or onnxruntime-gpu)') from exc
    return onnxruntime


class OnnxRuntimeBackend(Backend):
    """ONNX models on ONNX Runtime (see the module docstring for devices)."""

    name = 'onnxruntime'
    suffixes = ('.onnx', '.ort')
    install_hint = 'pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA/TensorRT)'

    runtime = staticmethod(_import)

    @classmethod
    def devices(cls) -> tuple[str, ...]:
        if not cls.is_installed():
            return ()
        have = set(_import().get_available_providers())
        return tuple(dev for dev, provider in _PROVIDERS.items() if provider in have)

    def resolve_device(self, device: str) -> str:
        if device.strip().lower() == 'auto':
            return 'cuda' if 'cuda' in self.devices() else 'cpu'
        return super().resolve_device(device)

    def _load(self, path: Path) -> None:
        ort = _import()
        opts = ort.SessionOptions()
        if self.options.threads:
            opts.intra_op_num_threads = self.options.threads
            opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's intra-op threads spin after each run by default, taking the CPU from the other
        # stages of a pipeline (capture, preprocessing, tracking, NumPy post-processing). Off:
        # the bare runtime keeps its speed (46.6 vs 45.3 fps, nanodet-m-416, 2 threads) and the
        # composed pipeline gains (benchmarks/bench_pipeline.py).
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        order = {'tensorrt': ['tensorrt', 'cuda', 'cpu'], 'cuda': ['cuda', 'cpu'],
                 'cpu': ['cpu']}[self.device]
        providers: list = []
        for dev in order:
            provider = _PROVIDERS[dev]
            if dev == 'tensorrt':
                trt = {'trt_fp16_enable': self.options.precision == 'fp16'}
                if self.options.cache_dir:
                    trt.update(trt_engine_cache_enable=True,
                               trt_engine_cache_path=self.options.cache_dir)
                providers.append((provider, trt))
            else:
                providers.append(provider)
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)

        def spec(arg) -> TensorSpec:  # symbolic dimensions (strings, None) become None
            return TensorSpec(arg.name, tuple(d if isinstance(d, int) else None
                                              for d in arg.shape),
                              np.dtype(_DTYPES.get(arg.type, np.float32)))

        self.inputs = [spec(i) for i in self._session.get_inputs()]
        self.outputs = [spec(o) for o in self._session.get_outputs()]
        self._input_names = [t.name for t in self.inputs]

    @property
    def session(self):
        """The ``onnxruntime.InferenceSession`` (for benchmarks and advanced use)."""
        self._check_open()
        return self._session

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self._check_open()
        return self._session.run(None, dict(zip(self._input_names, inputs, strict=True)))

    def _release(self) -> None:
        self._session = None
