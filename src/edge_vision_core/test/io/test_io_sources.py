"""Frame sources: parsing, the failure contract, the one file/folder/glob/video reader, the
faults of a long run (folders that change, videos deleted or cut while they play), the
synthetic scene's ground truth."""

from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest

from edge_vision_core import ConfigError, SourceError
from edge_vision_core.io.sources import (
    CorruptFrameError,
    ImageFolderSource,
    SourceConfig,
    StreamSource,
    SyntheticSource,
    V4L2Source,
    VideoFileSource,
    list_files,
    open_source,
    parse_source,
    read_frames,
    read_image,
    video_facts,
)
from edge_vision_core.io.synthetic import SyntheticConfig, SyntheticScene


@pytest.mark.parametrize(('spec', 'cls'), [
    ('synthetic', SyntheticSource), ('synthetic:pan', SyntheticSource),
    ('0', V4L2Source), ('/dev/video3', V4L2Source), ('v4l2:///dev/video1', V4L2Source),
    ('rtsp://10.0.0.2:554/stream', StreamSource), ('http://cam.local/mjpg', StreamSource),
    ('gst:videotestsrc ! appsink', StreamSource), ('v4l2src ! videoconvert ! appsink',
                                                    StreamSource),
    ('frames/*.png', ImageFolderSource), ('one.jpg', ImageFolderSource),
    ('clip.mp4', VideoFileSource),
])
def test_source_strings_pick_the_kind(spec, cls):
    assert parse_source(spec) is cls


def test_schemes_are_read_in_any_letter_case():
    from edge_vision_core.io.sources import _v4l2_target

    assert parse_source('V4L2:///dev/video1') is V4L2Source
    assert _v4l2_target('V4L2:///dev/video1') == '/dev/video1' and _v4l2_target('v4l2://2') == 2
    assert StreamSource(SourceConfig(source='GST:videotestsrc ! appsink')).is_gstreamer
    assert not StreamSource(SourceConfig(source='rtsp://10.0.0.2/s')).is_gstreamer


def test_directories_are_image_folders(tmp_path):
    assert parse_source(str(tmp_path)) is ImageFolderSource


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'source': ' '}, 'source is empty'),
    ({'pixel_format': 'MJPEG'}, '4-character FOURCC'),
    ({'fps': -1.0}, r'fps must be in \[0.0, 1000.0\]'),
    ({'source': 'synthetic:moon'}, 'unknown synthetic source'),
])
def test_bad_source_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        open_source(SourceConfig(**kwargs))


def test_missing_camera_and_file_raise_source_errors(tmp_path):
    with pytest.raises(SourceError, match='does not exist: is it plugged in'):
        open_source(SourceConfig(source='/dev/video99')).open()
    with pytest.raises(SourceError, match='not found'):
        open_source(SourceConfig(source=str(tmp_path / 'nope.mp4'))).open()
    with pytest.raises(SourceError, match='no images'):
        open_source(SourceConfig(source=str(tmp_path))).open()
    bad = tmp_path / 'bad.avi'
    bad.write_bytes(b'\x00' * 100)
    with pytest.raises(SourceError, match='cannot decode video file'):
        open_source(SourceConfig(source=str(bad))).open()


def _video(path, n, size=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 12.0, size)
    for i in range(n):
        writer.write(np.full((size[1], size[0], 3), i * 20 % 256, np.uint8))
    writer.release()


def test_video_file_ends_or_loops(tmp_path):
    path = tmp_path / 'v.avi'
    _video(path, 5)
    with open_source(SourceConfig(source=str(path))) as src:
        assert src.native_fps == pytest.approx(12.0)
        frames = [src.read() for _ in range(6)]
    assert [f.index for f in frames[:5]] == [0, 1, 2, 3, 4] and frames[5] is None
    assert frames[0].image.shape == (48, 64, 3)
    with open_source(SourceConfig(source=str(path), loop=True)) as src:
        indices = [src.read().index for _ in range(8)]
    assert indices == [0, 1, 2, 3, 4, 0, 1, 2]


def test_video_facts_read_the_header_and_name_what_fails(tmp_path):
    path = tmp_path / 'v.avi'
    _video(path, 7)
    assert video_facts(path) == (7, pytest.approx(12.0))
    with pytest.raises(SourceError, match='not found'):
        video_facts(tmp_path / 'missing.avi')
    (tmp_path / 'junk.mp4').write_bytes(b'not a video')
    with pytest.raises(SourceError, match='cannot decode'):
        video_facts(tmp_path / 'junk.mp4')


