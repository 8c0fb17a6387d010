"""Every module of edge_vision_core imports in this interpreter.

The Jazzy leg (CPython 3.12) runs the ROS tests but not the core's own unit tests (the Kilted
and Humble-core legs run those): this keeps a module that only the unit tests reach from
breaking on 3.12 unnoticed (a removed standard module, syntax, an import-time error).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import edge_vision_core


def _module_names() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(
        edge_vision_core.__path__, prefix='edge_vision_core.'))


def test_the_core_has_the_modules_this_test_walks():
    names = _module_names()
    assert len(names) > 40, names
    for expected in ('edge_vision_core.anomaly', 'edge_vision_core.inference',
                     'edge_vision_core.tracking', 'edge_vision_core.mqtt'):
        assert expected in names


def test_every_core_module_imports_in_a_fresh_interpreter():
    # a fresh interpreter, with import-time deprecations as errors: what this test process
    # already imported would hide them
    code = ('import importlib, sys\n'
            'for name in sys.argv[1:]:\n'
            '    importlib.import_module(name)\n')
    proc = subprocess.run([sys.executable, '-W', 'error::DeprecationWarning', '-c', code,
                           *_module_names()], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

