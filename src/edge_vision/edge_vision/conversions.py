"""Message <-> core conversions: the only place where ROS messages meet edge_vision_core types.

Nodes stay thin by calling these functions; every function is tested without spinning a node.

Images (``sensor_msgs/Image``) follow cv_bridge's semantics for the encodings both support
(see :mod:`edge_vision_core.encodings`): reading is a zero-copy view of the message buffer when
the byte order is native, writing copies the pixels once into the message.

Detections (``vision_msgs/Detection2DArray``, vision_msgs 4.x):

- ``bbox.center.position`` is the box centre and ``bbox.size_x/size_y`` its size, in pixels of
  the image named by ``header`` (same stamp and frame_id as that image);
- each detection carries one ``ObjectHypothesisWithPose`` whose ``hypothesis.class_id`` is the
  class *name* when a label list is known (readable in ``ros2 topic echo`` and rviz) and the
  decimal class index otherwise; ``vision_msgs/LabelInfo`` (published latched by the inference
  node) maps indices to names;
- ``Detection2D.id`` is the decimal track id for tracked detections, empty otherwise.

Markers (``visualization_msgs/MarkerArray``, :func:`detections_to_markers`): each detection as a
rectangle at an assumed depth in the image's optical frame plus a text label, for 3-D views.

Text (``edge_vision_msgs/TextArray``, :func:`text_lines_to_msg`): one ``TextLine`` per line read,
its ``polygon`` the four corners (``vision_msgs/Point2D``, image pixels) clockwise from the
top-left corner of the text, ``region`` the index of the detection it was read in (-1: whole
image). ``edge_vision_msgs`` is imported when these functions run, so the other conversions work
where it is not built.

Image quality (``diagnostic_msgs/DiagnosticStatus``, :func:`quality_to_status`): one status per
preprocessed frame: level WARN when the gate failed or a step warned, a one-line summary, and the
metrics, verdict, steps, chosen parameters and timings as key/value strings.
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from rcl_interfaces.msg import ParameterType, ParameterValue
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from sensor_msgs.msg import RegionOfInterest as RoiMsg
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import (
    Classification,
    Detection2D,
    Detection2DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)
from visualization_msgs.msg import Marker, MarkerArray

from edge_vision_core import (
    CameraModel,
    ConversionError,
    Detections,
    Frame,
    FrameDetections,
    FrameMeta,
)
from edge_vision_core.camera import RegionOfInterest
from edge_vision_core.encodings import (
    array_to_buffer,
    buffer_to_array,
    compress,
    convert_encoding,
    decompress,
    encoding_for_array,
)
from edge_vision_core.inference.ocr import FrameText, TextLine
from edge_vision_core.types import class_name
from edge_vision_core.viz import box_outlines_3d, color_for, detection_key, detection_label

if TYPE_CHECKING:
    from edge_vision_core.imaging import PreprocessResult

__all__ = [
    'MAX_CLASS_ID',
    'camera_info_to_model',
    'classification_score',
    'diagnostic_level',
    'frame_detections_to_msg',
    'frame_to_camera_info',
    'frame_to_compressed',
    'frame_text_to_msg',
    'frame_to_image',
    'image_to_frame',
    'compressed_to_numpy',
    'detections_to_markers',
    'detections_to_msg',
    'header_to_meta',
    'image_to_numpy',
    'label_info_to_labels',
    'labels_to_label_info',
    'meta_to_header',
    'model_to_camera_info',
    'msg_to_detections',
    'msg_to_frame_detections',
    'msg_to_frame_text',
    'msg_to_text_lines',
    'numpy_to_compressed',
    'numpy_to_image',
    'parameter_value',
    'quality_from_msg',
    'quality_key_values',
    'quality_level',
    'quality_summary',
    'quality_to_status',
    'text_lines_to_msg',
]


# ---------------------------------------------------------------------------------------------
# Headers

def header_to_meta(header: Header) -> FrameMeta:
    """``std_msgs/Header`` -> FrameMeta (exact integer-nanosecond stamp)."""
    return FrameMeta.from_sec_nanosec(header.stamp.sec, header.stamp.nanosec, header.frame_id)


def meta_to_header(meta: FrameMeta) -> Header:
    """FrameMeta -> ``std_msgs/Header``."""
    sec, nanosec = meta.sec_nanosec
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=meta.frame_id)


def _copy_header(header: Header | None) -> Header:
    if header is None:
        return Header()
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec),
                  frame_id=header.frame_id)


# ---------------------------------------------------------------------------------------------
# Images

def image_to_numpy(msg: Image, desired_encoding: str = 'passthrough') -> np.ndarray:
    """``sensor_msgs/Image`` -> array of shape (H, W) or (H, W, C).

    With ``desired_encoding='passthrough'`` (or equal to ``msg.encoding``) and a native byte
    order, the result is a view of ``msg.data`` (no copy): writing to it changes the message.
    Otherwise the pixels are converted like cv_bridge's ``imgmsg_to_cv2``.

    Raises:
        ConversionError: unknown encoding (the message lists the supported ones), sizes that
            do not match the buffer, or an unsupported conversion.
    """
    arr = buffer_to_array(msg.data, msg.height, msg.width, msg.step, msg.encoding,
                          bool(msg.is_bigendian))
    return convert_encoding(arr, msg.encoding, desired_encoding)


def numpy_to_image(arr: np.ndarray, encoding: str = 'passthrough',
                   header: Header | None = None) -> Image:
    """Array -> ``sensor_msgs/Image`` (one copy of the pixels into the message).

    Args:
        arr: (H, W) or (H, W, C) array matching ``encoding`` (e.g. uint8 (H, W, 3) for
            ``bgr8``); ``passthrough`` names it from its dtype (``8UC3``), like cv_bridge.
        encoding: the ROS encoding written into the message.
        header: copied into the message (stamp and frame_id).
    """
    buf, step, big = array_to_buffer(arr, encoding)
    data = array.array('B')
    data.frombytes(buf)
    msg = Image()
    msg.header = _copy_header(header)
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding if encoding != 'passthrough' else encoding_for_array(arr)
    msg.is_bigendian = int(big)
    msg.step = step
    msg.data = data
    return msg


def compressed_to_numpy(msg: CompressedImage, desired_encoding: str = 'passthrough'
                        ) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG/PNG) -> array.

    ``passthrough`` returns the decoded layout: bgr8, bgra8, mono8 or mono16.
    """
    arr, _ = decompress(msg.data, msg.format, desired_encoding)
    return arr


