"""Subcommands of the ``edge-vision`` CLI: every module in this package is one subcommand.

A module ``commands/<name>.py`` becomes ``edge-vision <name>`` (underscores become dashes). It
provides ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy
imports (rclpy, inference runtimes) inside ``run`` so ``edge-vision --help`` stays fast.
"""