def test_deleted_video_is_reported_as_gone(tmp_path):
    path = tmp_path / 'v.avi'
    _video(path, 3)
    src = open_source(SourceConfig(source=str(path)))
    src.open()
    path.unlink()
    with pytest.raises(SourceError):
        while src.read() is not None:
            pass
    src.close()


def test_image_folder_skips_corrupt_files(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f'{i}.png'), np.full((8, 8), i * 50, np.uint8))
    (tmp_path / '1.png').write_bytes(b'junk')
    src = open_source(SourceConfig(source=str(tmp_path / '*.png')))
    src.open()
    first = src.read()
    assert first.image.shape == (8, 8, 3) and first.image[0, 0, 0] == 0
    with pytest.raises(CorruptFrameError, match='could not decode'):
        src.read()
    assert src.read().image[0, 0, 0] == 100
    assert src.read() is None


def test_image_folder_gives_bgr8_for_16_bit_and_alpha_images(tmp_path):
    cv2.imwrite(str(tmp_path / '0.png'), np.full((8, 8), 65535, np.uint16))  # mono16
    cv2.imwrite(str(tmp_path / '1.png'), np.full((8, 8, 4), (10, 20, 30, 0), np.uint8))
    src = open_source(SourceConfig(source=str(tmp_path)))
    src.open()
    mono16, bgra = src.read().image, src.read().image
    assert mono16.dtype == np.uint8 and mono16.shape == (8, 8, 3) and mono16.min() == 255
    assert bgra.shape == (8, 8, 3) and tuple(bgra[0, 0]) == (10, 20, 30)


def _images(folder, names, value=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((8, 8, 3), value + i, np.uint8))


def test_list_files_order_recursion_and_filters(tmp_path):
    _images(tmp_path / 'a', ['2.png', '10.png', '1.jpg'])
    _images(tmp_path / 'a' / 'sub', ['0.png'])
    _images(tmp_path / 'a-b', ['5.png'])
    (tmp_path / 'a' / 'notes.txt').write_text('not an image')
    _video(tmp_path / 'a' / 'clip.avi', 2)
    names = [p.relative_to(tmp_path).as_posix() for p in list_files(tmp_path / 'a')]
    assert names == ['a/1.jpg', 'a/10.png', 'a/2.png']  # by name; no subfolder, no video
    deep = [p.relative_to(tmp_path).as_posix() for p in list_files(f'{tmp_path}/**/*.png')]
    assert deep == ['a/10.png', 'a/2.png', 'a/sub/0.png', 'a-b/5.png']  # folder by folder
    flat = list_files(f'{tmp_path}/a/*')
    assert [p.name for p in flat] == ['1.jpg', '10.png', '2.png']
    assert [p.name for p in list_files(f'{tmp_path}/a/*', videos=True)] == [
        '1.jpg', '10.png', '2.png', 'clip.avi']
    assert list_files(tmp_path / 'a' / 'clip.avi') == [tmp_path / 'a' / 'clip.avi']
    odd = tmp_path / 'a' / 'img[1].png'  # a file whose name looks like a glob
    _images(odd.parent, [odd.name])
    assert list_files(str(odd)) == [odd]


@pytest.mark.parametrize(('make', 'match'), [
    (lambda p: p / 'missing', r"input '.*missing' does not exist \(file or folder not found\)"),
    (lambda p: p, 'holds no images'),
    (lambda p: p / '*.png', 'no files match'),
    (lambda p: p / '*.txt', r'no files match .* \(1 other path\(s\) do, none an image file\)'),
])
def test_list_files_errors_say_what_is_wrong(tmp_path, make, match):
    (tmp_path / 'notes.txt').write_text('x')
    with pytest.raises(SourceError, match=match):
        list_files(make(tmp_path))


