"""overlay_node: an annotated image for rviz — boxes, classes, scores, track ids and trails,
an optional anomaly heatmap blend, and a small HUD with the rate and the latency.

Subscribes (relative names; remap to choose the sources):

- ``image`` (sensor_msgs/Image; bgr8, rgb8, mono8 and the other encodings of
  :mod:`edge_vision_core.encodings` are converted to bgr8) — the frames the results refer to;
- ``tracks`` (vision_msgs/Detection2DArray) — remap to ``detections`` without a tracker;
- ``label_info`` (vision_msgs/LabelInfo, transient local) — class names;
- ``anomaly/heatmap`` (sensor_msgs/Image, 32FC1 or mono8) when ``show_anomaly`` is true;
- ``mask`` (sensor_msgs/Image, mono8/mono16 class id per pixel: inference_node's segmentation
  output) when ``show_mask`` is true: blended in one colour per class (background 0 left
  clear), paired with the image of the same stamp (else the newest within ``mask_max_age_s``);
  a mask of another size than its image is not drawn and counted (``masks_mismatched``);
  with ``publish_instances`` the mask of the *same stamp* and the results also give per-detection
  instance masks: outlined in each result's colour and published on ``instance_mask``;
- ``text`` (edge_vision_msgs/TextArray, RELIABLE: ocr_node's lines) when ``show_text`` is true:
  each line's outline and what was read, from the message of the image's stamp (else the newest
  within ``text_max_age_s``: reading is slower than the camera);
- ``image/camera_info`` (sensor_msgs/CameraInfo) when ``publish_markers`` is true: the
  calibration of ``image`` (preprocess publishes it; remap to ``camera_info`` when the overlay
  reads ``image_raw``). In a composed pipeline frames carry their calibration.

``image``, ``tracks`` and ``label_info`` are one synchronised input (:mod:`edge_vision.synced`):
results are drawn on the image with the *same stamp* (exact-time pairing; unmatched items are
counted in diagnostics). In a composed pipeline whose results carry their frame, the overlay
takes that frame and receives no second copy of the images.

Publishes, lazily (only while a topic has subscribers, e.g. rviz with
``config/edge_vision.rviz``), with the header of the source image:

- ``image_annotated`` (sensor_msgs/Image, bgr8);
- ``instance_mask`` (sensor_msgs/Image) when ``publish_instances`` is true: the instance image of
  the results and the class mask of one stamp, with the header of that ``tracks`` message
  (same stamp and frame_id as its image): pixel value ``i + 1`` = the pixels of detection ``i``
  of that Detection2DArray (message order), 0 = none; mono8 below 255 detections, else mono16
  (:mod:`edge_vision_core.segmentation` documents the convention). A result owns the mask
  pixels of its own class name (``mask_labels`` names the mask's class ids); the higher score
  wins overlaps. A mask whose ids ``mask_labels`` does not know is counted
  (``instances_failed``), not published;
- ``markers`` (visualization_msgs/MarkerArray) when ``publish_markers`` is true: every result as
  a rectangle at ``marker_depth_m`` in the image's optical frame and a text label, for rviz's
  3-D view (:func:`edge_vision.conversions.detections_to_markers`). A monocular detector
  measures no depth: the rectangles show direction and angular size. Without a calibration the
  rays use a camera of ``marker_hfov_deg`` field of view (diagnostics say which).

Parameters: :class:`OverlayConfig`, ``qos.*``, ``autostart``, ``diagnostics_period``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from edge_vision_core import CameraModel, ConversionError, EdgeVisionError, Frame, FrameDetections
from edge_vision_core.config import check_config, param
from edge_vision_core.inference.ocr import FrameText
from edge_vision_core.segmentation import instance_encoding, instance_image
from edge_vision_core.timing import RateMeter, StageTimer
from edge_vision_core.viz import (
    TrailHistory,
    blend_class_mask,
    blend_heatmap,
    draw_detections,
    draw_hud,
    draw_instance_outlines,
    draw_text_lines,
)

from .conversions import (
    camera_info_to_model,
    detections_to_markers,
    frame_to_image,
    image_to_frame,
    meta_to_header,
    msg_to_frame_text,
)
from .node_base import OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import (
    QosConfig,
    publisher_event_callbacks,
    results_qos,
    stream_publisher_qos,
    stream_subscriber_qos,
)

__all__ = ['OverlayConfig', 'OverlayNode', 'main']


@dataclass(frozen=True)
class OverlayConfig:
    """What overlay_node draws."""

    trail_length: int = field(default=20, metadata=param(
        'Points in each track\'s trail (0 = no trails).', min=0, max=500))
    show_hud: bool = field(default=True, metadata=param(
        'Draw the HUD (rate, latency, object count) in the top-left corner.'))
    show_anomaly: bool = field(default=False, metadata=param(
        'Subscribe to anomaly/heatmap and blend it over the image.', read_only=True))
    heatmap_alpha: float = field(default=0.4, metadata=param(
        'Opacity of the anomaly heatmap.', min=0.0, max=1.0))
    heatmap_max_age_s: float = field(default=1.0, metadata=param(
        'Ignore heatmaps older than this relative to the frame.', min=0.0, max=60.0,
        unit='s'))
    show_mask: bool = field(default=False, metadata=param(
        'Subscribe to mask (a segmentation class mask) and blend it over the image.',
        read_only=True))
    publish_instances: bool = field(default=False, metadata=param(
        'With show_mask: outline each result\'s own pixels of the mask with the same stamp and '
        'publish them as instance_mask (pixel = index + 1 of the result in its '
        'Detection2DArray).', read_only=True))
    mask_labels: tuple[str, ...] = field(default=('background', 'person'), metadata=param(
        'Class names of the mask\'s ids (the segmentation model\'s labels, e.g. '
        'selfie-segmentation\'s), matched with the results\' class names for instances.'))
    mask_alpha: float = field(default=0.5, metadata=param(
        'Opacity of the segmentation classes.', min=0.0, max=1.0))
    mask_max_age_s: float = field(default=0.5, metadata=param(
        'Without a mask of the image\'s stamp, use the newest one at most this much older or '
        'newer (0 = same stamp only).', min=0.0, max=60.0, unit='s'))
    show_text: bool = field(default=False, metadata=param(
        'Subscribe to text (edge_vision_msgs/TextArray from ocr_node) and draw the lines '
        'read.', read_only=True))
    text_max_age_s: float = field(default=1.0, metadata=param(
        'Without text of the image\'s stamp, draw the newest at most this much older or newer '
        '(0 = same stamp only).', min=0.0, max=60.0, unit='s'))
    publish_markers: bool = field(default=True, metadata=param(
        'Publish markers (visualization_msgs/MarkerArray) of the results for 3-D views; '
        'built only while someone subscribes.', read_only=True))
    marker_depth_m: float = field(default=3.0, metadata=param(
        'Assumed distance of the objects for the markers (no depth is measured).', min=0.05,
        max=1000.0, unit='m'))
    marker_hfov_deg: float = field(default=60.0, metadata=param(
        'Horizontal field of view assumed for the markers while no calibration is known.',
        min=1.0, max=179.0, unit='deg'))
    marker_lifetime_s: float = field(default=1.0, metadata=param(
        'Markers disappear this long after their frame unless replaced (0 = never).',
        min=0.0, max=3600.0, unit='s'))
    pairing_buffer: int = field(default=10, metadata=param(
        'Images and result messages kept while waiting for their partner.', min=1,
        max=200, read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


class OverlayNode(EdgeVisionNode):
    """Draws results over images (see the module docstring)."""

    PARAMETERS = (('', OverlayConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('overlay_node', **kwargs)
        self._trails = TrailHistory()
        self._rate = RateMeter()
        self._timer = StageTimer()
        self._heatmap: Frame | None = None
        self._port = None
        self._masks: collections.deque[Frame] = collections.deque(maxlen=10)
        self._texts: collections.deque[FrameText] = collections.deque(maxlen=10)
        self.masks_mismatched = 0
        self.texts_drawn = 0
        self.instances_failed = 0
        self._instances = None
        self._out = None
        self._markers = None
        self._camera: CameraModel | None = None
        self._marker_camera = 'none yet'
        self.drawn = 0
        self._latency_ms = float('nan')

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        cfg = self.config(OverlayConfig)
        qos = self.config(QosConfig)
        self._trails = TrailHistory(max(1, cfg.trail_length))
        self._out = self.add_output(
            'image_annotated', Image, frame_to_image, stream_publisher_qos(qos),
            event_callbacks=publisher_event_callbacks(self, 'image_annotated'))
        self._port = self.add_synced_input('image', 'tracks', self._draw, image='required',
                                           encoding='bgr8', capacity=cfg.pairing_buffer,
                                           replace_labels=True,
                                           image_qos=stream_subscriber_qos(qos))
        if cfg.show_anomaly:
            self.add_input('anomaly/heatmap', Image, image_to_frame, self._on_heatmap,
                           stream_subscriber_qos(qos))
        if cfg.show_mask:
            self._masks = collections.deque(maxlen=cfg.pairing_buffer)
            self.add_input('mask', Image, _mask_frame, self._masks.append,
                           stream_subscriber_qos(qos))
            if cfg.publish_instances:
                self._instances = self.add_output(
                    'instance_mask', Image, frame_to_image, stream_publisher_qos(qos),
                    event_callbacks=publisher_event_callbacks(self, 'instance_mask'))
        if cfg.show_text:
            from edge_vision_msgs.msg import TextArray  # built by make setup / colcon

            self._texts = collections.deque(maxlen=cfg.pairing_buffer)
            self.add_input('text', TextArray, msg_to_frame_text, self._texts.append,
                           results_qos())
        if cfg.publish_markers:
            self._markers = self.add_output(
                'markers', MarkerArray, self._markers_msg, results_qos(),
                event_callbacks=publisher_event_callbacks(self, 'markers'))
            self.add_input('image/camera_info', CameraInfo, camera_info_to_model,
                           self._on_camera_info, stream_subscriber_qos(qos), linkable=False,
                           watch=False)
        return TransitionCallbackReturn.SUCCESS

    # -- inputs ----------------------------------------------------------------------------

    def _on_heatmap(self, heatmap: Frame) -> None:
        self._heatmap = heatmap  # 32FC1 or mono8, over DDS or linked in process

    def _on_camera_info(self, model: CameraModel) -> None:
        self._camera = model

    # -- drawing ---------------------------------------------------------------------------

    def _draw(self, frame: Frame, results: FrameDetections,
              labels: tuple[str, ...] | None) -> None:
        cfg = self.config(OverlayConfig)
        with self._timer.stage('draw'):
            image = np.array(frame.image, copy=True)  # bgr8; never draw on a shared frame
            heat = self._heatmap
            if cfg.show_anomaly and heat is not None and \
                    abs(frame.meta.stamp_ns - heat.meta.stamp_ns) <= cfg.heatmap_max_age_s * 1e9:
                blend_heatmap(image, heat.image, cfg.heatmap_alpha, 0.0, None)
            mask = _newest_for(self._masks, frame, cfg.mask_max_age_s) if cfg.show_mask \
                else None
            instances = None
            if mask is not None:
                if mask.image.shape != image.shape[:2]:
                    self.masks_mismatched += 1
                else:
                    blend_class_mask(image, mask.image, cfg.mask_alpha)
                    if self._instances is not None and \
                            mask.meta.stamp_ns == results.meta.stamp_ns:
                        instances = self._instance_image(results, labels, mask, image)
            self._trails.update(results.detections)
            draw_detections(image, results.detections, labels,
                            self._trails if cfg.trail_length > 0 else None)
            text = _newest_for(self._texts, frame, cfg.text_max_age_s) if cfg.show_text \
                else None
            if text is not None:
                self.texts_drawn += 1
                draw_text_lines(image, [(line.polygon, line.text) for line in text.lines])
            self._rate.tick()
            self._latency_ms = (self.get_clock().now().nanoseconds - frame.meta.stamp_ns) / 1e6
            if cfg.show_hud:
                draw_hud(image, [
                    f'{self._rate.rate():5.1f} fps  latency {self._latency_ms:5.1f} ms',
                    f'{len(results.detections)} objects'])
        self.drawn += 1
        self._out.emit(Frame(image, frame.meta, 'bgr8', frame.camera))
        if instances is not None:
            self._instances.emit(instances)
        if self._markers is not None:
            self._markers.emit((frame, results, labels))

    def _instance_image(self, results: FrameDetections, labels: tuple[str, ...] | None,
                        mask: Frame, image: np.ndarray) -> Frame | None:
        """The instance image of ``results`` and the class mask of their stamp, outlined on
        ``image``; None (counted) when the mask's ids are not in ``mask_labels``."""
        try:
            inst = instance_image(results.detections, mask.image, labels,
                                  self.config(OverlayConfig).mask_labels)
        except EdgeVisionError as exc:
            self.instances_failed += 1
            self.last_error = str(exc)
            self.get_logger().error(f'instance_mask: {exc}', throttle_duration_sec=5.0)
            return None
        draw_instance_outlines(image, inst, results.detections)
        return Frame(inst, results.meta, instance_encoding(len(results.detections)))

    def _marker_model(self, frame: Frame) -> CameraModel:
        """The calibration the markers use: the frame's, the last camera_info's (rescaled to
        the frame), else an assumed field of view."""
        width, height = frame.width, frame.height
        for model in (frame.camera, self._camera):
            if model is not None and model.is_calibrated:
                self._marker_camera = 'calibrated'
                if (model.width, model.height) == (width, height):
                    return model
                return model.scaled(width, height)
        hfov = self.config(OverlayConfig).marker_hfov_deg
        self._marker_camera = f'assumed {hfov:g} deg horizontal field of view'
        return CameraModel.assumed(width, height, hfov)

    def _markers_msg(self, item: tuple[Frame, FrameDetections, tuple[str, ...] | None]
                     ) -> MarkerArray:
        frame, results, labels = item
        cfg = self.config(OverlayConfig)
        return detections_to_markers(results.detections, self._marker_model(frame),
                                     cfg.marker_depth_m, meta_to_header(frame.meta), labels,
                                     cfg.marker_lifetime_s)

    def stats(self) -> dict[str, float]:
        timing = self._timer.summary().get('draw', {})
        values = super().stats()
        values.update(fps=self._rate.rate(), frames_drawn=self.drawn,
                      latency_ms=self._latency_ms, draw_ms_p50=timing.get('p50', 0.0),
                      labels=len(self._port.labels) if self._port is not None else 0)
        if self._port is not None and self.config(OverlayConfig).show_mask:
            values['masks_mismatched'] = self.masks_mismatched
        if self._port is not None and self.config(OverlayConfig).show_text:
            values['texts_drawn'] = self.texts_drawn
        if self._instances is not None:
            values.update(instances_failed=self.instances_failed,
                          instances_published=self._instances.published)
        if self._markers is not None:
            values['markers_published'] = self._markers.published
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = dict(self.stats())
        if self._markers is not None:
            values['marker_camera'] = self._marker_camera
        dropped, paired = values.get('unpaired_dropped', 0), values.get('paired', 0)
        if dropped > paired and dropped > 10:
            return WARN, 'most images and results do not pair: do their stamps match?', values
        return OK, self.lifecycle_state, values


def _newest_for(items: collections.deque, frame: Frame, max_age_s: float):
    """The item (a mask Frame, a FrameText) of ``frame``'s stamp, else the newest one at most
    ``max_age_s`` from it, else None."""
    kept = list(items)
    stamp = frame.meta.stamp_ns
    exact = [item for item in kept if item.meta.stamp_ns == stamp]
    if exact:
        return exact[-1]
    if kept and max_age_s > 0 and abs(kept[-1].meta.stamp_ns - stamp) <= max_age_s * 1e9:
        return kept[-1]
    return None


def _mask_frame(msg: Image) -> Frame:
    """A class-mask message as a Frame of (H, W) class ids (mono8/mono16, 8UC1/16UC1)."""
    frame = image_to_frame(msg)
    if frame.image.ndim != 2 or frame.image.dtype.kind != 'u':
        raise ConversionError(f'mask must be mono8 or mono16 class ids, got encoding '
                              f'{msg.encoding!r}')
    return frame


def main(args: list[str] | None = None) -> int:
    return run_node(OverlayNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
