"""``edge-vision ocr``: the JSON lines, annotations, videos, and bad inputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

cli = pytest.importorskip('edge_vision.cli')
pytest.importorskip('edge_vision_models')


def sign(text: str = 'DOCK 7', size=(480, 200)) -> np.ndarray:
    image = np.full((size[1], size[0], 3), (40, 160, 230), np.uint8)
    cv2.putText(image, text, (30, size[1] // 2 + 25), cv2.FONT_HERSHEY_DUPLEX, 2.2,
                (10, 10, 10), 4)
    return image


def records(path):
    return [json.loads(line) for line in path.read_text(encoding='utf-8').splitlines()]


def test_image_to_json_lines_and_annotation(tmp_path):
    photo = tmp_path / 'sign.png'
    cv2.imwrite(str(photo), sign())
    out, annotated = tmp_path / 'text.jsonl', tmp_path / 'annotated'
    assert cli.main(['ocr', str(photo), '--output', str(out), '--annotate', str(annotated),
                     '--backend', 'onnxruntime']) == 0
    (record,) = records(out)
    assert set(record) == {'file', 'frame', 'text', 'score', 'polygon', 'box'}
    assert record['file'] == str(photo) and record['frame'] == 0
    assert record['text'] == 'DOCK 7' and 0.5 <= record['score'] <= 1.0
    polygon = np.array(record['polygon'])
    assert polygon.shape == (4, 2)
    assert record['box'] == [polygon[:, 0].min(), polygon[:, 1].min(), polygon[:, 0].max(),
                             polygon[:, 1].max()]
    x0, y0, x1, y1 = record['box']
    assert 0 <= x0 < 40 and 40 < y0 < 100 and 250 < x1 <= 480 and 100 < y1 < 160
    drawn = cv2.imread(str(annotated / 'sign.jpg'))
    assert drawn is not None and drawn.shape == (200, 480, 3)


def test_folder_with_bad_files_reads_the_good_ones(tmp_path, capsys, caplog):
    folder = tmp_path / 'shots'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a_sign.png'), sign('GATE B4'))
    cv2.imwrite(str(folder / 'b_blank.png'), np.full((120, 160, 3), 128, np.uint8))
    (folder / 'c_corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    (folder / 'd_empty.png').write_bytes(b'')
    cv2.imwrite(str(folder / 'e_tiny.png'), np.zeros((1, 1, 3), np.uint8))
    deep = sign('LOT 16').astype(np.uint16) * 257
    cv2.imwrite(str(folder / 'f_16bit.png'), deep)
    assert cv2.imwrite(str(folder / 'g_float.tiff'), sign('ROW 9').astype(np.float32) / 255)
    assert cli.main(['ocr', str(folder), '--max-lines', '5']) == 1  # 2 unreadable inputs
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [(r['file'].rsplit('/', 1)[-1], r['text']) for r in lines] == [
        ('a_sign.png', 'GATE B4'), ('f_16bit.png', 'LOT 16'), ('g_float.tiff', 'ROW 9')]
    skipped = [r.getMessage() for r in caplog.records if r.levelname == 'ERROR']
    assert len(skipped) == 2 and 'c_corrupt.jpg' in skipped[0] and 'd_empty.png' in skipped[1]


def test_video_frames_and_min_score(tmp_path):
    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (480, 200))
    if not writer.isOpened():
        pytest.skip('this OpenCV build cannot write MJPG/AVI')
    for i in range(6):
        writer.write(sign(f'BAY {i}'))
    writer.release()
    out = tmp_path / 'text.jsonl'
    assert cli.main(['ocr', str(path), '--every', '2', '--output', str(out)]) == 0
    assert [(r['frame'], r['text']) for r in records(out)] == [(0, 'BAY 0'), (2, 'BAY 2'),
                                                               (4, 'BAY 4')]
    assert cli.main(['ocr', str(path), '--max-frames', '1', '--min-score', '1.0',
                     '--output', str(out)]) == 0
    assert records(out) == []


@pytest.mark.parametrize('args, message', [
    (['missing.png'], 'does not exist'),
    (['{photo}', '--backend', 'nope'], 'unknown backend'),
    (['{photo}', '--min-score', '3'], 'min_score'),
    (['{photo}', '--det-size', '8'], 'det_size'),
    (['{photo}', '--every', '0'], '--every'),
    (['{photo}', '--recognizer', 'ppocrv4-det'], 'needs a ctc_text model'),
    (['{photo}', '--dictionary', 'no-such-dictionary.txt'], 'is not a file'),
])
def test_errors_are_one_clean_line(tmp_path, capsys, args, message):
    photo = tmp_path / 'sign.png'
    cv2.imwrite(str(photo), sign())
    argv = ['ocr', *(a.format(photo=photo) for a in args)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err
