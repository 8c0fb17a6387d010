"""Print or write the documented parameter file of a node (what ``config/<node>.yaml`` holds).

Every parameter of every edge_vision node is declared from a config dataclass whose fields
carry their description, unit and limits. This command renders them as a ROS 2 parameter YAML
file with one comment per parameter, so the files in ``config/`` are generated from the code
and cannot drift from it (a test regenerates them and compares)::

    edge-vision params camera_node            # print
    edge-vision params --all --write config/  # regenerate config/*.yaml
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import textwrap
from pathlib import Path

from edge_vision_core import ConfigError
from edge_vision_core.config import config_fields

HELP = 'print or write the documented parameter YAML of a node (config/<node>.yaml)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('nodes', nargs='*', help='node executables, e.g. camera_node')
    parser.add_argument('--all', action='store_true', help='every edge_vision node')
    parser.add_argument('--write', metavar='DIR', help='write DIR/<node>.yaml instead of '
                                                       'printing')


def node_classes() -> dict[str, type]:
    """``{executable name: node class}`` for every ``edge_vision/*_node.py`` module."""
    import edge_vision

    from ..node_base import EdgeVisionNode

    out = {}
    for info in pkgutil.iter_modules(edge_vision.__path__):
        if not info.name.endswith('_node'):
            continue
        module = importlib.import_module(f'edge_vision.{info.name}')
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, EdgeVisionNode) and \
                    value is not EdgeVisionNode and value.__module__ == module.__name__:
                out[info.name] = value
    return dict(sorted(out.items()))


def _yaml_value(value: object) -> str:
    import yaml

    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text[:-3].strip() if text.endswith('...') else text


def render(executable: str, node_cls: type) -> str:
    """The documented YAML of one node's parameters, with their default values."""
    from ..node_base import BaseConfig

    lines = [
        f'# Parameters of edge_vision {executable}, with their defaults.',
        f'# Generated from the code by `edge-vision params {executable}`: do not edit by hand;',
        '# copy it and change values, or override single ones in a launch file.',
        '# Node name wildcard: applies to this node in any namespace.',
        f'/**/{executable}:',
        '  ros__parameters:',
    ]
    groups = [('', BaseConfig), *node_cls.PARAMETERS]
    for prefix, cls in groups:
        lines.append(f'    # --- {cls.__name__} ---')
        for fs in config_fields(cls):
            text = fs.spec.description
            if fs.spec.unit:
                text += f' [{fs.spec.unit}]'
            if fs.spec.read_only:
                text += ' (read-only at runtime)'
            for line in textwrap.wrap(text, 90):
                lines.append(f'    # {line}')
            lines.append(f'    {prefix}{fs.name}: {_yaml_value(fs.default)}')
    return '\n'.join(lines) + '\n'


def run(args: argparse.Namespace) -> int:
    classes = node_classes()
    names = list(classes) if args.all else args.nodes
    if not names:
        raise ConfigError(f'name a node ({", ".join(classes)}) or use --all')
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise ConfigError(f'unknown node(s) {", ".join(unknown)}; edge_vision has '
                          f'{", ".join(classes)}')
    for name in names:
        text = render(name, classes[name])
        if args.write:
            path = Path(args.write) / f'{name.removesuffix("_node")}.yaml'
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f'wrote {path}')
        else:
            print(text)
    return 0
