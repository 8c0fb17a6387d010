"""Model manifests: validation, the registry of shipped models, checksums and mismatches."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import yaml

from edge_vision_core import ModelError
from edge_vision_core.inference import Detector, ModelManifest, list_models, resolve_model
from edge_vision_core.inference.manifest import load_manifest, verify_checksum

edge_vision_models = pytest.importorskip('edge_vision_models')

MINIMAL = {'name': 'm', 'adapter': 'yolov8', 'file': 'm.onnx', 'input_size': [64, 32],
           'labels': ['a', 'b']}


def test_the_default_model_is_registered_and_its_files_match_their_checksums():
    models = list_models()
    assert edge_vision_models.DEFAULT_MODEL in models
    manifest = resolve_model('nanodet-m-416')
    assert manifest.adapter == 'nanodet' and manifest.num_classes == 80
    assert {f.format for f in manifest.files} == {'onnx', 'tflite'}
    for model_file in manifest.files:
        digest = hashlib.sha256(model_file.path.read_bytes()).hexdigest()
        assert digest == model_file.sha256
        assert model_file.path.stat().st_size < 20 * 1024 * 1024
    notice = edge_vision_models.models_dir() / 'NOTICE'
    assert 'Apache' in notice.read_text() and 'MIT' in notice.read_text()


def test_minimal_manifest_defaults(tmp_path):
    m = ModelManifest.from_dict(MINIMAL, tmp_path, 'x.yaml')
    assert m.input_size == (64, 32) and m.layout == 'NCHW' and m.color_order == 'rgb'
    assert m.files[0].format == 'onnx' and m.files[0].path == (tmp_path / 'm.onnx').resolve()


def test_recipe_provenance_is_kept_and_not_part_of_equality(tmp_path):
    recipe = {'recipe': 'onnx-int8', 'versions': {'onnxruntime': '1.0'}}
    with_recipe = ModelManifest.from_dict({**MINIMAL, 'recipe': recipe}, tmp_path)
    assert with_recipe.recipe == recipe
    assert ModelManifest.from_dict(MINIMAL, tmp_path).recipe == {}
    assert with_recipe == ModelManifest.from_dict(MINIMAL, tmp_path)


def test_scale_shorthand_and_labels_file(tmp_path):
    (tmp_path / 'names.txt').write_text('cat\ndog\n\n')
    data = {**MINIMAL, 'scale': 1 / 255}
    del data['labels']
    data['labels_file'] = 'names.txt'
    m = ModelManifest.from_dict(data, tmp_path)
    assert m.labels == ('cat', 'dog')
    assert m.mean == (0.0, 0.0, 0.0) and m.std == pytest.approx((255.0,) * 3)


BAD = [
    ({'adaptr': 'yolov8'}, 'unknown key'),
    ({'adapter': 'yolov9000'}, "unknown adapter 'yolov9000', expecting one of \\['nanodet'"),
    ({'reg_max': 7}, 'reg_max is an option of adapter nanodet'),
    ({'normalized_boxes': 'yes'}, 'normalized_boxes must be bool'),
    ({'adapter': 'nanodet', 'reg_max': 300}, r'adapter nanodet: .*reg_max must be in \[0, 256\]'),
    ({'adapter': 'nanodet', 'strides': []}, 'at least one stride'),
    ({'input_size': [64]}, 'input_size'),
    ({'layout': 'CHW'}, 'layout'),
    ({'color_order': 'bgra'}, 'color_order'),
    ({'std': [1, 0, 1]}, 'std'),
    ({'mean': [1, 2]}, 'mean'),
    ({'scale': 0.1, 'mean': [0, 0, 0]}, 'either'),
    ({'labels': []}, 'empty'),
    ({'score_threshold': 1.5}, 'score_threshold'),
    ({'max_detections': 2.5}, 'max_detections'),
    ({'file': 'model.bin'}, 'unknown format'),
    ({'sha256': 'abc'}, '64 hex'),
    ({'labels_file': 'missing.txt'}, 'either'),
    ({'recipe': 'onnx-int8'}, 'recipe must be a mapping'),
]


@pytest.mark.parametrize(('change', 'message'), BAD, ids=[m for _, m in BAD])
def test_invalid_manifests_name_the_file_and_the_key(tmp_path, change, message):
    data = {**MINIMAL, **change}
    with pytest.raises(ModelError, match=message) as info:
        ModelManifest.from_dict(data, tmp_path, 'my.yaml')
    assert 'my.yaml' in str(info.value)


def test_missing_required_keys(tmp_path):
    for key in ('name', 'adapter', 'input_size', 'file'):
        data = {k: v for k, v in MINIMAL.items() if k != key}
        with pytest.raises(ModelError, match=key):
            ModelManifest.from_dict(data, tmp_path)


def test_resolve_by_path_and_sibling_manifest(tmp_path):
    shipped = resolve_model('nanodet-m-416')
    folder = tmp_path / 'copy'
    folder.mkdir()
    onnx = next(f for f in shipped.files if f.format == 'onnx')
    shutil.copy(onnx.path, folder / 'detector.onnx')
    data = yaml.safe_load(open(shipped.source))
    data.update(name='copy', files=[{'path': 'detector.onnx', 'sha256': onnx.sha256}])
    (folder / 'detector.yaml').write_text(yaml.safe_dump(data))
    assert resolve_model(folder / 'detector.yaml').name == 'copy'
    assert resolve_model(str(folder / 'detector.onnx')).name == 'copy'
    (folder / 'detector.yaml').unlink()
    with pytest.raises(ModelError, match='has no manifest'):
        resolve_model(folder / 'detector.onnx')
    with pytest.raises(ModelError, match='known models: .*nanodet-m-416'):
        resolve_model('no-such-model')
    with pytest.raises(ModelError, match='does not exist'):
        resolve_model(tmp_path / 'absent.yaml')
    (tmp_path / 'broken.yaml').write_text('name: [unclosed')
    with pytest.raises(ModelError, match='not valid YAML'):
        load_manifest(tmp_path / 'broken.yaml')


def test_a_directory_is_named_as_one_not_reported_missing(tmp_path):
    from edge_vision_core.inference.manifest import verify_checksum

    shipped = resolve_model('nanodet-m-416')
    folder = tmp_path / 'models'
    folder.mkdir()
    shutil.copy(shipped.source, folder / 'nanodet-m-416.yaml')
    with pytest.raises(ModelError, match=r'models is a directory, not a file \(it holds '
                                         r'nanodet-m-416.yaml\)'):
        resolve_model(folder)
    (tmp_path / 'weights.onnx').mkdir()  # a directory with a model suffix
    with pytest.raises(ModelError, match='weights.onnx is a directory'):
        resolve_model(tmp_path / 'weights.onnx')
    # a manifest whose file entry names a directory
    data = yaml.safe_load(open(shipped.source))
    data.update(name='dir', files=[{'path': 'weights.onnx'}])
    (tmp_path / 'dir.yaml').write_text(yaml.safe_dump(data))
    manifest = resolve_model(tmp_path / 'dir.yaml')
    with pytest.raises(ModelError, match='model file .*weights.onnx is a directory'):
        verify_checksum(manifest.files[0])


def _copy_default(tmp_path, mutate):
    """The default manifest + ONNX copied to tmp_path, the ONNX bytes changed by ``mutate``."""
    shipped = resolve_model('nanodet-m-416')
    onnx = next(f for f in shipped.files if f.format == 'onnx')
    data = onnx.path.read_bytes()
    (tmp_path / 'model.onnx').write_bytes(mutate(data))
    manifest = yaml.safe_load(open(shipped.source))
    manifest['files'] = [{'path': 'model.onnx', 'sha256': onnx.sha256}]
    (tmp_path / 'model.yaml').write_text(yaml.safe_dump(manifest))
    return tmp_path / 'model.yaml'


@pytest.mark.parametrize('mutate', [lambda d: d[: len(d) // 2],
                                    lambda d: d[:1000] + b'\0' * 64 + d[1064:]],
                         ids=['truncated', 'corrupt'])
def test_truncated_or_corrupt_file_fails_with_the_file_named(tmp_path, mutate):
    path = _copy_default(tmp_path, mutate)
    with pytest.raises(ModelError, match='model.onnx is corrupt or truncated'):
        Detector.create(model=str(path))
    manifest = load_manifest(path)
    with pytest.raises(ModelError, match='SHA-256'):
        verify_checksum(manifest.files[0])


def test_truncated_file_without_checksum_check_still_fails_cleanly(tmp_path):
    path = _copy_default(tmp_path, lambda d: d[: len(d) // 3])
    for backend in ('onnxruntime', 'openvino'):
        with pytest.raises(ModelError, match=r'could not load .*model\.onnx'):
            Detector.create(model=str(path), backend=backend, verify_checksum=False)


MISMATCH = [
    ({'labels': ['a', 'b', 'c', 'd']}, 'labels count'),
    ({'input_size': [32, 32]}, 'input_size is 32x32'),
    ({'layout': 'NHWC'}, 'channels'),
]


@pytest.mark.parametrize(('change', 'message'), MISMATCH, ids=[m for _, m in MISMATCH])
def test_manifest_model_mismatch_fails_at_load(constant_model, change, message):
    outputs = {'output0': np.zeros((1, 4 + 2, 20), np.float32)}
    path = constant_model(outputs, {'adapter': 'yolov8', 'labels': ['a', 'b'], **change})
    with pytest.raises(ModelError, match=message) as info:
        Detector.create(model=path)
    assert 'synthetic.onnx' in str(info.value)


def test_wrong_input_rank_fails_at_load(constant_model):
    outputs = {'output0': np.zeros((1, 6, 20), np.float32)}
    path = constant_model(outputs, {'adapter': 'yolov8', 'labels': ['a', 'b']},
                          input_shape=(1, 32, 64))
    with pytest.raises(ModelError, match='rank 4'):
        Detector.create(model=path)


def test_nanodet_labels_count_mismatch(tmp_path):
    shipped = resolve_model('nanodet-m-416')
    data = yaml.safe_load(open(shipped.source))
    data['labels'] = data['labels'][:79]
    data['files'] = [{'path': str(f.path), 'format': f.format, 'precision': f.precision}
                     for f in shipped.files]
    (tmp_path / 'short.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match='79 labels'):
        Detector.create(model=str(tmp_path / 'short.yaml'))


def test_a_directory_is_named_as_a_directory(tmp_path):
    (tmp_path / 'weights.onnx').mkdir()
    (tmp_path / 'models').mkdir()
    (tmp_path / 'dir.yaml').mkdir()
    for spec in (tmp_path / 'weights.onnx', tmp_path / 'models', tmp_path / 'dir.yaml'):
        with pytest.raises(ModelError, match=f'model {spec} is a directory, not a file'):
            resolve_model(spec)
    data = yaml.safe_load(open(resolve_model('nanodet-m-416').source))
    data.pop('files', None)
    data.update(file=str(tmp_path / 'weights.onnx'), sha256='')
    (tmp_path / 'points_at_a_dir.yaml').write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match='weights.onnx is a directory, not a file'):
        Detector.create(model=str(tmp_path / 'points_at_a_dir.yaml'))
