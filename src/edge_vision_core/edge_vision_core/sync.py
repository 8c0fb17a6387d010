"""Pairing two streams by exact stamp (what message_filters' ExactTime policy does).

A node that needs an image *and* the detections found in it receives them separately; both
carry the image's stamp, so they are paired by equal ``stamp_ns``. Items wait in a small buffer
per side; an item older than a matched pair can no longer match and is dropped and counted.
"""

from __future__ import annotations

import collections
from typing import Any, Generic, TypeVar

from .errors import ConfigError

__all__ = ['ExactTimeMatcher']

A = TypeVar('A')
B = TypeVar('B')


class ExactTimeMatcher(Generic[A, B]):
    """Pairs items of stream A and stream B that carry the same stamp.

    Args:
        capacity: items kept per side while waiting for their partner.
    """

    def __init__(self, capacity: int = 10) -> None:
        if capacity < 1:
            raise ConfigError(f'capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._a: collections.OrderedDict[int, A] = collections.OrderedDict()
        self._b: collections.OrderedDict[int, B] = collections.OrderedDict()
        self.matched = 0
        self.dropped = 0

    def add_a(self, stamp_ns: int, item: A) -> tuple[A, B] | None:
        return self._add(stamp_ns, item, self._a, self._b, first=True)

    def add_b(self, stamp_ns: int, item: B) -> tuple[A, B] | None:
        return self._add(stamp_ns, item, self._b, self._a, first=False)

    def _add(self, stamp: int, item: Any, mine: collections.OrderedDict,
             other: collections.OrderedDict, first: bool) -> tuple[Any, Any] | None:
        partner = other.pop(stamp, None)
        if partner is None:
            if stamp in mine:
                self.dropped += 1  # a repeated stamp replaces the waiting item
            mine[stamp] = item
            while len(mine) > self.capacity:
                mine.popitem(last=False)
                self.dropped += 1
            return None
        # everything older than a matched stamp can never match any more
        for buffer in (mine, other):
            for old in [s for s in buffer if s < stamp]:
                del buffer[old]
                self.dropped += 1
        self.matched += 1
        return (item, partner) if first else (partner, item)

    def reset(self) -> None:
        self._a.clear()
        self._b.clear()
