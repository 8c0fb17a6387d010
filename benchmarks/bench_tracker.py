"""Multi-object tracker: speed and accuracy next to other installable trackers.

Usage::

    .venv/bin/python benchmarks/bench_tracker.py [--mode speed|accuracy|all] [--frames 300]

speed: updates per second of ``edge_vision_core.tracking.ByteTracker`` with 10, 50 and 200
    detections per frame (objects moving on random straight paths, a little box noise), on one
    core (BLAS/OpenMP threads set to 1 and the process pinned to one CPU), next to the other
    trackers on the same input.

accuracy: MOTA / IDF1 / ID switches / HOTA on the MOTChallenge sequences that ``motmetrics``
    ships, with the ground-truth boxes (ids removed) as detections: clean, and corrupted like a
    detector (10 % dropped, 5 % edge jitter, 1 false positive per frame, 20 % low scores; mean of
    5 seeds). TUD-Campus is the sequence the tracker's defaults were chosen on; TUD-Stadtmitte
    was not used for any choice and is reported separately as the held-out check. The shipped
    ``test.txt`` tracker output is scored too.

Other trackers (optional; each is skipped when not installed): ``supervision`` 0.26.1
``sv.ByteTrack`` and ``trackers`` 2.6.1 ``ByteTrackTracker``/``SORTTracker``/
``OCSORTTracker``, all with their default settings and the sequence's frame rate. They depend on
``opencv-python``, which clashes with this project's ``opencv-python-headless``: install them
with ``pip install --no-deps supervision==0.26.1 trackers==2.6.1 pyDeprecate==0.13.0`` plus
``matplotlib rich requests defusedxml``.
"""

from __future__ import annotations

import os

for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS',
             'NUMEXPR_NUM_THREADS', 'VECLIB_MAXIMUM_THREADS'):
    os.environ[_var] = '1'

import argparse  # noqa: E402
import contextlib  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from edge_vision_core import Detections  # noqa: E402
from edge_vision_core.eval.mot import (  # noqa: E402
    MotTable,
    detections_from_ground_truth,
    evaluate_tracking,
    read_mot,
)
from edge_vision_core.tracking import ByteTrackConfig, ByteTracker  # noqa: E402

Tracker = Callable[[Detections], Detections]
NOISY = {'drop': 0.1, 'jitter': 0.05, 'false_positives': 1.0, 'low_score_fraction': 0.2}
SEQUENCES = {'TUD-Campus': ('tuned on', 25.0), 'TUD-Stadtmitte': ('held out', 25.0)}


def ours(frame_rate: float) -> Tracker:
    tracker = ByteTracker(ByteTrackConfig(frame_rate=frame_rate))
    return tracker.update


def _to_sv(dets: Detections):
    import supervision as sv

    return sv.Detections(xyxy=dets.boxes.astype(np.float64).reshape(-1, 4),
                         confidence=dets.scores.astype(np.float64),
                         class_id=dets.class_ids.astype(int))


def _from_sv(result) -> Detections:
    ids = result.tracker_id
    if ids is None:
        return Detections.empty(with_track_ids=True)
    keep = ids >= 0
    scores = result.confidence if result.confidence is not None else np.ones(len(ids))
    return Detections(result.xyxy[keep], scores[keep], np.zeros(int(keep.sum())), ids[keep])


def supervision_bytetrack(frame_rate: float) -> Tracker:
    import supervision as sv

    tracker = sv.ByteTrack(frame_rate=int(round(frame_rate)))
    return lambda d: _from_sv(tracker.update_with_detections(_to_sv(d)))


def trackers_factory(name: str) -> Callable[[float], Tracker]:
    def make(frame_rate: float) -> Tracker:
        import trackers

        tracker = getattr(trackers, name)(frame_rate=frame_rate)
        return lambda d: _from_sv(tracker.update(_to_sv(d)))
    return make


