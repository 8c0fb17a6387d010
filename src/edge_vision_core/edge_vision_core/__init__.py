"""edge_vision_core: the ROS-free core of edge_vision.

Everything that can be computed without ROS lives here, tested without spinning a node: types,
image encodings and camera models (this package), frame sources (:mod:`.io`), calibration,
image quality and preprocessing (:mod:`.imaging`), inference backends, model adapters and the
Detector (:mod:`.inference`), tracking, anomaly detection, model optimization and benchmarks
(:mod:`.optimize`) and evaluation (:mod:`.eval`). Importing this package never imports rclpy,
and inference runtimes are imported lazily by the backend that needs them.
"""

from __future__ import annotations

from .camera import CameraModel, RegionOfInterest
from .errors import (
    BackendError,
    CalibrationError,
    ConfigError,
    ConversionError,
    DataError,
    DeviceUnavailableError,
    EdgeVisionError,
    ModelError,
    SourceError,
)
from .types import Detections, Frame, FrameDetections, FrameMeta

__version__ = '0.1.0'

__all__ = [
    'BackendError',
    'CalibrationError',
    'CameraModel',
    'ConfigError',
    'ConversionError',
    'DataError',
    'Detections',
    'DeviceUnavailableError',
    'EdgeVisionError',
    'Frame',
    'FrameDetections',
    'FrameMeta',
    'ModelError',
    'RegionOfInterest',
    'SourceError',
]
