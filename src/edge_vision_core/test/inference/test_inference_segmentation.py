"""Semantic segmentation: the shipped person segmenters on real photos through every backend,
user models in NCHW and NHWC through the same adapter with only a manifest, and the mapping of
masks and probabilities back to the image."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import ModelError
from edge_vision_core.inference import Detector, compute_letterbox, mask_to_image
from edge_vision_core.inference.adapters import decode_segmentation, segmentation_probability
from edge_vision_core.inference.backends import available_backends
from edge_vision_core.inference.letterbox import probability_to_image

INSTALLED = [b for b in ('onnxruntime', 'openvino', 'litert') if b in available_backends()]
ONNX_BACKENDS = [b for b in ('onnxruntime', 'openvino') if b in available_backends()]


@pytest.mark.parametrize('backend', INSTALLED)
@pytest.mark.parametrize('model', ['selfie-segmentation', 'selfie-segmentation-landscape'])
def test_person_segmenter_on_a_real_photo(model, backend, shipped_detector, real_images):
    detector = shipped_detector(model, backend)
    assert detector.is_segmentation and detector.labels == ('background', 'person')
    image = real_images['astronaut']
    mask = detector.detect(image).mask
    assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {0, 1}
    # face and orange suit are the person; the flag corner and the sky above the shuttle not
    assert np.mean(mask[90:170, 180:260]) > 0.95 and np.mean(mask[300:480, 100:320]) > 0.95
    assert np.mean(mask[0:60, 420:512]) < 0.02 and np.mean(mask[0:60, 0:60]) < 0.05
    # a street photo without people is background (the selfie models do take a close-up main
    # subject for a person: 66-90 % of chelsea the cat, see the README)
    assert np.mean(detector.detect(real_images['motorcycle']).mask) < 0.05


@pytest.mark.parametrize('model', ['selfie-segmentation', 'selfie-segmentation-landscape'])
def test_backends_agree_on_the_person_mask(model, shipped_detector, real_images):
    image = real_images['astronaut']
    reference = shipped_detector(model, 'onnxruntime').detect(image).mask
    for backend in INSTALLED[1:]:
        other = shipped_detector(model, backend).detect(image).mask
        assert np.mean(other == reference) > 0.995, backend


def test_person_mask_edges_follow_the_probability_not_the_model_grid(shipped_detector,
                                                                      real_images):
    """A 256x256 output stretched to 1024x1024 must not be made of 4x4 blocks."""
    image = np.repeat(np.repeat(real_images['astronaut'], 2, axis=0), 2, axis=1)
    mask = shipped_detector('selfie-segmentation', 'onnxruntime').detect(image).mask
    blocks = mask.reshape(256, 4, 256, 4).transpose(0, 2, 1, 3).reshape(256, 256, 16)
    mixed = np.any(blocks != blocks[..., :1], axis=2)
    assert mixed.sum() > 100  # the edge runs through blocks, not along their borders


# -- user models: NCHW and NHWC logits, coarser than the input ----------------------------------

def _rgb_segmenter(path, layout: str, size: int = 64, stride: int = 4) -> None:
    """A real (input-dependent) segmenter: per pixel, the logits are the R, G, B values, so the
    class is the dominant colour; the output is ``stride`` times coarser than the input, as
    DeepLabV3/Segformer exports are. NCHW: [1, 3, H, W] -> [1, 3, h, w]; NHWC: [1, H, W, 3] ->
    [1, h, w, 3]."""
    onnx = pytest.importorskip('onnx')
    from onnx import TensorProto, helper, numpy_helper

    # the manifest feeds rgb, so channel c of the input is R, G, B: identity 1x1 convolution
    weight = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    nodes = []
    source = 'images'
    if layout == 'NHWC':
        nodes.append(helper.make_node('Transpose', ['images'], ['nchw'], perm=[0, 3, 1, 2]))
        source = 'nchw'
    nodes += [
        helper.make_node('Conv', [source, 'weight'], ['conv']),
        helper.make_node('AveragePool', ['conv'], ['pooled'], kernel_shape=[stride, stride],
                         strides=[stride, stride]),
    ]
    out = size // stride
    if layout == 'NHWC':
        nodes.append(helper.make_node('Transpose', ['pooled'], ['logits'], perm=[0, 2, 3, 1]))
        shapes = ([1, size, size, 3], [1, out, out, 3])
    else:
        nodes.append(helper.make_node('Identity', ['pooled'], ['logits']))
        shapes = ([1, 3, size, size], [1, 3, out, out])
    graph = helper.make_graph(
        nodes, 'rgb_segmenter',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, shapes[0])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, shapes[1])],
        [numpy_helper.from_array(weight, 'weight')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _tricolour(width: int = 150, height: int = 90) -> np.ndarray:
    """BGR image: red, green and blue vertical thirds."""
    image = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    image[:, :third, 2] = 255
    image[:, third:2 * third, 1] = 255
    image[:, 2 * third:, 0] = 255
    return image


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
@pytest.mark.parametrize('layout', ['NCHW', 'NHWC'])
def test_a_user_model_needs_only_a_manifest(layout, backend, tmp_path):
    yaml = pytest.importorskip('yaml')
    _rgb_segmenter(tmp_path / 'rgb.onnx', layout)
    manifest = {'name': 'rgb-seg', 'adapter': 'segmentation', 'file': 'rgb.onnx',
                'input_size': [64, 64], 'layout': layout, 'color_order': 'rgb',
                'scale': 1 / 255, 'labels': ['red', 'green', 'blue']}
    (tmp_path / 'rgb.yaml').write_text(yaml.safe_dump(manifest))
    image = _tricolour()  # 150x90: letterboxed with bands above and below
    with Detector.create(model=str(tmp_path / 'rgb.yaml'), backend=backend) as detector:
        mask = detector.detect(image).mask
    assert mask.shape == (90, 150)
    for cls, columns in enumerate((slice(0, 50), slice(50, 100), slice(100, 150))):
        inner = mask[:, columns][:, 4:-4]  # away from the coarse output's boundary cells
        assert np.mean(inner == cls) > 0.97, (cls, np.bincount(inner.reshape(-1)))


def test_an_unexpected_output_layout_fails_clearly(tmp_path, constant_model):
    manifest = constant_model({'logits': np.zeros((1, 5, 8, 8), np.float32)},
                              {'adapter': 'segmentation', 'labels': ['a', 'b', 'c']})
    with pytest.raises(ModelError, match='no axis of 3 classes'):
        Detector.create(model=manifest)
    # a rank the contract check cannot judge fails at decode time with the shapes named
    with pytest.raises(ModelError, match=r'segmentation adapter: expected .*\(1, 2, 3, 4, 5\)'):
        decode_segmentation([np.zeros((1, 2, 3, 4, 5), np.float32)], 3)


# -- mapping back to the image -------------------------------------------------------------------

@pytest.mark.parametrize('keep_aspect', [True, False])
def test_probability_and_class_map_land_on_the_same_pixels(keep_aspect):
    transform = compute_letterbox((640, 360), (256, 256), keep_aspect=keep_aspect)
    prob = np.zeros((256, 256), np.float32)
    rows = slice(transform.pad_y, transform.pad_y + transform.resized_size[1])
    prob[rows, 128:] = 1.0
    prob[:transform.pad_y] = 1.0  # the padding says "person": must not leak into the image
    smooth = probability_to_image(prob, transform)
    nearest = mask_to_image((prob > 0.5).astype(np.uint8), transform)
    assert smooth.shape == nearest.shape == (360, 640)
    assert np.array_equal(smooth > 0.5, nearest.astype(bool))
    assert smooth[0, 0] == 0.0 and smooth[0, -1] == 1.0


def test_segmentation_probability_only_for_single_channel_probabilities():
    prob = np.full((1, 8, 8, 1), 0.25, np.float32)
    assert segmentation_probability([prob]).shape == (8, 8)
    assert segmentation_probability([prob.transpose(0, 3, 1, 2)]).shape == (8, 8)
    assert segmentation_probability([np.zeros((1, 3, 8, 8), np.float32)]) is None
    assert segmentation_probability([np.ones((1, 8, 8), np.int64)]) is None
    assert segmentation_probability([np.ones((1, 1, 8, 8), np.float32)]) is None  # a class map


@pytest.mark.parametrize('backend', ONNX_BACKENDS)
def test_the_detector_brings_a_probability_to_the_image_before_the_threshold(constant_model,
                                                                              backend):
    """One hot cell of a coarse probability: interpolated first, it is a rounded blob smaller
    than the nearest-neighbour square of the same cell."""
    prob = np.zeros((1, 1, 4, 4), np.float32)
    prob[0, 0, 1, 2] = 0.9
    manifest = constant_model({'person_probability': prob}, {
        'adapter': 'segmentation', 'labels': ['background', 'person']})
    with Detector.create(model=manifest, backend=backend) as detector:
        mask = detector.detect(np.zeros((64, 64, 3), np.uint8)).mask
    transform = compute_letterbox((64, 64), (64, 64))
    expected = (probability_to_image(prob[0, 0], transform) > 0.5).astype(np.uint8)
    square = mask_to_image((prob[0, 0] > 0.5).astype(np.uint8), transform)
    assert mask.dtype == np.uint8 and np.array_equal(mask, expected)
    assert 0 < mask.sum() < square.sum() == 16 * 16
    assert mask[24, 40] == 1 and mask[17, 33] == 0 and square[17, 33] == 1
