"""Hardware evaluation: every model variant on every installed backend and device, measured.

:func:`run_benchmark` takes models (registered names, manifest YAMLs, or folders of manifests
such as the output of ``edge-vision optimize``) and measures every combination of

    model file (format x precision x input size) x installed backend that reads the format
    x device of that backend here

where devices are the backend's own (ONNX Runtime ``cpu``/``cuda``/``tensorrt``, OpenVINO
``CPU``/``GPU``/``NPU``, LiteRT ``cpu`` and ``edgetpu`` for INT8 TFLite files, TensorRT
``cuda`` for ``.engine`` files); what is not installed or not present is skipped, and the
report lists the backends and devices it found. OpenVINO's ``AUTO`` is left out (it picks one
of the listed devices).

Each row is measured in fresh processes (:mod:`._bench_worker`): once with ``threads`` runtime
threads (default: all cores) for latency p50/p95/p99, throughput, load time, peak RSS and the
detections on the evaluation images, and once with 1 thread for the single-thread throughput.

**Agreement** with the FP32 reference (the ``reference`` model's FP32 ONNX file on ONNX Runtime
CPU, at its own input size): the reference's detections at its manifest score threshold are the
ground truth; the row's detections at ``eval_score_threshold`` (low, so the whole ranking
counts) give mAP@0.5 (:func:`edge_vision_core.eval.detection.detection_agreement`: per class,
all-point interpolated AP, mean over the classes present in the reference), and at the row's
own manifest threshold the mean IoU of matched boxes, precision and recall.

Text models (``db_text``, ``ctc_text``, ``text_direction`` manifests, e.g. ``ppocrv4-det``
and the variants ``edge-vision optimize`` makes of it) are measured the same way on their own
inputs (see :mod:`._bench_worker`); their agreement is that of the lines a TextReader reads
with the variant in its slot against the reference's: mAP@0.5 of the line boxes, and word and
character agreement of the texts (:mod:`edge_vision_core.eval.ocr`). Their default evaluation
images are rendered text scenes (the first 16 of the ``tune`` split).

Outputs in ``out_dir``: ``bench.json`` (machine description, SHA-256 of the evaluation images,
settings, rows, best variant per backend, the INT8 target check), ``bench.md`` (the same as
tables) and ``bench.png`` (latency p50 against agreement mAP, one marker per backend).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import check_config, config_to_mapping, param
from ..errors import ConfigError, ModelError
from ..eval.detection import detection_agreement
from ..inference.manifest import model_file_bytes
from ..types import Detections
from .images import ImageSet, default_eval_images, load_image_set

__all__ = ['BenchConfig', 'machine_description', 'run_benchmark', 'write_reports']

_LOG = logging.getLogger(__name__)

_SKIP_DEVICES = {'AUTO'}
_TARGET_SPEEDUP = 1.5


@dataclass(frozen=True)
class BenchConfig:
    """Settings of :func:`run_benchmark` (``edge-vision bench`` options)."""

    backends: tuple[str, ...] = field(default=(), metadata=param(
        'Backends to measure (onnxruntime, openvino, litert, tensorrt); empty = every '
        'installed one.'))
    devices: tuple[str, ...] = field(default=(), metadata=param(
        'Devices to measure (case-insensitive, e.g. cpu, cuda, GPU, edgetpu); empty = every '
        'device each backend has here.'))
    threads: int = field(default=0, metadata=param(
        'Runtime threads of the multi-thread run; 0 = all CPU cores.', min=0, max=256))
    single_thread: bool = field(default=True, metadata=param(
        'Also measure the throughput with 1 runtime thread (a second fresh process).'))
    warmup: int = field(default=5, metadata=param(
        'Untimed inferences before timing.', min=0, max=10000))
    iterations: int = field(default=50, metadata=param(
        'Timed inferences per measurement.', min=5, max=100000))
    reference: str = field(default='', metadata=param(
        'Model whose FP32 ONNX file on ONNX Runtime CPU is the agreement reference; empty = '
        'the first model given.'))
    images: str = field(default='', metadata=param(
        'Evaluation images: a folder, a video, or empty for the fixed default set '
        '(scikit-image photographs, whole, mirrored and cropped).'))
    image_count: int = field(default=64, metadata=param(
        'At most this many evaluation images from a folder or video.', min=1, max=10000))
    eval_score_threshold: float = field(default=0.05, metadata=param(
        'Score threshold of the variants for mAP (low: AP ranks all detections).',
        min=0.0, max=1.0))
    iou_threshold: float = field(default=0.5, metadata=param(
        'IoU of a match for the agreement (0.5 = mAP@0.5).', min=0.05, max=1.0))
    min_agreement: float = field(default=0.9, metadata=param(
        'Agreement mAP a variant needs to be named best of its backend.', min=0.0, max=1.0))
    rank_by: str = field(default='fps', metadata=param(
        'Throughput that names the best variant per backend: fps (N threads) or fps_1t (1 '
        'thread; steadier on a machine whose cores other processes also use).',
        choices=('fps', 'fps_1t')))
    rounds: int = field(default=1, metadata=param(
        'Measure every row this many times, rows interleaved, and keep each row\'s fastest '
        'round (less noise from other load on the machine; agreement comes from round 1).',
        min=1, max=100))
    timeout_s: float = field(default=600.0, metadata=param(
        'Time limit of one measurement process.', min=10.0, max=86400.0, unit='s'))

    def __post_init__(self) -> None:
        check_config(self)


# -- machine ----------------------------------------------------------------------------------

_FLAGS = ('sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512_vnni', 'avx_vnni',
          'avx512_bf16', 'amx_int8', 'amx_bf16', 'asimd', 'asimddp', 'fphp')


def machine_description() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python and runtime versions, relevant CPU flags, devices."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            key = key.strip()
            if key in ('model name', 'Model', 'Hardware') and cpu in ('', platform.machine(),
                                                                   platform.processor()):
                cpu = value.strip()
            elif key in ('flags', 'Features') and not flags:
                flags = set(value.split())
    except OSError:
        pass
    try:
        ram = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    except (ValueError, OSError, AttributeError):
        ram = math.nan
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 1
    versions: dict[str, str] = {'python': platform.python_version(), 'numpy': np.__version__}
    from importlib.metadata import PackageNotFoundError, version
    for dist in ('onnxruntime', 'onnxruntime-gpu', 'openvino', 'ai-edge-litert',
                 'tflite-runtime', 'tensorrt', 'opencv-python-headless', 'opencv-python',
                 'nncf', 'ai-edge-quantizer', 'onnx'):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    from ..inference.backends import available_backends
    return {
        'cpu': cpu, 'cores': os.cpu_count(), 'usable_cores': affinity,
        'ram_gib': round(ram, 1), 'os': platform.platform(), 'machine': platform.machine(),
        'cpu_flags': sorted(f for f in _FLAGS if f in flags),
        'versions': versions,
        'backends': {k: list(v) for k, v in available_backends().items()},
    }


def _loadavg() -> float | None:
    """1-minute load average (other processes competing for the cores), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# -- jobs ----------------------------------------------------------------------------------------

