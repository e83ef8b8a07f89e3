"""Delivery semantics as strategy objects, and retries with backoff and seeded jitter.

Every subscription keeps a *record* of the global positions it has dealt with
(:class:`~cqrs_lab.core.readmodel.Progress`). The three semantics differ only in when the
record is written relative to the handler, where it lives and whether it deduplicates:

============== ======================= ============================ =========== =============
semantics      record written           record lives                 dedup       on a crash
============== ======================= ============================ =========== =============
at-most-once   before the handler runs  checkpoint store, durable    yes         in-flight lost
at-least-once  after, committed every   checkpoint store, durable    no          redelivered
               ``checkpoint_every``     at each commit                           (applied again)
effectively-   with the handler's       the read model, in the same  yes         effects of the
once           effects, one unit        unit as the effects                      unit undone
============== ======================= ============================ =========== =============
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar, Protocol

from cqrs_lab.errors import ConfigError

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
    #: skip a delivery whose position is already in the record
    dedup: ClassVar[bool]
    #: write the record (durably) before the handler runs
    mark_before: ClassVar[bool]
    #: the record lives in the read model and commits with the handler's effects
    transactional: ClassVar[bool]


class AtMostOnce:
    """Checkpoint before handling: a crash loses what was in flight, nothing runs twice."""

    name: ClassVar[str] = "at-most-once"
    dedup: ClassVar[bool] = True
    mark_before: ClassVar[bool] = True
    transactional: ClassVar[bool] = False

    def __repr__(self) -> str:
        return "AtMostOnce()"


class AtLeastOnce:
    """Handle, then checkpoint: nothing is lost; a redelivered event is handled again.

    A projection that is not idempotent double-counts what a crash or the transport
    redelivers; that is the trade-off this semantics makes visible.
    """

    name: ClassVar[str] = "at-least-once"
    dedup: ClassVar[bool] = False
    mark_before: ClassVar[bool] = False
    transactional: ClassVar[bool] = False

    def __repr__(self) -> str:
        return "AtLeastOnce()"


class EffectivelyOnce:
    """Effects and the processed-position record commit as one unit on the read side.

    A redelivery is recognised from the record and skipped; a crash undoes the effects of
    the uncommitted unit together with its record, so the redelivery applies them once.
    """

    name: ClassVar[str] = "effectively-once"
    dedup: ClassVar[bool] = True
    mark_before: ClassVar[bool] = False
    transactional: ClassVar[bool] = True

    def __repr__(self) -> str:
        return "EffectivelyOnce()"


_POLICIES: dict[str, type] = {p.name: p for p in (AtMostOnce, AtLeastOnce, EffectivelyOnce)}


def policy_named(name: str) -> DeliveryPolicy:
    """``"at-most-once"``, ``"at-least-once"`` or ``"effectively-once"`` (also with ``_``)."""
    key = name.strip().lower().replace("_", "-")
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
        if self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy(max_attempts={self.max_attempts}): pass >= 1")
        if self.base < 0 or self.factor < 1 or self.max_delay < 0:
            raise ConfigError("RetryPolicy: base >= 0, factor >= 1 and max_delay >= 0")
        if self.jitter not in ("full", "equal", "none"):
            raise ConfigError(f"RetryPolicy(jitter={self.jitter!r}): 'full', 'equal' or 'none'")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempt``-th failure (1-based)."""
        backoff = min(self.max_delay, self.base * self.factor ** (attempt - 1))
        if self.jitter == "full":
            return rng.uniform(0.0, backoff)
        if self.jitter == "equal":
            return backoff / 2 + rng.uniform(0.0, backoff / 2)
        return backoff
