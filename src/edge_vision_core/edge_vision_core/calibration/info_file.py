"""camera_info files: the YAML format and URL rules of ROS ``camera_info_manager``.

A calibration is stored as the YAML that ``camera_calibration_parsers`` writes and reads (the
format of ``camera_info_manager``, ``camera_calibration`` and most ROS camera drivers)::

    image_width: 640
    image_height: 480
    camera_name: narrow_stereo
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, t1, t2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}       # row-major 3x3
    projection_matrix: {rows: 3, cols: 4, data: [...]}          # row-major 3x4
    binning_x: 0
    binning_y: 0
    roi: {x_offset: 0, y_offset: 0, height: 0, width: 0, do_rectify: false}

Reading follows ``camera_calibration_parsers`` (``parse_yml.cpp``): ``image_width``,
``image_height`` and the four matrices are required; ``camera_name`` defaults to ``'unknown'``;
a missing ``distortion_model`` means ``plumb_bob`` (with a warning); ``binning_x``/``binning_y``
and ``roi`` are optional (0 / full frame), and a present ``roi`` needs all five of its keys. The
distortion vector has ``rows * cols`` entries. Where the C++ parser only asserts in debug builds
(``rows``/``cols`` of the fixed-size matrices, the length of ``data``), this module always checks
and raises :class:`~edge_vision_core.errors.CalibrationError` naming the file and the key.
``.ini`` calibration files (the other format of ``camera_calibration_parsers``) are not read;
the error says how to convert them.

Files are written the way ``camera_calibration_parsers`` writes them (same keys, same order,
flow-style ``data`` lists), with floats in their shortest exact form so that a write/read round
trip reproduces every value bit for bit. Writing is atomic (a temporary file in the same folder,
then a rename) and creates missing parent folders.

URLs follow ``camera_info_manager``: ``file:///absolute/path.yaml``,
``package://<package>/<path in its share folder>``, ``${NAME}`` (camera name) and
``${ROS_HOME}`` (environment ``ROS_HOME``, else ``$HOME/.ros``) substituted anywhere, and an
empty URL meaning ``file://${ROS_HOME}/camera_info/${NAME}.yaml``.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..camera import CameraModel, RegionOfInterest
from ..errors import CalibrationError, ConfigError
from ..io.files import atomic_write

__all__ = [
    'DEFAULT_CAMERA_INFO_URL',
    'camera_info_from_yaml',
    'camera_info_to_yaml',
    'load_camera_info',
    'resolve_camera_info_url',
    'ros_home',
    'save_camera_info',
]

_LOG = logging.getLogger(__name__)

#: camera_info_manager's URL when the configured one is empty.
DEFAULT_CAMERA_INFO_URL = 'file://${ROS_HOME}/camera_info/${NAME}.yaml'

_SCHEMES = 'file:///absolute/path.yaml, package://<package>/<relative path>'
_YAML_SUFFIXES = ('.yaml', '.yml')


# --------------------------------------------------------------------------------------------
# URLs


def ros_home(environ: Mapping[str, str] | None = None) -> str:
    """``$ROS_HOME``, else ``~/.ros`` (as ROS 2 tools resolve it)."""
    environ = os.environ if environ is None else environ
    value = environ.get('ROS_HOME', '')
    if value:
        return value
    home = environ.get('HOME', '') or os.path.expanduser('~')
    return os.path.join(home, '.ros')


def _substitute(url: str, camera_name: str, environ: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` and ``${ROS_HOME}``; any other ``${...}`` is an error."""
    out: list[str] = []
    i = 0
    while True:
        j = url.find('${', i)
        if j < 0:
            out.append(url[i:])
            return ''.join(out)
        out.append(url[i:j])
        end = url.find('}', j)
        name = url[j + 2:end] if end >= 0 else ''
        if name == 'NAME':
            out.append(camera_name)
        elif name == 'ROS_HOME':
            out.append(ros_home(environ))
        else:
            raise CalibrationError(
                f'camera_info_url {url!r}: unknown substitution '
                f'{url[j:end + 1] if end >= 0 else url[j:]!r}; only ${{NAME}} (the camera name) '
                'and ${ROS_HOME} are supported')
        i = end + 1


