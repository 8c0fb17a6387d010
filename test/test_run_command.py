"""`edge-vision run`: the main job on the bundled clip, end to end (the README's run command)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
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


def test_run_refuses_a_missing_source(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'edge_vision.cli', 'run', '--source',
                           str(tmp_path / 'nope.mp4'), '--out', str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'no such file' in proc.stderr


def _run(tmp_path, name: str, *extra: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = tmp_path / name
    proc = subprocess.run([sys.executable, '-m', 'edge_vision.cli', 'run', '--out', str(out),
                           '--max-frames', '20', '--no-video', *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in (out / 'tracks.jsonl').read_text().splitlines()]
    return proc, lines


def test_a_pool_of_two_workers_gives_one_workers_tracks_in_frame_order(tmp_path):
    """Lossless on a file: the pool infers every frame and delivers in frame order, so the
    recorder gets exactly the detections of one worker, frame by frame (no tracker: its motion
    model follows the camera's wall-clock stamps, which differ between runs)."""
    one, lines_one = _run(tmp_path, 'one', '--threads', '1', '--workers', '1', '--no-tracking')
    two, lines_two = _run(tmp_path, 'two', '--threads', '1', '--workers', '2', '--no-tracking')
    assert 'inference: model auto' in one.stdout and '2 worker(s) x 1 thread(s)' in two.stdout
    report = json.loads((tmp_path / 'two' / 'report.json').read_text())
    assert report['stages']['inference']['workers'] == 2
    assert report['stages']['inference']['stale_frames_dropped'] == 0
    frames = [line['frame'] for line in lines_two]
    assert frames == sorted(frames) and len(set(frames)) >= 18

    def key(lines):  # the runs stop at 20 frames or a few more (those in flight)
        return [(x['frame'], x['class_name'], x['score'], x['box']) for x in lines
                if x['frame'] < 20]

    assert key(lines_two) == key(lines_one)