def test_read_frames_stride_limit_and_corrupt_images(tmp_path):
    _video(tmp_path / 'v.avi', 7)
    frames = list(read_frames(tmp_path / 'v.avi', every=3))
    assert [f.index for f in frames] == [0, 3, 6]
    assert [f.index for f in read_frames(tmp_path / 'v.avi', every=2, max_frames=2)] == [0, 2]
    _images(tmp_path / 'shots', ['a.png', 'b.png', 'c.png'])
    (tmp_path / 'shots' / 'b.png').write_bytes(b'junk')
    with pytest.raises(CorruptFrameError, match="could not decode image '.*b.png'"):
        list(read_frames(tmp_path / 'shots'))
    skipped = []
    frames = list(read_frames(tmp_path / 'shots', on_corrupt=skipped.append))
    assert [f.name for f in frames] == ['a.png', 'c.png'] and len(skipped) == 1
    (tmp_path / 'shots' / 'a.png').write_bytes(b'junk')
    (tmp_path / 'shots' / 'c.png').write_bytes(b'junk')
    with pytest.raises(SourceError, match='gave no readable frame'):
        list(read_frames(tmp_path / 'shots', on_corrupt=skipped.append))


@pytest.mark.parametrize(('kwargs', 'error', 'match'), [
    ({'source': 'synthetic'}, ConfigError, 'live source that never ends: give max_frames'),
    ({'source': '0'}, ConfigError, 'live source that never ends'),
    ({'source': '{tmp}/v.avi', 'every': 0}, ConfigError, 'every must be >= 1'),
    ({'source': '{tmp}/gone.avi'}, SourceError, 'does not exist'),
])
def test_read_frames_refuses_what_it_cannot_finish(tmp_path, kwargs, error, match):
    kwargs = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in kwargs.items()}
    with pytest.raises(error, match=match):
        read_frames(kwargs.pop('source'), **kwargs)  # raised at once, not on the first next()


def test_read_frames_of_a_live_source_with_a_limit():
    frames = list(read_frames('synthetic', max_frames=3, every=2))
    assert [f.index for f in frames] == [0, 2, 4] and frames[0].truth is not None


def test_read_image_gives_bgr8_and_names_what_fails(tmp_path):
    cv2.imwrite(str(tmp_path / 'grey.png'), np.full((4, 6), 7, np.uint8))
    image = read_image(tmp_path / 'grey.png')
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8 and image.max() == 7
    with pytest.raises(CorruptFrameError, match='disappeared'):
        read_image(tmp_path / 'gone.png')


def test_image_folder_emptied_then_refilled_with_new_names(tmp_path):
    _images(tmp_path, ['a.png', 'b.png'], value=10)
    src = open_source(SourceConfig(source=str(tmp_path), loop=True))
    src.open()
    assert src.read().image[0, 0, 0] == 10
    for name in ('a.png', 'b.png'):
        (tmp_path / name).unlink()
    with pytest.raises(SourceError, match='holds no images') as info:
        src.read()
    assert not isinstance(info.value, CorruptFrameError)  # the source is gone, not one frame
    _images(tmp_path, ['x.png', 'y.png'], value=50)
    src.open()
    assert [src.read().name for _ in range(3)] == ['x.png', 'y.png', 'x.png']


def test_image_folder_follows_files_replaced_while_it_plays(tmp_path):
    _images(tmp_path, ['0001.png', '0002.png', '0003.png'], value=0)
    src = open_source(SourceConfig(source=str(tmp_path)))
    src.open()
    assert src.read().name == '0001.png'
    for name in ('0002.png', '0003.png'):
        (tmp_path / name).unlink()
    _images(tmp_path, ['0004.png', '0005.png'], value=100)  # a camera dump rolling over
    assert [src.read().name, src.read().name] == ['0004.png', '0005.png']
    _images(tmp_path, ['0006.png'], value=200)  # a folder that grows is followed
    assert src.read().name == '0006.png'
    assert src.read() is None


def test_video_deleted_while_streaming_is_reported_at_once(tmp_path):
    path = tmp_path / 'v.avi'
    _video(path, 50)
    src = open_source(SourceConfig(source=str(path), loop=True))
    src.open()
    src.read()
    path.unlink()  # the open file could still be read to its end: it must not be
    with pytest.raises(SourceError, match='disappeared while streaming'):
        src.read()
    _video(path, 5)
    src.close()
    src.open()
    assert src.read().index == 0


