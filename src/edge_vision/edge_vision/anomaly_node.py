"""anomaly_node: learn what normal looks like, flag and localise what is not.

Subscribes ``image`` (sensor_msgs/Image, best effort, newest frame; any encoding that converts
to bgr8).

Publishes, every output with the image's header:

- ``anomaly`` (vision_msgs/Classification): two hypotheses, ``anomaly`` with the frame's
  confidence ``score / (score + threshold)`` (0.5 at the threshold, so ``> 0.5`` means
  anomalous) and ``normal`` with one minus it;
- ``anomaly/heatmap`` (sensor_msgs/Image): per-pixel anomaly at the image's size, ``32FC1``
  (raw patch distances above the frame's background level, comparable to the threshold;
  negative below that level) or ``mono8`` (0 = normal, 128 = the threshold, 255 = twice it),
  see ``heatmap_encoding``;
- ``anomaly/regions`` (vision_msgs/Detection2DArray): connected regions above the threshold as
  boxes in image pixels, ``class_id`` = ``anomaly``, score = their peak confidence.

Learning normal appearance: ``~/learn_normal`` (std_srvs/Trigger) starts collecting the next
``learn_frames`` frames (one every ``learn_every``); then the model is refitted (the threshold
calibrated on held-out frames) in a worker thread of its own, saved to ``save_path`` and used
at once. While it refits, the node keeps receiving (frames are counted as unscored, diagnostics
say ``refitting``) and runtime parameter changes wait for the new model. With ``model_path`` a
fitted model is loaded at configure time; a file made for another backbone, input size or
format version, or one that is not a valid model at all, fails configure with the file's name
and what is wrong. Without any model the node starts learning by itself when
``learn_on_start`` is true, else it waits (frames are counted as unscored).
``~/stop_learning`` (std_srvs/Trigger) cancels learning: the frames collected so far are
dropped and the current model (if any) stays (a refit already running finishes).

Parameters: :class:`edge_vision_core.anomaly.AnomalyConfig`, :class:`AnomalyNodeConfig`,
``qos.*``, ``autostart``, ``diagnostics_period``.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
from vision_msgs.msg import Classification, Detection2DArray, ObjectHypothesis

from edge_vision_core import ConfigError, EdgeVisionError, Frame, FrameDetections, ModelError
from edge_vision_core.anomaly import AnomalyConfig, AnomalyDetector, AnomalyResult
from edge_vision_core.anomaly.detector import RUNTIME_FIELDS
from edge_vision_core.calibration.info_file import ros_home
from edge_vision_core.config import check_config, param
from edge_vision_core.timing import RateMeter, StageTimer

from .conversions import frame_detections_to_msg, frame_to_image, image_to_frame, meta_to_header
from .node_base import OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import (
    QosConfig,
    publisher_event_callbacks,
    results_qos,
    stream_publisher_qos,
    stream_subscriber_qos,
)

__all__ = ['AnomalyNode', 'AnomalyNodeConfig', 'main']


@dataclass(frozen=True)
class AnomalyNodeConfig:
    """anomaly_node settings besides the detector's."""

    learn_frames: int = field(default=60, metadata=param(
        'Frames collected by learn-normal mode before refitting.', min=5, max=100000))
    learn_every: int = field(default=2, metadata=param(
        'Take one frame in this many while learning (spreads the frames over time).', min=1,
        max=1000))
    learn_on_start: bool = field(default=False, metadata=param(
        'Without a model, start learning normal appearance at activation.', read_only=True))
    save_path: str = field(default='', metadata=param(
        'Where learn-normal mode saves the refitted model (empty = '
        '${ROS_HOME}/edge_vision/<node namespace>_anomaly.npz).'))
    heatmap_encoding: str = field(default='32FC1', metadata=param(
        'Encoding of anomaly/heatmap: 32FC1 (raw scores) or mono8 (128 = the threshold).',
        choices=('32FC1', 'mono8')))

    def __post_init__(self) -> None:
        check_config(self)


