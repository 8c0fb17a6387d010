"""preprocess_node: measure and correct what the model will see.

Subscribes (relative names):

- ``image_raw`` (sensor_msgs/Image, best effort, newest frame): mono8, mono16, bgr8, rgb8, bgr16,
  rgb16 natively; Bayer, YUV 4:2:2 and BGRA/RGBA are converted to bgr8; depth and generic types
  (32FC1, 16UC1...) are refused with a throttled error naming the encoding, and counted;
- ``camera_info`` (sensor_msgs/CameraInfo): the latest calibration is used for undistortion.

Publishes:

- ``image`` (sensor_msgs/Image): the corrected frame, header of the input (stamp, frame_id);
- ``image/camera_info`` (sensor_msgs/CameraInfo): the model of ``image``, rectified (REP-104
  image_rect: D = 0, K/P of the output) when undistorting, scaled when resizing, same header.
  (It cannot be the sibling ``camera_info``, which is this node's input.)
- ``quality`` (diagnostic_msgs/DiagnosticArray, one message per frame, header = the frame's):
  the input metrics (brightness, contrast, clipped fractions, sharpness, noise sigma, SNR), the
  gate verdict and its reasons, the corrections applied with their chosen parameters, per-step
  milliseconds;
- ``/diagnostics``: frames, gate counters, processing time p50/p95, fps.

The quality gate (``gate_action``): ``off``, ``flag`` (publish, mark the verdict in ``quality``)
or ``drop`` (do not publish the image; counted and logged, never silent). Calibration problems
(no camera_info yet, image and camera_info sizes differ) give a throttled warning and the frame
passes through without undistortion.

Parameters: :class:`edge_vision_core.imaging.PreprocessConfig` (every switch, the step order,
thresholds; see ``config/preprocess.yaml``), ``qos.*``, ``autostart``, ``diagnostics_period``.
All but the QoS can change at runtime.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CameraInfo, Image

from edge_vision_core import CameraModel, EdgeVisionError, Frame
from edge_vision_core.imaging import PreprocessConfig, Preprocessor, PreprocessResult
from edge_vision_core.timing import RateMeter, StageTimer

from .conversions import (
    camera_info_to_model,
    frame_to_camera_info,
    frame_to_image,
    image_to_frame,
    meta_to_header,
    quality_summary,
    quality_to_status,
)
from .node_base import OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import (
    QosConfig,
    publisher_event_callbacks,
    results_qos,
    stream_publisher_qos,
    stream_subscriber_qos,
)

__all__ = ['PreprocessNode', 'main']


class PreprocessNode(EdgeVisionNode):
    """Image-quality measurement and correction (see the module docstring)."""

    PARAMETERS = (('', PreprocessConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('preprocess_node', **kwargs)
        self._pre: Preprocessor | None = None
        self._camera: CameraModel | None = None
        self._rate = RateMeter()
        self._timer = StageTimer()
        self._last: PreprocessResult | None = None
        self._out_image = self._out_info = self._out_quality = None

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if isinstance(config, PreprocessConfig) and self._pre is not None:
            self._pre.configure(config)

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            self._pre = Preprocessor(self.config(PreprocessConfig))
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        qos = self.config(QosConfig)
        pub_qos = stream_publisher_qos(qos)
        self._out_image = self.add_output(
            'image', Image, frame_to_image, pub_qos,
            event_callbacks=publisher_event_callbacks(self, 'image'))
        self._out_info = self.add_output('image/camera_info', CameraInfo, frame_to_camera_info,
                                         pub_qos)
        self._out_quality = self.add_output('quality', DiagnosticArray, self._quality_msg,
                                            results_qos())
        self.add_input('image_raw', Image, image_to_frame, self._on_image,
                       stream_subscriber_qos(qos))
        self.add_input('camera_info', CameraInfo, camera_info_to_model, self._on_camera_info,
                       stream_subscriber_qos(qos), linkable=False)
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._pre = None
        self._camera = None
        return super().on_cleanup(state)

    # -- inputs ----------------------------------------------------------------------------

    def _on_camera_info(self, model: CameraModel) -> None:
        self._camera = model  # handlers run one at a time (node_base)

    def _on_image(self, frame: Frame) -> None:
        camera = frame.camera if frame.camera is not None else self._camera
        with self._timer.stage('process'):
            result = self._pre.process(frame.image, frame.encoding, camera)
        self._last = result
        self._rate.tick()
        for warning in result.warnings:
            self.get_logger().warning(f'{warning}', throttle_duration_sec=10.0)
        self._out_quality.emit((frame, result))
        if result.dropped:
            self.get_logger().warning(
                f'dropped a frame at the quality gate ({", ".join(result.verdict.reasons)}; '
                f'{self._pre.stats.dropped} so far)', throttle_duration_sec=5.0)
            return
        out = Frame(result.image, frame.meta, result.encoding, result.camera)
        self._out_image.emit(out)
        self._out_info.emit(out)

    def _quality_msg(self, item: tuple[Frame, PreprocessResult]) -> DiagnosticArray:
        frame, result = item
        status = quality_to_status(result, f'{self.get_fully_qualified_name()}: image quality',
                                   frame.meta.frame_id)
        return DiagnosticArray(header=meta_to_header(frame.meta), status=[status])

    # -- diagnostics -----------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values['fps'] = self._rate.rate()
        if self._pre is not None:
            stats = self._pre.stats
            values.update(frames=stats.frames, gate_flagged=stats.flagged,
                          gate_dropped=stats.dropped, frames_with_warnings=stats.warnings)
            for reason, count in sorted(stats.reasons.items()):
                values[f'gate_{reason}'] = count
        values.update(self._timer.percentile_values())
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = dict(self.stats())
        if self._last is not None and (self._last.warnings or not self._last.verdict.ok):
            return WARN, quality_summary(self._last), values
        return OK, self.lifecycle_state, values


def main(args: list[str] | None = None) -> int:
    return run_node(PreprocessNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
