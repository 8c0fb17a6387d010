"""ocr_node: read the text the camera sees (signs, labels, serial numbers), in the whole image or
inside detections.

Subscribes (relative names), by ``mode``:

- ``full_frame``: ``image`` (sensor_msgs/Image, best effort, newest frame only): every text line
  of the image is found and read. bgr8, rgb8, mono8, bgra8 and the other encodings of
  :mod:`edge_vision_core.encodings` that convert to bgr8 are accepted (mono16 is scaled to 8 bits
  like cv_bridge does); float images (32FC1...) carry no colour and are refused: the message is
  dropped with a throttled error naming the encoding and counted in ``bad_messages``. The image
  is a mailbox input (:meth:`edge_vision.node_base.EdgeVisionNode.add_input`): reading overlaps
  receiving and a frame replaced before it was read is counted (``inputs_dropped``);
- ``roi``: ``image``, ``detections`` (vision_msgs/Detection2DArray, RELIABLE) and ``label_info``
  (vision_msgs/LabelInfo, transient local) as one synchronised input (:mod:`edge_vision.synced`):
  text is read only inside the detections whose class is in ``roi_classes`` (all of them when
  empty), each box grown by ``roi_padding``, on the image with the same stamp. Remap
  ``detections:=tracks`` to read inside tracked objects. In a composed pipeline the detections
  carry their image and no second copy is received.

Publishes ``text`` (edge_vision_msgs/TextArray, RELIABLE, depth 10), one message per image read
(an empty ``lines`` when there is no text), with the image's header (same stamp and frame_id):
per line the four corners (``vision_msgs/Point2D``, image pixels, clockwise from the top-left of
the text), the text, the recognition score in [0, 1] and ``region``: the index of the detection
in the ``detections`` message it was read in (-1 in ``full_frame`` mode).

Bad input never stops the node: an image smaller than ``min_image_size`` on a side (empty ones
included) gives an empty result and is counted (``images_too_small``); lines beyond
``max_lines`` are not read (``lines_dropped``), lines under ``min_score`` are not published
(``lines_rejected``); a model that fails at run time is logged and counted
(``processing_errors``).

Lifecycle: ``configure`` resolves the three models (names, manifests or files), verifies their
checksums, loads them on the backend, checks them against their manifests and reads a rendered
warm-up sign; a missing, corrupt or mismatched model or dictionary, an unknown backend or an
absent device fails the transition with a message naming the file or listing what is available,
and the node stays up, unconfigured. ``cleanup`` releases the runtimes.

Diagnostics: fps, frames read, lines published, the counters above, detection and recognition
milliseconds (p50/p95), models, backend and device.

Parameters: :class:`edge_vision_core.inference.ocr.TextReaderOptions` (models, dictionary,
backend, device, threads, precision, det_size, thresholds, min_score, max_lines...),
:class:`OcrConfig`, ``qos.*``, ``autostart``, ``diagnostics_period``. The per-image settings
(thresholds, min_score, max_lines, det_size, roi_classes, roi_padding) can change at runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sensor_msgs.msg import Image

from edge_vision_core import EdgeVisionError, Frame, FrameDetections
from edge_vision_core.config import check_config, param
from edge_vision_core.inference.ocr import FrameText, TextReader, TextReaderOptions
from edge_vision_core.timing import RateMeter, StageTimer
from edge_vision_core.types import class_name

from .conversions import frame_text_to_msg, image_to_frame
from .node_base import ERROR, OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import QosConfig, publisher_event_callbacks, results_qos, stream_subscriber_qos

__all__ = ['MODES', 'OcrConfig', 'OcrNode', 'main', 'roi_boxes']

#: What ocr_node reads (see the module docstring).
MODES = ('full_frame', 'roi')


@dataclass(frozen=True)
class OcrConfig:
    """ocr_node settings besides the text reader's."""

    mode: str = field(default='full_frame', metadata=param(
        'full_frame: read all text of each image; roi: read only inside the detections of '
        'roi_classes (subscribes image + detections + label_info, paired by stamp).',
        choices=MODES, read_only=True))
    roi_classes: tuple[str, ...] = field(default=(), metadata=param(
        'roi mode: class names whose detections are read (e.g. [sign, license_plate]); '
        'empty = every detection.'))
    roi_padding: float = field(default=0.1, metadata=param(
        'roi mode: grow each detection box by this fraction of its width and height on every '
        'side before reading (detectors box signs tightly and can cut off letters).', min=0.0,
        max=2.0))
    min_image_size: int = field(default=8, metadata=param(
        'Images (full_frame) or regions (roi) smaller than this on a side are not read: an '
        'empty result, counted in images_too_small.', min=1, max=4096, unit='px'))
    warmup: bool = field(default=True, metadata=param(
        'Read a rendered sign at configure time so the first real frame is not slow.',
        read_only=True))
    pairing_buffer: int = field(default=10, metadata=param(
        'roi mode: images and detections kept while waiting for their partner.', min=1,
        max=200, read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


def roi_boxes(results: FrameDetections, labels: tuple[str, ...] | None,
              classes: tuple[str, ...], padding: float) -> np.ndarray:
    """The regions to read: the boxes of the wanted classes, grown by ``padding``.

    Args:
        results: the detections of one image.
        labels: class names (None: classes are matched by their decimal ids).
        classes: wanted class names; empty = all.
        padding: fraction of each box's width/height added on every side.

    Returns:
        (N, 4) float64 ``[x1, y1, x2, y2]``, one row per detection (unwanted ones NaN, so that a
        line's ``region`` is the detection's index; the reader skips NaN boxes).
    """
    dets = results.detections
    boxes = np.array(dets.boxes, np.float64).reshape(-1, 4)
    if classes:
        wanted = set(classes)
        keep = np.array([class_name(int(c), labels) in wanted for c in dets.class_ids], bool)
        boxes[~keep] = np.nan
    if padding > 0 and len(boxes):
        grow = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1) * padding
        boxes[:, :2] -= grow
        boxes[:, 2:] += grow
    return boxes


class OcrNode(EdgeVisionNode):
    """Text reading node (see the module docstring)."""

    PARAMETERS = (('', TextReaderOptions), ('', OcrConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('ocr_node', **kwargs)
        self._reader: TextReader | None = None
        self._out = None
        self._image = None
        self._timer = StageTimer()
        self._rate = RateMeter()
        self.frames = 0
        self.lines_published = 0
        self.empty_frames = 0
        self.images_too_small = 0
        self.lines_dropped = 0
        self.lines_rejected = 0
        self.regions_read = 0
        self._mode = ''

    # -- parameters --------------------------------------------------------------------------

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if isinstance(config, TextReaderOptions) and self._reader is not None:
            self._reader.update_options(config)

    # -- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            reader = TextReader.create(self.config(TextReaderOptions))
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        cfg = self.config(OcrConfig)
        if cfg.warmup:
            try:
                reader.warmup()
            except EdgeVisionError as exc:
                reader.close()
                return self.fail(f'configure: the text models do not run: {exc}')
        self._reader = reader
        self._mode = cfg.mode
        qos = self.config(QosConfig)
        self._out = self.add_output('text', _text_array_type(), frame_text_to_msg,
                                    results_qos(),
                                    event_callbacks=publisher_event_callbacks(self, 'text'))
        if cfg.mode == 'roi':
            self.add_synced_input('image', 'detections', self._on_detections, image='required',
                                  encoding='bgr8', capacity=cfg.pairing_buffer,
                                  image_qos=stream_subscriber_qos(qos))
        else:
            self._image = self.add_input('image', Image, lambda msg: image_to_frame(msg, 'bgr8'),
                                         self._on_image, stream_subscriber_qos(qos),
                                         mailbox=True)
        self.get_logger().info(f'configured: {reader!r}, mode {cfg.mode}')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._stop_mailboxes()  # no read may run while the models close
        self._close_reader()
        self._image = None
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        super().release()
        self._close_reader()

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # -- inputs ------------------------------------------------------------------------------

    def _on_image(self, frame: Frame) -> None:
        self._read(frame, None)

    def _on_detections(self, frame: Frame, results: FrameDetections,
                       labels: tuple[str, ...] | None) -> None:
        cfg = self.config(OcrConfig)
        boxes = roi_boxes(results, labels, cfg.roi_classes, cfg.roi_padding)
        usable = np.isfinite(boxes).all(axis=1)
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        small = usable & (sides < cfg.min_image_size)
        self.images_too_small += int(small.sum())
        boxes[small] = np.nan
        self.regions_read += int((usable & ~small).sum())
        self._read(frame, boxes)

    def _read(self, frame: Frame, regions: np.ndarray | None) -> None:
        reader = self._reader
        if reader is None:
            return
        image = frame.image
        height, width = image.shape[:2]
        lines: tuple = ()
        if min(height, width) < self.config(OcrConfig).min_image_size:
            self.images_too_small += 1
        elif regions is None or np.isfinite(regions).all(axis=1).any():
            result = reader.read_result(image, regions)
            stats = result.stats
            self._timer.add('det', stats.det_ms)
            self._timer.add('rec', stats.cls_ms + stats.rec_ms)
            self.lines_dropped += stats.dropped
            self.lines_rejected += stats.rejected
            lines = tuple(result.lines)
        self.frames += 1
        self.empty_frames += not lines
        self.lines_published += len(lines)
        self._rate.tick()
        self._out.emit(FrameText(frame.meta, lines, (width, height)))

    # -- diagnostics -------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values.update(fps=self._rate.rate(), frames=self.frames,
                      lines_published=self.lines_published, empty_frames=self.empty_frames,
                      images_too_small=self.images_too_small, lines_dropped=self.lines_dropped,
                      lines_rejected=self.lines_rejected)
        if self._mode == 'roi':
            values['regions_read'] = self.regions_read
        values.update(self._timer.percentile_values())
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = dict(self.stats())
        reader = self._reader
        if reader is None:
            return ERROR if self.last_error else OK, \
                self.last_error or self.lifecycle_state, values
        backend = reader.detector_model.backend
        values.update(models=repr(reader), backend=backend.name, device=backend.device)
        values['hardware_id'] = f'{backend.name}:{backend.device}'
        if self.processing_errors:
            return WARN, f'reading errors: {self.last_error}', values
        return OK, self.lifecycle_state, values


def _text_array_type() -> type:
    """``edge_vision_msgs/TextArray`` (imported here: the interface package is built by
    ``make setup`` or colcon, and the other nodes work without it)."""
    from edge_vision_msgs.msg import TextArray

    return TextArray


def main(args: list[str] | None = None) -> int:
    return run_node(OcrNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