def numpy_to_compressed(arr: np.ndarray, encoding: str = 'bgr8', fmt: str = 'jpeg',
                        quality: int = 90, header: Header | None = None) -> CompressedImage:
    """Array -> ``sensor_msgs/CompressedImage`` with compressed_image_transport's format string
    (``"bgr8; jpeg compressed bgr8"``), so ``image_transport`` republishers decode it."""
    data, fmt_field = compress(arr, encoding, fmt, quality)
    msg = CompressedImage()
    msg.header = _copy_header(header)
    msg.format = fmt_field
    buf = array.array('B')
    buf.frombytes(data)
    msg.data = buf
    return msg


# ---------------------------------------------------------------------------------------------
# Detections

def detections_to_msg(dets: Detections, header: Header | None = None,
                      labels: Sequence[str] | None = None) -> Detection2DArray:
    """Detections -> ``vision_msgs/Detection2DArray``; every Detection2D gets ``header`` too.

    Args:
        dets: boxes in pixels of the image ``header`` describes.
        header: the source image's header (stamp and frame_id are preserved).
        labels: class names indexed by class id; without it class ids are written as numbers.
    """
    out = Detection2DArray()
    out.header = _copy_header(header)
    xywh = dets.xywh.astype(np.float64)
    scores = dets.scores.astype(np.float64)
    tracked = dets.track_ids is not None
    detections = []
    for i in range(len(dets)):
        det = Detection2D()
        det.header = _copy_header(header)
        det.bbox.center.position.x = float(xywh[i, 0])
        det.bbox.center.position.y = float(xywh[i, 1])
        det.bbox.size_x = float(xywh[i, 2])
        det.bbox.size_y = float(xywh[i, 3])
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = class_name(int(dets.class_ids[i]), labels)
        hyp.hypothesis.score = float(scores[i])
        det.results = [hyp]
        if tracked:
            det.id = str(int(dets.track_ids[i]))
        detections.append(det)
    out.detections = detections
    return out