def _package_share(package: str, url: str) -> pathlib.Path:
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        raise CalibrationError(
            f'camera_info_url {url!r} needs ament_index_python to find package {package!r}; '
            'source a ROS 2 installation (or install ros-ament-index-python), or use a '
            'file:/// URL') from None
    try:
        return pathlib.Path(get_package_share_directory(package))
    except OSError as exc:  # AMENT_PREFIX_PATH unset (EnvironmentError)
        raise CalibrationError(
            f'camera_info_url {url!r}: cannot look up package {package!r} ({exc}); source '
            'your ROS 2 workspace (setup.bash) or use a file:/// URL') from None
    except (PackageNotFoundError, LookupError, ValueError):
        raise CalibrationError(
            f'camera_info_url {url!r}: package {package!r} is not installed in this ROS '
            'environment (not in AMENT_PREFIX_PATH); build and source it, fix the package '
            'name, or use a file:/// URL') from None


def resolve_camera_info_url(url: str, camera_name: str,
                            environ: Mapping[str, str] | None = None) -> pathlib.Path:
    """The file a ``camera_info_url`` points to, by the rules of ``camera_info_manager``.

    Args:
        url: ``file:///abs/path.yaml``, ``package://<pkg>/<path>``, or ``''`` for the default
            ``file://${ROS_HOME}/camera_info/${NAME}.yaml``. ``${NAME}`` and ``${ROS_HOME}``
            are substituted anywhere in the URL; the scheme is matched case-insensitively.
        camera_name: substituted for ``${NAME}``.
        environ: environment for ``ROS_HOME``/``HOME`` (default ``os.environ``).

    Returns:
        The absolute path of the calibration file (it may not exist yet).

    Raises:
        CalibrationError: unsupported scheme (e.g. ``http://``, ``flash:///``), a malformed
            ``package://`` URL, an unknown package, or ament_index_python missing.
    """
    env = os.environ if environ is None else environ
    url = url.strip()
    if not url:
        url = DEFAULT_CAMERA_INFO_URL
    resolved = _substitute(url, camera_name, env)
    lower = resolved.lower()
    if lower.startswith('file://'):
        path = resolved[len('file://'):]
        if not path.startswith('/'):
            raise CalibrationError(
                f'camera_info_url {url!r} is not an absolute file URL: write file:/// followed '
                'by the absolute path (three slashes), e.g. file:///home/me/camera.yaml')
        return pathlib.Path(path)
    if lower.startswith('package://'):
        rest = resolved[len('package://'):]
        package, slash, relative = rest.partition('/')
        if not package or not slash or not relative:
            raise CalibrationError(
                f'camera_info_url {url!r}: expected package://<package>/<path inside its share '
                'folder>, e.g. package://my_robot/calibration/camera.yaml')
        return _package_share(package, url) / relative
    raise CalibrationError(
        f'unsupported camera_info_url {url!r}; supported: {_SCHEMES} (with ${{NAME}} and '
        '${ROS_HOME} substitution), or an empty URL for '
        f'{DEFAULT_CAMERA_INFO_URL}')


# --------------------------------------------------------------------------------------------
# YAML text


def _float(value: float) -> str:
    """Shortest text that reads back to exactly ``value`` (YAML 1.1 and 1.2 float syntax)."""
    text = repr(float(value))
    if 'e' in text and '.' not in text.split('e')[0]:
        mantissa, exponent = text.split('e')
        text = f'{mantissa}.0e{exponent}'  # PyYAML (YAML 1.1) wants a dot in the mantissa
    return text


def _yaml_string(text: str) -> str:
    import yaml
    dumped = yaml.safe_dump(text, default_flow_style=True, width=1 << 20)
    return dumped.split('\n')[0]


def _matrix_block(key: str, values: np.ndarray, rows: int, cols: int) -> list[str]:
    data = ', '.join(_float(v) for v in np.asarray(values, dtype=np.float64).ravel())
    return [f'{key}:', f'  rows: {rows}', f'  cols: {cols}', f'  data: [{data}]']


