"""Fuzzing every node input over real DDS: images, camera_info, detections, label_info,
services and parameters (issue 14, "Tests to add" 1).

Each node runs in its own process (``NodeProcess``, as ``ros2 run`` starts it); a fuzzer node in
the test process publishes >= ``EDGE_VISION_FUZZ_INPUTS`` generated inputs to it, mixing valid
and malformed ones: unknown and wrong encodings, ``step`` too small, data shorter or longer than
``height * step``, zero sizes and 100000x100000 claims with a few bytes, big-endian flags, empty
data, NaN/inf pixels and boxes, negative box sizes, thousands of detections, class and track
ids beyond int64, stamps of 0, going backwards, a day ahead or with nanosec >= 1e9, absurd
label maps, calibrations with NaN, set_camera_info / Trigger / lifecycle calls, and parameter
values of every wrong type and range. Every case is labelled ``valid`` (must be processed),
``bad`` (must be refused and counted) or ``odd`` (either is fine).

Inputs go out in chunks of one topic; the node's subscriptions are made reliable and deep
(``qos.*`` parameters) and the fuzzer waits until its ``/diagnostics`` show every message of
a chunk as received or dropped, so nothing is lost on the way and the counts are exact. Pass:

- the process never exits (a crash is pinpointed: the chunk is replayed one input at a time on
  a restarted node and the test fails naming the node, the input and the traceback);
- it never stalls (every chunk is accounted for within a timeout);
- every bad input is counted (``bad_messages + processing_errors`` and the node's drop
  counters >= bad inputs) and no valid one is (errors <= bad + odd), with a throttled error in
  the log that names the topic;
- a valid input afterwards still gives the right output.

Environment: ``EDGE_VISION_FUZZ_INPUTS`` (per node, default 1000; a soak: 20000),
``EDGE_VISION_FUZZ_SEED`` (default 14), ``EDGE_VISION_FUZZ_KEEP_GOING=1`` (restart a node that
died and go on, listing every crash), ``EDGE_VISION_FUZZ_REPORT=FILE`` (append one JSON line per
node with its counts and crashes).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

INPUTS = int(os.environ.get('EDGE_VISION_FUZZ_INPUTS', '1000'))
SEED = int(os.environ.get('EDGE_VISION_FUZZ_SEED', '14'))
KEEP_GOING = os.environ.get('EDGE_VISION_FUZZ_KEEP_GOING', '') == '1'
REPORT = os.environ.get('EDGE_VISION_FUZZ_REPORT', '')

VALID, BAD, ODD = 'valid', 'bad', 'odd'
#: seconds a chunk may take to be accounted for before the node counts as stalled
CHUNK_TIMEOUT = 20.0
LABELS = ['person', 'bicycle', 'car', 'dog', 'cat']


@dataclass
class Case:
    """One generated input: a message for ``topic``, a service request (``topic`` =
    ``service:<name>``) or parameters (``topic`` = ``parameters``)."""

    topic: str
    msg: Any
    kind: str
    what: str


# ---------------------------------------------------------------------------------------------
# Generators (seeded: the same seed gives the same inputs)

class Stamps:
    """Header stamps: mostly increasing from now, with zeros, steps back, a day ahead and
    out-of-range nanoseconds mixed in (``odd`` for most nodes, ``bad`` for nanosec >= 1e9)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ns = time.time_ns()

    def next_valid(self) -> tuple[int, int]:
        self.ns += 33_000_000
        return self.ns // 1_000_000_000, self.ns % 1_000_000_000

    def pick(self) -> tuple[tuple[int, int], str, str]:
        """``((sec, nanosec), kind, what)``."""
        r = self.rng.random()
        if r < 0.85:
            return self.next_valid(), VALID, ''
        choice = self.rng.choice(['zero', 'back', 'future', 'negative', 'nanosec'])
        sec, nsec = self.next_valid()
        if choice == 'zero':
            return (0, 0), ODD, ' stamp 0'
        if choice == 'back':
            return (sec - self.rng.randint(1, 3600), nsec), ODD, ' stamp going backwards'
        if choice == 'future':
            return (sec + 86400, nsec), ODD, ' stamp a day ahead'
        if choice == 'negative':
            return (-self.rng.randint(1, 2**31 - 1), nsec), ODD, ' negative stamp'
        return (sec, self.rng.randint(1_000_000_000, 2**32 - 1)), BAD, ' nanosec >= 1e9'


def _header(msg: Any, stamp: tuple[int, int], frame_id: str = 'fuzz_optical_frame') -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id


def _worst(*kinds: str) -> str:
    return BAD if BAD in kinds else ODD if ODD in kinds else VALID


_PIXEL = {'bgr8': (3, 1), 'rgb8': (3, 1), 'mono8': (1, 1), 'bgra8': (4, 1), 'rgba8': (4, 1),
          'mono16': (1, 2), 'bgr16': (3, 2), 'rgb16': (3, 2), 'yuyv': (2, 1), 'uyvy': (2, 1),
          'bayer_rggb8': (1, 1), 'bayer_gbrg16': (1, 2), '32FC1': (1, 4), '64FC1': (1, 8),
          '16UC3': (3, 2), '8SC1': (1, 1), '32SC4': (4, 4)}


def make_image(encoding: str, width: int, height: int, stamp: tuple[int, int],
               rng: random.Random, *, step: int | None = None, size: int | None = None,
               bigendian: bool = False, frame_id: str = 'fuzz_optical_frame',
               data: bytes | None = None) -> Any:
    from sensor_msgs.msg import Image

    channels, item = _PIXEL.get(encoding, (3, 1))
    step = width * channels * item if step is None else step
    size = height * step if size is None else size
    msg = Image()
    _header(msg, stamp, frame_id)
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.step, msg.is_bigendian = step, int(bigendian)
    if data is None:
        data = rng.randbytes(size) if size < 4_000_000 else bytes(size)
    msg.data = data
    return msg


