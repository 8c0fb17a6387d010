"""Tracking accuracy on TUD-Campus against committed golden numbers, and the two CLI commands.

Detections are the ground-truth boxes of motmetrics' TUD-Campus with the ids removed, clean and
corrupted like a detector. TUD-Stadtmitte (also shipped) is deliberately not used by any test or
tuning: it is the held-out sequence of benchmarks/bench_tracker.py.

The golden numbers were produced by this tracker with its default settings; a change that makes
tracking worse fails here (a change that makes it better should update them, stating why).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_vision_core.eval.mot import (
    MotTable,
    detections_from_ground_truth,
    evaluate_tracking,
    read_mot,
    write_mot,
)
from edge_vision_core.tracking import ByteTrackConfig, ByteTracker

motmetrics = pytest.importorskip('motmetrics')
DATA = Path(motmetrics.__file__).parent / 'data' / 'TUD-Campus'
FRAME_RATE = 25.0  # TUD-Campus
NOISY = {'drop': 0.1, 'jitter': 0.05, 'false_positives': 1.0, 'low_score_fraction': 0.2}

# (MOTA, IDF1, ID switches) with the default ByteTrackConfig at 25 fps
GOLDEN = {
    'clean': (0.994429, 0.997207, 0),
    'noisy': (0.852368, 0.920540, 0),
}
# the tracker output shipped with motmetrics (its own test publishes these numbers)
SHIPPED = (0.526462, 0.557659, 7)


def track(dets: MotTable, n_frames: int) -> MotTable:
    tracker = ByteTracker(ByteTrackConfig(frame_rate=FRAME_RATE))
    return MotTable.from_tracks([(f, tracker.update(d))
                                 for f, d in dets.iter_frames(last_frame=n_frames)])


@pytest.mark.parametrize('variant', sorted(GOLDEN))
def test_tud_campus_accuracy_matches_golden(variant):
    gt = read_mot(DATA / 'gt.txt')
    dets = detections_from_ground_truth(gt, seed=0, **(NOISY if variant == 'noisy' else {}))
    m = evaluate_tracking(gt, track(dets, gt.num_frames), with_hota=False)
    mota, idf1, switches = GOLDEN[variant]
    assert m.mota == pytest.approx(mota, abs=0.005)
    assert m.idf1 == pytest.approx(idf1, abs=0.005)
    assert m.id_switches <= switches
    assert m.mota > SHIPPED[0] and m.idf1 > SHIPPED[1]


def cli(argv: list[str], capsys) -> tuple[int, str, str]:
    cli_module = pytest.importorskip('edge_vision.cli')
    code = cli_module.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_track_and_eval_tracking_commands_on_tud_campus(tmp_path, capsys):
    gt = read_mot(DATA / 'gt.txt')
    det_path, out_path = tmp_path / 'det.txt', tmp_path / 'tracks.txt'
    write_mot(det_path, detections_from_ground_truth(gt))
    code, out, _ = cli(['track', '--det', str(det_path), '--out', str(out_path),
                        '--frame-rate', '25'], capsys)
    assert code == 0 and '8 tracks written' in out
    written = read_mot(out_path)
    assert set(np.unique(written.ids).tolist()) == set(range(1, 9))
    code, out, _ = cli(['eval-tracking', '--gt', str(DATA / 'gt.txt'), '--res', str(out_path),
                        '--json', '--no-hota'], capsys)
    assert code == 0
    metrics = json.loads(out)
    assert metrics['mota'] == pytest.approx(GOLDEN['clean'][0], abs=0.005)
    assert metrics['idf1'] == pytest.approx(GOLDEN['clean'][1], abs=0.005)
    assert metrics['id_switches'] == 0 and metrics['hota'] is None
    code, out, _ = cli(['eval-tracking', '--gt', str(DATA / 'gt.txt'), '--res',
                        str(DATA / 'test.txt'), '--no-hota'], capsys)
    assert code == 0
    assert 'MOTA       52.6 %' in out and 'IDF1       55.8 %' in out
    assert 'ID switches 7' in out


def test_track_command_settings_and_errors(tmp_path, capsys):
    det_path, out_path = tmp_path / 'det.txt', tmp_path / 'tracks.txt'
    # -1 scores (no score in the file) are read as --default-score
    det_path.write_text(''.join(f'{f},-1,{10 + 3 * f},50,20,40,-1,-1,-1,-1\n'
                                for f in range(1, 11)))
    code, _, _ = cli(['track', '--det', str(det_path), '--out', str(out_path),
                      '--set', 'min_hits=3', '--set', 'class_agnostic=true',
                      '--frames', '12'], capsys)
    assert code == 0
    assert read_mot(out_path).frames.tolist() == list(range(1, 11))
    code, _, _ = cli(['track', '--det', str(det_path), '--out', str(out_path),
                      '--default-score', '0.05'], capsys)
    assert code == 0 and out_path.read_text() == ''  # all below low_threshold
    for argv, message in [
        (['--set', 'nope=1'], "unknown tracker setting 'nope'"),
        (['--set', 'min_hits=two'], 'expected int'),
        (['--set', 'min_hits'], 'NAME=VALUE'),
        (['--set', 'min_hits=0'], 'min_hits must be in'),
        (['--frames', '3'], 'less than the last frame'),
    ]:
        code, _, err = cli(['track', '--det', str(det_path), '--out', str(out_path), *argv],
                           capsys)
        assert code == 2 and message in err, (argv, err)
    code, _, err = cli(['track', '--det', str(tmp_path / 'missing.txt'), '--out',
                        str(out_path)], capsys)
    assert code == 2 and 'cannot read MOT file' in err
    code, out, _ = cli(['track', '--list-params'], capsys)
    assert code == 0 and 'lost_timeout_s = 1.0' in out
