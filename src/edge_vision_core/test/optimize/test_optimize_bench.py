"""A tiny benchmark run writes JSON, Markdown and PNG with the expected fields; CLI errors."""

from __future__ import annotations

import json
import math

import pytest

from edge_vision_core.errors import ConfigError, ModelError
from edge_vision_core.optimize import OptimizeConfig, default_eval_images, optimize_model
from edge_vision_core.optimize.bench import BenchConfig, machine_description, run_benchmark
from edge_vision_core.optimize.recipes import recipe_available

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')
pytest.importorskip('skimage.data')


def needs_recipe(name: str) -> None:
    """Skip where this onnxruntime cannot run recipe ``name`` (e.g. 1.12, the newest for
    Ubuntu 22.04's numpy 1.21, has no FP16 converter without torch)."""
    reason = recipe_available(name)
    if reason:
        pytest.skip(f'{name}: {reason}')


ROW_FIELDS = {'variant', 'recipe', 'file', 'format', 'precision', 'input_size', 'backend',
              'device', 'model_bytes', 'latency_ms', 'fps', 'fps_1t', 'load_s', 'peak_rss_mb',
              'map50', 'mean_iou', 'agreement', 'status'}


@pytest.mark.slow
def test_tiny_bench_writes_the_three_reports(tmp_path):
    needs_recipe('onnx-fp16')
    variants = tmp_path / 'variants'
    optimize_model('nanodet-m-416', variants, OptimizeConfig(recipes=('onnx-fp16',),
                                                             verify=False))
    lines: list[str] = []
    report = run_benchmark(['nanodet-m-416', variants], tmp_path / 'report',
                           BenchConfig(backends=('onnxruntime',), iterations=5, warmup=1,
                                       threads=2),
                           progress=lines.append)
    files = {p.name for p in (tmp_path / 'report').iterdir()}
    assert files == {'bench.json', 'bench.md', 'bench.png'}
    assert (tmp_path / 'report' / 'bench.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    on_disk = json.loads((tmp_path / 'report' / 'bench.json').read_text())
    assert on_disk['input_set']['sha256'] == default_eval_images().sha256
    assert {'cpu', 'cores', 'ram_gib', 'os', 'versions'} <= set(on_disk['machine'])
    rows = on_disk['rows']
    assert [(r['variant'], r['precision']) for r in rows] == [
        ('nanodet-m-416', 'fp32'), ('nanodet-m-416-onnx-fp16', 'fp16')]
    for row in rows:
        assert row['status'] == 'ok' and ROW_FIELDS <= set(row)
        lat = row['latency_ms']
        assert 0 < lat['p50'] <= lat['p95'] <= lat['p99']
        assert row['fps'] > 0 and row['fps_1t'] > 0 and row['peak_rss_mb'] > 0
    # the reference model measured against itself agrees exactly
    assert rows[0]['map50'] == 1.0 and rows[0]['mean_iou'] == pytest.approx(1.0)
    assert rows[0]['speedup'] == 1.0
    assert 0.9 <= rows[1]['map50'] <= 1.0
    assert report['best_per_backend']['onnxruntime']['variant'] in {r['variant'] for r in rows}
    assert report['targets']['int8_onnxruntime_cpu']['met'] is None  # no INT8 row here
    markdown = (tmp_path / 'report' / 'bench.md').read_text()
    assert 'nanodet-m-416-onnx-fp16' in markdown and 'Best variant per backend' in markdown
    assert any(line.startswith('[2/2]') for line in lines)


def test_machine_description_names_the_host():
    info = machine_description()
    assert info['cores'] >= 1 and info['cpu'] and not math.isnan(info['ram_gib'])
    assert 'onnxruntime' in info['backends']


@pytest.mark.parametrize(('models', 'config', 'error', 'message'), [
    (['nanodet-m-416'], BenchConfig(backends=('onnxrt',)), ConfigError, 'unknown backend'),
    (['no-such-model'], BenchConfig(), ModelError, 'unknown model'),
])
def test_bench_errors(tmp_path, models, config, error, message):
    with pytest.raises(error, match=message):
        run_benchmark(models, tmp_path, config)


def test_cli_errors_are_clean(tmp_path, capsys):
    main = pytest.importorskip('edge_vision.cli').main

    assert main(['optimize', '--out', str(tmp_path), '--recipes', 'onnx-int9']) == 2
    assert 'unknown recipe(s) onnx-int9' in capsys.readouterr().err
    assert main(['optimize', '--out', str(tmp_path), '--recipes', 'onnx-int8', '--calib',
                 str(tmp_path / 'missing')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    assert main(['bench', '--models', 'nanodet-m-416']) == 2
    assert '--out' in capsys.readouterr().err


def test_cli_optimize_writes_a_loadable_variant(tmp_path, capsys):
    main = pytest.importorskip('edge_vision.cli').main
    needs_recipe('onnx-fp16')

    assert main(['optimize', '--out', str(tmp_path), '--recipes', 'onnx-fp16']) == 0
    out = capsys.readouterr().out
    assert 'nanodet-m-416-onnx-fp16' in out
    assert (tmp_path / 'nanodet-m-416-onnx-fp16.yaml').is_file()
    import cv2
    import skimage.data

    image = tmp_path / 'astronaut.png'
    cv2.imwrite(str(image), skimage.data.astronaut()[..., ::-1])
    assert main(['detect', '--model', str(tmp_path / 'nanodet-m-416-onnx-fp16.yaml'),
                 str(image)]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert 'person' in {d['class_name'] for d in found}
