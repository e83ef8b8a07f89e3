"""Seeded faults between the store and a subscriber, and named crash points.

The transport models a *pull-based* subscription (a catch-up reader over the log, as in
Kafka consumers or EventStoreDB catch-up subscriptions): a dropped delivery is not lost for
good, the reader gets it again after ``redelivery_timeout`` (an ack timeout). Pull is what
CQRS read sides use when the log is the source of truth, and it is the only model in which
"at-least-once" can promise no loss; a push transport that drops loses events under every
semantics, which teaches nothing about the semantics.

With no plan (``FaultPlan()``) the subscription uses no transport object at all: a perfect
transport costs nothing.
"""

from __future__ import annotations

import enum
import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from cqrs_lab.core.arguments import check_real, check_whole, is_real
from cqrs_lab.core.messages import Envelope
from cqrs_lab.errors import ConfigError, ConsumerCrashed

__all__ = [
    "CrashAt",
    "CrashPoint",
    "DelayAt",
    "DropAt",
    "DuplicateAt",
    "FaultPlan",
    "FaultyTransport",
    "ReorderAt",
    "check_plan",
]


class CrashPoint(enum.Enum):
    """Where in the handling of one event a consumer can be made to crash."""

    BEFORE_HANDLE = "before handling"
    AFTER_HANDLE = "after handling, before the checkpoint"
    AFTER_CHECKPOINT = "after the checkpoint"


class _Checked:
    """A scripted fault checks its position and subscription when made, and what its own
    kind adds (:meth:`_check_own`)."""

    __slots__ = ()

    def __post_init__(self) -> None:
        a, w = cast(Action, self), type(self).__name__
        check_whole(a.position, "position", "a log position, a whole number >= 1", where=w, low=1)
        if a.subscription is not None and not isinstance(a.subscription, str):
            raise ConfigError(f"{w}(subscription={a.subscription!r}): pass a name, or None (any)")
        self._check_own()

    def _check_own(self) -> None:
        """The fields of this kind of fault beyond position and subscription (none)."""


@dataclass(frozen=True, slots=True)
class CrashAt(_Checked):
    """Crash ``subscription`` (any, if None) at ``point`` for the event at ``position``."""

    position: int
    point: CrashPoint = CrashPoint.AFTER_HANDLE
    subscription: str | None = None

    def _check_own(self) -> None:
        if not isinstance(self.point, CrashPoint):
            raise ConfigError(
                f"CrashAt(point={self.point!r}): pass a CrashPoint, e.g. AFTER_HANDLE"
            )

    def __str__(self) -> str:
        who = f"consumer {self.subscription}" if self.subscription else "the consumer"
        return f"crash {who} {self.point.value} event {self.position}"


@dataclass(frozen=True, slots=True)
class DropAt(_Checked):
    position: int
    subscription: str | None = None

    def __str__(self) -> str:
        return f"drop event {self.position}"


@dataclass(frozen=True, slots=True)
class DuplicateAt(_Checked):
    position: int
    subscription: str | None = None

    def __str__(self) -> str:
        return f"duplicate event {self.position}"


@dataclass(frozen=True, slots=True)
class DelayAt(_Checked):
    position: int
    seconds: float
    subscription: str | None = None

    def _check_own(self) -> None:
        check_real(self.seconds, "seconds", "a finite number >= 0", where="DelayAt")

    def __str__(self) -> str:
        return f"delay event {self.position} by {self.seconds:g} s"


@dataclass(frozen=True, slots=True)
class ReorderAt(_Checked):
    """Deliver the event at ``position`` after the next ``by`` events of its batch."""

    position: int
    by: int = 1
    subscription: str | None = None

    def _check_own(self) -> None:
        check_whole(self.by, "by", "a whole number >= 1", where="ReorderAt", low=1)

    def __str__(self) -> str:
        return f"deliver event {self.position} {self.by} later"


Action = CrashAt | DropAt | DuplicateAt | DelayAt | ReorderAt


