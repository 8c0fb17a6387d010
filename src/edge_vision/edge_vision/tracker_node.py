"""tracker_node: detections in, tracks with stable identities out.

Subscribes (relative names):

- ``detections`` (vision_msgs/Detection2DArray, RELIABLE) — one message per image, empty arrays
  included (the tracker must see every frame to age its tracks);
- ``label_info`` (vision_msgs/LabelInfo, transient local) — optional: seeds the class names;
- ``image`` (sensor_msgs/Image, best effort), only when ``camera_motion`` is not ``none``:
  paired with the detections by exact stamp for camera-motion compensation.

Publishes ``tracks`` (vision_msgs/Detection2DArray): the confirmed tracks matched in the image,
boxes in its pixels, ``Detection2D.id`` = the stable track id (decimal), the detection's class
and score in ``results[0]``, header copied from the detections (same stamp and frame_id as the
image).

Time: the tracker is advanced by the real time between stamps (a gap in the stream ages the
tracks accordingly); an out-of-order or repeated stamp is ignored with a throttled warning and
counted. NaN/inf or zero-area boxes are dropped and counted. Counters, live tracks and timing
are in ``/diagnostics``.

Parameters: :class:`edge_vision_core.tracking.ByteTrackConfig` (every field; see
``config/tracker.yaml``), ``qos.*``, ``autostart``, ``diagnostics_period``.
"""

from __future__ import annotations

from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from edge_vision_core import EdgeVisionError, Frame, FrameDetections
from edge_vision_core.sync import ExactTimeMatcher
from edge_vision_core.timing import RateMeter, StageTimer
from edge_vision_core.tracking import ByteTrackConfig, ByteTracker

from .conversions import (
    frame_detections_to_msg,
    image_to_frame,
)
from .node_base import OK, WARN, EdgeVisionNode, LabelTable, TransitionCallbackReturn, run_node
from .qos import (
    QosConfig,
    publisher_event_callbacks,
    results_qos,
    stream_subscriber_qos,
)

__all__ = ['TrackerNode', 'main']


class TrackerNode(EdgeVisionNode):
    """Multi-object tracking node (see the module docstring)."""

    PARAMETERS = (('', ByteTrackConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('tracker_node', **kwargs)
        self._tracker: ByteTracker | None = None
        self._labels = LabelTable()
        self._matcher: ExactTimeMatcher[Frame, FrameDetections] = ExactTimeMatcher()
        self._rate = RateMeter()
        self._timer = StageTimer()
        self._out = None
        self._last_count = 0

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if isinstance(config, ByteTrackConfig) and self._tracker is not None:
            # the tracker reads its config on every update: swap it in, keep the tracks
            self._tracker.config = config
            self.get_logger().info(f'tracker settings changed: {", ".join(sorted(changed))}')

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            cfg = self.config(ByteTrackConfig)
            self._tracker = ByteTracker(cfg)
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        qos = self.config(QosConfig)
        self._out = self.add_output('tracks', Detection2DArray, frame_detections_to_msg,
                                    results_qos(),
                                    event_callbacks=publisher_event_callbacks(self, 'tracks'))
        self._labels = self.add_results_input('detections', self._on_detections)
        if cfg.camera_motion != 'none':
            self.add_input('image', Image, image_to_frame, self._on_image,
                           stream_subscriber_qos(qos))
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._tracker = None
        return super().on_cleanup(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        if self._tracker is not None:
            self._tracker.reset(keep_id_counter=True)  # ids stay unique across restarts
        self._matcher.reset()
        return super().on_deactivate(state)

    # -- inputs ----------------------------------------------------------------------------

    def _on_image(self, frame: Frame) -> None:
        pair = self._matcher.add_a(frame.meta.stamp_ns, frame)
        if pair is not None:
            self._track(pair[1], pair[0])

    def _on_detections(self, item: FrameDetections) -> None:
        needs_image = self._tracker.config.camera_motion != 'none'
        if needs_image and item.frame is None:
            pair = self._matcher.add_b(item.meta.stamp_ns, item)
            if pair is not None:
                self._track(pair[1], pair[0])
            return
        self._track(item, item.frame)

    def _track(self, item: FrameDetections, frame: Frame | None) -> None:
        with self._timer.stage('update'):
            tracks = self._tracker.update(
                item.detections, timestamp_s=item.meta.seconds,
                image=frame.image if frame is not None else None)
        if not self._tracker.last_update_accepted:
            self.get_logger().warning(
                f'ignored detections stamped {item.meta.seconds:.6f} s: not after the previous '
                f'stamp ({self._tracker.stats.ignored_stamps} ignored so far)',
                throttle_duration_sec=5.0)
            return
        self._last_count = len(tracks)
        self._rate.tick()
        labels = self._labels.for_item(item)
        self._out.emit(FrameDetections(item.meta, tracks, item.image_size, frame, labels))

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = {'fps': self._rate.rate(), 'tracks': self._last_count}
        if self._tracker is not None:
            stats = self._tracker.stats
            values.update(frames=stats.frames, ignored_stamps=stats.ignored_stamps,
                          dropped_invalid_boxes=stats.dropped_invalid,
                          tracks_started=stats.tracks_started,
                          camera_motion_failures=stats.camera_motion_failures,
                          live_tracks=len(self._tracker.tracks(include_tentative=True)))
        values.update(self._timer.percentile_values())
        if self._matcher.dropped:
            values['unpaired_dropped'] = self._matcher.dropped
        if self._tracker is not None and (self._tracker.stats.ignored_stamps or
                                          self._tracker.stats.dropped_invalid):
            return WARN, 'some input was ignored (see ignored_stamps / dropped_invalid_boxes)', \
                values
        return OK, self.lifecycle_state, values


def main(args: list[str] | None = None) -> int:
    return run_node(TrackerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
