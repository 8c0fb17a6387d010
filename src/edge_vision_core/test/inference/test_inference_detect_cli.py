"""``edge-vision detect``: JSON lines, annotated images, videos and clean errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

cli = pytest.importorskip('edge_vision.cli')
pytest.importorskip('edge_vision_models')


@pytest.fixture
def photo(tmp_path, real_images):
    path = tmp_path / 'astronaut.png'
    cv2.imwrite(str(path), real_images['astronaut'])
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_image_to_json_lines_and_annotation(tmp_path, photo):
    out, annotated = tmp_path / 'dets.jsonl', tmp_path / 'annotated'
    assert cli.main(['detect', str(photo), '--out', str(out), '--annotate', str(annotated)]) == 0
    records = _lines(out)
    assert records and {'file', 'frame', 'class_name', 'class_id', 'score', 'box'} <= set(
        records[0])
    person = next(r for r in records if r['class_name'] == 'person')
    assert person['file'] == str(photo) and person['frame'] == 0 and person['class_id'] == 0
    x1, y1, x2, y2 = person['box']
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
    image = cv2.imread(str(annotated / 'astronaut.jpg'))
    assert image is not None and image.shape == (512, 512, 3)


def test_folder_glob_and_other_backend(tmp_path, real_images, capsys):
    folder = tmp_path / 'frames'
    folder.mkdir()
    for name in ('chelsea', 'motorcycle'):
        cv2.imwrite(str(folder / f'{name}.jpg'), real_images[name])
    (folder / 'notes.txt').write_text('not an image')
    assert cli.main(['detect', str(folder), '--backend', 'openvino', '--score', '0.5']) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r['class_name'] for r in records} >= {'cat', 'motorcycle'}
    assert all(r['score'] > 0.5 for r in records)
    assert cli.main(['detect', str(folder / '*.jpg'), '--max-det', '1']) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_video_every_nth_frame(tmp_path, real_images, capsys):
    path = tmp_path / 'clip.avi'
    frame = cv2.resize(real_images['motorcycle'], (320, 216))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (320, 216))
    if not writer.isOpened():
        pytest.skip('this OpenCV build cannot write MJPG/AVI')
    for i in range(6):
        writer.write(np.roll(frame, 4 * i, axis=1))
    writer.release()
    assert cli.main(['detect', str(path), '--every', '2', '--annotate',
                     str(tmp_path / 'ann')]) == 0
    frames = {json.loads(line)['frame'] for line in capsys.readouterr().out.splitlines()}
    assert frames <= {0, 2, 4} and frames
    assert sorted(p.name for p in (tmp_path / 'ann').iterdir())[0] == 'clip_000000.jpg'


@pytest.mark.parametrize(('args', 'message'), [
    (['missing.jpg'], "input 'missing.jpg' does not exist"),
    (['{photo}', '--backend', 'tflite'], "unknown backend 'tflite'"),
    (['{photo}', '--device', 'cuda'], "device 'cuda' is not available"),
    (['{photo}', '--model', 'no-such-model'], "unknown model 'no-such-model'"),
    (['{photo}', '--model', '{corrupt}'], 'is corrupt or truncated'),
    ([], 'give at least one image'),
])
def test_errors_are_one_clean_line(tmp_path, photo, capsys, args, message):
    corrupt = tmp_path / 'broken.onnx'
    corrupt.write_bytes(b'\0' * 100)
    sha = '0' * 64
    (tmp_path / 'broken.yaml').write_text(
        f'name: broken\nadapter: yolov8\nfile: broken.onnx\nsha256: "{sha}"\n'
        f'input_size: [64, 64]\nlabels: [a]\n')
    args = [a.format(photo=photo, corrupt=tmp_path / 'broken.yaml') for a in args]
    assert cli.main(['detect', *args]) == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err


def test_list_backends(capsys):
    assert cli.main(['detect', '--list-backends']) == 0
    assert 'onnxruntime: cpu' in capsys.readouterr().out
