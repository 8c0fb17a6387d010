"""Camera calibration: targets, view selection, solvers and camera_info files.

Submodules:

- :mod:`.info_file`: the camera_info YAML format and ``camera_info_url`` rules of ROS
  ``camera_info_manager`` (the camera driver loads and stores calibrations with it).
- :mod:`.targets`: chessboard and ChArUco targets, detection with sub-pixel corners.
- :mod:`.views`: per-view parameters (x, y, size, skew), coverage progress, blur measure.
- :mod:`.solver`: pinhole (plumb_bob, rational_polynomial) and fisheye solvers.
- :mod:`.calibrator`: :class:`Calibrator`, the incremental session used by the CLI and node.
- :mod:`.synthetic`: rendering of targets through a known camera, for tests and benchmarks.

Typical use::

    from edge_vision_core.calibration import Calibrator, CalibratorConfig, TargetConfig
    cal = Calibrator(TargetConfig(pattern='chessboard', cols=9, rows=6, square_size=0.025),
                     CalibratorConfig(model='pinhole'))
    for image in images:
        cal.add_image(image)
    result = cal.calibrate()
    save_camera_info('camera.yaml', result.model, 'camera0')
"""

from __future__ import annotations

from .calibrator import REASONS, Calibrator, CalibratorConfig, ViewVerdict
from .info_file import (
    DEFAULT_CAMERA_INFO_URL,
    camera_info_from_yaml,
    camera_info_to_yaml,
    load_camera_info,
    resolve_camera_info_url,
    save_camera_info,
)
from .solver import MODELS, CalibrationResult, SolverConfig, solve
from .targets import (
    ARUCO_DICTIONARIES,
    CalibrationTarget,
    CharucoTarget,
    ChessboardTarget,
    TargetConfig,
    TargetDetection,
    make_target,
)
from .views import CoverageProgress, ParamProgress, ViewParams, coverage, edge_width, view_params

__all__ = [
    'ARUCO_DICTIONARIES',
    'DEFAULT_CAMERA_INFO_URL',
    'MODELS',
    'REASONS',
    'CalibrationResult',
    'CalibrationTarget',
    'Calibrator',
    'CalibratorConfig',
    'CharucoTarget',
    'ChessboardTarget',
    'CoverageProgress',
    'ParamProgress',
    'SolverConfig',
    'TargetConfig',
    'TargetDetection',
    'ViewParams',
    'ViewVerdict',
    'camera_info_from_yaml',
    'camera_info_to_yaml',
    'coverage',
    'edge_width',
    'load_camera_info',
    'make_target',
    'resolve_camera_info_url',
    'save_camera_info',
    'solve',
    'view_params',
]
