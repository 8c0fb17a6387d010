"""MQTT for IoT fleets: the edge_vision topic and payload schema (v1), events, store-and-forward,
commands and the fleet view. ROS-free; paho-mqtt 2.x is imported only when a link is made.

Topics
------
One camera pipeline of one device publishes under ``<root>/v1/<device>/<camera>/``
(``root`` = ``edge_vision`` by default; ``device`` = the host name, ``camera`` = the pipeline's
namespace, e.g. ``edge_vision/v1/gate-3/camera0/events``):

=============  ====  ======  ========================================================
channel        QoS   kept    what
=============  ====  ======  ========================================================
``tracks``     0     no      the current objects, at most ``tracks_max_hz`` (newest wins)
``text``       0     no      text lines read (ocr_node), at most ``text_max_hz`` (newest wins)
``events``     1     disk    what changed: tracks entering/leaving, anomaly, camera, quality
``snapshot``   1     disk    a size-capped JPEG (base64) when an event asks for one
``health``     0     no      every ``health_period_s``: fps, latency, queue, drops, CPU temp
``status``     1     retain  ``online`` on connect; ``offline`` by Last Will or on shutdown
``cmd``        1     --      commands to the device (see :mod:`.commands`)
``cmd/reply``  1     disk    one reply per command, accepted or refused
=============  ====  ======  ========================================================

"disk" channels go through the on-disk outbox (:mod:`.store`): written before sending, deleted
when the broker acknowledges them, so they survive broker outages and node restarts (bounded:
the oldest are dropped when it is full, counted, and reported by a ``messages_dropped`` event
when the link is back). Streams are newest-wins and skipped while the link is down (counted).

Payloads
--------
UTF-8 JSON objects, compact; non-finite numbers are ``null``. Every payload but ``status``
starts with the envelope::

    {"schema": "edge_vision/v1", "device": "gate-3", "camera": "camera0",
     "seq": 1234, "epoch": "9f2c01ab", "sent": 1767225600.123456, ...}

- ``seq``: per device, camera and channel, increases by one per message, persisted across
  restarts. A consumer drops duplicates by ``(device, camera, channel, epoch, seq)`` and sees a
  gap as a loss. ``epoch`` changes only when the device's store is wiped (a new sequence).
- ``sent``: the device's wall clock when the payload was made (Unix seconds).

Data payloads carry the ROS header of the data: ``"stamp": {"sec", "nanosec"}`` (the camera's
acquisition time, exact) and ``"frame_id"``. Then, per channel:

- ``tracks``: ``"objects": [{"id": 7, "class": "person", "class_id": 0, "score": 0.87,
  "box": [x1, y1, x2, y2]}]`` (``id`` = track id, ``null`` for untracked detections; boxes in
  pixels of the image the stamp names) and ``"image_size": [w, h]``.
- ``text`` (with ``send_text``): ``"lines": [{"text": "DOCK 7", "score": 0.97, "polygon":
  [[x, y] x4], "box": [x0, y0, x1, y1], "region": -1}]`` (pixels of the image the stamp names;
  ``region``: index of the detection the line was read in, -1 for the whole image) and
  ``"image_size": [w, h]``; only frames where text was read are sent.
- ``events``: ``"event"`` (one of :data:`.events.EVENT_TYPES`) and its fields:
  ``track_entered`` ``track: {id, class, score, box}``; ``track_left`` ``track: {id, class,
  best_score}``, ``first_seen``, ``last_seen`` (stamps), ``duration_s``; ``anomaly_raised``
  ``value`` (confidence, 0.5 = the model threshold); ``anomaly_cleared`` ``value``, ``peak``,
  ``since``, ``duration_s``; ``quality_degraded``/``quality_recovered`` ``value`` (level 0 OK, 1
  WARN, 2 ERROR), ``summary``; ``camera_lost`` ``reason``, ``last_frame``; ``camera_back``;
  ``messages_dropped`` ``count``, ``total``.
- ``snapshot``: ``format`` (``jpeg``), ``width``, ``height``, ``quality``, ``event_seq`` (the
  event it illustrates, or null for a requested one), ``jpeg`` (base64).
- ``health``: ``fps``, ``latency_ms: {p50, p95}`` (camera stamp to bridge), ``frames``,
  ``objects`` (count per class in the last frame), ``queue: {depth, bytes, dropped_total,
  inflight}``, ``link: {connects, sent, acked, rejected, stream_skipped,
  stream_rate_limited}``, ``events`` (count per type), ``snapshots``, ``commands``,
  ``cpu_temp_c`` (null where unreadable), ``uptime_s``, ``stages`` (the pipeline nodes'
  diagnostic level, message and fps).
- ``status`` (retained): ``{"schema", "device", "camera", "state": "online"|"offline",
  "reason", "sent", "epoch"}``.
- ``cmd/reply``: ``{"id", "cmd", "ok", "error", "result"}``.

Modules: :mod:`.schema` (topics, payload building), :mod:`.events` (event watchers, rate
limiter), :mod:`.store` (outbox), :mod:`.client` (broker settings, security rules, the link),
:mod:`.commands` (command gate), :mod:`.health` (meters, CPU temperature, snapshots),
:mod:`.bridge` (the device side), :mod:`.fleet` (the consumer side), :mod:`.broker` (a private
Mosquitto for tests and benchmarks).
"""

from __future__ import annotations

from .bridge import Bridge, BridgeConfig
from .client import BrokerConfig, MqttLink
from .commands import COMMANDS, CommandError, CommandGate, CommandPolicy, make_command
from .events import EVENT_TYPES, EventConfig
from .fleet import FleetState
from .schema import CHANNELS, SCHEMA, Topics
from .store import OutboundStore

__all__ = ['CHANNELS', 'COMMANDS', 'EVENT_TYPES', 'SCHEMA', 'Bridge', 'BridgeConfig',
           'BrokerConfig', 'CommandGate', 'CommandPolicy', 'CommandError', 'EventConfig',
           'FleetState', 'MqttLink', 'OutboundStore', 'Topics', 'make_command']
