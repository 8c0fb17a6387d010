"""ByteTrack-style multi-object tracker (pure NumPy/SciPy, per-instance state).

One :class:`ByteTracker` follows the detections of one camera. Call :meth:`ByteTracker.update`
once per image, in time order, *also when there are no detections* (tracks age and are dropped
only when they are told that time passes). It returns the confirmed tracks seen in this image as
:class:`~edge_vision_core.types.Detections` with ``track_ids`` filled; boxes stay in the image
pixels of the input (``[x1, y1, x2, y2]``, see :mod:`edge_vision_core.types`).

Per image:

1. Time: ``dt`` comes from the timestamps (or is one nominal frame, ``1 / frame_rate``). A
   timestamp that does not move forward (repeated or out of order) makes the call a no-op that is
   counted and logged. A jump back by ``time_jump_reset_s`` or more (the clock jumped, a bag
   looped, or the previous stamp was bogus, e.g. a day ahead) instead resets the tracks (ids
   keep counting) and restarts the clock at the new stamp, counted in ``time_resets``: the
   tracker recovers instead of ignoring every frame until the clock catches up. A jump forward
   predicts the tracks over the real gap, and tracks whose time since their last detection
   exceeds ``lost_timeout_s`` are removed before association.
2. Invalid detections (NaN/inf, zero or negative area) are dropped and counted, and those below
   ``low_threshold`` ignored.
3. Every track is predicted with a constant-velocity Kalman filter
   (:mod:`~edge_vision_core.tracking.kalman`) and, when enabled and an image is given, moved by
   the measured camera motion (:mod:`~edge_vision_core.tracking.motion`).
4. Association with gated Hungarian assignment (:mod:`~edge_vision_core.tracking.association`),
   detections split by score as in ByteTrack (Zhang et al., ECCV 2022):

   a. confirmed and lost tracks <-> high-score detections (``score >= high_threshold``),
      cost ``1 - IoU`` (IoU times the score with ``fuse_score``) plus ``lost_cost_per_s`` per
      second a track has been lost, gate ``match_iou_high``. The lost-time cost is this
      implementation's addition: without it a track lost for most of a second, whose
      prediction drifted onto another person, took that person's detection on TUD-Campus;
      then, with ``center_gate`` > 0, the leftovers of this stage by centre distance;
   b. confirmed tracks still unmatched <-> low-score detections, gate ``match_iou_low``:
      occluded or blurred objects keep their track without starting false ones;
   c. tentative tracks <-> the remaining high-score detections, gate ``match_iou_tentative``.

   With ``class_agnostic`` False a track only matches detections of its own class.
5. State machine: a new track is *tentative* and becomes *confirmed* after ``min_hits``
   consecutive detections (at once in the first image after construction or :meth:`reset`, so
   objects in view at start-up are reported immediately); a tentative track that misses a frame
   is *removed*; a confirmed track that misses one is *lost*, keeps being predicted, and is
   *removed* when unseen for longer than ``lost_timeout_s`` (``lost_timeout_s * frame_rate``
   frames: buffers scale with the frame rate). A lost track that matches again is confirmed
   with its old id.
6. New tentative tracks start from the unmatched high-score detections scoring at least
   ``new_track_threshold``. Ids come from a counter owned by the instance (1, 2, 3, ...): two
   trackers never share a counter, so one camera's tracks never change another's ids.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field

import numpy as np

from ..config import check_config, param
from ..errors import ConfigError, DataError
from ..types import Detections
from .association import box_iou, center_distance_ratio, linear_assignment
from .kalman import BoxKalmanFilter, boxes_to_measurements, measurements_to_boxes
from .motion import CMC_METHODS, CameraMotionConfig, CameraMotionEstimator

__all__ = ['ByteTrackConfig', 'ByteTracker', 'TrackInfo', 'TrackState', 'TrackerStats']

_LOG = logging.getLogger(__name__)
_EPS = 1e-9


class TrackState(enum.IntEnum):
    """Life cycle of a track."""

    TENTATIVE = 0  #: seen fewer than ``min_hits`` consecutive times; not reported
    CONFIRMED = 1  #: matched in the last image; reported
    LOST = 2  #: confirmed, unmatched since; predicted and re-identifiable until the timeout
    REMOVED = 3  #: gone; its id is never reused by this tracker (until reset())


# plain ints for the hot path (comparing arrays with IntEnum members is slower)
_TENTATIVE, _CONFIRMED, _LOST = (int(TrackState.TENTATIVE), int(TrackState.CONFIRMED),
                                 int(TrackState.LOST))


@dataclass(frozen=True)
class ByteTrackConfig:
    """Settings of :class:`ByteTracker` (each one becomes a ROS parameter of tracker_node).

    Defaults are ByteTrack's published settings (track_thresh 0.5, match_thresh 0.8, track_buffer
    30 at 30 fps) except where the docstring of a field says otherwise.
    """

    frame_rate: float = field(default=30.0, metadata=param(
        'Nominal camera frame rate. Sets the time step when update() gets no timestamp and '
        'converts lost_timeout_s to frames; Kalman velocities are in pixels per nominal frame.',
        min=0.1, max=1000.0, unit='Hz'))
    high_threshold: float = field(default=0.5, metadata=param(
        'Detections scoring at least this are high-score: matched first, and may start tracks.',
        min=0.0, max=1.0))
    low_threshold: float = field(default=0.1, metadata=param(
        'Detections scoring below this are ignored. Those between low_threshold and '
        'high_threshold only extend existing confirmed tracks (ByteTrack second stage).',
        min=0.0, max=1.0))
    new_track_threshold: float = field(default=0.6, metadata=param(
        'An unmatched high-score detection starts a new track only if it scores at least this '
        '(>= high_threshold).', min=0.0, max=1.0))
    match_iou_high: float = field(default=0.2, metadata=param(
        'Stage 1 gate: least IoU (IoU x score with fuse_score) between a confirmed or lost '
        "track's predicted box and a high-score detection.", min=0.0, max=1.0))
    match_iou_low: float = field(default=0.5, metadata=param(
        'Stage 2 gate: least IoU between a confirmed track left unmatched and a low-score '
        'detection.', min=0.0, max=1.0))
    match_iou_tentative: float = field(default=0.3, metadata=param(
        'Stage 3 gate: least IoU (x score with fuse_score) between a tentative track and a '
        'remaining high-score detection.', min=0.0, max=1.0))
    fuse_score: bool = field(default=True, metadata=param(
        'Multiply IoU by the detection score in stages 1 and 3, so confident detections win '
        'close calls (ByteTrack default outside MOT20).'))
    center_gate: float = field(default=0.0, metadata=param(
        'Centre-distance fallback for stage 1, 0 = off. When > 0, confirmed/lost tracks and '
        'high-score detections left unmatched by IoU are matched by centre distance, gated '
        "at center_gate times the track's box size (sqrt(w*h)): follows fast motion and low "
        'frame rates where predicted and detected boxes stop overlapping.',
        min=0.0, max=10.0))
    lost_cost_per_s: float = field(default=0.2, metadata=param(
        'Stage 1 association cost added per second that a track has been lost (after its '
        'first missed frame). A long-unseen track, whose prediction drifts, then needs more '
        'overlap and loses close calls to tracks seen in the previous image; 0 = original '
        'ByteTrack.', min=0.0, max=100.0, unit='1/s'))
    class_agnostic: bool = field(default=False, metadata=param(
        'False: a track only matches detections of its class (per-class tracking). True: any '
        'class matches and the track takes the class of its latest detection.'))
    min_hits: int = field(default=2, metadata=param(
        'Consecutive detections before a new track is confirmed and reported.', min=1, max=100))
    lost_timeout_s: float = field(default=1.0, metadata=param(
        'A lost track is kept for re-identification until it has gone this long without a '
        'detection (ByteTrack track_buffer 30 at 30 fps = 1 s); round(lost_timeout_s * '
        'frame_rate) frames at the nominal rate.', min=0.0, max=3600.0, unit='s'))
    duplicate_iou: float = field(default=0.85, metadata=param(
        'A confirmed and a lost track (of the same class unless class_agnostic) overlapping '
        'by more than this IoU are duplicates; the younger is removed. 1.0 disables.',
        min=0.0, max=1.0))
    output_boxes: str = field(default='detection', metadata=param(
        'Boxes reported for tracks: detection (the matched detection box, unchanged) or '
        'filtered (the Kalman estimate after the update: smoother, slightly lagging).',
        choices=('detection', 'filtered')))
    kalman_std_position: float = field(default=1.0 / 20.0, metadata=param(
        'Kalman position noise as a fraction of the box size (measurement and per-frame '
        'process noise).', min=1e-4, max=1.0))
    kalman_std_velocity: float = field(default=1.0 / 160.0, metadata=param(
        'Kalman per-frame velocity noise as a fraction of the box size.', min=1e-5, max=1.0))
    camera_motion: str = field(default='none', metadata=param(
        'Camera-motion compensation from the image passed to update(): none, sparse_flow '
        '(corners + optical flow + RANSAC similarity) or ecc (dense ECC alignment).',
        choices=('none', *CMC_METHODS)))
    cmc_downscale: int = field(default=2, metadata=param(
        'Camera-motion estimation works on the grey image shrunk by this factor.', min=1,
        max=16))
    cmc_max_features: int = field(default=400, metadata=param(
        'sparse_flow: most corners followed per image.', min=10, max=5000))
    time_jump_reset_s: float = field(default=5.0, metadata=param(
        'A stamp at least this much before the previous one (clock jumped back, bag looped, '
        'or the previous stamp was bogus) resets the tracks and the clock instead of being '
        'ignored like a small step back; 0 = never (every older stamp is ignored).',
        min=0.0, max=1e9, unit='s'))

    def __post_init__(self) -> None:
        check_config(self)
        if self.low_threshold > self.high_threshold:
            raise ConfigError(f'ByteTrackConfig.low_threshold ({self.low_threshold}) must not '
                              f'exceed high_threshold ({self.high_threshold})')
        if self.new_track_threshold < self.high_threshold:
            raise ConfigError(f'ByteTrackConfig.new_track_threshold '
                              f'({self.new_track_threshold}) must be >= high_threshold '
                              f'({self.high_threshold}): only high-score detections start '
                              f'tracks')

    @property
    def lost_timeout_frames(self) -> float:
        """``lost_timeout_s`` in nominal frames."""
        return self.lost_timeout_s * self.frame_rate

    def camera_motion_config(self) -> CameraMotionConfig | None:
        """The estimator settings, or None when compensation is off."""
        if self.camera_motion == 'none':
            return None
        return CameraMotionConfig(method=self.camera_motion, downscale=self.cmc_downscale,
                                  max_features=self.cmc_max_features)


@dataclass
class TrackerStats:
    """Counters for diagnostics (monotonic until :meth:`ByteTracker.reset`).

    Attributes:
        frames: accepted update() calls.
        ignored_stamps: update() calls ignored because the timestamp did not move forward.
        time_resets: jumps back by ``time_jump_reset_s`` or more that reset the tracks.
        dropped_invalid: detections dropped for NaN/inf values or non-positive width/height.
        dropped_low_score: detections ignored for scoring below ``low_threshold``.
        tracks_started: ids handed out.
        tracks_removed: tracks that reached the removed state.
        camera_motion_failures: images whose camera motion could not be estimated.
    """

    frames: int = 0
    ignored_stamps: int = 0
    time_resets: int = 0
    dropped_invalid: int = 0
    dropped_low_score: int = 0
    tracks_started: int = 0
    tracks_removed: int = 0
    camera_motion_failures: int = 0


@dataclass(frozen=True)
class TrackInfo:
    """A snapshot of one live track, for overlays and diagnostics.

    Attributes:
        track_id: the stable id.
        state: tentative, confirmed or lost.
        class_id: class index of the track.
        score: score of its latest detection.
        box: (4,) float64 ``[x1, y1, x2, y2]`` Kalman estimate in current image pixels.
        velocity: (2,) float64 centre velocity ``[vx, vy]`` in pixels per second.
        hits: detections matched so far.
        time_since_update_s: time since the latest matched detection.
    """

    track_id: int
    state: TrackState
    class_id: int
    score: float
    box: np.ndarray
    velocity: np.ndarray
    hits: int
    time_since_update_s: float


class ByteTracker:
    """ByteTrack-style tracker for one camera; see the module docstring for the algorithm.

    Args:
        config: settings; defaults when None.

    Example::

        tracker = ByteTracker(ByteTrackConfig(frame_rate=25))
        for stamp_s, detections in stream:
            tracks = tracker.update(detections, timestamp_s=stamp_s)
            tracks.track_ids  # (M,) int64 stable ids, rows aligned with tracks.boxes
    """

    def __init__(self, config: ByteTrackConfig | None = None) -> None:
        self._config: ByteTrackConfig | None = None
        self._cmc: CameraMotionEstimator | None = None
        self.config = config or ByteTrackConfig()
        self.reset()

    @property
    def config(self) -> ByteTrackConfig:
        """The settings. Assigning a new ByteTrackConfig applies it from the next update()
        and keeps the tracks (runtime parameter changes); the camera-motion estimator is
        rebuilt only when its own settings change."""
        return self._config

    @config.setter
    def config(self, value: ByteTrackConfig) -> None:
        if not isinstance(value, ByteTrackConfig):
            raise ConfigError(f'ByteTracker needs a ByteTrackConfig, got {type(value).__name__}')
        old, self._config = self._config, value
        self._kf = BoxKalmanFilter(value.kalman_std_position, value.kalman_std_velocity)
        cmc = value.camera_motion_config()
        if old is None or cmc != old.camera_motion_config():
            self._cmc = CameraMotionEstimator(cmc) if cmc is not None else None
            self._warned_no_image = False

    # ----------------------------------------------------------------------------- state ---

    def reset(self, keep_id_counter: bool = False) -> None:
        """Forget every track, the clock and the counters.

        Args:
            keep_id_counter: False (default) restarts ids at 1 like a new tracker; True keeps
                counting, so ids published before the reset are never reused.
        """
        next_id = getattr(self, '_next_id', 1) if keep_id_counter else 1
        self._next_id = next_id
        self._clear_tracks()
        self._last_stamp: float | None = None
        self._frames_since_reset = 0
        self.stats = TrackerStats()
        self.last_update_accepted = True
        self._last_indices = np.zeros(0, np.int64)
        if self._cmc is not None:
            self._cmc.reset()
            self._cmc.failures = 0

    def _clear_tracks(self) -> None:
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._ids = np.zeros(0, np.int64)
        self._state = np.zeros(0, np.int8)
        self._class = np.zeros(0, np.int32)
        self._score = np.zeros(0, np.float32)
        self._hits = np.zeros(0, np.int64)
        self._since = np.zeros(0)  # frames since the last matched detection
        self._age = np.zeros(0)  # frames since the track started

    @property
    def last_input_indices(self) -> np.ndarray:
        """(M,) int64: for each row returned by the latest update(), its row in that input.

        Lets a caller carry per-detection data that Detections does not hold (e.g. the full
        hypothesis list of a ``vision_msgs/Detection2D``) over to the tracks.
        """
        return self._last_indices

    def tracks(self, include_tentative: bool = False,
               include_lost: bool = True) -> list[TrackInfo]:
        """Snapshots of the live tracks (confirmed, and lost/tentative if asked), by id."""
        rate = self.config.frame_rate
        wanted = self._state == _CONFIRMED
        if include_lost:
            wanted |= self._state == _LOST
        if include_tentative:
            wanted |= self._state == _TENTATIVE
        boxes = measurements_to_boxes(self._mean)
        out = []
        for i in np.flatnonzero(wanted):
            out.append(TrackInfo(
                track_id=int(self._ids[i]), state=TrackState(int(self._state[i])),
                class_id=int(self._class[i]), score=float(self._score[i]), box=boxes[i].copy(),
                velocity=self._mean[i, 4:6] * rate, hits=int(self._hits[i]),
                time_since_update_s=float(self._since[i]) / rate))
        return sorted(out, key=lambda t: t.track_id)

    # ------------------------------------------------------------------------------ clock ---

    def _advance_clock(self, timestamp_s: float | None, dt_s: float | None) -> float | None:
        """Time step in nominal frames, or None when the call must be ignored."""
        rate = self.config.frame_rate
        if timestamp_s is not None and dt_s is not None:
            raise ConfigError('ByteTracker.update: give timestamp_s or dt_s, not both')
        if dt_s is not None:
            dt_s = float(dt_s)
            if not np.isfinite(dt_s):
                raise DataError(f'ByteTracker.update: dt_s must be finite, got {dt_s}')
            if dt_s <= 0:
                self._ignore(f'dt_s={dt_s} is not positive')
                return None
            if self._last_stamp is not None:
                self._last_stamp += dt_s
            return dt_s * rate
        if timestamp_s is None:
            if self._last_stamp is not None:
                self._last_stamp += 1.0 / rate
            return 1.0
        stamp = float(timestamp_s)
        if not np.isfinite(stamp):
            raise DataError(f'ByteTracker.update: timestamp_s must be finite, got {stamp}')
        last, self._last_stamp = self._last_stamp, stamp
        if last is None:
            return 1.0
        if stamp <= last:
            jump = self.config.time_jump_reset_s
            if jump > 0 and last - stamp >= jump:
                self._restart_clock(last, stamp)
                return 1.0
            self._last_stamp = last
            self._ignore(f'timestamp {stamp:.9f} s is not after the previous one ({last:.9f} s)')
            return None
        return (stamp - last) * rate

    def _restart_clock(self, last: float, stamp: float) -> None:
        """A large jump back: the old tracks belong to another time line."""
        self._clear_tracks()
        self._frames_since_reset = 0
        if self._cmc is not None:
            self._cmc.reset()
        self.stats.time_resets += 1
        _LOG.warning('tracker: timestamp %.6f s is %.3f s before the previous one (%.6f s): '
                     'the clock jumped back or the stream restarted; tracks reset (%d so far)',
                     stamp, last - stamp, last, self.stats.time_resets)

    def _ignore(self, reason: str) -> None:
        self.stats.ignored_stamps += 1
        n = self.stats.ignored_stamps
        level = logging.WARNING if n == 1 or n % 100 == 0 else logging.DEBUG
        _LOG.log(level, 'tracker: frame ignored (%d so far): %s', n, reason)

    # ----------------------------------------------------------------------------- update ---

    def update(self, detections: Detections, timestamp_s: float | None = None, *,
               dt_s: float | None = None, image: np.ndarray | None = None) -> Detections:
        """Advance the tracks by one image.

        Args:
            detections: this image's detections (any N, including 0); ``track_ids`` in the
                input are ignored.
            timestamp_s: acquisition time of the image in seconds (e.g.
                ``FrameMeta.seconds``). Must increase from call to call; a repeated or older
                stamp makes the call a counted no-op (``stats.ignored_stamps``) returning no
                tracks, and ``last_update_accepted`` is False. None: one nominal frame later.
            dt_s: alternatively, the time since the previous call in seconds.
            image: the image the detections come from, (H, W) or (H, W, C); used only for
                camera-motion compensation (ignored when that is off).

        Returns:
            The confirmed tracks matched in this image: Detections with ``track_ids`` (int64,
            >= 1), boxes ``[x1, y1, x2, y2]`` in the input's image pixels (the detection's or
            the Kalman estimate, see ``output_boxes``), the detection's score, class and mask.
            Rows follow the input order; :attr:`last_input_indices` maps them to input rows.

        Raises:
            DataError: ``detections`` is not a Detections, or a time value is NaN/inf.
            ConfigError: both timestamp_s and dt_s are given.
        """
        if not isinstance(detections, Detections):
            raise DataError(f'ByteTracker.update needs Detections, got '
                            f'{type(detections).__name__}')
        cfg = self.config
        dt = self._advance_clock(timestamp_s, dt_s)
        if dt is None:
            self.last_update_accepted = False
            self._last_indices = np.zeros(0, np.int64)
            return Detections.empty(with_track_ids=True)
        self.last_update_accepted = True
        self.stats.frames += 1
        self._frames_since_reset += 1

        # Inputs: drop malformed boxes (counted), ignore very low scores.
        valid = detections.valid_mask()
        self.stats.dropped_invalid += int(np.count_nonzero(~valid))
        usable = valid & (detections.scores >= cfg.low_threshold)
        self.stats.dropped_low_score += int(np.count_nonzero(valid & ~usable))
        det_rows = np.flatnonzero(usable)
        det_boxes = detections.boxes[det_rows].astype(np.float64)
        det_scores = detections.scores[det_rows].astype(np.float64)
        det_class = detections.class_ids[det_rows]

        # Predict over the real time step, then forget tracks unseen for too long.
        self._mean, self._cov = self._kf.predict(self._mean, self._cov, dt)
        self._since = self._since + dt
        self._age = self._age + dt
        self._remove(self._since > cfg.lost_timeout_frames + _EPS)
        self._compensate_camera_motion(image, detections.boxes[valid])

        track_boxes = measurements_to_boxes(self._mean)
        high = det_scores >= cfg.high_threshold
        high_dets = np.flatnonzero(high)
        low_dets = np.flatnonzero(~high)
        track_det = np.full(len(self._ids), -1, np.int64)  # matched detection per track

        # a. confirmed + lost tracks <-> high-score detections by IoU, then optionally the
        #    leftovers by centre distance
        pool = np.flatnonzero((self._state == _CONFIRMED)
                              | (self._state == _LOST))
        pairs, free_tracks, remaining_high = self._associate(
            pool, high_dets, track_boxes, det_boxes, det_scores, det_class,
            cfg.match_iou_high, cfg.fuse_score, cfg.lost_cost_per_s)
        track_det[pairs[:, 0]] = pairs[:, 1]
        if cfg.center_gate > 0:
            pairs, free_tracks, remaining_high = self._associate_by_distance(
                free_tracks, remaining_high, track_boxes, det_boxes, det_class)
            track_det[pairs[:, 0]] = pairs[:, 1]

        # b. confirmed tracks still unmatched <-> low-score detections
        pool = free_tracks[self._state[free_tracks] == _CONFIRMED]
        pairs, _, _ = self._associate(pool, low_dets, track_boxes, det_boxes, det_scores,
                                      det_class, cfg.match_iou_low, False)
        track_det[pairs[:, 0]] = pairs[:, 1]

        # c. tentative tracks <-> remaining high-score detections
        pool = np.flatnonzero(self._state == _TENTATIVE)
        pairs, _, remaining_high = self._associate(
            pool, remaining_high, track_boxes, det_boxes, det_scores, det_class,
            cfg.match_iou_tentative, cfg.fuse_score)
        track_det[pairs[:, 0]] = pairs[:, 1]

        self._apply_matches(track_det, det_boxes, det_scores, det_class)

        # State changes of the unmatched tracks.
        unmatched = track_det < 0
        newly_lost = unmatched & (self._state == _CONFIRMED)
        self._state[newly_lost] = _LOST
        self._mean[newly_lost, 6:8] = 0.0  # an unseen box keeps its size
        tentative_missed = unmatched & (self._state == _TENTATIVE)

        # New tracks from confident detections nobody claimed.
        starters = remaining_high[det_scores[remaining_high] >= cfg.new_track_threshold]
        keep = ~tentative_missed
        track_det = track_det[keep]
        self._remove(tentative_missed)
        self._start_tracks(det_boxes[starters], det_scores[starters], det_class[starters])
        track_det = np.concatenate([track_det, starters])
        track_det = self._remove_duplicates(track_det)

        # Report confirmed tracks matched in this image.
        report = (self._state == _CONFIRMED) & (track_det >= 0)
        rows = track_det[report]
        order = np.argsort(rows, kind='stable')
        rows = rows[order]
        ids = self._ids[report][order]
        self._last_indices = det_rows[rows].astype(np.int64)
        out = detections[self._last_indices]
        if cfg.output_boxes == 'filtered':
            boxes = measurements_to_boxes(self._mean[report][order]).astype(np.float32)
            return out.replace(boxes=boxes, track_ids=ids)
        return out.replace(track_ids=ids)

    # ---------------------------------------------------------------------------- helpers ---

    def _compensate_camera_motion(self, image: np.ndarray | None, boxes: np.ndarray) -> None:
        if self._cmc is None:
            return
        if image is None:
            if not self._warned_no_image:
                _LOG.warning('tracker: camera_motion=%s but update() got no image; tracking '
                             'without compensation', self.config.camera_motion)
                self._warned_no_image = True
            return
        failures = self._cmc.failures
        warp = self._cmc.estimate(image, boxes)
        self.stats.camera_motion_failures += self._cmc.failures - failures
        if len(self._ids) and not np.allclose(warp, np.eye(2, 3)):
            self._mean, self._cov = self._kf.warp(self._mean, self._cov, warp)

    def _associate(self, tracks: np.ndarray, dets: np.ndarray, track_boxes: np.ndarray,
                   det_boxes: np.ndarray, det_scores: np.ndarray, det_class: np.ndarray,
                   min_iou: float, fuse: bool,
                   lost_cost_per_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gated IoU assignment of a subset of tracks to a subset of detections.

        Returns:
            ``(pairs, free_tracks, free_dets)``: (K, 2) ``[track index, detection index]`` and
            the unmatched track and detection indices (all in the caller's numbering).
        """
        if len(tracks) == 0 or len(dets) == 0:
            return np.zeros((0, 2), np.int64), tracks, dets
        cfg = self.config
        iou = box_iou(track_boxes[tracks], det_boxes[dets])
        sim = iou * det_scores[dets][None, :] if fuse else iou
        cost = 1.0 - sim
        max_cost = 1.0 - min_iou
        if lost_cost_per_s > 0:
            lost_s = np.clip(self._since[tracks] - 1.0, 0.0, None) / cfg.frame_rate
            cost = cost + (lost_cost_per_s * lost_s)[:, None]
        return self._assign(tracks, dets, cost, max_cost, det_class)

    def _associate_by_distance(self, tracks: np.ndarray, dets: np.ndarray,
                               track_boxes: np.ndarray, det_boxes: np.ndarray,
                               det_class: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
        """Assignment by centre distance / track size, gated by ``center_gate``."""
        if len(tracks) == 0 or len(dets) == 0:
            return np.zeros((0, 2), np.int64), tracks, dets
        cost = center_distance_ratio(track_boxes[tracks], det_boxes[dets])
        return self._assign(tracks, dets, cost, self.config.center_gate, det_class)

    def _assign(self, tracks: np.ndarray, dets: np.ndarray, cost: np.ndarray, max_cost: float,
                det_class: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.config.class_agnostic:
            same = self._class[tracks][:, None] == det_class[dets][None, :]
            cost = np.where(same, cost, np.inf)
        matches, free_t, free_d = linear_assignment(cost, max_cost)
        pairs = np.stack([tracks[matches[:, 0]], dets[matches[:, 1]]], axis=1)
        return pairs.reshape(-1, 2), tracks[free_t], dets[free_d]

    def _apply_matches(self, track_det: np.ndarray, det_boxes: np.ndarray,
                       det_scores: np.ndarray, det_class: np.ndarray) -> None:
        matched = np.flatnonzero(track_det >= 0)
        if len(matched) == 0:
            return
        rows = track_det[matched]
        mean, cov = self._kf.update(self._mean[matched], self._cov[matched],
                                    boxes_to_measurements(det_boxes[rows]))
        self._mean[matched], self._cov[matched] = mean, cov
        self._since[matched] = 0.0
        self._hits[matched] += 1
        self._score[matched] = det_scores[rows]
        self._class[matched] = det_class[rows]
        state = self._state[matched]
        confirm = (state == _LOST) | (
            (state == _TENTATIVE) & (self._hits[matched] >= self.config.min_hits))
        state[confirm] = _CONFIRMED
        self._state[matched] = state

    def _start_tracks(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> None:
        n = len(boxes)
        if n == 0:
            return
        mean, cov = self._kf.initiate(boxes_to_measurements(boxes))
        first = self._frames_since_reset == 1 or self.config.min_hits <= 1
        state = _CONFIRMED if first else _TENTATIVE
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        self.stats.tracks_started += n
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._ids = np.concatenate([self._ids, ids])
        self._state = np.concatenate([self._state, np.full(n, state, np.int8)])
        self._class = np.concatenate([self._class, classes.astype(np.int32)])
        self._score = np.concatenate([self._score, scores.astype(np.float32)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int64)])
        self._since = np.concatenate([self._since, np.zeros(n)])
        self._age = np.concatenate([self._age, np.zeros(n)])

    def _remove(self, mask: np.ndarray) -> None:
        """Drop the tracks where ``mask`` is True (they reach the removed state)."""
        if not np.any(mask):
            return
        self.stats.tracks_removed += int(np.count_nonzero(mask))
        keep = ~mask
        self._mean, self._cov = self._mean[keep], self._cov[keep]
        self._ids, self._state = self._ids[keep], self._state[keep]
        self._class, self._score = self._class[keep], self._score[keep]
        self._hits, self._since, self._age = self._hits[keep], self._since[keep], self._age[keep]

    def _remove_duplicates(self, track_det: np.ndarray) -> np.ndarray:
        """Remove the younger of each confirmed/lost pair (same class unless class-agnostic)
        overlapping above duplicate_iou."""
        threshold = self.config.duplicate_iou
        active = np.flatnonzero(self._state == _CONFIRMED)
        lost = np.flatnonzero(self._state == _LOST)
        if threshold >= 1.0 or len(active) == 0 or len(lost) == 0:
            return track_det
        boxes = measurements_to_boxes(self._mean)
        overlap = box_iou(boxes[active], boxes[lost]) > threshold
        if not self.config.class_agnostic:
            overlap &= self._class[active][:, None] == self._class[lost][None, :]
        a, b = np.nonzero(overlap)
        if len(a) == 0:
            return track_det
        ia, ib = active[a], lost[b]
        drop = np.zeros(len(self._ids), bool)
        younger_active = self._age[ia] < self._age[ib]
        drop[ia[younger_active]] = True
        drop[ib[~younger_active]] = True
        self._remove(drop)
        return track_det[~drop]
