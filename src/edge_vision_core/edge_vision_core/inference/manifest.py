"""Model manifests: one small YAML that describes a model file, and the registry of named models.

A manifest tells the detector everything the model file does not: which adapter decodes the
outputs, the input size, layout, colour order and normalization, the labels and the default
thresholds. Adding an exported YOLO model is one YAML, no code::

    name: my-yolov8n
    adapter: yolov8            # a key of adapters.ADAPTERS: nanodet, yolov5, yolov8 (also
                               # v11), yolo_nms, ssd_postprocess, segmentation...
    file: yolov8n.onnx         # relative to this YAML; or `files:` (see below)
    sha256: 3f5a...            # optional; verified at load when given
    input_size: [640, 640]     # width, height
    layout: NCHW               # or NHWC
    color_order: rgb           # bgr, rgb or gray
    scale: 0.00392156862745098 # x = pixel * scale; or mean: [..] and std: [..] in pixel units
    resize: letterbox          # or stretch
    pad_value: 114
    labels_file: coco.names    # one label per line; or `labels:` as an inline list
    score_threshold: 0.25
    nms_threshold: 0.45
    max_detections: 100
    license: AGPL-3.0
    recipe: {...}              # optional provenance: how the file was made (edge-vision
                               # optimize writes tool versions, calibration set, settings)

Several formats of one model are listed as ``files: [{path, format, precision, sha256}, ...]``
(format ``onnx``, ``tflite``, ``openvino`` (IR .xml) or ``engine``; precision ``fp32``/``fp16``/
``int8``); the detector picks the one its backend reads. Each adapter adds its own keys (its
:attr:`~.adapters.Adapter.options`: ``strides``, ``reg_max``, ``center_offset`` for nanodet,
``normalized_boxes`` for the YOLO adapters, ``label_offset`` for ssd_postprocess, ``strides``
and ``center_offset`` (the anchor layout) for blazeface, ``size_multiple``, ``bin_threshold``,
``unclip_ratio`` for db_text, ``dictionary`` (a file, relative to the YAML like the model files),
``size_multiple``, ``space_threshold`` for ctc_text); a key of another adapter is refused.
Normalisation is ``x = (pixel - mean) / std`` per channel, in pixel units (0..255) and in the
model's colour order.

Named models come from the ``edge_vision_models`` package (the embedded default
``nanodet-m-416``); :func:`resolve_model` accepts a name, a manifest path or a model file with a
sibling ``<stem>.yaml``.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError
from .adapters import ADAPTERS, Adapter, get_adapter

__all__ = [
    'FORMATS',
    'ModelFile',
    'ModelManifest',
    'list_models',
    'load_manifest',
    'model_file_bytes',
    'models_package_dir',
    'resolve_model',
    'sha256_file',
    'verify_checksum',
]

#: model file formats and their suffixes.
FORMATS: dict[str, tuple[str, ...]] = {
    'onnx': ('.onnx',),
    'tflite': ('.tflite',),
    'openvino': ('.xml',),
    'engine': ('.engine', '.plan', '.trt'),
}
_LAYOUTS = ('NCHW', 'NHWC')
_COLORS = ('bgr', 'rgb', 'gray')
_RESIZE = ('letterbox', 'stretch')
_PRECISIONS = ('fp32', 'fp16', 'int8')


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelFile:
    """One model file of a manifest.

    Attributes:
        path: absolute path of the file.
        format: one of :data:`FORMATS`.
        precision: ``fp32``, ``fp16`` or ``int8`` (informative; picks the file for a hint).
        sha256: expected hex SHA-256, or '' when the manifest gives none.
    """

    path: Path
    format: str
    precision: str = 'fp32'
    sha256: str = ''


def model_file_bytes(path: Path) -> int:
    """Size on disk of a model file, with the ``.bin`` weights of an OpenVINO IR ``.xml``
    (0 for a missing file)."""
    total = path.stat().st_size if path.is_file() else 0
    if path.suffix == '.xml' and path.with_suffix('.bin').is_file():
        total += path.with_suffix('.bin').stat().st_size
    return total


def require_file(path: Path, what: str) -> None:
    """Raise ModelError unless ``path`` is a regular file, saying what it is instead."""
    if path.is_file():
        return
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir()
                        if p.suffix.lower() in ('.yaml', '.yml', *_model_suffixes()))[:8]
        found = f' (it holds {", ".join(inside)})' if inside else ''
        raise ModelError(f'{what} {path} is a directory, not a file{found}: give the '
                         f'{what} itself')
    if path.exists():
        raise ModelError(f'{what} {path} is not a regular file')
    raise ModelError(f'{what} {path} does not exist')


def _model_suffixes() -> set[str]:
    return {s for v in FORMATS.values() for s in v}


def verify_checksum(model_file: ModelFile) -> None:
    """Check that the file exists and matches its SHA-256 (when the manifest has one).

    Raises:
        ModelError: naming the file, for a missing, truncated or corrupt file.
    """
    path = model_file.path
    require_file(path, 'model file')
    if model_file.sha256:
        actual = sha256_file(path)
        if actual != model_file.sha256.lower():
            raise ModelError(f'model file {path} is corrupt or truncated: its SHA-256 is '
                             f'{actual}, the manifest expects {model_file.sha256} '
                             f'({path.stat().st_size} bytes). Reinstall or re-download it')


def _fail(source: str, message: str) -> ModelError:
    return ModelError(f'model manifest {source}: {message}')


@dataclass(frozen=True)
class ModelManifest:
    """A validated model description (see the module docstring for the YAML keys).

    Attributes:
        name: model name (registry key).
        adapter: a key of :data:`edge_vision_core.inference.adapters.ADAPTERS`.
        files: the model files, at least one.
        input_size: ``(width, height)`` of the model input in pixels.
        layout: ``NCHW`` or ``NHWC`` of the image input.
        color_order: ``bgr``, ``rgb`` or ``gray`` channels the model expects.
        mean, std: per-channel normalisation in pixel units, in the model's colour order.
        resize: ``letterbox`` (aspect kept, padded) or ``stretch``.
        pad_value: letterbox padding pixel value (0..255).
        labels: class names; index = class id of the model outputs.
        score_threshold, nms_threshold, max_detections: defaults for the detector.
        options: the adapter's own keys, an instance of its ``Adapter.options`` dataclass
            (e.g. ``NanodetOptions(strides, reg_max, center_offset)``).
        license, description: free text.
        recipe: provenance of the file (the ``recipe:`` mapping ``edge-vision optimize`` writes:
            recipe name, tool versions, calibration set SHA-256, settings); empty when absent.
        source: the manifest file (for messages), or '<dict>'.
    """

    name: str
    adapter: str
    files: tuple[ModelFile, ...]
    input_size: tuple[int, int]
    labels: tuple[str, ...]
    layout: str = 'NCHW'
    color_order: str = 'rgb'
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize: str = 'letterbox'
    pad_value: float = 114.0
    score_threshold: float = 0.25
    nms_threshold: float = 0.45
    max_detections: int = 100
    options: Any = None
    license: str = ''
    description: str = ''
    recipe: Mapping[str, Any] = field(default_factory=dict, compare=False)
    source: str = field(default='<dict>', compare=False)

    def __post_init__(self) -> None:
        if self.options is None:  # built in code: the adapter's default options
            object.__setattr__(self, 'options', get_adapter(self.adapter).options())

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return 1 if self.color_order == 'gray' else 3

    def pick_file(self, formats: Sequence[str], precision: str = 'auto') -> ModelFile:
        """The first file whose format is in ``formats`` (in that order), preferring
        ``precision`` (``auto`` = fp32 first).

        Raises:
            ModelError: when the manifest has no file in those formats.
        """
        prefer = ('fp32', 'fp16', 'int8') if precision in ('auto', 'fp32') else (
            precision, 'fp32', 'fp16', 'int8')
        for fmt in formats:
            matches = [f for f in self.files if f.format == fmt]
            for prec in prefer:
                for f in matches:
                    if f.precision == prec:
                        return f
        have = ', '.join(f'{f.path.name} ({f.format})' for f in self.files)
        raise ModelError(f'model {self.name!r} ({self.source}) has no file in a format this '
                         f'backend reads ({", ".join(formats)}); it has {have}. Convert the '
                         f'model or choose another backend')

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: Path | str = '.',
                  source: str = '<dict>') -> ModelManifest:
        """Build and validate a manifest from a parsed YAML mapping.

        Args:
            data: the YAML content.
            base_dir: folder that relative file paths are resolved against.
            source: name used in error messages (the YAML path).

        Raises:
            ModelError: unknown keys, missing or invalid values, naming the manifest and key.
        """
        if not isinstance(data, Mapping):
            raise _fail(source, f'must be a YAML mapping, got {type(data).__name__}')
        base = Path(base_dir)
        data = dict(data)
        adapter = cls._adapter(data, source)
        cls._check_keys(data, adapter, source)
        for key in ('name', 'input_size'):
            if key not in data:
                raise _fail(source, f'missing required key {key!r}')
        if 'file' not in data and 'files' not in data:
            raise _fail(source, "needs 'file' (one model file) or 'files' (a list)")

        def choice(key: str, options: Sequence[str], default: str, fold=str.lower) -> str:
            value = data.get(key, default)
            if not isinstance(value, str) or fold(value) not in options:
                raise _fail(source, f'{key} must be one of {list(options)}, got {value!r}')
            return fold(value)

        def number(key: str, default: float, lo: float, hi: float, integer: bool = False):
            value = data.get(key, default)
            ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok_type or not math.isfinite(value) \
                    or not lo <= value <= hi:
                kind = 'an integer' if integer else 'a number'
                raise _fail(source, f'{key} must be {kind} in [{lo}, {hi}], got {value!r}')
            return int(value) if integer else float(value)

        def numbers(key: str, default: Sequence[float], length: int | None = None,
                    positive: bool = False) -> tuple[float, ...]:
            value = data.get(key, default)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value] * (length or 1)
            if not isinstance(value, (list, tuple)) or (length and len(value) != length) or \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            and math.isfinite(v) and (v > 0 or not positive) for v in value):
                want = f'{length} ' if length else ''
                sign = 'positive ' if positive else ''
                raise _fail(source, f'{key} must be a list of {want}{sign}numbers, got {value!r}')
            return tuple(float(v) for v in value)

        size = data['input_size']
        if isinstance(size, int) and not isinstance(size, bool):
            size = [size, size]
        if not (isinstance(size, (list, tuple)) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16384
                        for v in size)):
            raise _fail(source, f'input_size must be [width, height] in pixels, got {size!r}')
        color = choice('color_order', _COLORS, 'rgb')
        channels = 1 if color == 'gray' else 3
        if 'scale' in data and ('mean' in data or 'std' in data):
            raise _fail(source, "give either 'scale' or 'mean'/'std', not both")
        if 'scale' in data:
            scale = number('scale', 1.0, 1e-12, 1e12)
            mean, std = (0.0,) * channels, (1.0 / scale,) * channels
        else:
            mean = numbers('mean', (0.0,) * channels, channels)
            std = numbers('std', (1.0,) * channels, channels, positive=True)
        labels = cls._labels(data, base, source)
        files = cls._files(data, base, source)
        try:
            options = adapter.resolve_files(adapter.parse_options(data), base)
        except ConfigError as exc:
            raise _fail(source, f'adapter {adapter.name}: {exc}') from None
        name = data['name']
        if not isinstance(name, str) or not name.strip():
            raise _fail(source, f'name must be a non-empty string, got {name!r}')
        recipe = data.get('recipe', {})
        if not isinstance(recipe, Mapping):
            raise _fail(source, f'recipe must be a mapping (how the file was made), got '
                                f'{type(recipe).__name__}')
        manifest = cls(
            name=name.strip(), adapter=adapter.name, files=files,
            input_size=(int(size[0]), int(size[1])), labels=labels,
            layout=choice('layout', _LAYOUTS, 'NCHW', str.upper), color_order=color,
            mean=mean, std=std, resize=choice('resize', _RESIZE, 'letterbox'),
            pad_value=number('pad_value', 114.0, 0.0, 255.0),
            score_threshold=number('score_threshold', 0.25, 0.0, 1.0),
            nms_threshold=number('nms_threshold', 0.45, 0.0, 1.0),
            max_detections=number('max_detections', 100, 0, 100000, integer=True),
            options=options,
            license=str(data.get('license', '')), description=str(data.get('description', '')),
            recipe=dict(recipe), source=source)
        problem = adapter.check_manifest(manifest)
        if problem:
            raise _fail(source, f'adapter {adapter.name}: {problem}')
        return manifest

    @staticmethod
    def _adapter(data: Mapping[str, Any], source: str) -> Adapter:
        if 'adapter' not in data:
            raise _fail(source, f"missing required key 'adapter' (one of {list(ADAPTERS)})")
        try:
            return get_adapter(data['adapter'])
        except ModelError as exc:
            raise _fail(source, str(exc)) from None

    @classmethod
    def _check_keys(cls, data: Mapping[str, Any], adapter: Adapter, source: str) -> None:
        common = {f.name for f in fields(cls)} - {'source', 'options'}
        common |= {'file', 'sha256', 'labels_file', 'scale', 'format', 'precision'}
        known = common | set(adapter.option_keys())
        unknown = sorted(set(data) - known)
        if not unknown:
            return
        elsewhere = {key: [a.name for a in ADAPTERS.values() if key in a.option_keys()]
                     for key in unknown}
        hints = ''.join(f'; {key} is an option of adapter {", ".join(owners)}'
                        for key, owners in elsewhere.items() if owners)
        raise _fail(source, f'unknown key(s) {", ".join(unknown)} for adapter {adapter.name}'
                            f'{hints}; valid keys: {", ".join(sorted(known))}')

    @staticmethod
    def _labels(data: Mapping[str, Any], base: Path, source: str) -> tuple[str, ...]:
        if 'labels' in data and 'labels_file' in data:
            raise _fail(source, "give either 'labels' or 'labels_file', not both")
        if 'labels_file' in data:
            path = base / str(data['labels_file'])
            try:
                text = path.read_text(encoding='utf-8')
            except OSError as exc:
                raise _fail(source, f'cannot read labels_file {path}: {exc.strerror}') from exc
            labels = [line.strip() for line in text.splitlines() if line.strip()]
        else:
            labels = data.get('labels')
            if not isinstance(labels, (list, tuple)):
                raise _fail(source, "needs 'labels' (a list of class names) or 'labels_file'")
            labels = [str(v) for v in labels]
        if not labels:
            raise _fail(source, 'the label list is empty')
        return tuple(labels)

    @staticmethod
    def _files(data: Mapping[str, Any], base: Path, source: str) -> tuple[ModelFile, ...]:
        if 'file' in data and 'files' in data:
            raise _fail(source, "give either 'file' or 'files', not both")
        if 'file' in data:
            entries = [{'path': data['file'], 'sha256': data.get('sha256', ''),
                        'format': data.get('format'), 'precision': data.get('precision', 'fp32')}]
        else:
            entries = data['files']
            if not isinstance(entries, list) or not entries:
                raise _fail(source, 'files must be a non-empty list of {path, format, '
                                    'precision, sha256}')
        out = []
        for entry in entries:
            if not isinstance(entry, Mapping) or not isinstance(entry.get('path'), str):
                raise _fail(source, f'every file needs a path, got {entry!r}')
            path = (base / entry['path']).resolve()
            fmt = entry.get('format') or next(
                (k for k, sfx in FORMATS.items() if path.suffix.lower() in sfx), None)
            if fmt not in FORMATS:
                raise _fail(source, f'unknown format {fmt!r} for {entry["path"]}; formats: '
                                    f'{list(FORMATS)} (suffixes '
                                    f'{[s for v in FORMATS.values() for s in v]})')
            precision = str(entry.get('precision', 'fp32')).lower()
            if precision not in _PRECISIONS:
                raise _fail(source, f'precision of {entry["path"]} must be one of '
                                    f'{list(_PRECISIONS)}, got {precision!r}')
            sha = str(entry.get('sha256', '') or '').lower()
            if sha and (len(sha) != 64 or any(c not in '0123456789abcdef' for c in sha)):
                raise _fail(source, f'sha256 of {entry["path"]} must be 64 hex digits')
            out.append(ModelFile(path, fmt, precision, sha))
        return tuple(out)


def load_manifest(path: str | Path) -> ModelManifest:
    """Read and validate a manifest YAML (file paths are relative to its folder).

    Raises:
        ModelError: unreadable file, bad YAML or invalid content, naming the file.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise ModelError(f'cannot read model manifest {path}: {exc.strerror}') from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(f'model manifest {path} is not valid YAML: {exc}') from exc
    return ModelManifest.from_dict(data, path.parent, str(path))


