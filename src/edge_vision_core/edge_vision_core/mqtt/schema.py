"""Topics and JSON payloads of the edge_vision MQTT schema, version 1 (see the package docstring).

Everything here is pure: building topic names, checking the names a user configures, turning
core objects into JSON-ready dictionaries and encoding/decoding payloads. Non-finite numbers
(a NaN score, an infinite box) become ``null``: the payloads are always valid JSON (RFC 8259
has no NaN).
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, ConversionError
from ..types import Detections, FrameMeta, class_name

if TYPE_CHECKING:
    from ..inference.ocr import FrameText

__all__ = [
    'CHANNELS',
    'SCHEMA',
    'VERSION',
    'Channel',
    'Topics',
    'decode',
    'default_device_id',
    'detections_body',
    'encode',
    'envelope',
    'parse_topic',
    'stamp_body',
    'text_body',
    'valid_level',
]

#: Version level of every topic and the ``schema`` field of every payload.
VERSION = 'v1'
SCHEMA = f'edge_vision/{VERSION}'
#: Largest payload :func:`decode` accepts (commands are small; snapshots are sent, not read).
MAX_DECODE_BYTES = 1 << 20

_LEVEL = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$')


@dataclass(frozen=True)
class Channel:
    """One topic of a device's camera.

    Attributes:
        name: the last topic level(s): ``tracks``, ``events``, ... ``cmd/reply``.
        qos: MQTT QoS the device publishes with.
        durable: stored on disk and sent until the broker acknowledges it (store-and-forward);
            streams are not: they are newest-wins and skipped while the link is down.
        retained: published with the retain flag (presence).
        inbound: the device subscribes to it (commands) instead of publishing it.
    """

    name: str
    qos: int
    durable: bool = False
    retained: bool = False
    inbound: bool = False


#: The channels of schema v1, by name.
CHANNELS: dict[str, Channel] = {c.name: c for c in (
    Channel('tracks', qos=0),
    Channel('text', qos=0),
    Channel('health', qos=0),
    Channel('events', qos=1, durable=True),
    Channel('snapshot', qos=1, durable=True),
    Channel('cmd/reply', qos=1, durable=True),
    Channel('status', qos=1, retained=True),
    Channel('cmd', qos=1, inbound=True),
)}


def valid_level(value: str, what: str) -> str:
    """Check one topic level a user configures (device id, camera id).

    Raises:
        ConfigError: empty, longer than 64 characters, or holding a character other than
            letters, digits, ``_``, ``.`` and ``-`` (MQTT wildcards ``+``/``#``, ``/`` and a
            leading ``$`` would change what the topic means).
    """
    if not isinstance(value, str) or not _LEVEL.match(value):
        raise ConfigError(f'{what} {value!r} is not a valid MQTT topic level: use 1-64 letters, '
                          f'digits, "_", "." or "-", starting with a letter or digit')
    return value


def default_device_id() -> str:
    """This machine's host name, made a valid topic level (``edge-box.local`` stays as is)."""
    name = re.sub(r'[^A-Za-z0-9_.\-]', '-', socket.gethostname()).strip('-.') or 'device'
    return name[:64]


@dataclass(frozen=True)
class Topics:
    """The topic names of one camera of one device: ``<root>/v1/<device>/<camera>/<channel>``.

    Attributes:
        root: first level(s), ``edge_vision`` by default (a broker shared with other systems
            may want a site prefix: ``site1/edge_vision``).
        device: the device id (one per machine: the host name by default).
        camera: the camera id (one per pipeline namespace: ``camera0``).
    """

    root: str
    device: str
    camera: str

    def __post_init__(self) -> None:
        for level in self.root.split('/'):
            valid_level(level, 'topic root level')
        valid_level(self.device, 'device id')
        valid_level(self.camera, 'camera id')

    @property
    def base(self) -> str:
        return f'{self.root}/{VERSION}/{self.device}/{self.camera}'

    def __getitem__(self, channel: str) -> str:
        """The full topic of ``channel`` (a key of :data:`CHANNELS`)."""
        if channel not in CHANNELS:
            raise ConfigError(f'Invalid channel {channel!r}, expecting one of '
                              f'{list(CHANNELS)}')
        return f'{self.base}/{channel}'

    @staticmethod
    def subscription(root: str = 'edge_vision', device: str = '+', camera: str = '+') -> str:
        """A filter for every channel of the matching devices (``edge_vision/v1/+/+/#``)."""
        return f'{root}/{VERSION}/{device}/{camera}/#'


