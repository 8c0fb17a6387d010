"""TFLite INT8 without TensorFlow: AI Edge Quantizer on an existing FP32 ``.tflite``.

TensorFlow's ``TFLiteConverter`` (the usual INT8 path) needs TensorFlow (~1.6 GB), which is no
dependency of this project. The light path used here is Google's ``ai-edge-quantizer``
(pip; it depends on ``ai-edge-litert``, ``absl-py``, ``immutabledict``, ``litert-lm-builder``):
it rewrites a float ``.tflite`` flatbuffer directly, calibrating with LiteRT itself. Its
``static_wi8_ai8`` recipe quantizes weights (per channel) and activations to INT8. It can only
quantize an existing ``.tflite``: it converts nothing, so input-size variants of a TFLite model
still need TensorFlow.

AI Edge Quantizer makes the model's inputs and outputs INT8 too. The detector feeds float
tensors normalised by the manifest, and other runtimes read the file as well, so
:func:`float_io` puts a QUANTIZE op after every INT8 input and a DEQUANTIZE op before every INT8
output (with the original tensor names), giving a model with float32 inputs and outputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..errors import ModelError

__all__ = ['float_io', 'quantize_tflite_int8']


def _fb():
    try:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError as exc:
        raise ModelError('TFLite editing needs ai-edge-litert: pip install ai-edge-litert'
                         ) from exc
    return schema, flatbuffer_utils


def _opcode_index(model, schema, code: int) -> int:
    for i, op_code in enumerate(model.operatorCodes):
        if max(op_code.builtinCode, op_code.deprecatedBuiltinCode) == code:
            return i
    op_code = schema.OperatorCodeT()
    op_code.builtinCode = code
    op_code.deprecatedBuiltinCode = min(code, 127)
    op_code.version = 1
    model.operatorCodes.append(op_code)
    return len(model.operatorCodes) - 1


def float_io(model_bytes: bytes) -> tuple[bytes, int]:
    """Give a quantized TFLite model float32 inputs and outputs (see the module docstring).

    Returns:
        ``(new model bytes, number of tensors converted)``.
    """
    schema, fbu = _fb()
    model = fbu.read_model_from_bytearray(bytearray(model_bytes))
    quantized = (schema.TensorType.INT8, schema.TensorType.UINT8)
    q_op = _opcode_index(model, schema, schema.BuiltinOperator.QUANTIZE)
    dq_op = _opcode_index(model, schema, schema.BuiltinOperator.DEQUANTIZE)
    changed = 0
    for graph_index, graph in enumerate(model.subgraphs):
        for is_input in (True, False):
            ends = graph.inputs if is_input else graph.outputs
            for pos, old in enumerate(list(ends)):
                tensor = graph.tensors[old]
                if tensor.type not in quantized:
                    continue
                new = schema.TensorT()
                new.name = tensor.name
                new.shape = tensor.shape
                new.shapeSignature = tensor.shapeSignature
                new.type = schema.TensorType.FLOAT32
                new.buffer = 0
                tensor.name = bytes(tensor.name or b'') + b'/int8'
                graph.tensors.append(new)
                index = len(graph.tensors) - 1
                op = schema.OperatorT()
                if is_input:
                    op.opcodeIndex, op.inputs, op.outputs = q_op, [index], [old]
                    op.builtinOptionsType = schema.BuiltinOptions.QuantizeOptions
                    op.builtinOptions = schema.QuantizeOptionsT()
                    graph.operators.insert(0, op)
                else:
                    op.opcodeIndex, op.inputs, op.outputs = dq_op, [old], [index]
                    op.builtinOptionsType = schema.BuiltinOptions.DequantizeOptions
                    op.builtinOptions = schema.DequantizeOptionsT()
                    graph.operators.append(op)
                ends[pos] = index
                for signature in model.signatureDefs or []:
                    if signature.subgraphIndex != graph_index:
                        continue
                    for item in (signature.inputs if is_input else signature.outputs) or []:
                        if item.tensorIndex == old:
                            item.tensorIndex = index
                changed += 1
    return bytes(fbu.convert_object_to_bytearray(model)), changed


def quantize_tflite_int8(src: Path, dst: Path, calibration: Iterable[np.ndarray],
                         threads: int = 2) -> dict[str, object]:
    """Static INT8 (weights and activations) of a float ``.tflite`` with AI Edge Quantizer.

    Args:
        src: FP32 (or FP16-weight) ``.tflite`` with one input.
        dst: output ``.tflite`` (float32 inputs/outputs, INT8 inside).
        calibration: the model's preprocessed input tensors, one per calibration image.
        threads: LiteRT threads used for calibration.

    Returns:
        The settings and tool versions (for the recipe).

    Raises:
        ModelError: ai-edge-quantizer missing, or calibration/quantization failed.
    """
    try:
        import ai_edge_quantizer
        from ai_edge_litert import interpreter as litert
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise ModelError('TFLite INT8 needs the AI Edge Quantizer (no TensorFlow needed): pip '
                         'install ai-edge-quantizer') from exc
    tensors = list(calibration)
    if not tensors:
        raise ModelError('TFLite INT8 quantization needs at least one calibration tensor')
    try:
        runner = litert.Interpreter(model_path=str(src))
        signatures = runner.get_signature_list()
        if len(signatures) != 1:
            raise ModelError(f'{src}: TFLite INT8 needs a model with one signature, it has '
                             f'{list(signatures)}')
        key, io = next(iter(signatures.items()))
        if len(io['inputs']) != 1:
            raise ModelError(f'{src}: TFLite INT8 needs one input, the model has {io["inputs"]}')
        input_name = io['inputs'][0]
        del runner
        quant = quantizer.Quantizer(str(src))
        quant.load_quantization_recipe(recipe.static_wi8_ai8())
        with np.errstate(all='ignore'), warnings.catch_warnings():
            # LiteRT warns that keeping all tensors (what calibration needs) costs memory.
            warnings.filterwarnings('ignore', message='.*experimental_preserve_all_tensors',
                                    category=UserWarning)
            ranges = quant.calibrate({key: [{input_name: t} for t in tensors]},
                                     num_threads=max(1, threads))
            result = quant.quantize(ranges, enable_progress_report=False,
                                    enable_progress_bar=False)
        data, changed = float_io(bytes(result.quantized_model))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f'AI Edge Quantizer could not quantize {src}: {type(exc).__name__}: '
                         f'{str(exc)[:400]}') from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)
    try:
        from importlib.metadata import version
        tool_version = version('ai-edge-quantizer')
    except Exception:
        tool_version = getattr(ai_edge_quantizer, '__version__', 'unknown')
    return {'tool': 'ai_edge_quantizer static_wi8_ai8', 'ai_edge_quantizer': tool_version,
            'weights': 'int8 per channel', 'activations': 'int8',
            'float_io_tensors': changed, 'calibration_images': len(tensors)}
