"""inference_node: one node, many accelerators, standard vision_msgs out.

Subscribes ``image`` (sensor_msgs/Image, best effort, newest frame only): bgr8, rgb8, mono8,
bgra8/rgba8, yuyv/uyvy and the other encodings of :mod:`edge_vision_core.encodings` that convert
to bgr8; anything else is refused with a throttled error naming the encoding and counted.

Publishes (relative names):

- ``detections`` (vision_msgs/Detection2DArray, RELIABLE): header copied from the image (same
  stamp and frame_id), boxes in that image's pixels (``bbox.center`` + ``size_x/size_y``), one
  hypothesis per detection whose ``class_id`` is the class *name* (e.g. ``person``) and whose
  ``score`` is the model's confidence; ``Detection2D.id`` is empty (the tracker fills it);
- ``label_info`` (vision_msgs/LabelInfo, RELIABLE + TRANSIENT_LOCAL): class index -> name and
  the score threshold, so late joiners map names and indices;
- ``mask`` (sensor_msgs/Image, mono8 class id per pixel, mono16 for models of more than 256
  classes; the image's size and header) for semantic segmentation models.

Newest frame only: with ``async_inference`` (default) the image input is a mailbox input
(:meth:`edge_vision.node_base.EdgeVisionNode.add_input`): frames from DDS go to a one-slot
:class:`edge_vision.intra.Link` whose thread runs inference, so receiving and inference overlap
and a frame replaced before inference started is counted as ``stale_frames_dropped`` (never
silently lost); without it, inference runs in the subscription callback. In a composed pipeline
the in-process link from the camera is that one slot and thread already (blocking when the
composition is lossless). Either way inference runs under the node's handler lock, so a runtime
parameter change (thresholds, NMS) lands between two frames, never during ``detect``.

Several cameras, one detector: inference nodes of one process with the same ``batch_group``
(``edge-vision run`` with several cameras sets it) share one detector, or one per worker
(:class:`edge_vision_core.inference.batching.SharedDetector`): each node hands its frame over and
waits for its result, and the frames of every camera waiting when a detector is free are
inferred as one batch (one inference call where the model takes a batch, like the shipped INT8
NanoDet). Each node still publishes its own camera's detections with that camera's header. The
nodes must have equal detector settings (configure fails naming both otherwise), and a
threshold changed at runtime on one of them changes it for all.

Lifecycle: ``configure`` resolves the model (name, manifest or file), verifies its checksum, loads
it on the backend and checks the model against its manifest; a missing, corrupt or mismatched
model, an unknown backend or an absent device fails the transition with a message naming the
file or listing what is available, and the node stays up, unconfigured. ``activate`` starts the
worker thread, ``cleanup`` releases the runtime.

Diagnostics: fps, per-stage milliseconds (pre, infer, post: p50/p95), frames dropped, model,
backend and device.

Parameters: :class:`edge_vision_core.inference.DetectorOptions` (model, backend, device,
threads, precision, thresholds...), :class:`InferenceConfig`, ``qos.*``, ``autostart``,
``diagnostics_period``. Thresholds and NMS settings can change at runtime.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from edge_vision_core import EdgeVisionError, Frame, FrameDetections, FrameMeta
from edge_vision_core.config import check_config, param
from edge_vision_core.inference import Detector, DetectorOptions
from edge_vision_core.inference.batching import (
    SharedDetector,
    join_batch_group,
    leave_batch_group,
)
from edge_vision_core.inference.pool import InferencePool, PoolConfig, create_detectors
from edge_vision_core.timing import RateMeter, StageTimer

from .conversions import (
    frame_detections_to_msg,
    frame_to_image,
    image_to_frame,
    labels_to_label_info,
    meta_to_header,
)
from .node_base import ERROR, OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import (
    QosConfig,
    latched_qos,
    publisher_event_callbacks,
    results_qos,
    stream_publisher_qos,
    stream_subscriber_qos,
)

__all__ = ['InferenceConfig', 'InferenceNode', 'main']



@dataclass(frozen=True)
class InferenceConfig:
    """inference_node settings besides the detector's."""

    async_inference: bool = field(default=True, metadata=param(
        'Over DDS, run inference in a worker thread on the newest frame, so receiving and '
        'inference overlap (false: infer inside the subscription callback). In a composed '
        'pipeline the in-process link is that worker.', read_only=True))
    warmup_runs: int = field(default=2, metadata=param(
        'Dummy inferences at configure time, so the first real frame is not slow.', min=0,
        max=100, read_only=True))
    attach_frames: bool = field(default=True, metadata=param(
        'In a composed pipeline, pass the image along with the detections to in-process '
        'consumers (tracker, overlay) so they need no second copy.', read_only=True))
    workers: int = field(default=0, metadata=param(
        'Inference workers (an inference pool: frames go to the worker that will finish '
        'first, results leave in frame order). 0 = auto: the tuned plan with model:=auto, '
        'else one worker with every core (which is faster depends on the device and its '
        'load: edge-vision tune measures it, benchmarks/bench_pool.py compares). N > 1: N '
        'detectors with threads each (0: the cores split between them).', min=0, max=32,
        read_only=True))
    batch_group: str = field(default='', metadata=param(
        'Nodes of one process with the same non-empty batch_group share one detector (one '
        'per worker) that infers the frames waiting from all of them as one batch. Their '
        'detector settings and workers must be equal. Empty: this node has its own '
        'detector(s).', read_only=True))
    max_reorder_ms: float = field(default=250.0, metadata=param(
        'With several workers on a live source, the longest a result waits for the frames '
        'before it; then those are skipped and counted (lossless pipelines never skip).',
        min=1.0, max=60000.0, unit='ms', read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


class InferenceNode(EdgeVisionNode):
    """Object detection / segmentation node (see the module docstring)."""

    PARAMETERS = (('', DetectorOptions), ('', InferenceConfig), ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('inference_node', **kwargs)
        self._detector: Detector | None = None  # the first worker's (labels, model)
        self._workers: list[tuple[Detector, threading.Lock]] = []
        self._pool: InferencePool | None = None
        self._shared: SharedDetector | None = None
        self._pool_lock = threading.Lock()
        self._plan = ''
        self._pool_dropped_earlier = 0
        self._image = None
        self._timer = StageTimer()
        self._rate = RateMeter()
        self._out_dets = self._out_labels = self._out_mask = None
        self._labels: tuple[str, ...] = ()

    # -- parameters --------------------------------------------------------------------------

    def on_parameter_change(self, config: object, changed: set[str]) -> None:
        if not isinstance(config, DetectorOptions) or self._detector is None:
            return
        for detector, lock in self._workers:  # pool workers: between two of their frames
            with lock:
                detector.update_options(config)
        if 'score_threshold' in changed and self._out_labels is not None:
            self._publish_labels()

    # -- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state) -> TransitionCallbackReturn:
        from edge_vision_core.optimize.tune import plan_inference

        try:
            self.load_parameters()
            options = self.config(DetectorOptions)
            settings = self.config(InferenceConfig)
            group = settings.batch_group.strip()
            plan = plan_inference(options.model, options.backend, options.device,
                                  options.threads, options.precision, settings.workers)
            if group:  # the group's first node makes its detectors
                shared = join_batch_group(
                    group, (options, plan.workers),
                    lambda: _warm_detectors(options, plan.workers, settings.warmup_runs),
                    lambda key: f'{key[1][0]} with {_describe(key[0])}')
                self._shared = shared
                self._workers = list(shared.workers)
            else:
                self._workers = [(d, threading.Lock()) for d in _warm_detectors(
                    options, plan.workers, settings.warmup_runs)]
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        detector = self._workers[0][0]
        self._detector = detector
        self._plan = plan.reason + (f'; shared by batch group {group!r}' if group else '')
        self._labels = tuple(detector.labels)
        qos = self.config(QosConfig)
        attach = self.config(InferenceConfig).attach_frames
        self._out_dets = self.add_output(
            'detections', Detection2DArray, frame_detections_to_msg, results_qos(),
            event_callbacks=publisher_event_callbacks(self, 'detections'),
            frames=self.resolve_topic_name('image') if attach else None)
        self._out_labels = self.add_output(
            'label_info', LabelInfo,
            lambda labels: labels_to_label_info(labels, meta_to_header(FrameMeta()),
                                                self._detector.score_threshold),
            latched_qos(), latched=True)
        if detector.is_segmentation:
            self._out_mask = self.add_output('mask', Image, frame_to_image,
                                             stream_publisher_qos(qos))
        self._image = self.add_input('image', Image, lambda msg: image_to_frame(msg, 'bgr8'),
                                     self._infer, stream_subscriber_qos(qos),
                                     mailbox=self.config(InferenceConfig).async_inference)
        self.get_logger().info(
            f'configured: {detector!r}, {len(self._labels)} classes, score threshold '
            f'{detector.score_threshold:.2f}; {self._plan}')
        return TransitionCallbackReturn.SUCCESS

    def _publish_labels(self) -> None:
        self._out_labels.emit(self._labels)

    def on_activate(self, state) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self._publish_labels()
        return result

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        result = super().on_deactivate(state)
        self._close_pool()  # frames in the pool are delivered (or counted) first
        return result

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._stop_mailboxes()  # no inference may run while the detector closes
        self._close_pool()
        self._close_detector()
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        super().release()
        self._close_pool(drain_s=0.0)  # the process is ending: no waiting for queued frames
        self._close_detector()

    def _close_detector(self) -> None:
        workers, self._workers = self._workers, []
        shared, self._shared = self._shared, None
        self._detector = None
        if shared is not None:  # the group's last node closes its detector
            leave_batch_group(shared)
            return
        for detector, lock in workers:
            with lock:
                detector.close()

    def _close_pool(self, drain_s: float = 5.0) -> None:
        """Stop the pool; frames in it are delivered first (up to ``drain_s`` seconds)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(drain_s=drain_s)
            stats = pool.stats()  # failed runs are in processing_errors already
            # replaced, late, and whatever was still queued when it closed
            self._pool_dropped_earlier += stats.submitted - stats.delivered - stats.failed

    @property
    def stale_dropped(self) -> int:
        """Frames replaced before inference took them (mailbox, in-process link or the
        pool's queue) or skipped by the pool's reordering bound."""
        dropped = self._image.dropped if self._image is not None else 0
        pool = self._pool
        if pool is not None:
            stats = pool.stats()
            dropped += stats.replaced + stats.late
        return dropped + self._pool_dropped_earlier

    @property
    def frames_in(self) -> int:
        """Frames received (over DDS or from an in-process producer)."""
        return self._image.received if self._image is not None else 0

    # -- frames ------------------------------------------------------------------------------

    def _infer(self, frame: Frame) -> None:
        """The image input's handler (under the node's handler lock): one worker infers
        here; several get the frame through the pool, which emits in frame order."""
        if self._detector is None:
            return
        shared = self._shared
        if shared is not None:  # waits for the batch that takes this frame
            self._emit(frame, shared.infer(self, frame.image))
            return
        if len(self._workers) == 1:
            detector, lock = self._workers[0]
            with lock:
                result = detector.detect(frame.image)
            self._emit(frame, result)
            return
        pool = self._pool or self._open_pool()
        pool.submit(frame)  # lossless: waits for a free worker; live: newest frame wins

    def _open_pool(self) -> InferencePool:
        """The pool over the workers, made at the first frame: a blocking (lossless)
        in-process link makes it block too, and never skip a frame."""
        link = self._image.link if self._image is not None else None
        lossless = bool(link is not None and link.blocking)
        config = PoolConfig(queue_size=len(self._workers), block=lossless,
                            max_reorder_ms=60000.0 if lossless else
                            self.config(InferenceConfig).max_reorder_ms)

        def worker(detector: Detector, lock: threading.Lock):
            def run(frame: Frame):
                with lock:
                    return detector.detect(frame.image)
            return run

        def delivered(frame: Frame, result) -> None:
            with self._deliver_lock:
                self.run_guarded('inference', self._emit, frame, result)

        def failed(frame: Frame, exc: BaseException) -> None:
            self.run_guarded('inference worker', _raise, exc)

        with self._pool_lock:
            if self._pool is None:
                self._pool = InferencePool([worker(d, lock) for d, lock in self._workers],
                                           delivered, config, on_error=failed,
                                           name=f'{self.get_name()}-pool')
            return self._pool

    def _emit(self, frame: Frame, result) -> None:
        t = result.timings
        self._timer.add('pre', t.pre_ms)
        self._timer.add('infer', t.infer_ms)
        self._timer.add('post', t.post_ms)
        self._rate.tick()
        attach = frame if self.config(InferenceConfig).attach_frames else None
        self._out_dets.emit(FrameDetections(frame.meta, result.detections, result.image_size,
                                            attach, self._labels))
        if self._out_mask is not None and result.mask is not None:
            encoding = 'mono16' if result.mask.dtype.itemsize == 2 else 'mono8'
            self._out_mask.emit(Frame(result.mask, frame.meta, encoding, frame.camera))

    # -- diagnostics -------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values.update(fps=self._rate.rate(), frames_received=self.frames_in,
                      stale_frames_dropped=self.stale_dropped, workers=len(self._workers))
        shared = self._shared
        if shared is not None:  # the group's batches (every camera of the group)
            values.update(batch_mean=shared.stats.mean_batch, batch_users=shared.users)
        if self._detector is not None:
            values.update(classes=len(self._labels),
                          score_threshold=self._detector.score_threshold)
        values.update(self._timer.percentile_values())
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = dict(self.stats())
        det = self._detector
        if det is not None:
            values.update(model=str(det.model_path), backend=det.options.backend,
                          device=det.options.device, plan=self._plan)
            values['hardware_id'] = f'{det.options.backend}:{det.options.device}'
        if det is None:
            return ERROR if self.last_error else OK, \
                self.last_error or self.lifecycle_state, values
        if self.processing_errors:
            return WARN, f'inference errors: {self.last_error}', values
        return OK, self.lifecycle_state, values


def _warm_detectors(options: DetectorOptions, workers, warmup_runs: int) -> list[Detector]:
    """One detector per worker spec, each warmed up (all closed if one does not run)."""
    detectors = create_detectors(options, workers)
    try:
        for detector in detectors:
            detector.warmup(warmup_runs)
    except EdgeVisionError as exc:
        for detector in detectors:
            detector.close()
        raise EdgeVisionError(f'the model does not run: {exc}') from exc
    return detectors


def _describe(options: DetectorOptions) -> str:
    """The settings of a batch group's key that differ from the defaults (for its error)."""
    default = DetectorOptions()
    changed = [f'{f.name}={getattr(options, f.name)!r}' for f in fields(options)
               if getattr(options, f.name) != getattr(default, f.name)]
    return ', '.join(changed) or 'the default settings'


def _raise(exc: BaseException) -> None:
    raise exc


def main(args: list[str] | None = None) -> int:
    return run_node(InferenceNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
