"""The launch files, read as source (launch/launch_ros are not on PyPI, so this runs without
them; test/launch/ evaluates the same files with real launch where it is installed).

launch_ros turns a launch argument such as ``source:=0`` into an INTEGER parameter (and
``rate:=10`` into one for a double), which the node then refuses. So every parameter value a
launch file passes must carry its type: a constant of the declared type, or
``ParameterValue(..., value_type=<the declared type>)``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros  # reads the nodes' parameter declarations

LAUNCH = Path(__file__).resolve().parent.parent / 'launch'
LAUNCH_FILES = sorted(LAUNCH.glob('*.launch.py'))


def _declared_types() -> dict[str, set[str]]:
    """{parameter name: python type names it is declared with on any edge_vision node}."""
    from edge_vision.commands.params import node_classes
    from edge_vision.node_base import BaseConfig
    from edge_vision_core.config import config_fields

    types: dict[str, set[str]] = {}
    for cls in node_classes().values():
        for prefix, group in (('', BaseConfig), *cls.PARAMETERS):
            for fs in config_fields(group):
                types.setdefault(prefix + fs.name, set()).add(fs.type.__name__)
    return types


def _parameter_dicts(tree: ast.AST):
    """Every dict literal except those given as ``launch_arguments`` (strings by design)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'launch_arguments':
            skip.update(id(n) for n in ast.walk(node.value))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Dict) and id(n) not in skip]


def _typed(value: ast.AST, allowed: set[str]) -> bool:
    if isinstance(value, ast.Constant):
        return type(value.value).__name__ in allowed
    if isinstance(value, ast.Call) and getattr(value.func, 'id', '') == 'ParameterValue':
        kinds = [k.value for k in value.keywords if k.arg == 'value_type']
        return len(kinds) == 1 and getattr(kinds[0], 'id', None) in allowed
    return False


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_every_parameter_a_launch_file_passes_carries_its_type(path):
    declared = _declared_types()
    tree = ast.parse(path.read_text(), str(path))
    untyped = []
    for mapping in _parameter_dicts(tree):
        for key, value in zip(mapping.keys, mapping.values, strict=True):
            if isinstance(key, ast.Constant) and key.value in declared and \
                    not _typed(value, declared[key.value]):
                untyped.append(f'{path.name}:{value.lineno}: {key.value!r} (declared '
                               f'{"/".join(sorted(declared[key.value]))})')
    assert not untyped, 'wrap these in ParameterValue(..., value_type=...): ' + \
        ', '.join(untyped)
    raw = _raw_parameter_maps(tree)
    assert not raw, f'{path.name}: parameters given as a map of raw LaunchConfigurations ' \
                    f'(lines {raw}): list them with their types'


def _raw_parameter_maps(tree: ast.AST) -> list[int]:
    """Lines where a ``parameters=[...]`` list holds a dict built by a comprehension of
    untyped ``LaunchConfiguration(...)`` values (directly, or through a variable)."""
    def raw(node: ast.AST) -> bool:
        return isinstance(node, ast.DictComp) and isinstance(node.value, ast.Call) and \
            getattr(node.value.func, 'id', '') == 'LaunchConfiguration'

    raw_names = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and raw(node.value) for target in node.targets if isinstance(target, ast.Name)}
    def elements(value: ast.AST) -> list[ast.AST]:  # the items of `[...] + [...]`
        if isinstance(value, ast.BinOp):
            return elements(value.left) + elements(value.right)
        return list(value.elts) if isinstance(value, ast.List) else []

    return [item.lineno for node in ast.walk(tree)
            if isinstance(node, ast.keyword) and node.arg == 'parameters'
            for item in elements(node.value)
            if raw(item) or (isinstance(item, ast.Name) and item.id in raw_names)]


def test_the_launch_files_check_would_catch_an_untyped_source():
    """The check above must be able to fail: main's camera.launch.py style is refused."""
    tree = ast.parse("Node(parameters=[{'source': LaunchConfiguration('source'), "
                     "'rate': ParameterValue(x, value_type=str), 'loop': True}])")
    declared = _declared_types()
    bad = [key.value for d in _parameter_dicts(tree) for key, value in zip(d.keys, d.values,
                                                                             strict=True)
           if not _typed(value, declared[key.value])]
    assert bad == ['source', 'rate']
    comp = ast.parse("o = {n: LaunchConfiguration(n) for n in NAMES}\n"
                     "Node(parameters=[path, o])")
    assert _raw_parameter_maps(comp) == [2]


def test_composed_detect_launch_removes_its_parameter_file():
    """detect.launch.py composed:=true writes the per-node overrides to a temporary YAML
    file; the function that writes it must register its removal at launch shutdown."""
    tree = ast.parse((LAUNCH / 'detect.launch.py').read_text())
    for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        calls = [getattr(c.func, 'attr', getattr(c.func, 'id', ''))
                 for c in ast.walk(func) if isinstance(c, ast.Call)]
        if 'mkstemp' in calls:
            assert 'RegisterEventHandler' in calls and 'OnShutdown' in calls, func.name
            break
    else:
        pytest.fail('detect.launch.py no longer writes a temporary file: update this test')
