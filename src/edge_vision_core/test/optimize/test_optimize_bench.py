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


# --- scoring and reports from typed rows, without worker processes -------------------------------

def _planned(variant, precision, recipe='source', file_format='onnx', size=416):
    from edge_vision_core.optimize.bench import PlannedRow

    return PlannedRow(variant, f'/m/{variant}.yaml', recipe, f'{variant}.{file_format}',
                      file_format, precision, (size, size), 'onnxruntime', 'cpu', 0,
                      4_000_000, 0.3)


def _measurement(fps, detections, error=None):
    from edge_vision_core.optimize.bench import Latency, Measurement

    if error:
        return Measurement.failed(error)
    return Measurement(load_s=0.5, base_rss_mb=80.0, peak_rss_mb=150.0, device='cpu',
                       latency=Latency(1000 / fps, 1100 / fps, 1200 / fps, 1050 / fps),
                       fps=fps, detections=detections, detect_ms_p50=20.0)


def test_report_rows_scores_and_files_from_typed_rows(tmp_path):
    from edge_vision_core.optimize.bench import MeasuredRow, write_reports
    from edge_vision_core.optimize.bench.report import ReferenceInfo, build_report, row_agreement
    from edge_vision_core.types import Detections

    truth = [Detections([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 1]),
             Detections([[5, 5, 50, 50]], [0.7], [2])]
    half = [truth[0][[0]], Detections.empty()]  # finds one box of three
    config = BenchConfig(min_agreement=0.9)
    rows = [MeasuredRow(_planned('m-416', 'fp32'), _measurement(10.0, truth),
                        _measurement(4.0, None)),
            MeasuredRow(_planned('m-416-onnx-int8', 'int8', 'onnx-int8'),
                        _measurement(20.0, truth), _measurement(6.0, None, 'out of memory')),
            MeasuredRow(_planned('m-416-onnx-fp16', 'fp16', 'onnx-fp16'),
                        _measurement(30.0, half)),
            MeasuredRow(_planned('m-416-bad', 'fp32', 'prune'), _measurement(0, None, 'boom'))]
    for row in rows:
        row.agreement = row_agreement(row, truth, config)
    reference = ReferenceInfo('m-416', '/m/m-416.yaml', (416, 416), 0.3, 3,
                              rows[0].result.latency)
    report = build_report(rows, truth, reference, machine_description(),
                          {'count': 2, 'source': 'two test images', 'sha256': '0' * 64}, config,
                          {'iterations': 5, 'warmup': 1}, 2, ['a note'])
    data = report.as_dict()
    ok_keys = ['variant', 'manifest', 'recipe', 'file', 'format', 'precision', 'input_size',
               'backend', 'device', 'model_bytes', 'threads', 'status', 'latency_ms', 'fps',
               'fps_1t', 'latency_1t_p50_ms', 'detect_ms_p50', 'load_s', 'peak_rss_mb',
               'base_rss_mb', 'map50', 'mean_iou', 'agreement']
    fp32, int8, fp16, bad = data['rows']
    assert list(fp32) == [*ok_keys, 'fp32_baseline', 'speedup', 'speedup_1t',
                          'map50_same_size', 'mean_iou_same_size']
    assert list(int8) == [*ok_keys, 'error_1t', 'fp32_baseline', 'speedup',
                          'map50_same_size', 'mean_iou_same_size']
    assert list(bad) == [*ok_keys[:11], 'status', 'error'] and bad['error'] == 'boom'
    assert fp32['fps_1t'] == 4.0 and int8['fps_1t'] is None and int8['error_1t'] == 'out of memory'
    assert (fp32['speedup'], int8['speedup'], fp16['speedup']) == (1.0, 2.0, 3.0)
    assert fp32['fp32_baseline'] == 'm-416 m-416.onnx' and fp32['input_size'] == [416, 416]
    assert fp32['map50'] == int8['map50'] == 1.0 and fp16['map50'] < 0.9
    # the fastest row that keeps agreement, not the fastest row
    best = data['best_per_backend']['onnxruntime']
    assert best['variant'] == 'm-416-onnx-int8' and best['meets_agreement'] is True
    assert best['tradeoff'].startswith('20.0 fps with 2 threads (2.00x the FP32 throughput)')
    target = data['targets']['int8_onnxruntime_cpu']
    assert target['met'] is True and target['rows'][0]['map50_same_size'] == 1.0
    assert data['reference']['latency_ms'] == {'p50': 100.0, 'p95': 110.0, 'p99': 120.0,
                                               'mean': 105.0}
    paths = write_reports(report, tmp_path)
    assert json.loads(paths['json'].read_text()) == json.loads(json.dumps(data))
    markdown = paths['markdown'].read_text()
    assert '- m-416-bad (m-416-bad.onnx) on onnxruntime:cpu: boom' in markdown
    assert '**met**' in markdown and '- a note' in markdown
    assert '| m-416-onnx-fp16 | m-416-onnx-fp16.onnx | fp16 | 416 | onnxruntime:cpu | 33.33 |' \
        in markdown