def models_package_dir() -> Path | None:
    """The model folder of the ``edge_vision_models`` package, or None when not installed."""
    try:
        package = importlib.import_module('edge_vision_models')
    except ImportError:
        return None
    return Path(package.models_dir())


def list_models() -> dict[str, Path]:
    """``{name: manifest path}`` of the models shipped in the ``edge_vision_models`` package."""
    folder = models_package_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob('*.yaml'))}


def resolve_model(spec: str | Path) -> ModelManifest:
    """A manifest from a registry name, a manifest path, or a model file with a sibling YAML.

    Raises:
        ModelError: unknown name (listing the known ones), missing file, or a model file without
            a manifest (with the fix).
    """
    text = str(spec).strip()
    path = Path(text).expanduser()
    if text and path.is_dir():
        require_file(path, 'model')  # a directory: say so, and what is in it
    if path.suffix.lower() in ('.yaml', '.yml'):
        require_file(path, 'model manifest')
        return load_manifest(path)
    if path.suffix.lower() in _model_suffixes():
        require_file(path, 'model file')
        for candidate in (path.with_suffix('.yaml'), path.with_suffix('.yml')):
            if candidate.is_file():
                return load_manifest(candidate)
        raise ModelError(f'model file {path} has no manifest: write {path.with_suffix(".yaml")} '
                         f'(adapter, input_size, labels...; see edge_vision_core.inference.'
                         f'manifest) or pass a manifest path')
    known = list_models()
    if text in known:
        return load_manifest(known[text])
    hint = (f'known models: {", ".join(known)}' if known else
            'the edge_vision_models package (the embedded models) is not installed')
    raise ModelError(f'unknown model {text!r}: not a manifest (.yaml), not a model file, and '
                     f'not a registered name; {hint}')