def other_trackers() -> dict[str, Callable[[float], Tracker]]:
    """The comparison trackers that import here, by display name."""
    out: dict[str, Callable[[float], Tracker]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            import supervision as sv
            if hasattr(sv, 'ByteTrack'):
                out[f'supervision {sv.__version__} ByteTrack'] = supervision_bytetrack
        except ImportError:
            pass
        try:
            from importlib.metadata import version

            import trackers  # noqa: F401
            for name in ('ByteTrackTracker', 'SORTTracker', 'OCSORTTracker'):
                out[f'trackers {version("trackers")} {name}'] = trackers_factory(name)
        except ImportError:
            pass
    return out


# --------------------------------------------------------------------------------- speed ---

def synthetic_frames(n_objects: int, n_frames: int, seed: int = 0) -> list[Detections]:
    """n_objects boxes per frame moving on straight lines in a 1920x1080 image (wrapping)."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 80, (n_objects, 2))
    pos = rng.uniform(0, 1, (n_objects, 2)) * [1920, 1080]
    vel = rng.normal(0, 3, (n_objects, 2))
    frames = []
    for _ in range(n_frames):
        pos = (pos + vel) % [1920, 1080]
        jitter = rng.normal(0, 1, (n_objects, 4))
        boxes = np.concatenate([pos, pos + size], axis=1) + jitter
        scores = rng.uniform(0.3, 1.0, n_objects)
        frames.append(Detections(boxes, scores, np.zeros(n_objects)))
    return frames


def bench_speed(n_frames: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    makers = {'edge_vision ByteTracker': ours, **other_trackers()}
    print(f'Tracker speed, one core, {n_frames} frames per run: updates per second '
          f'(median of 3 runs)')
    counts = (10, 50, 200)
    print(f'{"tracker":>40} ' + ' '.join(f'{f"{n} dets":>10}' for n in counts))
    inputs = {n: synthetic_frames(n, n_frames) for n in counts}
    for name, make in makers.items():
        cells = []
        for n in counts:
            rates = []
            for _ in range(3):
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    update = make(30.0)
                    t0 = time.perf_counter()
                    for dets in inputs[n]:
                        update(dets)
                    rates.append(n_frames / (time.perf_counter() - t0))
            cells.append(f'{np.median(rates):10.0f}')
        print(f'{name:>40} ' + ' '.join(cells))


# ------------------------------------------------------------------------------ accuracy ---

def run_tracker(make: Callable[[float], Tracker], dets: MotTable, frame_rate: float,
                n_frames: int) -> MotTable:
    update = make(frame_rate)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        out = [(f, update(d)) for f, d in dets.iter_frames(default_score=1.0,
                                                           last_frame=n_frames)]
    return MotTable.from_tracks(out)


def _fmt(values: list) -> str:
    mota, idf1, idsw, hota = (float(np.mean([v[i] for v in values])) for i in range(4))
    return f'{100 * mota:6.1f} {100 * idf1:6.1f} {idsw:6.1f} {100 * hota:6.1f}'


def bench_accuracy(seeds: int) -> None:
    import motmetrics

    data = Path(motmetrics.__file__).parent / 'data'
    makers = {'edge_vision ByteTracker': ours, **other_trackers()}
    print('Accuracy against ground truth (MOTA %, IDF1 %, ID switches, HOTA %); detections = '
          'ground-truth boxes without ids')
    for seq, (role, rate) in SEQUENCES.items():
        gt = read_mot(data / seq / 'gt.txt')
        shipped = evaluate_tracking(gt, read_mot(data / seq / 'test.txt'))
        print(f'\n{seq} ({role}; {gt.num_frames} frames, {len(gt)} boxes, {rate:g} fps)')
        print(f'{"tracker":>40} {"clean: MOTA   IDF1   IDsw   HOTA":>32}   '
              f'{"noisy (mean of " + str(seeds) + " seeds): MOTA   IDF1   IDsw   HOTA":>48}')
        print(f'{"shipped test.txt":>40}   {_fmt([_row(shipped)]):>30}')
        clean = detections_from_ground_truth(gt)
        noisy = [detections_from_ground_truth(gt, seed=s, **NOISY) for s in range(seeds)]
        for name, make in makers.items():
            c = _row(evaluate_tracking(gt, run_tracker(make, clean, rate, gt.num_frames)))
            n = [_row(evaluate_tracking(gt, run_tracker(make, d, rate, gt.num_frames)))
                 for d in noisy]
            print(f'{name:>40}   {_fmt([c]):>30}   {_fmt(n):>48}')


def _row(m) -> tuple[float, float, int, float]:
    return m.mota, m.idf1, m.id_switches, m.hota if m.hota is not None else float('nan')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mode', choices=('speed', 'accuracy', 'all'), default='all')
    parser.add_argument('--frames', type=int, default=300, help='frames per speed run (300)')
    parser.add_argument('--seeds', type=int, default=5, help='noisy-detection seeds (5)')
    args = parser.parse_args()
    if args.mode in ('accuracy', 'all'):
        bench_accuracy(args.seeds)
        print()
    if args.mode in ('speed', 'all'):
        bench_speed(args.frames)


if __name__ == '__main__':
    main()