#: The largest class id accepted in ``vision_msgs/LabelInfo`` and ``Detection2D`` class ids
#: (and the most class names a label list may grow to). Label lists are indexed by class id, so
#: one absurd id would make every consumer allocate and scan a table that large; the largest
#: detection vocabularies in use (LVIS 1203, Objects365 365, Open Images 601) are far below.
MAX_CLASS_ID = 32767
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _parse_class(class_id: str, name_to_id: dict[str, int],
                 extend: list[str] | None = None) -> int:
    if class_id in name_to_id:
        return name_to_id[class_id]
    try:
        value = int(class_id)
    except ValueError:
        value = None
    if value is not None:
        if not -1 <= value <= MAX_CLASS_ID:
            raise ConversionError(f'class id {class_id!r} in Detection2D is out of range: class '
                                  f'indices go from 0 to {MAX_CLASS_ID} (-1 = no class)')
        return value
    if extend is not None:
        if len(extend) > MAX_CLASS_ID:
            raise ConversionError(
                f'unknown class {class_id!r} in Detection2D: the label list already holds '
                f'{len(extend)} names (at most {MAX_CLASS_ID + 1}); publish the model\'s '
                f'vision_msgs/LabelInfo instead of new names on every message')
        name_to_id[class_id] = len(extend)
        extend.append(class_id)
        return name_to_id[class_id]
    known = ', '.join(sorted(name_to_id)[:10]) or 'none'
    raise ConversionError(
        f'unknown class {class_id!r} in Detection2D: not a class index and not in the label '
        f'list (known: {known}...). Pass the labels from the vision_msgs/LabelInfo topic')


def _parse_track_ids(ids: list[str]) -> np.ndarray:
    try:
        values = [int(x) for x in ids]
    except ValueError:
        raise ConversionError(
            f'Detection2D.id must be empty for all detections or an integer track id for '
            f'all, got {ids[:5]}') from None
    bad = [x for x in values if not _INT64_MIN <= x <= _INT64_MAX]
    if bad:
        raise ConversionError(f'Detection2D.id {bad[0]} does not fit a 64-bit track id '
                              f'({_INT64_MIN}..{_INT64_MAX})')
    return np.array(values, np.int64)


def msg_to_detections(msg: Detection2DArray, labels: Sequence[str] | None = None,
                      extend_labels: bool = False,
                      label_index: dict[str, int] | None = None) -> Detections:
    """``vision_msgs/Detection2DArray`` -> Detections.

    The best-scoring hypothesis of each detection gives its class and score; a detection with no
    hypothesis gets class -1 and score 0. ``Detection2D.id`` values that are all integers
    become ``track_ids``; all empty gives None.

    Args:
        msg: the message.
        labels: class names indexed by class id (from ``vision_msgs/LabelInfo``).
        extend_labels: append class names missing from ``labels`` (a mutable list) instead of
            raising, for consumers that only display names.
        label_index: ``{name: class id}`` of ``labels``, when the caller keeps one (it is
            updated with appended names), so a long label list is not indexed per message.

    Raises:
        ConversionError: a class name not in ``labels`` and not an integer, a class index
            outside 0..:data:`MAX_CLASS_ID`, or ids that are neither all empty nor all integers
            of 64 bits.
    """
    n = len(msg.detections)
    name_to_id = label_index if label_index is not None else \
        {name: i for i, name in enumerate(labels or ())}
    extend = labels if extend_labels and isinstance(labels, list) else None
    boxes = np.empty((n, 4), np.float64)
    scores = np.zeros(n, np.float64)
    class_ids = np.full(n, -1, np.int64)
    ids = []
    for i, det in enumerate(msg.detections):
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        boxes[i] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if det.results:
            best = max(det.results, key=lambda r: r.hypothesis.score)
            scores[i] = best.hypothesis.score
            class_ids[i] = _parse_class(best.hypothesis.class_id, name_to_id, extend)
        ids.append(det.id)
    track_ids = _parse_track_ids(ids) if any(ids) else None
    return Detections(boxes, scores, class_ids, track_ids)


