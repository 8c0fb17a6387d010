"""Run several edge_vision nodes in one process with in-memory handover between them.

rclpy has no composable-node containers and no intra-process transport, so each image that
crosses a topic between two Python processes is serialized and deserialized. A
:class:`Composition` instead:

1. creates the nodes in one process and one rclpy context (they are ordinary nodes: their
   parameters, services, lifecycle interfaces and diagnostics are all on the graph);
2. configures them, then links every input to the in-process output with the same resolved
   topic name (:class:`edge_vision.intra.Link`: objects handed over, nothing serialized);
   inputs with no in-process producer subscribe over DDS as usual; a synchronised input
   (:mod:`edge_vision.synced`) whose results producer attaches the frames of the port's own
   image topic takes those, and its image input is neither linked nor subscribed;
3. activates them and spins them on one executor for their ROS interfaces (parameters,
   services, timers, lifecycle, subscriptions to other processes); the in-process hot path
   runs in the links' worker threads, one per linked input, so different stages run
   concurrently (inference on frame *n* overlaps capture of frame *n+1*) and each node still
   handles one input object at a time. The executor is single-threaded: it only serves the
   ROS interfaces, and rclpy's multi-threaded executor costs more (its wait-set rebuilds
   and thread hand-offs compete with the stages for the GIL).

Every output still publishes whenever the topic has subscribers (rviz, ``ros2 topic echo``, a
node in another process), so the composed graph looks the same from outside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rclpy.executors import SingleThreadedExecutor

from edge_vision_core import ConfigError

from .intra import Link
from .node_base import EdgeVisionNode, TransitionCallbackReturn

__all__ = ['Composition', 'LinkReport']


@dataclass(frozen=True)
class LinkReport:
    """One input of one node and where it comes from."""

    node: str
    topic: str
    producer: str | None  # fully qualified name of the in-process producer, None for DDS
    attached_to: str | None = None  # frames taken from the results on this topic instead

    def __str__(self) -> str:
        if self.attached_to:
            source = f'attached to the results on {self.attached_to}'
        else:
            source = f'in-process from {self.producer}' if self.producer else 'DDS subscription'
        return f'{self.node}: {self.topic} <- {source}'


class Composition:
    """Nodes of one process, wired in memory where they can be (see the module docstring).

    Args:
        factories: callables creating the nodes (e.g. node classes, or ``functools.partial``
            with ``cli_args``/``parameter_overrides``), in pipeline order.
        context: the rclpy context of the nodes (default: the global one).
        lossless: make every in-process link blocking (a producer waits for its consumer
            instead of replacing a frame it has not taken yet): every frame of a file goes
            through the whole pipeline, at the pace of the slowest stage.
    """

    def __init__(self, factories: Sequence[Callable[[], EdgeVisionNode]],
                 context: object = None, lossless: bool = False) -> None:
        if not factories:
            raise ConfigError('a Composition needs at least one node')
        self.nodes = [factory() for factory in factories]
        names = [n.get_fully_qualified_name() for n in self.nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f'two nodes share the name {", ".join(duplicates)}: give each a '
                              f'distinct name or namespace')
        self.executor = SingleThreadedExecutor(context=context)
        self.lossless = lossless
        for node in self.nodes:
            self.executor.add_node(node)
        self.links: list[LinkReport] = []

    def start(self) -> list[str]:
        """Configure, link and activate every node; returns the errors (empty when all run).

        A node that fails to configure stays unconfigured (its error is returned and logged);
        the others run, linked to whatever produces their inputs.
        """
        errors = []
        configured = []
        for node in self.nodes:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                configured.append(node)
            else:
                errors.append(f'{node.get_fully_qualified_name()}: {node.last_error}')
        self._link(configured)
        for node in configured:
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                errors.append(f'{node.get_fully_qualified_name()}: {node.last_error}')
        return errors

    def _link(self, nodes: list[EdgeVisionNode]) -> None:
        """Link every input to an in-process producer of its resolved topic. The image input
        of a synchronised input is decided last: once every results input is linked, a port
        whose results producer attaches frames of that image topic takes those instead (its
        image input is then neither linked nor subscribed)."""
        producers = {}
        for node in nodes:
            for out in node.outputs:
                producers.setdefault(out.resolved, (node, out))
        synced_images = []
        for node in nodes:
            for spec in node.inputs:
                if spec.synced is not None and spec is spec.synced.image_spec:
                    synced_images.append((node, spec))
                else:
                    self._link_input(node, spec, producers)
        for node in nodes:
            for port in node.synced_inputs:
                port.link()
        for node, spec in synced_images:
            if spec.enabled:
                self._link_input(node, spec, producers)
            else:
                self.links.append(LinkReport(node.get_fully_qualified_name(), spec.resolved,
                                             None, spec.synced.results_spec.resolved))

    def _link_input(self, node: EdgeVisionNode, spec: object, producers: dict) -> None:
        found = producers.get(spec.resolved) if spec.linkable else None
        if found is not None and found[0] is not node:
            producer, out = found
            spec.link = Link(node._link_handler(spec), blocking=self.lossless,
                             name=f'{node.get_name()}:{spec.topic}')
            spec.producer = out
            out.links.append(spec.link)
            self.links.append(LinkReport(node.get_fully_qualified_name(), spec.resolved,
                                         producer.get_fully_qualified_name()))
        else:
            self.links.append(LinkReport(node.get_fully_qualified_name(), spec.resolved, None))

    def spin(self) -> None:
        self.executor.spin()

    def spin_once(self, timeout_sec: float | None = None) -> None:
        self.executor.spin_once(timeout_sec=timeout_sec)

    def shutdown(self) -> None:
        """Stop everything in a safe order and destroy the nodes (idempotent).

        The order matters: close the links (a producer blocked on a full slot returns, the
        workers stop taking objects) and wait for their workers to finish the object in hand,
        stop the executor, stop the nodes' own threads and release their devices and runtimes,
        then destroy the nodes.
        """
        if not self.nodes:
            return
        links = [spec for node in self.nodes for spec in node.inputs if spec.link is not None]
        for spec in links:
            spec.link.close()
        for spec in links:
            spec.link.destroy()  # waits for a handler still running (e.g. an inference)
            spec.link = None
        self.executor.shutdown(timeout_sec=30.0)
        for node in reversed(self.nodes):
            node.release()
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []
