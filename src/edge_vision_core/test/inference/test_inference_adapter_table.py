"""The adapter table: every entry is well formed, lookups fail loudly, and a model family added
from this one file (two test-only adapters: boxes with keypoints, CTC text) runs through the
manifest reader, the contract check, the Detector and the letterbox inverse unchanged."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from edge_vision_core import ModelError
from edge_vision_core.config import check_config, config_fields, param
from edge_vision_core.inference import (
    ADAPTERS,
    OUTPUT_KINDS,
    Adapter,
    Candidates,
    DecodeContext,
    Decoded,
    Detector,
    ModelManifest,
    get_adapter,
    register_adapter,
)
from edge_vision_core.inference.backends import available_backends

ONNX_BACKENDS = [b for b in ('onnxruntime', 'openvino') if b in available_backends()]
COMMON_KEYS = {f.name for f in dataclasses.fields(ModelManifest)} | {
    'file', 'sha256', 'labels_file', 'scale', 'format', 'precision'}


@pytest.mark.parametrize('name', list(ADAPTERS))
def test_every_adapter_entry_is_well_formed(name):
    adapter = ADAPTERS[name]
    assert adapter.name == name == name.lower() and adapter.summary
    assert adapter.produces and set(adapter.produces) <= set(OUTPUT_KINDS)
    options = adapter.options()  # every option has a default ...
    specs = config_fields(adapter.options)  # ... and is documented with limits
    assert [s.name for s in specs] == list(adapter.option_keys())
    assert all(len(s.spec.description) > 10 for s in specs)
    assert not set(adapter.option_keys()) & COMMON_KEYS  # never shadows a manifest key
    assert adapter.parse_options(adapter.options_to_dict(options)) == options
    assert adapter.size_multiple(options) >= 1


def test_unknown_adapters_fail_loudly_listing_the_known_ones():
    with pytest.raises(ModelError, match=r"unknown adapter 'yolov9', expecting one of "
                                         r"\['nanodet', 'yolov5'"):
        get_adapter('yolov9')
    assert get_adapter(' NanoDet ') is ADAPTERS['nanodet']


class _Nothing(Adapter):
    name = 'nothing'
    summary = 'decodes nothing'

    def decode(self, outputs, ctx):
        return Decoded(Candidates.empty())


@pytest.mark.parametrize(('make', 'error', 'match'), [
    (lambda: type('Taken', (_Nothing,), {'name': 'nanodet'})(), ValueError,
     'already registered'),
    (lambda: type('Loud', (_Nothing,), {'name': 'Loud'})(), ValueError, 'lower-case'),
    (lambda: type('Odd', (_Nothing,), {'produces': frozenset({'poses'})})(), ValueError,
     "expecting a non-empty subset of \\['detections'"),
    (lambda: type('Bad', (_Nothing,), {'options': dict})(), TypeError, 'dataclass'),
    (lambda: 'nanodet', TypeError, 'Adapter instance'),
])
def test_register_adapter_refuses_bad_entries(make, error, match):
    with pytest.raises(error, match=match):
        register_adapter(make())
    assert 'nothing' not in ADAPTERS


# -- a model family added from a test: boxes with keypoints ------------------------------------

@dataclass(frozen=True)
class CornerOptions:
    """Manifest keys of the test-only ``corner_points`` adapter."""

    point: str = field(default='center', metadata=param(
        'Which point of each box is its keypoint.', choices=('center', 'top_left')))

    def __post_init__(self) -> None:
        check_config(self)


class CornerPointsAdapter(Adapter):
    """Test-only: one ``[1, K, 6]`` output of rows ``x1, y1, x2, y2, score, class`` (NMS done
    in the model), one keypoint per box (its centre or its top-left corner)."""

    name = 'corner_points'
    produces = frozenset({'detections', 'keypoints'})
    options = CornerOptions
    summary = 'test-only: end-to-end boxes, one keypoint per box'

    def check_outputs(self, shapes, manifest):
        if len(shapes) != 1 or shapes[0][-1] != 6:
            return f'corner_points needs one [1, K, 6] output, the model has {list(shapes)}'
        return None

    def decode(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Decoded:
        rows = np.asarray(outputs[0], np.float32).reshape(-1, 6)
        rows = rows[rows[:, 4] > ctx.score_threshold]
        boxes = rows[:, :4]
        point = ((boxes[:, :2] + boxes[:, 2:]) / 2 if ctx.options.point == 'center'
                 else boxes[:, :2])
        return Decoded(Candidates(boxes, rows[:, 4], rows[:, 5].astype(np.int32),
                                  nms_done=True, keypoints=point[:, None, :]))


# -- and text: greedy CTC over per-step class scores -------------------------------------------

class GreedyCtcAdapter(Adapter):
    """Test-only: ``[1, T, C]`` per-step scores, label 0 the CTC blank; greedy decoding
    (best class per step, repeats merged, blanks dropped) into one text line."""

    name = 'greedy_ctc'
    produces = frozenset({'text'})
    summary = 'test-only: CTC text recognition, greedy'

    def check_manifest(self, manifest):
        return None if manifest.labels[0] == 'blank' else "labels[0] must be 'blank'"

    def decode(self, outputs, ctx):
        scores = np.asarray(outputs[0])[0]
        best = scores.argmax(axis=1)
        keep = (best != 0) & np.r_[True, best[1:] != best[:-1]]
        text = ''.join(ctx.manifest.labels[i] for i in best[keep])
        confidence = float(scores.max(axis=1)[keep].mean()) if keep.any() else 0.0
        return Decoded(text=((text, confidence),))


@pytest.fixture
def test_adapters():
    added = [register_adapter(CornerPointsAdapter()), register_adapter(GreedyCtcAdapter())]
    yield added
    for adapter in added:
        ADAPTERS.pop(adapter.name)


# 640x480 letterboxed into 320x320: scale 0.5, 40 rows of padding on top and bottom.
BOXES = np.array([[100.0, 80.0, 300.0, 400.0], [400.0, 100.0, 600.0, 300.0]], np.float32)


def _corner_rows() -> np.ndarray:
    rows = np.zeros((1, 5, 6), np.float32)  # padded rows score 0
    rows[0, 0] = [*(BOXES[0] * 0.5 + [0, 40, 0, 40]), 0.9, 2]
    rows[0, 1] = [*(BOXES[1] * 0.5 + [0, 40, 0, 40]), 0.8, 0]
    return rows


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
@pytest.mark.parametrize(('point', 'expected'), [
    ('center', (BOXES[:, :2] + BOXES[:, 2:]) / 2), ('top_left', BOXES[:, :2])])
def test_a_keypoint_adapter_added_here_runs_through_the_detector(
        test_adapters, constant_model, backend, point, expected):
    manifest = constant_model({'dets': _corner_rows()}, {
        'adapter': 'corner_points', 'point': point, 'labels': ['a', 'b', 'c'],
        'score_threshold': 0.3}, input_shape=(1, 3, 320, 320))
    with Detector.create(model=manifest, backend=backend) as detector:
        assert detector.produces == {'detections', 'keypoints'} and not detector.is_segmentation
        result = detector.detect(np.zeros((480, 640, 3), np.uint8))
    np.testing.assert_allclose(result.detections.boxes, BOXES, atol=1e-3)
    assert result.detections.class_ids.tolist() == [2, 0]
    assert result.detections.keypoints.shape == (2, 1, 2)
    np.testing.assert_allclose(result.detections.keypoints[:, 0], expected, atol=1e-3)
    assert result.mask is None and result.text is None


def test_the_added_adapter_checks_its_options_and_its_outputs(test_adapters, constant_model):
    with pytest.raises(ModelError, match="adapter corner_points: .*point must be one of"):
        Detector.create(model=constant_model({'dets': _corner_rows()}, {
            'adapter': 'corner_points', 'point': 'middle', 'labels': ['a']}))
    with pytest.raises(ModelError, match=r'point is an option of adapter corner_points'):
        Detector.create(model=constant_model({'dets': _corner_rows()}, {
            'adapter': 'yolo_nms', 'point': 'center', 'labels': ['a']}))
    path = constant_model({'dets': np.zeros((1, 5, 7), np.float32)},
                          {'adapter': 'corner_points', 'labels': ['a']})
    with pytest.raises(ModelError, match=r'synthetic\.onnx .*corner_points needs one '
                                         r'\[1, K, 6\] output'):
        Detector.create(model=path)


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_a_text_adapter_added_here_reads_text(test_adapters, constant_model, backend):
    labels = ['blank', 'c', 'a', 't']
    steps = [1, 1, 0, 2, 0, 0, 3, 3]  # c c _ a _ _ t t -> "cat"
    scores = np.full((1, len(steps), len(labels)), 0.1, np.float32)
    scores[0, np.arange(len(steps)), steps] = 0.9
    manifest = constant_model({'logits': scores}, {'adapter': 'greedy_ctc', 'labels': labels},
                              input_shape=(1, 3, 32, 96))
    with Detector.create(model=manifest, backend=backend) as detector:
        result = detector.detect(np.zeros((32, 96, 3), np.uint8))
    assert result.text == (('cat', pytest.approx(0.9)),)
    assert len(result.detections) == 0 and result.detections.keypoints is None
    with pytest.raises(ModelError, match="adapter greedy_ctc: labels\\[0\\] must be 'blank'"):
        Detector.create(model=constant_model({'logits': scores}, {
            'adapter': 'greedy_ctc', 'labels': ['c', 'a', 't', 'blank']}))
