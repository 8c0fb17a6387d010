"""Multi-object tracking: Kalman filter, association, camera-motion compensation.

:class:`ByteTracker` (configured by :class:`ByteTrackConfig`) turns per-image
:class:`~edge_vision_core.types.Detections` into tracks with stable ids; boxes stay in the image
pixels of the input. The building blocks are public for reuse and testing:
:class:`BoxKalmanFilter` (constant velocity over ``[cx, cy, w, h]``), :func:`box_iou` and
:func:`linear_assignment` (gated Hungarian), and :class:`CameraMotionEstimator` (image-to-image
affine motion from sparse optical flow or ECC). Pure NumPy/SciPy; OpenCV only for camera-motion
compensation, imported when it is used.
"""

from __future__ import annotations

from .association import box_iou, center_distance_ratio, linear_assignment
from .bytetrack import ByteTrackConfig, ByteTracker, TrackerStats, TrackInfo, TrackState
from .kalman import BoxKalmanFilter, boxes_to_measurements, measurements_to_boxes
from .motion import CMC_METHODS, CameraMotionConfig, CameraMotionEstimator

__all__ = [
    'CMC_METHODS',
    'BoxKalmanFilter',
    'ByteTrackConfig',
    'ByteTracker',
    'CameraMotionConfig',
    'CameraMotionEstimator',
    'TrackInfo',
    'TrackState',
    'TrackerStats',
    'box_iou',
    'boxes_to_measurements',
    'center_distance_ratio',
    'linear_assignment',
    'measurements_to_boxes',
]