def image_cases(rng: random.Random, stamps: Stamps, topic: str, n: int,
                float_kind: str = ODD) -> list[Case]:
    """``n`` Image messages, every malformation at least a few times (round robin)."""

    def sized(lo: int = 16, hi: int = 200) -> tuple[int, int]:
        return rng.randint(lo, hi), rng.randint(lo, hi)

    def valid() -> tuple[Any, str, str]:
        enc = rng.choice(['bgr8', 'bgr8', 'rgb8', 'mono8', 'bgra8', 'mono16', 'rgb16'])
        w, h = sized()
        big = enc in ('mono16', 'rgb16') and rng.random() < 0.5
        return (lambda s: make_image(enc, w, h, s, rng, bigendian=big)), VALID, \
            f'{enc} {w}x{h}{" big-endian" if big else ""}'

    def yuv_even() -> tuple[Any, str, str]:
        enc = rng.choice(['yuyv', 'uyvy', 'bayer_rggb8'])
        w, h = sized()
        w += w % 2
        h += h % 2
        return (lambda s: make_image(enc, w, h, s, rng)), VALID, f'{enc} {w}x{h}'

    def unknown_encoding() -> tuple[Any, str, str]:
        enc = rng.choice(['foo', '', 'BGR8', 'jpeg', 'bgr8 ', 'h264', 'x' * 300, '8UC0'])
        w, h = sized()
        return (lambda s: make_image(enc, w, h, s, rng, step=w * 3)), BAD, \
            f'unknown encoding {enc[:20]!r} {w}x{h}'

    def step_small() -> tuple[Any, str, str]:
        enc = rng.choice(['bgr8', 'mono16', 'rgb8'])
        w, h = sized()
        channels, item = _PIXEL[enc]
        step = w * channels * item - rng.randint(1, w)
        return (lambda s: make_image(enc, w, h, s, rng, step=step)), BAD, \
            f'{enc} {w}x{h} step {step} too small'

    def data_short() -> tuple[Any, str, str]:
        enc = rng.choice(['bgr8', 'mono8', 'bgra8'])
        w, h = sized()
        channels, item = _PIXEL[enc]
        size = rng.randint(0, h * w * channels * item - 1)
        return (lambda s: make_image(enc, w, h, s, rng, size=size)), BAD, \
            f'{enc} {w}x{h} with {size} bytes (short)'

    def data_long() -> tuple[Any, str, str]:
        w, h = sized()
        return (lambda s: make_image('bgr8', w, h, s, rng, size=h * w * 3 + 7)), BAD, \
            f'bgr8 {w}x{h} with 7 bytes too many'

    def huge() -> tuple[Any, str, str]:
        w, h = rng.choice([(100000, 100000), (2**32 - 1, 1), (1, 2**32 - 1), (65536, 65536)])
        enc = rng.choice(['bgr8', 'mono8', 'yuyv', '32FC1'])
        return (lambda s: make_image(enc, w, h, s, rng, step=w, data=bytes(12))), BAD, \
            f'{enc} {w}x{h} claimed with 12 bytes'

    def zero() -> tuple[Any, str, str]:
        enc = rng.choice(['bgr8', 'rgb8', 'mono8', 'mono16', 'yuyv', 'bgra8', 'bayer_rggb8'])
        w, h = rng.choice([(0, rng.randint(1, 50)), (rng.randint(1, 50), 0), (0, 0)])
        return (lambda s: make_image(enc, w, h, s, rng)), BAD, f'{enc} {w}x{h} (no pixels)'

    def odd_yuv() -> tuple[Any, str, str]:
        w, h = sized()
        w |= 1
        enc = rng.choice(['yuyv', 'uyvy'])
        return (lambda s: make_image(enc, w, h, s, rng)), BAD, f'{enc} odd width {w}'

    def empty() -> tuple[Any, str, str]:
        w, h = sized()
        return (lambda s: make_image('bgr8', w, h, s, rng, data=b'')), BAD, \
            f'bgr8 {w}x{h} with empty data'

    def floats() -> tuple[Any, str, str]:
        enc = rng.choice(['32FC1', '64FC1'])
        w, h = sized(8, 64)
        dtype = np.float32 if enc == '32FC1' else np.float64
        arr = np.random.default_rng(rng.randint(0, 2**32)).random((h, w)).astype(dtype)
        arr.flat[::7] = np.nan
        arr.flat[::11] = np.inf
        arr.flat[::13] = -np.inf
        return (lambda s: make_image(enc, w, h, s, rng, data=arr.tobytes())), float_kind, \
            f'{enc} {w}x{h} with NaN/inf'

    def generic() -> tuple[Any, str, str]:
        enc = rng.choice(['16UC3', '8SC1', '32SC4'])
        w, h = sized(8, 64)
        return (lambda s: make_image(enc, w, h, s, rng)), float_kind, f'{enc} {w}x{h}'

    def big_endian_8bit() -> tuple[Any, str, str]:
        w, h = sized()
        return (lambda s: make_image('bgr8', w, h, s, rng, bigendian=True)), VALID, \
            f'bgr8 {w}x{h} flagged big-endian'

    def odd_frame_id() -> tuple[Any, str, str]:
        w, h = sized()
        fid = rng.choice(['', 'é/ü/漢字', 'f' * 5000])
        return (lambda s: make_image('bgr8', w, h, s, rng, frame_id=fid)), VALID, \
            f'bgr8 {w}x{h} frame_id of {len(fid)} chars'

    def large() -> tuple[Any, str, str]:
        return (lambda s: make_image('bgr8', 1280, 720, s, rng)), VALID, 'bgr8 1280x720'

    kinds: list[Callable[[], tuple[Any, str, str]]] = [
        valid, valid, valid, valid, yuv_even, unknown_encoding, step_small, data_short,
        data_long, huge, zero, odd_yuv, empty, floats, generic, big_endian_8bit, odd_frame_id]
    cases = []
    for i in range(n):
        make, kind, what = (large if i % 97 == 96 else kinds[i % len(kinds)])()
        stamp, stamp_kind, stamp_what = stamps.pick()
        cases.append(Case(topic, make(stamp), _worst(kind, stamp_kind), what + stamp_what))
    rng.shuffle(cases)
    return cases


def make_detections(stamp: tuple[int, int], boxes: list[tuple[float, float, float, float]],
                    classes: list[str], scores: list[float], ids: list[str] | None = None
                    ) -> Any:
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    msg = Detection2DArray()
    _header(msg, stamp)
    dets = []
    for i, (cx, cy, w, h) in enumerate(boxes):
        det = Detection2D()
        det.header = msg.header
        det.bbox.center.position.x, det.bbox.center.position.y = cx, cy
        det.bbox.size_x, det.bbox.size_y = w, h
        if classes[i] is not None:
            hyp = ObjectHypothesisWithPose()
            hyp.hypothesis.class_id = classes[i]
            hyp.hypothesis.score = scores[i]
            det.results = [hyp]
        det.id = ids[i] if ids else ''
        dets.append(det)
    msg.detections = dets
    return msg