def camera_info_to_yaml(model: CameraModel, camera_name: str) -> str:
    """The camera_info YAML text of ``model``, in ``camera_calibration_parsers``' layout.

    Args:
        model: the calibration (an uncalibrated, all-zero model is written as it is).
        camera_name: stored as ``camera_name``.

    Returns:
        The YAML document, ending with a newline.
    """
    roi = model.roi
    lines = [
        f'image_width: {int(model.width)}',
        f'image_height: {int(model.height)}',
        f'camera_name: {_yaml_string(camera_name)}',
        *_matrix_block('camera_matrix', model.K, 3, 3),
        f'distortion_model: {_yaml_string(model.distortion_model)}',
        *_matrix_block('distortion_coefficients', model.D, 1, int(model.D.size)),
        *_matrix_block('rectification_matrix', model.R, 3, 3),
        *_matrix_block('projection_matrix', model.P, 3, 4),
        f'binning_x: {int(model.binning_x)}',
        f'binning_y: {int(model.binning_y)}',
        'roi:',
        f'  x_offset: {int(roi.x_offset)}',
        f'  y_offset: {int(roi.y_offset)}',
        f'  height: {int(roi.height)}',
        f'  width: {int(roi.width)}',
        f'  do_rectify: {"true" if roi.do_rectify else "false"}',
    ]
    return '\n'.join(lines) + '\n'


def _where(source: str) -> str:
    return f'camera_info file {source}' if source else 'camera_info YAML'


def _require(doc: Mapping[str, Any], key: str, source: str) -> Any:
    if key not in doc or doc[key] is None:
        raise CalibrationError(f'{_where(source)}: missing required key {key!r} (a camera_info '
                               'file needs image_width, image_height, camera_matrix, '
                               'distortion_coefficients, rectification_matrix, '
                               'projection_matrix)')
    return doc[key]


