"""Delivery semantics as strategy objects, and retries with backoff and seeded jitter.

A subscription keeps a *record* of the global positions it has dealt with (applied, ignored,
parked, or declared lost: :attr:`Subscription.position`) and a *durable* record, the last one
committed to a :mod:`tracking store <cqrs_lab.core.tracking>` (:attr:`Subscription.checkpoint`,
where it resumes after a crash). The loop that polls, handles, retries and parks is shared;
each semantics is a strategy that owns the steps where they differ: what a delivery does on
arrival (:meth:`take`), where and when the record commits (:meth:`commit`), how a duplicate
is recognised (:meth:`duplicate_filter`), and what a crash costs (:meth:`crash`).

============== ======================= ============================ =========== =============
semantics      record committed         to                           duplicates  on a crash
============== ======================= ============================ =========== =============
at-most-once   taken, before handling   the engine's checkpoints     skipped     in-flight
                                                                     on arrival  declared lost
at-least-once  applied, after handling  the engine's checkpoints     applied     redelivered
               (``checkpoint_every``)                                again       (applied again)
effectively-   applied, with the        the read model's own store,  skipped     the unit's
once           handler's effects        in the same unit                         effects undone
============== ======================= ============================ =========== =============

Under every semantics a position counts as dealt with only once it was applied (or ignored,
parked, or declared lost), never merely because it was fetched: a read marked fresh at a
position reflects every event up to it, or says how many were lost.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from cqrs_lab.core.arguments import check_real, check_whole
from cqrs_lab.core.messages import Envelope, RawEvent
from cqrs_lab.core.readmodel import rollback
from cqrs_lab.core.tracking import TrackingStore
from cqrs_lab.errors import ConfigError

if TYPE_CHECKING:
    from cqrs_lab.core.subscription import Subscription

__all__ = [
    "AtLeastOnce",
    "AtMostOnce",
    "DeliveryPolicy",
    "EffectivelyOnce",
    "RetryPolicy",
    "policy_named",
]


class DeliveryPolicy(Protocol):
    """What a subscription asks of its delivery semantics."""

    name: ClassVar[str]
    #: every event is eventually applied (or parked as a dead letter)
    promises_no_loss: ClassVar[bool]
    #: no event's effects are applied twice
    promises_single_effect: ClassVar[bool]

    def tracking(self, sub: Subscription) -> tuple[TrackingStore, str]:
        """Where ``sub``'s committed record lives, and under which key."""
        ...

    def take(self, sub: Subscription, got: list[Envelope], now: float) -> None:
        """Deliveries arrive: put what must be handled into ``sub.inbox``."""
        ...

    def taken_through(self, sub: Subscription, position: int) -> None:
        """Partitioned: every own event up to ``position`` was taken (the rest are others')."""
        ...

    def passed(self, sub: Subscription, positions: list[int]) -> None:
        """Positions the log will never hold (holes a rolled-back append left): dealt with."""
        ...

    def duplicate_filter(self, sub: Subscription) -> Callable[[int], bool] | None:
        """For one batch: a test that a position was dealt with already (None: no test)."""
        ...

    def applied_hook(self, sub: Subscription) -> Callable[[int], None] | None:
        """For one batch: called with each applied position (None: nothing to note)."""
        ...

    def end_of_batch(self, sub: Subscription) -> None:
        """After one processing call: commit if this semantics commits here."""
        ...

    def commit(self, sub: Subscription) -> None:
        """Make ``sub.record`` durable where this semantics keeps it (if it does here)."""
        ...

    def crash(self, sub: Subscription, in_flight: list[Envelope]) -> list[Envelope]:
        """The consumer died: reload what survived; returns the events lost for good."""
        ...


def _commit_record(sub: Subscription) -> None:
    """The record of what was applied becomes the durable one."""
    durable = sub.durable = sub.record.copy()
    store, key = sub.tracking_location
    store.commit(key, durable)


def _reload(sub: Subscription) -> None:
    store, key = sub.tracking_location
    sub.durable = store.load(key)
    sub.record.restore(sub.durable)


