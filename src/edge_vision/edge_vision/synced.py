"""One synchronised input: ``(frame, results, labels)`` for a stage, in process and over DDS.

A stage that works on results *and* the image they were found in (tracker with camera-motion
compensation, overlay, recorder, OCR on regions of interest, a privacy filter, an MQTT bridge
sending snapshots) declares one port in ``on_configure``::

    self._port = self.add_synced_input('image', 'tracks', self._on_tracks,
                                       image='required', encoding='bgr8')

    def _on_tracks(self, frame: Frame | None, results: FrameDetections,
                   labels: tuple[str, ...] | None) -> None:
        ...

and gets one call per results message, the same way whatever the transport:

- ``results``: the :class:`~edge_vision_core.FrameDetections` of one
  ``vision_msgs/Detection2DArray`` (or the object an in-process producer emitted). Its
  ``frame`` attribute is not the port's business: use the ``frame`` argument.
- ``frame``: the :class:`~edge_vision_core.Frame` of ``image_topic`` with the *same stamp*, in
  ``encoding`` (converted when it arrives in another one), or None (see the modes).
- ``labels``: the class names, from the results themselves (in process) or else from the
  ``label_info`` topic (``vision_msgs/LabelInfo``, transient local, always over DDS), with names
  first seen in the results appended (or, with ``replace_labels``, each LabelInfo replacing the
  table). None while no name is known.

``image`` says what the stage needs from ``image_topic``:

- ``'required'``: every call has a frame. Results wait (at most ``capacity`` per side) for the
  image with their stamp; results or images that can no longer pair are dropped and counted.
- ``'optional'``: every results message is delivered; with its image when one arrives, with
  None once it can no longer arrive (a newer pair matched, the buffer is full, or the port is
  flushed at deactivation). Images without results are dropped and counted.
- ``'attached'``: the port never subscribes to ``image_topic``; a frame is delivered only when
  an in-process producer attached the frame of ``image_topic`` to the results (a tracker that
  needs no image still passes frames on this way), else None. No waiting, no pairing.
- ``image_topic=None``: results and labels only (frame always None).

Composed mode (:mod:`edge_vision.compose`): an :class:`~edge_vision.intra.Output` says with
``frames=`` whose frames its emitted results carry. When the results producer of a port is in
the process and attaches frames of the port's own ``image_topic`` (same resolved name), the port
takes those and its image input is neither linked nor subscribed: no image is handed over only
to be thrown away. Otherwise (results over DDS, frames of another topic, e.g. the recorder pairing
``tracks`` with ``image_annotated``) the image input is linked or subscribed and paired by stamp
like over DDS: a frame is never paired by anything but its topic and stamp.

Handlers of one node run one at a time, like every input handler (see
:mod:`edge_vision.node_base`). Counters (``paired``, ``unpaired_dropped``,
``results_without_image``) are in the node's stats and /diagnostics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from edge_vision_core import ConfigError, Frame, FrameDetections
from edge_vision_core.encodings import convert_encoding
from edge_vision_core.sync import ExactTimeMatcher

from .conversions import image_to_frame, label_info_to_labels, msg_to_frame_detections

if TYPE_CHECKING:
    from .intra import InputSpec
    from .node_base import EdgeVisionNode

__all__ = ['IMAGE_MODES', 'LabelTable', 'SyncedHandler', 'SyncedInput']

#: What a port needs from its image topic (see the module docstring).
IMAGE_MODES = ('required', 'optional', 'attached')

SyncedHandler = Callable[[Frame | None, FrameDetections, tuple[str, ...] | None], None]


class LabelTable:
    """The class names of a results input: ``label_info`` gives them, and names first seen in
    the results are appended (ids stay stable); with ``replace`` each ``label_info`` replaces
    the table instead (a display that follows whatever model publishes).

    Every operation is linear in the names it is given (a name index is kept beside the list);
    the conversions refuse class ids above :data:`edge_vision.conversions.MAX_CLASS_ID`.
    """

    def __init__(self, replace: bool = False) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._replace = replace

    def update(self, labels: list[str]) -> None:
        if self._replace:
            self.names[:] = labels
            self._index = {}
            for i, name in enumerate(labels):
                self._index.setdefault(name, i)
            return
        for name in labels:
            if name not in self._index:
                self._index[name] = len(self.names)
                self.names.append(name)

    def from_msg(self, msg: Detection2DArray) -> FrameDetections:
        return msg_to_frame_detections(msg, self.names, extend_labels=True,
                                       label_index=self._index)

    def for_item(self, item: FrameDetections) -> tuple[str, ...] | None:
        """The labels of ``item``: its own (composed pipeline), else the table's."""
        return item.labels or (tuple(self.names) if self.names else None)

    def __len__(self) -> int:
        return len(self.names)


