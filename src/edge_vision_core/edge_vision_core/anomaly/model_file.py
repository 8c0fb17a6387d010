"""The fitted anomaly model file: one versioned ``.npz`` with a typed, validated JSON header.

Layout (NumPy ``.npz``, read with ``allow_pickle=False``; nothing in it is ever unpickled):

- ``header``: uint8 array holding UTF-8 JSON, the fields of :class:`ModelHeader` plus
  ``format`` (``"edge_vision.anomaly"``) and ``format_version`` (:data:`FORMAT_VERSION`; an
  incompatible change increments it; :data:`READABLE_VERSIONS` are read):

  ========================  ===================================================================
  ``method``                a name of :data:`~.methods.METHODS` (``patchcore``, ``padim``)
  ``backbone``              ``{"id": ..., "digest": ...}``: the CNN backbone and the SHA-256 of
                            its model file (``{"id": "none", "digest": ""}`` without one)
  ``color_features``        versions of the built-in layers used, joined by ``+`` (colour
                            statistics, local contrast; ``''`` = none)
  ``input_size``            ``[width, height]`` of the model input (multiples of 16)
  ``resize``                ``letterbox`` or ``stretch``
  ``context_margin``        mirrored border around the input, pixels
  ``layers``                feature layers combined, e.g. ``["stride8", "color8"]``
  ``layer_scales``          the factor of each layer in the embedding (one per layer)
  ``patch_pool``            neighbourhood averaged per layer (odd)
  ``stride``                model-input pixels per patch
  ``grid``                  ``[h, w]`` patch grid, ``ceil(input size / stride)``
  ``embedding_dim``         dimension of the (projected) embeddings
  ``border_correction``     per-ring factors of the patch scores (ring 0 = image edge)
  ``position_correction``   per-cell factors stored as array ``position_scale`` (h, w)
  ``smoothing_sigma``       heatmap smoothing (model-input pixels) the threshold assumes
  ``score_top_k``           the frame score is the mean of this many top heatmap pixels
  ``reweight_neighbors``    PatchCore's frame-score reweighting (0 = off)
  ``background_quantile``   patch scores are measured above this quantile of the frame's own
                            patch scores (0 = off, as in a model without the field) ...
  ``background_cap``        ... capped at the highest such quantile of the calibration frames
  ``threshold``             the calibrated frame-score threshold
  ``calibration``           how it was calibrated (mode, parameters, number of frames, scores)
  ``fit``, ``created``      fitting settings; UTC time, edge_vision_core version, frames used
  ========================  ===================================================================

- ``projection``: (D_in, embedding_dim) float32 random projection of the embeddings (absent =
  none);
- ``position_scale``: (h, w) float32 per-cell factors of the patch scores (with
  ``position_correction``; shape = ``grid``);
- the method's arrays (:attr:`~.methods.AnomalyMethod.array_names`), checked against the
  declared ``embedding_dim`` and ``grid`` by the method when the detector loads the file.

:func:`load_model_file` refuses, each with a message naming the file, the field and the fix:
a missing or truncated file, an ``.npz`` holding pickled objects (refused without unpickling),
another format or format version, and any header field of the wrong type or out of range or
inconsistent with another (:meth:`ModelHeader.from_json`). :meth:`ModelHeader.check_compatible`
refuses a model made for another backbone (naming both) or input size.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..io.files import atomic_write

__all__ = ['FORMAT', 'FORMAT_VERSION', 'READABLE_VERSIONS', 'BackboneRef', 'ModelHeader',
           'load_model_file', 'save_model_file']

FORMAT = 'edge_vision.anomaly'
#: 2: typed header (score_top_k, reweight_neighbors added), EfficientNet-Lite0 default backbone.
#: 3: background_quantile/background_cap (scores above the frame's background level): an older
#: reader that ignored them would compare plain distances with a threshold calibrated above the
#: background, so it must refuse the file instead.
FORMAT_VERSION = 3
#: versions this code reads (a version-2 file has no background level: plain distances).
READABLE_VERSIONS = (2, 3)
_REFIT = 'refit the model (edge-vision anomaly-fit)'


@dataclass(frozen=True)
class BackboneRef:
    """The backbone a model was fitted with: its name and its model file's SHA-256."""

    id: str
    digest: str = ''