def labels_to_label_info(labels: Sequence[str], header: Header | None = None,
                         threshold: float = 0.0) -> LabelInfo:
    """Label list -> ``vision_msgs/LabelInfo`` (class index -> name, and the score threshold)."""
    if len(labels) > 65536:
        raise ConversionError(f'LabelInfo class ids are uint16: {len(labels)} labels is too many')
    msg = LabelInfo()
    msg.header = _copy_header(header)
    msg.class_map = [VisionClass(class_id=i, class_name=str(name))
                     for i, name in enumerate(labels)]
    msg.threshold = float(threshold)
    return msg


def label_info_to_labels(msg: LabelInfo) -> list[str]:
    """``vision_msgs/LabelInfo`` -> label list indexed by class id (gaps filled with the id).

    Raises:
        ConversionError: a class id above :data:`MAX_CLASS_ID`.
    """
    if not msg.class_map:
        return []
    size = max(c.class_id for c in msg.class_map) + 1
    if size > MAX_CLASS_ID + 1:
        raise ConversionError(f'LabelInfo class id {size - 1} is out of range: class indices go '
                              f'from 0 to {MAX_CLASS_ID}')
    labels = [str(i) for i in range(size)]
    for c in msg.class_map:
        labels[c.class_id] = c.class_name
    return labels


# ---------------------------------------------------------------------------------------------
# Camera calibration

def camera_info_to_model(msg: CameraInfo) -> CameraModel:
    """``sensor_msgs/CameraInfo`` -> CameraModel (validated: sizes, distortion model, NaNs)."""
    roi = RegionOfInterest(msg.roi.x_offset, msg.roi.y_offset, msg.roi.height, msg.roi.width,
                           bool(msg.roi.do_rectify))
    try:
        return CameraModel(width=int(msg.width), height=int(msg.height), K=np.asarray(msg.k),
                           D=np.asarray(msg.d), R=np.asarray(msg.r), P=np.asarray(msg.p),
                           distortion_model=msg.distortion_model or 'plumb_bob',
                           binning_x=int(msg.binning_x), binning_y=int(msg.binning_y), roi=roi)
    except ValueError as exc:
        raise ConversionError(f'invalid CameraInfo (frame_id {msg.header.frame_id!r}): '
                              f'{exc}') from exc


def model_to_camera_info(model: CameraModel, header: Header | None = None) -> CameraInfo:
    """CameraModel -> ``sensor_msgs/CameraInfo`` with ``header`` copied."""
    msg = CameraInfo()
    msg.header = _copy_header(header)
    msg.width, msg.height = model.width, model.height
    msg.distortion_model = model.distortion_model
    msg.d = [float(x) for x in model.D]
    msg.k = model.K.ravel().astype(np.float64)
    msg.r = model.R.ravel().astype(np.float64)
    msg.p = model.P.ravel().astype(np.float64)
    msg.binning_x, msg.binning_y = model.binning_x, model.binning_y
    msg.roi = RoiMsg(x_offset=model.roi.x_offset, y_offset=model.roi.y_offset,
                     height=model.roi.height, width=model.roi.width,
                     do_rectify=model.roi.do_rectify)
    return msg


# ---------------------------------------------------------------------------------------------
# Frames (image + header + calibration), the objects image streams carry between stages

def image_to_frame(msg: Image, desired_encoding: str = 'passthrough',
                   camera: CameraModel | None = None) -> Frame:
    """``sensor_msgs/Image`` -> Frame (zero-copy view when no conversion is needed).

    Raises:
        ConversionError: see :func:`image_to_numpy`; also an image of zero width or height
            (a stage has nothing to process in it).
    """
    if msg.width == 0 or msg.height == 0:
        raise ConversionError(f'empty {msg.encoding} image ({msg.width}x{msg.height}): a frame '
                              f'needs at least one pixel')
    arr = image_to_numpy(msg, desired_encoding)
    encoding = msg.encoding if desired_encoding == 'passthrough' else desired_encoding
    return Frame(arr, header_to_meta(msg.header), encoding, camera)


def frame_to_image(frame: Frame) -> Image:
    """Frame -> ``sensor_msgs/Image`` with the frame's stamp and frame_id."""
    return numpy_to_image(frame.image, frame.encoding, meta_to_header(frame.meta))


