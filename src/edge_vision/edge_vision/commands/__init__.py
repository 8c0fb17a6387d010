"""Subcommands of the ``edge-vision`` CLI: every module in this package is one subcommand.

A module ``commands/<name>.py`` becomes ``edge-vision <name>`` (underscores become dashes). It
provides ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy
imports (rclpy, inference runtimes) inside ``run`` so ``edge-vision --help`` stays fast.
Defaults that a config dataclass already holds are not restated: see :class:`FieldDefault`.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Iterable

__all__ = ['FieldDefault', 'StopSignals', 'given']


class FieldDefault:
    """An argparse default that stands for a field of a config dataclass, so the defaults live
    in one place (the dataclass: ``DetectorOptions``, ``AnomalyConfig``...). The command passes
    the options the user gave (:func:`given`) and the dataclass fills in the rest; ``--help``
    prints the field's value (``%(default)s``), importing the dataclass only then.

    Args:
        path: ``'package.module:Class.field'``.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def value(self) -> object:
        module, attr = self.path.split(':')
        cls_name, field_name = attr.split('.')
        return getattr(getattr(importlib.import_module(module), cls_name)(), field_name)

    def __str__(self) -> str:
        return str(self.value())


def given(args: argparse.Namespace, names: Iterable[str] | dict[str, str]) -> dict[str, object]:
    """``{field: value}`` of the options the user set among ``names`` (argument names, or a
    ``{argument: field}`` mapping), leaving out those still at a :class:`FieldDefault`."""
    mapping = names if isinstance(names, dict) else {name: name for name in names}
    return {field: getattr(args, arg) for arg, field in mapping.items()
            if not isinstance(getattr(args, arg), FieldDefault)}


class StopSignals:
    """The first SIGINT/SIGTERM asks a long-running command to stop (it finishes cleanly:
    ``requested`` names the signal); a second SIGINT aborts (KeyboardInterrupt). Handlers are
    installed explicitly, so SIGINT works even where it was inherited as ignored (a job started
    in the background by a non-interactive shell), and restored on exit.

    Args:
        doing: what the command does once asked, for the message (``stopping and ...``).
    """

    def __init__(self, doing: str = 'stopping') -> None:
        self.requested = ''
        self._doing = doing
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        sys.stderr.write(f'\n{self.requested}: {self._doing} (Ctrl-C again to abort)\n')

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
