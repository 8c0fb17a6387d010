"""privacy_node: faces and/or persons hidden before an image leaves the device; fails closed.

Subscribes (relative names):

- ``image`` (sensor_msgs/Image, best effort, newest frame only; bgr8, rgb8, mono8 and the other
  encodings of :mod:`edge_vision_core.encodings` are converted to bgr8): the images to filter.
  Over DDS the filter runs in a worker thread on the newest frame (a mailbox input: frames
  replaced before the filter took them are counted in ``inputs_dropped``); in a composed
  pipeline the in-process link is that worker.
- with ``use_detections``: ``image``, ``detections`` (vision_msgs/Detection2DArray) and
  ``label_info`` as one synchronised input (:mod:`edge_vision.synced`: each detections message
  with the image of the same stamp; in a composed pipeline the frame the detections carry):
  faces are the detections of class ``face`` (inference_node ``model:=face``) and person boxes
  those of class ``person_class``, instead of the filter running its own detector for them
  (the person mask still comes from its segmenter). Labels without the class it needs, or no
  labels yet, withhold the frame (a detector of other classes must not let faces through).
  An image whose detections never come is never published.

Publishes (relative names), with the header of the input image (same stamp and frame_id):

- ``image_private`` (sensor_msgs/Image, bgr8): the anonymized image;
- ``image_private/compressed`` (sensor_msgs/CompressedImage, JPEG, compressed_image_transport's
  format string) when ``publish_compressed`` is true, encoded only while someone subscribes.

What it hides and how: :class:`edge_vision_core.privacy.PrivacyConfig` (``hide`` faces, persons
or faces+persons; ``method`` blur, pixelate or fill; ``strength``, ``margin``, ``min_score``;
the face model, the person segmentation model...). The models load in ``configure``.

**Fails closed.** An image is published only after the filter ran on it and succeeded. It is
*withheld* (never published unfiltered), counted in ``frames_withheld`` and by reason
(``withheld_<reason>``), and said in the log and ``/diagnostics`` (ERROR) when:

- the node is not configured or not active (its model is missing, corrupt or not loaded:
  configure fails and nothing is subscribed, so nothing is published);
- the filter fails on the image (a model error, a mask of another size, class ids the labels
  do not know, a non-finite box: :class:`edge_vision_core.privacy.PrivacyFilter`);
- the message cannot be read (an empty image, an unknown encoding): ``bad_messages``;
- the node falls behind: a frame older than ``max_latency_s`` (node clock minus the image's
  stamp) when the filter takes it or when its result is ready (``withheld_late``);
- the filter stalls: nothing comes out while images keep arriving for ``max_latency_s``
  (``stalled`` in diagnostics; the frames meanwhile are replaced, then late).

Wiring (``detect.launch.py privacy:=faces``, ``edge-vision run --privacy faces``): the overlay
reads ``image_private`` instead of ``image``, so ``image_annotated``, the recorder's video and
the MQTT bridge's snapshots carry anonymized images only, and the camera's
``image_raw/compressed`` is turned off (``image_private/compressed`` replaces it). Raw
``image_raw``/``image`` stay on DDS for the stages that analyse them: keep DDS discovery on this
machine (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) so they do not leave it.

Parameters: :class:`edge_vision_core.privacy.PrivacyConfig`, :class:`PrivacyNodeConfig`,
``qos.*``, ``autostart``, ``diagnostics_period``. What, how, strength, margin and min score
can change at runtime (between two frames); models are read-only.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field

from sensor_msgs.msg import CompressedImage, Image

from edge_vision_core import ConfigError, EdgeVisionError, Frame, FrameDetections
from edge_vision_core.config import check_config, param
from edge_vision_core.privacy import PrivacyConfig, PrivacyFilter
from edge_vision_core.timing import RateMeter, StageTimer

from .conversions import frame_to_compressed, frame_to_image, image_to_frame
from .node_base import ERROR, OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import QosConfig, publisher_event_callbacks, stream_publisher_qos, stream_subscriber_qos

__all__ = ['PrivacyNode', 'PrivacyNodeConfig', 'main']

#: the output topic (the stages that send images off the device read it when privacy is on).
OUTPUT_TOPIC = 'image_private'


@dataclass(frozen=True)
class PrivacyNodeConfig:
    """privacy_node settings besides the filter's."""

    max_latency_s: float = field(default=0.5, metadata=param(
        'Withhold a frame older than this (node clock minus its stamp) when the filter takes '
        'it or when its result is ready: a filter that falls behind publishes nothing rather '
        'than stale frames; also how long nothing may come out while images arrive before '
        'diagnostics say stalled. 0 disables the age check (bags replayed without '
        'use_sim_time carry old stamps).', min=0.0, max=3600.0, unit='s'))
    publish_compressed: bool = field(default=True, metadata=param(
        'Offer image_private/compressed (JPEG); frames are encoded only while it has '
        'subscribers.', read_only=True))
    jpeg_quality: int = field(default=80, metadata=param(
        'JPEG quality of image_private/compressed.', min=1, max=100, read_only=True))
    use_detections: bool = field(default=False, metadata=param(
        'Take faces (class face) and person boxes (class person_class) from the graph\'s '
        'detections of the same stamp instead of running the face / person detector here '
        '(inference_node must run that model); the person mask still comes from '
        'person_model.', read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


def _reason_key(reason: str) -> str:
    """A short stable counter name for a withholding reason (an exception type name)."""
    return 'withheld_' + re.sub(r'(?<!^)(?=[A-Z])', '_', reason).lower()


class PrivacyNode(EdgeVisionNode):
    """Anonymizing filter node (see the module docstring)."""

    PARAMETERS = (('', PrivacyConfig), ('', PrivacyNodeConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('privacy_node', **kwargs)
        self._filter: PrivacyFilter | None = None
        self._image = None
        self._out = self._out_compressed = None
        self._rate = RateMeter()
        self._timer = StageTimer()
        self.published = 0
        self.withheld_late = 0
        self.withheld_no_filter = 0
        self.withheld_no_results = 0
        self._port = None
        self.last_withheld = ''
        self.withholding = False  # the latest frame was withheld
        self._last_done = time.monotonic()

    # -- parameters --------------------------------------------------------------------------

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if isinstance(config, PrivacyConfig) and self._filter is not None:
            if config.hide != self._filter.config.hide:
                # other models would be needed: refuse rather than run half a filter
                raise ConfigError('hide selects the models, loaded at configure: set it, then '
                                  '`ros2 lifecycle set` deactivate, cleanup, configure, '
                                  'activate')
            self._filter.config = config  # read on every apply: lands between two frames
            if 'min_score' in changed:  # the detectors drop boxes below their own threshold
                for detector in (self._filter.face_detector, self._filter.person_detector):
                    if detector is not None:
                        detector.update_options(dataclasses.replace(
                            detector.options, score_threshold=config.min_score))

    # -- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            privacy = self._create_filter(self.config(PrivacyConfig),
                                          self.config(PrivacyNodeConfig).use_detections)
        except EdgeVisionError as exc:
            return self.fail(f'configure: the privacy filter cannot start, so no image will '
                             f'be published: {exc}')
        self._filter = privacy
        cfg = self.config(PrivacyNodeConfig)
        qos = self.config(QosConfig)
        self._out = self.add_output(
            OUTPUT_TOPIC, Image, frame_to_image, stream_publisher_qos(qos),
            event_callbacks=publisher_event_callbacks(self, OUTPUT_TOPIC))
        if cfg.publish_compressed:
            quality = cfg.jpeg_quality
            self._out_compressed = self.add_output(
                f'{OUTPUT_TOPIC}/compressed', CompressedImage,
                lambda frame: frame_to_compressed(frame, 'jpeg', quality),
                stream_publisher_qos(qos))
        if cfg.use_detections:
            self._port = self.add_synced_input('image', 'detections', self._on_detections,
                                               image='required', encoding='bgr8',
                                               replace_labels=True,
                                               image_qos=stream_subscriber_qos(qos))
            self._image = self._port.results_spec  # arrivals: one per frame
        else:
            self._image = self.add_input('image', Image,
                                         lambda msg: image_to_frame(msg, 'bgr8'),
                                         self._on_image, stream_subscriber_qos(qos),
                                         mailbox=True)
        self.get_logger().info(f'configured: {privacy!r}'
                               + (', faces/person boxes from detections'
                                  if cfg.use_detections else ''))
        return TransitionCallbackReturn.SUCCESS

    @staticmethod
    def _create_filter(config: PrivacyConfig, use_detections: bool) -> PrivacyFilter:
        """The filter with the models it must run itself: all of them, or with detections
        from the graph only the person segmenter (when persons come from a mask)."""
        if not use_detections:
            return PrivacyFilter.create(config)
        if config.hides_persons and 'mask' in config.person_source:
            privacy = PrivacyFilter.create(dataclasses.replace(
                config, hide='persons', person_source='mask'))
            privacy.config = config
            return privacy
        return PrivacyFilter(config)

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._last_done = time.monotonic()
        return super().on_activate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._stop_mailboxes()  # no frame may be filtered while the models close
        self._close_filter()
        self._out = self._out_compressed = self._image = self._port = None
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        super().release()
        self._close_filter()

    def _close_filter(self) -> None:
        privacy, self._filter = self._filter, None
        if privacy is not None:
            privacy.close()

    # -- frames ------------------------------------------------------------------------------

    def _age_s(self, frame: Frame) -> float:
        return (self.get_clock().now().nanoseconds - frame.meta.stamp_ns) / 1e9

    def _too_old(self, frame: Frame, when: str) -> bool:
        limit = self.config(PrivacyNodeConfig).max_latency_s
        age = self._age_s(frame)
        if limit <= 0 or age <= limit:
            return False
        self.withheld_late += 1
        self._withhold(f'the frame is {age:.3f} s old {when} (max_latency_s {limit:g}): the '
                       f'filter is falling behind')
        return True

    def _withhold(self, reason: str) -> None:
        self.last_withheld = reason
        self.withholding = True
        self.get_logger().error(f'withheld a frame ({self.frames_withheld} so far): {reason}',
                                throttle_duration_sec=5.0)

    def _on_image(self, frame: Frame, **given: object) -> None:
        try:
            self._filter_frame(frame, **given)
        finally:
            self._last_done = time.monotonic()

    def _on_detections(self, frame: Frame, results: FrameDetections,
                       labels: tuple[str, ...] | None) -> None:
        try:
            given = self._given(results, labels)
        except ConfigError as exc:
            self.withheld_no_results += 1
            self._withhold(str(exc))
            return
        finally:
            self._last_done = time.monotonic()
        self._on_image(frame, **given)

    def _given(self, results: FrameDetections, labels: tuple[str, ...] | None
               ) -> dict[str, object]:
        """The faces / person boxes of one detections message, as PrivacyFilter.apply takes
        them.

        Raises:
            ConfigError: no labels, or labels without the class a hidden target needs.
        """
        cfg = self.config(PrivacyConfig)
        names = list(labels or results.labels or ())
        person_boxes = cfg.hides_persons and 'boxes' in cfg.person_source
        needed = (['face'] if cfg.hides_faces else []) + \
            ([cfg.person_class] if person_boxes else [])
        missing = [name for name in needed if name not in names]
        if missing:
            raise ConfigError(f'the detections\' labels have no class {", ".join(missing)} '
                              f'({len(names)} labels: {", ".join(names[:8])}): run '
                              f'inference_node with a model that finds it (model:=face for '
                              f'faces), or set use_detections false')
        dets = results.detections
        given: dict[str, object] = {}
        if cfg.hides_faces:
            face = names.index('face')
            given['faces'] = dets[dets.class_ids == face]
        if person_boxes:
            given.update(persons=dets, person_labels=tuple(names))
        return given

    def _filter_frame(self, frame: Frame, **given: object) -> None:
        privacy = self._filter
        if privacy is None:  # cleaned up under a frame in flight: nothing may pass
            self.withheld_no_filter += 1
            self._withhold('the privacy filter is not loaded')
            return
        if self._too_old(frame, 'when the filter took it'):
            return
        with self._timer.stage('filter'):
            result = privacy.apply(frame.image, **given)
        if result.withheld:
            self._withhold(result.reason)
            return
        if self._too_old(frame, 'after filtering'):
            return
        out = Frame(result.image, frame.meta, 'bgr8', frame.camera)
        self.withholding = False
        self._rate.tick()
        self.published += 1
        self._out.emit(out)
        if self._out_compressed is not None:
            self._out_compressed.emit(out)

    # -- diagnostics -------------------------------------------------------------------------

    @property
    def frames_withheld(self) -> int:
        """Frames that came in and did not go out filtered (any reason)."""
        filtered = self._filter.stats.withheld if self._filter is not None else 0
        return filtered + self.withheld_late + self.withheld_no_filter + \
            self.withheld_no_results + self.bad_messages

    def stalled_s(self) -> float:
        """Seconds the filter has produced nothing while images kept arriving (0: not)."""
        spec = self._image
        limit = self.config(PrivacyNodeConfig).max_latency_s if self._filter else 0.0
        if spec is None or limit <= 0 or self._active_since is None:
            return 0.0
        now = time.monotonic()
        idle = now - self._last_done
        arrived = spec.last_received is not None and now - spec.last_received < max(1.0, idle)
        return idle if arrived and idle > max(limit, 1.0) else 0.0

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values.update(fps=self._rate.rate(), frames_published=self.published,
                      frames_withheld=self.frames_withheld, withheld_late=self.withheld_late,
                      frames_received=self._image.received if self._image is not None else 0,
                      stalled_s=self.stalled_s())
        if self.withheld_no_filter:
            values['withheld_no_filter'] = self.withheld_no_filter
        if self._port is not None:
            values['withheld_no_results'] = self.withheld_no_results
        if self._filter is not None:
            stats = self._filter.stats
            values.update(frames_filtered=stats.passed)
            for reason, count in stats.reasons.items():
                values[_reason_key(reason)] = count
        values.update(self._timer.percentile_values())
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = dict(self.stats())
        if self._filter is None:
            why = (self.configure_error or self.last_error or self.lifecycle_state).splitlines()
            return ERROR, f'no privacy filter, nothing is published: {why[0]}', values
        values['filter'] = repr(self._filter)
        if self.last_withheld:
            values['last_withheld'] = self.last_withheld
        stalled = values.get('stalled_s', 0.0)
        if stalled:
            return ERROR, f'stalled: no filtered frame for {stalled:.1f} s while images arrive ' \
                          f'(nothing is published meanwhile)', values
        if self.withholding:
            return ERROR, f'withholding frames ({self.frames_withheld} so far): ' \
                          f'{self.last_withheld}', values
        if self.frames_withheld:
            return WARN, f'{self.frames_withheld} frame(s) withheld, the latest because: ' \
                         f'{self.last_withheld}', values
        return OK, self.lifecycle_state, values


def main(args: list[str] | None = None) -> int:
    return run_node(PrivacyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
