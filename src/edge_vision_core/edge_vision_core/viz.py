"""Drawing detections, tracks, trails, heatmaps and a HUD on BGR images (OpenCV only), and the
geometry of detections shown in 3-D (:func:`box_outlines_3d`).

The drawing functions draw in place on a ``bgr8`` (H, W, 3) uint8 image and return it; boxes are
``[x1, y1, x2, y2]`` in that image's pixels. Colours are stable per track id (or class id for
untracked detections) so the same object keeps its colour from frame to frame.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import cv2
import numpy as np

from .camera import CameraModel
from .errors import ConfigError, DataError
from .types import Detections, class_name

__all__ = ['TrailHistory', 'blend_class_mask', 'blend_heatmap', 'box_outlines_3d', 'color_for',
           'detection_key', 'detection_label', 'draw_detections', 'draw_hud',
           'draw_instance_outlines', 'heatmap_to_bgr']


def color_for(key: int) -> tuple[int, int, int]:
    """A bright, stable BGR colour for an integer key (golden-ratio hue spacing)."""
    hue = int((key * 0.618033988749895 % 1.0) * 180)
    hsv = np.uint8([[[hue, 220, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


class TrailHistory:
    """Recent box centres per track id, for drawing short trails.

    Call :meth:`update` once per frame with that frame's tracks; ids not seen for
    ``max_age`` frames are forgotten.
    """

    def __init__(self, length: int = 20, max_age: int = 30) -> None:
        if length < 1 or max_age < 1:
            raise ConfigError('TrailHistory length and max_age must be >= 1')
        self.length, self.max_age = length, max_age
        self._points: dict[int, collections.deque[tuple[int, int]]] = {}
        self._last_seen: dict[int, int] = {}
        self._frame = 0

    def update(self, dets: Detections) -> None:
        self._frame += 1
        if dets.track_ids is not None:
            centers = dets.xywh[:, :2]
            for tid, (cx, cy) in zip(dets.track_ids.tolist(), centers, strict=True):
                if not (np.isfinite(cx) and np.isfinite(cy)):
                    continue
                trail = self._points.setdefault(tid, collections.deque(maxlen=self.length))
                trail.append((int(round(cx)), int(round(cy))))
                self._last_seen[tid] = self._frame
        for tid in [t for t, seen in self._last_seen.items()
                    if self._frame - seen > self.max_age]:
            del self._points[tid], self._last_seen[tid]

    def trail(self, track_id: int) -> list[tuple[int, int]]:
        return list(self._points.get(track_id, ()))

    def reset(self) -> None:
        self._points.clear()
        self._last_seen.clear()


def detection_key(dets: Detections, i: int) -> int:
    """The colour key of detection ``i``: its track id, else its class id + 1000."""
    return int(dets.track_ids[i]) if dets.track_ids is not None else \
        int(dets.class_ids[i]) + 1000


def box_outlines_3d(boxes: np.ndarray, camera: CameraModel, depth: float) -> np.ndarray:
    """Image boxes as closed rectangles at ``depth`` metres in the camera's optical frame.

    Each box's corners are cast through ``camera`` (:meth:`CameraModel.pixels_to_rays`, lens
    distortion removed) and placed at ``z = depth``: where the box would be if the object stood
    that far away. The depth is an assumption (a monocular detector measures none).

    Args:
        boxes: (N, 4) ``[x1, y1, x2, y2]`` in the pixels of the image ``camera`` describes.
        camera: a calibrated model (or :meth:`CameraModel.assumed`).
        depth: metres, > 0.

    Returns:
        (N, 5, 3) float64 points (x right, y down, z forward): corners TL, TR, BR, BL, TL.
    """
    if not (np.isfinite(depth) and depth > 0):
        raise ConfigError(f'box_outlines_3d needs a positive depth in metres, got {depth}')
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]], b[:, [0, 1]]],
                       axis=1)
    rays = camera.pixels_to_rays(corners.reshape(-1, 2))
    return (rays * depth).reshape(-1, 5, 3)


def detection_label(dets: Detections, i: int, labels: Sequence[str] | None) -> str:
    """``"#id class score"`` (``"class score"`` untracked) for detection ``i``."""
    text = f'{class_name(int(dets.class_ids[i]), labels)} {float(dets.scores[i]):.2f}'
    if dets.track_ids is not None:
        text = f'#{int(dets.track_ids[i])} {text}'
    return text


def draw_detections(image: np.ndarray, dets: Detections, labels: Sequence[str] | None = None,
                    trails: TrailHistory | None = None, thickness: int = 2) -> np.ndarray:
    """Boxes with "#id class score" labels, and trails for tracked detections."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f'draw_detections needs a bgr8 image, got {image.dtype} '
                        f'{image.shape}')
    height, width = image.shape[:2]
    scale = max(0.4, min(width, height) / 900)
    valid = dets.valid_mask()
    for i in np.flatnonzero(valid):
        color = color_for(detection_key(dets, i))
        x1, y1, x2, y2 = (int(round(v)) for v in np.clip(dets.boxes[i], -1e6, 1e6))
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        if trails is not None and dets.track_ids is not None:
            points = trails.trail(int(dets.track_ids[i]))
            if len(points) > 1:
                cv2.polylines(image, [np.array(points, np.int32)], False, color,
                              max(1, thickness - 1), cv2.LINE_AA)
        text = detection_label(dets, i, labels)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else y1 + th + 4
        cv2.rectangle(image, (x1, ty - th - 3), (x1 + tw + 4, ty + base - 1), color, -1)
        cv2.putText(image, text, (x1 + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return image


def _unit_heatmap(heatmap: np.ndarray, vmin: float | None, vmax: float | None) -> np.ndarray:
    """A 2-D heatmap scaled to [0, 1] (float32; NaN/inf as 0) with ``vmin``/``vmax``
    (default: its own range)."""
    heat = np.asarray(heatmap, np.float32)
    if heat.ndim != 2 or heat.size == 0:
        raise DataError(f'heatmap must be a non-empty 2-D array, got shape {heat.shape}')
    heat = np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)
    lo = float(heat.min()) if vmin is None else vmin
    hi = float(heat.max()) if vmax is None else vmax
    return np.clip((heat - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(heat)


def blend_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45,
                  vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Blend a float heatmap (any size; resized to the image) as a JET overlay.

    Values are scaled to [0, 1] with ``vmin``/``vmax`` (default: the heatmap's own range).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f'alpha must be in [0, 1], got {alpha}')
    norm = _unit_heatmap(heatmap, vmin, vmax)
    norm = cv2.resize(norm, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)
    cv2.addWeighted(colored, alpha, image, 1 - alpha, 0, dst=image)
    return image


def heatmap_to_bgr(heatmap: np.ndarray) -> np.ndarray:
    """An anomaly heatmap as a JET-coloured (H, W, 3) uint8 image for display.

    ``uint8`` heatmaps (anomaly_node's ``mono8``: 128 = the threshold) keep their fixed scale;
    float ones (``32FC1`` raw patch distances, whose threshold the image does not carry) are
    scaled from 0 to their own maximum.
    """
    heat = np.asarray(heatmap)
    if heat.ndim == 3 and heat.shape[2] == 1:
        heat = heat[:, :, 0]
    if heat.dtype == np.uint8 and heat.ndim == 2 and heat.size:
        return cv2.applyColorMap(heat, cv2.COLORMAP_JET)
    norm = _unit_heatmap(heat, 0.0, None)
    return cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_JET)


def blend_class_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5,
                     skip_background: bool = True) -> np.ndarray:
    """Blend a per-pixel class mask over a bgr8 image, one colour per class id.

    Class ``c`` gets the colour of untracked detections of class ``c`` (:func:`detection_key`),
    so a segmented person and a detected person share a colour.

    Args:
        image: (H, W, 3) uint8 BGR, drawn on in place.
        mask: (H, W) integer class ids of the same image.
        alpha: opacity of the colours.
        skip_background: leave class 0 pixels untouched.

    Raises:
        DataError: a mask of another size or not integer.
        ConfigError: alpha out of [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f'alpha must be in [0, 1], got {alpha}')
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2] or not np.issubdtype(mask.dtype, np.integer):
        raise DataError(f'the class mask ({mask.dtype} {mask.shape}) must be an integer array '
                        f'of the image\'s size {image.shape[:2]}')
    if not mask.size:
        return image
    top = int(mask.max())
    palette = np.array([color_for(c + 1000) for c in range(top + 1)], np.uint8)
    colored = palette[mask]
    blended = cv2.addWeighted(colored, alpha, image, 1 - alpha, 0)
    if skip_background:
        np.copyto(image, blended, where=(mask != 0)[..., None])
    else:
        image[...] = blended
    return image


def draw_instance_outlines(image: np.ndarray, instance: np.ndarray, dets: Detections,
                           thickness: int = 2) -> np.ndarray:
    """Outline every instance of an instance image (value ``i + 1`` = detection ``i``, see
    :mod:`edge_vision_core.segmentation`) in its detection's colour, in place.

    Raises:
        DataError: an instance image of another size than the image.
    """
    instance = np.asarray(instance)
    if instance.shape != image.shape[:2]:
        raise DataError(f'the instance image {instance.shape} must have the image\'s size '
                        f'{image.shape[:2]}')
    height, width = instance.shape
    for i in range(len(dets)):
        box = dets.boxes[i]
        if not np.all(np.isfinite(box)):
            continue
        x1, y1 = (int(np.clip(np.floor(v), 0, lim)) for v, lim in zip(box[:2], (width, height),
                                                                         strict=True))
        x2, y2 = (int(np.clip(np.ceil(v), 0, lim)) for v, lim in zip(box[2:], (width, height),
                                                                        strict=True))
        region = (instance[y1:y2, x1:x2] == i + 1).astype(np.uint8)
        if not region.any():
            continue
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                       offset=(x1, y1))
        cv2.drawContours(image, contours, -1, color_for(detection_key(dets, i)), thickness,
                         cv2.LINE_AA)
    return image


def draw_hud(image: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """A small translucent box with text lines in the top-left corner."""
    if not lines:
        return image
    scale = max(0.4, min(image.shape[:2]) / 1000)
    sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0] for t in lines]
    line_h = max(h for _, h in sizes) + 6
    box_w = max(w for w, _ in sizes) + 12
    box_h = line_h * len(lines) + 6
    roi = image[:min(box_h, image.shape[0]), :min(box_w, image.shape[1])]
    roi[:] = (roi * 0.4).astype(np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(image, text, (6, (i + 1) * line_h), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return image