def _listed(value: object) -> tuple[object, ...]:
    """A sequence (a tuple, a list...; never a str) as a tuple; anything else as
    ``(None,)``, which fails every check."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return tuple(value)
    return (None,)


@dataclass(frozen=True)
class FaultPlan:
    """Scripted fault ``actions`` plus per-event probabilities, all drawn from a seeded rng.

    >>> str(FaultPlan(actions=(CrashAt(7), DuplicateAt(9))))
    'crash the consumer after handling, before the checkpoint event 7; duplicate event 9'
    """

    actions: tuple[Action, ...] = ()
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_window: int = 4
    delay: float = 0.0
    delay_seconds: tuple[float, float] = (0.01, 0.1)
    redelivery_timeout: float = 1.0
    crash: float = 0.0  # probability per event of a crash at a random named point
    crash_points: tuple[CrashPoint, ...] = field(default=tuple(CrashPoint))

    def __post_init__(self) -> None:
        w, odds = "FaultPlan", "a probability, a number from 0 to 1"
        for name in ("drop", "duplicate", "reorder", "delay", "crash"):
            check_real(getattr(self, name), name, odds, where=w, high=1.0)
        check_whole(self.reorder_window, "reorder_window", "a whole number >= 1", where=w, low=1)
        check_real(self.redelivery_timeout, "redelivery_timeout", "finite seconds >= 0", where=w)
        span, actions, points = self.delay_seconds, self.actions, self.crash_points
        ends = _listed(span)  # a delay is drawn between the two, in either order
        if len(ends) != 2 or not all(is_real(x) for x in ends):
            raise ConfigError(f"FaultPlan(delay_seconds={span!r}): pass two finite seconds "
                              ">= 0, the least and the most a delay lasts")  # fmt: skip
        if not all(isinstance(a, Action) for a in _listed(actions)):
            raise ConfigError(f"FaultPlan(actions={actions!r}): pass a tuple of CrashAt, DropAt, "
                              "DuplicateAt, DelayAt or ReorderAt")  # fmt: skip
        named = all(isinstance(p, CrashPoint) for p in _listed(points))
        if not named or (self.crash and not points):
            raise ConfigError(f"FaultPlan(crash_points={points!r}): pass CrashPoint members, at "
                              "least one when crash > 0")  # fmt: skip
        # a list (or another sequence) is taken as the tuple declared: the plan stays frozen
        for name, given in (
            ("actions", actions),
            ("delay_seconds", span),
            ("crash_points", points),
        ):
            if type(given) is not tuple:
                object.__setattr__(self, name, _listed(given))

    @property
    def transport_faults(self) -> bool:
        return bool(
            self.drop or self.duplicate or self.reorder or self.delay
            or any(not isinstance(a, CrashAt) for a in self.actions)
        )  # fmt: skip

    @property
    def crash_faults(self) -> bool:
        return bool(self.crash or any(isinstance(a, CrashAt) for a in self.actions))

    @property
    def empty(self) -> bool:
        return not (self.transport_faults or self.crash_faults)

    def __str__(self) -> str:
        parts = [str(a) for a in self.actions]
        for name in ("drop", "duplicate", "reorder", "delay", "crash"):
            if getattr(self, name):
                parts.append(f"{name} p={getattr(self, name):g}")
        return "; ".join(parts) if parts else "no faults"

    def for_subscription(self, name: str) -> FaultPlan:
        kept = tuple(a for a in self.actions if a.subscription in (None, name))
        return FaultPlan(
            kept, self.drop, self.duplicate, self.reorder, self.reorder_window, self.delay,
            self.delay_seconds, self.redelivery_timeout, self.crash, self.crash_points,
        )  # fmt: skip


def check_plan(plan: object, where: str = "") -> None:
    """Refuse what is not a :class:`FaultPlan` or None, naming it (``where``: the call)."""
    if plan is not None and not isinstance(plan, FaultPlan):
        said = f"{where}({plan!r})" if where else f"faults={plan!r}"
        raise ConfigError(f"{said}: pass a FaultPlan, or None (no faults)")


class FaultyTransport:
    """Applies a plan's transport faults to fetched batches; holds what is late."""

    def __init__(self, plan: FaultPlan, rng: random.Random) -> None:
        self.plan = plan
        self.rng = rng
        self._held: list[tuple[float, int, Envelope]] = []
        self._seq = 0
        self._script: dict[int, list[Action]] = {}
        for a in plan.actions:
            if not isinstance(a, CrashAt):
                self._script.setdefault(a.position, []).append(a)
        self.dropped = self.duplicated = self.reordered = self.delayed = 0

    def _hold(self, until: float, env: Envelope) -> None:
        self._seq += 1
        heapq.heappush(self._held, (until, self._seq, env))

    def send(self, batch: list[Envelope], now: float) -> list[Envelope]:
        """Envelopes deliverable now, in delivery order; the rest are held."""
        plan, rng, script = self.plan, self.rng, self._script
        out: list[Envelope] = []
        extra: list[Envelope] = []
        late: list[tuple[int, Envelope]] = []  # (deliver after this many more, env)
        for env in batch:
            actions = script.pop(env.position, ()) if script else ()
            dropped = plan.drop and rng.random() < plan.drop
            dup = plan.duplicate and rng.random() < plan.duplicate
            delayed = plan.delay and rng.random() < plan.delay
            moved = plan.reorder and rng.random() < plan.reorder
            shift = rng.randint(1, plan.reorder_window) if moved else 0
            delay = rng.uniform(*plan.delay_seconds) if delayed else 0.0
            for a in actions:
                if isinstance(a, DropAt):
                    dropped = True
                elif isinstance(a, DuplicateAt):
                    dup = True
                elif isinstance(a, DelayAt):
                    delayed, delay = True, a.seconds
                elif isinstance(a, ReorderAt):
                    moved, shift = True, a.by
            if dropped:
                self.dropped += 1
                self._hold(now + plan.redelivery_timeout, env)
                continue
            if delayed:
                self.delayed += 1
                self._hold(now + delay, env)
            elif moved:
                self.reordered += 1
                late.append((shift, env))
            else:
                out.append(env)
                late = _release_late(late, out)
            if dup:
                self.duplicated += 1
                extra.append(env)
        out.extend(e for _, e in late)
        out.extend(extra)
        return out

    def release(self, now: float) -> list[Envelope]:
        held = self._held
        out = []
        while held and held[0][0] <= now:
            out.append(heapq.heappop(held)[2])
        return out

    def next_due(self) -> float | None:
        return self._held[0][0] if self._held else None

    def lowest_position(self) -> int | None:
        """The lowest global position held back (None: nothing held)."""
        return min((env.position for _, _, env in self._held), default=None)

    def in_flight(self) -> int:
        return len(self._held)

    def clear(self) -> int:
        n = len(self._held)
        self._held.clear()
        return n


def _release_late(
    late: list[tuple[int, Envelope]], out: list[Envelope]
) -> list[tuple[int, Envelope]]:
    if not late:
        return late
    keep = []
    for n, env in late:
        if n <= 1:
            out.append(env)
        else:
            keep.append((n - 1, env))
    return keep


class CrashHook:
    """Raises :class:`ConsumerCrashed` at the planned points (scripted ones fire once)."""

    def __init__(self, plan: FaultPlan, rng: random.Random, subscription: str) -> None:
        self.rng = rng
        self.rate = plan.crash
        self.points = plan.crash_points
        self.subscription = subscription
        self._script = {(a.position, a.point) for a in plan.actions if isinstance(a, CrashAt)}

    def check(self, point: CrashPoint, position: int) -> None:
        key = (position, point)
        if key in self._script:
            self._script.discard(key)
            raise ConsumerCrashed(self.subscription, point.value, position)
        if self.rate and point in self.points and self.rng.random() < self.rate / len(self.points):
            raise ConsumerCrashed(self.subscription, point.value, position)

    def pending_after_checkpoint(self) -> list[int]:
        return sorted(p for p, pt in self._script if pt is CrashPoint.AFTER_CHECKPOINT)
