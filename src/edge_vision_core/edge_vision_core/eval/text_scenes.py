"""Synthetic OCR scenes: signs and labels rendered onto real photographs, with ground truth.

:func:`make_scene` draws one image: a real photograph that ships inside scikit-image (astronaut,
cat, coffee, motorcycle, rocket, cameraman, brick, grass, gravel), cropped and scaled to the
image size, with one to four text objects rendered with Pillow in DejaVu fonts (the copy that
ships inside matplotlib, else Debian's ``fonts-dejavu``):

- **signs**: a coloured panel (white, yellow, green, blue, red, grey, black) with one to three
  lines (door, aisle, room, safety and direction signs), optionally with a border;
- **labels**: one to three lines printed straight on the scene (serial numbers, lot codes,
  dates, prices, part numbers), in a colour that contrasts with the place they land on.

Each object is warped onto the photo by a random homography (rotation, perspective, scale), so
lines arrive rotated and foreshortened; then the whole image gets uneven light (a linear or
radial gain), Gaussian or motion blur, sensor noise and JPEG compression, each with random
strength. :data:`SPLITS` fixes the seeds: ``tune`` (settings were chosen on it) and ``heldout``
(never looked at while tuning) draw from the same distribution with different seeds.

Ground truth per line: its text and the (4, 2) quadrilateral of its ink box, in image pixels
(corner coordinates), clockwise from the top-left corner of the text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError

__all__ = ['SPLITS', 'GroundTruthLine', 'TextScene', 'font_paths', 'make_scene', 'make_split',
           'read_ground_truth', 'scene_image_set', 'write_split']

#: name -> (first seed, number of images). ``calib`` feeds INT8 calibration of the text models.
SPLITS = {'tune': (1000, 60), 'heldout': (5000, 60), 'calib': (9000, 64)}

_FONT_FILES = ('DejaVuSans.ttf', 'DejaVuSans-Bold.ttf', 'DejaVuSansMono.ttf',
               'DejaVuSansMono-Bold.ttf', 'DejaVuSerif.ttf', 'DejaVuSerif-Bold.ttf',
               'DejaVuSans-Oblique.ttf')
_BACKGROUNDS = ('astronaut', 'chelsea', 'coffee', 'motorcycle_left', 'motorcycle_right',
                'rocket', 'camera', 'brick', 'grass', 'gravel')
_SIZES = ((640, 480), (800, 600), (960, 720), (1024, 768), (1280, 720), (1280, 960),
          (1920, 1080))

_SIGN_WORDS = ('EXIT', 'EMERGENCY EXIT', 'NO ENTRY', 'STAFF ONLY', 'CAUTION', 'WET FLOOR',
               'DANGER', 'HIGH VOLTAGE', 'KEEP CLEAR', 'FIRE EXTINGUISHER', 'FIRST AID',
               'Reception', 'Elevator', 'Stairs', 'Toilets', 'Office', 'Storage', 'Warehouse',
               'Shipping', 'Receiving', 'Assembly', 'Inspection', 'Maintenance', 'Laboratory',
               'Charging Station', 'Robot Lane', 'Pedestrians', 'Forklifts', 'Visitors',
               'Meeting Room', 'Server Room', 'Loading Bay', 'Cold Store', 'Quality Control',
               'Push', 'Pull', 'Open', 'Closed', 'Authorized Personnel', 'Hard Hat Area')
_NUMBERED = ('AISLE {n}', 'DOCK {n}', 'ROOM {n}{L}', 'GATE {L}{n}', 'FLOOR {n}', 'ZONE {L}',
             'Bay {n}', 'Level {n}', 'Platform {n}', 'Rack {L}{n}-{m}', 'Line {n}',
             'Building {L}', 'Station {n}', 'Door {L}-{n}{m}')
_LABELS = ('SN: {code}', 'S/N {code}', 'LOT {n}-{m}', 'PART No. {code}', 'BATCH {code}',
           'EXP 2027-{mm}-{dd}', 'MFG {dd}.{mm}.2026', '{n} kg', 'NET {n}.{m} kg',
           'QTY {n}', 'MODEL {code}', 'Ref. {code}', 'PRICE {price}', '{price} EUR',
           'Order #{n}{m}', 'Bin {L}{n}', 'Made in Germany', 'Made in Japan', 'Fragile',
           'This Side Up', 'Handle With Care', 'Use By {dd}/{mm}', 'Pallet {n}')
#: (panel, text) colours in RGB: white, yellow, green, blue, red, grey, black, cream.
_PANELS = (((255, 255, 255), (20, 20, 20)), ((250, 200, 30), (10, 10, 10)),
           ((30, 140, 40), (255, 255, 255)), ((20, 70, 150), (255, 255, 255)),
           ((200, 30, 30), (255, 255, 255)), ((200, 200, 200), (30, 30, 30)),
           ((15, 15, 15), (240, 240, 240)), ((245, 240, 235), (170, 30, 20)))


@dataclass(frozen=True)
class GroundTruthLine:
    """One rendered line: its text and (4, 2) float32 quadrilateral in image pixels."""

    text: str
    polygon: np.ndarray


@dataclass(frozen=True)
class TextScene:
    """One generated image (bgr8) with its lines and the random choices that made it."""

    image: np.ndarray
    lines: tuple[GroundTruthLine, ...]
    seed: int
    info: dict


def font_paths() -> list[Path]:
    """The DejaVu TrueType files found (matplotlib's copy first, then Debian's).

    Raises:
        ConfigError: none found (install matplotlib or fonts-dejavu).
    """
    folders = []
    try:
        import matplotlib
        folders.append(Path(matplotlib.get_data_path()) / 'fonts' / 'ttf')
    except ImportError:
        pass
    folders.append(Path('/usr/share/fonts/truetype/dejavu'))
    found = []
    for name in _FONT_FILES:
        for folder in folders:
            if (folder / name).is_file():
                found.append(folder / name)
                break
    if not found:
        raise ConfigError('no DejaVu font found: pip install matplotlib (it ships DejaVu) or '
                          'apt install fonts-dejavu')
    return found


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise ConfigError('rendering text scenes needs Pillow: pip install pillow') from exc
    return Image, ImageDraw, ImageFont


_BACKGROUND_CACHE: dict[str, np.ndarray] = {}


def _background(name: str) -> np.ndarray:
    if name not in _BACKGROUND_CACHE:
        from ..optimize.images import sample_images
        _BACKGROUND_CACHE[name] = sample_images([name])[0][1]
    return _BACKGROUND_CACHE[name]


def _fill(template: str, rng: np.random.Generator) -> str:
    letters = 'ABCDEFGHJKLMNPRSTUVWXYZ'
    code = ''.join(rng.choice(list(letters))) + ''.join(rng.choice(list(letters))) + '-' + \
        str(rng.integers(100, 99999)) + (str(rng.choice(list(letters))) if rng.random() < 0.4
                                         else '')
    values = {'n': str(rng.integers(1, 60)), 'm': str(rng.integers(1, 10)),
              'L': str(rng.choice(list(letters))), 'code': code,
              'mm': f'{rng.integers(1, 13):02d}', 'dd': f'{rng.integers(1, 29):02d}',
              'price': f'{rng.integers(1, 500)}.{rng.integers(0, 100):02d}'}
    return template.format(**values)


def _sign_lines(rng: np.random.Generator, label: bool) -> list[str]:
    count = int(rng.choice([1, 1, 2, 2, 3]))
    lines = []
    for _ in range(count):
        if label:
            lines.append(_fill(str(rng.choice(_LABELS)), rng))
        elif rng.random() < 0.5:
            lines.append(str(rng.choice(_SIGN_WORDS)))
        else:
            lines.append(_fill(str(rng.choice(_NUMBERED)), rng))
    return lines


def _render_object(rng: np.random.Generator, lines: list[str], font_file: Path, size_px: int,
                   panel: tuple | None, text_rgb: tuple[int, int, int]
                   ) -> tuple[np.ndarray, list[np.ndarray]]:
    """A BGRA object (panel or bare text) and each line's ink box corners in it."""
    Image, ImageDraw, ImageFont = _pil()
    font = ImageFont.truetype(str(font_file), size_px)
    boxes = [font.getbbox(line) for line in lines]
    widths = [b[2] - b[0] for b in boxes]
    heights = [b[3] - b[1] for b in boxes]
    gap = int(size_px * rng.uniform(0.25, 0.6))
    margin = int(size_px * rng.uniform(0.4, 0.9)) if panel else int(size_px * 0.3)
    width = max(widths) + 2 * margin
    height = sum(heights) + gap * (len(lines) - 1) + 2 * margin
    image = Image.new('RGBA', (width, height), (*panel[0], 255) if panel else (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if panel and rng.random() < 0.5:
        border = max(2, size_px // 10)
        draw.rectangle([border, border, width - 1 - border, height - 1 - border],
                       outline=(*panel[1], 255), width=border)
    align = rng.choice(['left', 'center'])
    y = margin
    corners = []
    for line, box, w, h in zip(lines, boxes, widths, heights, strict=True):
        x = margin if align == 'left' else (width - w) // 2
        draw.text((x - box[0], y - box[1]), line, font=font, fill=(*text_rgb, 255))
        ink = draw.textbbox((x - box[0], y - box[1]), line, font=font)
        x0, y0, x1, y1 = (float(v) for v in ink)
        corners.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32))
        y += h + gap
    return np.ascontiguousarray(np.asarray(image)[..., [2, 1, 0, 3]]), corners


def _homography(rng: np.random.Generator, obj_w: int, obj_h: int, centre: tuple[float, float],
                scale: float, max_angle: float, perspective: float) -> np.ndarray:
    src = np.array([[0, 0], [obj_w, 0], [obj_w, obj_h], [0, obj_h]], np.float32)
    half = np.array([obj_w, obj_h], np.float32) * scale / 2
    base = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32) * half
    base += rng.uniform(-perspective, perspective, (4, 2)).astype(np.float32) * half
    angle = math.radians(rng.uniform(-max_angle, max_angle))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                   np.float32)
    dst = base @ rot.T + np.array(centre, np.float32)
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def _degrade(rng: np.random.Generator, image: np.ndarray, info: dict) -> np.ndarray:
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    if rng.random() < 0.7:  # uneven light
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        if rng.random() < 0.5:
            direction = rng.uniform(0, 2 * math.pi)
            ramp = (xx * math.cos(direction) + yy * math.sin(direction))
            ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            ramp = np.hypot(xx - cx, yy - cy) / math.hypot(w, h)
        lo, hi = rng.uniform(0.35, 0.8), rng.uniform(1.0, 1.25)
        gain = hi - (hi - lo) * ramp
        out *= gain[..., None]
        info['light'] = [round(lo, 2), round(hi, 2)]
    blur = rng.random()
    if blur < 0.45:
        sigma = rng.uniform(0.5, 1.6)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
        info['blur'] = f'gaussian {sigma:.2f}'
    elif blur < 0.6:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5),
                                      float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        kernel /= max(float(kernel.sum()), 1e-6)
        out = cv2.filter2D(out, -1, kernel)
        info['blur'] = f'motion {length}'
    sigma = rng.uniform(0, 10)
    out += rng.normal(0, sigma, out.shape).astype(np.float32)
    info['noise'] = round(sigma, 1)
    image = np.clip(out, 0, 255).astype(np.uint8)
    quality = int(rng.integers(45, 96))
    ok, data = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    info['jpeg'] = quality
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else image