def frame_to_camera_info(frame: Frame) -> CameraInfo:
    """The frame's calibration as ``sensor_msgs/CameraInfo`` with the frame's header
    (uncalibrated, REP-104, when the frame carries none)."""
    model = frame.camera if frame.camera is not None else \
        CameraModel.uncalibrated(frame.width, frame.height)
    return model_to_camera_info(model, meta_to_header(frame.meta))


def frame_to_compressed(frame: Frame, fmt: str = 'jpeg', quality: int = 80
                        ) -> CompressedImage:
    """Frame -> ``sensor_msgs/CompressedImage`` with the frame's header."""
    return numpy_to_compressed(frame.image, frame.encoding, fmt, quality,
                               meta_to_header(frame.meta))


def frame_detections_to_msg(item: FrameDetections) -> Detection2DArray:
    """FrameDetections -> ``vision_msgs/Detection2DArray`` with the frame's header."""
    return detections_to_msg(item.detections, meta_to_header(item.meta), item.labels)


def msg_to_frame_detections(msg: Detection2DArray, labels: Sequence[str] | None = None,
                            extend_labels: bool = False,
                            label_index: dict[str, int] | None = None) -> FrameDetections:
    """``vision_msgs/Detection2DArray`` -> FrameDetections (see :func:`msg_to_detections`)."""
    dets = msg_to_detections(msg, labels, extend_labels, label_index)
    return FrameDetections(header_to_meta(msg.header), dets,
                           labels=tuple(labels) if labels else None)


# ---------------------------------------------------------------------------------------------
# Markers


def detections_to_markers(dets: Detections, camera: CameraModel, depth: float,
                          header: Header | None = None, labels: Sequence[str] | None = None,
                          lifetime_s: float = 1.0, ns: str = 'detections') -> MarkerArray:
    """Detections -> ``visualization_msgs/MarkerArray`` for rviz's 3-D view.

    The array starts with a ``DELETEALL`` marker (the previous frame's markers go), then for
    each valid detection (in order, NaN/zero-area boxes skipped, numbered from 0) a
    ``LINE_STRIP`` rectangle (namespace ``<ns>/boxes``) and a ``TEXT_VIEW_FACING`` label
    (``<ns>/labels``, same id, "#track class score") above it, coloured like the overlay
    image. Points are in ``header.frame_id`` (the camera's optical frame), at ``z = depth``
    metres: see :func:`edge_vision_core.viz.box_outlines_3d`. Line width and text height scale
    with ``depth`` so they look the same at any depth.
    """
    out = MarkerArray()
    head = _copy_header(header)
    out.markers.append(Marker(header=head, ns=ns, action=Marker.DELETEALL))
    valid = np.flatnonzero(dets.valid_mask())
    if valid.size == 0:
        return out
    outlines = box_outlines_3d(dets.boxes[valid], camera, depth)
    sec = int(max(0.0, lifetime_s))
    lifetime = Duration(sec=sec, nanosec=int(round((max(0.0, lifetime_s) - sec) * 1e9)))
    for n, i in enumerate(valid.tolist()):
        b, g, r = color_for(detection_key(dets, i))
        color = ColorRGBA(r=r / 255.0, g=g / 255.0, b=b / 255.0, a=1.0)
        box = Marker(header=head, ns=f'{ns}/boxes', id=n, type=Marker.LINE_STRIP,
                     action=Marker.ADD, color=color, lifetime=lifetime)
        box.pose.orientation.w = 1.0
        box.scale.x = 0.01 * depth
        box.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in outlines[n]]
        text = Marker(header=head, ns=f'{ns}/labels', id=n, type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, color=color, lifetime=lifetime,
                      text=detection_label(dets, i, labels))
        x1, y1, z1 = outlines[n, 0]
        x2 = outlines[n, 1, 0]
        text.pose.position = Point(x=float((x1 + x2) / 2), y=float(y1 - 0.04 * depth),
                                   z=float(z1))
        text.pose.orientation.w = 1.0
        text.scale.z = 0.05 * depth
        out.markers.extend((box, text))
    return out


# ---------------------------------------------------------------------------------------------
# Image quality (preprocess_node's ``quality`` topic)

def quality_level(result: PreprocessResult) -> int:
    """``DiagnosticStatus`` level of a preprocessed frame: OK (0), or WARN (1) when the gate
    failed or a step warned."""
    return 0 if result.verdict.ok and not result.warnings else 1


