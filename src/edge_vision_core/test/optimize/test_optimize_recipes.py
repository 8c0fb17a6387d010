"""Every recipe writes a model that the existing Detector loads through its manifest and that
agrees with the FP32 model on real photographs; pruning reaches its ratio; clear errors."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from edge_vision_core.errors import ConfigError, SourceError
from edge_vision_core.eval.detection import detection_agreement
from edge_vision_core.inference import Detector, load_manifest, resolve_model
from edge_vision_core.inference.manifest import sha256_file
from edge_vision_core.optimize import RECIPES, OptimizeConfig, load_image_set, optimize_model
from edge_vision_core.optimize.images import sample_images
from edge_vision_core.optimize.recipes import recipe_available

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('skimage.data')

MODEL = 'nanodet-m-416'
NATIVE_RECIPES = ('onnx-int8', 'onnx-fp16', 'openvino-fp16', 'openvino-int8', 'tflite-int8',
                  'prune')
RUNTIME = {'onnx': 'onnxruntime', 'openvino': 'openvino', 'tflite': 'litert'}
CALIB = 4


@functools.lru_cache(maxsize=1)
def photos() -> tuple[np.ndarray, ...]:
    return tuple(image for _, image in sample_images(
        ('astronaut', 'chelsea', 'coffee', 'motorcycle_left')))


@pytest.fixture(scope='module')
def variants(tmp_path_factory):
    """All recipes available here, at the native size, with a small calibration set."""
    out = tmp_path_factory.mktemp('optimized')
    made = optimize_model(MODEL, out, OptimizeConfig(recipes=NATIVE_RECIPES,
                                                     calibration_count=CALIB))
    return out, {m.recipe['recipe']: m for m in made}


@pytest.fixture(scope='module')
def reference():
    with Detector.create(model=MODEL, backend='onnxruntime', device='cpu') as det:
        return [det.detect(im).detections for im in photos()]


@pytest.mark.slow
@pytest.mark.parametrize('recipe', NATIVE_RECIPES)
def test_variant_loads_through_its_manifest_and_agrees(variants, reference, recipe):
    reason = recipe_available(recipe, resolve_model(MODEL))
    if reason:
        pytest.skip(reason)
    out, made = variants
    variant = made[recipe]
    manifest = load_manifest(variant.manifest)
    spec = RECIPES[recipe]
    assert manifest.files[0].format == spec.format
    assert manifest.files[0].precision == spec.precision
    assert manifest.files[0].sha256 == sha256_file(manifest.files[0].path)
    assert manifest.labels == resolve_model(MODEL).labels
    record = manifest.recipe
    assert record['recipe'] == recipe and record['versions']['numpy'] == np.__version__
    if spec.calibrated:
        assert record['calibration']['sha256'] == load_image_set('', CALIB).sha256
    backend = RUNTIME[spec.format]
    with Detector.create(model=str(variant.manifest), backend=backend, device='cpu',
                         score_threshold=0.1) as det:
        predicted = [det.detect(im).detections for im in photos()]
    agreement = detection_agreement(reference, predicted,
                                    score_threshold=manifest.score_threshold)
    assert agreement.num_reference >= 4
    assert agreement.map50 >= 0.75, agreement
    assert agreement.mean_iou >= 0.85, agreement


@pytest.mark.slow
def test_input_size_variant_runs_at_its_size(tmp_path, reference):
    made = optimize_model(MODEL, tmp_path, OptimizeConfig(recipes=('onnx-fp32',), sizes=(320,)))
    assert [m.name for m in made] == ['nanodet-m-320-onnx-fp32']
    manifest = load_manifest(made[0].manifest)
    assert manifest.input_size == (320, 320)
    with Detector.create(model=str(made[0].manifest), backend='onnxruntime') as det:
        assert det.backend.inputs[0].shape == (1, 3, 320, 320)
        # 40x40 + 20x20 + 10x10 cells at strides 8/16/32
        assert sorted(t.shape[1] for t in det.backend.outputs) == [100, 100, 400, 400, 1600,
                                                                     1600]
        predicted = [det.detect(im).detections for im in photos()]
    # smaller input, same classes on the big objects of these photographs
    agreement = detection_agreement(reference, predicted)
    assert agreement.recall >= 0.5


def test_pruning_reaches_the_asked_sparsity(tmp_path):
    from onnx import numpy_helper

    ratio = 0.4
    made = optimize_model(MODEL, tmp_path, OptimizeConfig(recipes=('prune',), prune_ratio=ratio,
                                                          verify=False))
    model = onnx.load(str(load_manifest(made[0].manifest).files[0].path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights = [inits[n.input[1]] for n in model.graph.node
               if n.op_type == 'Conv' and inits[n.input[1]].size >= 256]
    assert weights
    for w in weights:
        assert ratio <= np.mean(w == 0) < ratio + 0.01
    stats = made[0].recipe['pruning']
    assert stats['tensors'] == len(weights)
    assert stats['sparsity'] == pytest.approx(sum(int((w == 0).sum()) for w in weights)
                                              / sum(w.size for w in weights))


def test_pad_maxpool_folding_keeps_the_result(tmp_path):
    ort = pytest.importorskip('onnxruntime')
    from onnx import TensorProto, helper, numpy_helper

    from edge_vision_core.optimize.onnx_ops import fold_pad_into_maxpool

    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), 'pads')
    value = numpy_helper.from_array(np.array(-np.inf, np.float32), 'value')
    graph = helper.make_graph(
        [helper.make_node('Pad', ['x', 'pads', 'value'], ['padded'], mode='constant'),
         helper.make_node('MaxPool', ['padded'], ['y'], kernel_shape=[3, 3], strides=[2, 2])],
        'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2, 9, 9])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 2, 5, 5])],
        [pads, value])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8  # what every ONNX Runtime here loads (1.12, for numpy 1.21, too)
    src, dst = tmp_path / 'a.onnx', tmp_path / 'b.onnx'
    onnx.save(model, str(src))
    assert fold_pad_into_maxpool(src, dst) == 1
    folded = onnx.load(str(dst))
    assert [n.op_type for n in folded.graph.node] == ['MaxPool']
    x = -np.abs(np.random.default_rng(0).normal(size=(1, 2, 9, 9))).astype(np.float32)
    run = [ort.InferenceSession(str(p), providers=['CPUExecutionProvider']).run(None, {'x': x})
           for p in (src, dst)]
    np.testing.assert_array_equal(run[0][0], run[1][0])


def test_unavailable_modules_are_named_with_what_is_wrong():
    from edge_vision_core.optimize.recipes import _module_problem

    assert _module_problem('onnx') == ''
    assert _module_problem('edge_vision_no_such_module') == 'edge_vision_no_such_module'
    # a package that is installed but lacks the submodule (as old onnxruntime releases do)
    assert _module_problem('onnx.edge_vision_no_such_module') == (
        f'onnx.edge_vision_no_such_module, which onnx {onnx.__version__} does not provide')


@pytest.mark.parametrize(('kwargs', 'error', 'message'), [
    ({'recipes': ('onnx-int9',)}, ConfigError, "unknown recipe 'onnx-int9', expecting one of"),
    ({'recipes': ('onnx-int8',), 'calibration': '/nonexistent/frames'}, SourceError,
     'does not exist'),
    ({'recipes': ('onnx-fp16',), 'sizes': (300,)}, ConfigError, 'multiple of the largest'),
    ({'recipes': ()}, ConfigError, 'is empty'),
])
def test_clear_errors(tmp_path, kwargs, error, message):
    if 'calibration' in kwargs:  # calibration images are read only for a recipe that can run
        for name in kwargs['recipes']:
            if reason := recipe_available(name):
                pytest.skip(f'{name}: {reason}')
    with pytest.raises(error, match=message):
        optimize_model(MODEL, tmp_path / 'out', OptimizeConfig(**kwargs))


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / 'a-file'
    blocker.write_text('x')
    with pytest.raises(ConfigError, match='cannot write to the output folder'):
        optimize_model(MODEL, blocker / 'out', OptimizeConfig(recipes=('onnx-fp16',)))
