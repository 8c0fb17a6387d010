"""Benchmark planning: the settings, and which model file runs on which backend and device.

:func:`plan` expands the models (names, manifests, folders of manifests) into one
:class:`PlannedRow` per model file x installed backend that reads its format x device of that
backend here (OpenVINO's ``AUTO`` left out; ``edgetpu`` only for INT8 TFLite files), and
notes what it skipped and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...config import check_config, param
from ...errors import ConfigError, ModelError
from ...inference.manifest import ModelManifest, model_file_bytes

__all__ = ['BenchConfig', 'Plan', 'PlannedRow', 'expand_models', 'plan']

_SKIP_DEVICES = {'AUTO'}


@dataclass(frozen=True)
class BenchConfig:
    """Settings of :func:`~edge_vision_core.optimize.bench.run_benchmark` (``edge-vision
    bench`` options)."""

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


@dataclass(frozen=True)
class PlannedRow:
    """One measurement to make: one model file on one backend and device.

    Attributes:
        variant: the manifest's model name.
        manifest: path of the manifest.
        recipe: the recipe that made the file (its manifest's ``recipe:``), or ``source``.
        file: the model file's name.
        format, precision: the file's manifest format and precision.
        input_size: ``(width, height)`` of the model input.
        backend, device: where it runs.
        file_index: index of the file in the manifest's ``files``.
        model_bytes: size on disk (OpenVINO IR with its ``.bin``).
        score_threshold: the manifest's score threshold (for the agreement's mean IoU).
    """

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


@dataclass(frozen=True)
class Plan:
    """What :func:`plan` found: the rows, and notes on what was skipped."""

    rows: list[PlannedRow]
    notes: list[str]


def expand_models(models: Sequence[str | Path]) -> list[Path]:
    """Manifest paths of names, manifests, model files and folders (in the given order).

    Raises:
        ConfigError: no model given.
        ModelError: an unknown model or a folder without manifests.
    """
    from ...inference.manifest import resolve_model

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


def recipe_of(manifest: ModelManifest) -> str:
    """The recipe that made a variant (its manifest's ``recipe:``), or 'source'."""
    return str(manifest.recipe.get('recipe', 'unknown')) if manifest.recipe else 'source'


def plan(manifests: list[Path], config: BenchConfig) -> Plan:
    """Every model file x installed backend that reads it x wanted device.

    Raises:
        ConfigError: an unknown backend name.
    """
    from ...inference.backends import BACKEND_FORMATS, BACKENDS, available_backends
    from ...inference.manifest import load_manifest

    installed = available_backends()
    wanted = [b.strip().lower() for b in config.backends] or list(installed)
    notes = []
    for name in wanted:
        if name not in BACKENDS:
            raise ConfigError(f'unknown backend {name!r}; known: {", ".join(BACKENDS)}')
        if name not in installed:
            notes.append(f'{name}: not installed here ({BACKENDS[name].install_hint}); skipped')
    devices_wanted = {d.strip().lower() for d in config.devices}
    rows: list[PlannedRow] = []
    for path in manifests:
        manifest = load_manifest(path)
        recipe = recipe_of(manifest)
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
                    rows.append(PlannedRow(manifest.name, str(path), recipe, file.path.name,
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
    return Plan(rows, notes)