def parse_topic(topic: str, root: str = 'edge_vision') -> tuple[str, str, str] | None:
    """``(device, camera, channel)`` of a schema-v1 topic under ``root``, else None."""
    prefix = f'{root}/{VERSION}/'
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split('/', 2)
    if len(parts) != 3 or parts[2] not in CHANNELS:
        return None
    return parts[0], parts[1], parts[2]


# ---------------------------------------------------------------------------------------------
# Payloads

def _rounded(values: np.ndarray, digits: int) -> list:
    """``values`` rounded as Python floats (nested lists), non-finite ones as None."""
    out = np.round(values.astype(np.float64), digits)
    if np.isfinite(out).all():
        return out.tolist()
    return np.where(np.isfinite(out), out, None).tolist()


def stamp_body(meta: FrameMeta) -> dict[str, Any]:
    """``{"stamp": {"sec", "nanosec"}, "frame_id"}``: the ROS header of the data, exactly."""
    sec, nanosec = meta.sec_nanosec
    return {'stamp': {'sec': sec, 'nanosec': nanosec}, 'frame_id': meta.frame_id}


def detections_body(dets: Detections, labels: Sequence[str] | None = None,
                    image_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The objects of one frame: ``{"objects": [{"id", "class", "class_id", "score",
    "box": [x1, y1, x2, y2]}], "image_size": [w, h]}``.

    ``id`` is the tracker's track id (``null`` for untracked detections); boxes are in pixels
    of the image the stamp names, rounded to 0.01 px; scores to 1e-4.
    """
    n = len(dets)
    ids = dets.track_ids.tolist() if dets.track_ids is not None else [None] * n
    class_ids = dets.class_ids.tolist()
    scores = _rounded(dets.scores, 4)
    boxes = _rounded(dets.boxes, 2)
    objects = [{'id': ids[i], 'class': class_name(class_ids[i], labels),
                'class_id': class_ids[i], 'score': scores[i], 'box': boxes[i]}
               for i in range(n)]
    body: dict[str, Any] = {'objects': objects}
    if image_size is not None:
        body['image_size'] = [int(image_size[0]), int(image_size[1])]
    return body


def text_body(item: FrameText) -> dict[str, Any]:
    """The text lines read in one frame (ocr_node): ``{"stamp", "frame_id", "lines": [{"text",
    "score", "polygon": [[x, y] x4], "box": [x0, y0, x1, y1], "region"}], "image_size": [w, h]}``
    (pixels of the image the stamp names; ``region``: the detection the line was read in, -1
    for the whole image)."""
    body = {**stamp_body(item.meta), 'lines': [line.to_dict() for line in item.lines]}
    if item.image_size != (0, 0):
        body['image_size'] = [int(item.image_size[0]), int(item.image_size[1])]
    return body


def envelope(topics: Topics, seq: int, epoch: str, body: dict[str, Any]) -> dict[str, Any]:
    """What every published payload starts with: schema, device, camera, ``seq``, ``epoch``
    and the wall-clock send time ``sent`` (Unix seconds), then ``body``."""
    return {'schema': SCHEMA, 'device': topics.device, 'camera': topics.camera, 'seq': seq,
            'epoch': epoch, 'sent': round(time.time(), 6), **body}


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN/inf become ``null`` (valid JSON always)."""
    try:
        text = json.dumps(payload, separators=(',', ':'), ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(payload), separators=(',', ':'), ensure_ascii=False,
                          allow_nan=False)
    return text.encode('utf-8')


def decode(data: bytes, max_bytes: int = MAX_DECODE_BYTES) -> dict[str, Any]:
    """Parse a payload into a JSON object.

    Raises:
        ConversionError: larger than ``max_bytes``, not UTF-8, not JSON, not an object, or
            holding NaN/Infinity literals (Python's json accepts them; the schema does not).
    """
    if len(data) > max_bytes:
        raise ConversionError(f'payload of {len(data)} bytes is larger than {max_bytes}')
    try:
        text = bytes(data).decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ConversionError(f'payload is not UTF-8 text ({exc.reason} at byte '
                              f'{exc.start})') from None

    def _reject(name: str) -> None:
        raise ConversionError(f'payload holds {name}, which is not JSON')

    try:
        value = json.loads(text, parse_constant=_reject)
    except json.JSONDecodeError as exc:
        raise ConversionError(f'payload is not JSON: {exc.msg} at line {exc.lineno} column '
                              f'{exc.colno}') from None
    except RecursionError:
        raise ConversionError('payload is nested too deeply') from None
    if not isinstance(value, dict):
        raise ConversionError(f'payload must be a JSON object, got {type(value).__name__}')
    return value