@pytest.mark.parametrize('replace', [False, True], ids=['truncated', 'replaced'])
def test_video_cut_or_replaced_while_streaming(tmp_path, replace):
    path = tmp_path / 'v.avi'
    _video(path, 40)
    src = open_source(SourceConfig(source=str(path), loop=True))
    src.open()
    src.read()
    if replace:
        _video(tmp_path / 'new.avi', 40)
        os.replace(tmp_path / 'new.avi', path)
    else:
        os.truncate(path, path.stat().st_size // 3)
    with pytest.raises(SourceError, match='replaced' if replace else 'truncated while'):
        src.read()


def test_truncated_video_is_reported_not_looped_over(tmp_path):
    path = tmp_path / 'v.avi'
    _video(path, 60)
    shutil.copy(path, tmp_path / 'cut.avi')
    os.truncate(tmp_path / 'cut.avi', path.stat().st_size // 2)
    with open_source(SourceConfig(source=str(tmp_path / 'cut.avi'), loop=True)) as src:
        with pytest.raises(SourceError, match=r'ended at frame \d+ of the 60 its header'):
            for _ in range(200):
                src.read()
    with open_source(SourceConfig(source=str(tmp_path / 'cut.avi'))) as src:
        count = 0
        while src.read() is not None:
            count += 1
        assert 0 < count < 60 and src.ended_early == (count, 60)
    with open_source(SourceConfig(source=str(path), loop=True)) as src:  # a whole file loops
        assert [src.read().index for _ in range(62)][-3:] == [59, 0, 1]


def test_synthetic_scene_is_deterministic_and_its_truth_matches_the_pixels():
    scene = SyntheticScene(SyntheticConfig(num_objects=3, noise_sigma=0, occluder=False,
                                           seed=3))
    a, truth = scene.render(10)
    b, _ = SyntheticScene(SyntheticConfig(num_objects=3, noise_sigma=0, occluder=False,
                                          seed=3)).render(10)
    np.testing.assert_array_equal(a, b)
    background = SyntheticScene(SyntheticConfig(num_objects=0, noise_sigma=0, occluder=False,
                                                seed=3)).render(10)[0]
    changed = np.any(a != background, axis=2)
    assert truth.track_ids.tolist() == [0, 1, 2]
    for box in truth.boxes.astype(int):
        x1, y1, x2, y2 = box
        assert changed[y1:y2, x1:x2].mean() > 0.4  # the object is really there
    outside = changed.copy()
    for x1, y1, x2, y2 in truth.boxes.astype(int):
        outside[max(0, y1 - 2):y2 + 2, max(0, x1 - 2):x2 + 2] = False
    assert outside.mean() < 0.001  # and nothing is drawn elsewhere


def test_synthetic_occluder_hides_objects_for_a_few_frames():
    scene = SyntheticScene(SyntheticConfig(num_objects=1, speed=0.0, noise_sigma=0, seed=1))
    visible = [len(scene.render(i)[1]) for i in range(400)]
    hidden = [i for i, v in enumerate(visible) if v == 0]
    assert hidden, 'the bar must pass over the object at some point'
    runs = np.split(hidden, np.where(np.diff(hidden) != 1)[0] + 1)
    assert all(1 <= len(r) <= 40 for r in runs)


def test_synthetic_pan_moves_the_background():
    scene = SyntheticScene(SyntheticConfig(num_objects=0, occluder=False, noise_sigma=0,
                                           pan_px_per_frame=3.0))
    f0, f1 = scene.render(0)[0], scene.render(1)[0]
    np.testing.assert_array_equal(f0[:, 3:], f1[:, :-3])


def test_sprites_are_pasted_with_their_class_ids():
    sprite = np.zeros((20, 10, 3), np.uint8)
    sprite[:] = (0, 0, 255)
    scene = SyntheticScene(SyntheticConfig(num_objects=2, occluder=False, noise_sigma=0),
                           sprites=[sprite], sprite_class_ids=[15])
    frame, truth = scene.render(0)
    assert truth.class_ids.tolist() == [15, 15]
    x1, y1, x2, y2 = truth.boxes[0].astype(int)
    assert (frame[y1 + 2:y2 - 2, x1 + 2:x2 - 2] == (0, 0, 255)).all(axis=2).mean() > 0.5
    with pytest.raises(ConfigError, match='sprite must be'):
        SyntheticScene(sprites=[np.zeros((2, 2), np.uint8)])
