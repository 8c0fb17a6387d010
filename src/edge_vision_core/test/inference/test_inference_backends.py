"""Every installed backend on the same model and images: agreement, errors, lifetime."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core import BackendError, ConfigError, DeviceUnavailableError, ModelError
from edge_vision_core.inference import Detector, resolve_model
from edge_vision_core.inference.backends import (
    BACKEND_FORMATS,
    BACKENDS,
    Backend,
    BackendOptions,
    available_backends,
    create_backend,
)

pytest.importorskip('edge_vision_models')
#: the runtimes installed here that read the default model's files.
INSTALLED = [b for b in ('onnxruntime', 'openvino', 'litert') if b in available_backends()]
REFERENCE = 'onnxruntime'


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_registry_is_explicit_and_every_backend_subclasses_the_abc():
    assert list(BACKENDS) == ['onnxruntime', 'openvino', 'litert', 'tensorrt']
    for name, cls in BACKENDS.items():
        assert issubclass(cls, Backend) and cls.name == name
    for name, devices in available_backends().items():
        assert devices, f'{name} is installed but reports no device'


@pytest.mark.parametrize('backend', [b for b in INSTALLED if b != REFERENCE])
def test_backends_agree_on_the_default_model(backend, default_detector, real_images):
    """Matched boxes IoU >= 0.98 with the same classes, on every image."""
    reference, other = default_detector(REFERENCE), default_detector(backend)
    total = 0
    for name, image in real_images.items():
        ref = reference.detect(image).detections
        got = other.detect(image).detections
        assert len(got) == len(ref), f'{name}: {backend} found {len(got)}, {REFERENCE} {len(ref)}'
        free = list(range(len(got)))
        for i in range(len(ref)):
            best = max(free, key=lambda j: _iou(ref.boxes[i], got.boxes[j]), default=None)
            assert best is not None
            assert _iou(ref.boxes[i], got.boxes[best]) >= 0.98, name
            assert got.class_ids[best] == ref.class_ids[i], name
            assert abs(float(got.scores[best]) - float(ref.scores[i])) < 0.01
            free.remove(best)
        total += len(ref)
    assert total >= len(real_images)  # the comparison is not vacuous


@pytest.mark.parametrize('backend', [b for b in INSTALLED if b != REFERENCE])
def test_raw_outputs_agree(backend, default_detector, real_images):
    """Same tensors from every runtime (outputs matched by shape: their order may differ)."""
    reference, other = default_detector(REFERENCE), default_detector(backend)
    prepared = reference.preprocess(real_images['astronaut'])
    ref = {o.shape: o for o in reference.backend.run(prepared.inputs)}
    got = {o.shape: o for o in other.backend.run(prepared.inputs)}
    assert set(ref) == set(got)
    for shape, value in ref.items():
        np.testing.assert_allclose(got[shape], value, atol=2e-3)


@pytest.mark.skipif('litert' not in INSTALLED, reason='LiteRT is not installed')
def test_fp16_tflite_file_agrees(default_detector, real_images):
    reference = default_detector(REFERENCE)
    with Detector.create(backend='litert', precision='fp16', threads=2) as fp16:
        assert fp16.model_path.name.endswith('-fp16.tflite')
        for image in real_images.values():
            a, b = reference.detect(image).detections, fp16.detect(image).detections
            assert a.class_ids.tolist() == b.class_ids.tolist()
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1.0)


def test_unknown_backend_lists_what_is_installed():
    with pytest.raises(BackendError, match=r"unknown backend 'tflite'.*installed here: "
                                           r"onnxruntime \(cpu"):
        Detector.create(backend='tflite')


def test_absent_device_lists_the_devices_here():
    with pytest.raises(DeviceUnavailableError, match=r"device 'cuda' is not available for "
                                                     r"backend 'onnxruntime' here; available: "
                                                     r"cpu\. Installed here: onnxruntime \(cpu"):
        Detector.create(backend='onnxruntime', device='cuda')
    if 'openvino' in INSTALLED:
        with pytest.raises(BackendError, match=r"device 'NPU'.*available: CPU"):
            Detector.create(backend='openvino', device='NPU')


def test_the_formats_each_backend_reads_come_from_its_suffixes():
    assert BACKEND_FORMATS == {'onnxruntime': ('onnx',),
                               'openvino': ('openvino', 'onnx', 'tflite'),
                               'litert': ('tflite',), 'tensorrt': ('engine',)}
    for name, cls in BACKENDS.items():
        assert BACKEND_FORMATS[name] == cls.formats()
    from edge_vision_core.inference import detector

    assert detector.BACKEND_FORMATS is BACKEND_FORMATS  # the accessor the anomaly code uses


@pytest.mark.skipif('tensorrt' in available_backends(), reason='TensorRT is installed here')
def test_tensorrt_reports_itself_missing_cleanly():
    with pytest.raises(BackendError, match='tensorrt.*not installed'):
        Detector.create(backend='tensorrt')


@pytest.mark.parametrize('backend', INSTALLED)
def test_garbage_model_file_is_a_model_error_naming_the_file(backend, tmp_path):
    suffix = {'litert': '.tflite'}.get(backend, '.onnx')
    path = tmp_path / f'garbage{suffix}'
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match=f'garbage{suffix}'):
        create_backend(backend, BackendOptions(model_path=str(path)))
    with pytest.raises(ModelError, match='does not exist'):
        create_backend(backend, BackendOptions(model_path=str(tmp_path / f'none{suffix}')))


def test_backend_refuses_a_format_it_cannot_read():
    tflite = resolve_model('nanodet-m-416').pick_file(('tflite',))
    with pytest.raises(ModelError, match='reads .onnx'):
        create_backend('onnxruntime', BackendOptions(model_path=str(tflite.path)))


@pytest.mark.parametrize('backend', INSTALLED)
def test_close_releases_and_is_idempotent(backend, real_images):
    detector = Detector.create(backend=backend, threads=1)
    with detector:
        assert len(detector.detect(real_images['astronaut']).detections) >= 1
    assert detector.backend.closed
    detector.close()
    with pytest.raises(BackendError, match='closed'):
        detector.detect(real_images['astronaut'])


def test_backend_options_are_validated():
    with pytest.raises(ConfigError, match='threads'):
        BackendOptions(model_path='x.onnx', threads=-1)
    with pytest.raises(ConfigError, match='precision'):
        BackendOptions(model_path='x.onnx', precision='int4')
