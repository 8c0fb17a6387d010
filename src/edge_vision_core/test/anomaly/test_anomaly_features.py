"""Feature extraction: the derived backbone is the detector's own backbone, on every backend."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from edge_vision_core import ConfigError, ModelError
from edge_vision_core.anomaly.features import (
    COLOR_LAYERS,
    CONTRAST_LAYERS,
    DEFAULT_BACKBONE,
    FeatureExtractor,
    FeatureManifest,
    create_feature_extractor,
    list_backbones,
    resolve_backbone,
)
from edge_vision_core.inference.backends import available_backends

edge_vision_models = pytest.importorskip('edge_vision_models')

#: the round-1 backbone (COCO-pretrained NanoDet), still shipped.
NANODET = 'nanodet-m-416-backbone'


@pytest.fixture(scope='module')
def image() -> np.ndarray:
    """A real 640x480 bgr8 frame (scikit-image's motorcycle, left view)."""
    rgb = skimage.data.stereo_motorcycle()[0]
    return np.ascontiguousarray(cv2.resize(rgb, (640, 480))[..., ::-1])


def test_shipped_backbone_manifest_and_checksum():
    assert {NANODET, DEFAULT_BACKBONE} <= set(list_backbones())
    manifest = resolve_backbone(NANODET)
    assert manifest.name == NANODET and manifest.format == 'onnx'
    assert hashlib.sha256(manifest.path.read_bytes()).hexdigest() == manifest.sha256
    assert [(m.name, m.stride, m.channels) for m in manifest.feature_maps] == [
        ('stride4', 4, 64), ('stride8', 8, 128), ('stride16', 16, 256)]
    assert manifest.color_order == 'bgr' and manifest.mean == (103.53, 116.28, 123.675)
    assert resolve_backbone('none') is None


def test_backbone_outputs_are_the_detectors_internal_tensors(image):
    """At 416x416 the derived model equals the same tensors inside the detector ONNX."""
    onnx = pytest.importorskip('onnx')
    ort = pytest.importorskip('onnxruntime')
    manifest = resolve_backbone(NANODET)
    info = json.loads(Path(manifest.source).read_text())
    detector = onnx.load(str(edge_vision_models.models_dir() / 'nanodet-m-416.onnx'))
    for spec in info['feature_maps']:
        detector.graph.output.append(onnx.helper.make_tensor_value_info(
            spec['source_tensor'], onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(detector.SerializeToString(),
                                   providers=['CPUExecutionProvider'])
    with create_feature_extractor(NANODET, (416, 416),
                                  ['stride4', 'stride8', 'stride16']) as extractor:
        boxed, _ = extractor.prepare(image)
        mine = extractor.extract(image).maps
        blob = extractor._blob
        reference = session.run([s['source_tensor'] for s in info['feature_maps']],
                                {'input': blob})
    assert boxed.shape == (416, 416, 3)
    for spec, ref in zip(info['feature_maps'], reference, strict=True):
        np.testing.assert_allclose(mine[spec['name']], ref[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('backend', sorted(set(available_backends()) & {'onnxruntime',
                                                                        'openvino'}))
@pytest.mark.parametrize('size, margin', [((320, 240), 0), ((192, 128), 32)])
def test_backbone_runs_at_any_size_on_every_onnx_backend(image, backend, size, margin):
    layers = ['stride8', 'stride16', 'color8']
    with create_feature_extractor(NANODET, size, layers, backend=backend,
                                  margin=margin) as extractor:
        features = extractor.extract(image)
    w, h = size
    assert features.maps['stride8'].shape == (128, h // 8, w // 8)
    assert features.maps['stride16'].shape == (256, h // 16, w // 16)
    assert features.maps['color8'].shape == (11, h // 8, w // 8)
    assert all(m.dtype == np.float32 for m in features.maps.values())
    if backend != 'onnxruntime':
        with create_feature_extractor(NANODET, size, layers, margin=margin) as ref:
            expected = ref.extract(image).maps
        for name in layers:
            scale = float(np.abs(expected[name]).max())
            np.testing.assert_allclose(features.maps[name], expected[name],
                                       atol=1e-3 * scale)


def test_colour_statistics_of_a_flat_and_a_striped_image():
    flat = np.full((64, 64, 3), (30, 120, 200), np.uint8)
    with FeatureExtractor((64, 64), list(COLOR_LAYERS)) as extractor:
        assert extractor.id == 'none' and extractor.backend is None
        maps = extractor.extract(flat).maps
    lab = cv2.cvtColor(flat[:1, :1], cv2.COLOR_BGR2LAB)[0, 0].astype(np.float32)
    for name, stride in COLOR_LAYERS.items():
        m = maps[name]
        assert m.shape == (11, 64 // stride, 64 // stride)
        np.testing.assert_allclose(m[:3], lab[:, None, None] * np.ones_like(m[:3]), atol=1e-3)
        assert np.abs(m[3:]).max() < 1e-3  # no gradient, no spread
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::4] = 255  # vertical lines: horizontal gradients
    with FeatureExtractor((64, 64), ['color8']) as extractor:
        m = extractor.extract(stripes).maps['color8'][:, 2:6, 2:6]
    orient = m[4:8].mean(axis=(1, 2))  # along x, y, the diagonal, the anti-diagonal
    assert int(np.argmax(orient)) == 0 and orient[0] > 10 * orient[1]
    assert orient[2] == pytest.approx(orient[3], rel=1e-3)
    assert m[8].mean() > 50  # L varies inside the cells


def _exposure(image: np.ndarray, gain: float, offset: float, slope: float) -> np.ndarray:
    """The same view under other exposure: gain, offset and a left-right illumination ramp."""
    ramp = np.linspace(-slope / 2, slope / 2, image.shape[1], dtype=np.float32)
    out = image.astype(np.float32) * gain + offset + ramp[None, :, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_local_contrast_sees_a_faint_stain_and_not_the_exposure():
    """A blob 25 % of the way to black (radius 10 px) on a real texture moves the contrast of
    its cells far more than a 10 % gain, an offset of 8 and a ramp of 12 grey levels move any
    cell; the colour statistics' mean L moves more under that exposure change than under the
    stain."""
    texture = cv2.cvtColor(skimage.data.gravel()[:256, :256], cv2.COLOR_GRAY2BGR)
    yy, xx = np.mgrid[0:256, 0:256]
    alpha = 0.25 * np.exp(-((xx - 160) ** 2 + (yy - 96) ** 2) / (2 * 7.0 ** 2))
    stained = np.round(texture * (1 - alpha[..., None])).astype(np.uint8)
    brighter = _exposure(texture, 1.1, 8.0, 12.0)
    with FeatureExtractor((256, 256), ['contrast8', 'color8']) as extractor:
        assert extractor.color == 'color-gradient/2+local-contrast/1'
        base, stain, light = (extractor.extract(x).maps for x in (texture, stained, brighter))
    assert base['contrast8'].shape == (3, 32, 32)
    by_stain = np.abs(stain['contrast8'][0] - base['contrast8'][0])
    by_light = np.abs(light['contrast8'][0] - base['contrast8'][0])
    cy, cx = np.unravel_index(np.argmax(by_stain), by_stain.shape)
    assert abs(cy - 96 // 8) <= 1 and abs(cx - 160 // 8) <= 1  # the stain's own cells
    assert by_stain.max() > 3 * by_light.max()
    mean_l = (np.abs(stain['color8'][0] - base['color8'][0]).max(),
              np.abs(light['color8'][0] - base['color8'][0]).max())
    assert mean_l[1] > mean_l[0]  # absolute statistics: exposure outweighs the stain


def test_local_contrast_of_a_flat_image_is_zero_at_every_stride():
    flat = np.full((64, 96, 3), (30, 120, 200), np.uint8)
    with FeatureExtractor((96, 64), list(CONTRAST_LAYERS)) as extractor:
        assert extractor.id == 'none' and extractor.color == 'local-contrast/1'
        maps = extractor.extract(flat).maps
    for name, stride in CONTRAST_LAYERS.items():
        assert maps[name].shape == (3, 64 // stride, 96 // stride)
        assert np.abs(maps[name]).max() < 1e-4


def test_letterbox_and_margin_keep_the_image_geometry(image):
    with FeatureExtractor((320, 320), ['color8', 'contrast8'], margin=32) as extractor:
        boxed, transform = extractor.prepare(image)
        features = extractor.extract(image)
    assert boxed.shape == (320 + 64, 320 + 64, 3)
    assert (transform.pad_x, transform.pad_y) == (0, 40)
    # the resized image sits at (margin + pad) and its border is mirrored, not constant
    inner = boxed[32 + 40:32 + 280, 32:32 + 320]
    np.testing.assert_array_equal(inner, cv2.resize(image, (320, 240)))
    np.testing.assert_array_equal(boxed[32 + 39], boxed[32 + 41])
    assert features.maps['color8'].shape == (11, 40, 40)
    assert features.maps['contrast8'].shape == (3, 40, 40)


@pytest.mark.parametrize('kwargs, error, message', [
    ({'input_size': (100, 64)}, ConfigError, 'multiples of 16'),
    ({'margin': 8}, ConfigError, 'margin'),
    ({'layers': ['stride32']}, ConfigError, 'not available'),
    ({'layers': []}, ConfigError, 'at least one'),
    ({'resize': 'crop'}, ConfigError, 'resize'),
])
def test_bad_settings(kwargs, error, message):
    args = {'input_size': (64, 64), 'layers': ['stride8'], **kwargs}
    with pytest.raises(error, match=message):
        create_feature_extractor(NANODET, args.pop('input_size'), args.pop('layers'),
                                 **args)


def test_unknown_backbone_and_bad_manifest(tmp_path):
    with pytest.raises(ModelError, match='unknown backbone'):
        resolve_backbone('resnet18')
    with pytest.raises(ModelError, match='does not exist'):
        resolve_backbone(str(tmp_path / 'x.json'))
    (tmp_path / 'det.json').write_text('{"kind": "detector", "name": "x"}')
    with pytest.raises(ModelError, match='feature_extractor'):
        resolve_backbone(str(tmp_path / 'det.json'))
    with pytest.raises(ModelError, match='missing'):
        FeatureManifest.from_dict({'kind': 'feature_extractor', 'name': 'x'}, tmp_path)


def test_changed_backbone_file_is_refused(tmp_path):
    manifest = resolve_backbone(NANODET)
    data = bytearray(manifest.path.read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / 'b.onnx').write_bytes(bytes(data))
    info = json.loads(Path(manifest.source).read_text())
    info['file'] = 'b.onnx'
    (tmp_path / 'b.json').write_text(json.dumps(info))
    with pytest.raises(ModelError, match='corrupt or was changed'):
        create_feature_extractor(str(tmp_path / 'b.json'), (64, 64), ['stride8'])


#: the shipped ImageNet backbone's documented outputs: name -> (stride, channels).
EFFICIENTNET_OUTPUTS = {'stride4': (4, 24), 'stride8': (8, 40), 'stride16': (16, 112)}


def test_the_imagenet_backbone_is_the_default_and_its_record_holds_the_checks():
    assert DEFAULT_BACKBONE == 'efficientnet-lite0-features'
    manifest = resolve_backbone(DEFAULT_BACKBONE)
    assert {m.name: (m.stride, m.channels) for m in manifest.feature_maps} == \
        EFFICIENTNET_OUTPUTS
    assert manifest.color_order == 'rgb' and manifest.mean == (127.0, 127.0, 127.0)
    assert hashlib.sha256(manifest.path.read_bytes()).hexdigest() == manifest.sha256
    assert manifest.path.stat().st_size < 20e6
    record = json.loads((manifest.path.parent / 'efficientnet-lite0.conversion.json')
                        .read_text())
    assert record['files'][manifest.path.name]['sha256'] == manifest.sha256
    top5 = record['classification_check']['top5']
    assert any('cat' in row['name'] for row in top5['chelsea'])
    assert any(word in row['name'] for row in top5['coffee']
               for word in ('espresso', 'cup', 'coffee'))
    for runtime, diffs in record['verification']['max_abs_diff_relative_to_max_abs'].items():
        assert max(diffs.values()) < 1e-3, runtime
    assert (manifest.path.parent / 'LICENSE.efficientnet-lite0').is_file()
    assert 'efficientnet-lite0-features.onnx' in (manifest.path.parent / 'NOTICE').read_text()


@pytest.mark.parametrize('backend', sorted(set(available_backends()) & {'onnxruntime',
                                                                        'openvino'}))
def test_the_imagenet_backbone_loads_on_every_onnx_backend_with_its_documented_shapes(
        image, backend):
    layers = list(EFFICIENTNET_OUTPUTS)
    with create_feature_extractor(DEFAULT_BACKBONE, (256, 192), layers,
                                  backend=backend) as extractor:
        assert extractor.backend.name == backend
        features = extractor.extract(image)
    for name, (stride, channels) in EFFICIENTNET_OUTPUTS.items():
        assert features.maps[name].shape == (channels, 192 // stride, 256 // stride), name
        assert features.maps[name].dtype == np.float32
        assert np.isfinite(features.maps[name]).all()
    # the stage outputs are linear projections (no ReLU after them): both signs occur
    assert all(features.maps[name].min() < 0.0 < features.maps[name].max() for name in layers)
    if backend != 'onnxruntime':
        with create_feature_extractor(DEFAULT_BACKBONE, (256, 192), layers) as ref:
            expected = ref.extract(image).maps
        for name in layers:
            scale = float(np.abs(expected[name]).max())
            np.testing.assert_allclose(features.maps[name], expected[name], atol=1e-3 * scale)
