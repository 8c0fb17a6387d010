"""TextReader with the shipped PP-OCR models: accuracy on rendered text per backend, regions,
direction, limits, and clear errors for bad images and bad model files."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from edge_vision_core import BackendError, ConfigError, DataError, ModelError
from edge_vision_core.inference.backends import BACKENDS

pytest.importorskip('edge_vision_models')
pytest.importorskip('PIL')
pytest.importorskip('skimage.data')
try:
    from edge_vision_core.eval.text_scenes import font_paths
    font_paths()
except ConfigError as _exc:
    pytest.skip(f'no font to render text scenes: {_exc}', allow_module_level=True)

from edge_vision_core.eval.ocr import score_image, sum_scores
from edge_vision_core.eval.text_scenes import make_scene
from edge_vision_core.inference.ocr import TextReader, TextReaderOptions

#: seeds of the regression scenes (outside the benchmark's tune/heldout/calib splits).
SEEDS = (7001, 7002, 7003, 7004, 7005, 7006)
#: word and character accuracy per backend (defaults: OpenVINO runs the INT8 detector, ONNX
#: Runtime the FP32 one) on SEEDS, measured when the models and defaults were committed
#: (benchmarks/bench_ocr.py measures the full splits).
GOLDEN = {'onnxruntime': {'word_accuracy': 0.9615, 'char_accuracy': 0.9724},
          'openvino': {'word_accuracy': 0.9231, 'char_accuracy': 0.9655}}
#: how far a backend may fall below the golden numbers before the test fails.
TOLERANCE = 0.05
TEXT_BACKENDS = [name for name in ('onnxruntime', 'openvino') if BACKENDS[name].is_installed()]


@pytest.fixture(scope='module')
def scenes():
    return [make_scene(seed) for seed in SEEDS]


@pytest.fixture(scope='module')
def readers():
    cache: dict[str, TextReader] = {}

    def get(backend: str) -> TextReader:
        if backend not in cache:
            cache[backend] = TextReader.create(backend=backend, threads=2)
        return cache[backend]

    yield get
    for reader in cache.values():
        reader.close()


def accuracy(reader, scenes):
    return sum_scores([score_image([(t.text, t.polygon) for t in s.lines],
                                   [(line.text, line.polygon) for line in reader.read(s.image)])
                       for s in scenes])


@pytest.mark.parametrize('backend', TEXT_BACKENDS)
def test_shipped_models_read_rendered_signs(backend, readers, scenes):
    score = accuracy(readers(backend), scenes)
    assert score.words >= 25
    golden = GOLDEN[backend]
    assert score.word_accuracy >= golden['word_accuracy'] - TOLERANCE, score.as_dict()
    assert score.char_accuracy >= golden['char_accuracy'] - TOLERANCE, score.as_dict()


def test_litert_and_tensorrt_have_no_text_model_file():
    name = next((n for n in ('litert', 'tensorrt') if BACKENDS[n].is_installed()), None)
    if name is None:
        pytest.skip('neither LiteRT nor TensorRT is installed here')
    with pytest.raises(ModelError, match='no file in a format'):
        TextReader.create(backend=name)


def test_backends_agree_at_the_same_precision(readers, scenes):
    if 'openvino' not in TEXT_BACKENDS or 'onnxruntime' not in TEXT_BACKENDS:
        pytest.skip('needs ONNX Runtime and OpenVINO')
    first = readers('onnxruntime')
    with TextReader.create(backend='openvino', precision='fp32', threads=2) as second:
        assert second.detector_model.backend.options.model_path.endswith('ppocrv4-det.onnx')
        agree = sum_scores([score_image(
            [(line.text, line.polygon) for line in first.read(s.image)],
            [(line.text, line.polygon) for line in second.read(s.image)]) for s in scenes])
    assert agree.char_accuracy >= 0.99, agree.as_dict()


def test_openvino_runs_the_int8_detector_by_default(readers):
    if 'openvino' not in TEXT_BACKENDS:
        pytest.skip('OpenVINO is not installed')
    reader = readers('openvino')
    assert reader.detector_model.backend.options.model_path.endswith('ppocrv4-det-int8.xml')
    assert reader.detector_model.backend.device == 'CPU'
    assert reader.recognizer_model.backend.options.model_path.endswith('ppocrv4-rec.onnx')


def test_lines_come_in_reading_order_with_image_coordinates(readers):
    reader = readers(TEXT_BACKENDS[0])
    image = np.full((300, 600, 3), 235, np.uint8)
    for text, y in (('FIRST LINE', 80), ('SECOND 42', 200)):
        cv2.putText(image, text, (40, y), cv2.FONT_HERSHEY_DUPLEX, 1.6, (20, 20, 20), 3)
    lines = reader.read(image)
    assert [line.text for line in lines] == ['FIRST LINE', 'SECOND 42']
    first = lines[0]
    assert first.polygon.shape == (4, 2) and first.polygon.dtype == np.float32
    ys, xs = np.nonzero(image[:140, :, 0] < 128)  # the ink of the first line
    ink = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    margin = 0.6 * (ink[3] - ink[1])  # the box holds the ink, grown by less than this
    assert np.all(first.box[:2] <= ink[:2]) and np.all(first.box[2:] >= ink[2:])
    assert np.all(first.box[:2] >= ink[:2] - margin), (first.box, ink)
    assert np.all(first.box[2:] <= ink[2:] + margin), (first.box, ink)
    assert 0.8 < first.score <= 1.0 and 0.5 < first.box_score <= 1.0 and first.region == -1
    stats = reader.last_stats
    assert stats.found == 2 and stats.dropped == 0
    assert stats.det_input == (960, 480)  # the longest side at det_size (2x up at most)
    assert stats.total_ms > 0


def test_regions_read_only_inside_and_say_which(readers):
    reader = readers(TEXT_BACKENDS[0])
    image = np.full((400, 800, 3), 240, np.uint8)
    cv2.putText(image, 'LEFT 1', (30, 120), cv2.FONT_HERSHEY_DUPLEX, 1.2, (0, 0, 0), 2)
    cv2.putText(image, 'RIGHT 2', (480, 320), cv2.FONT_HERSHEY_DUPLEX, 1.2, (0, 0, 0), 2)
    regions = np.array([[450, 250, 750, 360], [np.nan, 0, 10, 10], [5, 5, 5, 5],
                        [0, 60, 300, 160]], np.float32)
    lines = reader.read(image, regions=regions)
    assert [(line.text, line.region) for line in lines] == [('LEFT 1', 3), ('RIGHT 2', 0)]
    assert lines[1].box[0] > 450  # back in image pixels
    assert reader.read(image, regions=np.zeros((0, 4))) == []
    with pytest.raises(DataError, match=r'\(N, 4\)'):
        reader.read(image, regions=[1, 2, 3])


def test_direction_classifier_turns_upside_down_lines():
    image = np.full((200, 500, 3), 250, np.uint8)
    cv2.putText(image, 'TURN 180', (40, 120), cv2.FONT_HERSHEY_DUPLEX, 2, (0, 0, 0), 4)
    upside_down = cv2.rotate(image, cv2.ROTATE_180)
    with TextReader.create(backend=TEXT_BACKENDS[0], classifier='ppocr-cls') as reader:
        lines = reader.read(upside_down)
        assert [line.text for line in lines] == ['TURN 180']
        first = lines[0]  # the polygon starts at the text's own top-left: bottom-right here
        assert first.polygon[0][0] > first.polygon[2][0] and first.polygon[0][1] > 100
        assert reader.read(image)[0].text == 'TURN 180'


@pytest.mark.parametrize('image', [
    np.zeros((1, 1, 3), np.uint8), np.zeros((5, 3, 3), np.uint8), np.zeros((480, 640), np.uint8),
    np.full((480, 640, 4), 255, np.uint8), np.random.default_rng(0).integers(
        0, 255, (240, 320, 3), dtype=np.uint8),
], ids=['1x1', '5x3', 'blank-mono', 'white-bgra', 'noise'])
def test_images_without_text_give_no_lines(readers, image):
    assert readers(TEXT_BACKENDS[0]).read(image) == []


@pytest.mark.parametrize('image, message', [
    (np.zeros((0, 0, 3), np.uint8), 'uint8'),
    (np.zeros((48, 64, 3), np.uint16), 'uint16'),
    (np.zeros((48, 64, 3), np.float32), 'float32'),
    (np.zeros((48, 64, 2), np.uint8), r'\(48, 64, 2\)'),
    ('not an image', 'str'),
])
def test_bad_images_are_clear_errors(readers, image, message):
    with pytest.raises(DataError, match=message):
        readers(TEXT_BACKENDS[0]).read(image)


def test_a_thousand_lines_are_capped_and_counted(readers):
    image = np.full((1600, 2000, 3), 255, np.uint8)
    for row in range(50):
        for col in range(20):
            cv2.putText(image, f'{row}{col}', (10 + col * 99, 25 + row * 32),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    reader = readers(TEXT_BACKENDS[0])
    reader.update_options(TextReaderOptions(max_lines=40, det_size=2016))
    try:
        result = reader.read_result(image)
    finally:
        reader.update_options(TextReaderOptions())
    assert result.stats.found >= 900
    assert len(result.lines) + result.stats.rejected == 40
    assert result.stats.dropped == result.stats.found - 40


def test_runtime_options_apply_and_keep_the_models(readers):
    reader = readers(TEXT_BACKENDS[0])
    image = np.full((120, 400, 3), 230, np.uint8)
    cv2.putText(image, 'SCORE 7', (20, 80), cv2.FONT_HERSHEY_DUPLEX, 1.5, (0, 0, 0), 3)
    assert reader.read(image)
    reader.update_options(TextReaderOptions(min_score=1.0, backend='onnxruntime',
                                            detector='other'))
    try:
        assert reader.read(image) == [] and reader.last_stats.rejected == 1
        assert reader.options.detector == 'ppocrv4-det' and reader.min_score == 1.0
    finally:
        reader.update_options(TextReaderOptions())


@pytest.mark.parametrize('overrides, error, message', [
    ({'backend': 'nope'}, BackendError, 'unknown backend'),
    ({'detector': 'ppocrv4-rec'}, ModelError, 'needs a db_text model'),
    ({'recognizer': 'nanodet-m-416'}, ModelError, 'needs a ctc_text model'),
    ({'detector': 'missing-model'}, ModelError, 'unknown model'),
    ({'det_size': 16}, ConfigError, 'det_size'),
    ({'min_score': 2.0}, ConfigError, 'min_score'),
])
def test_bad_options_are_clear_errors(overrides, error, message):
    with pytest.raises(error, match=message):
        TextReader.create(**overrides)


def _copy_model(tmp_path, name):
    """A private copy of a shipped text model (files and manifest) to damage."""
    from edge_vision_models import models_dir

    source = models_dir()
    for path in source.glob(f'{name}*'):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / f'{name}.yaml'


def test_corrupt_model_files_are_clear_errors(tmp_path):
    manifest = _copy_model(tmp_path, 'ppocrv4-rec')
    model = tmp_path / 'ppocrv4-rec.onnx'
    model.write_bytes(model.read_bytes()[:4000])
    with pytest.raises(ModelError, match='corrupt or truncated'):
        TextReader.create(recognizer=str(manifest), backend=TEXT_BACKENDS[0])
    with pytest.raises(ModelError, match='could not load'):
        TextReader.create(recognizer=str(manifest), backend=TEXT_BACKENDS[0],
                          verify_checksum=False)


def test_the_dictionary_option_replaces_the_manifests(tmp_path):
    from edge_vision_models import models_dir

    wrong = tmp_path / 'three.txt'
    wrong.write_text('a\nb\nc\n', encoding='utf-8')
    with pytest.raises(ModelError, match='dictionary does not belong'):
        TextReader.create(dictionary=str(wrong), backend=TEXT_BACKENDS[0])
    with pytest.raises(ModelError, match='is not a file'):
        TextReader.create(dictionary=str(tmp_path / 'missing.txt'), backend=TEXT_BACKENDS[0])
    copy = tmp_path / 'copy.txt'
    shutil.copy(models_dir() / 'ppocrv4-rec.dict.txt', copy)
    image = np.full((160, 480, 3), 240, np.uint8)
    cv2.putText(image, 'DOCK 7', (30, 110), cv2.FONT_HERSHEY_DUPLEX, 2.2, (20, 20, 20), 4)
    with TextReader.create(dictionary=str(copy), backend=TEXT_BACKENDS[0]) as reader:
        assert reader.recognizer_model.manifest.options.dictionary == str(copy.resolve())
        assert [line.text for line in reader.read(image)] == ['DOCK 7']


def test_mismatched_dictionary_and_model_are_clear_errors(tmp_path):
    manifest = _copy_model(tmp_path, 'ppocrv4-rec')
    (tmp_path / 'ppocrv4-rec.dict.txt').write_text('a\nb\nc\n', encoding='utf-8')
    with pytest.raises(ModelError, match='dictionary does not belong'):
        TextReader.create(recognizer=str(manifest), backend=TEXT_BACKENDS[0])
    det = _copy_model(tmp_path, 'ppocrv4-det')
    shutil.copy(tmp_path / 'ppocrv4-rec.onnx', tmp_path / 'ppocrv4-det.onnx')
    with pytest.raises(ModelError, match='probability map'):
        TextReader.create(detector=str(det), backend=TEXT_BACKENDS[0], verify_checksum=False)


def test_closed_reader_refuses_to_read():
    reader = TextReader.create(backend=TEXT_BACKENDS[0])
    with reader:
        pass
    reader.close()
    with pytest.raises(BackendError, match='closed'):
        reader.read(np.zeros((32, 32, 3), np.uint8))


def test_shipped_text_models_match_their_checksums_and_notice():
    import hashlib

    from edge_vision_core.inference.manifest import resolve_model
    from edge_vision_models import models_dir

    for name, adapter in (('ppocrv4-det', 'db_text'), ('ppocrv4-rec', 'ctc_text'),
                          ('ppocr-cls', 'text_direction')):
        manifest = resolve_model(name)
        assert manifest.adapter == adapter
        for model_file in manifest.files:
            data = model_file.path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == model_file.sha256
            assert len(data) < 20 * 1024 * 1024
    from edge_vision_core.inference.text import dictionary_file

    assert len(dictionary_file(resolve_model('ppocrv4-rec').options.dictionary)) == 6624
    notice = (models_dir() / 'NOTICE').read_text()
    assert 'PaddleOCR' in notice and 'rapidocr-onnxruntime 1.4.4' in notice


@pytest.mark.parametrize('change, message', [
    ({'dictionary': None}, "needs 'dictionary'"),
    ({'dictionary': 'missing.txt'}, 'cannot read the dictionary'),
    ({'size_multiple': -8}, 'size_multiple'),
    ({'unclip_ratio': 1.5}, 'unknown key'),
    ({'space_threshold': 'big'}, 'space_threshold'),
])
def test_text_manifest_errors_name_the_key(tmp_path, change, message):
    from edge_vision_core.inference.manifest import ModelManifest

    (tmp_path / 'keys.txt').write_text('a\nb\n', encoding='utf-8')
    data = {'name': 'r', 'adapter': 'ctc_text', 'file': 'r.onnx', 'input_size': [320, 48],
            'labels': ['text'], 'dictionary': 'keys.txt', **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ModelError, match=message):
        ModelManifest.from_dict(data, tmp_path, 'r.yaml')