def quality_summary(result: PreprocessResult) -> str:
    """One line for ``DiagnosticStatus.message``: ``ok`` or the gate reasons, then whether the
    frame was dropped, then the warnings."""
    parts = ['ok' if result.verdict.ok else ', '.join(result.verdict.reasons)]
    if result.dropped:
        parts.append('frame dropped')
    parts.extend(result.warnings)
    return '; '.join(parts)


def quality_key_values(result: PreprocessResult) -> list[tuple[str, str]]:
    """``DiagnosticStatus.values`` of a preprocessed frame as ``(key, value)`` strings: input
    (and ``output_``) metrics, verdict, reasons, dropped, steps, ``skipped_<step>``, the chosen
    parameters, PSNR/SSIM, ``time_<stage>_ms`` and ``converted_from``."""
    values: list[tuple[str, str]] = []
    for prefix, metrics in (('', result.input_metrics), ('output_', result.output_metrics)):
        if metrics is None:
            continue
        for key, value in metrics.as_dict().items():
            if key not in ('width', 'height', 'decimation'):
                values.append((prefix + key, _quality_number(value)))
    values.append(('verdict', 'ok' if result.verdict.ok else 'fail'))
    values.append(('reasons', ','.join(result.verdict.reasons)))
    values.append(('dropped', str(result.dropped).lower()))
    values.append(('steps', ','.join(result.steps)))
    values.extend((f'skipped_{k}', v) for k, v in result.skipped.items())
    values.extend((k, _quality_number(v)) for k, v in result.parameters.items())
    if result.psnr is not None:
        values.append(('psnr_output_vs_input_db', _quality_number(result.psnr)))
    if result.ssim is not None:
        values.append(('ssim_output_vs_input', _quality_number(result.ssim)))
    values.extend((f'time_{k}_ms', f'{v:.3f}') for k, v in result.timings_ms.items())
    if result.converted_from:
        values.append(('converted_from', result.converted_from))
    return values


def quality_to_status(result: PreprocessResult, name: str, hardware_id: str = ''
                      ) -> DiagnosticStatus:
    """The ``DiagnosticStatus`` of one preprocessed frame (see the module docstring)."""
    return DiagnosticStatus(level=bytes([quality_level(result)]), name=name,
                            message=quality_summary(result), hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v)
                                    for k, v in quality_key_values(result)])


def _quality_number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return 'inf' if value > 0 else '-inf'
    return f'{value:.6g}'


# ---------------------------------------------------------------------------------------------
# Scores, statuses and parameter values (the MQTT bridge's inputs and remote parameter changes)

def diagnostic_level(level: bytes | int) -> int:
    """A ``DiagnosticStatus.level`` (a byte in rclpy) as an int: 0 OK, 1 WARN, 2 ERROR, 3 STALE."""
    return int.from_bytes(level, 'little') if isinstance(level, (bytes, bytearray)) \
        else int(level)


def classification_score(msg: Classification, class_id: str = 'anomaly'
                         ) -> tuple[FrameMeta, float]:
    """``vision_msgs/Classification`` -> ``(meta, score of class_id)`` (anomaly_node's
    ``anomaly`` topic: the anomaly confidence, 0.5 at the model threshold).

    Raises:
        ConversionError: no hypothesis for ``class_id``.
    """
    for hyp in msg.results:
        if hyp.class_id == class_id:
            return header_to_meta(msg.header), float(hyp.score)
    raise ConversionError(f'Classification without a {class_id!r} hypothesis (got '
                          f'{[h.class_id for h in msg.results][:5]})')


def quality_from_msg(msg: DiagnosticArray) -> tuple[FrameMeta, int, str]:
    """preprocess_node's per-frame ``quality`` array -> ``(meta, level, summary)``: the worst
    status level and the messages of the statuses at that level.

    Raises:
        ConversionError: an empty array.
    """
    if not msg.status:
        raise ConversionError('quality DiagnosticArray with no status')
    levels = [diagnostic_level(s.level) for s in msg.status]
    worst = max(levels)
    summary = '; '.join(s.message for s, lv in zip(msg.status, levels, strict=True)
                        if lv == worst and s.message)
    return header_to_meta(msg.header), worst, summary


