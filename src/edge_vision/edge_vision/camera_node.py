"""camera_node: frames in, with acquisition stamps and calibration.

Publishes (relative names, so one namespace per camera, e.g. ``/camera0``):

- ``image_raw`` (sensor_msgs/Image, bgr8) and ``camera_info`` (sensor_msgs/CameraInfo) with
  identical headers: ``stamp`` = acquisition time (the node clock right after the frame was
  read; simulated time under ``use_sim_time``; a file played at ``rate`` -1 advances by at most
  one of its frame periods per frame, so a slow pipeline does not stretch its timeline),
  ``frame_id`` = the ``frame_id`` parameter; a recording (``source:=run.mcap`` or a bag
  folder) keeps its original stamps and frame_ids;
- ``image_raw/compressed`` (sensor_msgs/CompressedImage, JPEG, compressed_image_transport's
  format string) when ``publish_compressed`` is true, encoded only while someone subscribes;
- ``/diagnostics``: measured fps, frames published, corrupt frames skipped, reconnects, source
  errors (the last one named), the delay before the next retry, the source, its state.

QoS: image topics RELIABLE / KEEP_LAST ``qos.publisher_depth`` (REP-2003; ``qos.*``
parameters), ``camera_info`` the same. Mismatched subscribers are reported in the log.

Service: ``set_camera_info`` (sensor_msgs/srv/SetCameraInfo) stores a new calibration in the
``camera_info_url`` file (camera_info_manager YAML; ``file://`` URLs only) and publishes it
from the next frame on.

Parameters: ``source``, ``width``, ``height``, ``fps``, ``pixel_format``, ``loop`` (see
:class:`edge_vision_core.io.sources.SourceConfig`), :class:`CameraConfig` (``frame_id``,
``camera_name``, ``camera_info_url``, ``rate``, ``publish_compressed``, ``jpeg_quality``,
``reconnect_min_s``, ``reconnect_max_s``, ``max_frames``), ``qos.*``
(:class:`edge_vision.qos.QosConfig`), ``autostart`` and ``diagnostics_period``
(:mod:`edge_vision.node_base`). ``ros2 param describe`` shows each one's meaning and range.

Lifecycle: ``configure`` validates the parameters and loads the calibration; ``activate`` opens
the source and starts the capture thread; ``deactivate`` stops it and releases the device.

Faults: a missing or unplugged device, a deleted, replaced or truncated file, a folder emptied
of its images or a dropped stream is logged clearly, shown on ``/diagnostics`` (state
``reconnecting``, level ERROR, the reason) and retried with exponential backoff
(``reconnect_min_s`` .. ``reconnect_max_s``, reset by the next frame) until it comes back; the
stream then resumes by itself. An unreadable frame is skipped and counted; the end of a file
without ``loop`` stops the stream with a message (the node stays up and can be re-activated),
and so does ``max_frames`` published frames.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from sensor_msgs.srv import SetCameraInfo

from edge_vision_core import CameraModel, ConfigError, EdgeVisionError
from edge_vision_core.calibration.info_file import (
    load_camera_info,
    resolve_camera_info_url,
    save_camera_info,
)
from edge_vision_core.config import check_config, param
from edge_vision_core.io.sources import (
    CorruptFrameError,
    FrameSource,
    SourceConfig,
    SourceFrame,
    open_source,
)
from edge_vision_core.timing import Pacer, RateMeter
from edge_vision_core.types import Frame, FrameMeta

from .conversions import (
    camera_info_to_model,
    frame_to_camera_info,
    frame_to_compressed,
    frame_to_image,
)
from .node_base import ERROR, OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import QosConfig, publisher_event_callbacks, stream_publisher_qos

__all__ = ['CameraConfig', 'CameraNode', 'main']


@dataclass(frozen=True)
class CameraConfig:
    """camera_node settings besides the source (see the module docstring)."""

    frame_id: str = field(default='camera_optical_frame', metadata=param(
        'frame_id of image_raw and camera_info: the camera\'s optical frame (REP-103: z '
        'forward, x right, y down).'))
    camera_name: str = field(default='camera', metadata=param(
        'Camera name: ${NAME} in camera_info_url and camera_name in the calibration file.'))
    camera_info_url: str = field(default='', metadata=param(
        'Calibration file URL (file:///path.yaml, package://pkg/path.yaml; ${NAME} and '
        '${ROS_HOME} are substituted; empty = file://${ROS_HOME}/camera_info/${NAME}.yaml). A '
        'missing file means uncalibrated (K all zero, REP-104).'))
    rate: float = field(default=0.0, metadata=param(
        'Publishing rate: 0 = the source\'s own rate (a video\'s fps, a camera\'s pace, 30 for '
        'synthetic, 10 for image folders), > 0 = this rate (live sources drop frames to keep '
        'it), -1 = as fast as frames can be read (benchmarks).', min=-1.0, max=1000.0,
        unit='Hz'))
    publish_compressed: bool = field(default=True, metadata=param(
        'Offer image_raw/compressed (JPEG); frames are encoded only while it has subscribers.'))
    jpeg_quality: int = field(default=80, metadata=param(
        'JPEG quality of image_raw/compressed.', min=1, max=100))
    reconnect_min_s: float = field(default=0.5, metadata=param(
        'First retry delay after the source fails to open or drops out.', min=0.01,
        max=60.0, unit='s'))
    reconnect_max_s: float = field(default=10.0, metadata=param(
        'Longest retry delay (the delay doubles up to this).', min=0.01, max=3600.0, unit='s'))
    max_frames: int = field(default=0, metadata=param(
        'Stop the stream after publishing this many frames (like the end of a file: state '
        'finished; activate again for more); 0 = no limit.', min=0, max=2**31 - 1,
        read_only=True))

    def __post_init__(self) -> None:
        check_config(self)
        if -1.0 < self.rate < 0.0:
            raise ConfigError(f'CameraConfig.rate must be -1, 0 or positive, got {self.rate}')
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ConfigError('CameraConfig.reconnect_max_s must be >= reconnect_min_s')
        if not self.frame_id:
            raise ConfigError('CameraConfig.frame_id is empty; downstream transforms need the '
                              'camera\'s optical frame')


_DEFAULT_FOLDER_RATE = 10.0


class CameraNode(EdgeVisionNode):
    """The camera driver (see the module docstring)."""

    PARAMETERS = (('', SourceConfig), ('', CameraConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('camera_node', **kwargs)
        self._lock = threading.Lock()
        self._model: CameraModel | None = None
        self._info_path = None
        self._source: FrameSource | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._service = None
        self._last_stamp_ns = 0  # the latest frame's stamp (see _stamp_ns)
        self._file_step_ns = 0
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.frames_published = 0
        self.corrupt_frames = 0
        self.reconnects = 0
        self.source_errors = 0
        self.last_source_error = ''
        self.retry_in_s = 0.0
        self.state = 'idle'
        self._rate = RateMeter()
        self._size_warned = False

    # -- parameters ------------------------------------------------------------------------

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        live = isinstance(config, SourceConfig) or \
            changed & {'camera_info_url', 'camera_name', 'rate', 'publish_compressed'}
        if live and self._thread is not None:
            raise ConfigError(f'{", ".join(sorted(changed))} cannot change while streaming: '
                              f'deactivate, set, activate')

    # -- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            source_cfg, cfg = self.config(SourceConfig), self.config(CameraConfig)
            self._source = open_source(source_cfg)  # validates the spec; opens on activate
            self._load_calibration(cfg)
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        qos = stream_publisher_qos(self.config(QosConfig))
        self.add_output('image_raw', Image, frame_to_image, qos,
                        event_callbacks=publisher_event_callbacks(self, 'image_raw'))
        self.add_output('camera_info', CameraInfo, frame_to_camera_info, qos,
                        event_callbacks=publisher_event_callbacks(self, 'camera_info'))
        if cfg.publish_compressed:
            quality = cfg.jpeg_quality
            self.add_output('image_raw/compressed', CompressedImage,
                            lambda frame: frame_to_compressed(frame, 'jpeg', quality), qos)
        self._service = self.create_service(SetCameraInfo, 'set_camera_info',
                                            self.guard('set_camera_info',
                                                       self._set_camera_info))
        self.get_logger().info(f'configured: source {self._source.description}, frame_id '
                               f'{cfg.frame_id!r}, calibration {self._calibration_text()}')
        return TransitionCallbackReturn.SUCCESS

    def _load_calibration(self, cfg: CameraConfig) -> None:
        self._info_path = resolve_camera_info_url(cfg.camera_info_url, cfg.camera_name)
        if self._info_path.is_file():
            model, _ = load_camera_info(self._info_path)
            self._model = model
        else:
            self._model = None
            self.get_logger().warning(
                f'no calibration file at {self._info_path}: publishing an uncalibrated '
                f'CameraInfo (K all zero, REP-104). Calibrate with `edge-vision calibrate` or '
                f'the set_camera_info service')

    def _calibration_text(self) -> str:
        if self._model is None:
            return 'none (uncalibrated)'
        return f'{self._info_path} ({self._model.width}x{self._model.height})'

    def on_activate(self, state) -> TransitionCallbackReturn:
        self._reset_counters()
        self._stop.clear()
        self._thread = threading.Thread(target=self._capture_loop, name='camera_capture',
                                        daemon=True)
        self._thread.start()
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.release()
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self.release()
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        self._source = None
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if self._source is not None:
            self._source.close()
        self.state = 'stopped'

    # -- capture ---------------------------------------------------------------------------

    def _target_rate(self) -> float:
        rate = self.config(CameraConfig).rate
        if rate != 0:
            return rate
        native = self._source.native_fps if self._source is not None else None
        return native or _DEFAULT_FOLDER_RATE

    def _capture_loop(self) -> None:
        cfg = self.config(CameraConfig)
        source = self._source
        failures = 0  # consecutive failures since the last frame: the backoff exponent
        opened = False
        pacer: Pacer | None = None
        next_publish = 0.0
        self._last_stamp_ns = self._file_step_ns = 0
        while not self._stop.is_set() and self.context.ok():
            if not opened:
                try:
                    source.open()
                except EdgeVisionError as exc:
                    failures += 1
                    if self._wait_to_retry(cfg, failures, str(exc), 'retrying'):
                        break
                    continue
                opened = True
                self.state = 'streaming'
                rate = self._target_rate()
                pacer = Pacer(0.0 if source.live else rate)
                period = 1.0 / rate if rate > 0 else 0.0
                # A file or synthetic scene read as fast as the pipeline takes it (rate -1): at
                # most one of its own frame periods between stamps (see _stamp_ns).
                self._file_step_ns = 0 if source.live or cfg.rate >= 0 else int(
                    1e9 / (source.native_fps or _DEFAULT_FOLDER_RATE))
                self.get_logger().info(f'streaming from {source.description} at '
                                       f'{rate if rate > 0 else "max"} Hz')
            if cfg.max_frames and self.frames_published >= cfg.max_frames:
                self._finish(source, f'after max_frames={cfg.max_frames} frames of '
                                     f'{source.description}')
                return
            if self._stop.wait(pacer.next_delay()):
                break
            try:
                frame = source.read()
            except CorruptFrameError as exc:
                self.corrupt_frames += 1
                self.get_logger().warning(f'skipped a corrupt frame ({self.corrupt_frames} so '
                                          f'far): {exc}', throttle_duration_sec=5.0)
                continue
            except EdgeVisionError as exc:
                source.close()
                opened = False
                failures += 1
                self.source_errors += 1
                self.last_source_error = str(exc)
                if self._wait_to_retry(cfg, failures, str(exc), 'reopening'):
                    break
                continue
            if frame is None:
                early = getattr(source, 'ended_early', None)
                note = (f' (it declares {early[1]} frames: truncated or damaged)'
                        if early else '')
                self._finish(source, f'end of {source.description} after '
                                     f'{self.frames_published} frames{note}',
                             ' (set loop:=true to repeat)')
                return
            failures = 0
            self.retry_in_s = 0.0
            if source.live and period > 0:
                now = time.monotonic()
                if now < next_publish:
                    continue  # camera faster than the requested rate: drop this frame
                next_publish = max(next_publish + period, now)
            self._publish(frame, cfg)

    def _finish(self, source, what: str, hint: str = '') -> None:
        """The stream ends (end of a file, max_frames): state finished, source closed."""
        self.state = 'finished'
        self.get_logger().info(f'{what}; the stream stops here{hint}')
        source.close()

    def _wait_to_retry(self, cfg: CameraConfig, failures: int, error: str, action: str
                       ) -> bool:
        """Report a source failure and wait the backoff delay; True when stopping meanwhile."""
        delay = min(cfg.reconnect_max_s, cfg.reconnect_min_s * 2.0 ** min(failures - 1, 30))
        self.state = 'reconnecting'
        self.last_error = error
        self.retry_in_s = delay
        self.reconnects += 1
        self.get_logger().error(f'{error}; {action} in {delay:.1f} s',
                                throttle_duration_sec=max(5.0, delay))
        return self._stop.wait(delay)

    def _stamp_ns(self) -> int:
        """The acquisition stamp of the frame read now: the node clock, except that a file
        played at rate -1 never gets more than one of its own frame periods after the previous
        frame (nor a stamp in the future): when the pipeline runs slower than the file (a
        loaded machine, a slow model), time-based stages such as the tracker still see the
        file's time between its frames, not how long the pipeline stalled (a stall longer than
        the tracker's lost_timeout_s dropped every track)."""
        now = self.get_clock().now().nanoseconds
        last, step = self._last_stamp_ns, self._file_step_ns
        stamp = max(last + 1, min(now, last + step)) if step and last else now
        self._last_stamp_ns = stamp
        return stamp

    def _publish(self, source_frame: SourceFrame, cfg: CameraConfig) -> None:
        # a recording keeps its own stamps and frame_id; everything else is stamped now
        stamp = source_frame.stamp_ns
        meta = FrameMeta(self._stamp_ns() if stamp is None else stamp,
                         source_frame.frame_id or cfg.frame_id)
        height, width = source_frame.image.shape[:2]
        with self._lock:
            model = self._model
        if model is not None and (model.width, model.height) != (width, height):
            if not self._size_warned:
                self.get_logger().warning(
                    f'calibration is for {model.width}x{model.height} but frames are '
                    f'{width}x{height}: publishing it anyway; recalibrate at this size')
                self._size_warned = True
        frame = Frame(source_frame.image, meta, 'bgr8',
                      model or CameraModel.uncalibrated(width, height))
        for output in self.outputs:
            output.emit(frame)
        self.frames_published += 1
        self._rate.tick()

    # -- service ---------------------------------------------------------------------------

    def _set_camera_info(self, request: SetCameraInfo.Request,
                         response: SetCameraInfo.Response) -> SetCameraInfo.Response:
        cfg = self.config(CameraConfig)
        try:
            model = camera_info_to_model(request.camera_info)
            if cfg.camera_info_url.startswith('package://'):
                raise ConfigError(f'camera_info_url {cfg.camera_info_url!r} is inside a '
                                  f'package (read-only); use a file:// URL to store '
                                  f'calibrations')
            save_camera_info(self._info_path, model, cfg.camera_name)
        except EdgeVisionError as exc:
            response.success = False
            response.status_message = str(exc)
            self.get_logger().error(f'set_camera_info refused: {exc}',
                                    throttle_duration_sec=5.0)
            return response
        with self._lock:
            self._model = model
        self._size_warned = False
        response.success = True
        response.status_message = f'saved to {self._info_path}'
        self.get_logger().info(f'new calibration saved to {self._info_path}')
        return response

    # -- diagnostics -----------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values.update(fps=self._rate.rate(), frames_published=self.frames_published,
                      corrupt_frames_skipped=self.corrupt_frames, reconnects=self.reconnects,
                      source_errors=self.source_errors)
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = {
            'source': self._source.description if self._source else '',
            'state': self.state,
            **self.stats(),
            'calibrated': self._model is not None,
        }
        if self.last_source_error:
            values['last_source_error'] = self.last_source_error
        if self.state == 'reconnecting':
            values['retry_in_s'] = self.retry_in_s
            return ERROR, f'source unavailable: {self.last_error}', values
        if self.corrupt_frames:
            return WARN, f'{self.state}; {self.corrupt_frames} corrupt frames skipped', values
        return OK, f'{self.lifecycle_state}, {self.state}', values


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
