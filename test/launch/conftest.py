"""launch_testing tests: they need ROS 2's launch_testing and an installed (colcon) workspace.

launch, launch_ros and launch_testing are not on PyPI, so in the no-ROS environment these tests
are skipped with that reason. In a sourced ROS 2 workspace (``colcon build`` then
``source install/setup.bash``) they run with plain ``pytest test/launch`` or ``colcon test``.
"""

from __future__ import annotations

import importlib.util

import pytest

_MISSING = [m for m in ('launch_ros', 'launch_testing', 'launch_testing_ros')
            if importlib.util.find_spec(m) is None]


def pytest_collection_modifyitems(config, items):
    if not _MISSING:
        try:
            from ament_index_python.packages import (
                PackageNotFoundError,
                get_package_share_directory,
            )
            get_package_share_directory('edge_vision')
            return
        except (ImportError, PackageNotFoundError, KeyError, LookupError):
            reason = ('edge_vision is not installed in an ament prefix: run `colcon build` and '
                      '`source install/setup.bash` first')
    else:
        reason = (f'ROS 2 launch testing is not installed ({", ".join(_MISSING)} missing; they '
                  f'are not on PyPI): run these in a sourced ROS 2 workspace')
    here = str(config.rootpath / 'test' / 'launch')
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=reason))
