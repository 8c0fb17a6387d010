"""`edge-vision run`: the main job on the bundled clip, end to end (the README's run command)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_run_writes_tracks_video_and_report(tmp_path):
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, '-m', 'edge_vision.cli', 'run', '--out', str(out),
                           '--max-frames', '25', '--threads', '1'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'camera stamp -> tracks ms' in proc.stdout
    lines = [json.loads(line) for line in (out / 'tracks.jsonl').read_text().splitlines()]
    frames = {line['frame'] for line in lines}
    assert len(frames) >= 25
    people = [line for line in lines if line.get('class_name') == 'person']
    assert len(people) > 25, 'the street clip is full of pedestrians'
    # a pedestrian keeps its track id from frame to frame
    per_track = {}
    for line in people:
        per_track.setdefault(line['track_id'], set()).add(line['frame'])
    assert max(len(f) for f in per_track.values()) >= 20
    report = json.loads((out / 'report.json').read_text())
    assert report['frames'] >= 25 and report['fps'] > 0
    assert set(report['stages']) >= {'camera', 'preprocess', 'inference', 'tracker', 'overlay'}
    cap = cv2.VideoCapture(str(out / 'annotated.mp4'))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 20
    ok, frame = cap.read()
    assert ok and frame.shape == (480, 640, 3)
    cap.release()


def test_a_tuning_that_fails_leaves_the_run_on_the_untuned_default(tmp_path):
    # make run tunes first (--tune); a cache it cannot write must not stop the main job
    blocker = tmp_path / 'xdg'
    blocker.write_text('a file where the cache folder would go')
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, '-m', 'edge_vision.cli', 'run', '--tune', '--out',
                           str(out), '--max-frames', '10', '--threads', '1', '--no-video'],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'XDG_CACHE_HOME': str(blocker)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'tuning failed' in proc.stderr and 'cannot write to the tuning cache' in proc.stderr
    assert 'no tuning yet' in proc.stderr + proc.stdout  # the shipped INT8 default runs
    assert json.loads((out / 'report.json').read_text())['frames'] >= 10


def test_run_refuses_a_missing_source(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'edge_vision.cli', 'run', '--source',
                           str(tmp_path / 'nope.mp4'), '--out', str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'no such file' in proc.stderr


def test_run_with_ocr_writes_the_text_read(tmp_path):
    """`edge-vision run --ocr --bag` on a folder of signs: every frame's text in text.jsonl
    and in the MCAP bag with the tracks' stamps, ocr in the report."""
    pytest.importorskip('edge_vision_msgs.msg')
    folder = tmp_path / 'signs'
    folder.mkdir()
    for i, text in enumerate(('DOCK 7', 'GATE 42', 'BAY 3')):
        image = np.full((240, 480, 3), 236, np.uint8)
        cv2.putText(image, text, (30, 140), cv2.FONT_HERSHEY_DUPLEX, 2.2, (25, 25, 25), 4)
        cv2.imwrite(str(folder / f'{i}.png'), image)
    out = tmp_path / 'out'
    proc = _run('--source', str(folder), '--out', str(out), '--ocr', '--no-video',
                '--bag', str(tmp_path / 'run.mcap'))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (out / 'text.jsonl').read_text().splitlines()]
    assert [row['text'] for row in rows] == ['DOCK 7', 'GATE 42', 'BAY 3'], rows
    stamps = {json.loads(line)['stamp'] for line in
              (out / 'tracks.jsonl').read_text().splitlines()}
    assert {row['stamp'] for row in rows} == stamps
    report = json.loads((out / 'report.json').read_text())
    assert report['stages']['ocr']['lines_published'] == 3
    assert 'detect ms' in proc.stdout
    # the MCAP bag has the TextArray messages too, with the images' stamps
    from rclpy.serialization import deserialize_message

    from edge_vision_core.bag import BagReader
    from edge_vision_msgs.msg import TextArray

    bag = BagReader(tmp_path / 'run.mcap')
    assert bag.topics()['/text'] == 'edge_vision_msgs/msg/TextArray'
    texts = [deserialize_message(m.data, TextArray) for m in bag.messages(['/text'])]
    read = {m.header.stamp.sec + m.header.stamp.nanosec / 1e9: [x.text for x in m.lines]
            for m in texts}
    assert sorted(sum(read.values(), [])) == ['BAY 3', 'DOCK 7', 'GATE 42'], read
    assert all(min(abs(stamp - s) for s in stamps) < 1e-6 for stamp in read)

