"""calibration_node: calibrate a camera from its live image stream.

Hold a chessboard or ChArUco board in front of the camera and move it around: the node keeps
views that add coverage (x, y, size and skew, like ROS camera_calibration's progress bars),
rejects blurred, moving, border-touching and redundant ones, and when coverage is complete (or
on request) solves for the camera model, writes the camera_info_manager YAML and, optionally,
sends it to the camera's ``set_camera_info`` service (:class:`edge_vision.services.ServiceCaller`:
waiting for it and sent again until answered; what the camera answers, or that it did not, is
logged).

Subscribes ``image`` (sensor_msgs/Image, best effort; remap it to the camera's ``image_raw``),
processed at most ``max_rate_hz`` times per second (the images skipped meanwhile are counted
in ``/diagnostics`` as ``skipped_for_rate``).

Publishes ``~/progress`` (diagnostic_msgs/DiagnosticArray, header of the latest image): views,
the four coverage bars, the verdict of the latest image (``accepted``, ``no_target``,
``blurred``, ``near_border``, ``moving``, ``redundant``, ``wrong_size``), and after a calibration
its RMS reprojection error and camera matrix. A wrong target (size, dictionary) is reported
there and in the log with what was seen ("did you mean 8x6?").

Services:

- ``~/calibrate`` (std_srvs/Trigger): solve now; the response says the RMS and where the file
  went, or why it failed (too few views, no target, ...);
- ``~/reset`` (std_srvs/Trigger): forget the views and start again.

Parameters: ``target.*`` (:class:`edge_vision_core.calibration.TargetConfig`),
``calibration.*`` (:class:`edge_vision_core.calibration.CalibratorConfig`),
:class:`CalibrationNodeConfig`, ``qos.*``, ``autostart``, ``diagnostics_period``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image
from sensor_msgs.srv import SetCameraInfo
from std_srvs.srv import Trigger

from edge_vision_core import EdgeVisionError, Frame
from edge_vision_core.calibration import (
    CalibrationResult,
    Calibrator,
    CalibratorConfig,
    TargetConfig,
    resolve_camera_info_url,
    save_camera_info,
)
from edge_vision_core.config import check_config, param

from .conversions import image_to_frame, meta_to_header, model_to_camera_info
from .node_base import OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import QosConfig, results_qos, stream_subscriber_qos
from .services import ServiceCaller

__all__ = ['CalibrationNode', 'CalibrationNodeConfig', 'main']


@dataclass(frozen=True)
class CalibrationNodeConfig:
    """Where the calibration goes and how often images are examined."""

    camera_name: str = field(default='camera', metadata=param(
        'Camera name written into the calibration file (and ${NAME} in output_url).'))
    output_url: str = field(default='', metadata=param(
        'Where to write the calibration (camera_info_manager URL rules: file:///path.yaml, '
        '${NAME}, ${ROS_HOME}; empty = file://${ROS_HOME}/camera_info/${NAME}.yaml).'))
    set_camera_info_service: str = field(default='', metadata=param(
        'After calibrating, also send the result to this sensor_msgs/SetCameraInfo service '
        '(e.g. /camera0/set_camera_info); empty = do not.'))
    max_rate_hz: float = field(default=4.0, metadata=param(
        'Examine at most this many images per second (detection costs a few ms each).',
        min=0.1, max=100.0, unit='Hz'))
    auto_calibrate: bool = field(default=True, metadata=param(
        'Calibrate as soon as coverage is complete (false: only on ~/calibrate).'))

    def __post_init__(self) -> None:
        check_config(self)


class CalibrationNode(EdgeVisionNode):
    """Live camera calibration (see the module docstring)."""

    PARAMETERS = (('target.', TargetConfig), ('calibration.', CalibratorConfig),
                  ('', CalibrationNodeConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('calibration_node', **kwargs)
        self._cal: Calibrator | None = None
        self._next_time = 0.0
        self.skipped_for_rate = 0  # images not examined because of max_rate_hz
        self._last_verdict = ''
        self._result: CalibrationResult | None = None
        self._saved_to = ''
        self._progress = None
        self._triggers = []
        self._service_caller = ServiceCaller(self)

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            self._cal = Calibrator(self.config(TargetConfig), self.config(CalibratorConfig))
            cfg = self.config(CalibrationNodeConfig)
            resolve_camera_info_url(cfg.output_url, cfg.camera_name)  # fail early on bad URLs
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        self._progress = self.add_output('~/progress', DiagnosticArray, lambda msg: msg,
                                         results_qos())
        self.add_input('image', Image, image_to_frame, self._on_image,
                       stream_subscriber_qos(self.config(QosConfig)))
        self._triggers = [
            self.create_service(Trigger, '~/calibrate',
                                self.guard('calibrate', self._on_calibrate)),
            self.create_service(Trigger, '~/reset', self.guard('reset', self._on_reset))]
        if cfg.set_camera_info_service:  # made now, so it is matched before the result comes
            self._service_caller.client(SetCameraInfo, cfg.set_camera_info_service)
        self.get_logger().info(f'looking for a {self._cal.target.describe()}')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        for service in self._triggers:
            self.destroy_service(service)
        self._triggers = []
        self._service_caller.close()
        self._cal = None
        return super().on_cleanup(state)

    # -- images ----------------------------------------------------------------------------

    def _on_image(self, frame: Frame) -> None:
        cfg = self.config(CalibrationNodeConfig)
        now = time.monotonic()
        period = 1.0 / cfg.max_rate_hz
        # Slots, not gaps: a frame up to a quarter period early still takes its slot. Comparing
        # with the last frame's arrival halved a camera that runs at exactly max_rate_hz (a frame
        # 99 ms after the last at 10 Hz was skipped, then every other one, the same board poses
        # each loop of a folder).
        if now < self._next_time - 0.25 * period:
            self.skipped_for_rate += 1
            return
        self._next_time = max(self._next_time, now) + period
        verdict = self._cal.add_image(frame.image, name=f'{frame.meta.seconds:.3f}')
        self._last_verdict = verdict.reason
        if verdict.accepted:
            self.get_logger().info(f'{verdict.message}; {self._cal.progress().summary()}')
        mismatch = self._cal.mismatch
        if mismatch is not None:
            self.get_logger().error(f'wrong target? {mismatch.message}',
                                    throttle_duration_sec=10.0)
        self._publish_progress(frame)
        if cfg.auto_calibrate and self._result is None and self._cal.ready:
            self._calibrate()

    def _publish_progress(self, frame: Frame | None = None) -> None:
        progress = self._cal.progress()
        values = [KeyValue(key=k, value=f'{v:.3f}') for k, v in progress.as_dict().items()]
        values += [KeyValue(key='views', value=str(progress.views)),
                   KeyValue(key='ready', value=str(progress.ready).lower()),
                   KeyValue(key='last_verdict', value=self._last_verdict)]
        values += [KeyValue(key=f'count_{k}', value=str(v))
                   for k, v in self._cal.counts.items()]
        if self._result is not None:
            values += [KeyValue(key='rms_px', value=f'{self._result.rms:.4f}'),
                       KeyValue(key='K', value=' '.join(f'{v:.3f}' for v in
                                                        self._result.model.K.ravel())),
                       KeyValue(key='saved_to', value=self._saved_to)]
        status = DiagnosticStatus(
            level=bytes([WARN if self._cal.mismatch is not None else OK]),
            name=f'{self.get_fully_qualified_name()}: calibration',
            message=progress.summary(), values=values)
        array = DiagnosticArray(status=[status])
        if frame is not None:
            array.header = meta_to_header(frame.meta)
        self._progress.emit(array)

    # -- calibration -----------------------------------------------------------------------

    def _calibrate(self) -> str:
        cfg = self.config(CalibrationNodeConfig)
        result = self._cal.calibrate()
        path = resolve_camera_info_url(cfg.output_url, cfg.camera_name)
        save_camera_info(path, result.model, cfg.camera_name)
        self._result, self._saved_to = result, str(path)
        text = f'calibrated from {len(result.view_errors)} views: RMS {result.rms:.3f} px, ' \
               f'saved to {path}'
        self.get_logger().info(text)
        if cfg.set_camera_info_service:
            self._send_camera_info(result.model, str(path))
            text += f'; sending it to {cfg.set_camera_info_service}'
        self._publish_progress()
        return text

    def _send_camera_info(self, model: object, saved_to: str) -> None:
        """Give the camera its new model through its ``set_camera_info`` service without
        blocking (sent again until answered: setting the same model twice is harmless) and log
        what the camera said, or that it said nothing."""
        service = self.config(CalibrationNodeConfig).set_camera_info_service
        logger = self.get_logger()

        def done(response: Any, error: str) -> None:
            if response is None:
                logger.error(f'camera model not set by {service}: {error}; it is in {saved_to}')
            elif response.success:
                logger.info(f'camera model accepted by {service}')
            else:
                logger.error(f'{service} refused the camera model: {response.status_message}; '
                             f'it is in {saved_to}')

        self._service_caller.call(SetCameraInfo, service,
                            SetCameraInfo.Request(camera_info=model_to_camera_info(model)), done)

    def _on_calibrate(self, request: Trigger.Request, response: Trigger.Response
                      ) -> Trigger.Response:
        try:
            response.message = self._calibrate()
            response.success = True
        except EdgeVisionError as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().error(f'calibration failed: {exc}', throttle_duration_sec=5.0)
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        self._cal.reset()
        self._result, self._saved_to = None, ''
        response.success, response.message = True, 'views cleared'
        return response

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values['skipped_for_rate'] = self.skipped_for_rate
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        if self._cal is None:
            return OK, self.lifecycle_state, dict(self.stats())
        progress = self._cal.progress()
        values: dict[str, object] = {**self.stats(), 'views': progress.views,
                                     **progress.as_dict(),
                                     **{f'count_{k}': v for k, v in self._cal.counts.items()}}
        if self._result is not None:
            values['rms_px'] = self._result.rms
        return OK, progress.summary(), values


def main(args: list[str] | None = None) -> int:
    return run_node(CalibrationNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