class AnomalyNode(EdgeVisionNode):
    """Anomaly detection node (see the module docstring)."""

    PARAMETERS = (('', AnomalyConfig), ('', AnomalyNodeConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('anomaly_node', **kwargs)
        self._detector: AnomalyDetector | None = None
        self._refit: threading.Thread | None = None  # the refit worker, while it runs
        self._pending: dict[str, object] = {}  # runtime changes that wait for the refit
        self._rate = RateMeter()
        self._timer = StageTimer()
        self._learn_skip = 0
        self.unscored = 0
        self.anomalous = 0
        self._last: AnomalyResult | None = None
        self._outs = {}
        self._service = None
        self._stop_service = None
        self._model_source = ''

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if isinstance(config, AnomalyConfig) and self._detector is not None:
            runtime = {name: getattr(config, name) for name in changed
                       if name in RUNTIME_FIELDS}
            if runtime and self._refit is not None:
                self._pending.update(runtime)  # the worker owns the detector until it is done
            elif runtime:
                self._detector.update_config(**runtime)

    @staticmethod
    def _load(cfg: AnomalyConfig) -> AnomalyDetector:
        """The detector of ``cfg``, its model file loaded and checked.

        Raises:
            EdgeVisionError: naming the model file, whatever went wrong in it.
        """
        if not cfg.model_path:
            return AnomalyDetector(cfg)
        path = cfg.model_path
        detector = None
        try:
            detector = AnomalyDetector.from_file(path, cfg)
            float(detector.threshold)  # a header value of the wrong type fails here, not later
            return detector
        except Exception as exc:
            if detector is not None:
                detector.close()
            if isinstance(exc, EdgeVisionError) and path in str(exc):
                raise
            what = str(exc) if isinstance(exc, EdgeVisionError) else \
                f'{type(exc).__name__}: {exc}'
            raise ModelError(f'cannot load the anomaly model {path}: {what}. Fit a new one with '
                             f'`edge-vision anomaly-fit` or ~/learn_normal') from exc

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            cfg = self.config(AnomalyConfig)
            detector = self._load(cfg)
            self._model_source = cfg.model_path
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        self._detector = detector
        qos = self.config(QosConfig)
        self._outs = {
            'anomaly': self.add_output(
                'anomaly', Classification, self._classification_msg, results_qos(),
                event_callbacks=publisher_event_callbacks(self, 'anomaly')),
            'heatmap': self.add_output('anomaly/heatmap', Image, frame_to_image,
                                       stream_publisher_qos(qos)),
            'regions': self.add_output('anomaly/regions', Detection2DArray,
                                       frame_detections_to_msg, results_qos(),
                                       frames=self.resolve_topic_name('image')),
        }
        self.add_input('image', Image, lambda m: image_to_frame(m, 'bgr8'), self._on_image,
                       stream_subscriber_qos(qos))
        self._service = self.create_service(Trigger, '~/learn_normal',
                                            self.guard('learn_normal', self._on_learn))
        self._stop_service = self.create_service(Trigger, '~/stop_learning',
                                                 self.guard('stop_learning', self._on_stop))
        if detector.is_fitted:
            self.get_logger().info(f'loaded {cfg.model_path}: threshold {detector.threshold:.4g}')
        else:
            self.get_logger().warning('no anomaly model yet: call ~/learn_normal (std_srvs/'
                                      'Trigger) with the scene in its normal state')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        if not self._detector.is_fitted and self.config(AnomalyNodeConfig).learn_on_start:
            self._start_learning()
        return result

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self.release()
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        if self._stop_service is not None:
            self.destroy_service(self._stop_service)
            self._stop_service = None
        self._outs = {}
        return super().on_cleanup(state)

    def release(self) -> None:
        super().release()
        refit = self._refit
        if refit is not None:
            refit.join(timeout=2.0)  # a refit cannot be interrupted: give it a moment only
            if refit.is_alive():
                # the worker still uses the detector: leave it to the process exit (the model
                # file is written atomically, so no partial file is left either)
                self.get_logger().warning('shutting down during a refit: the new model is '
                                          'not saved; learn normal appearance again')
                return
        with self._deliver_lock:
            if self._detector is not None:
                self._detector.close()
                self._detector = None

    # -- learning --------------------------------------------------------------------------

    def _save_path(self) -> Path:
        cfg = self.config(AnomalyNodeConfig)
        if cfg.save_path:
            return Path(cfg.save_path).expanduser()
        name = (self.get_namespace().strip('/').replace('/', '_') or 'default')
        return Path(ros_home()) / 'edge_vision' / f'{name}_anomaly.npz'

    def _start_learning(self) -> str:
        cfg = self.config(AnomalyNodeConfig)
        with self._deliver_lock:
            if self._detector is None:
                raise ConfigError('the anomaly node is not configured')
            if self._refit is not None:
                raise ConfigError('a refit is running; ask again when it has finished '
                                  '(diagnostics say when)')
            self._detector.start_learning(cfg.learn_frames)
        self._learn_skip = 0
        text = f'learning normal appearance from the next {cfg.learn_frames} frames'
        self.get_logger().info(text)
        return text

    def _on_learn(self, request: Trigger.Request, response: Trigger.Response
                  ) -> Trigger.Response:
        try:
            response.message = self._start_learning()
            response.success = True
        except EdgeVisionError as exc:
            response.success, response.message = False, str(exc)
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response
                 ) -> Trigger.Response:
        with self._deliver_lock:
            learning = self._detector is not None and self._detector.learning is not None
            if learning:
                self._detector.cancel_learning()
            refitting = self._refit is not None
        response.success = learning
        response.message = 'learning cancelled; the current model stays' if learning else \
            'the refit is already running and finishes' if refitting else 'not learning'
        if learning:
            self.get_logger().info(response.message)
        return response

    def _learn(self, frame: Frame) -> None:
        cfg = self.config(AnomalyNodeConfig)
        self._learn_skip = (self._learn_skip + 1) % cfg.learn_every
        if self._learn_skip:
            return
        progress = self._detector.learn(frame.image)
        if not progress.done:
            return
        # the refit takes seconds: a worker does it, so the node keeps taking frames, serving
        # services and publishing diagnostics meanwhile (this handler only starts it)
        self._refit = threading.Thread(target=self._refit_worker, args=(self._detector,),
                                       name='anomaly refit', daemon=True)
        self._refit.start()

    def _refit_worker(self, detector: AnomalyDetector) -> None:
        """Fit and save without the handler lock (the detector is this thread's alone until
        ``_refit`` is cleared), then hand back under it."""
        done = self.run_guarded('anomaly refit', self._fit_and_save, detector)
        with self._deliver_lock:
            self._refit = None
            pending, self._pending = self._pending, {}
            if pending and self._detector is detector:
                self.run_guarded('parameter change after the refit',
                                 functools.partial(detector.update_config, **pending))
        if done is not None:
            report, path = done
            self.get_logger().info(
                f'learned normal appearance from {report.num_images} frames: threshold '
                f'{report.threshold:.4g}, model saved to {path}')

    def _fit_and_save(self, detector: AnomalyDetector) -> tuple[object, Path]:
        report = detector.finish_learning()
        path = self._save_path()
        detector.save(path)
        self._model_source = str(path)
        return report, path

    # -- frames ----------------------------------------------------------------------------

    def _on_image(self, frame: Frame) -> None:
        detector = self._detector
        if detector is None:
            return
        if self._refit is not None:
            self.unscored += 1  # the worker owns the detector until the new model is in
            return
        if detector.learning is not None:
            self._learn(frame)
            return
        if not detector.is_fitted:
            self.unscored += 1
            self.get_logger().warning('no anomaly model: frames are not scored; call '
                                      '~/learn_normal', throttle_duration_sec=30.0)
            return
        with self._timer.stage('score'):
            result = detector.score(frame.image)
        self._last = result
        self._rate.tick()
        self.anomalous += result.is_anomalous
        self._outs['anomaly'].emit((frame, result))
        cfg = self.config(AnomalyNodeConfig)
        heat = result.heatmap_mono8() if cfg.heatmap_encoding == 'mono8' else \
            np.ascontiguousarray(result.heatmap, np.float32)
        self._outs['heatmap'].emit(Frame(heat, frame.meta, cfg.heatmap_encoding,
                                         frame.camera))
        self._outs['regions'].emit(FrameDetections(frame.meta, result.regions,
                                                   result.image_size, frame, result.labels))

    @staticmethod
    def _classification_msg(item: tuple[Frame, AnomalyResult]) -> Classification:
        frame, result = item
        conf = result.confidence
        return Classification(header=meta_to_header(frame.meta), results=[
            ObjectHypothesis(class_id='anomaly', score=conf),
            ObjectHypothesis(class_id='normal', score=1.0 - conf)])

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values.update(fps=self._rate.rate(), anomalous_frames=self.anomalous,
                      unscored_frames=self.unscored)
        det = self._detector
        if det is not None and det.is_fitted and self._refit is None:
            values['threshold'] = det.threshold
        values.update(self._timer.percentile_values())
        if self._last is not None:
            values['last_score'] = self._last.score
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = {**self.stats(), 'model': self._model_source}
        det = self._detector
        if det is not None:
            values['fitted'] = det.is_fitted
            if self._refit is not None:
                values['learning'] = 'refitting'
            elif det.learning is not None:
                values['learning'] = f'{det.learning.collected}/{det.learning.target}'
        if det is not None and self._refit is None and not det.is_fitted and \
                det.learning is None:
            return WARN, 'no anomaly model: call ~/learn_normal', values
        return OK, self.lifecycle_state, values


def main(args: list[str] | None = None) -> int:
    return run_node(AnomalyNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
