"""Files: which suffixes are images and videos, float images as 8 bits, and writing files that
other processes read while we replace them (calibrations, models)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ['IMAGE_SUFFIXES', 'VIDEO_SUFFIXES', 'atomic_write', 'float_to_uint8']

#: file suffixes read as images (everything cv2.imread decodes that cameras and datasets use).
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm',
                  '.pnm', '.jp2')
#: file suffixes taken for videos where a path could be either.
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mkv', '.mov', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv')


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` so that readers see the old file or the whole new one, never a part.

    ``write`` fills a temporary file in the same folder (parents are created); it is flushed
    to disk, given the mode of the file it replaces (or ``rw-r--r--``: temporary files are
    private, and a node running as another user must read the result) and renamed over
    ``path``. On any error the temporary file is removed.

    Raises:
        OSError: the folder cannot be created or written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def float_to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image (32-bit TIFF, EXR...) as uint8 of the same shape: values in [0, 1] scaled
    to [0, 255], brighter images clipped to [0, 255], NaN as black."""
    values = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
    if values.max(initial=0.0) <= 1.0:
        values = values * 255.0
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)
