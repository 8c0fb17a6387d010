"""The one-file model: save/load round trips and clear refusals of files that do not fit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edge_vision_core import ModelError
from edge_vision_core.anomaly import (
    DEFAULT_BACKBONE,
    AnomalyConfig,
    AnomalyDetector,
    ModelHeader,
    load_model_file,
)
from edge_vision_core.anomaly.model_file import FORMAT_VERSION


@pytest.fixture(scope='module')
def saved(brick_detector, tmp_path_factory) -> Path:
    """The session's brick detector saved to a file."""
    return brick_detector.save(tmp_path_factory.mktemp('model') / 'brick.npz')


def raw_header(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON header (as a dict) and the arrays of a model file, unvalidated."""
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(bytes(data['header']).decode())
        arrays = {k: data[k] for k in data.files if k != 'header'}
    return header, arrays


def rewrite(source: Path, target: Path, header_changes=None, array_changes=None) -> Path:
    """A copy of a model file with some header keys / arrays replaced (None value = drop),
    written without any validation (as a foreign tool would)."""
    header, arrays = raw_header(source)
    for key, value in (header_changes or {}).items():
        if value is None:
            header.pop(key, None)
        else:
            header[key] = value
    for key, value in (array_changes or {}).items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    with open(target, 'wb') as fh:
        np.savez(fh, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    return target


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
        assert loaded.model_info.method == 'patchcore'
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


def test_header_records_what_the_model_depends_on(saved, brick_detector):
    header, arrays = load_model_file(saved)
    assert isinstance(header, ModelHeader) and header == brick_detector.model_info
    raw, _ = raw_header(saved)
    assert raw['format'] == 'edge_vision.anomaly' and raw['format_version'] == FORMAT_VERSION
    assert header.backbone.id == DEFAULT_BACKBONE and len(header.backbone.digest) == 64
    assert header.input_size == (128, 128) and header.grid == (16, 16)
    assert header.threshold > 0 and header.calibration['num_images'] == 10
    assert arrays['memory_bank'].dtype == np.float32
    assert arrays['memory_bank'].shape[1] == header.embedding_dim
    assert arrays['projection'].shape[1] == header.embedding_dim
    assert len(header.layer_scales) == len(header.layers)


@pytest.mark.parametrize('change, message', [
    # another backbone: the message names both
    ({'backbone': {'id': 'resnet18-backbone', 'digest': '0' * 64}},
     f"fitted with backbone 'resnet18-backbone', this detector uses '{DEFAULT_BACKBONE}'"
     '.*refit'),
    ({'backbone': {'id': DEFAULT_BACKBONE, 'digest': 'f' * 64}},
     'another version of backbone.*refitted'),
    ({'method': 'knn'}, "header field 'method' must be one of \\['patchcore', 'padim'\\]"),
    ({'threshold': None}, 'missing header fields threshold'),
    ({'threshold': 'high'}, "header field 'threshold' must be a finite number"),
    ({'threshold': -1.0}, "header field 'threshold' must be >= 0"),
    ({'input_size': [128]}, "header field 'input_size' must have 2 items"),
    ({'input_size': [120, 128]}, "header field 'input_size' must be multiples of 16"),
    ({'layers': 'stride8'}, "header field 'layers' must be a list"),
    ({'layer_scales': [1.0]}, "header field 'layer_scales' has 1 values for"),
    ({'grid': [8, 8]}, "header field 'grid' is \\[8, 8\\], but input size 128x128"),
    ({'patch_pool': True}, "header field 'patch_pool' must be an integer"),
    ({'backbone': 'nanodet'}, "header field 'backbone' must be a JSON object"),
])
def test_models_made_for_something_else_or_malformed_are_refused(saved, tmp_path, change,
                                                                 message):
    path = rewrite(saved, tmp_path / 'x.npz', change)
    with pytest.raises(ModelError, match=message) as info:
        AnomalyDetector.from_file(path)
    assert 'x.npz' in str(info.value)


@pytest.mark.parametrize('layers, stored, old', [
    (('color8',), 'color-gradient/2', 'color-gradient/0'),
    (('color8', 'contrast8'), 'color-gradient/2+local-contrast/1',
     'color-gradient/2+local-contrast/0'),
    (('contrast8',), 'local-contrast/1', 'color-gradient/2'),
])
def test_built_in_layers_of_another_version_are_refused(small_bench, tmp_path, fast, layers,
                                                        stored, old):
    with AnomalyDetector(fast, backbone='none', layers=layers) as det:
        det.fit(small_bench / 'brick' / 'train' / 'good')
        path = det.save(tmp_path / 'builtin.npz')
    assert raw_header(path)[0]['color_features'] == stored
    AnomalyDetector.from_file(path).close()  # its own version loads
    bad = rewrite(path, tmp_path / 'old.npz', {'color_features': old})
    with pytest.raises(ModelError, match=re.escape(f'built-in features {old!r}') + '.*refit'):
        AnomalyDetector.from_file(bad)


def test_a_forged_file_with_pickled_objects_is_refused_without_unpickling(saved, tmp_path):
    """An .npz whose arrays are pickles (object arrays) is refused before anything in it is
    unpickled: the pickle below would create a file when loaded."""
    marker = tmp_path / 'unpickled'
    header, arrays = raw_header(saved)
    payload = np.empty(1, dtype=object)
    payload[0] = _Trap(str(marker))
    for name, forged in {'header': {'header': payload, **arrays},
                         'memory_bank': {'header': np.frombuffer(json.dumps(header).encode(),
                                                                 np.uint8),
                                         **arrays, 'memory_bank': payload}}.items():
        path = tmp_path / f'forged_{name}.npz'
        with open(path, 'wb') as fh:
            np.savez(fh, allow_pickle=True, **forged)
        with pytest.raises(ModelError, match=f"pickled Python objects.*'{name}'.*without "
                                             f'unpickling'):
            AnomalyDetector.from_file(path)
        with pytest.raises(ModelError, match='pickled'):
            load_model_file(path)
    assert not marker.exists()


class _Trap:
    """Unpickling it creates a file (proof that something was unpickled)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_arrays_of_other_shapes_than_declared_are_refused(saved, tmp_path):
    _, arrays = raw_header(saved)
    bank = arrays['memory_bank']
    half = bank.shape[1] // 2  # narrower than the header declares, whatever the default dim
    cases = {
        'narrow': (bank[:, :half], rf"'memory_bank' has shape \[\d+, {half}\], the header "
                                   rf'declares \[N, {bank.shape[1]}\]'),
        'float64': (bank.astype(np.float64), "'memory_bank' has dtype float64"),
        'nan': (np.full_like(bank, np.nan), "'memory_bank' holds NaN"),
    }
    for name, (value, message) in cases.items():
        path = rewrite(saved, tmp_path / f'{name}.npz', array_changes={'memory_bank': value})
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


@pytest.mark.parametrize('version', [1, FORMAT_VERSION + 1])
def test_another_format_version_is_refused(saved, tmp_path, version):
    path = rewrite(saved, tmp_path / 'other.npz', {'format_version': version})
    with pytest.raises(ModelError, match=f'format version {version}.*refit'):
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
    incomplete = rewrite(saved, tmp_path / 'a.npz', array_changes={'memory_bank': None})
    with pytest.raises(ModelError, match='incomplete.*memory_bank'):
        AnomalyDetector.from_file(incomplete)
    header, arrays = raw_header(saved)
    projection = arrays['projection']
    half = arrays['memory_bank'].shape[1] // 2  # whatever the default dimension is
    narrow = rewrite(saved, tmp_path / 'b.npz', {'embedding_dim': half}, {
        'memory_bank': arrays['memory_bank'][:, :half],
        'projection': projection[:, :half].copy()})
    with AnomalyDetector.from_file(narrow) as det:  # consistent in itself: loads
        assert det.model_info.embedding_dim == half
    wrong = rewrite(saved, tmp_path / 'c.npz', {'embedding_dim': half},
                    {'memory_bank': arrays['memory_bank'][:, :half]})
    with pytest.raises(ModelError, match=f'inconsistent.*embedding dimension {half}'):
        AnomalyDetector.from_file(wrong)


def test_nothing_to_save(tmp_path, fast):
    with AnomalyDetector(fast, backbone='none', layers=('color8',)) as det:
        with pytest.raises(ModelError, match='nothing to save'):
            det.save(tmp_path / 'x.npz')
    assert not (tmp_path / 'x.npz').exists()


def test_a_version_2_model_file_scores_plain_distances(small_bench, read_folder, make_detector,
                                                       tmp_path):
    """Version 2 had no background level: such a file (here one fitted without it, its version
    set back to 2 and stray background fields added) loads and scores plain distances, as the
    release that wrote it did; version 3 exists so that such a release refuses new files."""
    det = make_detector(background_quantile=0.0)
    det.fit(small_bench / 'brick' / 'train' / 'good')
    path = det.save(tmp_path / 'plain.npz')
    assert raw_header(path)[0]['format_version'] == 3
    old = rewrite(path, tmp_path / 'v2.npz', {'format_version': 2, 'background_quantile': 0.9,
                                              'background_cap': 0.5})
    image = read_folder(small_bench / 'brick' / 'test' / 'hole')[0]
    with AnomalyDetector.from_file(old) as loaded:
        assert loaded.model_info.background_quantile == 0.0
        assert loaded.score(image).score == pytest.approx(det.score(image).score, rel=1e-5)