@dataclass
class _Row:
    variant: str
    manifest: str
    recipe: str
    file: str
    format: str
    precision: str
    input_size: tuple[int, int]
    backend: str
    device: str
    file_index: int
    model_bytes: int
    score_threshold: float
    result: dict[str, Any] = field(default_factory=dict)
    single: dict[str, Any] = field(default_factory=dict)
    agreement: dict[str, Any] = field(default_factory=dict)  # from round 1's detections


def _expand_models(models: Sequence[str | Path]) -> list[Path]:
    """Manifest paths of names, manifests, model files and folders (in the given order)."""
    from ..inference.manifest import resolve_model

    out: list[Path] = []
    for spec in models:
        path = Path(str(spec)).expanduser()
        if path.is_dir():
            found = sorted(path.glob('*.yaml'))
            if not found:
                raise ModelError(f'the folder {path} holds no model manifest (*.yaml)')
            out.extend(found)
        else:
            out.append(Path(resolve_model(spec).source))
    if not out:
        raise ConfigError('no model to benchmark: give model names, manifests or folders')
    return list(dict.fromkeys(p.resolve() for p in out))


def _recipe_of(manifest) -> str:
    """The recipe that made a variant (its manifest's ``recipe:``), or 'source'."""
    return str(manifest.recipe.get('recipe', 'unknown')) if manifest.recipe else 'source'


