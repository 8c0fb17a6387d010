"""Node inputs and outputs that work over DDS or, in one process, by handing objects over.

rclpy has no intra-process transport: every image that crosses a topic is serialized and
deserialized (a few milliseconds per VGA frame in Python; ``benchmarks/bench_conversions.py``
measures it). edge_vision nodes
therefore declare their streams as ports carrying *core objects* (``Frame``,
``FrameDetections``...) plus the conversions to and from messages:

- :class:`Output` publishes lazily: the message is built and published only while the topic
  has subscribers (rviz, a logger, a node in another process), and every in-process
  :class:`Link` gets the object itself, without conversion or copy;
- an input is either a ROS subscription (message -> object -> handler) or, when the composer
  (:mod:`edge_vision.compose`) finds a producer of the same resolved topic in the same process,
  a :class:`Link`: a one-slot mailbox drained by a worker thread of its own that calls the
  consumer's handler. The slot holds the newest object only; an object replaced before the
  consumer took it is counted in ``dropped`` (never silently lost). An input declared with
  ``mailbox=True`` gets such a Link over DDS too, so receiving overlaps processing.

Outputs that emit :class:`~edge_vision_core.FrameDetections` with the image attached say whose
frames they are (``frames=``): a synchronised input (:mod:`edge_vision.synced`) then takes them
instead of receiving the same images a second time.

Objects handed over a link are shared, not copied: producers must not modify an object after
emitting it, consumers must not modify what they receive (make a new array instead).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile

__all__ = ['InputSpec', 'Link', 'Output']


class Link:
    """One-slot handover from a producer thread to a consumer stage's own worker thread.

    The consumer's handler runs in a thread of the link (not an executor callback): the hot
    path of a composed pipeline never waits for rclpy's executor (rebuilding its wait set
    costs more than a NumPy stage, and the executor thread would compete for the GIL), while
    every stage still runs in its own thread, so stages overlap. The consumer node serialises
    its handlers itself (:class:`edge_vision.node_base.EdgeVisionNode` holds a per-node lock).

    Newest-wins by default: an object replaced before the consumer took it is counted in
    ``dropped``. With ``blocking=True`` the producer waits instead until the slot is free
    (lossless; the pipeline then runs at the pace of its slowest stage).
    """

    def __init__(self, handler: Callable[[Any], None], blocking: bool = False,
                 name: str = 'link') -> None:
        self._handler = handler
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.blocking = blocking
        self.delivered = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        with self._cond:
            if self.blocking:
                while self._item is not None and not self._closed:
                    self._cond.wait(timeout=0.5)
            if self._closed:
                return  # shutting down: nobody will take it
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._item is None and not self._closed:
                    self._cond.wait(timeout=0.5)
                if self._closed:
                    return
                item, self._item = self._item, None
                self._cond.notify_all()  # a blocked producer may put the next one now
            self.delivered += 1
            self._handler(item)

    def close(self) -> None:
        """Stop accepting and delivering objects; wakes a blocked producer and the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def destroy(self) -> None:
        """Close and wait for the worker (after producers have stopped)."""
        self.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=30.0)


class Output:
    """A node output: a topic plus in-process links.

    Args:
        node: the producing node (an :class:`edge_vision.node_base.EdgeVisionNode`).
        topic: topic name (relative names resolve in the node's namespace).
        msg_type: message class.
        to_msg: builds the message from the emitted object (called only when needed).
        qos: publisher QoS.
        latched: publish every emitted object even without subscribers (transient local
            topics such as ``label_info``, whose late joiners need the last value).
        frames: for outputs of FrameDetections: the resolved topic whose frames every emitted
            object carries in ``frame`` (or a callable giving it once the graph is linked, or
            None when no frame is attached).
    """

    def __init__(self, node: Node, topic: str, msg_type: type, to_msg: Callable[[Any], Any],
                 qos: QoSProfile, latched: bool = False, event_callbacks: Any = None,
                 frames: str | Callable[[], str | None] | None = None) -> None:
        self.node = node
        self._frames = frames
        self.topic = topic
        self.resolved = node.resolve_topic_name(topic)
        self.to_msg = to_msg
        self.latched = latched
        kwargs = {'event_callbacks': event_callbacks} if event_callbacks is not None else {}
        self.publisher = node.create_lifecycle_publisher(msg_type, topic, qos, **kwargs)
        self.links: list[Link] = []
        self.emitted = 0
        self.published = 0

    def frame_topic(self) -> str | None:
        """The resolved topic of the frames attached to emitted objects, or None."""
        return self._frames() if callable(self._frames) else self._frames

    def has_subscribers(self) -> bool:
        return self.publisher.get_subscription_count() > 0

    def emit(self, item: Any) -> None:
        """Hand ``item`` to every link; publish its message if anyone subscribes to the topic.

        After the process's ROS context has shut down (Ctrl-C), a thread that still emits is
        ignored instead of raising.
        """
        self.emitted += 1
        for link in self.links:
            link.put(item)
        if not self.node.context.ok():
            return
        try:
            wanted = self.latched or self.has_subscribers()
        except Exception:  # rclpy raises RCLError/InvalidHandle once the context is gone
            if self.node.context.ok():
                raise
            return
        if wanted and self.node.publish(self.publisher, self.to_msg(item)):
            self.published += 1

    def destroy(self) -> None:
        self.node.destroy_lifecycle_publisher(self.publisher)


@dataclass
class InputSpec:
    """A node input: a topic whose messages (or linked objects) go to ``handler``.

    Attributes:
        topic: topic name (relative names resolve in the node's namespace).
        msg_type: message class of the topic.
        from_msg: converts a received message into the object ``handler`` takes.
        handler: the node's processing function for one object.
        qos: subscription QoS when the input comes over DDS.
        linkable: False for inputs that must always come over DDS.
        watch: report the input when it goes quiet (streams); False for occasional
            messages such as ``label_info`` or a calibration.
        mailbox: over DDS, hand converted messages to a newest-wins :class:`Link` whose
            worker thread runs the handler (receiving overlaps processing; replaced messages
            are counted in :attr:`dropped`); a linked input has that worker already.
        enabled: False when the input is not needed (an image a synchronised input takes
            from its results instead): neither linked nor subscribed.
        synced: the :class:`edge_vision.synced.SyncedInput` this input belongs to, if any.
        producer: the in-process output it is linked to (set by the composer).
    """

    topic: str
    msg_type: type
    from_msg: Callable[[Any], Any]
    handler: Callable[[Any], None]
    qos: QoSProfile
    linkable: bool = True
    watch: bool = True
    resolved: str = ''
    link: Link | None = None
    subscription: Any = None
    event_callbacks: Any = None
    received: int = 0
    last_received: float | None = None
    mailbox: bool = False
    queue: Link | None = None
    enabled: bool = True
    synced: Any = None
    producer: Output | None = None
    dropped_earlier: int = 0

    @property
    def dropped(self) -> int:
        """Objects replaced before the handler took them (mailbox or in-process link),
        over every activation."""
        return self.dropped_earlier + sum(q.dropped for q in (self.queue, self.link)
                                          if q is not None)