def make_scene(seed: int, size: tuple[int, int] | None = None, objects: int = 0,
               max_angle: float = 25.0) -> TextScene:
    """Render one scene (see the module docstring); the same seed gives the same image.

    Args:
        seed: random seed.
        size: ``(width, height)``; None picks one of several camera sizes.
        objects: number of text objects (0 = 1 to 4 at random).
        max_angle: largest in-plane rotation in degrees.
    """
    _, _, _ = _pil()
    rng = np.random.default_rng(seed)
    fonts = font_paths()
    w, h = size or _SIZES[int(rng.integers(len(_SIZES)))]
    name = str(rng.choice(_BACKGROUNDS))
    photo = _background(name)
    ph, pw = photo.shape[:2]
    crop = rng.uniform(0.5, 1.0)
    cw = min(pw, int(pw * crop))
    ch = min(ph, max(8, int(cw * h / w)))
    cw = min(pw, int(ch * w / h))
    x0, y0 = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    canvas = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], (w, h),
                        interpolation=cv2.INTER_CUBIC).astype(np.float32)
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1]
    occupied = np.zeros((h, w), np.uint8)
    lines: list[GroundTruthLine] = []
    info: dict = {'background': name, 'size': [w, h], 'objects': []}
    count = objects or int(rng.integers(1, 5))
    for _ in range(count):
        for _attempt in range(20):
            label = rng.random() < 0.4
            texts = _sign_lines(rng, label)
            font = fonts[int(rng.integers(len(fonts)))]
            text_h = rng.uniform(0.022, 0.09) * h  # cap height in the image
            font_px = max(10, int(text_h / 0.72))
            panel = None if label and rng.random() < 0.7 else \
                _PANELS[int(rng.integers(len(_PANELS)))]
            text_rgb = (255, 255, 255) if panel is None else panel[1]
            rgba, corners = _render_object(rng, texts, font, font_px, panel, text_rgb)
            oh, ow = rgba.shape[:2]
            scale = 1.0
            if ow * scale > 0.9 * w or oh * scale > 0.9 * h:
                continue
            centre = (rng.uniform(0.5 * ow, w - 0.5 * ow), rng.uniform(0.5 * oh, h - 0.5 * oh))
            homography = _homography(rng, ow, oh, centre, scale, max_angle,
                                     rng.uniform(0.0, 0.12))
            outline = cv2.perspectiveTransform(
                np.array([[[0, 0], [ow, 0], [ow, oh], [0, oh]]], np.float32), homography)[0]
            if outline.min() < 2 or outline[:, 0].max() > w - 2 or outline[:, 1].max() > h - 2:
                continue
            footprint = np.zeros((h, w), np.uint8)
            cv2.fillConvexPoly(footprint, np.round(outline).astype(np.int32), 1)
            if (footprint & occupied).any():
                continue
            warped = cv2.warpPerspective(rgba, homography, (w, h), flags=cv2.INTER_LINEAR)
            alpha = warped[..., 3:4].astype(np.float32) / 255.0
            if panel is None:  # bare text: pick the colour that contrasts with the spot
                spot = canvas[footprint.astype(bool)].mean()
                colour = np.array([15, 15, 15] if spot > 110 else [245, 245, 245], np.float32)
                ink = np.broadcast_to(colour, warped[..., :3].shape)
            else:
                ink = warped[..., :3].astype(np.float32)
            canvas = canvas * (1 - alpha) + ink * alpha
            occupied |= footprint
            for text, box in zip(texts, corners, strict=True):
                quad = cv2.perspectiveTransform(box[None], homography)[0]
                lines.append(GroundTruthLine(text, quad.astype(np.float32)))
            info['objects'].append({'kind': 'label' if label else 'sign',
                                    'font': font.name, 'text_px': round(text_h, 1),
                                    'lines': texts})
            break
    image = _degrade(rng, np.clip(canvas, 0, 255).astype(np.uint8), info)
    return TextScene(image, tuple(lines), seed, info)


