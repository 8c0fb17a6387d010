"""Shared fixtures of the inference tests: real images, one Detector per backend per session."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from edge_vision_core.inference import Detector


@pytest.fixture(scope='session')
def real_images() -> dict[str, np.ndarray]:
    """Real photographs shipped inside the scikit-image wheel, as BGR uint8."""
    pytest.importorskip('skimage.data')
    from edge_vision_core.optimize.images import sample_images

    names = {'astronaut': 'astronaut', 'chelsea': 'chelsea', 'coffee': 'coffee',
             'motorcycle': 'motorcycle_left'}
    return {key: image for key, (_, image) in zip(names, sample_images(list(names.values())),
                                                  strict=True)}


@pytest.fixture(scope='session')
def default_detector() -> Iterator[Callable[[str], Detector]]:
    """``get(backend)``: the embedded default model on that backend, loaded once per session."""
    cache: dict[str, Detector] = {}

    def get(backend: str) -> Detector:
        if backend not in cache:
            cache[backend] = Detector.create(backend=backend, threads=2)
        return cache[backend]

    yield get
    for detector in cache.values():
        detector.close()


@pytest.fixture(scope='session')
def shipped_detector() -> Iterator[Callable[[str, str], Detector]]:
    """``get(model, backend)``: a shipped model on a backend, loaded once per session."""
    pytest.importorskip('edge_vision_models')
    cache: dict[tuple[str, str], Detector] = {}

    def get(model: str, backend: str) -> Detector:
        if (model, backend) not in cache:
            cache[model, backend] = Detector.create(model=model, backend=backend, threads=2)
        return cache[model, backend]

    yield get
    for detector in cache.values():
        detector.close()


def write_constant_onnx(path, input_shape: tuple[int, ...], outputs: dict[str, np.ndarray],
                        input_type: str = 'float') -> None:
    """A tiny ONNX model whose outputs are fixed tensors (plus 0 x max(input), so they depend
    on the input): stands in for any detector layout in adapter tests."""
    onnx = pytest.importorskip('onnx')
    from onnx import TensorProto, helper, numpy_helper

    elem = {'float': TensorProto.FLOAT, 'uint8': TensorProto.UINT8}[input_type]
    nodes = [
        helper.make_node('Cast', ['images'], ['images_f'], to=TensorProto.FLOAT),
        helper.make_node('ReduceMax', ['images_f'], ['peak'], keepdims=0),
        helper.make_node('Constant', [], ['zero'],
                         value=numpy_helper.from_array(np.array(0.0, np.float32))),
        helper.make_node('Mul', ['peak', 'zero'], ['nothing']),
    ]
    graph_outputs = []
    for name, value in outputs.items():
        value = np.asarray(value, np.float32)
        nodes.append(helper.make_node('Constant', [], [f'{name}_value'],
                                      value=numpy_helper.from_array(value)))
        nodes.append(helper.make_node('Add', [f'{name}_value', 'nothing'], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                           list(value.shape)))
    graph = helper.make_graph(
        nodes, 'constant_detector',
        [helper.make_tensor_value_info('images', elem, list(input_shape))],
        graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture
def constant_model(tmp_path) -> Callable[..., str]:
    """``make(outputs, manifest, input_shape=(1, 3, 64, 64), input_type='float')`` -> the
    manifest path (``input_size`` is taken from the last two input dims unless given)."""
    import yaml

    def make(outputs: dict[str, np.ndarray], manifest: dict,
             input_shape: tuple[int, ...] = (1, 3, 64, 64), name: str = 'synthetic',
             input_type: str = 'float') -> str:
        model_path = tmp_path / f'{name}.onnx'
        write_constant_onnx(model_path, input_shape, outputs, input_type)
        data = {'name': name, 'file': model_path.name, 'layout': 'NCHW',
                'input_size': [input_shape[-1], input_shape[-2]], **manifest}
        yaml_path = tmp_path / f'{name}.yaml'
        yaml_path.write_text(yaml.safe_dump(data))
        return str(yaml_path)

    return make
