"""ONNX model transforms: input size, magnitude pruning, FP16, and static INT8 (ONNX Runtime).

Each function reads one ``.onnx`` file and writes another; none changes its input. They need
the ``onnx`` package (and ``onnxruntime`` for quantization), imported when called.

- :func:`set_input_size`: a fully convolutional detector at another input size. The image
  input and every output's dimensions are made symbolic, the value-info cache is cleared and the
  input is fixed to ``[1, C, H, W]``; ONNX shape inference then recomputes the rest. This is
  right when the graph holds no size-dependent constants (NanoDet: its reshapes use -1, its
  resizes use scales); :func:`check_outputs` runs the model once to prove it.
- :func:`set_batch_dynamic`: the same model with a symbolic batch dimension on the image input
  and every output, so one call runs several images (batched cameras, ONNX Runtime; OpenVINO
  and LiteRT reshape a fixed batch themselves). Right when no constant holds the batch size
  (NanoDet's reshapes use 0/-1); :func:`check_outputs` proves it at batch 2.
- :func:`fold_pad_into_maxpool`: a ``Pad`` with value -inf feeding a ``MaxPool`` (TensorFlow's
  SAME max-pooling, as converters write it) becomes the MaxPool's own ``pads`` (same result:
  ONNX MaxPool ignores padded cells). Quantization needs it: the -inf tensor has no finite
  range, which gives NaN/inf quantization scales.
- :func:`prune_magnitude`: unstructured magnitude pruning (the smallest ``ratio`` of the
  weights of every Conv/Gemm/MatMul set to zero, per tensor). Dense CPU kernels do the same
  work on zeros, so this makes no runtime faster by itself; it only shows the accuracy cost and
  what sparse-aware runtimes or compression could gain.
- :func:`convert_fp16`: weights and activations in float16 with float32 inputs and outputs
  (``onnxruntime.transformers.float16``). CPUs without FP16 arithmetic run it with casts, so it
  is about a smaller file and GPUs, not CPU speed.
- :func:`quantize_int8`: ONNX Runtime static quantization in QDQ format (per-channel INT8
  weights, UINT8 or INT8 activations) after ORT's recommended pre-processing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelError

# The ONNX Runtime modules the FP16 and INT8 recipes use (not in every release: see
# recipes.recipe_available).
ORT_FLOAT16 = 'onnxruntime.transformers.float16'
ORT_QUANTIZATION = 'onnxruntime.quantization.shape_inference'

__all__ = [
    'PruneStats',
    'check_outputs',
    'convert_fp16',
    'fold_pad_into_maxpool',
    'prune_magnitude',
    'quantize_int8',
    'set_batch_dynamic',
    'set_input_size',
]

_LOG = logging.getLogger(__name__)

CALIBRATION_METHODS = ('minmax', 'entropy', 'percentile')


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ModelError('ONNX model optimization needs the onnx package: pip install onnx'
                         ) from exc
    return onnx


def _load(path: Path):
    onnx = _onnx()
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError...
        raise ModelError(f'cannot read the ONNX model {path}: {type(exc).__name__}: {exc}'
                         ) from exc


def _save(model, path: Path) -> None:
    onnx = _onnx()
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def set_input_size(src: Path, dst: Path, width: int, height: int) -> None:
    """Write ``src`` with its image input fixed to ``width`` x ``height`` (NCHW or NHWC).

    The layout is read from the input shape: the axis of size 1 or 3 next to the batch is the
    channel axis.

    Raises:
        ModelError: a model with several inputs, a non-rank-4 input, or a graph whose shapes do
            not follow the new size (shape inference fails).
    """
    onnx = _onnx()
    model = _load(src)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f'{src}: set_input_size needs one image input, the model has '
                         f'{[i.name for i in inputs]}')
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ModelError(f'{src}: the image input must have rank 4, it has {len(dims)}')
    channels_first = dims[1].HasField('dim_value') and dims[1].dim_value in (1, 3)
    shape = ([1, dims[1].dim_value, height, width] if channels_first
             else [1, height, width, dims[3].dim_value])
    for dim, value in zip(dims, shape, strict=True):
        dim.Clear()
        dim.dim_value = int(value)
    for out in model.graph.output:
        for k, dim in enumerate(out.type.tensor_type.shape.dim):
            dim.Clear()
            dim.dim_param = f'{out.name}_d{k}'
    del model.graph.value_info[:]
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:
        raise ModelError(f'{src}: the graph does not follow the new input size {width}x{height}'
                         f' ({type(exc).__name__}: {str(exc)[:300]}); the model has '
                         f'size-dependent constants or the size is not a multiple of its '
                         f'largest stride') from exc
    _save(model, dst)


def set_batch_dynamic(src: Path, dst: Path, name: str = 'batch') -> None:
    """Write ``src`` with a symbolic batch dimension ``name`` on its input and outputs.

    Converters often write the batch of 1 into ``Reshape`` shapes (NanoDet: ``[1, C, -1]``),
    which would fold a batch into one image's rows; such a leading 1 becomes 0 ("copy the input
    dimension"). The result is then run at batch 2 on two different inputs and must give each
    image exactly its batch-1 outputs.

    Raises:
        ModelError: a model with several inputs, a graph whose shapes do not follow a symbolic
            batch, or whose batched outputs differ from one image at a time.
    """
    onnx = _onnx()
    from onnx import numpy_helper

    model = _load(src)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f'{src}: set_batch_dynamic needs one image input, the model has '
                         f'{[i.name for i in inputs]}')
    shape = [d.dim_value or 1 for d in inputs[0].type.tensor_type.shape.dim]
    for value in (inputs[0], *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = name
    constants = {n.output[0]: n for n in graph.node if n.op_type == 'Constant'}
    patched = set()
    for node in graph.node:
        if node.op_type != 'Reshape' or len(node.input) < 2 or node.input[1] in patched:
            continue
        holder = inits.get(node.input[1])
        tensor = holder if holder is not None else (
            constants[node.input[1]].attribute[0].t if node.input[1] in constants else None)
        if tensor is None:
            continue
        target = numpy_helper.to_array(tensor)
        if target.ndim == 1 and target.size >= 2 and target[0] == 1:
            fixed = target.copy()
            fixed[0] = 0
            tensor.CopyFrom(numpy_helper.from_array(fixed, tensor.name))
            patched.add(node.input[1])
    del graph.value_info[:]
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as exc:
        raise ModelError(f'{src}: the graph does not take a symbolic batch '
                         f'({type(exc).__name__}: {str(exc)[:300]})') from exc
    _save(model, dst)
    _check_batch(dst, shape)


def _check_batch(path: Path, shape: Sequence[int]) -> None:
    """Batch 2 gives each image its batch-1 outputs (ModelError naming the output if not)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    pair = rng.normal(0, 1, (2, *shape[1:])).astype(np.float32)
    both = session.run(None, {name: pair})
    for k in range(2):
        one = session.run(None, {name: pair[k:k + 1]})
        for out, full, single in zip(session.get_outputs(), both, one, strict=True):
            if full.shape[0] != 2 or not np.allclose(full[k:k + 1], single, atol=1e-4,
                                                     rtol=1e-3):
                raise ModelError(f'{path}: with a batch of 2 the output {out.name} '
                                 f'({list(full.shape)}) is not the two images\' outputs '
                                 f'({list(single.shape)} each); the graph mixes the batch '
                                 f'into other dimensions')


