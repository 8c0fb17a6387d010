"""Segmentation results after the model: class masks checked against their image, and
per-detection instance masks from a detector + semantic segmentation pair.

Class mask (what inference_node publishes on ``mask``): (H, W) uint8 (uint16 for more than 256
classes), the class id of every pixel of the image with the same header, indexing the model's
``label_info``. :func:`check_class_mask` refuses a mask of another size than its image or with
class ids the labels do not have (:class:`~edge_vision_core.errors.ConversionError`, naming
both), so a consumer never applies a mask to the wrong pixels.

**Instance image convention** (an ``instance_mask`` topic, :func:`instance_image`):

- the same size as the image and the same header (stamp, frame_id) as the image and the
  ``vision_msgs/Detection2DArray`` it belongs to;
- pixel value ``v > 0``: the pixel belongs to detection ``v - 1`` of that array (its index in
  ``detections[]``, message order); ``0``: no detection;
- encoding ``mono8`` when the array has fewer than 255 detections, ``mono16`` otherwise (at
  most 65535 detections);
- a detection owns the pixels inside its box whose mask class has the detection's class *name*
  (a ``person`` box takes ``person`` pixels); where boxes overlap, the detection with the higher
  score wins (ties: the lower index); a detection whose class the segmenter does not know gets
  no pixels (its box is still in the array).

Ids on a tracked array are the tracks' (``Detection2D.id``): the instance image indexes the
array, so it works for ``detections`` and ``tracks`` alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import ConversionError, DataError
from .types import Detections

__all__ = [
    'MAX_INSTANCES',
    'check_class_mask',
    'instance_encoding',
    'instance_image',
    'instance_masks',
    'masks_from_instance_image',
]

#: the most detections an instance image can index (mono16).
MAX_INSTANCES = 65535


def check_class_mask(mask: object, image_size: tuple[int, int] | None = None,
                     num_labels: int | None = None) -> np.ndarray:
    """A class mask, checked against its image and labels.

    Args:
        mask: (H, W) integer class ids.
        image_size: ``(width, height)`` the mask must have, or None to skip the check.
        num_labels: class ids must be below this (the length of the label list), or None.

    Returns:
        The mask as an (H, W) integer array (not copied).

    Raises:
        ConversionError: not a 2-D integer array, another size than the image, or class ids
            the labels do not have (naming them).
    """
    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ConversionError(f'a class mask must be a non-empty (H, W) integer array (mono8/'
                              f'mono16), got {arr.dtype} {arr.shape}')
    if image_size is not None and (arr.shape[1], arr.shape[0]) != tuple(image_size):
        raise ConversionError(f'the class mask is {arr.shape[1]}x{arr.shape[0]} but its image '
                              f'is {image_size[0]}x{image_size[1]}: a mask must come from the '
                              f'same image (same stamp and size)')
    if num_labels is not None:
        top = int(arr.max())
        if top >= num_labels:
            unknown = np.unique(arr[arr >= num_labels])
            shown = ', '.join(str(int(v)) for v in unknown[:10])
            raise ConversionError(f'the class mask has class id(s) {shown} but the labels know '
                                  f'only {num_labels} (0..{num_labels - 1}): is label_info '
                                  f'from the same model?')
    return arr


def instance_encoding(count: int) -> str:
    """``mono8`` for fewer than 255 detections, else ``mono16``.

    Raises:
        DataError: more than :data:`MAX_INSTANCES` detections.
    """
    if count > MAX_INSTANCES:
        raise DataError(f'an instance image indexes at most {MAX_INSTANCES} detections, got '
                        f'{count}; lower max_detections')
    return 'mono8' if count < 255 else 'mono16'


def instance_image(detections: Detections, class_mask: np.ndarray,
                   detection_labels: Sequence[str] | None,
                   mask_labels: Sequence[str]) -> np.ndarray:
    """Per-detection masks as one instance image (see the module docstring's convention).

    Args:
        detections: N boxes in the mask's pixels (e.g. a detector's persons).
        class_mask: (H, W) class ids of the same image (a semantic segmenter's mask).
        detection_labels: class names of the detections' class ids (None: the ids as names).
        mask_labels: class names of the mask's class ids.

    Returns:
        (H, W) uint8 (N < 255) or uint16 image: ``index + 1`` of the detection owning each
        pixel, 0 elsewhere.

    Raises:
        ConversionError: a malformed mask or class ids the mask labels do not have.
        DataError: more than :data:`MAX_INSTANCES` detections.
    """
    mask = check_class_mask(class_mask, None, len(mask_labels))
    height, width = mask.shape
    n = len(detections)
    dtype = np.uint8 if instance_encoding(n) == 'mono8' else np.uint16
    out = np.zeros((height, width), dtype)
    if n == 0:
        return out
    by_name = {name: i for i, name in enumerate(mask_labels)}
    names = [detection_labels[c] if detection_labels is not None and 0 <= c < len(
        detection_labels) else str(int(c)) for c in detections.class_ids.tolist()]
    # paint the weakest first, so the strongest detection wins where boxes overlap; a stable
    # sort on -score keeps the lower index on top among equal scores
    order = np.argsort(-detections.scores, kind='stable')[::-1]
    boxes = detections.boxes
    for i in order.tolist():
        cls = by_name.get(names[i])
        box = boxes[i]
        if cls is None or not np.all(np.isfinite(box)):
            continue
        x1 = int(np.clip(np.floor(box[0]), 0, width))
        y1 = int(np.clip(np.floor(box[1]), 0, height))
        x2 = int(np.clip(np.ceil(box[2]), 0, width))
        y2 = int(np.clip(np.ceil(box[3]), 0, height))
        if x2 <= x1 or y2 <= y1:
            continue
        region = out[y1:y2, x1:x2]
        region[mask[y1:y2, x1:x2] == cls] = i + 1
    return out


def masks_from_instance_image(instance: np.ndarray, count: int) -> np.ndarray:
    """(count, H, W) bool masks from an instance image (mask ``i`` = pixels equal to i + 1).

    Raises:
        ConversionError: not a 2-D integer image, or values above ``count`` (an instance
            image from another detection array).
    """
    arr = np.asarray(instance)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ConversionError(f'an instance image must be (H, W) mono8/mono16, got {arr.dtype} '
                              f'{arr.shape}')
    if arr.size and int(arr.max()) > count:
        raise ConversionError(f'the instance image has value {int(arr.max())} but its detection '
                              f'array has {count} detections: not the same stamp?')
    return arr[None, :, :] == np.arange(1, count + 1, dtype=np.int64)[:, None, None]


def instance_masks(detections: Detections, class_mask: np.ndarray,
                   detection_labels: Sequence[str] | None,
                   mask_labels: Sequence[str]) -> Detections:
    """``detections`` with ``masks`` (N, H, W) filled from :func:`instance_image`."""
    image = instance_image(detections, class_mask, detection_labels, mask_labels)
    return detections.replace(masks=masks_from_instance_image(image, len(detections)))