class _InvalidValueError(Exception):
    """A header value that does not fit its field (the message names what is wrong)."""


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _InvalidValueError(f'must be a string, got {type(value).__name__}')
    return value


def _integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _InvalidValueError(f'must be an integer, got {value!r}')
        if value < low or (high is not None and value > high):
            top = 'inf' if high is None else high
            raise _InvalidValueError(f'must be in [{low}, {top}], got {value}')
        return value
    return check


def _number(low: float = -math.inf, below: float = math.inf) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise _InvalidValueError(f'must be a finite number, got {value!r}')
        if value < low:
            raise _InvalidValueError(f'must be >= {low}, got {value}')
        if value >= below:
            raise _InvalidValueError(f'must be < {below}, got {value}')
        return float(value)
    return check


def _sequence(item: Callable[[Any], Any], length: int | None = None,
              min_length: int = 0) -> Callable[[Any], tuple]:
    def check(value: Any) -> tuple:
        if not isinstance(value, list):
            raise _InvalidValueError(f'must be a list, got {type(value).__name__}')
        if (length is not None and len(value) != length) or len(value) < min_length:
            want = length if length is not None else f'>= {min_length}'
            raise _InvalidValueError(f'must have {want} items, got {len(value)}')
        out = []
        for i, v in enumerate(value):
            try:
                out.append(item(v))
            except _InvalidValueError as exc:
                raise _InvalidValueError(f'item {i} {exc}') from None
        return tuple(out)
    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _InvalidValueError(f'must be true or false, got {value!r}')
    return value


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _InvalidValueError(f'must be a JSON object, got {type(value).__name__}')
    return value


def _backbone(value: Any) -> BackboneRef:
    data = _mapping(value)
    try:
        return BackboneRef(_text(data.get('id')), _text(data.get('digest', '')))
    except _InvalidValueError as exc:
        raise _InvalidValueError(f'{{"id", "digest"}}: {exc}') from None


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise _InvalidValueError(f'must be one of {list(choices)}, got {value!r}')
        return value
    return check


def _method(value: Any) -> str:
    from .methods import METHODS

    return _choice(*METHODS)(value)


