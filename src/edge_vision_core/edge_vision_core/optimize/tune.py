"""Autotuning: the fastest configuration of a model on this device that keeps its accuracy.

:func:`tune` measures, on this machine, the candidate configurations of a model

    model variant (the model's FP32 files, its shipped variants such as the INT8 file, and an
    INT8 file made on the spot when it has none) x installed backend that reads it x device of
    that backend x precision hint x execution plan (workers x threads per worker)

checks each variant's **agreement** with the FP32 reference (the model's FP32 ONNX file on ONNX
Runtime CPU) on small shipped image sets (:func:`~.images.agreement_sets`: frames of the bundled
clip, scikit-image's photographs), and picks the fastest configuration whose agreement is at
least ``floor`` (mAP@0.5, :func:`edge_vision_core.eval.detection.detection_agreement`) on
*every* set.

How it keeps within a couple of minutes on a small CPU:

1. agreement once per variant x backend x device x precision hint (one detector, all cores);
   variants below the floor are not timed;
2. a quick throughput of every passing variant with one worker using all cores;
3. the execution plans (N workers x cores/N threads, through :class:`~..inference.pool.
   InferencePool`, results in frame order) of the fastest few, and, where several processors
   passed (CPU and a GPU/NPU), a pool over them; every timed configuration is measured in
   ``rounds`` interleaved rounds and keeps its best (other load on the machine slows rounds, not
   configurations), for ``seconds`` each.

Throughput counts what an inference stage does per frame (``Detector.detect``: letterbox,
normalisation, inference, decoding, NMS) on frames of the clip. A configuration within
``tolerance`` of the fastest but with fewer workers wins (lower latency and memory for no
measurable loss).

The choice and the table behind it are cached per **device fingerprint**
(:func:`device_fingerprint`: CPU model and flags, usable cores, the backends and devices
present, runtime versions, SHA-256 of the model's manifests and files, the tuning settings) in
``$XDG_CACHE_HOME/edge_vision/tune/`` (``~/.cache/edge_vision/tune/``): ``<model>.json``, the
table ``<model>.txt`` and the plot ``<model>.png`` (fps against agreement). Any change of the
fingerprint makes :func:`load_cached` miss, and :func:`tuned` measures again.

``edge-vision tune`` is the command; the inference node and ``edge-vision run`` use
:func:`tuned` for ``model:=auto``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import check_config, config_to_mapping, param
from ..errors import ConfigError, EdgeVisionError, ModelError
from ..inference.manifest import ModelManifest, load_manifest, resolve_model, sha256_file
from ..inference.pool import WorkerSpec

__all__ = [
    'AUTO_FALLBACK_MODEL',
    'AUTO_MODEL',
    'TUNE_VERSION',
    'InferencePlan',
    'TuneConfig',
    'TuneResult',
    'TuneRow',
    'cache_dir',
    'cache_paths',
    'device_fingerprint',
    'load_cached',
    'plan_inference',
    'reference_detections',
    'save_result',
    'tune',
    'tuned',
    'usable_cores',
    'variant_agreement',
]

_LOG = logging.getLogger(__name__)

#: bumped when what tuning measures or how it chooses changes (old caches are then stale).
TUNE_VERSION = 2

#: file precisions left out on CPU devices: the runtimes decompress FP16 weights to FP32 there,
#: so the arithmetic (and the speed) is the FP32 file's.
_CPU_SKIP_PRECISIONS = ('fp16',)
_CPU_DEVICES = ('cpu',)
_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')
_VERSION_DISTS = ('onnxruntime', 'onnxruntime-gpu', 'openvino', 'ai-edge-litert',
                  'tflite-runtime', 'tensorrt', 'numpy', 'opencv-python-headless',
                  'opencv-python', 'edge_vision_core')


@dataclass(frozen=True)
class TuneConfig:
    """Settings of :func:`tune` (``edge-vision tune`` options)."""

    model: str = field(default='nanodet-m-416', metadata=param(
        'Model to tune: a registered name, a manifest YAML, or a model file with a manifest.'))
    variants: tuple[str, ...] = field(default=(), metadata=param(
        'More variants of the model to consider: manifests or folders of manifests (the '
        'output of edge-vision optimize); the shipped variants are always considered.'))
    backends: tuple[str, ...] = field(default=(), metadata=param(
        'Backends to consider; empty = every installed one.'))
    devices: tuple[str, ...] = field(default=(), metadata=param(
        'Devices to consider (case-insensitive); empty = every device of each backend.'))
    floor: float = field(default=0.95, metadata=param(
        'Agreement mAP@0.5 with the FP32 reference a configuration needs on every image set.',
        min=0.0, max=1.0))
    seconds: float = field(default=1.0, metadata=param(
        'Timed seconds per throughput measurement (after 2 warm-up runs per worker).',
        min=0.05, max=60.0, unit='s'))
    rounds: int = field(default=2, metadata=param(
        'Interleaved measurement rounds of the execution plans; each keeps its best.',
        min=1, max=10))
    top: int = field(default=3, metadata=param(
        'Execution plans (workers x threads) are measured for this many fastest variants.',
        min=1, max=20))
    max_workers: int = field(default=4, metadata=param(
        'Most pool workers to try on one processor.', min=1, max=64))
    clip_frames: int = field(default=12, metadata=param(
        'Frames of the bundled clip in the agreement set (0 = none).', min=0, max=300))
    photos: bool = field(default=True, metadata=param(
        "Also check agreement on scikit-image's photographs."))
    make_int8: bool = field(default=True, metadata=param(
        'When the model has no INT8 variant, make one with edge-vision optimize (ONNX '
        'Runtime static INT8; about half a minute, cached with the tuning).'))
    tolerance: float = field(default=0.03, metadata=param(
        'A configuration within this fraction of the fastest but with fewer workers wins.',
        min=0.0, max=0.5))
    eval_score_threshold: float = field(default=0.05, metadata=param(
        'Score threshold of the variants for mAP (low: AP ranks all detections).',
        min=0.0, max=1.0))

    def __post_init__(self) -> None:
        check_config(self)
        if not self.model.strip():
            raise ConfigError('TuneConfig.model must name a model')


@dataclass
class TuneRow:
    """One measured configuration.

    Attributes:
        variant: the variant's manifest name.
        manifest: its manifest path.
        file: the model file's name.
        precision: the file's precision, or the hint (``bf16``) when one is given.
        workers: the pool's workers (backend, device, threads; model and precision hint).
        fps: frames per second through the pool (best round); NaN when not timed.
        latency_ms: median per-frame ``detect`` milliseconds in the best round.
        agreement: mAP@0.5 against the FP32 reference per image set.
        status: ``ok``, ``below floor``, ``failed: ...`` or ``skipped: ...``.
        chosen: True for the configuration :func:`tune` picked.
    """

    variant: str
    manifest: str
    file: str
    precision: str
    workers: list[WorkerSpec]
    fps: float = math.nan
    latency_ms: float = math.nan
    agreement: dict[str, float] = field(default_factory=dict)
    status: str = 'ok'
    chosen: bool = False

    @property
    def backend(self) -> str:
        return '+'.join(dict.fromkeys(w.backend for w in self.workers))

    @property
    def device(self) -> str:
        return '+'.join(dict.fromkeys(w.device for w in self.workers))

    @property
    def plan(self) -> str:
        """``<workers> x <threads>`` (``1 x 2``), or the devices of a mixed pool."""
        kinds = {(w.backend, w.device, w.threads) for w in self.workers}
        if len(kinds) == 1:
            return f'{len(self.workers)} x {self.workers[0].threads or "auto"}'
        return ' + '.join(f'{w.device}:{w.threads or "auto"}' for w in self.workers)

    @property
    def min_agreement(self) -> float:
        return min(self.agreement.values()) if self.agreement else math.nan

    @property
    def passed(self) -> bool:
        return self.status == 'ok' and math.isfinite(self.fps)

    def as_dict(self) -> dict[str, Any]:
        return {'variant': self.variant, 'manifest': self.manifest, 'file': self.file,
                'precision': self.precision, 'workers': [w.as_dict() for w in self.workers],
                'fps': _json_number(self.fps), 'latency_ms': _json_number(self.latency_ms),
                'agreement': dict(self.agreement), 'status': self.status,
                'chosen': self.chosen}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneRow:
        return cls(data['variant'], data['manifest'], data['file'], data['precision'],
                   [WorkerSpec(**w) for w in data['workers']],
                   _float(data.get('fps')), _float(data.get('latency_ms')),
                   {k: float(v) for k, v in data.get('agreement', {}).items()},
                   data.get('status', 'ok'), bool(data.get('chosen', False)))


@dataclass
class TuneResult:
    """What :func:`tune` found (also what the cache file holds).

    Attributes:
        model: the tuned model's name.
        fingerprint: :func:`device_fingerprint` of the machine and model when measured.
        key: short hash of the fingerprint.
        rows: every configuration considered, measured or not.
        choice: the picked row (None when nothing kept the floor).
        floor: the agreement floor.
        created: ISO time; took_s: seconds the tuning took; load_average: 1-minute load at
            start and end (other processes competing for the cores).
        notes: what was skipped and why.
        sets: the agreement image sets (name -> count, SHA-256).
        cached: True when this result came from the cache.
    """

    model: str
    fingerprint: dict[str, Any]
    key: str
    rows: list[TuneRow]
    choice: TuneRow | None
    floor: float
    created: str = ''
    took_s: float = 0.0
    load_average: list[float | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    cached: bool = False

    @property
    def workers(self) -> list[WorkerSpec]:
        """The chosen workers (empty when nothing kept the floor)."""
        return list(self.choice.workers) if self.choice else []

    def reference_fps(self) -> float:
        """Throughput of the FP32 reference configuration (one ONNX Runtime worker, all
        cores), NaN when not measured."""
        for row in self.rows:
            if row.precision == 'fp32' and len(row.workers) == 1 and \
                    row.workers[0].backend == 'onnxruntime' and row.file.endswith('.onnx') \
                    and math.isfinite(row.fps) and row.agreement and \
                    row.min_agreement >= 0.9999:
                return row.fps
        return math.nan

    def as_dict(self) -> dict[str, Any]:
        return {'schema': 'edge_vision.tune/1', 'model': self.model, 'key': self.key,
                'fingerprint': self.fingerprint, 'floor': self.floor,
                'created': self.created, 'took_s': self.took_s,
                'load_average': self.load_average, 'sets': self.sets, 'notes': self.notes,
                'rows': [r.as_dict() for r in self.rows],
                'choice': self.rows.index(self.choice) if self.choice else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneResult:
        if data.get('schema') != 'edge_vision.tune/1':
            raise ConfigError(f'not a tuning result: schema {data.get("schema")!r}')
        rows = [TuneRow.from_dict(r) for r in data['rows']]
        index = data.get('choice')
        return cls(data['model'], data['fingerprint'], data['key'], rows,
                   rows[index] if index is not None else None, float(data['floor']),
                   data.get('created', ''), float(data.get('took_s', 0.0)),
                   list(data.get('load_average', [])), list(data.get('notes', [])),
                   dict(data.get('sets', {})))

    def table(self) -> str:
        """The table as text: one line per configuration, fastest first, the choice marked."""
        sets = list(self.sets) or sorted({k for r in self.rows for k in r.agreement})
        head = (f'{"":1} {"variant":<28} {"prec":<5} {"backend:device":<22} {"plan":<9} '
                f'{"fps":>7} {"ms p50":>7} ' + ' '.join(f'{"mAP " + s:>11}' for s in sets)
                + '  status')
        order = sorted(self.rows, key=lambda r: (not math.isfinite(r.fps), -_nan0(r.fps)))
        lines = [head, '-' * len(head)]
        for r in order:
            where = '+'.join(dict.fromkeys(f'{w.backend}:{w.device}' for w in r.workers))
            agree = ' '.join(f'{_fmt(r.agreement.get(s), ".3f"):>11}' for s in sets)
            lines.append(f'{"*" if r.chosen else " "} {r.variant[:28]:<28} {r.precision:<5} '
                         f'{where[:22]:<22} {r.plan[:9]:<9} {_fmt(r.fps, ".1f"):>7} '
                         f'{_fmt(r.latency_ms, ".1f"):>7} {agree}  {r.status}')
        fp = self.fingerprint
        lines += ['', f'* = chosen: {self.describe_choice()}',
                  f'agreement floor mAP@0.5 >= {self.floor} on every set ('
                  + ', '.join(f'{k}: {v["count"]} images' for k, v in self.sets.items()) + ')',
                  f'device: {fp.get("cpu", {}).get("model", "?")}, '
                  f'{fp.get("cpu", {}).get("usable_cores", "?")} usable cores; accelerators: '
                  + ('; '.join(f'{k} ({", ".join(v)})' for k, v in
                               fp.get('accelerators', {}).items()) or 'none'),
                  f'measured {self.created} in {self.took_s:.0f} s, load average '
                  f'{self.load_average}; key {self.key}']
        lines += [f'note: {n}' for n in self.notes]
        return '\n'.join(lines) + '\n'

    def describe_choice(self) -> str:
        c = self.choice
        if c is None:
            return f'none kept agreement >= {self.floor}'
        ref = self.reference_fps()
        gain = f', {c.fps / ref:.2f}x the FP32 reference' if math.isfinite(ref) and ref > 0 \
            else ''
        return (f'{c.variant} ({c.file}, {c.precision}) on {c.backend}:{c.device}, '
                f'{len(c.workers)} worker(s) x {c.workers[0].threads or "auto"} thread(s): '
                f'{c.fps:.1f} fps{gain}, agreement '
                + ', '.join(f'{k} {v:.3f}' for k, v in c.agreement.items()))

    def plot(self, path: Path) -> bool:
        """Throughput against agreement, one marker per configuration, the floor and the choice
        marked (False when matplotlib is missing)."""
        try:
            import matplotlib
            matplotlib.use('Agg', force=False)
            from matplotlib.figure import Figure
        except ImportError:
            _LOG.warning('matplotlib is not installed: no tuning plot (pip install matplotlib)')
            return False
        rows = [r for r in self.rows if math.isfinite(r.fps) and r.agreement]
        fig = Figure(figsize=(9, 6), dpi=110)
        ax = fig.add_subplot(1, 1, 1)
        markers = {'onnxruntime': 'o', 'openvino': 's', 'litert': '^', 'tensorrt': 'D'}
        for backend in dict.fromkeys(r.backend for r in rows):
            sel = [r for r in rows if r.backend == backend]
            ax.scatter([r.min_agreement for r in sel], [r.fps for r in sel],
                       marker=markers.get(backend, 'x'), s=50, label=backend, alpha=0.8)
            for r in sel:
                ax.annotate(f'{r.precision} {r.plan}', (r.min_agreement, r.fps), fontsize=7,
                            xytext=(4, 3), textcoords='offset points')
        if self.choice is not None and math.isfinite(self.choice.fps):
            ax.scatter([self.choice.min_agreement], [self.choice.fps], s=220,
                       facecolors='none', edgecolors='red', linewidths=2, label='chosen')
        ax.axvline(self.floor, color='grey', linestyle='--', linewidth=1)
        ax.text(self.floor, ax.get_ylim()[1], f' floor {self.floor}', fontsize=8, va='top')
        ax.set_xlabel('agreement mAP@0.5 with the FP32 reference (worst image set)')
        ax.set_ylabel('frames per second (detect: pre + inference + post)')
        ax.set_title(f'edge-vision tune {self.model}: '
                     f'{self.fingerprint.get("cpu", {}).get("model", "")}', fontsize=9)
        ax.grid(True, alpha=0.3)
        if rows:
            ax.legend(loc='best', fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(str(path))
        return True


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _nan0(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) \
        else '-'


# -- the fingerprint and the cache ----------------------------------------------------------


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/edge_vision/tune`` (``~/.cache/edge_vision/tune`` by default)."""
    base = os.environ.get('XDG_CACHE_HOME', '').strip()
    root = Path(base).expanduser() if base else Path.home() / '.cache'
    return root / 'edge_vision' / 'tune'


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity; the count where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _cpu() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), ''
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            key, _, value = line.partition(':')
            key = key.strip()
            if key in ('model name', 'Model', 'Hardware') and model in (
                    '', platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ('flags', 'Features') and not flags:
                flags = ' '.join(sorted(value.split()))
    except OSError:
        pass
    usable = usable_cores()
    return {'model': model, 'machine': platform.machine(), 'cores': os.cpu_count(),
            'usable_cores': usable,
            'flags_sha256': hashlib.sha256(flags.encode()).hexdigest()[:16],
            'bf16': any(f in flags.split() for f in _BF16_FLAGS)}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {'python': platform.python_version()}
    for dist in _VERSION_DISTS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _model_hashes(manifests: Sequence[ModelManifest]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in manifests:
        source = Path(m.source)
        out[m.name] = {
            'manifest': sha256_file(source) if source.is_file() else '',
            'files': {f.path.name: (f.sha256 or (sha256_file(f.path) if f.path.is_file()
                                                 else 'missing')) for f in m.files},
        }
    return out


def device_fingerprint(manifests: Sequence[ModelManifest], config: TuneConfig
                       ) -> dict[str, Any]:
    """What a tuning result depends on: the CPU (model, flags, usable cores), the backends and
    their devices here, runtime versions, the model's manifests and files (their SHA-256; a
    manifest's own hash covers its thresholds) and the tuning settings."""
    from ..inference.backends import available_backends

    settings = config_to_mapping(config)
    return {
        'tune_version': TUNE_VERSION,
        'cpu': _cpu(),
        'accelerators': {k: list(v) for k, v in available_backends().items()},
        'versions': _versions(),
        'models': _model_hashes(manifests),
        'settings': {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
    }


def _key(fingerprint: dict[str, Any]) -> str:
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_stem(model: str) -> str:
    safe = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in model)
    return safe or 'model'


def cache_paths(model: str, folder: Path | None = None) -> dict[str, Path]:
    """``{'json', 'text', 'png'}`` files of a model's cached tuning."""
    base = (folder or cache_dir()) / _cache_stem(model)
    return {'json': base.with_suffix('.json'), 'text': base.with_suffix('.txt'),
            'png': base.with_suffix('.png')}


def _models(config: TuneConfig) -> tuple[ModelManifest, list[ModelManifest]]:
    """The model and its variants (shipped ones whose recipe names it, and the given ones)."""
    from ..inference.manifest import list_models
    from .bench.plan import expand_models

    source = resolve_model(config.model)
    variants: list[ModelManifest] = []
    seen = {Path(source.source).resolve()}
    paths = list(list_models().values())
    if config.variants:
        paths += expand_models(list(config.variants))
    for path in paths:
        path = Path(path).resolve()
        if path in seen:
            continue
        try:
            manifest = load_manifest(path)
        except ModelError as exc:
            if config.variants and path in {Path(p).resolve() for p in config.variants}:
                raise
            _LOG.debug('skipping %s: %s', path, exc)
            continue
        origin = manifest.recipe.get('source_model', {}) if manifest.recipe else {}
        given = any(str(path).startswith(str(Path(v).expanduser().resolve()))
                    for v in config.variants)
        if (given or (isinstance(origin, dict) and origin.get('name') == source.name)) and \
                manifest.adapter == source.adapter:
            variants.append(manifest)
            seen.add(path)
    return source, variants


def load_cached(config: TuneConfig | None = None, folder: Path | None = None
                ) -> TuneResult | None:
    """The cached tuning of ``config.model`` when its fingerprint matches this machine and
    model now; None when there is none or it is stale."""
    config = config or TuneConfig()
    source, variants = _models(config)
    path = cache_paths(source.name, folder)['json']
    if not path.is_file():
        return None  # no fingerprint needed (it imports every runtime to list its devices)
    made = _made_variants(source, folder)
    fingerprint = device_fingerprint([source, *variants, *made], config)
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
        result = TuneResult.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, EdgeVisionError):
        return None
    if result.key != _key(fingerprint) or result.fingerprint != json.loads(
            json.dumps(fingerprint, default=str)):
        return None
    # the same files elsewhere match the fingerprint: a tuning made in another checkout that
    # was since removed names manifests that are gone, so it is stale too
    if any(w.model.endswith(('.yaml', '.yml')) and not Path(w.model).is_file()
           for w in result.workers):
        return None
    result.cached = True
    return result


def _made_dir(source: ModelManifest, folder: Path | None) -> Path:
    return (folder or cache_dir()) / 'variants' / _cache_stem(source.name)


def _made_variants(source: ModelManifest, folder: Path | None) -> list[ModelManifest]:
    """INT8 variants an earlier tuning made for a model without one (when still valid)."""
    out = []
    made = _made_dir(source, folder)
    if not made.is_dir():
        return out
    for path in sorted(made.glob('*.yaml')):
        try:
            manifest = load_manifest(path)
        except ModelError:
            continue
        origin = manifest.recipe.get('source_model', {})
        if isinstance(origin, dict) and origin.get('sha256') == _source_sha(source):
            out.append(manifest)
    return out


def _source_sha(source: ModelManifest) -> str:
    path = Path(source.source)
    return sha256_file(path) if path.is_file() else ''


# -- measuring ------------------------------------------------------------------------------


@dataclass
class _Variant:
    """One variant x backend x device x precision hint: the unit of the agreement check."""

    manifest: ModelManifest
    file_index: int
    backend: str
    device: str
    hint: str
    processor: str
    agreement: dict[str, float] = field(default_factory=dict)
    status: str = 'ok'

    @property
    def file(self):
        return self.manifest.files[self.file_index]

    @property
    def precision(self) -> str:
        return self.hint if self.hint not in ('', 'auto') else self.file.precision

    def only(self) -> ModelManifest:
        return dataclasses.replace(self.manifest, files=(self.file,))

    def spec(self, threads: int) -> WorkerSpec:
        return WorkerSpec(self.backend, self.device, threads, str(self.manifest.source),
                          self.hint or 'auto')


def _candidates(manifests: Sequence[ModelManifest], config: TuneConfig, bf16: bool,
                notes: list[str]) -> list[_Variant]:
    from ..inference.backends import BACKEND_FORMATS, available_backends

    installed = available_backends()
    wanted = [b.strip().lower() for b in config.backends] or list(installed)
    for name in wanted:
        if name not in BACKEND_FORMATS:
            raise ConfigError(f'unknown backend {name!r}, expecting one of '
                              f'{list(BACKEND_FORMATS)}')
        if name not in installed:
            notes.append(f'{name}: not installed here; skipped')
    devices_wanted = {d.strip().lower() for d in config.devices}
    out: list[_Variant] = []
    for manifest in manifests:
        for backend in (b for b in wanted if b in installed):
            formats = BACKEND_FORMATS[backend]
            by_precision: dict[str, int] = {}
            for fmt in formats:  # the backend's preferred format per precision
                for index, f in enumerate(manifest.files):
                    if f.format == fmt and f.precision not in by_precision:
                        by_precision[f.precision] = index
            for device in installed[backend]:
                if device == 'AUTO' or (devices_wanted and device.lower() not in
                                        devices_wanted):
                    continue
                on_cpu = device.lower() in _CPU_DEVICES
                for precision, index in by_precision.items():
                    f = manifest.files[index]
                    if device == 'edgetpu' and f.precision != 'int8':
                        continue
                    if device == 'tensorrt' and backend == 'onnxruntime':
                        continue  # TensorRT through ORT builds engines for minutes: ask for it
                    if on_cpu and precision in _CPU_SKIP_PRECISIONS:
                        notes.append(f'{manifest.name} {f.path.name} on {backend}:{device}: '
                                     f'FP16 weights run as FP32 on a CPU; not measured')
                        continue
                    processor = 'cpu' if on_cpu else f'{backend}:{device}'
                    hints = [''] if on_cpu else [f.precision if f.precision != 'int8' else '']
                    if on_cpu and bf16 and backend == 'openvino' and precision == 'fp32':
                        hints.append('bf16')
                    for hint in hints:
                        out.append(_Variant(manifest, index, backend, device, hint, processor))
    return out


def _detector(variant: _Variant, threads: int, score_threshold: float | None = None):
    from ..inference.detector import Detector, DetectorOptions

    options = DetectorOptions(backend=variant.backend, device=variant.device, threads=threads,
                              precision=variant.hint or 'auto', verify_checksum=False,
                              score_threshold=-1.0 if score_threshold is None
                              else score_threshold)
    return Detector.from_manifest(variant.only(), options)


def _detect_all(detector, sets: dict[str, Any]) -> dict[str, list]:
    return {name: [detector.detect(image).detections for image in images.images]
            for name, images in sets.items()}


def reference_detections(source: ModelManifest, sets: dict[str, Any], threads: int = 0
                         ) -> dict[str, list]:
    """The FP32 reference's detections (its FP32 ONNX on ONNX Runtime CPU, at its manifest's
    score threshold) per image set: the ground truth of the agreement.

    Raises:
        ModelError: the model has no FP32 ONNX file.
    """
    with _detector(_reference(source), threads) as det:
        return {name: [d[d.scores >= source.score_threshold] for d in dets]
                for name, dets in _detect_all(det, sets).items()}


def variant_agreement(manifest: ModelManifest, truth: dict[str, list], sets: dict[str, Any],
                      *, backend: str = 'onnxruntime', device: str = 'cpu', hint: str = '',
                      file_index: int = 0, threads: int = 0,
                      eval_score_threshold: float = 0.05) -> dict[str, float]:
    """mAP@0.5 agreement of one model file on one backend with the reference, per image set
    (the variant's detections at ``eval_score_threshold`` against ``truth``).

    Raises:
        EdgeVisionError: the variant does not load or run there.
    """
    from ..eval.detection import detection_agreement

    variant = _Variant(manifest, file_index, backend, device, hint, '')
    with _detector(variant, threads, eval_score_threshold) as det:
        predictions = _detect_all(det, sets)
    return {name: detection_agreement(refs, predictions[name], 0.5,
                                      manifest.score_threshold).map50
            for name, refs in truth.items()}


def _agreement(variant: _Variant, truth: dict[str, list], sets: dict[str, Any],
               config: TuneConfig, threads: int) -> None:
    try:
        variant.agreement = variant_agreement(
            variant.manifest, truth, sets, backend=variant.backend, device=variant.device,
            hint=variant.hint, file_index=variant.file_index, threads=threads,
            eval_score_threshold=config.eval_score_threshold)
    except EdgeVisionError as exc:
        variant.status = f'failed: {str(exc)[:160]}'
        return
    if min(variant.agreement.values()) < config.floor:
        variant.status = 'below floor'


def _measure(workers: Sequence[tuple[_Variant, int]], frames: Sequence[np.ndarray],
             seconds: float) -> tuple[float, float]:
    """``(fps, median detect ms)`` of a pool of these workers over the frames, blocking
    submission (every frame inferred, in order)."""
    from ..inference.pool import pool_throughput

    detectors = []
    try:
        for variant, threads in workers:
            detectors.append(_detector(variant, threads))
        for det in detectors:
            det.warmup(2)
        times: list[float] = []

        def make(det):
            def run(index: int):
                result = det.detect(frames[index % len(frames)])
                times.append(result.timings.total_ms)
            return run

        fps = pool_throughput([make(d) for d in detectors], seconds, name='tune')
        return fps, float(np.median(times)) if times else math.nan
    finally:
        for det in detectors:
            det.close()


def _plans(cores: int, max_workers: int) -> list[tuple[int, int]]:
    """``(workers, threads)`` pairs that use all cores: 1 x cores, 2 x cores/2, ..."""
    out = []
    for workers in range(1, min(cores, max_workers) + 1):
        if cores % workers == 0:
            out.append((workers, cores // workers))
    return out


def _reference(source: ModelManifest) -> _Variant:
    index = next((i for i, f in enumerate(source.files)
                  if f.format == 'onnx' and f.precision == 'fp32'), None)
    if index is None:
        raise ModelError(f'{source.name} ({source.source}) has no FP32 ONNX file: tuning needs '
                         f'it as the accuracy reference')
    return _Variant(source, index, 'onnxruntime', 'cpu', '', 'cpu')


def _make_int8(source: ModelManifest, folder: Path | None, say: Callable[[str], None]
               ) -> list[ModelManifest]:
    """An ONNX Runtime INT8 variant of a model that has none (cached; None when it fails)."""
    from .recipes import OptimizeConfig, optimize_model, recipe_available

    reason = recipe_available('onnx-int8', source)
    if reason:
        say(f'no INT8 variant and none can be made here: {reason}')
        return []
    out = _made_dir(source, folder)
    say(f'{source.name} has no INT8 variant: making one with edge-vision optimize '
        f'(onnx-int8) into {out}')
    try:
        made = optimize_model(source, out, OptimizeConfig(recipes=('onnx-int8',)),
                              progress=lambda line: _LOG.info('%s', line))
    except EdgeVisionError as exc:
        say(f'making the INT8 variant failed: {exc}')
        return []
    manifests = []
    import yaml
    for item in made:  # record which source it was made from, so a changed model remakes it
        data = yaml.safe_load(item.manifest.read_text(encoding='utf-8'))
        data['recipe']['source_model']['sha256'] = _source_sha(source)
        item.manifest.write_text(yaml.safe_dump(data, sort_keys=False, width=99),
                                 encoding='utf-8')
        manifests.append(load_manifest(item.manifest))
    return manifests


def tune(config: TuneConfig | None = None, progress: Callable[[str], None] | None = None,
         folder: Path | None = None, save: bool = True) -> TuneResult:
    """Measure the candidate configurations and pick the fastest that keeps the floor (see the
    module docstring); saves the result, table and plot in the cache unless ``save`` is False.

    Args:
        config: what to tune and how.
        progress: called with one line per step (default: logging at INFO).
        folder: cache folder (default :func:`cache_dir`).
        save: write ``<model>.json``, ``.txt`` and ``.png`` into the cache folder.

    Raises:
        ConfigError: bad settings, no agreement images, or a cache folder that cannot be
            written (checked before anything is measured).
        ModelError: a model that cannot be resolved or has no FP32 ONNX reference.
    """
    from ..optimize.bench.measure import loadavg
    from .images import agreement_sets

    config = config or TuneConfig()
    if save:  # refused before a minute of measuring
        from .recipes import check_writable

        check_writable(folder or cache_dir(), 'the tuning cache',
                       'set XDG_CACHE_HOME to a writable folder')
    say = progress or (lambda line: _LOG.info('%s', line))
    started = time.monotonic()
    load_start = loadavg()
    source, variants = _models(config)
    notes: list[str] = []
    made = _made_variants(source, folder)
    if config.make_int8 and not made and not any(
            f.precision == 'int8' for m in (source, *variants) for f in m.files):
        made = _make_int8(source, folder, say)
    manifests = [source, *variants, *made]
    fingerprint = device_fingerprint(manifests, config)
    cpu = fingerprint['cpu']
    cores = max(1, int(cpu['usable_cores']))
    sets = agreement_sets(config.clip_frames, config.photos)
    say(f'tuning {source.name}: {len(manifests)} variant manifest(s) '
        f'({", ".join(m.name for m in manifests)}); agreement on '
        + ', '.join(f'{k} ({len(v)} images)' for k, v in sets.items())
        + f'; {cores} usable cores; load average {load_start}')
    truth = reference_detections(source, sets, cores)
    candidates = _candidates(manifests, config, bool(cpu.get('bf16')), notes)
    for variant in candidates:
        _agreement(variant, truth, sets, config, cores)
        say(f'agreement {variant.manifest.name} {variant.file.path.name} on {variant.backend}:'
            f'{variant.device}{" " + variant.hint if variant.hint else ""}: '
            + (', '.join(f'{k} {v:.3f}' for k, v in variant.agreement.items())
               or variant.status))
    frames = list(sets['clip'].images if 'clip' in sets else sets['photos'].images)
    rows: list[TuneRow] = []

    def row_for(variant: _Variant, workers: Sequence[tuple[_Variant, int]]) -> TuneRow:
        row = TuneRow(variant.manifest.name, str(variant.manifest.source),
                      variant.file.path.name, variant.precision,
                      [v.spec(t) for v, t in workers], agreement=dict(variant.agreement),
                      status=variant.status)
        rows.append(row)
        return row

    def time_row(row: TuneRow, workers: Sequence[tuple[_Variant, int]]) -> None:
        try:
            fps, ms = _measure(workers, frames, config.seconds)
        except EdgeVisionError as exc:
            row.status = f'failed: {str(exc)[:160]}'
            return
        if not math.isfinite(row.fps) or fps > row.fps:
            row.fps, row.latency_ms = fps, ms
        say(f'{row.variant} {row.precision} on {row.backend}:{row.device} {row.plan}: '
            f'{fps:.1f} fps, {ms:.1f} ms')

    # 1. quick throughput of every passing variant: one worker, all cores
    quick: list[tuple[TuneRow, _Variant]] = []
    for variant in candidates:
        threads = cores if variant.processor == 'cpu' else 0
        row = row_for(variant, [(variant, threads)])
        if variant.status == 'ok':
            time_row(row, [(variant, threads)])
            quick.append((row, variant))
    # 2. execution plans of the fastest few, and pools across processors
    ranked = sorted((q for q in quick if q[0].passed), key=lambda q: -q[0].fps)
    planned: list[tuple[TuneRow, list[tuple[_Variant, int]]]] = []
    for row, variant in ranked[:config.top]:
        planned.append((row, [(variant, row.workers[0].threads)]))
        if variant.processor != 'cpu':
            continue
        for workers, threads in _plans(cores, config.max_workers):
            if workers == 1:
                continue
            plan = [(variant, threads)] * workers
            planned.append((row_for(variant, plan), plan))
    best_per_processor: dict[str, tuple[TuneRow, _Variant]] = {}
    for row, variant in ranked:
        best_per_processor.setdefault(variant.processor, (row, variant))
    if len(best_per_processor) > 1:
        mixed = [(v, r.workers[0].threads) for r, v in best_per_processor.values()]
        lead = next(iter(best_per_processor.values()))
        mixed_row = row_for(lead[1], mixed)
        mixed_row.agreement = {k: min(v.agreement[k] for v, _ in mixed)
                               for k in lead[1].agreement}
        mixed_row.variant = '+'.join(dict.fromkeys(v.manifest.name for v, _ in mixed))
        planned.append((mixed_row, mixed))
    # the FP32 reference runs in the same rounds, so the speed-up is a side-by-side ratio
    reference = next(((r, v) for r, v in quick if r.precision == 'fp32' and
                      v.backend == 'onnxruntime' and v.processor == 'cpu' and
                      v.manifest.source == source.source), None)
    if reference is not None and all(reference[0] is not p[0] for p in planned):
        planned.append((reference[0], [(reference[1], reference[0].workers[0].threads)]))
    for _ in range(config.rounds):
        for row, workers in planned:
            if row.status == 'ok':
                time_row(row, workers)
    result = TuneResult(source.name, fingerprint, _key(fingerprint), rows, None, config.floor,
                        datetime.datetime.now(datetime.timezone.utc).isoformat(
                            timespec='seconds'),
                        round(time.monotonic() - started, 1), [load_start, loadavg()], notes,
                        {k: {'count': len(v), 'source': v.source, 'sha256': v.sha256}
                         for k, v in sets.items()})
    result.choice = _choose(rows, config.tolerance)
    if result.choice is not None:
        result.choice.chosen = True
    if save:
        save_result(result, folder)
    say(f'chosen: {result.describe_choice()} (took {result.took_s:.0f} s)')
    return result


def _choose(rows: Sequence[TuneRow], tolerance: float) -> TuneRow | None:
    """The fastest passing row; one within ``tolerance`` of it with fewer workers wins."""
    ok = [r for r in rows if r.passed]
    if not ok:
        return None
    best = max(r.fps for r in ok)
    close = [r for r in ok if r.fps >= best * (1.0 - tolerance)]
    return min(close, key=lambda r: (len(r.workers), -r.fps))


def save_result(result: TuneResult, folder: Path | None = None) -> dict[str, Path]:
    """Write the result (JSON), its table (text) and its plot (PNG) into the cache folder."""
    paths = cache_paths(result.model, folder)
    paths['json'].parent.mkdir(parents=True, exist_ok=True)
    tmp = paths['json'].with_suffix('.json.tmp')
    tmp.write_text(json.dumps(result.as_dict(), indent=1, default=str) + '\n',
                   encoding='utf-8')
    tmp.replace(paths['json'])
    paths['text'].write_text(result.table(), encoding='utf-8')
    if not result.plot(paths['png']):
        paths.pop('png')
    return paths


def tuned(config: TuneConfig | None = None, progress: Callable[[str], None] | None = None,
          folder: Path | None = None, retune: bool = False) -> TuneResult:
    """The cached tuning of ``config.model`` for this device, or a new one (measured now and
    cached) when there is none, it is stale, or ``retune`` is set."""
    config = config or TuneConfig()
    if not retune:
        cached = load_cached(config, folder)
        if cached is not None:
            return cached
    return tune(config, progress, folder)


# -- model: auto ---------------------------------------------------------------------------

#: ``model: auto`` means the tuned configuration of this model (the embedded default detector).
AUTO_MODEL = 'nanodet-m-416'
#: ... and, on a device without a tuning, this shipped variant of it: ONNX Runtime static INT8,
#: agreement mAP@0.5 0.970 (clip) / 0.978 (photographs) with the FP32 file; on the 2-core
#: development machine `edge-vision run` plays the clip 3.2x faster with it than with the FP32
#: file (side by side, README "Speed"), and `edge-vision tune` picks it there too.
AUTO_FALLBACK_MODEL = 'nanodet-m-416-int8'


def _fallback_model(backend: str) -> str:
    """The shipped INT8 variant when ``backend`` reads its file format (ONNX), else the FP32
    model (e.g. LiteRT, which needs a .tflite file)."""
    from ..inference.backends import BACKEND_FORMATS

    formats = BACKEND_FORMATS.get(backend.strip().lower(), ())
    manifest = resolve_model(AUTO_FALLBACK_MODEL)
    if any(f.format in formats for f in manifest.files):
        return AUTO_FALLBACK_MODEL
    return AUTO_MODEL


@dataclass(frozen=True)
class InferencePlan:
    """What one inference stage runs: its workers and why.

    Attributes:
        workers: one spec per pool worker (model, backend, device, threads, precision).
        reason: one line for logs and diagnostics (tuned, the default, or as configured).
        tuned: True when the workers come from a cached tuning of this device.
    """

    workers: tuple[WorkerSpec, ...]
    reason: str
    tuned: bool = False


def plan_inference(model: str, backend: str, device: str = 'auto', threads: int = 0,
                   precision: str = 'auto', workers: int = 0, cores: int | None = None,
                   folder: Path | None = None, tune_config: TuneConfig | None = None
                   ) -> InferencePlan:
    """Resolve an inference stage's settings into pool workers.

    ``model == 'auto'``: the choice cached by ``edge-vision tune`` for this device (same
    fingerprint; tuned with ``tune_config``, default: the default settings of
    :data:`AUTO_MODEL`) when there is one — its model variant,
    backend, device, precision, workers and threads; otherwise :data:`AUTO_FALLBACK_MODEL` on
    the given backend and device. ``workers == 0`` (auto): the tuned plan, else one worker with
    every core (which wins depends on the device and its load: on the idle 2-core development
    machine 2 x 1 threads gave 1.26x the throughput of 1 x 2 at a higher latency, under load
    1 x 2 won; ``benchmarks/bench_pool.py``). ``workers == N``: N workers of the (tuned or given)
    configuration with ``threads`` each, or the usable cores split between them.

    Raises:
        ConfigError: a negative worker or thread count.
        ModelError: a model name that cannot be resolved (while looking up the tuning).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f'workers must be an integer >= 0 (0 = auto), got {workers!r}')
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ConfigError(f'threads must be an integer >= 0 (0 = auto), got {threads!r}')
    cores = cores or usable_cores()
    tuned_specs: list[WorkerSpec] = []
    if model.strip().lower() == 'auto':
        cached = load_cached(tune_config or TuneConfig(model=AUTO_MODEL), folder)
        if cached is not None and cached.choice is not None:
            tuned_specs = cached.workers
            c = cached.choice
            reason = (f'model auto: tuned on this device ({cached.created}; '
                      f'`edge-vision tune --show`): {c.variant} ({c.precision}) on '
                      f'{c.backend}:{c.device}')
        else:
            model = _fallback_model(backend)
            reason = (f'model auto: {model} on {backend}:{device} (this device has no tuning '
                      f'yet; `edge-vision tune` measures it)')
    else:
        reason = f'{model} on {backend}:{device}'
    if tuned_specs and workers == 0:
        if threads:  # the tuned plan with the threads asked for
            tuned_specs = [dataclasses.replace(w, threads=threads) for w in tuned_specs]
        reason += (f'; {len(tuned_specs)} worker(s) x {tuned_specs[0].threads or "auto"} '
                   f'thread(s)' + (' as configured' if threads else ''))
        return InferencePlan(tuple(tuned_specs), reason, tuned=True)
    if tuned_specs:
        base = tuned_specs[0]
    else:
        base = WorkerSpec(backend, device, threads, model, precision)
    count = workers or 1
    if threads:
        each = threads
    elif count > 1:
        each = max(1, cores // count)
    else:
        each = base.threads  # the tuned threads, or 0: the runtime uses every core
    specs = tuple(dataclasses.replace(base, threads=each) for _ in range(count))
    plan = f'{count} worker(s) x {each or "auto"} thread(s)'
    return InferencePlan(specs, f'{reason}; {plan}', tuned=bool(tuned_specs))
