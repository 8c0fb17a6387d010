"""Pairing two streams by exact stamp (what message_filters' ExactTime policy does).

A node that needs an image *and* the detections found in it receives them separately; both
carry the image's stamp, so they are paired by equal ``stamp_ns``. Items wait in a small buffer
per side; an item older than a matched pair can no longer match and is dropped and counted (per
side), or handed to ``on_drop`` for a consumer that still wants it without its partner.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import ConfigError

__all__ = ['ExactTimeMatcher']

A = TypeVar('A')
B = TypeVar('B')


class ExactTimeMatcher(Generic[A, B]):
    """Pairs items of stream A and stream B that carry the same stamp.

    Args:
        capacity: items kept per side while waiting for their partner.
        on_drop_b: called as ``on_drop_b(stamp_ns, item)`` for every B item that can no
            longer be paired (pushed out of a full buffer, older than a matched pair, or
            replaced by an item with the same stamp), oldest first and before the pair that
            made it unmatchable is returned. It is still counted in ``dropped_b``.

    Attributes:
        matched: pairs returned.
        dropped_a, dropped_b: items of each side that found no partner.
    """

    def __init__(self, capacity: int = 10,
                 on_drop_b: Callable[[int, B], None] | None = None) -> None:
        if capacity < 1:
            raise ConfigError(f'capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._a: collections.OrderedDict[int, A] = collections.OrderedDict()
        self._b: collections.OrderedDict[int, B] = collections.OrderedDict()
        self._on_drop_b = on_drop_b
        self.matched = 0
        self.dropped_a = 0
        self.dropped_b = 0

    @property
    def dropped(self) -> int:
        """Items of both sides that found no partner."""
        return self.dropped_a + self.dropped_b

    @property
    def waiting(self) -> int:
        """Items buffered on both sides."""
        return len(self._a) + len(self._b)

    def add_a(self, stamp_ns: int, item: A) -> tuple[A, B] | None:
        return self._add(stamp_ns, item, self._a, self._b, first=True)

    def add_b(self, stamp_ns: int, item: B) -> tuple[A, B] | None:
        return self._add(stamp_ns, item, self._b, self._a, first=False)

    def _drop(self, buffer: collections.OrderedDict, stamp: int) -> None:
        item = buffer.pop(stamp)
        if buffer is self._a:
            self.dropped_a += 1
            return
        self.dropped_b += 1
        if self._on_drop_b is not None:
            self._on_drop_b(stamp, item)

    def _add(self, stamp: int, item: Any, mine: collections.OrderedDict,
             other: collections.OrderedDict, first: bool) -> tuple[Any, Any] | None:
        partner = other.pop(stamp, None)
        if partner is None:
            if stamp in mine:
                self._drop(mine, stamp)  # a repeated stamp replaces the waiting item
            mine[stamp] = item
            while len(mine) > self.capacity:
                self._drop(mine, next(iter(mine)))
            return None
        # everything older than a matched stamp can never match any more
        for buffer in (mine, other):
            for old in [s for s in buffer if s < stamp]:
                self._drop(buffer, old)
        self.matched += 1
        return (item, partner) if first else (partner, item)

    def take_b(self) -> list[tuple[int, B]]:
        """Remove and return the B items still waiting (oldest first), e.g. at the end of a
        stream; they are not counted as dropped."""
        items = list(self._b.items())
        self._b.clear()
        return items

    def reset(self) -> None:
        self._a.clear()
        self._b.clear()
