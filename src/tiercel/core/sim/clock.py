"""Virtual time: a queue of future events, and a clock that jumps from one instant to the next."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Generic, TypeVar

E = TypeVar("E")


class EventQueue(Generic[E]):
    """Events by time; at one instant, by rank, then in the order they were scheduled.

    The rank lets the driver settle what ends at an instant before what arrives at it, as a
    manager hears a worker's result before it looks at the queue again. The counter keeps
    the order of equal events fixed, so a replay does not depend on how events compare.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, E]] = []
        self._count = 0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, when: float, event: E, rank: int = 0) -> None:
        heapq.heappush(self._heap, (when, rank, self._count, event))
        self._count += 1

    def next_time(self) -> float:
        return self._heap[0][0]

    def due(self, now: float) -> Iterator[E]:
        """Every event at ``now`` or before, in order, including those scheduled meanwhile for ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            yield heapq.heappop(heap)[3]