class _Semantics:
    """The defaults the three semantics share; each overrides only where it differs."""

    name: ClassVar[str]
    promises_no_loss: ClassVar[bool]
    promises_single_effect: ClassVar[bool]

    def tracking(self, sub: Subscription) -> tuple[TrackingStore, str]:
        return sub.checkpoints, sub.name  # the engine's checkpoint store

    def take(self, sub: Subscription, got: list[Envelope], now: float) -> None:
        sub.inbox.extend(got)

    def taken_through(self, sub: Subscription, position: int) -> None:
        pass  # the record moves when events are applied

    def passed(self, sub: Subscription, positions: list[int]) -> None:
        record = sub.record  # committed with the next unit; a crash before re-reads them
        for p in positions:
            record.add(p)

    def duplicate_filter(self, sub: Subscription) -> Callable[[int], bool] | None:
        return None

    def applied_hook(self, sub: Subscription) -> Callable[[int], None] | None:
        return None

    def end_of_batch(self, sub: Subscription) -> None:
        if sub.auto_commit and not sub.inbox:
            sub.commit()

    def commit(self, sub: Subscription) -> None:
        _commit_record(sub)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AtMostOnce(_Semantics):
    """Checkpoint before handling: a crash loses what was in flight, nothing runs twice.

    A position taken and never applied is *declared lost* at the crash: it then counts as
    dealt with (the consumer will never apply it), and ``Subscription.lost`` and each read's
    ``lost`` say so. Duplicates are recognised on arrival, by the taken record.
    """

    name: ClassVar[str] = "at-most-once"
    promises_no_loss: ClassVar[bool] = False
    promises_single_effect: ClassVar[bool] = True

    def take(self, sub: Subscription, got: list[Envelope], now: float) -> None:
        taken, inbox = sub.durable, sub.inbox
        for env in got:
            p = env.position
            if p <= taken.watermark or p in taken.above:
                sub.skip_duplicate(env, now)
                continue
            taken.add(p)
            inbox.append(env)
        store, key = sub.tracking_location
        store.commit(key, taken)  # durable before any of them is handled

    def taken_through(self, sub: Subscription, position: int) -> None:
        sub.durable.raise_to(position)

    def passed(self, sub: Subscription, positions: list[int]) -> None:
        super().passed(sub, positions)
        taken = sub.durable  # committed with the next deliveries taken
        for p in positions:
            taken.add(p)

    def commit(self, sub: Subscription) -> None:
        pass  # the taken record was committed on arrival

    def crash(self, sub: Subscription, in_flight: list[Envelope]) -> list[Envelope]:
        store, key = sub.tracking_location
        sub.durable = store.load(key)
        record = sub.record
        for env in in_flight:  # taken, never applied: gone for good
            record.add(env.position)
        handled = sub.consumer.handlers  # an event it would have ignored is no loss to it
        return [e for e in in_flight if type(e.payload) in handled or type(e.payload) is RawEvent]


class AtLeastOnce(_Semantics):
    """Handle, then checkpoint: nothing is lost; a redelivered event is handled again.

    A projection that is not idempotent double-counts what a crash or the transport
    redelivers; that is the trade-off this semantics makes visible.
    """

    name: ClassVar[str] = "at-least-once"
    promises_no_loss: ClassVar[bool] = True
    promises_single_effect: ClassVar[bool] = False

    def applied_hook(self, sub: Subscription) -> Callable[[int], None] | None:
        ledger = sub.ledger  # positions dealt with at least once, to count re-applications
        inbox = sub.inbox
        if not sub.inbox_mixed and not ledger.above and inbox[0].position > ledger.watermark:
            return None  # in log order and all new: nothing is applied again (see end_of_batch)

        def note(p: int) -> None:
            if p <= ledger.watermark or p in ledger.above:
                sub.duplicates_applied += 1
            else:
                ledger.add(p)

        return note

    def end_of_batch(self, sub: Subscription) -> None:
        sub.ledger.raise_to(sub.record.watermark)  # what the batch dealt with, in one step
        super().end_of_batch(sub)

    def crash(self, sub: Subscription, in_flight: list[Envelope]) -> list[Envelope]:
        sub.ledger.raise_to(sub.record.watermark)  # what the cut-short batch dealt with
        _reload(sub)  # what was applied since the checkpoint is delivered again
        return []


