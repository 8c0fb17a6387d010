"""Run several edge_vision nodes in one process with in-memory handover between them.

rclpy has no composable-node containers and no intra-process transport, so each image that
crosses a topic between two Python processes is serialized and deserialized. A
:class:`Composition` instead:

1. creates the nodes in one process and one rclpy context (they are ordinary nodes: their
   parameters, services, lifecycle interfaces and diagnostics are all on the graph);
2. configures them, then links every input to the in-process output with the same resolved
   topic name (:class:`edge_vision.intra.Link`: objects handed over, nothing serialized);
   inputs with no in-process producer subscribe over DDS as usual;
3. activates them and spins them on one :class:`~rclpy.executors.MultiThreadedExecutor`
   (each node's callbacks stay mutually exclusive; different stages run concurrently, so
   inference on frame *n* overlaps capture of frame *n+1*).

Every output still publishes whenever the topic has subscribers (rviz, ``ros2 topic echo``, a
node in another process), so the composed graph looks the same from outside.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rclpy.executors import MultiThreadedExecutor

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

    def __str__(self) -> str:
        source = f'in-process from {self.producer}' if self.producer else 'DDS subscription'
        return f'{self.node}: {self.topic} <- {source}'


class Composition:
    """Nodes of one process, wired in memory where they can be (see the module docstring).

    Args:
        factories: callables creating the nodes (e.g. node classes, or ``functools.partial``
            with ``cli_args``/``parameter_overrides``), in pipeline order.
        num_threads: executor threads (default: one per node plus one).
        context: the rclpy context of the nodes (default: the global one).
        lossless: make every in-process link blocking (a producer waits for its consumer
            instead of replacing a frame it has not taken yet): every frame of a file goes
            through the whole pipeline, at the pace of the slowest stage.
    """

    def __init__(self, factories: Sequence[Callable[[], EdgeVisionNode]],
                 num_threads: int | None = None, context: object = None,
                 lossless: bool = False) -> None:
        if not factories:
            raise ConfigError('a Composition needs at least one node')
        self.nodes = [factory() for factory in factories]
        names = [n.get_fully_qualified_name() for n in self.nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f'two nodes share the name {", ".join(duplicates)}: give each a '
                              f'distinct name or namespace')
        # one thread per node (+1): a blocking link may hold a producer's thread while its
        # consumer's callback needs another one
        self.executor = MultiThreadedExecutor(num_threads=num_threads or len(self.nodes) + 1,
                                              context=context)
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
        producers = {}
        for node in nodes:
            for out in node.outputs:
                producers.setdefault(out.resolved, (node, out))
        for node in nodes:
            for spec in node.inputs:
                found = producers.get(spec.resolved) if spec.linkable else None
                if found is not None and found[0] is not node:
                    producer, out = found
                    spec.link = Link(node, node._link_handler(spec), blocking=self.lossless)
                    out.links.append(spec.link)
                    self.links.append(LinkReport(node.get_fully_qualified_name(),
                                                 spec.resolved,
                                                 producer.get_fully_qualified_name()))
                else:
                    self.links.append(LinkReport(node.get_fully_qualified_name(),
                                                 spec.resolved, None))

    def spin(self) -> None:
        self.executor.spin()

    def spin_once(self, timeout_sec: float | None = None) -> None:
        self.executor.spin_once(timeout_sec=timeout_sec)

    def shutdown(self) -> None:
        """Stop everything in a safe order and destroy the nodes (idempotent).

        Callbacks may still be running on executor threads when spinning stops, so the order
        matters: close the links (a producer blocked on a full slot returns), wait for the
        executor's running callbacks to finish, then stop the nodes' own threads and release
        their devices and runtimes, and only then destroy guard conditions and nodes.
        """
        if not self.nodes:
            return
        links = [spec for node in self.nodes for spec in node.inputs if spec.link is not None]
        for spec in links:
            spec.link.close()
        self.executor.shutdown(timeout_sec=30.0)
        for node in reversed(self.nodes):
            node.release()
        for spec in links:
            spec.link.destroy()
            spec.link = None
        for node in reversed(self.nodes):
            node.destroy_node()
        self.nodes = []
