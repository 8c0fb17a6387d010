"""A synthetic camera: moving, occluding objects over a textured background, with ground truth.

Like image_tools' ``burger_mode``, it lets the whole pipeline run and be tested with no camera,
but it also knows the truth: every frame comes with the visible box and identity of each object,
so tracking and detection can be scored on it.

The scene (deterministic for a given seed):

- a static textured background (smooth noise plus a grid, so optical-flow camera-motion
  compensation finds features),
- ``num_objects`` sprites moving at constant velocity and bouncing off the borders; the sprite
  kind is ``shapes`` (filled rectangles, ellipses and triangles in distinct colours) or
  ``images`` (cut-outs given by the caller, e.g. real objects a detector recognises),
- an opaque vertical bar sweeping across the image (``occluder=True``) that hides objects for
  a few frames: the classic short occlusion a tracker must survive,
- optional camera pan (``pan_px_per_frame``): the whole scene shifts, as when a robot turns.

Ground truth: every object at least half visible (inside the image and not behind the
occluder), with its full extent clipped to the image as the box, in pixels
(``[x1, y1, x2, y2]``), ``track_ids`` = the object's identity (stable) and ``scores`` = the
visible fraction. An object mostly behind the bar is absent from the truth for those frames:
to a tracker, a short occlusion. Objects may pass in front of one another; their boxes stay
their full extents then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..config import check_config, param
from ..errors import ConfigError
from ..types import Detections

__all__ = ['SyntheticConfig', 'SyntheticScene']

# Objects less visible than this are not in the ground truth (a detector would miss them).
_MIN_VISIBLE = 0.5

_COLORS = [(40, 40, 220), (40, 200, 40), (220, 120, 30), (30, 200, 220), (200, 40, 200),
           (20, 140, 255), (255, 255, 80), (120, 60, 180)]


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the synthetic scene."""

    width: int = field(default=640, metadata=param('Image width.', min=32, max=7680,
                                                   unit='px'))
    height: int = field(default=480, metadata=param('Image height.', min=32, max=4320,
                                                    unit='px'))
    num_objects: int = field(default=4, metadata=param('Number of moving objects.', min=0,
                                                       max=64))
    speed: float = field(default=4.0, metadata=param(
        'Object speed in pixels per frame (each object gets 0.5x..1.5x of it).', min=0.0,
        max=100.0, unit='px/frame'))
    object_size: float = field(default=0.15, metadata=param(
        'Object size as a fraction of the image height.', min=0.02, max=0.8))
    occluder: bool = field(default=True, metadata=param(
        'Sweep an opaque bar across the scene (short occlusions).'))
    pan_px_per_frame: float = field(default=0.0, metadata=param(
        'Horizontal camera pan: the whole scene shifts by this much per frame.', min=-50.0,
        max=50.0, unit='px/frame'))
    noise_sigma: float = field(default=2.0, metadata=param(
        'Standard deviation of additive sensor noise (0 = none).', min=0.0, max=100.0))
    seed: int = field(default=0, metadata=param('Random seed (same seed, same scene).', min=0))

    def __post_init__(self) -> None:
        check_config(self)


@dataclass
class _Object:
    kind: int
    color: tuple[int, int, int]
    w: float
    h: float
    x: float
    y: float
    vx: float
    vy: float
    class_id: int