def check_outputs(path: Path, shape: Sequence[int]) -> list[tuple[int, ...]]:
    """Run the model once on zeros of ``shape`` (ONNX Runtime) and return the output shapes.

    Raises:
        ModelError: the runtime rejects the model or the run fails.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError('checking an ONNX model needs onnxruntime: pip install onnxruntime'
                         ) from exc
    try:
        session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        name = session.get_inputs()[0].name
        outputs = session.run(None, {name: np.zeros(shape, np.float32)})
    except Exception as exc:
        raise ModelError(f'{path} does not run on ONNX Runtime: {type(exc).__name__}: '
                         f'{str(exc)[:300]}') from exc
    return [tuple(o.shape) for o in outputs]


def fold_pad_into_maxpool(src: Path, dst: Path) -> int:
    """Fold ``Pad(value=-inf) -> MaxPool`` pairs into the MaxPool (see the module docstring).

    Returns:
        The number of Pad nodes folded (the file is written even when 0).
    """
    onnx = _onnx()
    from onnx import numpy_helper

    model = _load(src)
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == 'Constant' and node.attribute:
            try:
                consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            except Exception:  # a non-tensor Constant cannot be a pad value
                continue
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    removed = []
    for node in graph.node:
        if node.op_type != 'Pad' or len(node.input) < 3 or node.output[0] in outputs:
            continue
        mode = next((a.s for a in node.attribute if a.name == 'mode'), b'constant')
        value = consts.get(node.input[2])
        pads = consts.get(node.input[1])
        users = consumers.get(node.output[0], [])
        if mode != b'constant' or value is None or pads is None or value.size != 1 \
                or not (np.isinf(value).all() and value.ravel()[0] < 0) or len(users) != 1 \
                or users[0].op_type != 'MaxPool' or len(pads) != 8 or any(pads[[0, 1, 4, 5]]):
            continue
        pool = users[0]
        if any(a.name == 'auto_pad' and a.s not in (b'', b'NOTSET') for a in pool.attribute):
            continue
        old = next((list(a.ints) for a in pool.attribute if a.name == 'pads'), [0, 0, 0, 0])
        new = [old[0] + int(pads[2]), old[1] + int(pads[3]), old[2] + int(pads[6]),
               old[3] + int(pads[7])]
        kept = [a for a in pool.attribute if a.name != 'pads']
        del pool.attribute[:]
        pool.attribute.extend(kept)
        pool.attribute.append(onnx.helper.make_attribute('pads', new))
        pool.input[0] = node.input[0]
        removed.append(node)
    for node in removed:
        graph.node.remove(node)
    if removed:  # drop the pad constants nothing reads any more
        used = {name for node in graph.node for name in node.input}
        unused = [t for t in graph.initializer if t.name not in used]
        for tensor in unused:
            graph.initializer.remove(tensor)
    _save(model, dst)
    return len(removed)


@dataclass(frozen=True)
class PruneStats:
    """What :func:`prune_magnitude` did.

    Attributes:
        ratio: the requested fraction of zeros per pruned tensor.
        tensors: how many weight tensors were pruned.
        weights: their total number of elements.
        zeros: zeros among them after pruning (including any that were zero before).
    """

    ratio: float
    tensors: int
    weights: int
    zeros: int

    @property
    def sparsity(self) -> float:
        """Achieved fraction of zeros in the pruned tensors."""
        return self.zeros / self.weights if self.weights else 0.0


def prune_magnitude(src: Path, dst: Path, ratio: float, min_elements: int = 256) -> PruneStats:
    """Zero the ``ratio`` smallest-magnitude weights of every Conv/Gemm/MatMul weight tensor.

    Args:
        src, dst: input and output ``.onnx`` paths.
        ratio: fraction of each tensor to zero, in [0, 1).
        min_elements: tensors smaller than this (biases, tiny layers) are left dense.

    Returns:
        The achieved sparsity (ties at the threshold are all zeroed, so it can exceed
        ``ratio`` slightly).

    Raises:
        ConfigError: ratio out of range.
    """
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f'prune ratio must be in [0, 1), got {ratio}')
    _onnx()
    from onnx import numpy_helper

    model = _load(src)
    index = {t.name: i for i, t in enumerate(model.graph.initializer)}
    names = []
    for node in model.graph.node:
        if node.op_type in ('Conv', 'ConvTranspose', 'Gemm', 'MatMul'):
            names.extend(n for n in node.input[:2] if n in index)
    tensors = weights = zeros = 0
    for name in dict.fromkeys(names):  # each tensor once, in graph order
        init = model.graph.initializer[index[name]]
        array = numpy_helper.to_array(init)
        if array.dtype.kind != 'f' or array.size < min_elements or array.ndim < 2:
            continue
        flat = np.abs(array.ravel())
        k = min(int(math.ceil(ratio * flat.size - 1e-9)), flat.size)  # at least the ratio
        if k > 0:
            threshold = np.partition(flat, k - 1)[k - 1]
            array = np.where(np.abs(array) <= threshold, 0, array).astype(array.dtype)
            init.CopyFrom(numpy_helper.from_array(array, name))
        tensors += 1
        weights += array.size
        zeros += int(np.count_nonzero(array == 0))
    _save(model, dst)
    return PruneStats(float(ratio), tensors, weights, zeros)


def _ort_import_error(task: str, module: str, exc: ImportError) -> ModelError:
    """The error for a failed import of ONNX Runtime's ``module``: not installed, or a release
    without it."""
    try:
        import onnxruntime as ort
    except ImportError:
        return ModelError(f'{task} needs onnxruntime: pip install onnxruntime')
    return ModelError(f'{task} needs {module}, which onnxruntime {ort.__version__} does not '
                      f'provide ({type(exc).__name__}: {exc}): pip install -U onnxruntime')


def convert_fp16(src: Path, dst: Path) -> None:
    """Write an FP16 copy of ``src`` whose inputs and outputs stay float32.

    Raises:
        ModelError: onnxruntime (which provides the converter) is missing or conversion fails.
    """
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:
        raise _ort_import_error('FP16 conversion', ORT_FLOAT16, exc) from exc
    model = _load(src)
    try:
        half = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:
        raise ModelError(f'FP16 conversion of {src} failed: {type(exc).__name__}: {exc}'
                         ) from exc
    _save(half, dst)


def quantize_int8(src: Path, dst: Path, calibration: Iterable[np.ndarray], *,
                  method: str = 'minmax', per_channel: bool = True,
                  activation_type: str = 'uint8', pre_process: bool = True,
                  work_dir: Path | None = None) -> dict[str, object]:
    """ONNX Runtime static INT8 quantization (QDQ format) of a one-input model.

    Args:
        src, dst: FP32 input and INT8 output ``.onnx`` paths.
        calibration: the model's preprocessed input tensors (e.g. ``[1, 3, H, W]`` float32),
            one per calibration image.
        method: activation range estimate: ``minmax``, ``entropy`` or ``percentile``
            (99.999 %).
        per_channel: one weight scale per output channel (else per tensor).
        activation_type: ``uint8`` (U8S8: fastest on x86 CPUs) or ``int8`` (S8S8).
        pre_process: run ORT's ``quant_pre_process`` (graph optimization + shape inference)
            first, as ONNX Runtime recommends.
        work_dir: folder for the intermediate files (default: beside ``dst``).

    Returns:
        The settings and tool versions used (for the recipe).

    Raises:
        ConfigError: unknown method or activation type.
        ModelError: onnxruntime missing or quantization failed.
    """
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f'unknown calibration method {method!r}; use one of '
                          f'{list(CALIBRATION_METHODS)}')
    if activation_type not in ('uint8', 'int8'):
        raise ConfigError(f"activation_type must be 'uint8' or 'int8', got {activation_type!r}")
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise _ort_import_error('INT8 quantization', ORT_QUANTIZATION, exc) from exc
    work = Path(work_dir) if work_dir else dst.parent
    work.mkdir(parents=True, exist_ok=True)
    stem = dst.stem
    folded = work / f'{stem}.folded.tmp.onnx'
    prepared = work / f'{stem}.prepared.tmp.onnx'
    try:
        n_folded = fold_pad_into_maxpool(src, folded)
        model_in = folded
        if pre_process:
            quant_pre_process(str(folded), str(prepared), skip_symbolic_shape=True)
            model_in = prepared
        session = ort.InferenceSession(str(model_in), providers=['CPUExecutionProvider'])
        input_name = session.get_inputs()[0].name
        del session
        tensors = list(calibration)
        if not tensors:
            raise ModelError('INT8 quantization needs at least one calibration tensor')

        class _Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._items = iter(tensors)

            def get_next(self) -> dict[str, np.ndarray] | None:
                item = next(self._items, None)
                return None if item is None else {input_name: item}

        methods = {'minmax': CalibrationMethod.MinMax, 'entropy': CalibrationMethod.Entropy,
                   'percentile': CalibrationMethod.Percentile}
        act = QuantType.QUInt8 if activation_type == 'uint8' else QuantType.QInt8
        try:
            with np.errstate(all='ignore'):
                quantize_static(str(model_in), str(dst), _Reader(),
                                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                calibrate_method=methods[method], activation_type=act,
                                weight_type=QuantType.QInt8,
                                extra_options={'CalibTensorRangeSymmetric': False})
        except Exception as exc:
            raise ModelError(f'ONNX Runtime quantization of {src} failed: '
                             f'{type(exc).__name__}: {str(exc)[:400]}') from exc
    finally:
        for tmp in (folded, prepared, work / f'{stem}.prepared.tmp-inferred.onnx'):
            tmp.unlink(missing_ok=True)
        for tmp in work.glob('augmented_model*.onnx'):
            tmp.unlink(missing_ok=True)
    return {'tool': 'onnxruntime.quantization.quantize_static', 'onnxruntime': ort.__version__,
            'format': 'QDQ', 'weights': 'int8', 'activations': activation_type,
            'per_channel': per_channel, 'calibration_method': method,
            'pre_process': pre_process, 'pad_maxpool_folded': n_folded,
            'calibration_images': len(tensors)}
