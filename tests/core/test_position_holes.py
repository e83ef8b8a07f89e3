"""Holes in positions (an append rolled back after taking them) do not stall a subscription.

A shared store (PostgreSQL) takes positions from a sequence; a transaction that rolls back
after taking some leaves a hole the sequence never fills. Every delivery semantics, with and
without partitions, moves its position past the hole to the head; each event is applied once.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from cqrs_lab.core import Envelope, EventRegistry, ManualClock, SequentialIds
from cqrs_lab.core.delivery import policy_named
from cqrs_lab.core.partitions import partition_of
from cqrs_lab.core.store import InMemoryEventStore
from cqrs_lab.core.subscription import Subscription
from tests.core.helpers import Tally, Ticked

SEMANTICS = ("at-most-once", "at-least-once", "effectively-once")


class HoleyStore:
    """A log whose positions have holes: :meth:`burn` skips positions as a rolled-back append
    on a shared store does (the subscription needs only ``read_all`` and ``head_position``)."""

    def __init__(self) -> None:
        self.registry = EventRegistry()
        self.registry.register(Ticked)
        self.inner = InMemoryEventStore(ManualClock(), SequentialIds(), self.registry)
        self.log: list[Envelope] = []
        self.next = 1

    def burn(self, n: int) -> None:
        self.next += n

    def append(self, stream: str, n: int) -> None:
        env = self.inner.append(stream, [Ticked(n)], self.inner.stream_version(stream))[0]
        self.log.append(env._replace(position=self.next))
        self.next += 1

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Envelope]:
        out = [e for e in self.log if e.position > after]
        return out if limit is None else out[:limit]

    @property
    def head_position(self) -> int:
        return self.log[-1].position if self.log else 0


def _subscription(store: HoleyStore, semantics: str, **options: Any) -> tuple[Subscription, Tally]:
    tally = Tally()
    sub = Subscription(
        "tally", store, tally, policy_named(semantics),  # type: ignore[arg-type]
        clock=ManualClock(), rng=random.Random(0), batch_size=3, **options,
    )  # fmt: skip
    return sub, tally


@pytest.mark.parametrize("partition", [None, (0, 1), (1, 2)])
@pytest.mark.parametrize("semantics", SEMANTICS)
def test_every_semantics_moves_past_holes_to_the_head(
    semantics: str, partition: tuple[int, int] | None
) -> None:
    store = HoleyStore()
    for i in range(4):
        store.append(("s0", "a1", "s2")[i % 3], i)
    store.burn(2)  # a batch rolled back after taking two positions
    store.append("s0", 4)
    sub, tally = _subscription(store, semantics, partition=partition)
    sub.pump()
    assert sub.position == store.head_position == 7
    store.burn(3)  # a hole at the head, then later appends
    for i in range(5, 9):
        store.append(("s0", "a1", "s2")[i % 3], i)
    sub.pump()
    assert sub.position == store.head_position == 14
    if partition is None:  # (a partition commits when it applies one of its own events)
        assert sub.checkpoint == 14
    expected = [
        e.position for e in store.log
        if partition is None or partition_of(e.stream_id, partition[1]) == partition[0]
    ]  # fmt: skip
    assert expected  # the partition owns some events
    assert sorted(tally.count.to_dict()) == expected
    assert set(tally.count.to_dict().values()) == {1}  # each applied once


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_crash_below_a_hole_resumes_and_passes_it(semantics: str) -> None:
    store = HoleyStore()
    store.append("s0", 0)
    store.burn(1)
    store.append("s1", 1)
    sub, tally = _subscription(store, semantics)
    sub.poll()  # fetched past the hole, nothing applied yet
    sub.crash()
    sub.restart()
    sub.pump()
    assert sub.position == store.head_position == 3
    if semantics != "at-most-once":  # at-most-once declared the in-flight events lost
        assert sorted(tally.count.to_dict()) == [1, 3]