def _video(path, frames: int, size=(320, 240), fps: float = 10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 40 + 10 * i, np.uint8))
    writer.release()


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'edge_vision.cli', 'run', '--threads', '1',
                           *args], capture_output=True, text=True, timeout=timeout)


def test_ctrl_c_on_a_live_source_writes_the_report(tmp_path):
    out = tmp_path / 'out'
    proc = subprocess.Popen([sys.executable, '-m', 'edge_vision.cli', 'run', '--source',
                             'synthetic', '--out', str(out), '--threads', '1', '--no-video'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # progress lines come once frames flow
        lines.append(line)
        if 'fps' in line and not line.startswith('0/'):
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    output = ''.join(lines) + rest
    assert proc.returncode == 0, output
    report = json.loads((out / 'report.json').read_text())
    assert report['stopped_by'] == 'SIGINT' and report['frames'] > 0, report
    assert len((out / 'tracks.jsonl').read_text().splitlines()) >= report['frames']
    assert 'camera stamp -> tracks ms' in output


def test_loop_and_duration(tmp_path):
    _video(tmp_path / 'short.avi', 6)
    out = tmp_path / 'out'
    started = time.monotonic()
    proc = _run('--source', str(tmp_path / 'short.avi'), '--loop', '--duration', '6',
                '--out', str(out), '--no-video')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started < 120
    report = json.loads((out / 'report.json').read_text())
    assert report['frames'] > 6, 'a looped 6-frame file gives more than 6 frames'
    assert 6 <= report['seconds'] < 30
    stamps = [json.loads(line)['stamp'] for line in (out / 'tracks.jsonl').read_text()
              .splitlines()]
    assert len(set(stamps)) > 6


def test_several_cameras_each_with_their_own_chain_and_files(tmp_path):
    _video(tmp_path / 'small.avi', 8, size=(320, 240))
    _video(tmp_path / 'large.avi', 8, size=(640, 360))
    out = tmp_path / 'out'
    proc = _run('--source', str(tmp_path / 'small.avi'), '--source', str(tmp_path / 'large.avi'),
                '--out', str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / 'report.json').read_text())
    assert set(summary['cameras']) == {'camera0', 'camera1'} and summary['frames'] == 16
    for name, size in (('camera0', (320, 240)), ('camera1', (640, 360))):
        assert json.loads((out / name / 'report.json').read_text())['frames'] == 8
        assert len({json.loads(line)['frame'] for line in (out / name / 'tracks.jsonl')
                    .read_text().splitlines()}) == 8
        cap = cv2.VideoCapture(str(out / name / 'annotated.mp4'))
        ok, frame = cap.read()
        cap.release()
        assert ok and frame.shape[1::-1] == size, f'{name} wrote another camera\'s frames'


def test_cameras_n_reads_one_source_in_every_chain(tmp_path):
    out = tmp_path / 'out'
    proc = _run('--cameras', '2', '--max-frames', '6', '--out', str(out), '--no-video')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tracks = [[json.loads(line) for line in (out / f'camera{i}' / 'tracks.jsonl').read_text()
               .splitlines()] for i in (0, 1)]
    boxes = [{(t['frame'], tuple(t['box'])) for t in chain if t['frame'] < 6 and t.get('box')}
             for chain in tracks]
    # the same frames in both chains; tracks may differ at the edges (the tracker's motion
    # model runs on each chain's own acquisition stamps)
    common = boxes[0] & boxes[1]
    assert boxes[0] and len(common) >= 0.8 * max(len(boxes[0]), len(boxes[1])), \
        f'the same clip gives the same tracks per camera: {len(common)} in common of ' \
        f'{len(boxes[0])} and {len(boxes[1])}'
    proc = _run('--cameras', '3', '--source', 'a.mp4', '--source', 'b.mp4')
    assert proc.returncode == 2 and 'give one source' in proc.stderr


def test_cameras_share_one_batched_detector_with_the_results_of_their_own(tmp_path):
    """Two cameras (lossless): their inference nodes share one batch group (two single-thread
    detectors taking what waits), and every camera gets, frame by frame, the detections a
    detector of its own gives (--no-batch). The second camera sees the clip mirrored, so a
    result handed to the wrong camera shows."""
    from edge_vision_models import sample_path

    cap = cv2.VideoCapture(str(sample_path()))
    mirrored = tmp_path / 'mirrored.avi'
    writer = None
    for _ in range(12):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(mirrored), cv2.VideoWriter_fourcc(*'MJPG'), 10.0,
                                     frame.shape[1::-1])
        writer.write(np.ascontiguousarray(frame[:, ::-1]))
    cap.release()
    writer.release()

    def rows(name: str, *extra: str) -> tuple[str, list[list[dict]], dict]:
        out = tmp_path / name
        proc = _run('--source', str(sample_path()), '--source', str(mirrored),
                    '--max-frames', '12', '--no-tracking', '--no-video', '--out', str(out),
                    *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        chains = [[json.loads(line) for line in (out / f'camera{i}' / 'tracks.jsonl')
                   .read_text().splitlines()] for i in (0, 1)]
        return proc.stdout, chains, json.loads((out / 'report.json').read_text())

    out_b, batched, report_b = rows('batched', '--workers', '2')
    out_s, single, report_s = rows('single', '--no-batch', '--workers', '1')
    assert 'shared by every camera' in out_b and 'shared by every camera' not in out_s
    stages = report_b['cameras']['camera0']['stages']['inference']
    assert stages['batch_users'] == 2 and stages['batch_mean'] >= 1.0
    assert stages['stale_frames_dropped'] == 0
    assert 'batch_users' not in report_s['cameras']['camera0']['stages']['inference']

    def key(chain: list[dict]) -> list[tuple]:
        return [(x['frame'], x['class_name']) for x in chain if x['frame'] < 12]

    assert [x['box'] for x in batched[0][:5]] != [x['box'] for x in batched[1][:5]]
    for mine, own in zip(batched, single, strict=True):
        assert key(mine) == key(own) and len(key(mine)) > 12
        first = [[x for x in chain if x['frame'] < 12] for chain in (mine, own)]
        for a, b in zip(*first, strict=True):
            assert abs(a['score'] - b['score']) < 0.01
            np.testing.assert_allclose(a['box'], b['box'], atol=0.5)


def test_defaults_come_from_the_detector_options():
    from edge_vision.cli import build_parser
    from edge_vision_core.inference import DetectorOptions

    parser = build_parser()
    defaults = DetectorOptions()
    for command in ('run', 'detect'):
        args = parser.parse_args([command])
        assert str(args.backend) == defaults.backend and str(args.device) == defaults.device
    # run's model is 'auto' (the tuned or shipped fastest variant), detect's the detector's
    assert str(parser.parse_args(['detect']).model) == defaults.model
    assert parser.parse_args(['run']).model == 'auto'
    proc = subprocess.run([sys.executable, '-m', 'edge_vision.cli', 'detect', '--help'],
                          capture_output=True, text=True, timeout=60)
    assert f'(default: {defaults.model}' in ' '.join(proc.stdout.split())


def _run_frames(tmp_path, name: str, *extra: str) -> tuple[str, list[dict]]:
    """``edge-vision run`` of 20 frames into ``tmp_path/name``: (stdout, tracks.jsonl rows)."""
    out = tmp_path / name
    proc = _run('--out', str(out), '--max-frames', '20', '--no-video', *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, [json.loads(line)
                         for line in (out / 'tracks.jsonl').read_text().splitlines()]


def test_a_pool_of_two_workers_gives_one_workers_tracks_in_frame_order(tmp_path):
    """Lossless on a file: the pool infers every frame and delivers in frame order, so the
    recorder gets exactly the detections of one worker, frame by frame (no tracker: its motion
    model follows the camera's wall-clock stamps, which differ between runs)."""
    common = ('--no-tracking', '--workers')  # _run gives one thread per worker
    one, lines_one = _run_frames(tmp_path, 'one', *common, '1')
    two, lines_two = _run_frames(tmp_path, 'two', *common, '2')
    assert 'inference: model auto' in one and '2 worker(s) x 1 thread(s)' in two
    report = json.loads((tmp_path / 'two' / 'report.json').read_text())
    assert report['stages']['inference']['workers'] == 2
    assert report['stages']['inference']['stale_frames_dropped'] == 0
    frames = [line['frame'] for line in lines_two]
    assert frames == sorted(frames) and len(set(frames)) >= 18
    # --max-frames on a file is exact: the camera stops after that many frames
    assert report['frames'] == 20 and max(frames) == 19
    assert report['stages']['camera']['frames_published'] == 20

    def key(lines):
        return [(x['frame'], x['class_name'], x['score'], x['box']) for x in lines]

    assert key(lines_two) == key(lines_one)
