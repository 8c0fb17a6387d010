"""tracker_node: detections in, tracks with stable identities out.

Subscribes (relative names), through one synchronised input (:mod:`edge_vision.synced`):

- ``detections`` (vision_msgs/Detection2DArray, RELIABLE) — one message per image, empty arrays
  included (the tracker must see every frame to age its tracks);
- ``label_info`` (vision_msgs/LabelInfo, transient local) — optional: seeds the class names;
- ``image`` (sensor_msgs/Image, best effort), only when ``camera_motion`` is not ``none``:
  paired with the detections by exact stamp for camera-motion compensation (detections whose
  image does not arrive are dropped and counted). In a composed pipeline the detections carry
  their image and nothing is subscribed; without camera motion the tracker still passes such
  frames on with its tracks.

Publishes ``tracks`` (vision_msgs/Detection2DArray): the confirmed tracks matched in the image,
boxes in its pixels, ``Detection2D.id`` = the stable track id (decimal), the detection's class
and score in ``results[0]``, header copied from the detections (same stamp and frame_id as the
image).

Time: the tracker is advanced by the real time between stamps (a gap in the stream ages the
tracks accordingly); an out-of-order or repeated stamp is ignored with a throttled warning and
counted. A jump back by ``time_jump_reset_s`` or more (clock jump, a bag that loops, or one
bogus stamp far in the future before it) resets the tracks with a warning and is counted in
``time_resets``, so the tracker recovers. NaN/inf or zero-area boxes are dropped and counted.
Counters, live tracks and timing are in ``/diagnostics``.

Parameters: :class:`edge_vision_core.tracking.ByteTrackConfig` (every field; see
``config/tracker.yaml``), ``qos.*``, ``autostart``, ``diagnostics_period``.
"""

from __future__ import annotations

from vision_msgs.msg import Detection2DArray

from edge_vision_core import ConfigError, EdgeVisionError, Frame, FrameDetections
from edge_vision_core.timing import RateMeter, StageTimer
from edge_vision_core.tracking import ByteTrackConfig, ByteTracker

from .conversions import frame_detections_to_msg
from .node_base import OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import QosConfig, publisher_event_callbacks, results_qos
from .synced import SyncedInput

__all__ = ['TrackerNode', 'main']


class TrackerNode(EdgeVisionNode):
    """Multi-object tracking node (see the module docstring)."""

    PARAMETERS = (('', ByteTrackConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('tracker_node', **kwargs)
        self._tracker: ByteTracker | None = None
        self._port: SyncedInput | None = None
        self._rate = RateMeter()
        self._timer = StageTimer()
        self._out = None
        self._last_count = 0
        self._time_resets = 0

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if isinstance(config, ByteTrackConfig) and self._tracker is not None:
            if config.camera_motion != 'none' and self._port is not None and \
                    self._port.frame_topic() is None:
                raise ConfigError('camera_motion needs the image, which this tracker was '
                                  'configured without: set camera_motion, then `ros2 lifecycle '
                                  'set` cleanup and configure')
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
        # camera motion needs the image; without it, frames attached in process still pass on
        self._port = self.add_synced_input(
            'image', 'detections', self._on_detections, encoding='passthrough',
            image='required' if cfg.camera_motion != 'none' else 'attached')
        self._out = self.add_output('tracks', Detection2DArray, frame_detections_to_msg,
                                    results_qos(),
                                    event_callbacks=publisher_event_callbacks(self, 'tracks'),
                                    frames=self._port.frame_topic)
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._tracker = None
        self._port = None
        return super().on_cleanup(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        result = super().on_deactivate(state)
        if self._tracker is not None:
            self._tracker.reset(keep_id_counter=True)  # ids stay unique across restarts
            self._time_resets = 0
        return result

    # -- input -----------------------------------------------------------------------------

    def _on_detections(self, frame: Frame | None, item: FrameDetections,
                       labels: tuple[str, ...] | None) -> None:
        with self._timer.stage('update'):
            tracks = self._tracker.update(
                item.detections, timestamp_s=item.meta.seconds,
                image=frame.image if frame is not None else None)
        stats = self._tracker.stats
        if stats.time_resets != self._time_resets:
            self._time_resets = stats.time_resets
            self.get_logger().warning(
                f'detections stamped {item.meta.seconds:.6f} s jumped back by at least '
                f'{self._tracker.config.time_jump_reset_s:g} s (clock jump, looping bag or an '
                f'earlier bogus stamp): tracks reset ({stats.time_resets} so far)')
        if not self._tracker.last_update_accepted:
            self.get_logger().warning(
                f'ignored detections stamped {item.meta.seconds:.6f} s: not after the previous '
                f'stamp ({stats.ignored_stamps} ignored so far)', throttle_duration_sec=5.0)
            return
        self._last_count = len(tracks)
        self._rate.tick()
        self._out.emit(FrameDetections(item.meta, tracks, item.image_size, frame, labels))

    # -- stats -----------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values.update(fps=self._rate.rate(), tracks=self._last_count)
        if self._tracker is not None:
            stats = self._tracker.stats
            values.update(frames=stats.frames, ignored_stamps=stats.ignored_stamps,
                          time_resets=stats.time_resets,
                          dropped_invalid_boxes=stats.dropped_invalid,
                          tracks_started=stats.tracks_started,
                          camera_motion_failures=stats.camera_motion_failures,
                          live_tracks=len(self._tracker.tracks(include_tentative=True)))
        values.update(self._timer.percentile_values())
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = dict(self.stats())
        if values.get('ignored_stamps') or values.get('dropped_invalid_boxes'):
            return WARN, 'some input was ignored (see ignored_stamps / dropped_invalid_boxes)', \
                values
        return OK, self.lifecycle_state, values


def main(args: list[str] | None = None) -> int:
    return run_node(TrackerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