def detection_cases(rng: random.Random, stamps: Stamps, topic: str, n: int,
                    tracked: bool, stamp_list: list[tuple[int, int]] | None = None
                    ) -> list[Case]:
    """``n`` Detection2DArray messages (``stamp_list``: the stamps to use, e.g. those of the
    images they must pair with)."""

    def boxes(k: int) -> list[tuple[float, float, float, float]]:
        return [(rng.uniform(20, 600), rng.uniform(20, 440), rng.uniform(4, 200),
                 rng.uniform(4, 200)) for _ in range(k)]

    def ids(k: int) -> list[str] | None:
        return [str(rng.randint(0, 10_000)) for _ in range(k)] if tracked else None

    def names(k: int) -> list[str]:
        return [rng.choice(LABELS + ['0', '2', '17']) for _ in range(k)]

    def valid() -> tuple[Any, str, str]:
        k = rng.randint(0, 25)
        return (lambda s: make_detections(s, boxes(k), names(k),
                                          [rng.random() for _ in range(k)], ids(k))), \
            VALID, f'{k} detections'

    def thousands() -> tuple[Any, str, str]:
        k = rng.randint(1000, 3000)
        return (lambda s: make_detections(s, boxes(k), names(k), [0.9] * k, ids(k))), VALID, \
            f'{k} detections'

    def unknown_names() -> tuple[Any, str, str]:
        k = rng.randint(1, 5)
        cls = [rng.choice(['zebra-unicorn', '', 'é漢', 'x' * 200]) for _ in range(k)]
        return (lambda s: make_detections(s, boxes(k), cls, [0.5] * k, ids(k))), ODD, \
            f'{k} detections with unknown class names'

    def nan_boxes() -> tuple[Any, str, str]:
        k = rng.randint(1, 6)
        bad = [(rng.choice([math.nan, math.inf, 1e308]), rng.choice([math.nan, 100.0]),
                rng.choice([math.inf, 50.0, math.nan]), rng.choice([-math.inf, 50.0]))
               for _ in range(k)]
        return (lambda s: make_detections(s, bad, names(k), [0.7] * k, ids(k))), ODD, \
            f'{k} NaN/inf boxes'

    def negative_sizes() -> tuple[Any, str, str]:
        k = rng.randint(1, 6)
        neg = [(100.0, 100.0, -rng.uniform(1, 50), rng.uniform(-50, 0)) for _ in range(k)]
        return (lambda s: make_detections(s, neg, names(k), [0.7] * k, ids(k))), ODD, \
            f'{k} boxes of negative size'

    def bad_scores() -> tuple[Any, str, str]:
        k = rng.randint(1, 6)
        sc = [rng.choice([math.nan, math.inf, -1.0, 7.5]) for _ in range(k)]
        return (lambda s: make_detections(s, boxes(k), names(k), sc, ids(k))), ODD, \
            f'{k} NaN/out-of-range scores'

    def huge_class() -> tuple[Any, str, str]:
        k = rng.randint(1, 3)
        cls = [rng.choice(['9223372036854775808', '-9223372036854775809', '1' * 40])
               for _ in range(k)]
        return (lambda s: make_detections(s, boxes(k), cls, [0.5] * k, ids(k))), BAD, \
            f'class id beyond int64 ({cls[0][:12]}...)'

    def huge_track_id() -> tuple[Any, str, str]:
        k = rng.randint(1, 3)
        tid = [rng.choice(['18446744073709551616', '9223372036854775808', '-' + '9' * 30])
               for _ in range(k)]
        return (lambda s: make_detections(s, boxes(k), names(k), [0.5] * k, tid)), BAD, \
            f'track id beyond int64 ({tid[0][:12]}...)'

    def mixed_ids() -> tuple[Any, str, str]:
        k = rng.randint(2, 5)
        tid = [''] + [rng.choice(['x', '3.5', '7']) for _ in range(k - 1)]
        return (lambda s: make_detections(s, boxes(k), names(k), [0.5] * k, tid)), BAD, \
            f'track ids {tid}'

    def no_hypothesis() -> tuple[Any, str, str]:
        k = rng.randint(1, 4)
        return (lambda s: make_detections(s, boxes(k), [None] * k, [0.0] * k, ids(k))), VALID, \
            f'{k} detections without a hypothesis'

    kinds = [valid, valid, valid, valid, thousands, unknown_names, nan_boxes, negative_sizes,
             bad_scores, huge_class, huge_track_id, mixed_ids, no_hypothesis]
    cases = []
    for i in range(n):
        kind_fn = kinds[i % len(kinds)]
        if kind_fn is thousands and i % (len(kinds) * 4) >= len(kinds):
            kind_fn = valid  # thousands of detections: one message in 50
        make, kind, what = kind_fn()
        if stamp_list is not None:
            stamp, stamp_kind, stamp_what = stamp_list[i % len(stamp_list)], VALID, ''
        else:
            stamp, stamp_kind, stamp_what = stamps.pick()
        cases.append(Case(topic, make(stamp), _worst(kind, stamp_kind), what + stamp_what))
    if stamp_list is None:
        rng.shuffle(cases)
    return cases


def label_info_cases(rng: random.Random, n: int) -> list[Case]:
    """LabelInfo maps: empty, ordinary, sparse ids up to 65535, duplicates, odd names."""
    from vision_msgs.msg import LabelInfo, VisionClass

    cases = []
    for i in range(n):
        msg = LabelInfo()
        style = i % 5
        if style == 0:
            entries = [(k, name) for k, name in enumerate(LABELS)]
            what, kind = 'the usual labels', VALID
        elif style == 1:
            entries = []
            what, kind = 'no labels', ODD
        elif style == 2:
            entries = [(rng.randint(0, 65535), f'c{k}') for k in range(rng.randint(1, 20))]
            entries.append((65535, 'last'))
            what, kind = 'sparse class ids up to 65535', ODD
        elif style == 3:
            entries = [(3, 'a'), (3, 'b'), (0, '')]
            what, kind = 'duplicate ids and an empty name', ODD
        else:
            entries = [(k, rng.choice(['é漢', 'x' * 2000, ' ', 'person'])) for k in range(8)]
            what, kind = 'odd names', ODD
        msg.class_map = [VisionClass(class_id=k, class_name=name) for k, name in entries]
        msg.threshold = rng.choice([0.5, math.nan, -3.0, math.inf])
        cases.append(Case('label_info', msg, kind, what))
    return cases


def camera_info_cases(rng: random.Random, stamps: Stamps | None, topic: str, n: int
                      ) -> list[Case]:
    """CameraInfo messages (``stamps`` None: no header stamps, e.g. for set_camera_info)."""
    from edge_vision.conversions import model_to_camera_info
    from edge_vision_core import CameraModel

    cases = []
    for i in range(n):
        w, h = rng.choice([(640, 480), (320, 240), (1280, 720)])
        model = CameraModel.from_intrinsics(w, h, rng.uniform(200, 900), rng.uniform(200, 900),
                                            w / 2, h / 2, [rng.uniform(-0.3, 0.3), 0.01, 0.0,
                                                           0.0, 0.0])
        msg = model_to_camera_info(model)
        style = i % 7
        kind, what = VALID, f'calibration {w}x{h}'
        if style == 1:
            k = list(msg.k)
            k[rng.choice([0, 2, 4])] = rng.choice([math.nan, math.inf])
            msg.k = k
            kind, what = BAD, 'K with NaN/inf'
        elif style == 2:
            msg.distortion_model = rng.choice(['fish-eye?', '', 'x' * 100])
            kind, what = (ODD if not msg.distortion_model else BAD), \
                f'distortion model {msg.distortion_model[:10]!r}'
        elif style == 3:
            msg.d = [rng.uniform(-1, 1) for _ in range(rng.choice([0, 1, 3, 13, 200]))]
            kind, what = ODD, f'{len(msg.d)} distortion coefficients'
        elif style == 4:
            msg.width, msg.height = rng.choice([(0, 0), (0, 480), (100000, 100000)])
            kind, what = ODD, f'size {msg.width}x{msg.height}'
        elif style == 5:
            msg.k = [0.0] * 9
            msg.p = [0.0] * 12
            kind, what = VALID, 'uncalibrated (K all zero)'
        elif style == 6:
            msg.binning_x, msg.binning_y = 1000, 7
            msg.roi.x_offset, msg.roi.width = 5000, 5000
            kind, what = ODD, 'binning 1000 and an ROI outside the image'
        if stamps is not None:
            stamp, stamp_kind, stamp_what = stamps.pick()
            _header(msg, stamp)
            kind, what = _worst(kind, stamp_kind), what + stamp_what
        cases.append(Case(topic, msg, kind, what))
    return cases


