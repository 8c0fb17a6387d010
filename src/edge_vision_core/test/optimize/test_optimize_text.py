"""`edge-vision optimize` and `bench` on the text models: variants keep the text fields, load
in a TextReader and read; the bench times them and reports the text agreement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_vision_core import ConfigError

pytest.importorskip('edge_vision_models')
pytest.importorskip('onnx')
pytest.importorskip('PIL')
pytest.importorskip('skimage.data')
try:
    from edge_vision_core.eval.text_scenes import font_paths
    font_paths()
except ConfigError as _exc:
    pytest.skip(f'no font to render text scenes: {_exc}', allow_module_level=True)

from edge_vision_core.inference.manifest import load_manifest, resolve_model
from edge_vision_core.optimize import OptimizeConfig, optimize_model


def test_recognizer_variant_keeps_height_and_dictionary(tmp_path):
    from edge_vision_core.optimize.recipes import recipe_available

    if recipe_available('onnx-fp16'):
        pytest.skip(f'onnx-fp16 cannot run here: {recipe_available("onnx-fp16")}')
    made = optimize_model('ppocrv4-rec', tmp_path, OptimizeConfig(recipes=('onnx-fp16',)))
    (variant,) = made
    assert variant.name == 'ppocrv4-rec-onnx-fp16'
    source, copy = resolve_model('ppocrv4-rec'), load_manifest(variant.manifest)
    assert copy.adapter == 'ctc_text' and copy.input_size == source.input_size == (320, 48)
    assert copy.options.dictionary.endswith('ppocrv4-rec-onnx-fp16.dict.txt')
    assert (tmp_path / 'ppocrv4-rec-onnx-fp16.dict.txt').read_bytes() == \
        Path(source.options.dictionary).read_bytes()
    assert copy.options.size_multiple == 8 and copy.options.space_threshold == 0.05
    assert (tmp_path / 'ppocrv4-rec-onnx-fp16.dict.txt').is_file()
    assert copy.files[0].precision == 'fp16'


def test_detector_size_variant_is_the_same_dynamic_file(tmp_path):
    made = optimize_model('ppocrv4-det', tmp_path, OptimizeConfig(recipes=('onnx-fp32',),
                                                                  sizes=(640,)))
    (variant,) = made
    copy = load_manifest(variant.manifest)
    assert copy.input_size == (640, 640) and copy.options.size_multiple == 32
    assert copy.files[0].sha256 == resolve_model('ppocrv4-det').files[0].sha256
    assert copy.score_threshold == resolve_model('ppocrv4-det').score_threshold


@pytest.mark.parametrize('model, sizes, message', [
    ('ppocrv4-rec', (640,), 'fixed'),
    ('ppocrv4-det', (650,), 'multiple'),
])
def test_size_errors(tmp_path, model, sizes, message):
    with pytest.raises(ConfigError, match=message):
        optimize_model(model, tmp_path, OptimizeConfig(recipes=('onnx-fp16',), sizes=sizes))


def test_bench_times_a_text_model_and_reports_text_agreement(tmp_path):
    from edge_vision_core.optimize.bench import BenchConfig, run_benchmark

    report = run_benchmark(['ppocrv4-rec'], tmp_path, BenchConfig(
        backends=('onnxruntime',), iterations=5, warmup=1, single_thread=False,
        image_count=2, threads=2))
    (row,) = report['rows']
    assert row['status'] == 'ok', row.get('error')
    assert row['latency_ms']['p50'] > 0 and row['word_agreement'] == 1.0
    assert report['input_set']['source'].startswith('rendered text scenes')
    saved = json.loads((tmp_path / 'bench.json').read_text())
    assert saved['rows'][0]['char_agreement'] == 1.0
    assert 'Text agreement' in (tmp_path / 'bench.md').read_text()
