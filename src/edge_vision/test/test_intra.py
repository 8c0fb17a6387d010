"""intra.Link: the one-slot handover between stages (no spinning, no DDS)."""

from __future__ import annotations

import threading
import time

import pytest

from edge_vision.intra import Link


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class Gate:
    """A consumer handler that blocks until released, recording what it got."""

    def __init__(self) -> None:
        self.got: list[object] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, item: object) -> None:
        self.got.append(item)
        self.entered.set()
        assert self.release.wait(10.0), 'the test never released the consumer'


def test_newest_wins_and_every_replaced_object_is_counted():
    gate = Gate()
    link = Link(gate, name='test-newest')
    try:
        link.put('a')
        assert gate.entered.wait(10.0)  # the worker holds 'a'; the slot is empty again
        for item in ('b', 'c', 'd'):
            link.put(item)  # each replaces the previous one in the slot
        assert link.dropped == 2
        gate.release.set()
        assert _wait(lambda: gate.got == ['a', 'd'])
        assert link.delivered == 2 and link.dropped == 2
    finally:
        gate.release.set()
        link.destroy()


def _blocked_producer(name: str) -> tuple[Gate, Link, threading.Event]:
    """A lossless link whose consumer holds 1, whose slot holds 2, and a producer thread
    blocked putting 3 (the returned event is set once its put() returns)."""
    gate = Gate()
    link = Link(gate, blocking=True, name=name)
    link.put(1)
    assert gate.entered.wait(10.0)
    link.put(2)  # the slot was free: returns at once
    returned = threading.Event()

    def producer():
        link.put(3)  # the slot is full: blocks until the consumer takes 2, or close()
        returned.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not returned.wait(0.5), 'a lossless producer must wait for a full slot'
    return gate, link, returned


def test_blocking_link_makes_the_producer_wait_and_loses_nothing():
    gate, link, returned = _blocked_producer('test-blocking')
    try:
        gate.release.set()
        assert returned.wait(10.0)
        assert _wait(lambda: gate.got == [1, 2, 3])
        assert link.dropped == 0 and link.delivered == 3
    finally:
        gate.release.set()
        link.destroy()


def test_close_wakes_a_blocked_producer_and_stops_delivery():
    gate, link, returned = _blocked_producer('test-close')
    link.close()
    assert returned.wait(5.0), 'close() must wake a producer blocked on a full slot'
    gate.release.set()
    link.destroy()
    assert gate.got == [1], 'nothing is delivered after close()'
    link.put('late')  # after close: ignored, no error
    assert link.delivered == 1


@pytest.mark.parametrize('blocking', [False, True])
def test_destroy_waits_for_the_object_in_hand(blocking):
    done = []

    def slow(item):
        time.sleep(0.2)
        done.append(item)

    link = Link(slow, blocking=blocking, name='test-destroy')
    link.put('x')
    assert _wait(lambda: link.delivered == 1)
    link.destroy()
    assert done == ['x']
