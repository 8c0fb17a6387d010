"""The one exception hierarchy of edge_vision.

Every error the library raises on purpose derives from :class:`EdgeVisionError`, so callers (and
the ROS nodes) can catch the library's errors without catching programming errors. Messages name
the problem and the fix. Errors about a value the user supplied also derive from ``ValueError``
so generic argument handling keeps working.
"""

from __future__ import annotations

__all__ = [
    'BackendError',
    'CalibrationError',
    'ConfigError',
    'ConversionError',
    'DataError',
    'DeviceUnavailableError',
    'EdgeVisionError',
    'ModelError',
    'SourceError',
]


class EdgeVisionError(Exception):
    """Root of all errors raised by edge_vision on purpose."""


class ConfigError(EdgeVisionError, ValueError):
    """A parameter or configuration value is invalid (out of range, unknown name, wrong type)."""


class ConversionError(EdgeVisionError, ValueError):
    """Data cannot be converted: unknown image encoding, malformed buffer or message."""


class DataError(EdgeVisionError, ValueError):
    """Data handed over at run time is unusable: an image, array, box or time stamp of the wrong
    type, shape or dtype, empty, or not finite (a setting that is wrong is a ConfigError)."""


class CalibrationError(EdgeVisionError):
    """Camera calibration failed or a calibration file is invalid."""


class SourceError(EdgeVisionError):
    """A frame source (camera, file, stream) cannot be opened or read."""


class ModelError(EdgeVisionError):
    """A model file or manifest is missing, corrupt or does not match its adapter."""


class BackendError(EdgeVisionError):
    """An inference backend is unavailable or failed; the message names the backend."""


class DeviceUnavailableError(BackendError):
    """The requested device of an installed backend is not available here; the message lists
    the devices that are."""
