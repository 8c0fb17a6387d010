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


def test_blocking_link_makes_the_producer_wait_and_loses_nothing():
    gate = Gate()
    link = Link(gate, blocking=True, name='test-blocking')
    put_done = threading.Event()
    try:
        link.put(1)
        assert gate.entered.wait(10.0)
        link.put(2)  # the slot was free: returns at once

        def producer():
            link.put(3)  # slot full (2 waits): must block until the consumer takes 2
            put_done.set()

        threading.Thread(target=producer, daemon=True).start()
        assert not put_done.wait(0.5), 'a lossless producer must wait for a full slot'
        gate.release.set()
        assert put_done.wait(10.0)
        assert _wait(lambda: gate.got == [1, 2, 3])
        assert link.dropped == 0 and link.delivered == 3
    finally:
        gate.release.set()
        link.destroy()


def test_close_wakes_a_blocked_producer_and_stops_delivery():
    gate = Gate()
    link = Link(gate, blocking=True, name='test-close')
    returned = threading.Event()
    link.put('first')
    assert gate.entered.wait(10.0)
    link.put('second')  # fills the slot

    def producer():
        link.put('third')  # blocks on the full slot until close()
        returned.set()

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    assert not returned.wait(0.3)
    link.close()
    assert returned.wait(5.0), 'close() must wake a producer blocked on a full slot'
    gate.release.set()
    link.destroy()
    assert gate.got == ['first'], 'nothing is delivered after close()'
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
