"""Letterbox resizing to a model's input and its exact inverse back to image pixels.

Coordinates follow :mod:`edge_vision_core.types`: pixel *corner* coordinates, x right, y down, a
W x H image spans ``[0, W] x [0, H]``. The mapping between the original image and the model input
is the affine map ``u = x * scale_x + pad_x``, ``v = y * scale_y + pad_y``.

``cv2.resize`` from W to ``new_w`` pixels maps pixel corners linearly (corner 0 -> 0, W ->
``new_w``), so taking ``scale_x = new_w / W`` (the *realised* scale after rounding the resized
size to whole pixels, not the nominal one) and integer padding makes :meth:`LetterboxTransform.
model_to_image` the exact inverse of what the pixels went through.

Two resize modes:

- ``letterbox`` (aspect preserved): one scale for both axes, the rest padded with
  ``pad_value`` (centred, or at the bottom/right with ``center=False``);
- ``stretch``: each axis scaled to fill the input (SSD-style models trained that way).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError, DataError

__all__ = ['LetterboxTransform', 'apply_letterbox', 'compute_letterbox', 'letterbox',
           'mask_to_image', 'probability_to_image']


@dataclass(frozen=True)
class LetterboxTransform:
    """The affine map image pixels -> model-input pixels of one letterboxed frame.

    Attributes:
        src_size: ``(width, height)`` of the original image.
        dst_size: ``(width, height)`` of the model input the image was placed into.
        resized_size: ``(width, height)`` of the resized image inside the input (without padding).
        scale_x, scale_y: realised scales, ``resized / src`` per axis.
        pad_x, pad_y: left and top padding in model-input pixels (whole pixels).
    """

    src_size: tuple[int, int]
    dst_size: tuple[int, int]
    resized_size: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    def image_to_model(self, boxes: np.ndarray) -> np.ndarray:
        """Map (N, 4) ``[x1, y1, x2, y2]`` image-pixel boxes into model-input pixels (float32)."""
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        scale = np.array([self.scale_x, self.scale_y] * 2, np.float32)
        offset = np.array([self.pad_x, self.pad_y] * 2, np.float32)
        return b * scale + offset

    def model_to_image(self, boxes: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map (N, 4) model-input boxes back into image pixels (float32), clipped to the image.

        Args:
            boxes: (N, 4) ``[x1, y1, x2, y2]`` in model-input pixels.
            clip: clip to ``[0, W] x [0, H]`` of the original image.
        """
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        inv = np.array([1.0 / self.scale_x, 1.0 / self.scale_y] * 2, np.float64)
        offset = np.array([self.pad_x, self.pad_y] * 2, np.float64)
        out = ((b - offset) * inv).astype(np.float32)
        if clip:
            w, h = self.src_size
            np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
            np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
        return out

    def points_to_image(self, points: np.ndarray, clip: bool = True) -> np.ndarray:
        """Map model-input ``(x, y)`` points of any leading shape, (..., 2), back into image
        pixels (float32), clipped to ``[0, W] x [0, H]`` unless ``clip`` is False."""
        p = np.asarray(points, np.float32)
        inv = np.array([1.0 / self.scale_x, 1.0 / self.scale_y], np.float64)
        offset = np.array([self.pad_x, self.pad_y], np.float64)
        out = ((p - offset) * inv).astype(np.float32)
        if clip:
            w, h = self.src_size
            np.clip(out[..., 0], 0, w, out=out[..., 0])
            np.clip(out[..., 1], 0, h, out=out[..., 1])
        return out


