"""QoS profiles for edge_vision topics, and loud reports of QoS mismatches.

Defaults (REP-2003, "Sensor data and map QoS settings"):

- image-like publishers (``image_raw``, ``image``, heatmaps, overlays): RELIABLE, KEEP_LAST 5,
  VOLATILE. A reliable publisher serves reliable subscribers (``ros2 topic echo``, rviz2's
  default) and best-effort ones alike.
- image-like subscribers: BEST_EFFORT, KEEP_LAST 1: they match any publisher and always process
  the newest frame (a slow node never builds a queue). An image that a node pairs with results
  by stamp (tracker with camera motion, overlay, OCR on regions, privacy filter on detections,
  recorder) is not the newest frame: that subscription keeps as many frames as the
  node's pairing buffer (:func:`with_min_depth`), so a node that stalls for a moment does not
  lose the images whose results are on their way.
- results (``detections``, ``tracks``, ``anomaly``...): RELIABLE; publishers KEEP_LAST 10,
  subscribers KEEP_LAST 100 (room for a burst after a stall).
- ``label_info`` and other "latched" facts: RELIABLE + TRANSIENT_LOCAL, depth 1, so late
  joiners get the last value.

A subscriber that asks for more than a publisher offers (reliable vs best effort, transient
local vs volatile) receives nothing, silently, in plain ROS 2. Every edge_vision publisher and
subscriber registers :func:`publisher_event_callbacks` / :func:`subscription_event_callbacks`,
which log an error naming the topic, the policy and the parameter that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from edge_vision_core.config import check_config, param

try:  # Jazzy and later
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # pragma: no cover - Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

__all__ = [
    'QosConfig',
    'latched_qos',
    'publisher_event_callbacks',
    'results_qos',
    'stream_publisher_qos',
    'stream_subscriber_qos',
    'subscription_event_callbacks',
    'with_min_depth',
]

_RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE,
                'best_effort': ReliabilityPolicy.BEST_EFFORT}


@dataclass(frozen=True)
class QosConfig:
    """QoS of a node's image streams (parameters ``qos.*``)."""

    publisher_reliability: str = field(default='reliable', metadata=param(
        'Reliability of image publishers. "reliable" serves every subscriber (REP-2003); '
        '"best_effort" never blocks the publisher.', choices=('reliable', 'best_effort'),
        read_only=True))
    publisher_depth: int = field(default=5, metadata=param(
        'History depth of image publishers.', min=1, max=100, read_only=True))
    subscriber_reliability: str = field(default='best_effort', metadata=param(
        'Reliability of image subscribers. "best_effort" matches any publisher and drops late '
        'frames; "reliable" only matches reliable publishers.',
        choices=('reliable', 'best_effort'), read_only=True))
    subscriber_depth: int = field(default=1, metadata=param(
        'History depth of image subscribers (1 = always the newest frame; an image paired with '
        'results by stamp keeps at least as many frames as the pairing buffer).', min=1, max=100,
        read_only=True))

    def __post_init__(self) -> None:
        check_config(self)


def stream_publisher_qos(cfg: QosConfig | None = None) -> QoSProfile:
    cfg = cfg or QosConfig()
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.publisher_depth,
                      reliability=_RELIABILITY[cfg.publisher_reliability],
                      durability=DurabilityPolicy.VOLATILE)


def stream_subscriber_qos(cfg: QosConfig | None = None) -> QoSProfile:
    cfg = cfg or QosConfig()
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.subscriber_depth,
                      reliability=_RELIABILITY[cfg.subscriber_reliability],
                      durability=DurabilityPolicy.VOLATILE)


def with_min_depth(profile: QoSProfile, depth: int) -> QoSProfile:
    """``profile`` with a KEEP_LAST history of at least ``depth`` (a new profile; KEEP_ALL is
    kept as it is)."""
    if profile.history == HistoryPolicy.KEEP_ALL or profile.depth >= depth:
        return profile
    return QoSProfile(history=profile.history, depth=depth, reliability=profile.reliability,
                      durability=profile.durability, deadline=profile.deadline,
                      lifespan=profile.lifespan, liveliness=profile.liveliness,
                      liveliness_lease_duration=profile.liveliness_lease_duration,
                      avoid_ros_namespace_conventions=profile.avoid_ros_namespace_conventions)


def results_qos(depth: int = 10) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _policy_name(info: object) -> str:
    kind = getattr(info, 'last_policy_kind', None)
    name = getattr(kind, 'name', str(kind))
    return name.replace('RMW_QOS_POLICY_', '').lower()


def subscription_event_callbacks(node: Node, topic: str) -> SubscriptionEventCallbacks:
    """Callbacks that turn a silent QoS mismatch on ``topic`` into an error log."""

    def incompatible(info: object) -> None:
        node.get_logger().error(
            f'QoS mismatch on {node.resolve_topic_name(topic)}: a publisher offers less than '
            f'this subscription requests ({_policy_name(info)}), so no messages will arrive. '
            f'Set this node\'s qos.subscriber_reliability:=best_effort, or make the publisher '
            f'reliable (total incompatible: {getattr(info, "total_count", "?")})',
            throttle_duration_sec=10.0)

    return SubscriptionEventCallbacks(incompatible_qos=incompatible)


def publisher_event_callbacks(node: Node, topic: str) -> PublisherEventCallbacks:
    """Callbacks that report subscribers this publisher cannot serve."""

    def incompatible(info: object) -> None:
        node.get_logger().error(
            f'QoS mismatch on {node.resolve_topic_name(topic)}: a subscriber requests more than '
            f'this publisher offers ({_policy_name(info)}) and receives nothing. Set '
            f'qos.publisher_reliability:=reliable here, or make the subscriber best_effort',
            throttle_duration_sec=10.0)

    return PublisherEventCallbacks(incompatible_qos=incompatible)
