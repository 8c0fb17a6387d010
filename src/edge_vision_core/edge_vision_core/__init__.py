"""edge_vision_core: the ROS-free core of edge_vision.

Everything that can be computed without ROS lives here (types, image encodings, camera models,
and later quality metrics, inference backends, tracking, anomaly detection, evaluation), tested
without spinning a node. Importing this package never imports rclpy, and inference runtimes are
imported lazily by the backend that needs them.
"""

from __future__ import annotations

from .camera import CameraModel, RegionOfInterest
from .errors import (
    BackendError,
    CalibrationError,
    ConfigError,
    ConversionError,
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
    'Detections',
    'EdgeVisionError',
    'Frame',
    'FrameDetections',
    'FrameMeta',
    'ModelError',
    'RegionOfInterest',
    'SourceError',
]
