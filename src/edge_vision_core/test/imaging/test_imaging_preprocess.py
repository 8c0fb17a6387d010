"""Preprocessor: configuration, step order, gate, encodings, camera models, diagnostics."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from edge_vision_core import CameraModel, ConfigError, ConversionError, DataError
from edge_vision_core.config import config_fields, config_from_mapping
from edge_vision_core.imaging import (
    GATE_REASONS,
    STEP_TABLE,
    STEPS,
    PreprocessConfig,
    Preprocessor,
    Undistorter,
    psnr,
    ssim,
)

ALL_ON = {f'enable_{s}': True for s in STEPS}


def _camera(w: int, h: int) -> CameraModel:
    return CameraModel.from_intrinsics(w, h, 0.8 * w, 0.8 * w, w / 2 - 0.5, h / 2 - 0.5,
                                       [-0.25, 0.07, 0.0, 0.0, 0.0])


def _noisy(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(img + rng.normal(0.0, sigma, img.shape)), 0, 255).astype(np.uint8)


# --- configuration ----------------------------------------------------------------------------

def test_every_field_is_documented_and_maps_to_a_ros_parameter_type():
    fields = config_fields(PreprocessConfig)
    assert {f.name for f in fields} == {f.name for f in dataclasses.fields(PreprocessConfig)}
    assert all(len(f.spec.description) > 20 for f in fields)


def test_the_step_table_declares_every_switch_and_parameter():
    names = [f.name for f in dataclasses.fields(PreprocessConfig)]
    flags = [step.flag for step in STEP_TABLE.values()]
    params = [name for step in STEP_TABLE.values() for name in step.fields]
    assert names[:1 + len(flags)] == ['order', *flags]  # the switches follow order
    start = names.index(params[0])
    assert names[start:start + len(params) + 1] == [*params, 'gate_action']
    cfg = PreprocessConfig()
    assert STEPS == tuple(STEP_TABLE) == cfg.order
    for step in STEP_TABLE.values():
        assert getattr(cfg, step.flag) is step.enabled is cfg.is_enabled(step.name)
        assert {name: getattr(cfg, name) for name in step.fields} == {
            name: default for name, (_, default, _) in step.fields.items()}
        assert set(step.state_fields) <= set(step.fields)


def test_config_from_a_parameter_mapping():
    cfg = config_from_mapping(PreprocessConfig, {
        'order': ['resize', 'denoise', 'exposure'], 'enable_undistort': False,
        'enable_white_balance': False, 'enable_clahe': False, 'enable_sharpen': False,
        'enable_resize': True, 'resize_width': 320, 'sharpen_amount': 2})
    assert cfg.order == ('resize', 'denoise', 'exposure') and cfg.sharpen_amount == 2.0


@pytest.mark.parametrize(('changes', 'match'), [
    ({'order': ('denoise', 'denoise')}, 'lists a step twice'),
    ({'order': ('denoise', 'blur')}, "order must be one of .*got 'blur'"),
    ({'order': ('denoise',)}, "enable_exposure is True but 'exposure' is not in order"),
    ({'exposure_target': 1.5}, r'exposure_target must be in \[0.05, 0.95\]'),
    ({'exposure_target': float('nan')}, 'must be finite'),
    ({'exposure_target': '0.5'}, 'must be float'),
    ({'enable_denoise': 1}, 'must be bool'),
    ({'metrics_decimation': 0}, 'metrics_decimation must be in'),
    ({'denoise_ksize': 4}, 'denoise_ksize must be odd'),
    ({'denoise_method': 'wiener'}, 'denoise_method must be one of'),
    ({'dark_level': 0.9, 'bright_level': 0.1}, 'must be below bright_level'),
    ({'gate_min_brightness': 0.9, 'gate_max_brightness': 0.5}, 'must exceed'),
    ({'enable_resize': True}, 'needs resize_width and/or resize_height'),
    ({'undistort_alpha': -0.5}, 'must be -1 or in'),
    ({'sharpen_kernel': (0.0, -1.0, 0.0, -1.0, 4.0, -1.0, 0.0, -1.0, 0.0)}, 'sums to 0'),
    ({'sharpen_kernel': (1.0, 0.0)}, 'k\\*k values'),
    ({'gate_min_sharpness': -1.0}, 'gate_min_sharpness must be in'),
])
def test_absurd_settings_raise_config_errors_naming_the_field(changes, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(PreprocessConfig(), **changes)


# --- the pipeline -----------------------------------------------------------------------------

def test_defaults_on_a_good_frame_leave_it_alone_and_report_everything(load_image):
    img, enc = load_image('astronaut')
    before = img.copy()
    result = Preprocessor().process(img, enc)
    np.testing.assert_array_equal(result.image, img)
    assert result.image is not img  # the caller owns the result
    np.testing.assert_array_equal(img, before)
    assert result.verdict.ok and result.steps == () and result.encoding == 'bgr8'
    assert set(result.skipped) == {'exposure', 'undistort'}  # in band; no camera_info
    assert result.camera is None and result.output_metrics is None
    assert {'metrics_input', 'total'} <= set(result.timings_ms)
    assert all(v >= 0 for v in result.timings_ms.values())
    assert not result.warnings and not result.dropped and result.converted_from is None


def test_steps_run_in_the_configured_order_and_are_timed(load_image):
    img, enc = load_image('rocket')
    h, w = img.shape[:2]
    cfg = PreprocessConfig(**ALL_ON, order=('resize', *[s for s in STEPS if s != 'resize']),
                           resize_width=w // 2, denoise_min_sigma=0.0,
                           exposure_tolerance=0.0)
    result = Preprocessor(cfg).process(img, enc, _camera(w, h))
    assert result.steps == cfg.order
    assert set(cfg.order) <= set(result.timings_ms)
    assert result.image.shape == (round(h / 2), w // 2, 3)
    # resize ran first, so the rectification used the scaled calibration
    expected = Undistorter().rectified_camera(_camera(w, h).scaled(w // 2, round(h / 2)))
    assert result.camera.allclose(expected)
    assert {'gamma', 'wb_gain_b', 'wb_gain_g', 'wb_gain_r', 'denoise_sigma'} <= \
        set(result.parameters)


def test_resize_after_undistortion_scales_the_rectified_model(load_image):
    img, enc = load_image('astronaut')
    cfg = PreprocessConfig(enable_resize=True, resize_height=256)
    result = Preprocessor(cfg).process(img, enc, _camera(512, 512))
    assert result.steps == ('undistort', 'resize') and result.image.shape == (256, 256, 3)
    rect = Undistorter().rectified_camera(_camera(512, 512))
    assert result.camera.allclose(rect.scaled(256, 256))
    assert not np.any(result.camera.D)


@pytest.mark.parametrize('name', ['astronaut', 'brick', 'text'])
def test_the_pipeline_brings_degraded_frames_closer_to_the_original(name, load_image, rng):
    img, enc = load_image(name)
    dark = cv2.convertScaleAbs(img, alpha=0.35)
    fixed = Preprocessor(PreprocessConfig(enable_undistort=False)).process(dark, enc).image
    assert psnr(img, fixed) > psnr(img, dark) + 1 and ssim(img, fixed) > ssim(img, dark)
    noisy = _noisy(img, 15.0, rng)
    cfg = PreprocessConfig(enable_denoise=True, enable_undistort=False)
    fixed = Preprocessor(cfg).process(noisy, enc).image
    assert psnr(img, fixed) > psnr(img, noisy) + 1 and ssim(img, fixed) > ssim(img, noisy)


def test_denoising_is_skipped_on_clean_frames(load_image):
    img, enc = load_image('brick')
    result = Preprocessor(PreprocessConfig(enable_denoise=True)).process(img, enc)
    assert 'denoise' not in result.steps and 'below denoise_min_sigma' in result.skipped['denoise']


@pytest.mark.parametrize('encoding', ['mono8', 'mono16', 'bgr16', 'rgb8'])
def test_every_native_encoding_runs_every_step(encoding, load_image):
    img, _ = load_image('astronaut')
    img = img[:240, :320]
    if encoding.startswith('mono'):
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if encoding == 'rgb8':
        img = img[:, :, ::-1]
    if encoding.endswith('16'):
        img = img.astype(np.uint16) * 257
    img = np.ascontiguousarray(img)
    for method in ('gaussian', 'median', 'bilateral', 'nlmeans'):
        cfg = PreprocessConfig(**ALL_ON, resize_width=160, denoise_min_sigma=0.0,
                               denoise_method=method, exposure_tolerance=0.0,
                               output_metrics=True)
        result = Preprocessor(cfg).process(img, encoding, _camera(320, 240))
        assert result.steps == STEPS if encoding != 'mono8' and encoding != 'mono16' else \
            tuple(s for s in STEPS if s != 'white_balance')
        assert result.image.dtype == img.dtype and result.image.shape[:2] == (120, 160)
        assert result.encoding == encoding and result.output_metrics is not None


# --- the quality gate -------------------------------------------------------------------------

@pytest.mark.parametrize(('degrade', 'settings', 'reason'), [
    (lambda im, rng: cv2.convertScaleAbs(im, alpha=0.1), {}, 'too_dark'),
    (lambda im, rng: cv2.convertScaleAbs(im, alpha=4.0), {}, 'too_bright'),
    (lambda im, rng: cv2.GaussianBlur(im, (0, 0), 4.0), {'gate_min_sharpness': 30.0},
     'too_blurred'),
    (lambda im, rng: _noisy(im, 20.0, rng), {'gate_max_noise_sigma': 8.0}, 'too_noisy'),
    (lambda im, rng: cv2.addWeighted(im, 0.2, im, 0.0, 100), {'gate_min_contrast': 0.1},
     'low_contrast'),
])
def test_the_gate_names_the_reason_and_drops_only_when_asked(degrade, settings, reason,
                                                             load_image, rng):
    img, enc = load_image('astronaut')
    bad = degrade(img, rng)
    flag = Preprocessor(PreprocessConfig(**settings))
    assert flag.process(img, enc).verdict.ok  # the clean frame passes the same thresholds
    flagged = flag.process(bad, enc)
    assert reason in flagged.verdict.reasons and not flagged.verdict
    assert flagged.image is not None and not flagged.dropped
    drop = Preprocessor(PreprocessConfig(**settings, gate_action='drop'))
    dropped = drop.process(bad, enc)
    assert dropped.image is None and dropped.dropped and dropped.steps == ()
    assert drop.stats.dropped == 1 and drop.stats.reasons[reason] == 1
    off = Preprocessor(PreprocessConfig(**settings, gate_action='off')).process(bad, enc)
    assert off.verdict.ok and off.image is not None
    assert set(flagged.verdict.reasons) <= set(GATE_REASONS)


def test_gate_on_output_judges_the_corrected_frame(load_image):
    img, enc = load_image('astronaut')
    dark = cv2.convertScaleAbs(img, alpha=0.15)
    on_input = Preprocessor().process(dark, enc)
    on_output = Preprocessor(PreprocessConfig(gate_on='output')).process(dark, enc)
    assert on_input.verdict.reasons == ('too_dark',) and 'exposure' in on_input.steps
    assert on_output.verdict.ok and on_output.output_metrics.brightness > 0.3


def test_counters_add_up_and_reset(load_image):
    img, enc = load_image('text')
    pre = Preprocessor(PreprocessConfig(gate_action='drop'))
    for frame in (img, np.zeros_like(img), img, np.zeros_like(img)):
        pre.process(frame, enc)
    assert (pre.stats.frames, pre.stats.flagged, pre.stats.dropped) == (4, 2, 2)
    assert pre.stats.reasons == {'too_dark': 2}
    pre.reset()
    assert pre.stats.frames == 0


# --- encodings and camera models --------------------------------------------------------------

@pytest.mark.parametrize(('encoding', 'make'), [
    ('bgra8', lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2BGRA)),
    ('rgba8', lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2RGBA)),
    ('yuyv', lambda im: cv2.cvtColor(cv2.cvtColor(im, cv2.COLOR_BGR2YUV_YV12)[:im.shape[0]],
                                     cv2.COLOR_GRAY2BGR)[:, :, :2].copy()),
    ('bayer_rggb8', lambda im: im[:, :, 1].copy()),
    ('bgra16', lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2BGRA).astype(np.uint16) * 257),
])
def test_camera_encodings_are_converted_to_a_native_one(encoding, make, load_image):
    img, _ = load_image('astronaut')
    result = Preprocessor().process(make(img), encoding)
    assert result.converted_from == encoding
    assert result.encoding == ('bgr16' if encoding.endswith('16') else 'bgr8')
    assert result.image.shape == (512, 512, 3) and 'convert' in result.timings_ms


@pytest.mark.parametrize(('image', 'encoding', 'match'), [
    (np.zeros((48, 64), np.float32), '32FC1', 'depth and generic multi-channel'),
    (np.zeros((48, 64, 3), np.uint8), '8UC3', 'depth and generic multi-channel'),
    (np.zeros((48, 64, 3), np.uint8), 'bgr9', 'unsupported image encoding'),
    (np.zeros((48, 64), np.uint8), 'bgra8', 'needs uint8 x 4 channel'),
    (np.zeros((48, 64, 3), np.float32), 'bgr8', 'needs a \\(H, W, 3\\) uint8 array'),
    (np.zeros((4, 4, 3), np.uint8), 'bgr8', 'at least 8x8'),
])
def test_unsupported_input_is_refused_with_a_clear_error(image, encoding, match):
    with pytest.raises(ConversionError, match=match):
        Preprocessor().process(image, encoding)


def test_a_camera_info_of_another_size_passes_the_frame_through_with_a_warning(load_image):
    img, enc = load_image('astronaut')
    camera = _camera(640, 480)
    cfg = PreprocessConfig(enable_resize=True, resize_width=256)
    pre = Preprocessor(cfg)
    result = pre.process(img, enc, camera)
    assert result.steps == ('resize',) and 'undistort' in result.skipped
    assert any('512x512 but its camera_info is for 640x480' in w for w in result.warnings)
    assert any('was not scaled' in w for w in result.warnings)
    assert result.camera is camera  # passed through unchanged
    assert pre.stats.warnings == 1
    with pytest.raises(DataError, match='CameraModel or None'):
        pre.process(img, enc, camera={'K': [1] * 9})


def test_an_uncalibrated_camera_passes_through(load_image):
    img, enc = load_image('astronaut')
    camera = CameraModel.uncalibrated(512, 512)
    result = Preprocessor().process(img, enc, camera)
    assert 'not calibrated' in result.skipped['undistort'] and result.camera is camera


def test_configure_keeps_the_maps_unless_undistortion_changes(load_image):
    img, enc = load_image('astronaut')
    camera = _camera(512, 512)
    pre = Preprocessor()
    pre.process(img, enc, camera)
    pre.configure(dataclasses.replace(pre.config, enable_sharpen=True))
    pre.process(img, enc, camera)
    assert pre.undistorter.maps_built == 1
    pre.configure(dataclasses.replace(pre.config, undistort_alpha=0.5))
    result = pre.process(img, enc, camera)
    assert pre.undistorter.maps_built == 1 and pre.config.undistort_alpha == 0.5
    assert not result.camera.allclose(Undistorter().rectified_camera(camera))
    with pytest.raises(ConfigError):
        pre.configure({'enable_sharpen': True})


def test_exposure_smoothing_converges_over_frames_and_resets(load_image):
    img, enc = load_image('astronaut')
    dark = cv2.convertScaleAbs(img, alpha=0.3)
    pre = Preprocessor(PreprocessConfig(exposure_smoothing=0.5, exposure_tolerance=0.0))
    target = Preprocessor(PreprocessConfig(exposure_tolerance=0.0)).process(dark, enc)
    gammas = [pre.process(img, enc).parameters['gamma']]  # a bright frame first
    gammas += [pre.process(dark, enc).parameters['gamma'] for _ in range(12)]
    assert all(a > b for a, b in zip(gammas[1:], gammas[2:], strict=False))  # approaches ...
    assert gammas[-1] == pytest.approx(target.parameters['gamma'], rel=1e-3)  # ... and arrives
    pre.reset()
    assert pre.process(dark, enc).parameters['gamma'] == pytest.approx(
        target.parameters['gamma'])


def test_compare_output_and_output_metrics(load_image, rng):
    img, enc = load_image('brick')
    noisy = _noisy(img, 12.0, rng)
    cfg = PreprocessConfig(enable_denoise=True, compare_output=True, output_metrics=True)
    result = Preprocessor(cfg).process(noisy, enc)
    assert result.psnr == pytest.approx(psnr(noisy, result.image))
    assert result.ssim == pytest.approx(ssim(noisy, result.image))
    assert result.output_metrics.noise_sigma < result.input_metrics.noise_sigma
    assert result.parameters['denoise_sigma'] > 0 and 'denoise' in result.steps
    assert {'metrics_input', 'denoise', 'metrics_output', 'compare', 'total'} <= set(
        result.timings_ms)
