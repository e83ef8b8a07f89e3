"""What a subscription takes in (a part of its class, :class:`SubscriptionIntake`): fetching
from the log into the inbox, the faulty transport between them, and a partition's view of the
log (its own streams' events; the other partitions' positions counted as dealt with).

The delivery policy decides what a fetched delivery becomes (``policy.take``); the watermark
of a partition moves past the others' positions without recording them one by one, and never
past an undelivered event of its own (:meth:`SubscriptionIntake._skip_foreign`).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from cqrs_lab.core.clock import Clock
from cqrs_lab.core.delivery import DeliveryPolicy
from cqrs_lab.core.faults import CrashHook, FaultPlan, FaultyTransport, check_plan
from cqrs_lab.core.messages import Envelope
from cqrs_lab.core.partitions import partition_of
from cqrs_lab.core.readmodel import Progress
from cqrs_lab.core.recorders import SubscriptionRecorder
from cqrs_lab.core.store import EventStore

if TYPE_CHECKING:
    from cqrs_lab.core.subscription import Subscription

__all__ = ["SubscriptionIntake"]

_ReadPartition = Callable[[int, int, int, int], tuple[list[Envelope], int]]


class SubscriptionIntake:
    """The intake of a :class:`~cqrs_lab.core.subscription.Subscription` (which sets the
    attributes below in its ``__init__``)."""

    name: str
    store: EventStore
    policy: DeliveryPolicy
    clock: Clock
    rng: random.Random
    batch_size: int
    recorder: SubscriptionRecorder | None
    partition: tuple[int, int] | None
    _owner: dict[str, bool]  # stream id -> belongs to this partition
    _read_partition: _ReadPartition | None
    inbox: deque[Envelope]
    inbox_mixed: bool
    fetched: int
    record: Progress
    crashed: bool
    delivered: int
    duplicates_skipped: int
    faults: FaultPlan | None
    transport: FaultyTransport | None
    transport_faults_seen: bool
    crash_hook: CrashHook | None

    @property
    def _sub(self) -> Subscription:
        return cast("Subscription", self)

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Switch transport faults and crash points on (a plan) or off (None) at run time."""
        check_plan(plan, "set_faults")
        plan = plan.for_subscription(self.name) if plan is not None else None
        self.faults = plan
        old = getattr(self, "transport", None)
        self.transport = (
            FaultyTransport(plan, self.rng) if plan is not None and plan.transport_faults else None
        )
        self.transport_faults_seen |= self.transport is not None
        if old is not None:  # what the old transport held is delivered late, not lost
            held = old.release(float("inf"))
            if held:
                self._take(held, self.clock.now(), mixed=True)
            if not self.inbox:
                self.inbox_mixed = self.transport is not None
            if self.partition is not None:
                self._skip_foreign()  # nothing is held back any more
        self.crash_hook = (
            CrashHook(plan, self.rng, self.name) if plan is not None and plan.crash_faults else None
        )

    def poll(self) -> int:
        """Fetch from the log (and release held deliveries) into the inbox.

        Returns how many envelopes moved (read from the log or released by the transport).
        """
        if self.crashed:
            return 0
        now = self.clock.now()
        transport = self.transport
        got: list[Envelope] = transport.release(now) if transport else []
        moved = len(got)
        room = self.batch_size - len(self.inbox)
        if room > 0 and self.fetched < self.store.head_position:
            if self._read_partition is not None:  # the store indexes partitions: read ours
                index, count = self.partition  # type: ignore[misc]
                batch, through = self._read_partition(index, count, self.fetched, room)
                moved += through - self.fetched
                self.fetched = through
            else:
                batch = self.store.read_all(self.fetched, room)
                if batch:
                    moved += len(batch)
                    last = batch[-1].position
                    if last - self.fetched != len(batch):  # holes (see EventStore.read_all)
                        self._holes(batch)
                    self.fetched = last
                    if self.partition is not None:
                        batch = self._mine(batch)
            if batch:
                got.extend(transport.send(batch, now) if transport else batch)
        if got:
            self._take(got, now, mixed=transport is not None)
        if self.partition is not None and moved:
            self._skip_foreign()
        return moved

    def _holes(self, batch: list[Envelope]) -> None:
        """The positions a read skipped between ``fetched`` and its last event are holes left
        by appends that rolled back after taking them (a shared store's sequence never fills
        them): none will ever exist, so they count as dealt with and the position moves on."""
        got = {env.position for env in batch}
        missing = [p for p in range(self.fetched + 1, batch[-1].position) if p not in got]
        if missing:
            self.policy.passed(self._sub, missing)

    def _take(self, got: list[Envelope], now: float, *, mixed: bool) -> None:
        rec = self.recorder
        if rec is not None:
            delivered, name = rec.delivered, self.name  # looked up once per batch
            for env in got:
                delivered(name, env, now)
        self.delivered += len(got)
        if mixed:
            self.inbox_mixed = True
        self.policy.take(self._sub, got, now)

    def skip_duplicate(self, env: Envelope, now: float) -> None:
        """A delivery of a position already dealt with is recognised and skipped."""
        self.duplicates_skipped += 1
        if self.recorder is not None:
            self.recorder.skipped(self.name, env, now, "duplicate")

    def _mine(self, batch: list[Envelope]) -> list[Envelope]:
        """This partition's events (the others' are counted as done by ``_skip_foreign``)."""
        index, count = self.partition  # type: ignore[misc]
        owner = self._owner
        try:
            return [env for env in batch if owner[env.stream_id]]
        except KeyError:  # streams seen for the first time: place them, then filter
            for sid in {env.stream_id for env in batch}.difference(owner):
                owner[sid] = partition_of(sid, count) == index
            return [env for env in batch if owner[env.stream_id]]

    def _skip_foreign(self) -> None:
        """Partitioned: every position below the lowest own event not yet dealt with is done.

        Own events fetched are either dealt with (in the record) or pending (in the inbox, in
        any order once a transport was involved, or held by the transport); other partitions'
        positions are never ours. So the watermark may move up to just below the lowest
        pending own event, or to what was fetched, in one step, without recording the other
        partitions' positions one by one. It never passes an undelivered event.
        """
        if self.crashed:
            return
        ceiling = self.fetched
        if self.transport is not None:
            held = self.transport.lowest_position()
            if held is not None:
                ceiling = min(ceiling, held - 1)
        taken_ceiling = ceiling  # (at-most-once: the inbox is taken, not yet dealt with)
        inbox = self.inbox
        if inbox:
            first = min(e.position for e in inbox) if self.inbox_mixed else inbox[0].position
            ceiling = min(ceiling, first - 1)
        self.record.raise_to(ceiling)
        self.policy.taken_through(self._sub, taken_ceiling)
