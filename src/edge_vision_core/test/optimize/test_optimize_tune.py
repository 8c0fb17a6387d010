"""Autotuning: the cache per device fingerprint, its invalidation, and ``model: auto`` plans."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_vision_core.errors import ConfigError
from edge_vision_core.inference.manifest import resolve_model
from edge_vision_core.inference.pool import WorkerSpec
from edge_vision_core.optimize.tune import (
    AUTO_FALLBACK_MODEL,
    TuneConfig,
    load_cached,
    plan_inference,
    tune,
    tuned,
)

pytest.importorskip('onnxruntime')


def _model_copy(folder) -> str:
    """The default detector's manifest and ONNX file copied into ``folder`` (a model the test
    may change)."""
    source = resolve_model('nanodet-m-416')
    onnx = next(f for f in source.files if f.format == 'onnx' and f.precision == 'fp32')
    shutil.copy(onnx.path, folder / onnx.path.name)
    text = Path(source.source).read_text()
    lines = [line for line in text.splitlines()
             if 'path:' not in line or onnx.path.name + ',' in line]
    (folder / 'nanodet-m-416.yaml').write_text('\n'.join(lines) + '\n')
    return str(folder / 'nanodet-m-416.yaml')


def _quick(model: str) -> TuneConfig:
    return TuneConfig(model=model, backends=('onnxruntime',), seconds=0.1, rounds=1,
                      clip_frames=2, photos=False, make_int8=False, top=1, max_workers=2)


@pytest.mark.parametrize(('args', 'expected'), [
    # an explicit model: one worker, the runtime's own threads
    ({'model': 'nanodet-m-416', 'backend': 'openvino'},
     [WorkerSpec('openvino', 'auto', 0, 'nanodet-m-416', 'auto')]),
    # N workers share the cores
    ({'model': 'nanodet-m-416', 'backend': 'onnxruntime', 'workers': 2, 'cores': 4},
     [WorkerSpec('onnxruntime', 'auto', 2, 'nanodet-m-416', 'auto')] * 2),
    ({'model': 'nanodet-m-416', 'backend': 'onnxruntime', 'workers': 3, 'cores': 2},
     [WorkerSpec('onnxruntime', 'auto', 1, 'nanodet-m-416', 'auto')] * 3),
    # threads asked for win over the split
    ({'model': 'm.yaml', 'backend': 'litert', 'threads': 3, 'workers': 2, 'cores': 8},
     [WorkerSpec('litert', 'auto', 3, 'm.yaml', 'auto')] * 2),
])
def test_plan_of_an_explicit_model(args, expected, tmp_path):
    plan = plan_inference(folder=tmp_path, **args)
    assert list(plan.workers) == expected and not plan.tuned


def test_auto_without_a_tuning_is_the_shipped_int8_variant(tmp_path):
    plan = plan_inference('auto', 'onnxruntime', folder=tmp_path)
    assert [w.model for w in plan.workers] == [AUTO_FALLBACK_MODEL]
    assert not plan.tuned and 'edge-vision tune' in plan.reason
    manifest = resolve_model(AUTO_FALLBACK_MODEL)
    assert [f.precision for f in manifest.files] == ['int8']
    # a backend that cannot read the INT8 file (ONNX) gets the FP32 model instead
    assert not any(f.format == 'tflite' for f in manifest.files)
    assert plan_inference('auto', 'litert', folder=tmp_path).workers[0].model == 'nanodet-m-416'


def test_a_detector_of_model_auto_is_the_int8_variant_before_any_tuning(tmp_path,
                                                                           monkeypatch):
    from edge_vision_core.inference import Detector

    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    with Detector.create(model='auto', threads=1) as detector:
        assert detector.model_path.name == f'{AUTO_FALLBACK_MODEL}.onnx'
        assert detector.options.model == AUTO_FALLBACK_MODEL


@pytest.mark.parametrize(('workers', 'threads', 'needle'), [
    (-1, 0, 'workers must be'), (0, -2, 'threads must be'), (True, 0, 'workers must be')])
def test_plan_refuses_bad_counts(workers, threads, needle, tmp_path):
    with pytest.raises(ConfigError, match=needle):
        plan_inference('nanodet-m-416', 'onnxruntime', threads=threads, workers=workers,
                       folder=tmp_path)


@pytest.mark.slow
def test_tuning_is_cached_reused_by_auto_and_invalidated_by_a_model_change(tmp_path):
    model = _model_copy(tmp_path)
    config = _quick(model)
    cache = tmp_path / 'cache'
    lines: list[str] = []
    result = tune(config, lines.append, folder=cache)
    assert result.choice is not None and not result.cached
    assert any(line.startswith('agreement') for line in lines)
    # the FP32 reference agrees with itself; the shipped INT8 variant was considered too
    variants = {r.variant: r for r in result.rows}
    assert set(variants) >= {'nanodet-m-416', AUTO_FALLBACK_MODEL}
    assert variants['nanodet-m-416'].min_agreement == pytest.approx(1.0)
    assert result.choice.passed and result.choice.min_agreement >= config.floor
    fastest = max(r.fps for r in result.rows if r.passed)
    assert result.choice.fps >= fastest * (1.0 - config.tolerance)
    assert {'json', 'text'} <= {p.suffix[1:].replace('txt', 'text') for p in cache.iterdir()}
    assert '* ' in (cache / 'nanodet-m-416.txt').read_text()
    # the same device and model: the cache answers, nothing is measured
    again = tuned(config, lambda line: pytest.fail(f'measured again: {line}'), folder=cache)
    assert again.cached and again.key == result.key
    assert again.describe_choice() == result.describe_choice()
    # model: auto follows the cached choice
    plan = plan_inference('auto', 'openvino', folder=cache, tune_config=config)
    assert plan.tuned and list(plan.workers) == result.workers
    # a tuning whose chosen manifest is gone (made in a checkout since removed) is stale
    chosen = [w.model for w in result.workers if w.model.endswith('.yaml')]
    assert chosen, result.workers
    saved_path = cache / 'nanodet-m-416.json'
    saved = saved_path.read_text()
    saved_path.write_text(saved.replace(json.dumps(chosen[0])[1:-1],
                                        str(tmp_path / 'gone' / 'nanodet-m-416-int8.yaml')))
    assert load_cached(config, cache) is None
    saved_path.write_text(saved)
    assert load_cached(config, cache) is not None
    # a changed model (its manifest's threshold) makes the cache stale
    manifest = tmp_path / 'nanodet-m-416.yaml'
    text = manifest.read_text()
    assert 'score_threshold' in text
    manifest.write_text(text.replace('score_threshold:', 'score_threshold: 0.31 #', 1))
    assert load_cached(config, cache) is None
    assert not plan_inference('auto', 'onnxruntime', folder=cache, tune_config=config).tuned
    assert not tuned(config, lambda line: None, folder=cache).cached
    # and so does another tuning setting
    assert load_cached(dataclasses.replace(config, floor=0.9), cache) is None


def test_a_cache_folder_that_cannot_be_written_is_refused_before_measuring(tmp_path):
    model = _model_copy(tmp_path)
    blocker = tmp_path / 'not-a-folder'
    blocker.write_text('a file where the cache folder would go')
    lines: list[str] = []
    with pytest.raises(ConfigError, match='cannot write to the tuning cache .*XDG_CACHE_HOME'):
        tune(_quick(model), lines.append, blocker / 'tune')
    assert not any('measur' in line for line in lines), lines  # nothing was measured


@pytest.mark.slow
def test_tune_command_prints_its_table_and_reuses_the_cache(tmp_path):
    pytest.importorskip('edge_vision.cli')
    model = _model_copy(tmp_path)
    env_cache = tmp_path / 'xdg'
    args = [sys.executable, '-m', 'edge_vision.cli', 'tune', '--model', model, '--backends',
            'onnxruntime', '--seconds', '0.1', '--rounds', '1', '--clip-frames', '2',
            '--no-photos', '--no-make-int8']
    env = {**os.environ, 'XDG_CACHE_HOME': str(env_cache)}
    first = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert 'variant' in first.stdout and '* nanodet-m-416' in first.stdout
    assert 'measured in' in first.stderr
    assert (env_cache / 'edge_vision' / 'tune' / 'nanodet-m-416.json').is_file()
    second = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert second.returncode == 0 and 'cached result' in second.stderr, second.stderr
    assert second.stdout == first.stdout
    shown = subprocess.run([*args, '--show'], capture_output=True, text=True, timeout=600,
                           env={**env, 'XDG_CACHE_HOME': str(tmp_path / 'empty')})
    assert shown.returncode == 1 and 'no cached tuning' in shown.stderr
