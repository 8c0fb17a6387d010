"""Calling other nodes' services from a node without blocking its executor or losing answers.

Fast DDS's service server drops a response when the caller's response reader is not matched
yet (it waits about 100 ms for it), so the first calls of a new client can lose their answer
although the request ran. :class:`ServiceCaller` copes:

- an idempotent request (reading or setting a parameter, giving a camera its model) is sent
  again every :data:`RESEND_S` until one answer arrives (the first wins);
- a request that must not be repeated (start learning, stop learning) is sent once, when its
  client has seen the service ready for :data:`SETTLE_S`. Clients made early
  (:meth:`ServiceCaller.client`) and watched (:meth:`ServiceCaller.watch`) are settled before a
  request comes; a server that disappears and comes back (a new server that must match the
  client again) is waited for again.

Every call ends in exactly one ``done(response or None, error)``: the answer, or why there is
none (the service never appeared, no answer in time, the call failed, the caller was closed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rclpy.node import Node

__all__ = ['RESEND_S', 'SERVICE_TIMEOUT_S', 'SETTLE_S', 'ServiceCaller']

#: How long a call waits for its service to appear, and then for its answer.
SERVICE_TIMEOUT_S = 5.0
#: An unanswered idempotent request is sent again after this long.
RESEND_S = 1.0
#: A request that must not be repeated waits until its client has seen the service this long.
SETTLE_S = 0.5


class ServiceCaller:
    """One client per (type, service) of a node, and non-blocking calls through them."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._clients: dict[tuple[type, str], Any] = {}
        self._ready_since: dict[tuple[type, str], float] = {}
        self._watch_timer: Any = None

    def client(self, srv_type: type, name: str) -> Any:
        """The one client of service ``name`` (made on first use: make it early so that it is
        matched before the first call)."""
        key = (srv_type, name)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._node.create_client(srv_type, name)
        return client

    def watch(self, period_s: float = 0.1) -> None:
        """Track since when each client has seen its service ready (a timer of the node)."""
        if self._watch_timer is None:
            self._watch_timer = self._node.create_timer(period_s, self._watch)

    def unwatch(self) -> None:
        if self._watch_timer is not None:
            self._node.destroy_timer(self._watch_timer)
            self._watch_timer = None

    def close(self) -> None:
        """Stop watching and destroy the clients; calls in flight end with an error."""
        self.unwatch()
        clients, self._clients = self._clients, {}
        self._ready_since.clear()
        for client in clients.values():
            self._node.destroy_client(client)

    def _ready(self, key: tuple[type, str], client: Any, now: float) -> bool:
        if client.service_is_ready():
            self._ready_since.setdefault(key, now)
            return True
        self._ready_since.pop(key, None)  # a server that comes back is new
        return False

    def _watch(self) -> None:
        now = time.monotonic()
        for key, client in list(self._clients.items()):
            self._ready(key, client, now)

    def call(self, srv_type: type, name: str, request: Any,
             done: Callable[[Any, str], None], idempotent: bool = True,
             timeout_s: float = SERVICE_TIMEOUT_S) -> None:
        """Call service ``name``: wait up to ``timeout_s`` for it to appear, then up to
        ``timeout_s`` for its answer; ``done(response or None, error)`` once."""
        key = (srv_type, name)
        client = self.client(srv_type, name)
        deadline = time.monotonic() + timeout_s
        state: dict[str, Any] = {'futures': [], 'sent': 0.0, 'finished': False}

        def finish(response: Any, error: str = '') -> None:
            if state['finished']:
                return
            state['finished'] = True
            self._node.destroy_timer(timer)
            for future in state['futures']:
                if not future.done():
                    future.cancel()
            done(response, error)

        def answered(future: Any) -> None:
            if future.cancelled():
                return
            if future.result() is not None:
                finish(future.result())
            else:
                finish(None, f'service {name} failed: {future.exception()}')

        def send(now: float) -> None:
            future = client.call_async(request)
            state['futures'].append(future)
            state['sent'] = now
            future.add_done_callback(answered)

        def poll() -> None:
            now = time.monotonic()
            if self._clients.get(key) is not client:
                finish(None, f'the client of {name} was closed (node cleaned up)')
            elif not state['futures']:
                if self._ready(key, client, now):
                    if idempotent or now - self._ready_since[key] >= SETTLE_S:
                        send(now)
                elif now > deadline:
                    finish(None, f'service {name} is not available (is that node running?)')
            # an answer is awaited timeout_s past the appearance deadline (idempotent, sent
            # again meanwhile) or past the one request
            elif now > (deadline if idempotent else state['sent']) + timeout_s:
                finish(None, f'no answer from {name} within {timeout_s:g} s')
            elif idempotent and now - state['sent'] >= RESEND_S:
                send(now)

        timer = self._node.create_timer(0.05, poll)