class SyntheticScene:
    """Renders frames of the synthetic scene; ``render(i)`` is a pure function of ``i``.

    Args:
        config: scene settings.
        sprites: optional BGR cut-outs (H, W, 3) uint8, with optional alpha (H, W, 4); when
            given, objects are these images instead of geometric shapes.
        sprite_class_ids: class id per sprite (ground-truth ``class_ids``); default 0..n-1.
    """

    def __init__(self, config: SyntheticConfig | None = None,
                 sprites: Sequence[np.ndarray] | None = None,
                 sprite_class_ids: Sequence[int] | None = None) -> None:
        self.config = config or SyntheticConfig()
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        self._sprites = [self._check_sprite(s) for s in sprites] if sprites else []
        if sprite_class_ids is not None and len(sprite_class_ids) != len(self._sprites):
            raise ConfigError(f'{len(sprite_class_ids)} sprite class ids for '
                              f'{len(self._sprites)} sprites')
        self._sprite_classes = list(sprite_class_ids) if sprite_class_ids is not None else \
            list(range(len(self._sprites)))
        self._background = self._make_background(rng)
        size = cfg.object_size * cfg.height
        self._objects: list[_Object] = []
        for i in range(cfg.num_objects):
            if self._sprites:
                sprite = self._sprites[i % len(self._sprites)]
                aspect = sprite.shape[1] / sprite.shape[0]
                h = size * rng.uniform(0.9, 1.3)
                w = h * aspect
                class_id = self._sprite_classes[i % len(self._sprites)]
            else:
                h = size * rng.uniform(0.7, 1.3)
                w = size * rng.uniform(0.7, 1.3)
                class_id = i % 3
            angle = rng.uniform(0, 2 * np.pi)
            speed = cfg.speed * rng.uniform(0.5, 1.5)
            self._objects.append(_Object(
                kind=i % 3, color=_COLORS[i % len(_COLORS)], w=w, h=h,
                x=rng.uniform(0, max(1.0, cfg.width - w)), y=rng.uniform(0, max(1.0,
                                                                               cfg.height - h)),
                vx=speed * np.cos(angle), vy=speed * np.sin(angle), class_id=class_id))
        # A small bank of noise fields, cycled: per-frame Gaussian sampling would cost more
        # than everything else in render() together.
        self._noise = [] if cfg.noise_sigma <= 0 else [
            np.clip(rng.normal(0.0, cfg.noise_sigma, (cfg.height, cfg.width, 3)), -127,
                    127).astype(np.int16) for _ in range(7)]

    @staticmethod
    def _check_sprite(sprite: np.ndarray) -> np.ndarray:
        arr = np.asarray(sprite)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4) or \
                min(arr.shape[:2]) < 4:
            raise ConfigError(f'a sprite must be a (H, W, 3 or 4) uint8 image of at least 4x4, '
                              f'got {arr.dtype} {arr.shape}')
        return arr

    def _make_background(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        # Wider than the image so a pan can slide over it.
        margin = int(np.ceil(abs(cfg.pan_px_per_frame) * 600)) + 1
        width = cfg.width + margin
        small = rng.integers(60, 190, size=(max(4, cfg.height // 24), max(4, width // 24), 3),
                             dtype=np.uint8)
        bg = cv2.resize(small, (width, cfg.height), interpolation=cv2.INTER_CUBIC)
        bg = cv2.GaussianBlur(bg, (0, 0), 3)
        step = max(16, cfg.height // 12)
        bg[::step, :] = (bg[::step, :] * 0.6).astype(np.uint8)
        bg[:, ::step] = (bg[:, ::step] * 0.6).astype(np.uint8)
        self._bg_margin = margin
        return bg

    def _positions(self, index: int) -> list[tuple[float, float]]:
        """Object top-left corners at frame ``index``: bouncing off the borders, shifted by the
        camera pan (wrapping around horizontally, so panned-out objects come back)."""
        cfg = self.config
        pan = cfg.pan_px_per_frame * index
        out = []
        for obj in self._objects:
            x = _bounce(obj.x + obj.vx * index, cfg.width - obj.w)
            if pan:
                x = (x - pan + obj.w) % (cfg.width + obj.w) - obj.w
            out.append((x, _bounce(obj.y + obj.vy * index, cfg.height - obj.h)))
        return out

    def _occluder_span(self, index: int) -> tuple[int, int] | None:
        if not self.config.occluder:
            return None
        cfg = self.config
        bar = max(8, cfg.width // 12)
        period = 2 * (cfg.width + bar)
        pos = (index * max(6.0, cfg.speed * 3.0)) % period
        x0 = int(pos - bar) if pos < cfg.width + bar else int(period - pos - bar)
        return x0, x0 + bar

    def render(self, index: int) -> tuple[np.ndarray, Detections]:
        """Frame ``index`` (bgr8, (H, W, 3) uint8) and its ground truth.

        Ground truth: visible boxes in pixels, ``class_ids`` (shape kind or sprite class),
        ``track_ids`` = object identity, ``scores`` = visible fraction of the object.
        """
        cfg = self.config
        pan = cfg.pan_px_per_frame * index
        offset = int(round(pan)) % self._bg_margin  # the margin is at least 1
        frame = np.ascontiguousarray(self._background[:, offset:offset + cfg.width])
        boxes, ids, classes, visible = [], [], [], []
        for i, (obj, (x, y)) in enumerate(zip(self._objects, self._positions(index), strict=True)):
            self._draw(frame, i, x, y)
            boxes.append([x, y, x + obj.w, y + obj.h])
            ids.append(i)
            classes.append(obj.class_id)
        span = self._occluder_span(index)
        if span is not None:
            x0, x1 = max(0, span[0]), min(cfg.width, span[1])
            if x1 > x0:
                frame[:, x0:x1] = (70, 70, 70)
                frame[:, x0:x1:6] = (110, 110, 110)
        kept_boxes, kept_ids, kept_classes = [], [], []
        for box, obj_id, cls in zip(boxes, ids, classes, strict=True):
            vis_box, fraction = _visible_part(box, cfg.width, cfg.height, span)
            if vis_box is not None and fraction >= _MIN_VISIBLE:
                kept_boxes.append(vis_box)
                kept_ids.append(obj_id)
                kept_classes.append(cls)
                visible.append(fraction)
        if self._noise:
            frame = cv2.add(frame, self._noise[index % len(self._noise)], dtype=cv2.CV_8U)
        truth = Detections(np.array(kept_boxes, np.float32).reshape(-1, 4),
                           np.array(visible, np.float32), np.array(kept_classes, np.int32),
                           track_ids=np.array(kept_ids, np.int64))
        return frame, truth

    def _draw(self, frame: np.ndarray, i: int, x: float, y: float) -> None:
        obj = self._objects[i]
        x0, y0 = int(round(x)), int(round(y))
        w, h = max(2, int(round(obj.w))), max(2, int(round(obj.h)))
        if self._sprites:
            _paste(frame, self._sprites[i % len(self._sprites)], x0, y0, w, h)
            return
        if obj.kind == 0:
            cv2.rectangle(frame, (x0, y0), (x0 + w - 1, y0 + h - 1), obj.color, -1)
        elif obj.kind == 1:
            cv2.ellipse(frame, (x0 + w // 2, y0 + h // 2), (w // 2, h // 2), 0, 0, 360,
                        obj.color, -1)
        else:
            pts = np.array([[x0 + w // 2, y0], [x0, y0 + h - 1], [x0 + w - 1, y0 + h - 1]],
                           np.int32)
            cv2.fillConvexPoly(frame, pts, obj.color)


def _bounce(pos: float, limit: float) -> float:
    """Reflect ``pos`` into [0, limit] (a ball bouncing between two walls)."""
    if limit <= 0:
        return 0.0
    period = 2 * limit
    p = pos % period
    return p if p <= limit else period - p


def _visible_part(box: list[float], width: int, height: int,
                  span: tuple[int, int] | None) -> tuple[list[float] | None, float]:
    """The ground-truth box of an object (its full extent clipped to the image) and the
    fraction of its area that is visible (inside the image and not behind the occluder)."""
    x1, y1, x2, y2 = box
    area = max(1e-6, (x2 - x1) * (y2 - y1))
    cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height),
                                                                              y2)
    if cx2 <= cx1 or cy2 <= cy1:
        return None, 0.0
    visible_w = cx2 - cx1
    if span is not None:
        visible_w -= max(0.0, min(cx2, float(span[1])) - max(cx1, float(span[0])))
    if visible_w <= 0:
        return None, 0.0
    return [cx1, cy1, cx2, cy2], visible_w * (cy2 - cy1) / area


def _paste(frame: np.ndarray, sprite: np.ndarray, x0: int, y0: int, w: int, h: int) -> None:
    resized = cv2.resize(sprite, (w, h), interpolation=cv2.INTER_AREA)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    crop = resized[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    if crop.shape[2] == 4:
        alpha = crop[:, :, 3:4].astype(np.float32) / 255.0
        region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
        frame[fy0:fy1, fx0:fx1] = (alpha * crop[:, :, :3] + (1 - alpha) * region).astype(
            np.uint8)
    else:
        frame[fy0:fy1, fx0:fx1] = crop