def _plan(manifests: list[Path], config: BenchConfig) -> tuple[list[_Row], list[str]]:
    from ..inference.backends import BACKENDS, available_backends
    from ..inference.detector import BACKEND_FORMATS
    from ..inference.manifest import load_manifest

    installed = available_backends()
    wanted = [b.strip().lower() for b in config.backends] or list(installed)
    notes = []
    for name in wanted:
        if name not in BACKENDS:
            raise ConfigError(f'unknown backend {name!r}; known: {", ".join(BACKENDS)}')
        if name not in installed:
            notes.append(f'{name}: not installed here ({BACKENDS[name].install_hint}); skipped')
    devices_wanted = {d.strip().lower() for d in config.devices}
    rows: list[_Row] = []
    for path in manifests:
        manifest = load_manifest(path)
        recipe = _recipe_of(manifest)
        for index, file in enumerate(manifest.files):
            for backend in wanted:
                if backend not in installed or file.format not in BACKEND_FORMATS[backend]:
                    continue
                for device in installed[backend]:
                    if device in _SKIP_DEVICES:
                        continue
                    if devices_wanted and device.lower() not in devices_wanted:
                        continue
                    if device == 'edgetpu' and file.precision != 'int8':
                        continue
                    rows.append(_Row(manifest.name, str(path), recipe, file.path.name,
                                     file.format, file.precision, manifest.input_size,
                                     backend, device, index, model_file_bytes(file.path),
                                     manifest.score_threshold))
    if not config.backends:
        notes += [f'{name}: not installed here ({cls.install_hint}); skipped'
                  for name, cls in BACKENDS.items() if name not in installed]
    for backend in wanted:
        if backend in installed and not any(r.backend == backend for r in rows):
            notes.append(f'{backend}: no model file in a format it reads '
                         f'({", ".join(BACKEND_FORMATS[backend])})')
    return rows, notes