class SyncedInput:
    """A results input paired with an image input by stamp (see the module docstring).

    Created by :meth:`edge_vision.node_base.EdgeVisionNode.add_synced_input`; the node keeps
    it to read :attr:`labels`, :meth:`stats` and :attr:`arrival_ns`.

    Attributes:
        labels: the class-name table.
        image_spec: the image input (None in ``attached`` mode or without an image topic).
        results_spec: the results input.
        arrival_ns: while the handler runs, the node-clock time (ns) at which the delivered
            results arrived (they may have waited for their image).
        image_resolved: the resolved image topic ('' without one).
    """

    def __init__(self, node: EdgeVisionNode, image_topic: str | None, results_topic: str,
                 handler: SyncedHandler, *, image: str, encoding: str, capacity: int,
                 replace_labels: bool, image_qos: Any, results_qos: Any, labels_qos: Any,
                 labels_topic: str) -> None:
        if image not in IMAGE_MODES:
            raise ConfigError(f'Invalid image mode {image!r}, expecting one of '
                              f'{list(IMAGE_MODES)}')
        self._node = node
        self._handler = handler
        self.mode = image if image_topic else 'attached'
        self.encoding = encoding
        self.labels = LabelTable(replace_labels)
        self._matcher: ExactTimeMatcher[Frame, tuple[FrameDetections, int]] = ExactTimeMatcher(
            capacity, on_drop_b=self._unpaired_results if self.mode == 'optional' else None)
        self.image_resolved = node.resolve_topic_name(image_topic) if image_topic else ''
        self.arrival_ns = 0
        self.delivered = 0
        self.without_image = 0
        self.attached_paired = 0
        self.missing_attached = 0
        self._use_attached = False
        self.image_spec: InputSpec | None = None
        if self.mode in ('required', 'optional'):
            # declared first: it is the node's first input (tests and tools index it)
            self.image_spec = node.add_input(
                image_topic, Image, lambda msg: image_to_frame(msg, encoding), self._on_image,
                image_qos)
            self.image_spec.synced = self
        self.results_spec = node.add_input(results_topic, Detection2DArray,
                                           self.labels.from_msg, self._on_results, results_qos)
        self.results_spec.synced = self
        node.add_input(labels_topic, LabelInfo, label_info_to_labels, self.labels.update,
                       labels_qos, linkable=False)

    # -- composition ------------------------------------------------------------------------

    @property
    def attached(self) -> bool:
        """True when the in-process results producer attaches frames of the image topic."""
        producer = self.results_spec.producer
        return bool(self.image_resolved) and producer is not None and \
            producer.frame_topic() == self.image_resolved

    def link(self) -> bool:
        """Called by the composer once the results input is linked: take the producer's
        attached frames when they are of the image topic. Returns True when the image input
        is then not needed (neither linked nor subscribed)."""
        self._use_attached = self.attached
        if self.image_spec is not None:
            self.image_spec.enabled = not self._use_attached
        return self._use_attached

    def frame_topic(self) -> str | None:
        """Whose frames this port delivers with every call (for the node's outputs'
        ``frames=``): the image topic in ``required`` mode or when attached, else None."""
        if self.mode == 'required' or (self.mode == 'attached' and self.attached):
            return self.image_resolved
        return None

    # -- inputs -----------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> Frame:
        if frame.encoding == self.encoding or self.encoding == 'passthrough':
            return frame
        return Frame(convert_encoding(frame.image, frame.encoding, self.encoding), frame.meta,
                     self.encoding, frame.camera)

    def _on_image(self, frame: Frame) -> None:
        pair = self._matcher.add_a(frame.meta.stamp_ns, frame)
        if pair is not None:
            self._deliver(pair[0], *pair[1])

    def _on_results(self, item: FrameDetections) -> None:
        arrival = self._node.get_clock().now().nanoseconds
        if self.mode == 'attached' or self._use_attached:
            frame = item.frame if self._use_attached else None
            if frame is None and self.mode == 'required':
                self.missing_attached += 1  # the producer stopped attaching frames
                return
            self.attached_paired += frame is not None
            self.without_image += frame is None and self.mode == 'optional'
            self._deliver(frame, item, arrival)
            return
        pair = self._matcher.add_b(item.meta.stamp_ns, (item, arrival))
        if pair is not None:
            self._deliver(pair[0], *pair[1])

    def _unpaired_results(self, stamp_ns: int, entry: tuple[FrameDetections, int]) -> None:
        self.without_image += 1
        self._deliver(None, *entry)

    def _deliver(self, frame: Frame | None, item: FrameDetections, arrival_ns: int) -> None:
        if frame is not None:
            frame = self._frame(frame)
        if item.frame is not None and item.frame is not frame:
            item = dataclasses.replace(item, frame=None)  # never another topic's frame
        self.arrival_ns = arrival_ns
        self.delivered += 1
        self._handler(frame, item, self.labels.for_item(item))

    def flush(self) -> None:
        """End of the stream (deactivation, shutdown): deliver the results still waiting for
        their image in ``optional`` mode, drop (and count) them in ``required`` mode."""
        waiting = self._matcher.take_b()
        if self.mode == 'optional':
            for _, (item, arrival) in waiting:
                self.without_image += 1
                self._deliver(None, item, arrival)
        else:
            self._matcher.dropped_b += len(waiting)
        self._matcher.reset()

    # -- stats ------------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """``paired`` (results delivered with their image), ``unpaired_dropped`` (images and
        results dropped for want of a partner), ``results_without_image`` (delivered without
        one, ``optional`` mode), ``delivered``."""
        return {'paired': self._matcher.matched + self.attached_paired,
                'delivered': self.delivered,
                'unpaired_dropped': self._matcher.dropped + self.missing_attached,
                'results_without_image': self.without_image}