_PARAM_VALUES = [
    ('bool', True), ('integer', 0), ('integer', -1), ('integer', 2**63 - 1),
    ('integer', -(2**63)),
    ('double', math.nan), ('double', math.inf), ('double', -math.inf), ('double', 1e308),
    ('double', -0.5), ('string', ''), ('string', 'x' * 5000), ('string', 'é漢/../..'),
    ('integer_array', [1, 2, -3]), ('double_array', [math.nan]), ('string_array', ['a', '']),
    ('bool_array', [True]), ('byte_array', [b'\x00', b'\xff']),
]


def parameter_cases(rng: random.Random, names: list[str], n: int) -> list[Case]:
    """SetParameters requests: every declared parameter (and unknown names) with values of
    random types and absurd ranges."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue

    types = {'bool': ParameterType.PARAMETER_BOOL, 'integer': ParameterType.PARAMETER_INTEGER,
             'double': ParameterType.PARAMETER_DOUBLE, 'string': ParameterType.PARAMETER_STRING,
             'integer_array': ParameterType.PARAMETER_INTEGER_ARRAY,
             'double_array': ParameterType.PARAMETER_DOUBLE_ARRAY,
             'string_array': ParameterType.PARAMETER_STRING_ARRAY,
             'bool_array': ParameterType.PARAMETER_BOOL_ARRAY,
             'byte_array': ParameterType.PARAMETER_BYTE_ARRAY}
    cases = []
    for i in range(n):
        name = rng.choice(names) if i % 10 else rng.choice(['no_such_param', '', 'a.b.c'])
        kind, value = rng.choice(_PARAM_VALUES)
        pv = ParameterValue(type=types[kind])
        setattr(pv, f'{kind}_value', value)
        cases.append(Case('parameters', [Parameter(name=name, value=pv)], ODD,
                          f'parameter {name} = {kind} {str(value)[:20]}'))
    return cases


# ---------------------------------------------------------------------------------------------
# The fuzzer node and the bookkeeping

@dataclass
class Crash:
    node: str
    case: str
    log: str


@dataclass
class Tally:
    """What was sent (``sent``: every input; ``messages``: the topic messages among them, the
    ones the node's diagnostics must account for) and what went wrong."""

    sent: dict[str, int] = field(default_factory=lambda: {VALID: 0, BAD: 0, ODD: 0})
    messages: dict[str, int] = field(default_factory=lambda: {VALID: 0, BAD: 0, ODD: 0})
    crashes: list[Crash] = field(default_factory=list)
    stalls: list[str] = field(default_factory=list)
    refused_valid: list[str] = field(default_factory=list)


class NodeDiedError(Exception):
    pass


class Fuzzer:
    """Publishes to, calls and watches one node under test (in its own process)."""

    def __init__(self, context: Any, ns: str, node_name: str,
                 inputs: dict[str, tuple[type, str]], outputs: dict[str, type]) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        self.ns, self.name = ns, node_name
        self.full = f'{ns}/{node_name}'
        self.node = rclpy.create_node('fuzzer', namespace=ns, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.publishers = {}
        for topic, (msg_type, durability) in inputs.items():
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL if durability ==
                             'latched' else DurabilityPolicy.VOLATILE)
            self.publishers[topic] = self.node.create_publisher(msg_type, topic, qos)
        self.outputs: dict[str, list] = {topic: [] for topic in outputs}
        for topic, msg_type in outputs.items():
            self.node.create_subscription(msg_type, topic, self._keep(self.outputs[topic]), 10)
        self.status: dict[str, str] = {}
        self.level = 0
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)
        self._clients: dict[tuple[type, str], Any] = {}

    @staticmethod
    def _keep(store: list) -> Callable[[Any], None]:
        def keep(msg: Any) -> None:
            store.append(msg)
            del store[:-20]
        return keep

    def _on_diag(self, array: Any) -> None:
        for status in array.status:
            if status.name == self.full:
                self.status = {kv.key: kv.value for kv in status.values}
                self.status['_message'] = status.message
                self.level = status.level[0] if isinstance(status.level, bytes) else \
                    int(status.level)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)

    def counter(self, key: str) -> int:
        try:
            return int(float(self.status.get(key, '0')))
        except ValueError:
            return 0

    def arrivals(self, topics: list[str]) -> int:
        received = sum(self.counter(f'received {self.ns}/{t}') for t in topics)
        return received + self.counter('bad_messages')

    def wait(self, proc: Any, predicate: Callable[[], bool], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not proc.alive():
                raise NodeDiedError
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        if not proc.alive():
            raise NodeDiedError
        return predicate()

    def fresh_status(self, proc: Any, timeout: float = 10.0) -> bool:
        self.status = {}
        return self.wait(proc, lambda: bool(self.status), timeout)

    def call(self, proc: Any, srv_type: type, name: str, request: Any,
             timeout: float = CHUNK_TIMEOUT, again: bool = False) -> Any:
        """The response, or None when none came. One client per service for the fuzzer's
        life: a client made for each call is where the Jazzy wheels' Fast DDS 2.14 loses
        responses (sent before the server matched the new client's response reader); an
        idempotent request (parameters, states, a calibration), or one whose second run
        the caller accepts (``again``), is asked once more when its answer is lost."""
        from lifecycle_msgs.srv import GetState
        from rcl_interfaces.srv import ListParameters, SetParameters
        from sensor_msgs.srv import SetCameraInfo

        key = (srv_type, name)
        if key not in self._clients:
            self._clients[key] = self.node.create_client(srv_type, name)
        client = self._clients[key]
        if not self.wait(proc, client.service_is_ready, timeout):
            return None
        idempotent = again or srv_type in (GetState, ListParameters, SetParameters,
                                           SetCameraInfo)
        for _ in range(2 if idempotent else 1):
            future = client.call_async(request)
            if self.wait(proc, future.done, timeout):
                return future.result()
            client.remove_pending_request(future)
        return None

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@dataclass
class Target:
    """A node under test: how to start it, what it takes, what to check afterwards."""

    module: str
    name: str
    params: dict[str, Any]
    inputs: dict[str, tuple[type, str]]        # topic -> (type, 'stream'|'results'|'latched')
    watched: tuple[str, ...]                   # inputs counted as 'received <topic>'
    outputs: dict[str, type]
    services: dict[str, type]
    cases: Callable[[random.Random, Stamps, list[str]], list[list[Case]]]
    check: Callable[[Fuzzer, Any, Stamps, Any], None]
    drop_counters: tuple[str, ...] = ()        # counters that absorb bad inputs too
    error_lines: re.Pattern = re.compile(r'\[ERROR\].*')


def _chunks(cases: list[Case], size: int) -> list[list[Case]]:
    """Consecutive cases of one topic, at most ``size`` per chunk."""
    out: list[list[Case]] = []
    for case in cases:
        if out and out[-1][0].topic == case.topic and len(out[-1]) < size:
            out[-1].append(case)
        else:
            out.append([case])
    return out


def _interleave(rng: random.Random, *groups: list[list[Case]]) -> list[list[Case]]:
    chunks = [chunk for group in groups for chunk in group]
    rng.shuffle(chunks)
    return chunks


def _start(node_process: Callable, target: Target, ns: str) -> Any:
    return node_process(target.module, {
        'diagnostics_period': 0.1, 'input_timeout_s': 0.0,
        'qos.subscriber_reliability': 'reliable', 'qos.subscriber_depth': 100,
        **target.params}, ns)


def _ready(fz: Fuzzer, proc: Any, target: Target) -> None:
    """Wait until the node is active and every fuzzed input has matched its publisher."""
    def ready() -> bool:
        return fz.status.get('lifecycle_state') == 'active' and all(
            pub.get_subscription_count() > 0 for pub in fz.publishers.values())
    if not fz.wait(proc, ready, 60.0):
        pytest.fail(f'{target.name} did not become active with its inputs matched:\n'
                    f'{proc.output()[-3000:]}')
    fz.spin(0.3)


def _send(fz: Fuzzer, proc: Any, target: Target, chunk: list[Case]) -> str:
    """Send one chunk and wait until the node accounted for it; '' or why it did not."""
    from rcl_interfaces.srv import SetParameters

    topic = chunk[0].topic
    if topic == 'parameters':
        for case in chunk:
            response = fz.call(proc, SetParameters, f'{fz.full}/set_parameters',
                               SetParameters.Request(parameters=case.msg))
            if response is None:
                return f'no answer to {case.what}'
        return ''
    if topic.startswith('service:'):
        name = topic.split(':', 1)[1]
        for case in chunk:
            # every service case is idempotent, refused (so without effect) or odd (either
            # answer passes): asking it once more when its answer is lost changes no check
            response = fz.call(proc, target.services[name], f'{fz.ns}/{name}', case.msg,
                               again=True)
            if response is None:
                return f'no answer from {name} to {case.what}'
            success = getattr(response, 'success', None)
            if success is not None and (case.kind == BAD and success):
                return f'{name} accepted a bad request: {case.what}'
            if success is not None and case.kind == VALID and not success:
                return f'{name} refused a valid request ({case.what}): ' \
                       f'{getattr(response, "status_message", "")}'
        return ''
    if topic in target.watched:
        if not fz.fresh_status(proc):
            return 'no /diagnostics'
        before = fz.arrivals(list(target.watched))
        for case in chunk:
            fz.publishers[topic].publish(case.msg)
        done = fz.wait(proc, lambda: fz.arrivals(list(target.watched)) >= before + len(chunk),
                       CHUNK_TIMEOUT)
        return '' if done else (f'only {fz.arrivals(list(target.watched)) - before} of '
                                f'{len(chunk)} inputs on {topic} accounted for in '
                                f'{CHUNK_TIMEOUT:.0f} s')
    for case in chunk:  # not counted per topic (label_info, camera_info): the node must answer
        fz.publishers[topic].publish(case.msg)
    fz.spin(0.05)
    from lifecycle_msgs.srv import GetState
    if fz.call(proc, GetState, f'{fz.full}/get_state', GetState.Request()) is None:
        return f'no answer to get_state after {len(chunk)} inputs on {topic}'
    return ''


def _pinpoint(node_process: Callable, target: Target, ns: str, context: Any,
              chunk: list[Case]) -> tuple[str, str]:
    """Replay a chunk that killed the node on a fresh node, one input at a time (each
    accounted for before the next): the input that kills it, and the log."""
    proc = _start(node_process, target, ns)
    fz = Fuzzer(context, ns, target.name, target.inputs, target.outputs)
    try:
        _ready(fz, proc, target)
        for case in chunk:
            try:
                _send(fz, proc, target, [case])
                fz.spin(0.1)
                if not proc.alive():
                    raise NodeDiedError
            except NodeDiedError:
                return case.what, proc.output()
    finally:
        fz.close()
        proc.stop()
    return f'one of {len(chunk)} inputs (replayed one at a time they did not kill it): ' + \
        '; '.join(c.what for c in chunk[:5]), ''


def _traceback_tail(log: str) -> str:
    lines = [line for line in log.splitlines() if line.strip()]
    start = max((i for i, line in enumerate(lines) if 'Traceback' in line), default=-1)
    tail = lines[start:] if start >= 0 else lines[-8:]
    return '\n'.join(tail[-12:])


def run_fuzz(target: Target, node_process: Callable, context: Any, tmp_path: Path) -> Tally:
    """Fuzz one node (see the module docstring); returns the tally, fails on a crash."""
    rng = random.Random(f'{SEED}-{target.name}')
    stamps = Stamps(rng)
    ns = f'/fuzz_{target.name}'
    tally = Tally()
    proc = _start(node_process, target, ns)
    fz = Fuzzer(context, ns, target.name, target.inputs, target.outputs)
    try:
        _ready(fz, proc, target)
        from rcl_interfaces.srv import ListParameters
        listed = fz.call(proc, ListParameters, f'{fz.full}/list_parameters',
                         ListParameters.Request())
        names = [n for n in listed.result.names if n != 'use_sim_time']
        chunks = target.cases(rng, stamps, names)
        base = _counters(fz, proc, target)
        started = time.monotonic()
        for chunk in chunks:
            for case in chunk:
                tally.sent[case.kind] += 1
                if case.topic in target.inputs:
                    tally.messages[case.kind] += 1
            try:
                problem = _send(fz, proc, target, chunk)
            except NodeDiedError:
                what, log = _pinpoint(node_process, target, ns, context, chunk)
                crash = Crash(target.name, what, _traceback_tail(log or proc.output()))
                tally.crashes.append(crash)
                if not KEEP_GOING:
                    break
                proc = _start(node_process, target, ns)
                fz.close()
                fz = Fuzzer(context, ns, target.name, target.inputs, target.outputs)
                _ready(fz, proc, target)
                base = None  # counters restarted with the process
                continue
            if problem:
                tally.stalls.append(problem)
                if not KEEP_GOING:
                    break
        elapsed = time.monotonic() - started
        if not tally.crashes and not tally.stalls:
            fz.spin(1.0)  # let an asynchronous stage (inference worker) finish
            counts = _counters(fz, proc, target)
            _check_counts(target, tally, base, counts, proc.output(), elapsed)
            target.check(fz, proc, stamps, tmp_path)
            assert proc.alive(), f'{target.name} exited after the valid input'
    finally:
        _write_report(target, tally)
        fz.close()
        proc.stop()
    if tally.crashes:
        text = '\n\n'.join(f'{c.node} died on input: {c.case}\n{c.log}' for c in tally.crashes)
        pytest.fail(f'{len(tally.crashes)} crash(es) after {sum(tally.sent.values())} '
                    f'inputs:\n{text}')
    if tally.stalls:
        pytest.fail(f'{target.name}: {"; ".join(tally.stalls)}\n{proc.output()[-2000:]}')
    return tally


def _counters(fz: Fuzzer, proc: Any, target: Target) -> dict[str, int]:
    fz.fresh_status(proc)
    fz.fresh_status(proc)  # the second one is surely taken after everything before it
    keys = ('bad_messages', 'processing_errors', *target.drop_counters)
    return {key: fz.counter(key) for key in keys}


def _check_counts(target: Target, tally: Tally, base: dict | None, now: dict, log: str,
                  elapsed: float) -> None:
    delta = {k: v - (base or {}).get(k, 0) for k, v in now.items()}
    errors = delta['bad_messages'] + delta['processing_errors']
    absorbed = errors + sum(delta[k] for k in target.drop_counters)
    bad, odd = tally.messages[BAD], tally.messages[ODD]
    assert absorbed >= bad, (f'{target.name}: {bad} bad inputs but only {absorbed} counted '
                             f'({delta})')
    assert errors <= bad + odd, (f'{target.name}: {errors} errors for {bad} bad and {odd} odd '
                                 f'inputs: valid inputs were refused ({delta})')
    # rclpy itself logs every refused lifecycle transition request, unthrottled
    lines = [line for line in target.error_lines.findall(log)
             if 'Unable to start transition' not in line]
    if bad:
        assert lines, f'{target.name}: {bad} bad inputs and no error in the log'
        named = [line for line in lines if f'{target.name.split("_")[0]}' in line or '/' in line]
        assert named, f'{target.name}: no error names the topic: {lines[:3]}'
    limit = 30 + 10 * elapsed / 5.0  # throttled: a few lines per 5 s, not one per input
    assert len(lines) <= limit, (f'{target.name}: {len(lines)} error lines in {elapsed:.0f} s '
                                 f'for {bad} bad inputs: errors are not throttled')


def _write_report(target: Target, tally: Tally) -> None:
    if not REPORT:
        return
    with open(REPORT, 'a', encoding='utf-8') as fh:
        fh.write(json.dumps({'node': target.name, 'inputs': tally.sent,
                             'messages': tally.messages,
                             'crashes': [{'input': c.case, 'log': c.log[-600:]}
                                         for c in tally.crashes],
                             'stalls': tally.stalls}) + '\n')


# ---------------------------------------------------------------------------------------------
# The nodes

def _split(n: int, *weights: float) -> list[int]:
    total = sum(weights)
    counts = [max(1, int(n * w / total)) if w else 0 for w in weights]
    counts[0] += n - sum(counts)
    return counts


def _send_valid_image(fz: Fuzzer, stamps: Stamps, topic: str, image: np.ndarray) -> Any:
    from edge_vision.conversions import numpy_to_image

    msg = numpy_to_image(image, 'bgr8')
    _header(msg, stamps.next_valid())
    fz.publishers[topic].publish(msg)
    return msg.header.stamp


def _wait_output(fz: Fuzzer, proc: Any, topic: str, stamp: Any, resend: Callable | None = None,
                 timeout: float = 30.0) -> Any:
    """The output message on ``topic`` with ``stamp`` (resending the input every 2 s)."""
    def found() -> Any:
        return next((m for m in fz.outputs[topic] if m.header.stamp == stamp), None)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fz.wait(proc, lambda: found() is not None, 2.0):
            return found()
        if resend is not None:
            stamp = resend()
    pytest.fail(f'no {topic} with the stamp of a valid input after the fuzz:\n'
                f'{proc.output()[-2000:]}')


def _photo() -> np.ndarray:
    from edge_vision_core.optimize.images import sample_images
    return sample_images(['astronaut'])[0][1]


def _image_node_cases(topic: str, float_kind: str = ODD) -> Callable:
    def cases(rng: random.Random, stamps: Stamps, names: list[str]) -> list[list[Case]]:
        n_img, n_par = _split(INPUTS, 0.9, 0.1)
        return _interleave(rng, _chunks(image_cases(rng, stamps, topic, n_img, float_kind), 20),
                           _chunks(parameter_cases(rng, names, n_par), 20))
    return cases


def check_preprocess(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    stamp = _send_valid_image(fz, stamps, 'image_raw', image)
    out = _wait_output(fz, proc, 'image', stamp,
                       lambda: _send_valid_image(fz, stamps, 'image_raw', image))
    assert (out.width, out.height) == (160, 120)


def check_inference(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    photo = _photo()
    stamp = _send_valid_image(fz, stamps, 'image', photo)
    out = _wait_output(fz, proc, 'detections', stamp,
                       lambda: _send_valid_image(fz, stamps, 'image', photo))
    classes = {d.results[0].hypothesis.class_id for d in out.detections}
    assert 'person' in classes, f'the astronaut is a person: {classes}'


def check_ocr(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    import cv2

    sign = np.full((160, 480, 3), 236, np.uint8)
    cv2.putText(sign, 'DOCK 7', (30, 110), cv2.FONT_HERSHEY_DUPLEX, 2.2, (25, 25, 25), 4)
    stamp = _send_valid_image(fz, stamps, 'image', sign)
    out = _wait_output(fz, proc, 'text', stamp,
                       lambda: _send_valid_image(fz, stamps, 'image', sign))
    assert [line.text for line in out.lines] == ['DOCK 7'], out.lines


def _track_inputs(fz: Fuzzer, stamps: Stamps, topic: str, count: int) -> Any:
    stamp = None
    for _ in range(count):
        stamp = stamps.next_valid()
        fz.publishers[topic].publish(make_detections(stamp, [(200.0, 150.0, 80.0, 160.0)],
                                                     ['person'], [0.9]))
        fz.spin(0.05)
    from builtin_interfaces.msg import Time
    return Time(sec=stamp[0], nanosec=stamp[1])


def check_tracker(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    stamp = _track_inputs(fz, stamps, 'detections', 5)
    out = _wait_output(fz, proc, 'tracks', stamp,
                       lambda: _track_inputs(fz, stamps, 'detections', 3))
    assert len(out.detections) == 1 and out.detections[0].id, \
        'one steady person must be one confirmed track'
    assert abs(out.detections[0].bbox.center.position.x - 200.0) < 5


def check_overlay(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    image = np.full((240, 320, 3), 90, np.uint8)

    def send() -> Any:
        stamp = _send_valid_image(fz, stamps, 'image', image)
        fz.publishers['tracks'].publish(make_detections(
            (stamp.sec, stamp.nanosec), [(160.0, 120.0, 100.0, 80.0)], ['person'], [0.9],
            ['7']))
        return stamp

    out = _wait_output(fz, proc, 'image_annotated', send(), send)
    from edge_vision.conversions import image_to_numpy
    drawn = image_to_numpy(out)
    assert (drawn != 90).any(axis=2)[80:160, 110:210].mean() > 0.02, 'the box is drawn'


def check_recorder(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    stamp = _track_inputs(fz, stamps, 'tracks', 1)
    before = fz.counter('frames')
    assert fz.wait(proc, lambda: fz.counter('frames') > before, 20)
    response = fz.call(proc, ChangeState, f'{fz.full}/change_state', ChangeState.Request(
        transition=Transition(id=Transition.TRANSITION_DEACTIVATE)))
    if response is None:  # the answer lost (not the transition): the node's state tells
        state = fz.call(proc, GetState, f'{fz.full}/get_state', GetState.Request())
        assert state is not None and state.current_state.label == 'inactive', state
    else:
        assert response.success  # flushes tracks.jsonl
    text = (tmp_path / 'recorder' / 'tracks.jsonl').read_text()

    def strict(name: str) -> None:
        raise ValueError(f'{name} is not JSON')
    records = [json.loads(line, parse_constant=strict) for line in text.splitlines()]
    wanted = stamp.sec + stamp.nanosec / 1e9
    mine = [r for r in records if abs(r['stamp'] - wanted) < 1e-6]
    assert mine and mine[-1]['class_name'] == 'person', mine


def check_anomaly(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    image = np.full((96, 128, 3), 120, np.uint8)
    stamp = _send_valid_image(fz, stamps, 'image', image)
    out = _wait_output(fz, proc, 'anomaly', stamp,
                       lambda: _send_valid_image(fz, stamps, 'image', image))
    assert {r.class_id for r in out.results} == {'anomaly', 'normal'}


def check_calibration(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    image = np.full((240, 320, 3), 200, np.uint8)
    stamp = _send_valid_image(fz, stamps, 'image', image)
    _wait_output(fz, proc, 'calibration_node/progress', stamp,
                 lambda: _send_valid_image(fz, stamps, 'image', image))


def check_camera(fz: Fuzzer, proc: Any, stamps: Stamps, tmp_path: Path) -> None:
    from sensor_msgs.srv import SetCameraInfo

    from edge_vision.conversions import model_to_camera_info
    from edge_vision_core import CameraModel

    model = CameraModel.from_intrinsics(640, 480, 512.0, 511.0, 320.0, 240.0,
                                        [0.01, 0.0, 0.0, 0.0, 0.0])
    response = fz.call(proc, SetCameraInfo, f'{fz.ns}/set_camera_info',
                       SetCameraInfo.Request(camera_info=model_to_camera_info(model)))
    assert response is not None and response.success, response
    fz.outputs['camera_info'].clear()
    assert fz.wait(proc, lambda: any(abs(m.k[0] - 512.0) < 1e-9
                                     for m in fz.outputs['camera_info']), 20), \
        'the camera publishes the new calibration'
    count = len(fz.outputs['image_raw'])
    fz.spin(1.0)
    assert len(fz.outputs['image_raw']) > min(count, 15), 'frames still flow'


def _camera_cases(rng: random.Random, stamps: Stamps, names: list[str]) -> list[list[Case]]:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from sensor_msgs.srv import SetCameraInfo

    n_info, n_par, n_life = _split(INPUTS, 0.6, 0.3, 0.1)
    infos = [Case('service:set_camera_info', SetCameraInfo.Request(camera_info=c.msg),
                  c.kind if c.kind != ODD else ODD, c.what)
             for c in camera_info_cases(rng, None, 'camera_info', n_info)]
    life = []
    for i in range(n_life):
        if i % 2:
            life.append(Case('service:camera_node/get_state', GetState.Request(), VALID,
                             'get_state'))
        else:
            tid = rng.choice([0, 99, 200, 255, 42])
            life.append(Case('service:camera_node/change_state', ChangeState.Request(
                transition=Transition(id=tid)), BAD, f'lifecycle transition id {tid}'))
    return _interleave(rng, _chunks(infos, 20), _chunks(parameter_cases(rng, names, n_par), 20),
                       _chunks(life, 20))


def _calibration_cases(rng: random.Random, stamps: Stamps, names: list[str]
                       ) -> list[list[Case]]:
    from std_srvs.srv import Trigger

    n_img, n_par, n_srv = _split(INPUTS, 0.8, 0.1, 0.1)
    services = [Case(f'service:calibration_node/{rng.choice(["calibrate", "reset"])}',
                     Trigger.Request(), ODD, 'Trigger') for _ in range(n_srv)]
    return _interleave(rng, _chunks(image_cases(rng, stamps, 'image', n_img), 20),
                       _chunks(parameter_cases(rng, names, n_par), 20), _chunks(services, 10))


def _results_node_cases(results_topic: str, image_topic: str | None, tracked: bool,
                        paired: bool) -> Callable:
    def cases(rng: random.Random, stamps: Stamps, names: list[str]) -> list[list[Case]]:
        n_res, n_img, n_lab, n_par = _split(INPUTS, 0.55 if image_topic else 0.85,
                                            0.3 if image_topic else 0.0, 0.05, 0.1)
        groups = [_chunks(label_info_cases(rng, n_lab), 5),
                  _chunks(parameter_cases(rng, names, n_par), 20)]
        if image_topic and paired:  # image chunks followed by results with their stamps
            images = image_cases(rng, stamps, image_topic, n_img)
            pairs = []
            for chunk in _chunks(images, 10):
                stamp_list = [(c.msg.header.stamp.sec, c.msg.header.stamp.nanosec)
                              for c in chunk]
                results = detection_cases(rng, stamps, results_topic, len(chunk), tracked,
                                          stamp_list)
                pairs.append([chunk, results])
            n_res -= len(images)
            groups.append([c for pair in pairs for c in pair])
        elif image_topic:
            groups.append(_chunks(image_cases(rng, stamps, image_topic, n_img), 20))
        groups.append(_chunks(detection_cases(rng, stamps, results_topic, max(n_res, 1),
                                              tracked), 10))
        chunks = _interleave(rng, *groups[:-1], groups[-1]) if not (image_topic and paired) \
            else _interleave(rng, groups[0], groups[1], groups[3]) + groups[2]
        return chunks
    return cases


def _anomaly_model(tmp_path: Path) -> str:
    from edge_vision_core.anomaly import AnomalyDetector

    rng = np.random.default_rng(1)
    frames = [np.clip(120 + rng.normal(0, 4, (96, 128, 3)), 0, 255).astype(np.uint8)
              for _ in range(12)]
    path = tmp_path / 'normal.npz'
    with AnomalyDetector(backbone='none', layers=('color8',)) as detector:
        detector.fit(frames)
        detector.save(path)
    return str(path)


def _anomaly_cases(rng: random.Random, stamps: Stamps, names: list[str]) -> list[list[Case]]:
    from std_srvs.srv import Trigger

    n_img, n_par, n_srv = _split(INPUTS, 0.85, 0.1, 0.05)
    services = [Case('service:anomaly_node/learn_normal', Trigger.Request(), ODD, 'Trigger')
                for _ in range(n_srv)]
    return _interleave(rng, _chunks(image_cases(rng, stamps, 'image', n_img), 20),
                       _chunks(parameter_cases(rng, names, n_par), 20), _chunks(services, 5))


def targets(tmp_path: Path) -> dict[str, Target]:
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.srv import ChangeState, GetState
    from sensor_msgs.msg import CameraInfo, Image
    from sensor_msgs.srv import SetCameraInfo
    from std_srvs.srv import Trigger
    from vision_msgs.msg import Classification, Detection2DArray, LabelInfo
    from visualization_msgs.msg import MarkerArray

    image = {'image': (Image, 'stream')}
    results = lambda topic: {topic: (Detection2DArray, 'results'),  # noqa: E731
                             'label_info': (LabelInfo, 'latched')}
    return {
        'camera': Target(
            'edge_vision.camera_node', 'camera_node',
            {'rate': 20.0, 'camera_info_url': f'file://{tmp_path}/camera/cam.yaml',
             'width': 160, 'height': 120},
            {}, (), {'image_raw': Image, 'camera_info': CameraInfo},
            {'set_camera_info': SetCameraInfo, 'camera_node/get_state': GetState,
             'camera_node/change_state': ChangeState}, _camera_cases, check_camera),
        'preprocess': Target(
            'edge_vision.preprocess_node', 'preprocess_node', {},
            {'image_raw': (Image, 'stream'), 'camera_info': (CameraInfo, 'stream')},
            ('image_raw',), {'image': Image, 'image/camera_info': CameraInfo,
                             'quality': DiagnosticArray}, {},
            _preprocess_cases, check_preprocess),
        'calibration': Target(
            'edge_vision.calibration_node', 'calibration_node',
            {'max_rate_hz': 100.0, 'output_url': f'file://{tmp_path}/calib.yaml'},
            image, ('image',), {'calibration_node/progress': DiagnosticArray},
            {'calibration_node/calibrate': Trigger, 'calibration_node/reset': Trigger},
            _calibration_cases, check_calibration, drop_counters=('skipped_for_rate',)),
        'inference': Target(
            'edge_vision.inference_node', 'inference_node', {'threads': 1},
            image, ('image',), {'detections': Detection2DArray}, {},
            _image_node_cases('image', BAD), check_inference,
            drop_counters=('stale_frames_dropped',)),
        'tracker': Target(
            'edge_vision.tracker_node', 'tracker_node', {},
            results('detections'), ('detections',), {'tracks': Detection2DArray}, {},
            _results_node_cases('detections', None, False, False), check_tracker,
            drop_counters=('ignored_stamps', 'dropped_invalid_boxes')),
        'overlay': Target(
            'edge_vision.overlay_node', 'overlay_node', {'show_anomaly': False},
            {'image': (Image, 'stream'), **results('tracks'),
             'image/camera_info': (CameraInfo, 'stream')},
            ('image', 'tracks'), {'image_annotated': Image, 'markers': MarkerArray}, {},
            _overlay_cases, check_overlay, drop_counters=('unpaired_dropped',)),
        'recorder': Target(
            'edge_vision.recorder_node', 'recorder_node',
            {'output_dir': str(tmp_path / 'recorder')},
            {**results('tracks'), 'image_annotated': (Image, 'stream')},
            ('tracks', 'image_annotated'), {}, {},
            _results_node_cases('tracks', 'image_annotated', True, False), check_recorder),
        'anomaly': Target(
            'edge_vision.anomaly_node', 'anomaly_node',
            {'model_path': _anomaly_model(tmp_path), 'learn_frames': 5, 'learn_every': 1,
             'save_path': str(tmp_path / 'learned.npz')},
            image, ('image',), {'anomaly': Classification}, {'anomaly_node/learn_normal':
                                                             Trigger},
            _anomaly_cases, check_anomaly),
        **_ocr_target(image),
    }


def _ocr_target(image: dict) -> dict[str, Target]:
    """ocr_node, where edge_vision_msgs (its output type) is built."""
    try:
        from edge_vision_msgs.msg import TextArray
    except ImportError:
        return {}
    return {'ocr': Target(
        'edge_vision.ocr_node', 'ocr_node', {'threads': 1}, image, ('image',),
        {'text': TextArray}, {}, _image_node_cases('image', BAD), check_ocr,
        drop_counters=('inputs_dropped',))}


def _preprocess_cases(rng: random.Random, stamps: Stamps, names: list[str]
                      ) -> list[list[Case]]:
    n_img, n_info, n_par = _split(INPUTS, 0.75, 0.15, 0.1)
    return _interleave(rng, _chunks(image_cases(rng, stamps, 'image_raw', n_img), 20),
                       _chunks(camera_info_cases(rng, stamps, 'camera_info', n_info), 10),
                       _chunks(parameter_cases(rng, names, n_par), 20))


def _overlay_cases(rng: random.Random, stamps: Stamps, names: list[str]) -> list[list[Case]]:
    chunks = _results_node_cases('tracks', 'image', True, True)(rng, stamps, names)
    infos = camera_info_cases(rng, stamps, 'image/camera_info', max(1, INPUTS // 20))
    return chunks + _chunks(infos, 10)


@pytest.mark.parametrize('name', ['camera', 'preprocess', 'calibration', 'inference',
                                  'tracker', 'overlay', 'recorder', 'anomaly', 'ocr'])
def test_fuzz_node(name, node_process, ros_context, tmp_path):
    if name == 'ocr':
        pytest.importorskip('edge_vision_msgs.msg', reason='edge_vision_msgs is not built')
    target = targets(tmp_path)[name]
    tally = run_fuzz(target, node_process, ros_context, tmp_path)
    assert sum(tally.sent.values()) >= INPUTS