def compute_letterbox(src_size: tuple[int, int], dst_size: tuple[int, int], *,
                      keep_aspect: bool = True, scale_up: bool = True, center: bool = True,
                      stride: int = 0) -> LetterboxTransform:
    """Plan the resize of a ``src_size`` image into a ``dst_size`` model input.

    Args:
        src_size: ``(width, height)`` of the image, both >= 1.
        dst_size: ``(width, height)`` of the model input, both >= 1.
        keep_aspect: True for letterbox (one scale, padding), False to stretch each axis.
        scale_up: allow enlarging small images (False keeps scale <= 1, as some YOLO exports).
        center: split the padding evenly (True) or put it all at the right/bottom (False).
        stride: if > 0, shrink the input to the smallest multiple of ``stride`` that holds the
            resized image (minimal padding for dynamic-shape models); 0 keeps ``dst_size``.

    Raises:
        ConfigError: on empty sizes or a negative stride.
    """
    sw, sh = (int(v) for v in src_size)
    dw, dh = (int(v) for v in dst_size)
    if min(sw, sh, dw, dh) < 1:
        raise ConfigError(f'letterbox sizes must be positive, got image {src_size} -> '
                          f'input {dst_size}')
    if stride < 0:
        raise ConfigError(f'letterbox stride must be >= 0, got {stride}')
    if keep_aspect:
        scale = min(dw / sw, dh / sh)
        if not scale_up:
            scale = min(scale, 1.0)
        nw = min(dw, max(1, int(round(sw * scale))))
        nh = min(dh, max(1, int(round(sh * scale))))
    else:
        nw, nh = (dw, dh) if scale_up else (min(dw, sw), min(dh, sh))
    if stride:
        dw = min(dw, -(-nw // stride) * stride)
        dh = min(dh, -(-nh // stride) * stride)
    px, py = ((dw - nw) // 2, (dh - nh) // 2) if center else (0, 0)
    return LetterboxTransform((sw, sh), (dw, dh), (nw, nh), nw / sw, nh / sh, px, py)


def apply_letterbox(image: np.ndarray, transform: LetterboxTransform, *,
                    pad_value: int | float = 0,
                    interpolation: int = cv2.INTER_LINEAR,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Resize and pad ``image`` as ``transform`` says.

    Args:
        image: (H, W) or (H, W, C) array with ``(W, H) == transform.src_size``.
        transform: from :func:`compute_letterbox`.
        pad_value: value of the padding pixels (all channels).
        interpolation: OpenCV interpolation flag for the resize.
        out: optional preallocated (dst_h, dst_w[, C]) array of the image's dtype to fill
            (avoids an allocation per frame).

    Returns:
        (dst_h, dst_w[, C]) array of the image's dtype.

    Raises:
        DataError: the image's size is not ``transform.src_size``.
    """
    h, w = image.shape[:2]
    if (w, h) != transform.src_size:
        raise DataError(f'image is {w}x{h} but the letterbox was planned for '
                        f'{transform.src_size[0]}x{transform.src_size[1]}')
    dw, dh = transform.dst_size
    nw, nh = transform.resized_size
    shape = (dh, dw) + image.shape[2:]
    if out is None or out.shape != shape or out.dtype != image.dtype:
        out = np.empty(shape, image.dtype)
    px, py = transform.pad_x, transform.pad_y
    if (nw, nh) != (dw, dh):
        # Fill only the borders, the resize writes the rest.
        out[:py] = pad_value
        out[py + nh:] = pad_value
        out[py:py + nh, :px] = pad_value
        out[py:py + nh, px + nw:] = pad_value
    inner = out[py:py + nh, px:px + nw]
    if (nw, nh) == (w, h):
        inner[...] = image
    else:
        # straight into the output (a strided view OpenCV writes in place): no copy per frame
        resized = cv2.resize(image, (nw, nh), dst=inner, interpolation=interpolation)
        if resized is not inner and not np.shares_memory(resized, inner):
            inner[...] = resized.reshape(inner.shape)  # e.g. (h, w, 1): OpenCV drops the 1
    return out


def letterbox(image: np.ndarray, size: tuple[int, int], *, pad_value: int | float = 0,
              keep_aspect: bool = True, scale_up: bool = True, center: bool = True,
              stride: int = 0, interpolation: int = cv2.INTER_LINEAR,
              ) -> tuple[np.ndarray, LetterboxTransform]:
    """Resize ``image`` into a ``size = (width, height)`` input; see :func:`compute_letterbox`.

    Returns:
        ``(resized, transform)``: the (h, w[, C]) input image and the map back to ``image``.
    """
    h, w = image.shape[:2]
    transform = compute_letterbox((w, h), size, keep_aspect=keep_aspect, scale_up=scale_up,
                                  center=center, stride=stride)
    return apply_letterbox(image, transform, pad_value=pad_value,
                           interpolation=interpolation), transform


def mask_to_image(mask: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
    """Map a per-pixel class mask from model-input space back onto the original image.

    Args:
        mask: (h, w) integer class ids covering the model input; it may be coarser than the
            input (a stride-4 output, say) as long as it spans the whole input.
        transform: the letterbox the input was made with.

    Returns:
        (H, W) mask of the same dtype on the original image (nearest-neighbour, padding cropped).
    """
    mh, mw = mask.shape[:2]
    dw, dh = transform.dst_size
    fx, fy = mw / dw, mh / dh
    x0, y0 = transform.pad_x * fx, transform.pad_y * fy
    x1 = x0 + transform.resized_size[0] * fx
    y1 = y0 + transform.resized_size[1] * fy
    sw, sh = transform.src_size
    # Sample the centre of every image pixel in mask coordinates (exact inverse of the map).
    xs = x0 + (np.arange(sw) + 0.5) * (x1 - x0) / sw
    ys = y0 + (np.arange(sh) + 0.5) * (y1 - y0) / sh
    xi = np.clip(np.floor(xs).astype(np.intp), 0, mw - 1)
    yi = np.clip(np.floor(ys).astype(np.intp), 0, mh - 1)
    return mask[yi[:, None], xi[None, :]]


def probability_to_image(prob: np.ndarray, transform: LetterboxTransform) -> np.ndarray:
    """Map a per-pixel float map (e.g. a foreground probability) from model-input space back
    onto the original image with bilinear interpolation (smooth edges, unlike class ids).

    Args:
        prob: (h, w) float map covering the model input (possibly coarser than the input).
        transform: the letterbox the input was made with.

    Returns:
        (H, W) float32 map on the original image (padding cropped).
    """
    mh, mw = prob.shape[:2]
    dw, dh = transform.dst_size
    fx, fy = mw / dw, mh / dh
    # crop the padding (rounded to whole map pixels), then one resize: edges never blend with
    # what the model said about the padding
    x0 = min(mw - 1, int(round(transform.pad_x * fx)))
    y0 = min(mh - 1, int(round(transform.pad_y * fy)))
    x1 = max(x0 + 1, min(mw, int(round((transform.pad_x + transform.resized_size[0]) * fx))))
    y1 = max(y0 + 1, min(mh, int(round((transform.pad_y + transform.resized_size[1]) * fy))))
    crop = np.ascontiguousarray(prob[y0:y1, x0:x1], np.float32)
    return cv2.resize(crop, transform.src_size, interpolation=cv2.INTER_LINEAR)
