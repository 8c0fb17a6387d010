"""The ``edge-vision`` command line: one entry point, one module per subcommand.

Each subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int`` and keeps its
heavy imports (rclpy, inference runtimes) inside ``run`` so ``edge-vision --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from edge_vision_core import EdgeVisionError

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    'doctor': ('edge_vision.doctor',
               'check the ROS 2 environment: rclpy, type hashes, and image delivery over DDS'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='edge-vision',
        description='edge_vision: deep-learning computer vision for ROS 2 at the edge.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=module.__doc__.split('\n\n')[0])
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
