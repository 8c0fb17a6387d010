"""recorder_node: write the pipeline's results to disk — tracks as JSON lines, annotated video,
and a rosbag2 MCAP bag of the graph's topics.

Subscribes (relative names), through one synchronised input (:mod:`edge_vision.synced`):

- ``tracks`` (vision_msgs/Detection2DArray): one JSON object per message and detection is
  appended to ``<output_dir>/tracks.jsonl``: ``{"stamp": s, "frame_id", "frame": n,
  "track_id", "class_name", "class_id", "score", "box": [x1, y1, x2, y2]}`` (box in pixels of
  the image the tracks refer to); frames with no tracks are written as one line with
  ``"track_id": null`` so the file has every frame. The file is valid JSON lines: a NaN or
  infinite score or box value is written as ``null`` and counted (``non_finite_values``);
- ``image_annotated`` (sensor_msgs/Image, bgr8) when ``write_video`` is true, paired with the
  tracks by stamp (never with the image the tracks were found in): the frame is appended to
  ``<output_dir>/annotated.mp4`` (MPEG-4, ``video_fps`` frames per second) with the tracks of
  its stamp. Tracks whose annotated image never comes are still written (``video_missing``
  counts them); the first frame fixes the video size and later frames of another size are
  letterboxed into it (``video_frames_resized``);
- ``label_info`` (vision_msgs/LabelInfo, transient local): class names.

With ``bag.path`` set it also records a rosbag2-compatible MCAP bag (``ros2 bag info/play``,
Foxglove, Lichtblick; ``camera_node source:=<bag>`` replays it): compressed images of
``bag.images`` and the topics of ``bag.topics`` as published, split, rotated and crash-safe as
``bag.*`` says (:mod:`edge_vision.bag_recording`, :class:`edge_vision_core.bag.BagConfig`).

It also measures the end-to-end latency of every tracks message (arrival time minus the
camera's acquisition stamp) for the main job's report; the latest ``LATENCY_HISTORY`` values
are kept, so a node left running for days holds a fixed amount of memory. Files are flushed
and closed on deactivate/shutdown (tracks still waiting for their image are written first). An
unwritable ``output_dir`` fails configure with the path and the reason.

Parameters: :class:`RecorderConfig`, ``bag.*`` (:class:`~edge_vision_core.bag.BagConfig`,
:class:`~edge_vision.bag_recording.BagTopicsConfig`), ``autostart``, ``diagnostics_period``.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_vision_core import ConfigError, EdgeVisionError, Frame, FrameDetections
from edge_vision_core.bag import BagConfig
from edge_vision_core.config import check_config, param
from edge_vision_core.inference.letterbox import letterbox
from edge_vision_core.types import class_name

from .bag_recording import BagRecording, BagTopicsConfig
from .node_base import OK, WARN, EdgeVisionNode, TransitionCallbackReturn, run_node
from .qos import QosConfig, stream_subscriber_qos
from .synced import SyncedInput

__all__ = ['LATENCY_HISTORY', 'RecorderConfig', 'RecorderNode', 'main']

#: End-to-end latencies kept for the report (about 55 minutes at 30 Hz, ~3 MB).
LATENCY_HISTORY = 100_000
#: Latest latencies the diagnostics' percentile covers.
_DIAGNOSTICS_WINDOW = 300


@dataclass(frozen=True)
class RecorderConfig:
    """What recorder_node writes and where."""

    output_dir: str = field(default='out', metadata=param(
        'Folder for tracks.jsonl and annotated.mp4 (created if missing).', read_only=True))
    write_video: bool = field(default=True, metadata=param(
        'Write image_annotated frames to annotated.mp4.', read_only=True))
    video_fps: float = field(default=10.0, metadata=param(
        'Frame rate written into annotated.mp4.', min=0.1, max=240.0, unit='Hz',
        read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


class RecorderNode(EdgeVisionNode):
    """Writes tracks and annotated frames to files (see the module docstring)."""

    PARAMETERS = (('', RecorderConfig), ('bag.', BagConfig), ('bag.', BagTopicsConfig),
                  ('qos.', QosConfig))

    def __init__(self, **kwargs: object) -> None:
        super().__init__('recorder_node', **kwargs)
        self._port: SyncedInput | None = None
        self._jsonl = None
        self._video: cv2.VideoWriter | None = None
        self._video_size: tuple[int, int] | None = None
        self.frames = 0
        self.video_frames = 0
        self.video_frames_resized = 0
        self.video_missing = 0
        self.non_finite_values = 0
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=LATENCY_HISTORY)
        self.output_dir: Path | None = None
        self.bag: BagRecording | None = None

    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.load_parameters()
            cfg = self.config(RecorderConfig)
            out = Path(cfg.output_dir).expanduser()
            try:
                out.mkdir(parents=True, exist_ok=True)
                self._jsonl = open(out / 'tracks.jsonl', 'w', encoding='utf-8')
            except OSError as exc:
                raise ConfigError(f'cannot write to output_dir {str(out)!r}: {exc}') from None
            self.output_dir = out
        except EdgeVisionError as exc:
            return self.fail(f'configure: {exc}')
        qos = self.config(QosConfig)
        # the video frame of a stamp is the overlay's image_annotated, never the frame the
        # tracks were computed on (which the port would otherwise take from the tracks)
        self._port = self.add_synced_input(
            'image_annotated' if cfg.write_video else None, 'tracks', self._on_tracks,
            image='optional', encoding='bgr8', image_qos=stream_subscriber_qos(qos))
        bag_cfg = self.config(BagConfig)
        if bag_cfg.path:
            # the bag has inputs of its own beside the port: it records each topic as
            # published (every tracks message as it arrives, not after waiting for its image)
            try:
                self.bag = BagRecording(self, bag_cfg, self.config(BagTopicsConfig))
            except EdgeVisionError as exc:
                return self.fail(f'configure: {exc}')  # cleanup closes the files
        return TransitionCallbackReturn.SUCCESS

    def _number(self, value: float, digits: int) -> float | None:
        """A finite value rounded for the file, else None (JSON has no NaN/Infinity)."""
        value = float(value)
        if math.isfinite(value):
            return round(value, digits)
        self.non_finite_values += 1
        return None

    def _on_tracks(self, frame: Frame | None, item: FrameDetections,
                   labels: tuple[str, ...] | None) -> None:
        self.latencies_ms.append((self._port.arrival_ns - item.meta.stamp_ns) / 1e6)
        dets = item.detections
        base = {'stamp': item.meta.seconds, 'frame_id': item.meta.frame_id,
                'frame': self.frames}
        lines = [{**base, 'track_id': None}] if len(dets) == 0 else []
        for i in range(len(dets)):
            cid = int(dets.class_ids[i])
            lines.append({
                **base,
                'track_id': int(dets.track_ids[i]) if dets.track_ids is not None else None,
                'class_name': class_name(cid, labels),
                'class_id': cid, 'score': self._number(dets.scores[i], 4),
                'box': [self._number(v, 2) for v in dets.boxes[i]]})
        self._jsonl.write(''.join(json.dumps(line, allow_nan=False) + '\n' for line in lines))
        self.frames += 1
        if frame is not None:
            self._write_video(frame)
        elif self.config(RecorderConfig).write_video:
            self.video_missing += 1

    def _write_video(self, frame: Frame) -> None:
        image = np.ascontiguousarray(frame.image)
        size = (image.shape[1], image.shape[0])
        if self._video is None:
            cfg = self.config(RecorderConfig)
            path = self.output_dir / 'annotated.mp4'
            self._video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'),
                                          cfg.video_fps, size)
            if not self._video.isOpened():
                self._video = None
                raise ConfigError(f'OpenCV cannot write {path} (no MPEG-4 encoder?)')
            self._video_size = size
        if size != self._video_size:
            # OpenCV silently skips frames of another size: fit them into the video instead
            image, _ = letterbox(image, self._video_size, interpolation=cv2.INTER_AREA)
            self.video_frames_resized += 1
            self.get_logger().warning(
                f'image_annotated changed size to {size[0]}x{size[1]}; letterboxed into the '
                f'{self._video_size[0]}x{self._video_size[1]} video '
                f'({self.video_frames_resized} frames so far)', throttle_duration_sec=10.0)
        self._video.write(image)
        self.video_frames += 1

    def on_activate(self, state) -> TransitionCallbackReturn:
        if self.bag is not None:
            self.bag.activate()
        return super().on_activate(state)

    def _close_files(self) -> None:
        if self.bag is not None:
            self.bag.close()
            self.bag = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._video is not None:
            self._video.release()
            self._video = None
            self._video_size = None

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        result = super().on_deactivate(state)  # writes the tracks still waiting for images
        if self._jsonl is not None:
            self._jsonl.flush()
        if self.bag is not None:
            self.bag.deactivate()
        return result

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._close_files()
        self._port = None
        return super().on_cleanup(state)

    def release(self) -> None:
        super().release()
        if self._port is not None and self._jsonl is not None:
            with self._deliver_lock:
                self.run_guarded('recorder shutdown', self._port.flush)
        self._close_files()

    def stats(self) -> dict[str, float]:
        values = super().stats()
        values.update(frames=self.frames, video_frames=self.video_frames,
                      video_frames_resized=self.video_frames_resized,
                      video_missing=self.video_missing,
                      non_finite_values=self.non_finite_values)
        if self.bag is not None:
            values.update(self.bag.stats())
        if self.latencies_ms:
            recent = itertools.islice(reversed(self.latencies_ms), _DIAGNOSTICS_WINDOW)
            values['latency_ms_p50'] = float(np.percentile(np.fromiter(recent, float), 50))
        return values

    def diagnostic_values(self) -> tuple[int, str, dict[str, object]]:
        values: dict[str, object] = {**self.stats(), 'output_dir': str(self.output_dir or '')}
        if self.bag is not None:
            values.update(self.bag.info())
            if self.bag.problem():
                return WARN, self.bag.problem(), values
        if self.non_finite_values or self.video_frames_resized:
            return WARN, (f'{self.non_finite_values} NaN/inf values written as null, '
                          f'{self.video_frames_resized} video frames resized'), values
        return OK, self.lifecycle_state, values


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
