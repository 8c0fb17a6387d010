"""Image checks shared by the imaging modules: supported encodings, luminance, full scale.

The imaging code works on the encodings a camera pipeline actually carries, natively:
``mono8``, ``mono16``, ``bgr8``, ``rgb8``, ``bgr16``, ``rgb16`` (and the generic ``8UC1`` /
``16UC1``, read as mono). Arrays are (H, W) for mono and (H, W, 3) for colour, uint8 or uint16
as the encoding says. Other encodings (``bgra8``, ``yuyv``, Bayer...) are converted to one of
these by :func:`working_encoding` + ``edge_vision_core.encodings.convert_encoding``.

"Full scale" is the largest value a pixel can take: 255 for 8-bit images, ``2**bit_depth - 1``
for 16-bit ones (a 12-bit camera in a 16-bit container has full scale 4095).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..encodings import encoding_info
from ..errors import ConfigError, ConversionError

__all__ = ['NATIVE_ENCODINGS', 'check_image', 'full_scale', 'is_colour', 'luminance',
           'working_encoding']

#: encoding -> (dtype, channels, channel order or None for mono)
NATIVE_ENCODINGS: dict[str, tuple[np.dtype, int, str | None]] = {
    'mono8': (np.dtype(np.uint8), 1, None),
    '8UC1': (np.dtype(np.uint8), 1, None),
    'mono16': (np.dtype(np.uint16), 1, None),
    '16UC1': (np.dtype(np.uint16), 1, None),
    'bgr8': (np.dtype(np.uint8), 3, 'bgr'),
    'rgb8': (np.dtype(np.uint8), 3, 'rgb'),
    'bgr16': (np.dtype(np.uint16), 3, 'bgr'),
    'rgb16': (np.dtype(np.uint16), 3, 'rgb'),
}

_MIN_SIDE = 8  # smaller images carry too little for the 3x3/7x7 operators


def working_encoding(encoding: str) -> str:
    """The native encoding an image in ``encoding`` should be converted to before processing.

    Returns ``encoding`` itself when it is native; ``bgr8``/``bgr16`` for colour, packed YUV and
    Bayer encodings (by bit depth); ``mono8``/``mono16`` for grey ones.

    Raises:
        ConversionError: the encoding is unknown or carries no colour meaning (``32FC1``,
            ``8UC3``...), so it cannot be judged as a camera image.
    """
    if encoding in NATIVE_ENCODINGS:
        return encoding
    info = encoding_info(encoding)  # raises ConversionError for unknown names
    if info.family is None or info.dtype not in (np.uint8, np.uint16):
        raise ConversionError(
            f'image quality processing needs an 8- or 16-bit camera image (mono8, mono16, bgr8, '
            f'rgb8, bgr16, rgb16 or a colour/Bayer/YUV encoding convertible to them), got '
            f'{encoding!r}; depth and generic multi-channel images cannot be judged')
    bits = '16' if info.dtype == np.uint16 else '8'
    return f'mono{bits}' if info.family == 'GRAY' else f'bgr{bits}'


def check_image(image: object, encoding: str, what: str = 'image') -> np.ndarray:
    """Validate that ``image`` is laid out as the native ``encoding`` says; return it.

    Raises:
        ConversionError: the encoding is not native, or the array's type, dtype or shape does
            not match it, or it is smaller than 8x8 pixels.
    """
    spec = NATIVE_ENCODINGS.get(encoding)
    if spec is None:
        raise ConversionError(f'{what}: encoding {encoding!r} is not processed natively; use '
                              f'one of {", ".join(NATIVE_ENCODINGS)} (convert with '
                              f'working_encoding() and encodings.convert_encoding())')
    if not isinstance(image, np.ndarray):
        raise ConversionError(f'{what} must be a numpy array, got {type(image).__name__}')
    dtype, channels, _ = spec
    shape_ok = image.ndim == 2 if channels == 1 else (image.ndim == 3
                                                       and image.shape[2] == channels)
    if channels == 1 and image.ndim == 3 and image.shape[2] == 1:
        image, shape_ok = image[:, :, 0], True
    if not shape_ok or image.dtype != dtype:
        want = '(H, W)' if channels == 1 else f'(H, W, {channels})'
        raise ConversionError(f'{what}: encoding {encoding!r} needs a {want} {dtype} array, got '
                              f'shape {image.shape} {image.dtype}')
    if min(image.shape[:2]) < _MIN_SIDE:
        raise ConversionError(f'{what} is {image.shape[1]}x{image.shape[0]} pixels; at least '
                              f'{_MIN_SIDE}x{_MIN_SIDE} are needed')
    return image


def is_colour(encoding: str) -> bool:
    """True for the 3-channel native encodings."""
    return NATIVE_ENCODINGS[encoding][1] == 3


def full_scale(dtype: np.dtype, bit_depth: int = 0) -> float:
    """The largest pixel value: 255 for uint8, ``2**bit_depth - 1`` (default 65535) for uint16.

    Raises:
        ConfigError: ``bit_depth`` outside 1..16 for uint16 images (0 means the full 16 bits).
    """
    if np.dtype(dtype) == np.uint8:
        return 255.0
    if bit_depth == 0:
        return 65535.0
    if not 1 <= bit_depth <= 16:
        raise ConfigError(f'bit_depth must be 0 (dtype range) or 1..16, got {bit_depth}')
    return float(2 ** bit_depth - 1)


def luminance(image: np.ndarray, encoding: str) -> np.ndarray:
    """Luma (ITU-R BT.601 weights, as ``cv2.COLOR_BGR2GRAY``) of a native image.

    Returns:
        (H, W) array of the image's dtype; mono images are returned as they are (no copy).
    """
    order = NATIVE_ENCODINGS[encoding][2]
    if order is None:
        return image
    code = cv2.COLOR_BGR2GRAY if order == 'bgr' else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(np.ascontiguousarray(image), code)
