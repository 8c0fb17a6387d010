"""Raw image buffers <-> arrays, checked against hand-computed bytes for every encoding."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from edge_vision_core import ConversionError
from edge_vision_core.encodings import (
    array_to_buffer,
    buffer_to_array,
    compress,
    convert_encoding,
    decompress,
    encoding_for_array,
    encoding_info,
)

# (encoding, width, height, step, raw bytes, expected array) -- bytes written out by hand,
# little-endian where multi-byte, with padding bytes 0xEE where step > row size.
CASES = [
    ('mono8', 3, 2, 4, bytes([1, 2, 3, 0xEE, 4, 5, 6, 0xEE]),
     np.array([[1, 2, 3], [4, 5, 6]], np.uint8)),
    ('mono16', 2, 2, 6, struct.pack('<HHxxHHxx', 1, 258, 65535, 4096),
     np.array([[1, 258], [65535, 4096]], np.uint16)),
    ('16UC1', 1, 2, 2, struct.pack('<HH', 1000, 2000), np.array([[1000], [2000]], np.uint16)),
    ('bgr8', 2, 1, 8, bytes([10, 20, 30, 40, 50, 60, 0xEE, 0xEE]),
     np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)),
    ('rgb8', 1, 2, 3, bytes([1, 2, 3, 4, 5, 6]), np.array([[[1, 2, 3]], [[4, 5, 6]]], np.uint8)),
    ('bgra8', 1, 1, 4, bytes([1, 2, 3, 255]), np.array([[[1, 2, 3, 255]]], np.uint8)),
    ('rgba8', 2, 1, 8, bytes([9, 8, 7, 6, 5, 4, 3, 2]),
     np.array([[[9, 8, 7, 6], [5, 4, 3, 2]]], np.uint8)),
    ('32FC1', 2, 1, 8, struct.pack('<ff', 1.5, -2.25), np.array([[1.5, -2.25]], np.float32)),
    ('yuv422', 2, 1, 4, bytes([128, 16, 128, 235]), np.array([[[128, 16], [128, 235]]], np.uint8)),
    ('uyvy', 2, 1, 4, bytes([100, 50, 110, 60]), np.array([[[100, 50], [110, 60]]], np.uint8)),
    ('yuyv', 2, 1, 6, bytes([16, 128, 235, 128, 0xEE, 0xEE]),
     np.array([[[16, 128], [235, 128]]], np.uint8)),
    ('yuv422_yuy2', 2, 1, 4, bytes([50, 100, 60, 110]),
     np.array([[[50, 100], [60, 110]]], np.uint8)),
    ('8UC3', 1, 1, 3, bytes([7, 8, 9]), np.array([[[7, 8, 9]]], np.uint8)),
    ('16SC1', 2, 1, 4, struct.pack('<hh', -5, 300), np.array([[-5, 300]], np.int16)),
    ('64FC1', 1, 1, 8, struct.pack('<d', 3.5), np.array([[3.5]], np.float64)),
    ('bayer_rggb8', 2, 2, 2, bytes([1, 2, 3, 4]), np.array([[1, 2], [3, 4]], np.uint8)),
]


@pytest.mark.parametrize(('encoding', 'width', 'height', 'step', 'raw', 'expected'), CASES,
                         ids=[c[0] for c in CASES])
def test_buffer_to_array_reads_hand_computed_pixels(encoding, width, height, step, raw,
                                                     expected):
    arr = buffer_to_array(raw, height, width, step, encoding)
    assert arr.dtype == expected.dtype
    np.testing.assert_array_equal(arr, expected)


@pytest.mark.parametrize(('encoding', 'width', 'height', 'step', 'raw', 'expected'), CASES,
                         ids=[c[0] for c in CASES])
def test_array_to_buffer_writes_the_packed_bytes(encoding, width, height, step, raw, expected):
    buf, out_step, big = array_to_buffer(expected, encoding)
    row = width * encoding_info(encoding).channels * expected.dtype.itemsize
    assert out_step == row
    assert big is False
    packed = b''.join(raw[r * step:r * step + row] for r in range(height))
    assert bytes(buf) == packed


def test_big_endian_buffers_are_byte_swapped_to_native_values():
    raw = struct.pack('>HH', 1, 0xABCD)
    arr = buffer_to_array(raw, 1, 2, 4, 'mono16', is_bigendian=True)
    np.testing.assert_array_equal(arr, [[1, 0xABCD]])
    assert arr.dtype.isnative
    raw_f = struct.pack('>f', -7.5)
    np.testing.assert_array_equal(buffer_to_array(raw_f, 1, 1, 4, '32FC1', True), [[-7.5]])


def test_big_endian_arrays_are_flagged():
    arr = np.array([[1, 2]], dtype='>u2')
    buf, step, big = array_to_buffer(arr, 'mono16')
    assert big is True and step == 4
    assert bytes(buf) == struct.pack('>HH', 1, 2)


def test_reading_is_a_zero_copy_view_including_padding():
    raw = bytearray(bytes([1, 2, 3, 0xEE, 4, 5, 6, 0xEE]))
    arr = buffer_to_array(raw, 2, 3, 4, 'mono8')
    assert arr.strides == (4, 1)
    raw[5] = 99
    assert arr[1, 1] == 99


def test_writing_a_contiguous_array_does_not_copy():
    arr = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    buf, _, _ = array_to_buffer(arr, 'bgr8')
    assert np.shares_memory(np.frombuffer(buf, np.uint8), arr)


def test_writing_a_strided_view_packs_it():
    full = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    view = full[::2, 1:3]
    buf, step, _ = array_to_buffer(view, 'rgb8')
    assert step == 6
    np.testing.assert_array_equal(np.frombuffer(buf, np.uint8).reshape(2, 2, 3), view)


@pytest.mark.parametrize('encoding', ['bgr9', 'BGR8', 'nv12', '', 'jpeg', '8UC0'])
def test_unknown_encodings_list_the_supported_ones(encoding):
    with pytest.raises(ConversionError, match='supported: .*bgr8.*mono16.*yuyv'):
        encoding_info(encoding)


@pytest.mark.parametrize(('height', 'width', 'step', 'size', 'match'), [
    (2, 3, 2, 4, 'step 2 < width 3'),
    (2, 3, 3, 5, 'data has 5 bytes but height 2 x step 3'),
    (2, 3, 3, 7, 'data has 7 bytes'),
])
def test_malformed_buffers_are_refused(height, width, step, size, match):
    with pytest.raises(ConversionError, match=match):
        buffer_to_array(bytes(size), height, width, step, 'mono8')


@pytest.mark.parametrize(('arr', 'encoding', 'match'), [
    (np.zeros((2, 2), np.uint8), 'bgr8', 'needs uint8 x 3'),
    (np.zeros((2, 2, 3), np.float32), 'bgr8', 'array is float32'),
    (np.zeros((2, 2), np.uint8), 'mono16', 'needs uint16'),
    (np.zeros((2, 3, 2), np.uint8), 'yuyv', 'width must be even'),
    (np.zeros(5, np.uint8), 'mono8', '2-D or 3-D'),
])
def test_arrays_that_do_not_match_the_encoding_are_refused(arr, encoding, match):
    with pytest.raises(ConversionError, match=match):
        array_to_buffer(arr, encoding)


def test_passthrough_names_like_cv_bridge():
    assert encoding_for_array(np.zeros((2, 2, 3), np.uint8)) == '8UC3'
    assert encoding_for_array(np.zeros((2, 2), np.float32)) == '32FC1'
    assert encoding_for_array(np.zeros((2, 2), '>u2')) == '16UC1'


def test_empty_images_are_allowed():
    assert buffer_to_array(b'', 0, 0, 0, 'bgr8').shape == (0, 0, 3)


# --- conversions (cv_bridge semantics) --------------------------------------------------------

def test_rgb_bgr_swap_and_alpha():
    rgb = np.array([[[10, 20, 30]]], np.uint8)
    np.testing.assert_array_equal(convert_encoding(rgb, 'rgb8', 'bgr8'), [[[30, 20, 10]]])
    np.testing.assert_array_equal(convert_encoding(rgb, 'rgb8', 'bgra8'),
                                  [[[30, 20, 10, 255]]])
    bgra = np.array([[[1, 2, 3, 4]]], np.uint8)
    np.testing.assert_array_equal(convert_encoding(bgra, 'bgra8', 'rgb8'), [[[3, 2, 1]]])


def test_gray_conversion_uses_bt601_weights():
    bgr = np.array([[[0, 0, 255], [0, 255, 0], [255, 0, 0]]], np.uint8)
    # 0.299 R + 0.587 G + 0.114 B
    np.testing.assert_array_equal(convert_encoding(bgr, 'bgr8', 'mono8'), [[76, 150, 29]])


def test_depth_rescaling_matches_cv_bridge():
    mono16 = np.array([[0, 257, 65535, 32768]], np.uint16)
    np.testing.assert_array_equal(convert_encoding(mono16, 'mono16', 'mono8'),
                                  [[0, 1, 255, 128]])
    mono8 = np.array([[0, 1, 255]], np.uint8)
    np.testing.assert_array_equal(convert_encoding(mono8, 'mono8', 'mono16'),
                                  [[0, 257, 65535]])
    # colour change and depth change together
    bgr16 = np.full((1, 1, 3), 65535, np.uint16)
    np.testing.assert_array_equal(convert_encoding(bgr16, 'bgr16', 'mono8'), [[255]])


def test_packed_yuv422_to_bgr():
    # Y=U=V=128 is mid grey; the two pixels of a pair share U and V.
    uyvy = np.array([[[128, 128], [128, 128]]], np.uint8)
    out = convert_encoding(uyvy, 'uyvy', 'bgr8')
    assert out.shape == (1, 2, 3)
    np.testing.assert_allclose(out.astype(int), 128, atol=2)
    yuyv = np.array([[[235, 128], [16, 128]]], np.uint8)  # white then black, no chroma
    out = convert_encoding(yuyv, 'yuyv', 'mono8')
    np.testing.assert_array_equal(out, [[235, 16]])
    assert convert_encoding(yuyv, 'yuv422_yuy2', 'rgb8').shape == (1, 2, 3)


def test_bayer_demosaic_uses_the_ros_to_opencv_name_mapping():
    mosaic = np.zeros((4, 4), np.uint8)
    mosaic[0::2, 0::2] = 200  # R sites of an RGGB mosaic
    bgr = convert_encoding(mosaic, 'bayer_rggb8', 'bgr8')
    assert bgr[1, 1, 2] > 150 and bgr[1, 1, 0] < 50  # red, not blue


@pytest.mark.parametrize(('src', 'dst', 'match'), [
    ('32FC1', 'bgr8', 'no colour information'),
    ('8UC3', '8UC1', 'different channel counts'),
    ('bgr8', 'uyvy', 'unsupported conversion'),
])
def test_unsupported_conversions_say_why(src, dst, match):
    arr = np.zeros((2, 2, encoding_info(src).channels), encoding_info(src).dtype).squeeze()
    with pytest.raises(ConversionError, match=match):
        convert_encoding(arr, src, dst)


def test_same_encoding_returns_the_input():
    arr = np.zeros((2, 2, 3), np.uint8)
    assert convert_encoding(arr, 'bgr8', 'bgr8') is arr
    assert convert_encoding(arr, 'bgr8', 'passthrough') is arr


# --- compressed ---------------------------------------------------------------------------

def _test_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (7, 7), 2)
    return img


def test_png_round_trip_is_lossless_and_keeps_rgb_order():
    rgb = _test_image()
    data, fmt = compress(rgb, 'rgb8', 'png')
    assert fmt == 'rgb8; png compressed bgr8'
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    out, enc = decompress(data, fmt, 'rgb8')
    assert enc == 'rgb8'
    np.testing.assert_array_equal(out, rgb)
    raw, raw_enc = decompress(data, fmt)
    assert raw_enc == 'bgr8'
    np.testing.assert_array_equal(raw, rgb[:, :, ::-1])


def test_png_mono16_round_trip():
    depth = (np.arange(48 * 64, dtype=np.uint16) * 13).reshape(48, 64)
    data, fmt = compress(depth, 'mono16', 'png')
    out, enc = decompress(data, fmt)
    assert enc == 'mono16'
    np.testing.assert_array_equal(out, depth)


def test_jpeg_round_trip_is_close():
    img = _test_image()
    data, fmt = compress(img, 'bgr8', 'jpeg', quality=95)
    assert data[:2] == b'\xff\xd8' and fmt == 'bgr8; jpeg compressed bgr8'
    out, _ = decompress(data, fmt)
    assert np.abs(out.astype(int) - img).mean() < 3


@pytest.mark.parametrize(('call', 'match'), [
    (lambda: compress(np.zeros((4, 4), np.uint16), 'mono16', 'jpeg'), 'use png'),
    (lambda: compress(np.zeros((4, 4, 3), np.uint8), 'bgr8', 'webp'), 'use jpeg or png'),
    (lambda: compress(np.zeros((4, 4, 3), np.uint8), 'bgr8', 'jpeg', 0), 'quality'),
    (lambda: decompress(b'not an image', 'jpeg'), 'could not decode'),
    (lambda: decompress(b'', 'png'), 'no data'),
])
def test_compression_errors(call, match):
    with pytest.raises(ConversionError, match=match):
        call()
