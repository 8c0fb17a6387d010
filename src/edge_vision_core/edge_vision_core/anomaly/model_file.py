"""The fitted anomaly model file: one versioned ``.npz`` with a JSON header.

Layout (NumPy ``.npz``, read with ``allow_pickle=False``):

- ``header``: uint8 array holding UTF-8 JSON:

  ========================  ===================================================================
  ``format``                ``"edge_vision.anomaly"``
  ``format_version``        :data:`FORMAT_VERSION` (an incompatible change increments it)
  ``method``                ``patchcore`` or ``padim``
  ``backbone``              ``{"id": ..., "digest": ...}``: the CNN backbone and the SHA-256 of
                            its model file (``{"id": "none", "digest": ""}`` without one)
  ``color_features``        version of the colour statistics used (``''`` = none)
  ``input_size``            ``[width, height]`` of the model input
  ``resize``                ``letterbox`` or ``stretch``
  ``context_margin``        mirrored border around the input, pixels
  ``layers``                feature layers combined, e.g. ``["stride8", "color8"]``
  ``layer_scales``          the factor of each layer in the embedding
  ``patch_pool``            neighbourhood averaged per layer
  ``stride``                model-input pixels per patch
  ``grid``                  ``[h, w]`` patch grid
  ``embedding_dim``         dimension of the (projected) embeddings
  ``border_correction``     per-ring factors of the patch scores (ring 0 = image edge)
  ``smoothing_sigma``       heatmap smoothing (model-input pixels) the threshold assumes
  ``threshold``             the calibrated frame-score threshold
  ``calibration``           how it was calibrated (mode, parameters, number of frames, scores)
  ``fit``, ``created``      fitting settings; UTC time, edge_vision_core version, frames used
  ========================  ===================================================================

- ``projection``: (D_in, D) float32 random projection of the embeddings (absent = none);
- the method's arrays: ``memory_bank`` (M, D) float32 (PatchCore) or ``mean`` (h, w, D) and
  ``precision`` (h, w, D, D) float32 (PaDiM).

:func:`load_model_file` refuses files that are not such a model or another format version, and
:func:`check_compatible` refuses a model made for another backbone (id or file checksum) or
another input size, each with a message naming the difference and the fix (refit).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from ..io.files import atomic_write

__all__ = ['FORMAT', 'FORMAT_VERSION', 'check_compatible', 'load_model_file',
           'save_model_file']

FORMAT = 'edge_vision.anomaly'
FORMAT_VERSION = 1
_REQUIRED = ('method', 'backbone', 'input_size', 'resize', 'layers', 'layer_scales',
             'patch_pool', 'stride', 'grid', 'smoothing_sigma', 'threshold')
_METHOD_ARRAYS = {'patchcore': ('memory_bank',), 'padim': ('mean', 'precision')}


def save_model_file(path: str | Path, header: dict[str, Any],
                    arrays: dict[str, np.ndarray]) -> Path:
    """Write a model file atomically (a temporary file in the same folder, then a rename).

    Args:
        path: target file; ``.npz`` is the conventional suffix (not added).
        header: the JSON header without ``format``/``format_version`` (added here).
        arrays: the named arrays (no object arrays).

    Returns:
        The path written.

    Raises:
        ModelError: the folder is not writable.
    """
    path = Path(path).expanduser()
    full = {'format': FORMAT, 'format_version': FORMAT_VERSION, **header}
    payload = {'header': np.frombuffer(json.dumps(full, sort_keys=True).encode('utf-8'),
                                       np.uint8)}
    for name, value in arrays.items():
        if name == 'header':
            raise ModelError('an array may not be called "header"')
        payload[name] = np.asarray(value)
    try:
        atomic_write(path, lambda fh: np.savez(fh, **payload))
    except OSError as exc:
        raise ModelError(f'cannot write anomaly model {path}: {exc.strerror or exc}') from exc
    return path


def load_model_file(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and validate a model file.

    Returns:
        ``(header, arrays)``.

    Raises:
        ModelError: missing file, not an anomaly model, corrupt/truncated, missing keys or
            arrays, or another format version (with what to do).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f'anomaly model {path} does not exist; fit one with '
                         f'edge-vision anomaly-fit --normal <folder|video> --out {path.name}')
    try:
        with np.load(path, allow_pickle=False) as data:
            if 'header' not in data.files:
                raise ModelError(f'{path} is an .npz file but not an edge_vision anomaly model '
                                 f'(no header); fit one with edge-vision anomaly-fit')
            header = json.loads(bytes(data['header']).decode('utf-8'))
            arrays = {name: data[name] for name in data.files if name != 'header'}
    except ModelError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError,
            KeyError) as exc:
        raise ModelError(f'anomaly model {path} is corrupt or truncated ({type(exc).__name__}: '
                         f'{exc}); fit it again with edge-vision anomaly-fit') from exc
    if not isinstance(header, dict) or header.get('format') != FORMAT:
        raise ModelError(f'{path} is not an edge_vision anomaly model (format '
                         f'{header.get("format") if isinstance(header, dict) else None!r}, '
                         f'expected {FORMAT!r})')
    version = header.get('format_version')
    if version != FORMAT_VERSION:
        raise ModelError(f'anomaly model {path} has format version {version}, this '
                         f'edge_vision_core reads version {FORMAT_VERSION}; refit the model '
                         f'with this version (edge-vision anomaly-fit) or use the edge_vision '
                         f'release that wrote it')
    missing = [key for key in _REQUIRED if key not in header]
    method = header.get('method')
    if method not in _METHOD_ARRAYS:
        raise ModelError(f'anomaly model {path}: unknown method {method!r}; expected one of '
                         f'{list(_METHOD_ARRAYS)}')
    missing += [f'array {a}' for a in _METHOD_ARRAYS[method] if a not in arrays]
    if missing:
        raise ModelError(f'anomaly model {path} is incomplete: missing {", ".join(missing)}; '
                         f'fit it again')
    return header, arrays


def check_compatible(header: dict[str, Any], source: str, *, backbone_id: str,
                     backbone_digest: str | None = None,
                     input_size: tuple[int, int] | None = None) -> None:
    """Refuse a model made for another backbone or input size.

    Args:
        header: the model file's header.
        source: the file (for the message).
        backbone_id: the backbone this detector is configured with.
        backbone_digest: that backbone's model-file SHA-256 (None = not checked).
        input_size: ``(width, height)`` this detector is configured with (None = any).

    Raises:
        ModelError: naming what differs and the fix.
    """
    backbone = header.get('backbone', {})
    file_id = backbone.get('id')
    if file_id != backbone_id:
        raise ModelError(f'anomaly model {source} was fitted with backbone {file_id!r}, this '
                         f'detector uses {backbone_id!r}: features of different backbones are '
                         f'not comparable. Set backbone: {file_id} or refit the model with '
                         f'{backbone_id!r} (edge-vision anomaly-fit --backbone {backbone_id})')
    file_digest = backbone.get('digest')
    if backbone_digest is not None and file_digest != backbone_digest:
        raise ModelError(f'anomaly model {source} was fitted with another version of backbone '
                         f'{backbone_id!r} (model file SHA-256 {str(file_digest)[:12]}..., '
                         f'installed {backbone_digest[:12]}...); its features changed, so the '
                         f'model must be refitted (edge-vision anomaly-fit)')
    size = tuple(int(v) for v in header.get('input_size', ()))
    if input_size is not None and size != tuple(input_size):
        raise ModelError(f'anomaly model {source} was fitted at input size '
                         f'{"x".join(map(str, size))}, this detector is configured for '
                         f'{input_size[0]}x{input_size[1]}; set input_width/input_height to '
                         f'0 (use the model\'s) or refit at the new size')