@dataclass(frozen=True)
class ModelHeader:
    """What a fitted model depends on and how it scores (the file's header, typed).

    Field meanings: see the module docstring. Build one with :meth:`from_json` (validates) and
    write it with :meth:`to_json`.
    """

    method: str
    backbone: BackboneRef
    input_size: tuple[int, int]
    resize: str
    layers: tuple[str, ...]
    layer_scales: tuple[float, ...]
    patch_pool: int
    stride: int
    grid: tuple[int, int]
    embedding_dim: int
    smoothing_sigma: float
    threshold: float
    color_features: str = ''
    context_margin: int = 0
    border_correction: tuple[float, ...] = (1.0,)
    position_correction: bool = False
    score_top_k: int = 1
    reweight_neighbors: int = 0
    background_quantile: float = 0.0
    background_cap: float = 0.0
    calibration: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    created: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, source: str) -> ModelHeader:
        """Validate a parsed header.

        Raises:
            ModelError: a missing field, a value of another type or out of its range, or
                fields that contradict each other, naming ``source`` and the field.
        """
        if not isinstance(data, dict):
            raise ModelError(f'anomaly model {source}: the header must be a JSON object')
        values: dict[str, Any] = {}
        missing = []
        for name, (check, required) in _HEADER_FIELDS.items():
            if name not in data or data[name] is None:
                if required:
                    missing.append(name)
                continue
            try:
                values[name] = check(data[name])
            except _InvalidValueError as exc:
                raise ModelError(f'anomaly model {source}: header field {name!r} {exc}; '
                                 f'{_REFIT}') from None
        if missing:
            raise ModelError(f'anomaly model {source} is incomplete: missing header fields '
                             f'{", ".join(missing)}; {_REFIT}')
        header = cls(**values)
        header._check_consistent(source)
        return header

    def _check_consistent(self, source: str) -> None:
        def fail(name: str, message: str) -> ModelError:
            return ModelError(f'anomaly model {source}: header field {name!r} {message}; '
                              f'{_REFIT}')

        w, h = self.input_size
        if w % 16 or h % 16:
            raise fail('input_size', f'must be multiples of 16, got {w}x{h}')
        if self.context_margin % 16:
            raise fail('context_margin', f'must be a multiple of 16, got {self.context_margin}')
        if len(set(self.layers)) != len(self.layers):
            raise fail('layers', f'has duplicates: {list(self.layers)}')
        if len(self.layer_scales) != len(self.layers):
            raise fail('layer_scales', f'has {len(self.layer_scales)} values for '
                                       f'{len(self.layers)} layers')
        if self.patch_pool % 2 == 0:
            raise fail('patch_pool', f'must be odd, got {self.patch_pool}')
        grid = (-(-h // self.stride), -(-w // self.stride))
        if self.grid != grid:
            raise fail('grid', f'is {list(self.grid)}, but input size {w}x{h} at stride '
                               f'{self.stride} gives {list(grid)}')

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to the file (without ``format``/``format_version``)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @property
    def uses_backbone(self) -> bool:
        from .features import NO_BACKBONE

        return self.backbone.id != NO_BACKBONE

    def check_compatible(self, source: str, *, backbone_id: str,
                         backbone_digest: str | None = None,
                         input_size: tuple[int, int] | None = None) -> None:
        """Refuse a model made for another backbone or input size.

        Args:
            source: the file (for the message).
            backbone_id: the backbone this detector is configured with.
            backbone_digest: that backbone's model-file SHA-256 (None = not checked).
            input_size: ``(width, height)`` this detector is configured with (None = any).

        Raises:
            ModelError: naming what differs (both backbones, both sizes) and the fix.
        """
        file_id = self.backbone.id
        if file_id != backbone_id:
            raise ModelError(
                f'anomaly model {source} was fitted with backbone {file_id!r}, this detector '
                f'uses {backbone_id!r}: features of different backbones are not comparable. '
                f'Set backbone: {file_id} or refit the model with {backbone_id!r} '
                f'(edge-vision anomaly-fit --backbone {backbone_id})')
        if backbone_digest is not None and self.backbone.digest != backbone_digest:
            raise ModelError(
                f'anomaly model {source} was fitted with another version of backbone '
                f'{backbone_id!r} (model file SHA-256 {self.backbone.digest[:12]}..., installed '
                f'{backbone_digest[:12]}...); its features changed, so the model must be '
                f'refitted (edge-vision anomaly-fit)')
        if input_size is not None and self.input_size != tuple(input_size):
            raise ModelError(
                f'anomaly model {source} was fitted at input size '
                f'{self.input_size[0]}x{self.input_size[1]}, this detector is configured for '
                f'{input_size[0]}x{input_size[1]}; set input_width/input_height to 0 (use the '
                f"model's) or refit at the new size")


_HEADER_FIELDS: dict[str, tuple[Callable[[Any], Any], bool]] = {
    'method': (_method, True),
    'backbone': (_backbone, True),
    'input_size': (_sequence(_integer(16, 8192), 2), True),
    'resize': (_choice('letterbox', 'stretch'), True),
    'layers': (_sequence(_text, min_length=1), True),
    'layer_scales': (_sequence(_number(0.0)), True),
    'patch_pool': (_integer(1, 99), True),
    'stride': (_integer(1, 64), True),
    'grid': (_sequence(_integer(1, 8192), 2), True),
    'embedding_dim': (_integer(1, 1 << 16), True),
    'smoothing_sigma': (_number(0.0), True),
    'threshold': (_number(0.0), True),
    'color_features': (_text, False),
    'context_margin': (_integer(0, 4096), False),
    'border_correction': (_sequence(_number(0.0), min_length=1), False),
    'position_correction': (_boolean, False),
    'score_top_k': (_integer(1, 1 << 20), False),
    'reweight_neighbors': (_integer(0, 1024), False),
    'background_quantile': (_number(0.0, 1.0), False),
    'background_cap': (_number(0.0), False),
    'calibration': (_mapping, False),
    'fit': (_mapping, False),
    'created': (_mapping, False),
}


def save_model_file(path: str | Path, header: ModelHeader,
                    arrays: Mapping[str, np.ndarray]) -> Path:
    """Write a model file atomically (a temporary file in the same folder, then a rename).

    Args:
        path: target file; ``.npz`` is the conventional suffix (not added).
        header: the model's header.
        arrays: the named arrays (numeric; no object arrays).

    Returns:
        The path written.

    Raises:
        ModelError: the folder is not writable, or an object array.
    """
    path = Path(path).expanduser()
    full = {'format': FORMAT, 'format_version': FORMAT_VERSION, **header.to_json()}
    payload = {'header': np.frombuffer(json.dumps(full, sort_keys=True).encode('utf-8'),
                                       np.uint8)}
    for name, value in arrays.items():
        if name == 'header':
            raise ModelError('an array may not be called "header"')
        value = np.asarray(value)
        if value.dtype.hasobject:
            raise ModelError(f'array {name!r} is an object array; model files hold numbers')
        payload[name] = value
    try:
        atomic_write(path, lambda fh: np.savez(fh, **payload))
    except OSError as exc:
        raise ModelError(f'cannot write anomaly model {path}: {exc.strerror or exc}') from exc
    return path


def _member_is_pickled(archive: zipfile.ZipFile, member: str) -> bool:
    """Whether an ``.npy`` member of an ``.npz`` holds an object array (a pickle), read from
    its header only (nothing is unpickled)."""
    with archive.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        _, _, dtype = read(fh)
    return bool(dtype.hasobject)


def load_model_file(path: str | Path) -> tuple[ModelHeader, dict[str, np.ndarray]]:
    """Read and validate a model file.

    Returns:
        ``(header, arrays)``.

    Raises:
        ModelError: missing file, not an anomaly model, corrupt/truncated, pickled objects
            inside, another format version, or an invalid header (naming the field).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f'anomaly model {path} does not exist; fit one with '
                         f'edge-vision anomaly-fit --normal <folder|video> --out {path.name}')
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = [m[:-4] for m in archive.namelist()
                       if m.endswith('.npy') and _member_is_pickled(archive, m)]
        if pickled:
            raise ModelError(f'anomaly model {path} holds pickled Python objects (arrays '
                             f'{pickled}); it was not written by edge_vision and is refused '
                             f'without unpickling anything. Fit a model with edge-vision '
                             f'anomaly-fit')
        with np.load(path, allow_pickle=False) as data:
            if 'header' not in data.files:
                raise ModelError(f'{path} is an .npz file but not an edge_vision anomaly model '
                                 f'(no header); fit one with edge-vision anomaly-fit')
            raw = json.loads(bytes(data['header']).decode('utf-8'))
            arrays = {name: data[name] for name in data.files if name != 'header'}
    except ModelError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError,
            KeyError) as exc:
        raise ModelError(f'anomaly model {path} is corrupt or truncated ({type(exc).__name__}: '
                         f'{exc}); fit it again with edge-vision anomaly-fit') from exc
    if not isinstance(raw, dict) or raw.get('format') != FORMAT:
        raise ModelError(f'{path} is not an edge_vision anomaly model (format '
                         f'{raw.get("format") if isinstance(raw, dict) else None!r}, '
                         f'expected {FORMAT!r})')
    version = raw.get('format_version')
    if version not in READABLE_VERSIONS:
        readable = ', '.join(str(v) for v in READABLE_VERSIONS)
        raise ModelError(f'anomaly model {path} has format version {version}, this '
                         f'edge_vision_core reads versions {readable}; refit the model '
                         f'with this version (edge-vision anomaly-fit) or use the edge_vision '
                         f'release that wrote it')
    # a version-2 model scores plain distances, whatever its header says
    skip = {'format', 'format_version'} | (
        {'background_quantile', 'background_cap'} if version == 2 else set())
    header = ModelHeader.from_json({k: v for k, v in raw.items() if k not in skip}, str(path))
    from .methods import get_method

    missing = [a for a in get_method(header.method).array_names if a not in arrays]
    if missing:
        raise ModelError(f'anomaly model {path} is incomplete: missing array '
                         f'{", ".join(missing)}; fit it again')
    return header, arrays
