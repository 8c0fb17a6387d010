"""Calibration / evaluation image sets: default set, folders, videos, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vision_core.errors import ConfigError, SourceError
from edge_vision_core.optimize.images import (
    default_calibration_images,
    default_eval_images,
    image_set_sha256,
    load_image_set,
)

pytest.importorskip('skimage.data')


def noise_image(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_default_calibration_set_is_reproducible():
    a = default_calibration_images(12, seed=3)
    b = default_calibration_images(12, seed=3)
    c = default_calibration_images(12, seed=4)
    assert len(a) == 12 and a.sha256 == b.sha256 != c.sha256
    assert a.sha256 == image_set_sha256(a.images)
    for image in a.images:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_default_eval_set_is_fixed():
    a, b = default_eval_images(), default_eval_images()
    assert len(a) == 21 and a.sha256 == b.sha256
    assert a.names[:3] == ('astronaut_full', 'astronaut_mirror', 'astronaut_crop')


def test_hash_depends_on_order_and_shape():
    x, y = noise_image(0), noise_image(1)
    assert image_set_sha256([x, y]) != image_set_sha256([y, x])
    assert image_set_sha256([x]) != image_set_sha256([x.reshape(64, 48, 3)])


def test_folder_is_sorted_and_subsampled_evenly(tmp_path):
    for i in range(10):
        cv2.imwrite(str(tmp_path / f'img_{i:02d}.png'), noise_image(i))
    (tmp_path / 'notes.txt').write_text('not an image')
    everything = load_image_set(tmp_path, count=100)
    assert everything.names == tuple(f'img_{i:02d}.png' for i in range(10))
    np.testing.assert_array_equal(everything.images[3], noise_image(3))
    four = load_image_set(tmp_path, count=4)
    assert four.names == ('img_00.png', 'img_03.png', 'img_06.png', 'img_09.png')


def test_video_frames_are_sampled_over_its_length(tmp_path):
    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
    if not writer.isOpened():
        pytest.skip('this OpenCV build cannot write MJPG video')
    for i in range(20):
        frame = np.full((48, 64, 3), i * 12, np.uint8)
        writer.write(frame)
    writer.release()
    frames = load_image_set(path, count=5)
    assert len(frames) == 5 and frames.names[0] == 'frame_0' and frames.names[-1] == 'frame_19'
    levels = [int(np.median(f)) for f in frames.images]
    assert levels == sorted(levels) and levels[-1] > levels[0] + 150


@pytest.mark.parametrize(('make', 'message'), [
    (lambda p: p / 'missing', 'does not exist'),
    (lambda p: p, 'holds no image'),
])
def test_bad_sources_are_clear_errors(tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        load_image_set(make(tmp_path))


def test_unreadable_video_is_a_source_error(tmp_path):
    path = tmp_path / 'broken.mp4'
    path.write_bytes(b'not a video at all')
    with pytest.raises(SourceError):
        load_image_set(path)


def test_count_must_be_positive():
    with pytest.raises(ConfigError):
        load_image_set('', count=0)