def _run_worker(job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    cmd = [sys.executable, '-m', 'edge_vision_core.optimize._bench_worker']
    env = dict(os.environ, PYTHONUNBUFFERED='1', TQDM_DISABLE='1')
    try:
        proc = subprocess.run(cmd, input=json.dumps(job), capture_output=True, text=True,
                              timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {'error': f'timed out after {timeout_s:.0f} s'}
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {'error': f'worker exited with {proc.returncode}: {" | ".join(tail)[:600]}'}
    return json.loads(lines[-1])


def _dets(items: list[dict[str, Any]], min_score: float = 0.0) -> list[Detections]:
    out = []
    for item in items:
        scores = np.asarray(item['scores'], np.float32)
        keep = scores >= min_score
        out.append(Detections(np.asarray(item['boxes'], np.float32).reshape(-1, 4)[keep],
                              scores[keep], np.asarray(item['class_ids'], np.int32)[keep]))
    return out


# -- the benchmark --------------------------------------------------------------------------

def run_benchmark(models: Sequence[str | Path], out_dir: str | Path,
                  config: BenchConfig | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every variant x backend x device and write the reports (see the module doc).

    Args:
        models: registered names, manifest paths, or folders of manifests.
        out_dir: folder for ``bench.json``, ``bench.md``, ``bench.png`` (created).
        config: what to measure and how.
        progress: called with one line per measurement (default: logging at INFO).

    Returns:
        The report (what ``bench.json`` holds).

    Raises:
        ConfigError: bad settings, unknown backend, no model, an unwritable folder.
        ModelError: a model that cannot be resolved, or a reference without an FP32 ONNX file.
        SourceError: unreadable evaluation images.
    """
    from ..inference.manifest import load_manifest, resolve_model
    from .recipes import _check_writable

    config = config or BenchConfig()
    say = progress or (lambda line: _LOG.info('%s', line))
    out = Path(out_dir).expanduser()
    _check_writable(out)
    manifests = _expand_models(models)
    reference_path = (Path(resolve_model(config.reference).source).resolve()
                      if config.reference else manifests[0])
    reference = load_manifest(reference_path)
    ref_index = next((i for i, f in enumerate(reference.files)
                      if f.format == 'onnx' and f.precision == 'fp32'), None)
    if ref_index is None:
        raise ModelError(f'the reference {reference.name} ({reference_path}) has no FP32 ONNX '
                         f'file; pass --reference with the original model')
    from ..inference.text import TEXT_ADAPTERS
    if config.images:
        images: ImageSet = load_image_set(config.images, config.image_count)
    elif reference.adapter in TEXT_ADAPTERS:
        from ..eval.text_scenes import scene_image_set
        images = scene_image_set('tune', min(16, config.image_count))
    else:
        images = default_eval_images()
    rows, notes = _plan(manifests, config)
    threads = config.threads or os.cpu_count() or 1
    load_start = _loadavg()
    say(f'{len(rows)} measurements ({len(manifests)} manifests), {len(images)} evaluation '
        f'images (sha256 {images.sha256[:12]}), {threads} threads')
    with tempfile.TemporaryDirectory(prefix='edge-vision-bench-') as tmp:
        npz = Path(tmp) / 'images.npz'
        np.savez(npz, **{f'image_{i}': im for i, im in enumerate(images.images)})

        def job(manifest: str, index: int, backend: str, device: str, n_threads: int,
                detect: bool) -> dict[str, Any]:
            return {'manifest': manifest, 'file_index': index, 'backend': backend,
                    'device': device, 'threads': n_threads, 'warmup': config.warmup,
                    'iterations': config.iterations, 'images': str(npz), 'detect': detect,
                    'score_threshold': config.eval_score_threshold}

        say('reference: FP32 ONNX on onnxruntime cpu')
        ref_result = _run_worker(job(str(reference_path), ref_index, 'onnxruntime', 'cpu',
                                     threads, True), config.timeout_s)
        if 'error' in ref_result:
            raise ModelError(f'the reference {reference.name} failed on onnxruntime cpu: '
                             f'{ref_result["error"]}')
        truth = _dets(ref_result['detections'], reference.score_threshold)
        text_truth = (ref_result['detections'] if all('texts' in d for d in
                                                      ref_result['detections']) else None)
        for round_index in range(config.rounds):
            first = round_index == 0
            for k, row in enumerate(rows, 1):
                if not first and 'error' in row.result:
                    continue
                result = _run_worker(job(row.manifest, row.file_index, row.backend,
                                         row.device, threads, first), config.timeout_s)
                row.result = result if first else _faster(row.result, result)
                if first:
                    row.agreement = _agreement(row, truth, config, text_truth)
                if config.single_thread and 'error' not in row.result and threads != 1:
                    single = _run_worker(job(row.manifest, row.file_index, row.backend,
                                             row.device, 1, False), config.timeout_s)
                    row.single = single if first else _faster(row.single, single)
                say(('' if config.rounds == 1 else f'round {round_index + 1}/{config.rounds} ')
                    + _progress_line(k, len(rows), row))
    report = _report(rows, truth, reference, reference_path, ref_result, images, config,
                     threads, notes)
    report['load_average'] = [load_start, _loadavg()]
    write_reports(report, out)
    return report


def _faster(kept: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The faster of two measurements of one row; detections and peak RSS carried over."""
    if 'error' in new or ('fps' in kept and new['fps'] <= kept['fps']):
        return kept
    merged = dict(new)
    for key in ('detections', 'detect_ms_p50'):
        if key in kept:
            merged[key] = kept[key]
    merged['peak_rss_mb'] = max(kept.get('peak_rss_mb', 0.0), new.get('peak_rss_mb', 0.0))
    return merged


def _agreement(row: _Row, truth: list[Detections], config: BenchConfig,
               text_truth: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if 'detections' not in row.result:
        return {}
    result = detection_agreement(truth, _dets(row.result['detections']),
                                 config.iou_threshold, row.score_threshold).as_dict()
    if text_truth is not None and all('texts' in d for d in row.result['detections']):
        from ..eval.ocr import score_image, sum_scores

        def lines(item: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
            return [(t, np.asarray(p, np.float32))
                    for t, p in zip(item['texts'], item['polygons'], strict=True)]

        text = sum_scores([score_image(lines(ref), lines(got)) for ref, got in
                           zip(text_truth, row.result['detections'], strict=True)])
        result.update(word_agreement=text.word_accuracy, char_agreement=text.char_accuracy)
    return result


def _progress_line(k: int, n: int, row: _Row) -> str:
    head = f'[{k}/{n}] {row.variant} ({row.file}) on {row.backend}:{row.device}'
    if 'error' in row.result:
        return f'{head}: FAILED {row.result["error"][:200]}'
    agree = row.agreement
    return (f'{head}: p50 {row.result["latency_ms"]["p50"]:.2f} ms, {row.result["fps"]:.1f} '
            f'fps, mAP@0.5 {agree.get("map50", math.nan):.3f}')


def _report(rows: list[_Row], truth: list[Detections], reference, reference_path: Path,
            ref_result: dict[str, Any], images: ImageSet, config: BenchConfig, threads: int,
            notes: list[str]) -> dict[str, Any]:
    out_rows = []
    for row in rows:
        item: dict[str, Any] = {
            'variant': row.variant, 'manifest': row.manifest, 'recipe': row.recipe,
            'file': row.file, 'format': row.format, 'precision': row.precision,
            'input_size': list(row.input_size), 'backend': row.backend, 'device': row.device,
            'model_bytes': row.model_bytes, 'threads': threads,
        }
        if 'error' in row.result:
            item.update(status='failed', error=row.result['error'])
        else:
            r, agree = row.result, row.agreement
            item.update(
                status='ok', latency_ms=r['latency_ms'], fps=r['fps'],
                fps_1t=(r['fps'] if threads == 1 else row.single.get('fps')),
                latency_1t_p50_ms=(r['latency_ms']['p50'] if threads == 1 else
                                   row.single.get('latency_ms', {}).get('p50')),
                detect_ms_p50=r.get('detect_ms_p50'), load_s=r['load_s'],
                peak_rss_mb=r['peak_rss_mb'], base_rss_mb=r['base_rss_mb'],
                map50=agree.get('map50'), mean_iou=agree.get('mean_iou'),
                agreement=agree)
            if 'word_agreement' in agree:
                item.update(word_agreement=agree['word_agreement'],
                            char_agreement=agree['char_agreement'])
            if row.single.get('error'):
                item['error_1t'] = row.single['error']
        out_rows.append(item)
    _add_speedups(out_rows)
    _add_same_size_agreement(rows, out_rows, config)
    report = {
        'schema': 'edge_vision.bench/1',
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'machine': machine_description(),
        'input_set': images.describe(),
        'reference': {'name': reference.name, 'manifest': str(reference_path),
                      'backend': 'onnxruntime', 'device': 'cpu', 'precision': 'fp32',
                      'input_size': list(reference.input_size),
                      'score_threshold': reference.score_threshold,
                      'boxes': int(sum(len(t) for t in truth)),
                      'latency_ms': ref_result['latency_ms']},
        'settings': config_to_mapping(config),
        'threads': threads,
        'rows': out_rows,
        'notes': notes,
    }
    report['best_per_backend'] = _best(out_rows, config.min_agreement, config.rank_by)
    report['targets'] = _targets(out_rows, config.min_agreement)
    return report


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    """speedup = fps / fps of the FP32 row of the same backend, device and input size."""
    base: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if row['status'] != 'ok' or row['precision'] != 'fp32' or row['recipe'] == 'prune':
            continue
        key = (row['backend'], row['device'], tuple(row['input_size']))
        rank = {'onnx': 0, 'openvino': 1, 'tflite': 2}.get(row['format'], 3)
        if key not in base or rank < base[key][0]:
            base[key] = (rank, row)
    for row in rows:
        if row['status'] != 'ok':
            continue
        ref = base.get((row['backend'], row['device'], tuple(row['input_size'])))
        if ref is None:
            continue
        ref_row = ref[1]
        row['fp32_baseline'] = ref_row['variant'] + ' ' + ref_row['file']
        row['speedup'] = row['fps'] / ref_row['fps']
        if row.get('fps_1t') and ref_row.get('fps_1t'):
            row['speedup_1t'] = row['fps_1t'] / ref_row['fps_1t']


def _add_same_size_agreement(rows: list[_Row], out_rows: list[dict[str, Any]],
                             config: BenchConfig) -> None:
    """map50_same_size: agreement with the FP32 ONNX model of the same input size on ONNX
    Runtime CPU (isolates the precision's cost from the input size's)."""
    truths: dict[tuple[int, int], list[Detections]] = {}
    for row, item in zip(rows, out_rows, strict=True):
        if item['status'] == 'ok' and row.backend == 'onnxruntime' and row.device == 'cpu' \
                and row.format == 'onnx' and row.precision == 'fp32' \
                and row.recipe in ('source', 'onnx-fp32') and row.input_size not in truths:
            truths[row.input_size] = _dets(row.result['detections'], row.score_threshold)
    for row, item in zip(rows, out_rows, strict=True):
        truth = truths.get(row.input_size)
        if item['status'] != 'ok' or truth is None:
            continue
        agree = detection_agreement(truth, _dets(row.result['detections']),
                                    config.iou_threshold, row.score_threshold)
        item['map50_same_size'] = agree.map50
        item['mean_iou_same_size'] = agree.mean_iou


def _ok_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _best(rows: list[dict[str, Any]], min_agreement: float, rank_by: str = 'fps'
          ) -> dict[str, Any]:
    """Per backend: the highest ``rank_by`` throughput among rows with agreement mAP@0.5 >=
    ``min_agreement`` (else the most accurate row)."""
    best: dict[str, Any] = {}
    ratio = 'speedup' if rank_by == 'fps' else 'speedup_1t'
    for backend in dict.fromkeys(r['backend'] for r in rows):
        ok = [r for r in rows if r['backend'] == backend and r['status'] == 'ok']
        if not ok:
            continue
        good = [r for r in ok if _ok_number(r.get('map50')) and r['map50'] >= min_agreement]
        pick = max(good, key=lambda r: r.get(rank_by) or 0.0) if good else max(
            ok, key=lambda r: r['map50'] if _ok_number(r.get('map50')) else -1.0)
        threads = '1 thread' if rank_by == 'fps_1t' else f'{pick["threads"]} threads'
        speed = (f'{pick[ratio]:.2f}x the FP32 throughput' if _ok_number(
            pick.get(ratio)) else 'no FP32 row to compare')
        tradeoff = (f'{pick.get(rank_by) or math.nan:.1f} fps with {threads} ({speed}), p50 '
                    f'{pick["latency_ms"]["p50"]:.2f} ms, '
                    f'agreement mAP@0.5 {pick["map50"]:.3f}, mean IoU '
                    f'{pick.get("mean_iou") or math.nan:.3f}, '
                    f'{pick["model_bytes"] / 1e6:.1f} MB, peak RSS {pick["peak_rss_mb"]:.0f} MB')
        best[backend] = {'variant': pick['variant'], 'file': pick['file'],
                         'device': pick['device'], 'precision': pick['precision'],
                         'input_size': pick['input_size'], 'ranked_by': rank_by,
                         'meets_agreement': bool(good), 'tradeoff': tradeoff}
        if not good:
            best[backend]['tradeoff'] += (f'; no variant reaches mAP@0.5 >= {min_agreement}, '
                                          f'the most accurate is named')
    return best


def _targets(rows: list[dict[str, Any]], min_agreement: float) -> dict[str, Any]:
    """The issue's target: INT8 on ONNX Runtime CPU >= 1.5x FP32 throughput, mAP >= 0.9.

    Speed-up and agreement are both taken against the FP32 ONNX model of the same input size
    (N-thread throughput; the 1-thread ratio is reported beside it).
    """
    checks = []
    for row in rows:
        if row['status'] != 'ok' or row['backend'] != 'onnxruntime' or row['device'] != 'cpu' \
                or row['precision'] != 'int8' or not _ok_number(row.get('speedup')):
            continue
        agreement = row.get('map50_same_size', row['map50'])
        checks.append({
            'variant': row['variant'], 'input_size': row['input_size'],
            'speedup': row['speedup'], 'speedup_1t': row.get('speedup_1t'),
            'map50': row['map50'], 'map50_same_size': agreement,
            'met': bool(row['speedup'] >= _TARGET_SPEEDUP and _ok_number(agreement)
                        and agreement >= min_agreement)})
    return {'int8_onnxruntime_cpu': {'required_speedup': _TARGET_SPEEDUP,
                                     'required_map50': min_agreement, 'rows': checks,
                                     'met': any(c['met'] for c in checks) if checks else None}}


# -- reports ----------------------------------------------------------------------------------

def _fmt(value: Any, spec: str = '.2f') -> str:
    return format(value, spec) if _ok_number(value) else '-'


def write_reports(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.md`` and ``bench.png`` into ``out_dir``.

    Returns:
        ``{'json': path, 'markdown': path, 'png': path}`` (``png`` absent without matplotlib).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {'json': out / 'bench.json', 'markdown': out / 'bench.md'}
    paths['json'].write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
    paths['markdown'].write_text(_markdown(report), encoding='utf-8')
    png = out / 'bench.png'
    if _plot(report, png):
        paths['png'] = png
    return paths


def _markdown(report: dict[str, Any]) -> str:
    m = report['machine']
    lines = [
        '# edge-vision bench', '',
        f'Created {report["created"]}. Machine: {m["cpu"]}, {m["cores"]} cores '
        f'({m["usable_cores"]} usable), {m["ram_gib"]} GiB RAM, {m["os"]}; CPU flags: '
        f'{", ".join(m["cpu_flags"]) or "-"}.',
        'Versions: ' + ', '.join(f'{k} {v}' for k, v in m['versions'].items()) + '.',
        'Backends here: ' + '; '.join(f'{k} ({", ".join(v)})' for k, v in
                                       m['backends'].items()) + '.', '',
        f'Evaluation images: {report["input_set"]["count"]} from '
        f'{report["input_set"]["source"]}, SHA-256 `{report["input_set"]["sha256"]}`.',
        f'Reference: {report["reference"]["name"]} FP32 ONNX on onnxruntime cpu at '
        f'{report["reference"]["input_size"][0]}x{report["reference"]["input_size"][1]}, '
        f'{report["reference"]["boxes"]} boxes at score >= '
        f'{report["reference"]["score_threshold"]}. mAP@0.5 and mean IoU: against that '
        f'reference; "mAP same size": against the FP32 ONNX (ONNX Runtime CPU) of the '
        f'row\'s own input size; speedup: fps over the FP32 row of the same backend, device '
        f'and size.',
        f'Load average (1 min) at start / end: {report.get("load_average", "-")}.',
        f'Runtime threads: {report["threads"]} (and 1 for fps 1t); '
        f'{report["settings"]["iterations"]} timed runs after {report["settings"]["warmup"]} '
        f'warm-up runs; latency = bare runtime call; each row in fresh processes; fastest of '
        f'{report["settings"].get("rounds", 1)} interleaved round(s).', '',
        '| variant | file | prec | size | backend:device | p50 ms | p95 ms | p99 ms | '
        f'fps {report["threads"]}t | fps 1t | speedup | speedup 1t | load s | peak RSS MB | '
        'MB | mAP@0.5 | mean IoU | mAP same size |',
        '|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    texts = [r for r in report['rows'] if 'word_agreement' in r]
    failed = []
    for r in report['rows']:
        size = f'{r["input_size"][0]}'
        if r['status'] != 'ok':
            failed.append(r)
            continue
        lat = r['latency_ms']
        lines.append(
            f'| {r["variant"]} | {r["file"]} | {r["precision"]} | {size} | '
            f'{r["backend"]}:{r["device"]} | {_fmt(lat["p50"])} | {_fmt(lat["p95"])} | '
            f'{_fmt(lat["p99"])} | {_fmt(r["fps"], ".1f")} | {_fmt(r.get("fps_1t"), ".1f")} | '
            f'{_fmt(r.get("speedup"))} | {_fmt(r.get("speedup_1t"))} | {_fmt(r["load_s"])} | '
            f'{_fmt(r["peak_rss_mb"], ".0f")} '
            f'| {_fmt(r["model_bytes"] / 1e6, ".1f")} | {_fmt(r.get("map50"), ".3f")} | '
            f'{_fmt(r.get("mean_iou"), ".3f")} | {_fmt(r.get("map50_same_size"), ".3f")} |')
    if texts:
        lines += ['', '## Text agreement (text models)', '',
                  'Lines read with the variant in its slot of a TextReader against the lines '
                  'of the reference (word agreement: words of the reference read the same; char '
                  'agreement: 1 - character error rate).', '',
                  '| variant | file | backend:device | word agreement | char agreement |',
                  '|---|---|---|---:|---:|']
        lines += [f'| {r["variant"]} | {r["file"]} | {r["backend"]}:{r["device"]} | '
                  f'{_fmt(r["word_agreement"], ".4f")} | {_fmt(r["char_agreement"], ".4f")} |'
                  for r in texts]
    if failed:
        lines += ['', '## Could not run', '']
        lines += [f'- {r["variant"]} ({r["file"]}) on {r["backend"]}:{r["device"]}: '
                  f'{r["error"]}' for r in failed]
    lines += ['', '## Best variant per backend', '']
    for backend, best in report['best_per_backend'].items():
        lines.append(f'- **{backend}**: {best["variant"]} ({best["file"]}, {best["device"]}): '
                     f'{best["tradeoff"]}')
    target = report['targets']['int8_onnxruntime_cpu']
    verdict = {True: 'met', False: 'not met', None: 'no INT8 row'}[target['met']]
    lines += ['', '## Target: INT8 on ONNX Runtime CPU', '',
              f'Needs >= {target["required_speedup"]}x the FP32 throughput at the same input '
              f'size with agreement mAP@0.5 >= {target["required_map50"]}: **{verdict}**.']
    for c in target['rows']:
        lines.append(f'- {c["variant"]} ({c["input_size"][0]}): {_fmt(c["speedup"])}x '
                     f'({_fmt(c.get("speedup_1t"))}x with 1 thread), mAP@0.5 '
                     f'{_fmt(c["map50_same_size"], ".3f")} against FP32 at the same size: '
                     f'{"met" if c["met"] else "not met"}')
    lines += _observations(report['rows'])
    if report.get('notes'):
        lines += ['', '## Notes', ''] + [f'- {n}' for n in report['notes']]
    return '\n'.join(lines) + '\n'


def _observations(rows: list[dict[str, Any]]) -> list[str]:
    """What the pruned and FP16 rows show (speed against their FP32 row, agreement)."""
    out = []
    for row in rows:
        if row['status'] != 'ok' or not _ok_number(row.get('speedup')):
            continue
        where = f'{row["variant"]} on {row["backend"]}:{row["device"]}'
        if row['recipe'] == 'prune':
            out.append(f'- {where}: {_fmt(row["speedup"])}x the FP32 throughput '
                       f'({_fmt(row.get("speedup_1t"))}x with 1 thread), agreement '
                       f'mAP@0.5 {_fmt(row.get("map50"), ".3f")}. Unstructured zeros are '
                       f'still multiplied by dense kernels: no speed-up is expected, only '
                       f'the accuracy cost shows.')
        elif row['precision'] == 'fp16' and row['device'].lower() == 'cpu':
            out.append(f'- {where}: {_fmt(row["speedup"])}x the FP32 throughput '
                       f'({_fmt(row.get("speedup_1t"))}x with 1 thread; {row["format"]} '
                       f'file of {row["model_bytes"] / 1e6:.1f} MB); on a CPU '
                       f'FP16 mostly halves the file, the arithmetic stays FP32 or pays for '
                       f'casts.')
    return ['', '## Pruning and FP16 on this machine', '', *out] if out else []


def _plot(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use('Agg', force=False)
        from matplotlib.figure import Figure
    except ImportError:
        _LOG.warning('matplotlib is not installed: no bench.png (pip install matplotlib)')
        return False
    rows = [r for r in report['rows'] if r['status'] == 'ok' and _ok_number(r.get('map50'))]
    fig = Figure(figsize=(10, 6.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    markers = {'onnxruntime': 'o', 'openvino': 's', 'litert': '^', 'tensorrt': 'D'}
    for backend in dict.fromkeys(r['backend'] for r in rows):
        sel = [r for r in rows if r['backend'] == backend]
        ax.scatter([r['latency_ms']['p50'] for r in sel], [r['map50'] for r in sel],
                   marker=markers.get(backend, 'x'), s=45, label=backend, alpha=0.8)
        for r in sel:
            label = f'{r["precision"]} {r["input_size"][0]} {r["recipe"]}'
            ax.annotate(label, (r['latency_ms']['p50'], r['map50']), fontsize=6,
                        xytext=(3, 3), textcoords='offset points')
    ax.set_xlabel(f'latency p50, ms ({report["threads"]} threads, bare inference)')
    ax.set_ylabel('agreement mAP@0.5 with the FP32 reference')
    ax.set_title(f'edge-vision bench: {report["machine"]["cpu"]}', fontsize=9)
    ax.grid(True, alpha=0.3)
    if rows:
        ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(str(path))
    return True
