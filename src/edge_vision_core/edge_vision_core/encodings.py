"""ROS image encodings <-> numpy arrays, without ROS.

The semantics follow ``sensor_msgs/image_encodings`` and cv_bridge for every encoding both
support:

- an encoding maps to a dtype and a channel count (``bgr8``: uint8 x 3, ``32FC1``: float32 x 1,
  ``yuv422``/``uyvy`` and ``yuyv``/``yuv422_yuy2``: uint8 x 2 packed 4:2:2); one channel gives an
  (H, W) array, several give (H, W, C);
- raw buffers honour ``step`` (row padding) and ``is_bigendian``; arrays handed back are in
  native byte order;
- :func:`convert_encoding` converts between colour encodings with the same OpenCV codes as
  cv_bridge (including Bayer demosaicing and YUV 4:2:2) and rescales 8 <-> 16 bit depths by
  255/65535 as cv_bridge does.

Reading a buffer is zero-copy when its byte order is native: the array is a strided view of the
buffer (padding included in the stride). Writing needs one contiguous copy at most, which the
message layer makes while filling the message.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import ConversionError, DataError

__all__ = [
    'EncodingInfo',
    'array_to_buffer',
    'as_bgr8',
    'buffer_to_array',
    'compress',
    'convert_encoding',
    'decompress',
    'encoding_info',
    'encoding_for_array',
    'opencv_encoding',
    'supported_encodings',
]


@dataclass(frozen=True)
class EncodingInfo:
    """What an encoding name means for memory layout.

    Attributes:
        name: the encoding string as in ``sensor_msgs/Image.encoding``.
        dtype: element type (native byte order).
        channels: values per pixel.
        family: colour family for conversions (``GRAY``, ``BGR``, ``RGB``, ``BGRA``, ``RGBA``,
            ``UYVY``, ``YUYV``, ``BAYER_RGGB``...), or None for generic ``<depth>C<n>`` types.
    """

    name: str
    dtype: np.dtype
    channels: int
    family: str | None

    @property
    def bit_depth(self) -> int:
        return self.dtype.itemsize * 8

    @property
    def shape_tail(self) -> tuple[int, ...]:
        return () if self.channels == 1 else (self.channels,)


_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
_NATIVE = '<' if sys.byteorder == 'little' else '>'

_NAMED: dict[str, tuple[np.dtype, int, str]] = {
    'mono8': (_U8, 1, 'GRAY'), 'mono16': (_U16, 1, 'GRAY'),
    'bgr8': (_U8, 3, 'BGR'), 'rgb8': (_U8, 3, 'RGB'),
    'bgra8': (_U8, 4, 'BGRA'), 'rgba8': (_U8, 4, 'RGBA'),
    'bgr16': (_U16, 3, 'BGR'), 'rgb16': (_U16, 3, 'RGB'),
    'bgra16': (_U16, 4, 'BGRA'), 'rgba16': (_U16, 4, 'RGBA'),
    # packed YUV 4:2:2; "yuv422" and "yuv422_yuy2" are the older names of uyvy and yuyv
    'uyvy': (_U8, 2, 'UYVY'), 'yuv422': (_U8, 2, 'UYVY'),
    'yuyv': (_U8, 2, 'YUYV'), 'yuv422_yuy2': (_U8, 2, 'YUYV'),
}
for _pattern in ('rggb', 'bggr', 'gbrg', 'grbg'):
    _NAMED[f'bayer_{_pattern}8'] = (_U8, 1, f'BAYER_{_pattern.upper()}')
    _NAMED[f'bayer_{_pattern}16'] = (_U16, 1, f'BAYER_{_pattern.upper()}')

_GENERIC = re.compile(r'^(8U|8S|16U|16S|32S|32F|64F)(?:C([1-9][0-9]*))?$')
_GENERIC_DTYPES = {'8U': np.uint8, '8S': np.int8, '16U': np.uint16, '16S': np.int16,
                   '32S': np.int32, '32F': np.float32, '64F': np.float64}


def supported_encodings() -> list[str]:
    """Encoding names this module understands (generic ``<depth>C<n>`` types summarised)."""
    return sorted(_NAMED) + ['8UC<n>', '8SC<n>', '16UC<n>', '16SC<n>', '32SC<n>', '32FC<n>',
                             '64FC<n>']


def encoding_info(encoding: str) -> EncodingInfo:
    """Layout of ``encoding``; raises ConversionError naming the supported ones if unknown."""
    named = _NAMED.get(encoding)
    if named is not None:
        return EncodingInfo(encoding, named[0], named[1], named[2])
    match = _GENERIC.match(encoding)
    if match is None:
        raise ConversionError(
            f'unsupported image encoding {encoding!r}; supported: '
            f'{", ".join(supported_encodings())}. Convert the image at its source (e.g. set the '
            f'camera driver to bgr8 or yuyv)')
    depth, channels = match.group(1), int(match.group(2) or 1)
    return EncodingInfo(encoding, np.dtype(_GENERIC_DTYPES[depth]), channels, None)


def encoding_for_array(arr: np.ndarray) -> str:
    """cv_bridge's "passthrough" naming: the generic ``<depth>C<n>`` name of an array's type."""
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    for depth, dtype in _GENERIC_DTYPES.items():
        if arr.dtype.newbyteorder('=') == np.dtype(dtype):
            return f'{depth}C{channels}'
    raise ConversionError(f'no image encoding for arrays of dtype {arr.dtype}; use uint8, '
                          f'int8, uint16, int16, int32, float32 or float64')


def as_bgr8(image: np.ndarray, what: str = 'image', keep_mono: bool = False) -> np.ndarray:
    """A bgr8 (H, W, 3) view or copy of a bgr8, mono8 (H, W[, 1]) or bgra8 (H, W, 4) image,
    the images a model stage accepts; mono stays as it is with ``keep_mono`` (gray models).

    Raises:
        DataError: another dtype or shape, naming ``what``.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (
            2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) \
            or 0 in image.shape[:2]:
        desc = (f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise DataError(f'{what} must be a uint8 (H, W, 3) BGR image (or mono8/bgra8), '
                        f'got {desc}')
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if not keep_mono and (image.ndim == 2 or image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def opencv_encoding(img: np.ndarray) -> str:
    """The encoding of an image as OpenCV returns it (``imread``/``imdecode`` with
    ``IMREAD_UNCHANGED``, ``VideoCapture.read``): mono, BGR or BGRA, 8 or 16 bits.

    Raises:
        ConversionError: another channel count or dtype.
    """
    channels = 1 if img.ndim == 2 else img.shape[2]
    names = {1: 'mono', 3: 'bgr', 4: 'bgra'}
    if channels not in names or img.dtype not in (np.uint8, np.uint16):
        raise ConversionError(f'an OpenCV image has 1, 3 or 4 channels of uint8 or uint16; '
                              f'got {channels} channel(s) of {img.dtype}')
    return f'{names[channels]}{16 if img.dtype == np.uint16 else 8}'


def buffer_to_array(data: object, height: int, width: int, step: int, encoding: str,
                    is_bigendian: bool = False) -> np.ndarray:
    """View a raw image buffer as an array of shape (H, W) or (H, W, C).

    Args:
        data: the pixel bytes (``bytes``, ``array.array('B')``, ``memoryview``, uint8 array).
        height, width: image size in pixels.
        step: bytes per row, ``>= width * channels * itemsize`` (the rest is padding).
        encoding: a ROS image encoding name.
        is_bigendian: byte order of multi-byte elements in ``data``.

    Returns:
        A strided view of ``data`` when its byte order is native (no copy; writable if ``data``
        is), otherwise a native-order copy.

    Raises:
        ConversionError: unknown encoding, or sizes that do not fit the buffer.
    """
    info = encoding_info(encoding)
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else \
        data.reshape(-1).view(np.uint8)
    row_bytes = width * info.channels * info.dtype.itemsize
    if height < 0 or width < 0:
        raise ConversionError(f'image size must be >= 0, got {width}x{height}')
    if step < row_bytes:
        raise ConversionError(
            f'malformed {encoding} image: step {step} < width {width} x {info.channels} '
            f'channel(s) x {info.dtype.itemsize} byte(s) = {row_bytes}')
    if raw.size != height * step:
        raise ConversionError(
            f'malformed {encoding} image: data has {raw.size} bytes but height {height} x '
            f'step {step} = {height * step}')
    _check_pairs(info, width)
    big = bool(is_bigendian) and info.dtype.itemsize > 1
    dtype = info.dtype.newbyteorder('>' if big else '<') if info.dtype.itemsize > 1 else \
        info.dtype
    if height == 0 or width == 0:
        return np.zeros((height, width, *info.shape_tail), dtype=info.dtype)
    item = info.dtype.itemsize
    arr = np.ndarray(shape=(height, width, info.channels), dtype=dtype, buffer=raw,
                     strides=(step, info.channels * item, item))
    if info.channels == 1:
        arr = arr[:, :, 0]
    if dtype.byteorder not in ('=', '|') and dtype.byteorder != _NATIVE:
        arr = arr.astype(info.dtype)  # byte-swapping copy into native order
    return arr


def _check_pairs(info: EncodingInfo, width: int) -> None:
    """Packed YUV 4:2:2 stores pixel pairs: an odd width cannot be decoded."""
    if info.family in ('UYVY', 'YUYV') and width % 2:
        raise ConversionError(f'{info.name} packs pixel pairs: width must be even, got {width}')


def array_to_buffer(arr: np.ndarray, encoding: str) -> tuple[memoryview, int, bool]:
    """The bytes, ``step`` and ``is_bigendian`` of an Image message holding ``arr``.

    Args:
        arr: (H, W) or (H, W, C) array whose dtype and channel count match ``encoding``
            (any byte order). ``encoding='passthrough'`` names it from its dtype (``8UC3``...).
        encoding: the target ROS encoding.

    Returns:
        ``(buffer, step, is_bigendian)``: a uint8 memoryview of a C-contiguous array (``arr``
        itself when it already is one, so no copy), the row size in bytes, and its byte order.

    Raises:
        ConversionError: shape, dtype or channel count does not match the encoding.
    """
    if not isinstance(arr, np.ndarray) or arr.ndim not in (2, 3):
        raise ConversionError(f'an image must be a 2-D or 3-D numpy array, got '
                              f'{type(arr).__name__} with shape {getattr(arr, "shape", None)}')
    if encoding == 'passthrough':
        encoding = encoding_for_array(arr)
    info = encoding_info(encoding)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels != info.channels or arr.dtype.newbyteorder('=') != info.dtype:
        raise ConversionError(
            f'encoding {encoding!r} needs {info.dtype} x {info.channels} channel(s), but the '
            f'array is {arr.dtype} x {channels} channel(s) (shape {arr.shape})')
    _check_pairs(info, arr.shape[1])
    arr = np.ascontiguousarray(arr)
    order = arr.dtype.byteorder
    big = (order == '>') or (order == '=' and _NATIVE == '>')
    step = arr.shape[1] * info.channels * info.dtype.itemsize
    return memoryview(arr.reshape(-1).view(np.uint8)), step, big


# ---------------------------------------------------------------------------------------------
# Colour conversion (cv_bridge's table)

_COLOR = ('GRAY', 'RGB', 'BGR', 'RGBA', 'BGRA')
# ROS Bayer names -> OpenCV's names for the same mosaic (OpenCV counts from the second row).
_BAYER_CV = {'BAYER_RGGB': 'BayerBG', 'BAYER_BGGR': 'BayerRG', 'BAYER_GBRG': 'BayerGR',
             'BAYER_GRBG': 'BayerGB'}


def _conversion_codes() -> dict[tuple[str, str], int]:
    codes: dict[tuple[str, str], int] = {}
    for src in _COLOR:
        for dst in _COLOR:
            if src != dst:
                codes[(src, dst)] = getattr(cv2, f'COLOR_{src}2{dst}')
    for dst in _COLOR:
        codes[('UYVY', dst)] = getattr(cv2, f'COLOR_YUV2{dst}_UYVY')
        codes[('YUYV', dst)] = getattr(cv2, f'COLOR_YUV2{dst}_YUY2')
    for ros, cv in _BAYER_CV.items():
        for dst in ('GRAY', 'RGB', 'BGR'):
            codes[(ros, dst)] = getattr(cv2, f'COLOR_{cv}2{dst}')
    return codes


_CODES = _conversion_codes()


def _rescale(arr: np.ndarray, src: EncodingInfo, dst_dtype: np.dtype) -> np.ndarray:
    if arr.dtype == dst_dtype:
        return arr
    if src.bit_depth == 8 and dst_dtype.itemsize == 2:
        scale = 65535.0 / 255.0
    elif src.bit_depth == 16 and dst_dtype.itemsize == 1:
        scale = 255.0 / 65535.0
    else:
        scale = 1.0
    if np.issubdtype(dst_dtype, np.integer):
        limits = np.iinfo(dst_dtype)
        return np.clip(np.rint(arr.astype(np.float64) * scale), limits.min,
                       limits.max).astype(dst_dtype)
    return (arr.astype(np.float64) * scale).astype(dst_dtype)


def convert_encoding(arr: np.ndarray, src_encoding: str, dst_encoding: str) -> np.ndarray:
    """Convert an image between encodings with cv_bridge's rules.

    Colour encodings convert through OpenCV (``cv2.cvtColor``); a change of bit depth between
    8 and 16 bits rescales by 65535/255 (or its inverse); generic ``<depth>C<n>`` types convert
    only to the same channel count. Returns ``arr`` itself when nothing changes; an empty
    image (zero width or height) converts to an empty image of the target layout.

    Raises:
        ConversionError: unknown encoding, a conversion cv_bridge does not support either, or
            an odd width in packed YUV 4:2:2.
    """
    if dst_encoding in ('passthrough', src_encoding):
        return arr
    src, dst = encoding_info(src_encoding), encoding_info(dst_encoding)
    if arr.ndim >= 2:
        _check_pairs(src, arr.shape[1])
    empty = arr.ndim >= 2 and 0 in arr.shape[:2]
    if src.family is None or dst.family is None:
        if src.family is None and dst.family is not None:
            raise ConversionError(f'{src_encoding!r} carries no colour information, so it '
                                  f'cannot be converted to the colour encoding {dst_encoding!r}')
        if src.channels != dst.channels:
            raise ConversionError(f'{src_encoding!r} and {dst_encoding!r} have different '
                                  f'channel counts ({src.channels} vs {dst.channels})')
        code = None
    elif src.family == dst.family:
        code = None
    else:
        code = _CODES.get((src.family, dst.family))
        if code is None:
            raise ConversionError(f'unsupported conversion from {src_encoding!r} to '
                                  f'{dst_encoding!r}')
    if empty:  # OpenCV refuses empty images; there is nothing to convert
        return np.zeros((*arr.shape[:2], *dst.shape_tail), dst.dtype)
    if code is None:
        return _rescale(arr, src, dst.dtype)
    arr = np.ascontiguousarray(arr)
    if arr.shape[:2] == (1, 1):
        # OpenCV 4.5 (Ubuntu 22.04's, ROS 2 Humble's) rejects a 1x1 three-channel array
        # ("_step >= minstep"): convert two copies of the pixel and keep one.
        out = cv2.cvtColor(np.concatenate([arr, arr]), code)[:1]
    else:
        out = cv2.cvtColor(arr, code)
    if out.dtype != dst.dtype:
        out = _rescale(out, src, dst.dtype)
    return out


# ---------------------------------------------------------------------------------------------
# Compressed images (the CompressedImage "format" field of image_transport's compressed plugin)

_COMPRESSED = {'jpeg': '.jpg', 'jpg': '.jpg', 'png': '.png'}


def compress(arr: np.ndarray, encoding: str, fmt: str = 'jpeg', quality: int = 90
             ) -> tuple[bytes, str]:
    """Encode an image as JPEG or PNG.

    Args:
        arr: the image, laid out as ``encoding`` says.
        encoding: its ROS encoding; colour images are stored as BGR(A) like OpenCV and
            compressed_image_transport do, 16-bit mono only as PNG.
        fmt: ``jpeg`` (or ``jpg``) or ``png``.
        quality: JPEG quality 1..100, or PNG compression 0..9 mapped from it (100 -> 1).

    Returns:
        ``(data, format)`` where ``format`` is compressed_image_transport's
        ``"<encoding>; <fmt> compressed <stored encoding>"``.
    """
    fmt = fmt.lower()
    if fmt not in _COMPRESSED:
        raise ConversionError(f'unsupported compression format {fmt!r}; use jpeg or png')
    if not 1 <= int(quality) <= 100:
        raise ConversionError(f'quality must be in 1..100, got {quality}')
    info = encoding_info(encoding)
    if info.family in ('GRAY',) or (info.family is None and info.channels == 1):
        stored = 'mono16' if info.dtype == _U16 else 'mono8'
        if info.dtype not in (_U8, _U16):
            raise ConversionError(f'cannot compress {encoding!r}: only 8/16-bit images')
    elif info.family is not None and info.channels == 4:
        stored = 'bgra16' if info.dtype == _U16 else 'bgra8'
    else:
        stored = 'bgr16' if info.dtype == _U16 else 'bgr8'
    if info.dtype == _U16 and fmt != 'png':
        raise ConversionError(f'{encoding!r} is 16-bit: JPEG holds 8 bits; use png')
    if info.family is None and info.channels != 1:
        raise ConversionError(f'cannot compress the generic type {encoding!r}; convert it to a '
                              f'colour encoding first')
    img = convert_encoding(arr, encoding, stored) if info.family is not None else arr
    if fmt == 'png':
        params = [cv2.IMWRITE_PNG_COMPRESSION, max(0, min(9, (100 - int(quality)) // 10))]
    else:
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    ok, buf = cv2.imencode(_COMPRESSED[fmt], np.ascontiguousarray(img), params)
    if not ok:
        raise ConversionError(f'OpenCV could not encode a {img.shape} {img.dtype} image as {fmt}')
    name = 'jpeg' if fmt in ('jpg', 'jpeg') else 'png'
    return buf.tobytes(), f'{encoding}; {name} compressed {stored}'


def decompress(data: object, fmt: str = '', desired_encoding: str = 'passthrough'
               ) -> tuple[np.ndarray, str]:
    """Decode JPEG/PNG bytes; returns ``(image, encoding)``.

    With ``desired_encoding='passthrough'`` the image stays as decoded (``bgr8``, ``bgra8``,
    ``mono8`` or ``mono16``). Otherwise it is converted like :func:`convert_encoding`.
    ``fmt`` (the message's format field) only makes error messages precise: the stream's own
    header says whether it is JPEG or PNG.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if buf.size == 0:
        raise ConversionError('compressed image has no data')
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConversionError(f'could not decode compressed image ({buf.size} bytes, format '
                              f'{fmt!r}): not a valid JPEG/PNG stream')
    decoded = opencv_encoding(img)
    if desired_encoding == 'passthrough':
        return img, decoded
    return convert_encoding(img, decoded, desired_encoding), desired_encoding
