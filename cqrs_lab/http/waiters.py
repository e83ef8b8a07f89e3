"""Readers waiting for a projection to reach a position (read-your-writes with ``wait``).

Each waiter is a future in a heap per projection, ordered by the position it waits for;
after each pump tick :meth:`PositionWaiters.wake` resolves exactly those whose position the
projection has reached. Waking every waiter on every tick instead (one shared future) costs
each of them a task and a timer per tick: under overload, with the projection behind and
thousands of readers parked, that alone ate the server's CPU and its throughput collapsed.

A waiter that gave up (its budget ran out) stays in its heap until its position is reached
or the heap is purged: once more than half of a heap of 64 or more is given up, it is
rebuilt from the live ones, so a stuck projection holds at most twice its live waiters.

>>> import asyncio
>>> async def demo() -> list[bool]:
...     w = PositionWaiters()
...     loop = asyncio.get_running_loop()
...     a, b = loop.create_future(), loop.create_future()
...     w.add("balances", 5, a); w.add("balances", 9, b)
...     w.wake({"balances": 7}.__getitem__)
...     return [a.done(), b.done()]
>>> asyncio.run(demo())
[True, False]
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

__all__ = ["PositionWaiters"]

#: heaps at least this large are purged of given-up waiters when they outnumber the live
PURGE_AT = 64


class PositionWaiters:
    """Futures waiting for positions, per projection (module docstring)."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[tuple[int, int, asyncio.Future[None]]]] = {}
        self._seq = itertools.count()

    def add(self, projection: str, position: int, fut: asyncio.Future[None]) -> None:
        """``fut`` is resolved once ``projection`` has reached ``position``."""
        heap = self._heaps.setdefault(projection, [])
        heapq.heappush(heap, (position, next(self._seq), fut))
        if len(heap) >= PURGE_AT and len(heap) % PURGE_AT == 0:
            live = [x for x in heap if not x[2].done()]
            if len(live) * 2 < len(heap):
                heapq.heapify(live)
                self._heaps[projection] = live

    def wake(self, position_of: Callable[[str], int]) -> None:
        """Resolve every waiter whose projection has reached its position."""
        for name, heap in self._heaps.items():
            if not heap:
                continue
            reached = position_of(name)
            while heap and heap[0][0] <= reached:
                fut = heapq.heappop(heap)[2]
                if not fut.done():
                    fut.set_result(None)

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values())
