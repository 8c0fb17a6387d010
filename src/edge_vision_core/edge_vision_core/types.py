"""Core data types: detections, frame metadata and frames.

Coordinate frame used throughout edge_vision (the image frame of REP-103/104 camera optical
frames): pixel coordinates with x to the right and y down, origin at the top-left *corner* of
the top-left pixel, so a box covering the whole W x H image is ``[0, 0, W, H]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .camera import CameraModel
from .errors import DataError

__all__ = ['Detections', 'Frame', 'FrameDetections', 'FrameMeta', 'box_iou', 'class_name']

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class FrameMeta:
    """Where and when a frame was acquired: the core-side twin of ``std_msgs/Header``.

    Every output derived from a frame carries the frame's ``FrameMeta`` unchanged, so stamps and
    frame ids survive the whole pipeline.

    Attributes:
        stamp_ns: acquisition time in integer nanoseconds (ROS time: since the Unix epoch, or
            since the simulation start under ``use_sim_time``). Integer nanoseconds keep the
            exact ``sec``/``nanosec`` pair of a ROS stamp; a float second would not.
        frame_id: the camera's optical frame (REP-103 ``*_optical_frame``), may be empty.
    """

    stamp_ns: int = 0
    frame_id: str = ''

    def __post_init__(self) -> None:
        if isinstance(self.stamp_ns, bool) or not isinstance(self.stamp_ns, (int, np.integer)):
            raise DataError(f'FrameMeta.stamp_ns must be an integer number of nanoseconds, '
                            f'got {self.stamp_ns!r}; use FrameMeta.from_seconds() for floats')
        if self.stamp_ns < 0:
            raise DataError(f'FrameMeta.stamp_ns must be >= 0, got {self.stamp_ns}')
        object.__setattr__(self, 'stamp_ns', int(self.stamp_ns))
        if not isinstance(self.frame_id, str):
            raise DataError(f'FrameMeta.frame_id must be a str, got {type(self.frame_id)}')

    @classmethod
    def from_sec_nanosec(cls, sec: int, nanosec: int, frame_id: str = '') -> FrameMeta:
        """Build from the two fields of a ``builtin_interfaces/Time``."""
        if not 0 <= nanosec < _NS_PER_S:
            raise DataError(f'nanosec must be in [0, 1e9), got {nanosec}')
        return cls(int(sec) * _NS_PER_S + int(nanosec), frame_id)

    @classmethod
    def from_seconds(cls, seconds: float, frame_id: str = '') -> FrameMeta:
        """Build from float seconds (rounded to the nearest nanosecond)."""
        if not np.isfinite(seconds):
            raise DataError(f'stamp must be finite, got {seconds}')
        return cls(int(round(seconds * _NS_PER_S)), frame_id)

    @property
    def sec_nanosec(self) -> tuple[int, int]:
        """The stamp split as ``(sec, nanosec)`` for a ``builtin_interfaces/Time``."""
        return divmod(self.stamp_ns, _NS_PER_S)

    @property
    def seconds(self) -> float:
        """The stamp in float seconds (for arithmetic, not for identity)."""
        return self.stamp_ns / _NS_PER_S


@dataclass(eq=False)
class Frame:
    """One image with its metadata.

    Attributes:
        image: (H, W) or (H, W, C) array, laid out as ``encoding`` says (e.g. ``bgr8`` is
            (H, W, 3) uint8 in B, G, R order). May be a non-contiguous view.
        meta: acquisition stamp and optical frame id.
        encoding: a ROS image encoding name (see ``edge_vision_core.encodings``).
        camera: the calibration of the camera at this image's size, or None when unknown
            (an uncalibrated camera has a CameraModel with ``is_calibrated`` False).
    """

    image: np.ndarray
    meta: FrameMeta = field(default_factory=FrameMeta)
    encoding: str = 'bgr8'
    camera: CameraModel | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.image, np.ndarray) or self.image.ndim not in (2, 3):
            shape = getattr(self.image, 'shape', None)
            raise DataError(f'Frame.image must be a 2-D or 3-D numpy array, got shape {shape}')

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _as_array(value: object, dtype: type, name: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    if arr.ndim != 1 + len(shape_tail) or arr.shape[1:] != shape_tail:
        want = '(N, ' + ', '.join(str(s) for s in shape_tail) + ')' if shape_tail else '(N,)'
        raise DataError(f'Detections.{name} must have shape {want}, got {arr.shape}')
    if np.issubdtype(np.dtype(dtype), np.integer) and arr.dtype.kind == 'f':
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataError(f'Detections.{name} must hold integers, got {arr.dtype} values '
                            f'that are not whole numbers')
    return np.ascontiguousarray(arr, dtype=dtype)


def class_name(class_id: int, labels: Sequence[str] | None) -> str:
    """The name of a class id: its label when ``labels`` has one, else the decimal id."""
    if labels is not None and 0 <= class_id < len(labels):
        return labels[class_id]
    return str(class_id)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b``.

    Args:
        a: (N, 4) boxes ``[x1, y1, x2, y2]``.
        b: (M, 4) boxes ``[x1, y1, x2, y2]``.

    Returns:
        (N, M) float64 IoU in [0, 1] (continuous areas, no "+1" pixel convention); 0 where
        the union is empty. An inverted box has area 0.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out



@dataclass(eq=False)
class Detections:
    """N detections in one image, as a struct of arrays (row i of every array is detection i).

    Attributes:
        boxes: (N, 4) float32 ``[x1, y1, x2, y2]`` in image pixels of the frame the detections
            belong to (see the module docstring for the coordinate frame).
        scores: (N,) float32 confidences, normally in [0, 1].
        class_ids: (N,) int32 indices into the model's label list.
        track_ids: optional (N,) int64 stable identities assigned by a tracker, or None.
        masks: optional (N, H, W) bool instance masks in the same image pixels, or None.
        keypoints: optional (N, K, 2) float32 ``(x, y)`` landmarks per detection in the same
            image pixels (e.g. the 6 face landmarks of a face detector), or None.

    The constructor checks shapes and converts dtypes; it does not judge values, so a NaN box
    can be represented and removed with :meth:`valid_mask` (the tracker counts such drops).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray | None = None
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = _as_array(self.boxes, np.float32, 'boxes', (4,))
        self.scores = _as_array(self.scores, np.float32, 'scores', ())
        self.class_ids = _as_array(self.class_ids, np.int32, 'class_ids', ())
        n = len(self.boxes)
        for name in ('scores', 'class_ids'):
            if len(getattr(self, name)) != n:
                raise DataError(f'Detections.{name} has {len(getattr(self, name))} rows but '
                                f'boxes has {n}; every array needs one row per detection')
        if self.track_ids is not None:
            self.track_ids = _as_array(self.track_ids, np.int64, 'track_ids', ())
            if len(self.track_ids) != n:
                raise DataError(f'Detections.track_ids has {len(self.track_ids)} rows, '
                                f'expected {n}')
        if self.masks is not None:
            masks = np.asarray(self.masks)
            if masks.ndim != 3 or len(masks) != n:
                raise DataError(f'Detections.masks must have shape (N={n}, H, W), got '
                                f'{masks.shape}')
            self.masks = masks.astype(bool, copy=False)
        if self.keypoints is not None:
            points = np.asarray(self.keypoints, np.float32)
            if points.ndim != 3 or len(points) != n or points.shape[2] != 2:
                raise DataError(f'Detections.keypoints must have shape (N={n}, K, 2), got '
                                f'{points.shape}')
            self.keypoints = np.ascontiguousarray(points)

    @classmethod
    def empty(cls, with_track_ids: bool = False) -> Detections:
        """Zero detections (what a detector returns for an empty scene)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int32),
                   np.zeros(0, np.int64) if with_track_ids else None)

    @classmethod
    def concatenate(cls, parts: Sequence[Detections]) -> Detections:
        """Stack several Detections (e.g. per-class results) into one."""
        parts = list(parts)
        if not parts:
            return cls.empty()
        optional = {}
        for name in ('track_ids', 'masks', 'keypoints'):
            present = {getattr(p, name) is not None for p in parts}
            if len(present) > 1:
                raise DataError(f'cannot concatenate Detections with and without {name}')
            if present == {True}:
                optional[name] = np.concatenate([getattr(p, name) for p in parts])
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.class_ids for p in parts]),
            **optional,
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: int | slice | np.ndarray | Iterable[int]) -> Detections:
        """Select rows by int, slice, bool mask or index array; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if index != -1 else None)
        elif not isinstance(index, slice):
            index = np.asarray(index)
        return Detections(
            self.boxes[index], self.scores[index], self.class_ids[index],
            None if self.track_ids is None else self.track_ids[index],
            None if self.masks is None else self.masks[index],
            None if self.keypoints is None else self.keypoints[index],
        )

    def __repr__(self) -> str:
        extra = ''
        if self.track_ids is not None:
            extra += ', tracked'
        if self.masks is not None:
            extra += f', masks {self.masks.shape[1:]}'
        if self.keypoints is not None:
            extra += f', {self.keypoints.shape[1]} keypoints'
        return f'Detections(n={len(self)}{extra})'

    def replace(self, **changes: object) -> Detections:
        """A copy with some fields replaced (validated like a new instance)."""
        return replace(self, **changes)

    @property
    def xywh(self) -> np.ndarray:
        """(N, 4) float32 ``[center_x, center_y, width, height]``."""
        b = self.boxes
        wh = b[:, 2:] - b[:, :2]
        return np.concatenate([b[:, :2] + wh / 2, wh], axis=1)

    @property
    def areas(self) -> np.ndarray:
        """(N,) float32 box areas (negative or NaN for malformed boxes)."""
        return (self.boxes[:, 2] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 1])

    def valid_mask(self) -> np.ndarray:
        """(N,) bool: finite box and score, and positive width and height."""
        b = self.boxes
        finite = np.isfinite(b).all(axis=1) & np.isfinite(self.scores)
        with np.errstate(invalid='ignore'):
            return finite & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])

    @staticmethod
    def from_xywh(xywh: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                  **kwargs: object) -> Detections:
        """Build from ``[center_x, center_y, width, height]`` rows."""
        xywh = np.asarray(xywh, dtype=np.float32).reshape(-1, 4)
        half = xywh[:, 2:] / 2
        boxes = np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)
        return Detections(boxes, scores, class_ids, **kwargs)


@dataclass(eq=False)
class FrameDetections:
    """The detections (or tracks) of one frame, as one stage hands them to the next.

    Attributes:
        meta: the frame's stamp and frame_id (copied from the image they were found in).
        detections: boxes in that image's pixels.
        image_size: ``(width, height)`` of that image, when known.
        frame: the image itself when the producer still holds it (in-process pipelines use it
            to draw overlays without another copy), else None.
        labels: class names indexed by class id, when known.
    """

    meta: FrameMeta
    detections: Detections
    image_size: tuple[int, int] | None = None
    frame: Frame | None = None
    labels: tuple[str, ...] | None = None