def _int(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CalibrationError(f'{_where(source)}: {key} must be an integer >= 0, '
                               f'got {value!r}')
    return value


def _read_matrix(doc: Mapping[str, Any], key: str, source: str,
                 shape: tuple[int, int] | None) -> np.ndarray:
    node = _require(doc, key, source)
    if not isinstance(node, Mapping):
        raise CalibrationError(f'{_where(source)}: {key} must be a mapping with rows, cols and '
                               f'data, got {node!r}')
    for sub in ('rows', 'cols', 'data'):
        if sub not in node:
            raise CalibrationError(f'{_where(source)}: {key} has no {sub!r}')
    rows = _int(node['rows'], f'{key}.rows', source)
    cols = _int(node['cols'], f'{key}.cols', source)
    if shape is not None and (rows, cols) != shape:
        raise CalibrationError(f'{_where(source)}: {key} must be {shape[0]}x{shape[1]}, the file '
                               f'says rows: {rows}, cols: {cols}')
    data = node['data']
    if data is None:
        data = []
    if not isinstance(data, list):
        raise CalibrationError(f'{_where(source)}: {key}.data must be a list, got {data!r}')
    if len(data) != rows * cols:
        raise CalibrationError(f'{_where(source)}: {key}.data has {len(data)} values but rows x '
                               f'cols = {rows} x {cols} = {rows * cols}')
    values = []
    for v in data:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise CalibrationError(f'{_where(source)}: {key}.data holds {v!r}, not a finite '
                                   'number')
        values.append(float(v))
    return np.array(values, dtype=np.float64)


def _raw_scalar(text: str, key: str) -> str:
    """The text of a top-level scalar as written (so a name like ``0123`` stays a string)."""
    import yaml
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for key_node, value_node in root.value:
        if key_node.value == key and isinstance(value_node, yaml.ScalarNode):
            return str(value_node.value)
    return 'unknown'


def camera_info_from_yaml(text: str, source: str = '') -> tuple[CameraModel, str]:
    """Parse camera_info YAML text (see the module docstring for what is accepted).

    Args:
        text: the YAML document.
        source: the file it came from, for error messages.

    Returns:
        ``(model, camera_name)``; ``camera_name`` is ``'unknown'`` when the file has none.

    Raises:
        CalibrationError: malformed YAML, a missing key, wrong matrix sizes or values.
    """
    import yaml
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = ' '.join(str(exc).split())
        raise CalibrationError(f'{_where(source)} is not valid YAML: {detail}') from None
    if not isinstance(doc, Mapping):
        raise CalibrationError(f'{_where(source)}: expected a YAML mapping with image_width, '
                               f'camera_matrix, ..., got {type(doc).__name__}')
    camera_name = _raw_scalar(text, 'camera_name') if doc.get('camera_name') is not None \
        else 'unknown'
    width = _int(_require(doc, 'image_width', source), 'image_width', source)
    height = _int(_require(doc, 'image_height', source), 'image_height', source)
    K = _read_matrix(doc, 'camera_matrix', source, (3, 3))
    R = _read_matrix(doc, 'rectification_matrix', source, (3, 3))
    P = _read_matrix(doc, 'projection_matrix', source, (3, 4))
    model_name = doc.get('distortion_model')
    if model_name is None:
        _LOG.warning('%s does not specify distortion_model; assuming plumb_bob (as '
                     'camera_calibration_parsers does)', _where(source))
        model_name = 'plumb_bob'
    D = _read_matrix(doc, 'distortion_coefficients', source, None)
    binning = [_int(doc.get(k) or 0, k, source) for k in ('binning_x', 'binning_y')]
    roi = RegionOfInterest()
    if doc.get('roi') is not None:
        node = doc['roi']
        keys = ('x_offset', 'y_offset', 'height', 'width', 'do_rectify')
        if not isinstance(node, Mapping) or any(k not in node for k in keys):
            raise CalibrationError(f'{_where(source)}: roi must have {", ".join(keys)}; got '
                                   f'{node!r}')
        if not isinstance(node['do_rectify'], bool):
            raise CalibrationError(f'{_where(source)}: roi.do_rectify must be true or false, '
                                   f'got {node["do_rectify"]!r}')
        roi = RegionOfInterest(*(_int(node[k], f'roi.{k}', source) for k in keys[:4]),
                               do_rectify=node['do_rectify'])
    try:
        model = CameraModel(width=width, height=height, K=K, D=D, R=R, P=P,
                            distortion_model=str(model_name), binning_x=binning[0],
                            binning_y=binning[1], roi=roi)
    except ConfigError as exc:
        raise CalibrationError(f'{_where(source)}: {exc}') from None
    return model, camera_name


# --------------------------------------------------------------------------------------------
# Files


def load_camera_info(path: str | os.PathLike[str]) -> tuple[CameraModel, str]:
    """Read a camera_info YAML file written by camera_calibration, camera_info_manager or us.

    Args:
        path: the ``.yaml``/``.yml`` file (resolve URLs with :func:`resolve_camera_info_url`).

    Returns:
        ``(model, camera_name)``.

    Raises:
        CalibrationError: the file is missing or unreadable, is an ``.ini`` calibration, is not
            valid YAML, or has missing keys or wrong matrix sizes (the message names the file
            and the problem).
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == '.ini':
        raise CalibrationError(
            f'camera_info file {path}: .ini calibrations are not supported; convert it with '
            f'`ros2 run camera_calibration_parsers convert {path} {path.with_suffix(".yaml")}`')
    try:
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise CalibrationError(
            f'camera_info file {path} does not exist; calibrate the camera (edge-vision '
            'calibrate ... --out FILE) or fix camera_info_url') from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f'camera_info file {path} cannot be read: {exc}') from None
    if path.suffix.lower() not in _YAML_SUFFIXES:
        _LOG.warning('camera_info file %s does not end in .yaml/.yml; camera_info_manager '
                     'will refuse it', path)
    return camera_info_from_yaml(text, str(path))


def save_camera_info(path: str | os.PathLike[str], model: CameraModel,
                     camera_name: str) -> None:
    """Write ``model`` as a camera_info YAML file, atomically, creating parent folders.

    Args:
        path: destination; ``.yaml``/``.yml`` is what camera_info_manager reads.
        model: the calibration.
        camera_name: stored as ``camera_name`` (camera_info_manager compares it with the
            driver's camera name).

    Raises:
        CalibrationError: the folder cannot be created or the file cannot be written.
    """
    path = pathlib.Path(path)
    if path.suffix.lower() not in _YAML_SUFFIXES:
        _LOG.warning('writing camera_info file %s: camera_info_manager only reads .yaml/.yml '
                     '(and .ini) files', path)
    data = camera_info_to_yaml(model, camera_name).encode('utf-8')
    try:
        atomic_write(path, lambda fh: fh.write(data))
    except OSError as exc:
        raise CalibrationError(f'cannot write camera_info file {path}: {exc}') from None