_PARAMETER_FIELDS = {
    ParameterType.PARAMETER_BOOL: ('bool_value', (bool,)),
    ParameterType.PARAMETER_INTEGER: ('integer_value', (int,)),
    ParameterType.PARAMETER_DOUBLE: ('double_value', (int, float)),
    ParameterType.PARAMETER_STRING: ('string_value', (str,)),
    ParameterType.PARAMETER_BOOL_ARRAY: ('bool_array_value', (bool,)),
    ParameterType.PARAMETER_INTEGER_ARRAY: ('integer_array_value', (int,)),
    ParameterType.PARAMETER_DOUBLE_ARRAY: ('double_array_value', (int, float)),
    ParameterType.PARAMETER_STRING_ARRAY: ('string_array_value', (str,)),
}


def parameter_value(value: object, ptype: int) -> ParameterValue:
    """A JSON value -> ``rcl_interfaces/ParameterValue`` of the parameter's declared type
    (an integer is accepted for a double; nothing else is converted).

    Raises:
        ConversionError: the parameter is not declared (type NOT_SET), or the value does not
            fit its type.
    """
    if ptype not in _PARAMETER_FIELDS:
        raise ConversionError('no such parameter (not declared on that node)')
    attr, kinds = _PARAMETER_FIELDS[ptype]
    is_array = attr.endswith('_array_value')
    values = value if is_array and isinstance(value, list) else [value]
    ok = (isinstance(value, list) == is_array and all(
        isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool)) for v in values))
    if not ok:
        raise ConversionError(f'value {value!r} does not fit the parameter\'s type '
                              f'{attr.removesuffix("_value").replace("_", " ")}')
    if kinds == (int, float):
        values = [float(v) for v in values]
    out = ParameterValue(type=ptype)
    setattr(out, attr, values if is_array else values[0])
    return out


# ---------------------------------------------------------------------------------------------
# Text lines (OCR)

def text_lines_to_msg(lines: Sequence[TextLine], header: Header | None = None):
    """Text lines -> ``edge_vision_msgs/TextArray`` with the image's ``header``.

    Args:
        lines: lines read in the image ``header`` describes (polygons in its pixels).
        header: the source image's header (stamp and frame_id are preserved).
    """
    from vision_msgs.msg import Point2D

    from edge_vision_msgs.msg import TextArray
    from edge_vision_msgs.msg import TextLine as TextLineMsg

    out = TextArray()
    out.header = _copy_header(header)
    items = []
    for line in lines:
        polygon = np.asarray(line.polygon, np.float64).reshape(-1, 2)
        items.append(TextLineMsg(
            polygon=[Point2D(x=float(x), y=float(y)) for x, y in polygon],
            text=str(line.text), score=float(line.score), region=int(line.region)))
    out.lines = items
    return out


def msg_to_text_lines(msg) -> list[TextLine]:
    """``edge_vision_msgs/TextArray`` -> text lines (``box_score`` is not carried: 0).

    Raises:
        ConversionError: a polygon without exactly 4 corners, or a non-finite corner or score.
    """
    out = []
    for i, item in enumerate(msg.lines):
        polygon = np.array([[p.x, p.y] for p in item.polygon], np.float64).reshape(-1, 2)
        if len(polygon) != 4:
            raise ConversionError(f'TextArray.lines[{i}].polygon has {len(polygon)} corners; '
                                  f'a text line has 4 (clockwise from the top-left corner of '
                                  f'the text)')
        if not (np.all(np.isfinite(polygon)) and np.isfinite(item.score)):
            raise ConversionError(f'TextArray.lines[{i}] has a non-finite corner or score')
        out.append(TextLine(polygon.astype(np.float32), item.text, float(item.score),
                            region=int(item.region)))
    return out


def frame_text_to_msg(item: FrameText):
    """What ocr_node emits -> ``edge_vision_msgs/TextArray`` (header from ``item.meta``)."""
    return text_lines_to_msg(item.lines, meta_to_header(item.meta))


def msg_to_frame_text(msg) -> FrameText:
    """``edge_vision_msgs/TextArray`` -> :class:`~edge_vision_core.inference.ocr.FrameText`
    (image size unknown: (0, 0)).

    Raises:
        ConversionError: as :func:`msg_to_text_lines`.
    """
    return FrameText(header_to_meta(msg.header), tuple(msg_to_text_lines(msg)))
