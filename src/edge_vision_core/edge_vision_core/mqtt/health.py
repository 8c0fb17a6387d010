"""What the device says about itself: stream rate and latency, CPU temperature, snapshots.

All pure helpers: :class:`StreamMeter` measures the results stream the bridge receives,
:func:`cpu_temperature_c` reads Linux's thermal zones, :func:`jpeg_snapshot` encodes an image
under a byte budget.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import cv2
import numpy as np

from ..encodings import compress, convert_encoding
from ..errors import ConversionError
from ..timing import RateMeter

__all__ = ['StreamMeter', 'cpu_temperature_c', 'jpeg_snapshot']

#: Thermal zone types that measure the CPU/SoC, in order of preference (x86, Raspberry Pi,
#: Jetson, generic ARM).
_CPU_ZONES = ('x86_pkg_temp', 'cpu-thermal', 'cpu_thermal', 'cpu', 'soc', 'tcpu', 'coretemp')


def cpu_temperature_c(root: str | Path = '/sys/class/thermal') -> float | None:
    """The CPU temperature in degrees Celsius, or None where it cannot be read (containers,
    VMs, machines without thermal zones).

    Reads ``<root>/thermal_zone*/{type,temp}`` (millidegrees): the first zone whose type names
    the CPU/SoC (see ``_CPU_ZONES``), else the hottest readable zone.
    """
    zones = []
    for zone in sorted(Path(root).glob('thermal_zone*')):
        try:
            kind = (zone / 'type').read_text().strip().lower()
            milli = float((zone / 'temp').read_text().strip())
        except (OSError, ValueError):
            continue
        celsius = milli / 1000.0
        if np.isfinite(celsius) and -60.0 < celsius < 200.0:
            zones.append((kind, celsius))
    if not zones:
        return None
    for wanted in _CPU_ZONES:
        for kind, celsius in zones:
            if kind.startswith(wanted):
                return round(celsius, 1)
    return round(max(c for _, c in zones), 1)


class StreamMeter:
    """Rate and end-to-end latency of a stream of stamped messages.

    Latency is arrival time minus the data's stamp (both ROS time in nanoseconds: the camera's
    acquisition stamp to the bridge), over the latest ``window`` messages.
    """

    def __init__(self, window: int = 300, rate_window_s: float = 2.0) -> None:
        self._rate = RateMeter(rate_window_s)
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=window)
        self.count = 0

    def tick(self, stamp_ns: int, arrival_ns: int, now: float | None = None) -> None:
        self.count += 1
        self._rate.tick(time.monotonic() if now is None else now)
        self._latency_ms.append((arrival_ns - stamp_ns) / 1e6)

    def fps(self, now: float | None = None) -> float:
        return self._rate.rate(now)

    def latency_ms(self, q: float = 50.0) -> float | None:
        if not self._latency_ms:
            return None
        return float(np.percentile(np.fromiter(self._latency_ms, float), q))


def jpeg_snapshot(image: np.ndarray, encoding: str, max_bytes: int, max_width: int = 0,
                  quality: int = 80) -> tuple[bytes, tuple[int, int], int]:
    """Encode an image as a JPEG of at most ``max_bytes``.

    The image is first shrunk to ``max_width`` (0: any width), then the quality is lowered in
    steps down to 30, then the image shrunk further, until it fits.

    Returns:
        ``(jpeg bytes, (width, height), quality used)``.

    Raises:
        ConversionError: an encoding that does not convert to bgr8, or no JPEG under the cap
            (a cap of a few hundred bytes).
    """
    bgr = convert_encoding(image, encoding, 'bgr8')
    if max_width > 0 and bgr.shape[1] > max_width:
        scale = max_width / bgr.shape[1]
        bgr = cv2.resize(bgr, (max_width, max(1, round(bgr.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    q = int(quality)
    for _ in range(16):
        data, _ = compress(np.ascontiguousarray(bgr), 'bgr8', 'jpeg', q)
        if len(data) <= max_bytes:
            return data, (int(bgr.shape[1]), int(bgr.shape[0])), q
        if q > 30:
            q = max(30, q - 15)
        elif min(bgr.shape[:2]) > 16:
            bgr = cv2.resize(bgr, (max(8, bgr.shape[1] * 7 // 10), max(8, bgr.shape[0] * 7 // 10)),
                             interpolation=cv2.INTER_AREA)
        else:
            break
    raise ConversionError(f'cannot encode a {image.shape[1]}x{image.shape[0]} snapshot in '
                          f'{max_bytes} bytes: raise snapshot_max_bytes')
