"""Camera calibration: targets, view selection, solvers and camera_info files.

Submodules:

- :mod:`.info_file`: the camera_info YAML format and ``camera_info_url`` rules of ROS
  ``camera_info_manager`` (used by the camera driver to load and store calibrations).
"""

from __future__ import annotations

from .info_file import (
    DEFAULT_CAMERA_INFO_URL,
    camera_info_from_yaml,
    camera_info_to_yaml,
    load_camera_info,
    resolve_camera_info_url,
    save_camera_info,
)

__all__ = [
    'DEFAULT_CAMERA_INFO_URL',
    'camera_info_from_yaml',
    'camera_info_to_yaml',
    'load_camera_info',
    'resolve_camera_info_url',
    'save_camera_info',
]
