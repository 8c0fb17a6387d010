"""``edge-vision segment`` and ``edge-vision anonymize`` on real photos and a video."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge_vision_core.privacy import detail_kept

cli = pytest.importorskip('edge_vision.cli')
pytest.importorskip('edge_vision_models')

FACE = (175, 70, 275, 178)  # the astronaut's face


@pytest.fixture
def photos(tmp_path, real_images):
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in ('astronaut', 'motorcycle'):
        cv2.imwrite(str(folder / f'{name}.png'), real_images[name])
    return folder


def _lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_segment_writes_masks_overlays_and_instances(tmp_path, photos, capsys):
    out = tmp_path / 'out'
    assert cli.main(['segment', str(photos), '--output', str(out), '--instances',
                     'nanodet-m-416']) == 0
    records = {r['file'].rsplit('/', 1)[-1]: r for r in _lines(capsys.readouterr().out)}
    astro = records['astronaut.png']
    assert set(astro['classes']) == {'background', 'person'}
    assert 0.4 < astro['classes']['person'] < 0.7
    mask = cv2.imread(astro['mask'], cv2.IMREAD_UNCHANGED)
    assert mask.shape == (512, 512) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    overlay = cv2.imread(astro['overlay'])
    assert overlay.shape == (512, 512, 3)
    person = next(i for i in astro['instances'] if i['class_name'] == 'person')
    instances = cv2.imread(astro['instance_image'], cv2.IMREAD_UNCHANGED)
    assert instances.shape == (512, 512)
    assert (instances == person['index'] + 1).sum() == person['pixels'] > 100_000
    assert np.all(mask[instances == person['index'] + 1] == 1)


def test_segment_refuses_a_detector_and_runs_other_backends(tmp_path, photos, capsys):
    assert cli.main(['segment', str(photos / 'astronaut.png'), '--output', str(tmp_path / 'o'),
                     '--model', 'nanodet-m-416']) == 2
    assert 'not a segmentation model' in capsys.readouterr().err
    for backend in ('openvino', 'litert'):
        assert cli.main(['segment', str(photos / 'astronaut.png'), '--output',
                         str(tmp_path / backend), '--backend', backend,
                         '--model', 'selfie-segmentation-landscape']) == 0
    a, b = (cv2.imread(str(tmp_path / k / 'astronaut_mask.png'), cv2.IMREAD_UNCHANGED)
            for k in ('openvino', 'litert'))
    assert np.mean(a == b) > 0.995


@pytest.mark.parametrize('method', ['blur', 'pixelate', 'fill'])
def test_anonymize_images_keeps_names_and_hides_faces(tmp_path, photos, capsys, method):
    out = tmp_path / 'public'
    assert cli.main(['anonymize', str(photos), '--output', str(out), '--hide', 'faces',
                     '--method', method]) == 0
    records = {r['file'].rsplit('/', 1)[-1]: r for r in _lines(capsys.readouterr().out)}
    assert records['astronaut.png']['faces'] == 1 and records['motorcycle.png']['faces'] == 0
    assert sorted(p.name for p in out.iterdir()) == ['astronaut.png', 'motorcycle.png']
    original = cv2.imread(str(photos / 'astronaut.png'))
    hidden = cv2.imread(str(out / 'astronaut.png'))
    assert abs(detail_kept(original, hidden, FACE)[1]) < 0.05
    assert detail_kept(original, hidden, (0, 320, 512, 512)) == pytest.approx((1.0, 1.0))
    # the unchanged photo is written as it was (PNG: losslessly)
    assert np.array_equal(cv2.imread(str(out / 'motorcycle.png')),
                          cv2.imread(str(photos / 'motorcycle.png')))


def test_anonymize_a_video_frame_by_frame(tmp_path, real_images, capsys):
    from edge_vision_core.inference import Detector

    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 8,
                             (512, 512))
    if not writer.isOpened():
        pytest.skip('this OpenCV build cannot write MJPG/AVI')
    for i in range(5):
        writer.write(np.roll(real_images['astronaut'], 6 * i, axis=1))
    writer.release()
    out = tmp_path / 'out'
    assert cli.main(['anonymize', str(path), '--output', str(out), '--hide', 'faces+persons',
                     '--method', 'pixelate']) == 0
    record = _lines(capsys.readouterr().out)[0]
    assert record['frames'] == 5 and record['withheld'] == 0 and record['faces'] == 5
    capture = cv2.VideoCapture(str(out / 'clip.avi'))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(8.0)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 5 and frames[0].shape == (512, 512, 3)
    with Detector.create(model='face') as faces:
        assert all(len(faces.detect(f).detections) == 0 for f in frames)


def test_anonymize_refuses_to_overwrite_and_stops_on_a_corrupt_model(tmp_path, photos, capsys):
    assert cli.main(['anonymize', str(photos / 'astronaut.png'), '--output', str(photos)]) == 2
    assert 'would replace its input' in capsys.readouterr().err
    from edge_vision_models import models_dir

    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'face-full.yaml').write_text((models_dir() / 'face-full.yaml').read_text())
    (broken / 'face-full.onnx').write_bytes(b'\0' * 1000)
    out = tmp_path / 'never'
    assert cli.main(['anonymize', str(photos), '--output', str(out), '--face-model',
                     str(broken / 'face-full.yaml')]) == 2
    assert 'corrupt or truncated' in capsys.readouterr().err
    assert not out.exists(), 'nothing may be written without a working filter'