class EffectivelyOnce(_Semantics):
    """Effects and the processed-position record commit as one unit on the read side.

    A redelivery is recognised from the record and skipped; a crash undoes the effects of
    the uncommitted unit together with its record, so the redelivery applies them once.
    """

    name: ClassVar[str] = "effectively-once"
    promises_no_loss: ClassVar[bool] = True
    promises_single_effect: ClassVar[bool] = True

    def tracking(self, sub: Subscription) -> tuple[TrackingStore, str]:
        part = sub.partition  # the read model's own store, one record per partition
        return sub.consumer.tracking, "" if part is None else str(part[0])

    def take(self, sub: Subscription, got: list[Envelope], now: float) -> None:
        record, inbox = sub.record, sub.inbox
        if not record.above and got[0].position > record.watermark and not sub.inbox_mixed:
            inbox.extend(got)  # in log order and beyond the record: nothing to recognise
            return
        for env in got:
            p = env.position
            if p <= record.watermark or p in record.above:
                sub.skip_duplicate(env, now)
            else:
                inbox.append(env)

    def duplicate_filter(self, sub: Subscription) -> Callable[[int], bool] | None:
        return sub.record.contains if sub.inbox_mixed else None

    def end_of_batch(self, sub: Subscription) -> None:
        sub.commit()  # the unit is what one processing call did

    def crash(self, sub: Subscription, in_flight: list[Envelope]) -> list[Envelope]:
        rollback(sub.undo)
        if sub.recorder is not None and sub.unit:
            sub.recorder.rolled_back(sub.name, list(sub.unit), sub.clock.now())
        _reload(sub)
        return []


_POLICIES: dict[str, type] = {p.name: p for p in (AtMostOnce, AtLeastOnce, EffectivelyOnce)}


def policy_named(name: str) -> DeliveryPolicy:
    """``"at-most-once"``, ``"at-least-once"`` or ``"effectively-once"`` (also with ``_``)."""
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else ""
    cls = _POLICIES.get(key)
    if cls is None:
        raise ConfigError(f"delivery={name!r}: choose one of {', '.join(_POLICIES)}")
    policy: DeliveryPolicy = cls()
    return policy


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; after ``max_attempts`` failures an event is parked.

    ``jitter``: ``"full"`` (uniform 0..backoff, AWS's recommendation), ``"equal"`` (half
    fixed, half random) or ``"none"``.

    >>> r = RetryPolicy(base=0.1, factor=2.0, jitter="none")
    >>> [r.delay(n, random.Random(0)) for n in (1, 2, 3)]
    [0.1, 0.2, 0.4]
    """

    max_attempts: int = 5
    base: float = 0.1
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: str = "full"

    def __post_init__(self) -> None:
        w, secs = "RetryPolicy", "finite seconds >= 0"
        check_whole(self.max_attempts, "max_attempts", "a whole number >= 1", where=w, low=1)
        check_real(self.base, "base", secs, where=w)
        check_real(self.factor, "factor", "a finite number >= 1", where=w, low=1.0)
        check_real(self.max_delay, "max_delay", secs, where=w)
        if not isinstance(self.jitter, str) or self.jitter not in ("full", "equal", "none"):
            raise ConfigError(f"RetryPolicy(jitter={self.jitter!r}): 'full', 'equal' or 'none'")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempt``-th failure (1-based)."""
        try:
            backoff = min(self.max_delay, self.base * self.factor ** (attempt - 1))
        except OverflowError:  # factor ** attempt past a float's range: the cap applies
            backoff = self.max_delay
        if self.jitter == "full":
            return rng.uniform(0.0, backoff)
        if self.jitter == "equal":
            return backoff / 2 + rng.uniform(0.0, backoff / 2)
        return backoff
