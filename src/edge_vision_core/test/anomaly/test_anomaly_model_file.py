"""The one-file model: save/load round trips and clear refusals of files that do not fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_vision_core import ModelError
from edge_vision_core.anomaly import AnomalyConfig, AnomalyDetector, load_model_file
from edge_vision_core.anomaly.model_file import FORMAT_VERSION, save_model_file


@pytest.fixture(scope='module')
def saved(brick_detector, tmp_path_factory) -> Path:
    """The session's brick detector saved to a file."""
    return brick_detector.save(tmp_path_factory.mktemp('model') / 'brick.npz')


def rewrite(source: Path, target: Path, header_changes=None, array_changes=None) -> Path:
    """A copy of a model file with some header keys / arrays replaced (None value = drop)."""
    header, arrays = load_model_file(source)
    for key, value in (header_changes or {}).items():
        header[key] = value
    for key, value in (array_changes or {}).items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    header = {k: v for k, v in header.items() if k not in ('format', 'format_version')}
    return save_model_file(target, header, arrays)


def test_round_trip_gives_the_same_scores(brick_detector, saved, small_bench, read_folder):
    images = read_folder(small_bench / 'brick' / 'test' / 'hole')[:2] + read_folder(
        small_bench / 'brick' / 'test' / 'good')[:2]
    with AnomalyDetector.from_file(saved) as loaded, AnomalyDetector(
            AnomalyConfig(model_path=str(saved))) as by_config:
        for image in images:
            expected = brick_detector.score(image)
            for det in (loaded, by_config):
                got = det.score(image)
                # the same model: equal up to the run-to-run jitter of multi-threaded float32
                # compute (about 1e-5 relative), far below any difference a lost bit makes
                assert got.score == pytest.approx(expected.score, rel=1e-4)
                assert got.threshold == expected.threshold
                np.testing.assert_allclose(got.heatmap, expected.heatmap, rtol=1e-4, atol=1e-6)
                np.testing.assert_allclose(got.regions.boxes, expected.regions.boxes, atol=1.0)
        assert loaded.model_info['method'] == 'patchcore'
        assert loaded.config.layers == brick_detector.config.layers


def test_padim_round_trip(small_bench, tmp_path, fast, read_folder):
    with AnomalyDetector(fast, method='padim', layers=('stride8', 'color8')) as det:
        det.fit(small_bench / 'coffee' / 'train' / 'good')
        path = det.save(tmp_path / 'coffee.npz')
        image = read_folder(small_bench / 'coffee' / 'test' / 'hole')[0]
        expected = det.score(image).score
    with AnomalyDetector.from_file(path, backend='openvino' if _has_openvino() else
                                   'onnxruntime') as loaded:
        assert loaded.config.method == 'padim'
        assert loaded.score(image).score == pytest.approx(expected, rel=1e-3)


def _has_openvino() -> bool:
    from edge_vision_core.inference.backends import available_backends
    return 'openvino' in available_backends()


def test_header_records_what_the_model_depends_on(saved):
    header, arrays = load_model_file(saved)
    assert header['format'] == 'edge_vision.anomaly'
    assert header['format_version'] == FORMAT_VERSION
    assert header['backbone']['id'] == 'nanodet-m-416-backbone'
    assert len(header['backbone']['digest']) == 64
    assert header['input_size'] == [128, 128] and header['color_features']
    assert header['threshold'] > 0 and header['calibration']['num_images'] == 10
    assert arrays['memory_bank'].dtype == np.float32
    assert arrays['projection'].shape == (128 + 256 + 11 + 11, 128)


@pytest.mark.parametrize('change, message', [
    ({'backbone': {'id': 'resnet18-backbone', 'digest': '0' * 64}},
     "fitted with backbone 'resnet18-backbone'.*refit"),
    ({'backbone': {'id': 'nanodet-m-416-backbone', 'digest': 'f' * 64}},
     'another version of backbone.*refitted'),
    ({'color_features': 'color-gradient/0'}, 'colour statistics.*refit'),
    ({'method': 'knn'}, 'unknown method'),
    ({'threshold': None}, 'threshold'),
])
def test_models_made_for_something_else_are_refused(saved, tmp_path, change, message):
    header_changes = {k: v for k, v in change.items() if v is not None}
    if None in change.values():
        header, arrays = load_model_file(saved)
        header = {k: v for k, v in header.items()
                  if k not in change and k not in ('format', 'format_version')}
        path = save_model_file(tmp_path / 'x.npz', header, arrays)
    else:
        path = rewrite(saved, tmp_path / 'x.npz', header_changes)
    with pytest.raises(ModelError, match=message):
        AnomalyDetector.from_file(path)


def test_another_input_size_is_refused(saved):
    with pytest.raises(ModelError, match=r'input size 128x128.*configured for 160x160.*refit'):
        AnomalyDetector.from_file(saved, input_width=160, input_height=160)


def test_a_colour_only_model_loads_whatever_backbone_is_configured(small_bench, tmp_path, fast):
    with AnomalyDetector(fast, backbone='none', layers=('color8',)) as det:
        det.fit(small_bench / 'brick' / 'train' / 'good')
        path = det.save(tmp_path / 'colour.npz')
    with AnomalyDetector.from_file(path) as loaded:  # configured backbone: the default
        assert loaded.extractor.id == 'none' and loaded.extractor.backend is None


def test_a_backbone_model_with_no_backbone_configured_is_refused(saved):
    with pytest.raises(ModelError, match="this detector uses 'none'"):
        AnomalyDetector.from_file(saved, backbone='none')


def test_another_format_version_is_refused(saved, tmp_path):
    header, arrays = load_model_file(saved)
    header['format_version'] = FORMAT_VERSION + 1
    path = tmp_path / 'future.npz'
    with open(path, 'wb') as fh:
        np.savez(fh, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    with pytest.raises(ModelError, match=f'format version {FORMAT_VERSION + 1}.*refit'):
        AnomalyDetector.from_file(path)


def test_corrupt_and_foreign_files_are_refused(saved, tmp_path):
    data = saved.read_bytes()
    (tmp_path / 'truncated.npz').write_bytes(data[:len(data) // 2])
    (tmp_path / 'noise.npz').write_bytes(np.random.default_rng(0).bytes(4096))
    with open(tmp_path / 'plain.npz', 'wb') as fh:
        np.savez(fh, weights=np.zeros(3))
    cases = {'truncated.npz': 'corrupt or truncated', 'noise.npz': 'corrupt or truncated',
             'plain.npz': 'not an edge_vision anomaly model', 'missing.npz': 'does not exist'}
    for name, message in cases.items():
        with pytest.raises(ModelError, match=message):
            AnomalyDetector.from_file(tmp_path / name)


def test_inconsistent_arrays_are_refused(saved, tmp_path):
    header, arrays = load_model_file(saved)
    incomplete = rewrite(saved, tmp_path / 'a.npz', array_changes={'memory_bank': None})
    with pytest.raises(ModelError, match='incomplete.*memory_bank'):
        AnomalyDetector.from_file(incomplete)
    narrow = rewrite(saved, tmp_path / 'b.npz',
                     array_changes={'memory_bank': arrays['memory_bank'][:, :64]})
    with pytest.raises(ModelError, match='inconsistent'):
        AnomalyDetector.from_file(narrow)


def test_nothing_to_save(tmp_path, fast):
    with AnomalyDetector(fast, backbone='none', layers=('color8',)) as det:
        with pytest.raises(ModelError, match='nothing to save'):
            det.save(tmp_path / 'x.npz')
    assert not (tmp_path / 'x.npz').exists()
