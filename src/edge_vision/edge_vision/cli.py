"""The ``edge-vision`` command line: one entry point, one module per subcommand.

Subcommands are the modules of :mod:`edge_vision.commands` (see its docstring for the contract).
Errors of the library (:class:`edge_vision_core.EdgeVisionError`) end the command with exit code
2 and one clear line on stderr instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from edge_vision_core import EdgeVisionError

from . import commands


def command_modules() -> dict[str, str]:
    """``{subcommand name: module name}`` for every module in edge_vision.commands."""
    return {info.name.replace('_', '-'): f'{commands.__name__}.{info.name}'
            for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name)
            if not info.name.startswith('_')}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='edge-vision',
        description='edge_vision: deep-learning computer vision for ROS 2 at the edge.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, module_name in command_modules().items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        return int(args._module.run(args) or 0)
    except EdgeVisionError as exc:
        print(f'edge-vision {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
