"""Message definitions as rosbag2 stores them in a bag (``ros2msg`` schema encoding).

rosbag2 puts the *complete* definition of a type into every MCAP schema record: the type's own
``.msg`` text, then the text of every type it uses, each once, preceded by a two-line delimiter
(80 ``=`` characters, then ``MSG: <type as written in the field>``). Dependencies are visited
depth-first, each type's field types in sorted order, the way rosbag2's
``LocalMessageDefinitionSource`` does, so a bag written here carries the same schema text as
``ros2 bag record`` on the same packages. Readers (``ros2 bag``, Foxglove, Lichtblick, the
``mcap`` tooling, :mod:`mcap_ros2`) parse this text to decode the CDR payload without the
packages installed.

The ``.msg`` files are those the message packages install under ``share/<pkg>/msg``
(:func:`find_share` finds them like the ament index does). The type
hash (RIHS01, REP-2011) comes from the ``<Type>.json`` type description that rosidl installs
beside the ``.msg`` file since Iron (none on Humble: then it is empty, as rosbag2 writes it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError

__all__ = ['DELIMITER', 'PRIMITIVE_TYPES', 'find_share', 'full_definition', 'msg_dependencies',
           'split_type_name', 'type_hash']

#: The line that separates the definitions of a ``ros2msg`` schema (80 ``=``).
DELIMITER = '=' * 80
#: Built-in field types of the ``.msg`` language (no definition of their own).
PRIMITIVE_TYPES = frozenset({
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32',
    'uint32', 'int64', 'uint64', 'string', 'wstring'})

_TYPE_NAME = re.compile(r'^([A-Za-z0-9_]+)/(?:msg/)?([A-Za-z0-9_]+)$')
# a field's type at the start of a line: "pkg/Type name", "Type[] name", "Type[<=3] name"
_FIELD_TYPE = re.compile(r'(?:^|\n)\s*([A-Za-z0-9_/]+)(?:\[[^\]]*\])?\s+')

FindShare = Callable[[str], 'str | Path']


def find_share(package: str) -> Path:
    """The ``share/<package>`` folder of an installed ROS package, found the way the ament
    index does (the prefixes of ``AMENT_PREFIX_PATH``, each with
    ``share/ament_index/resource_index/packages/<package>``), else in the prefix of this
    interpreter (a venv with the ROS wheels is an ament prefix), else in the prefix the
    package's Python module is installed under. Nothing is imported.

    Raises:
        LookupError: the package is not installed.
    """
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is not None and spec.origin:
        # <prefix>/lib/pythonX.Y/site-packages/<package>/__init__.py
        prefixes.extend(str(parent) for parent in Path(spec.origin).resolve().parents[:6])
    for prefix in prefixes:
        root = Path(prefix)
        marker = root / 'share' / 'ament_index' / 'resource_index' / 'packages' / package
        share = root / 'share' / package
        if share.is_dir() and (marker.exists() or (share / 'msg').is_dir()):
            return share
    raise LookupError(f'ROS package {package!r} not found in AMENT_PREFIX_PATH or '
                      f'{sys.prefix}')


def split_type_name(type_name: str) -> tuple[str, str]:
    """``('sensor_msgs', 'Image')`` for ``sensor_msgs/msg/Image`` or ``sensor_msgs/Image``.

    Raises:
        ConfigError: not a message type name.
    """
    match = _TYPE_NAME.match(type_name)
    if not match:
        raise ConfigError(f'{type_name!r} is not a message type name such as '
                          f'sensor_msgs/msg/Image')
    return match.group(1), match.group(2)


def msg_dependencies(text: str, package: str) -> list[str]:
    """The non-primitive field types a ``.msg`` text uses, sorted, as written (types of the
    same package qualified with ``package``)."""
    found = set()
    for match in _FIELD_TYPE.finditer(text):
        name = match.group(1)
        if name in PRIMITIVE_TYPES:
            continue
        found.add(name if '/' in name else f'{package}/{name}')
    return sorted(found)


def _msg_file(type_name: str, find_share: FindShare) -> tuple[str, str]:
    package, name = split_type_name(type_name)
    try:
        share = Path(find_share(package))
    except LookupError as exc:  # ament's PackageNotFoundError is a LookupError too
        raise ConfigError(f'message package {package!r} is not installed ({exc}): cannot '
                          f'write the definition of {type_name}') from None
    path = share / 'msg' / f'{name}.msg'
    try:
        return path.read_text(encoding='utf-8'), package
    except OSError as exc:
        raise ConfigError(f'no definition file for {type_name}: {exc}') from None


def full_definition(type_name: str, find_share: FindShare = find_share, max_depth: int = 50
                    ) -> str:
    """The complete ``ros2msg`` definition text of ``type_name`` (see the module docstring).

    Args:
        type_name: e.g. ``sensor_msgs/msg/CompressedImage``.
        find_share: package name -> its ``share`` folder (raises when not installed).
        max_depth: nesting limit (a guard against a cyclic definition).

    Raises:
        ConfigError: a package or ``.msg`` file that cannot be found, or nesting deeper than
            ``max_depth``.
    """
    seen: set[str] = set()

    def text_of(name: str, depth: int) -> str:
        if depth <= 0:
            raise ConfigError(f'the definition of {type_name} nests deeper than {max_depth}')
        text, package = _msg_file(name, find_share)
        out = text
        for dep in msg_dependencies(text, package):
            if dep in seen:
                continue
            seen.add(dep)
            out += f'\n{DELIMITER}\nMSG: {dep}\n' + text_of(dep, depth - 1)
        return out

    return text_of(type_name, max_depth)


def type_hash(type_name: str, find_share: FindShare = find_share) -> str:
    """The RIHS01 hash of ``type_name`` from its installed type description, or '' where the
    distro installs none (Humble) or the package is missing."""
    package, name = split_type_name(type_name)
    try:
        path = Path(find_share(package)) / 'msg' / f'{name}.json'
        data = json.loads(path.read_text(encoding='utf-8'))
    except Exception:  # no description on this distro: rosbag2 leaves the hash empty too
        return ''
    full = f'{package}/msg/{name}'
    for entry in data.get('type_hashes', ()):
        if entry.get('type_name') == full:
            return str(entry.get('hash_string', ''))
    return ''
