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


def test_run_with_ocr_writes_the_text_read(tmp_path):
    """`edge-vision run --ocr` on a folder of signs: every frame's text in text.jsonl with the
    tracks' stamps, ocr in the report."""
    import numpy as np

    pytest.importorskip('edge_vision_msgs.msg')
    folder = tmp_path / 'signs'
    folder.mkdir()
    for i, text in enumerate(('DOCK 7', 'GATE 42', 'BAY 3')):
        image = np.full((240, 480, 3), 236, np.uint8)
        cv2.putText(image, text, (30, 140), cv2.FONT_HERSHEY_DUPLEX, 2.2, (25, 25, 25), 4)
        cv2.imwrite(str(folder / f'{i}.png'), image)
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, '-m', 'edge_vision.cli', 'run', '--source',
                           str(folder), '--out', str(out), '--ocr', '--no-video', '--threads',
                           '1'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (out / 'text.jsonl').read_text().splitlines()]
    assert [row['text'] for row in rows] == ['DOCK 7', 'GATE 42', 'BAY 3'], rows
    stamps = {json.loads(line)['stamp'] for line in
              (out / 'tracks.jsonl').read_text().splitlines()}
    assert {row['stamp'] for row in rows} == stamps
    report = json.loads((out / 'report.json').read_text())
    assert report['stages']['ocr']['lines_published'] == 3
    assert 'detect ms' in proc.stdout