def make_split(split: str, count: int = 0) -> list[TextScene]:
    """The scenes of a named split (:data:`SPLITS`), or its first ``count``.

    Raises:
        ConfigError: an unknown split name.
    """
    if split not in SPLITS:
        raise ConfigError(f'unknown split {split!r}, expecting one of {list(SPLITS)}')
    first, total = SPLITS[split]
    n = min(count, total) if count else total
    return [make_scene(first + i) for i in range(n)]


def scene_image_set(split: str = 'calib', count: int = 0):
    """The images of a split as an :class:`edge_vision_core.optimize.images.ImageSet` (the
    default calibration and evaluation set of text models)."""
    from ..optimize.images import ImageSet, image_set_sha256

    scenes = make_split(split, count)
    images = tuple(scene.image for scene in scenes)
    return ImageSet(images, tuple(f'{split}_{scene.seed}' for scene in scenes),
                    f'rendered text scenes ({split} split, edge_vision_core.eval.text_scenes)',
                    image_set_sha256(images))


def write_split(scenes: Sequence[TextScene], folder: str | Path) -> Path:
    """Write ``<seed>.png`` per scene and ``ground_truth.jsonl`` (one line per image:
    ``{"file", "lines": [{"text", "polygon"}], "info"}``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for scene in scenes:
        name = f'{scene.seed:06d}.png'
        if not cv2.imwrite(str(folder / name), scene.image):
            raise ConfigError(f'cannot write {folder / name}')
        records.append({'file': name, 'info': scene.info, 'lines': [
            {'text': line.text, 'polygon': np.round(line.polygon, 2).tolist()}
            for line in scene.lines]})
    target = folder / 'ground_truth.jsonl'
    with open(target, 'w', encoding='utf-8') as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + '\n')
    return target


def read_ground_truth(path: str | Path) -> dict[str, list[GroundTruthLine]]:
    """``{file name: lines}`` from a ``ground_truth.jsonl`` written by :func:`write_split`."""
    out: dict[str, list[GroundTruthLine]] = {}
    with open(path, encoding='utf-8') as fh:
        for row in fh:
            if row.strip():
                record = json.loads(row)
                out[record['file']] = [GroundTruthLine(line['text'],
                                                       np.asarray(line['polygon'], np.float32))
                                       for line in record['lines']]
    return out
