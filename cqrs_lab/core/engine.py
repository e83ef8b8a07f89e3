"""The one wiring function: an :class:`Engine` takes every dependency and builds nothing global.

>>> from cqrs_lab.core import Engine, ManualClock
>>> engine = Engine(clock=ManualClock(), seed=7)
>>> engine.store.head_position
0
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from cqrs_lab.core.aggregate import Repository
from cqrs_lab.core.arguments import check_bool, check_whole
from cqrs_lab.core.bus import CommandBus, CommandResult, Handler
from cqrs_lab.core.clock import Clock, ManualClock
from cqrs_lab.core.deadletters import DeadLetterStore
from cqrs_lab.core.delivery import DeliveryPolicy, RetryPolicy, policy_named
from cqrs_lab.core.faults import FaultPlan, check_plan
from cqrs_lab.core.group import SubscriptionGroup
from cqrs_lab.core.ids import IdFactory, SequentialIds
from cqrs_lab.core.messages import Command
from cqrs_lab.core.metrics import Metrics
from cqrs_lab.core.partitions import MAX_PARTITIONS
from cqrs_lab.core.projections import Projection, QueryBus, Saga
from cqrs_lab.core.recorders import SubscriptionRecorder
from cqrs_lab.core.schema import EventRegistry
from cqrs_lab.core.store import EventStore, InMemoryEventStore
from cqrs_lab.core.subscription import Subscription
from cqrs_lab.core.tracking import InMemoryTracking, TrackingStore
from cqrs_lab.errors import ConfigError, ProjectionNotFound

__all__ = ["Engine"]
_PARTITIONS = f"a whole number from 1 to {MAX_PARTITIONS}"

#: the keyword options of :meth:`CommandBus.dispatch`, all strings or None but ``metadata``
_OPTIONS = ("idempotency_key", "correlation_id", "causation_id", "metadata")
_POLICY_METHODS = ("tracking", "take", "commit", "crash")
_INF = float("inf")
_POSITION = "a log position, a whole number >= 0"
_ROUNDS = "a whole number >= 1, the most rounds to run"
#: what a store must answer (methods only: a property such as head_position may query)
_STORE_METHODS = ("append", "read_all", "read_stream", "stream_version")


class Engine:
    """A store, a command bus, a query bus and the subscriptions that feed read models.

    Every source of time, randomness and ids is a parameter; ``seed`` makes the default
    ``random.Random`` when no ``rng`` is given. Two engines built alike and driven alike
    produce identical logs and read models.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        seed: int = 0,
        ids: IdFactory | None = None,
        store: EventStore | None = None,
        registry: EventRegistry | None = None,
        metrics: Metrics | None = None,
        cache_size: int = 10_000,
        recorder: SubscriptionRecorder | None = None,
        checkpoints: TrackingStore | None = None,
    ) -> None:
        seed = check_whole(
            seed, "seed", "a whole number: one seed, one run", where="Engine", low=-_INF
        )
        check_whole(cache_size, "cache_size", "0 (no cache) or a whole number", where="Engine")
        _check_parts(clock, rng, store)
        self.clock: Clock = clock if clock is not None else ManualClock()
        self.rng = rng if rng is not None else random.Random(seed)
        self.ids: IdFactory = ids if ids is not None else SequentialIds()
        self.registry = registry if registry is not None else EventRegistry()
        self.store: EventStore = (
            store if store is not None else InMemoryEventStore(self.clock, self.ids, self.registry)
        )
        self.metrics = metrics if metrics is not None else Metrics()
        self.repository = Repository(self.store, cache_size=cache_size)
        self.bus = CommandBus(
            self.store, self.clock, self.ids, repository=self.repository, metrics=self.metrics
        )
        self.queries = QueryBus()
        self.dead_letters = DeadLetterStore()
        #: where at-most-once and at-least-once subscriptions commit their records
        self.checkpoints: TrackingStore = (
            checkpoints if checkpoints is not None else InMemoryTracking()
        )
        self.recorder = recorder
        self.subscriptions: dict[str, Subscription] = {}
        self.groups: dict[str, SubscriptionGroup] = {}
        #: the domains :func:`cqrs_lab.core.domain.install` wired on this engine
        self.installed: list[Any] = []

    # -- write side ----------------------------------------------------------------------------
    def register(self, command_type: type[Command], handler: Handler) -> None:
        self.bus.register(command_type, handler)

    def dispatch(self, command: Command, **options: Any) -> CommandResult:
        """``CommandBus.dispatch``; options: idempotency_key, correlation_id, causation_id."""
        if options:
            _check_dispatch(options)
        return self.bus.dispatch(command, **options)

    # -- read side -----------------------------------------------------------------------------
    def subscribe(
        self,
        consumer: Projection,
        delivery: DeliveryPolicy | str = "effectively-once",
        *,
        batch_size: int = 256,
        checkpoint_every: int | None = None,
        retry: RetryPolicy | None = None,
        faults: FaultPlan | None = None,
    ) -> Subscription:
        """Feed ``consumer`` (a projection or saga) from the log with ``delivery`` semantics."""
        _check_consumer(consumer, "subscribe")
        policy = _check_subscribe(delivery, batch_size, checkpoint_every, retry, faults)
        name = consumer.name
        if name in self.subscriptions or name in self.groups:
            raise ConfigError(
                f"a subscription named {name!r} exists; give the projection another name"
            )
        if isinstance(consumer, Saga):
            consumer.bind(self.bus.dispatch)
        sub = Subscription(
            name, self.store, consumer, policy,
            clock=self.clock, rng=random.Random(self.rng.getrandbits(64)),
            batch_size=batch_size, checkpoint_every=checkpoint_every, retry=retry,
            dead_letters=self.dead_letters, faults=faults, recorder=self.recorder,
            checkpoints=self.checkpoints,
        )  # fmt: skip
        self.subscriptions[name] = sub
        return sub

    def subscribe_partitioned(
        self,
        consumer: Projection,
        delivery: DeliveryPolicy | str = "effectively-once",
        *,
        partitions: int,
        batch_size: int = 256,
        checkpoint_every: int | None = None,
        retry: RetryPolicy | None = None,
        faults: FaultPlan | None = None,
        auto_commit: bool = True,
    ) -> SubscriptionGroup:
        """Feed ``consumer`` from ``partitions`` subscriptions named ``NAME/p0``, ``NAME/p1``..."""
        _check_consumer(consumer, "subscribe_partitioned")
        partitions = check_whole(partitions, "partitions", _PARTITIONS, low=1)
        if partitions > MAX_PARTITIONS:  # one subscription each: a typo must not take the RAM
            raise ConfigError(f"partitions={partitions}: pass {_PARTITIONS}")
        auto_commit = check_bool(
            auto_commit,
            "auto_commit",
            "True (commit when the inbox empties) or False (the driver commits)",
            where="subscribe_partitioned",
        )
        policy = _check_subscribe(delivery, batch_size, checkpoint_every, retry, faults)
        name = consumer.name
        if name in self.subscriptions or name in self.groups:
            raise ConfigError(
                f"a subscription named {name!r} exists; give the projection another name"
            )
        if isinstance(consumer, Saga):
            consumer.bind(self.bus.dispatch)
        members = []
        for index in range(partitions):
            member = Subscription(
                f"{name}/p{index}", self.store, consumer, policy,
                clock=self.clock, rng=random.Random(self.rng.getrandbits(64)),
                batch_size=batch_size, checkpoint_every=checkpoint_every, retry=retry,
                dead_letters=self.dead_letters, faults=faults, recorder=self.recorder,
                partition=(index, partitions), auto_commit=auto_commit,
                checkpoints=self.checkpoints,
            )  # fmt: skip
            self.subscriptions[member.name] = member
            members.append(member)
        group = self.groups[name] = SubscriptionGroup(name, members)
        return group

    def position_of(self, name: str) -> int:
        """How far the named projection (a subscription or a partitioned group) has got."""
        group = self.groups.get(name)
        return group.position if group is not None else self.subscription(name).position

    def lost_of(self, name: str) -> int:
        """How many events the named projection's consumers declared lost (at-most-once)."""
        group = self.groups.get(name)
        if group is not None:
            return sum(m.lost for m in group.members)
        return self.subscription(name).lost

    def subscription(self, name: str) -> Subscription:
        try:
            return self.subscriptions[name]
        except (KeyError, TypeError):  # TypeError: not even a name (a list, a dict)
            raise ProjectionNotFound(
                f"no projection named {name!r}; known: {sorted(self.subscriptions)}"
            ) from None

    def projection(self, name: str) -> Projection:
        group = self.groups.get(name)
        return group.consumer if group is not None else self.subscription(name).consumer

    def register_query(
        self, query_type: type, handler: Callable[[Any], Any], projection: str
    ) -> None:
        """Answer ``query_type`` with ``handler``, reading the named projection."""
        self.position_of(projection)  # fails early for an unknown name
        self.queries.register(
            query_type,
            handler,
            lambda: self.position_of(projection),
            lambda: self.lost_of(projection),
        )

    def ask(self, query: Any, *, min_position: int = 0) -> Any:
        return self.queries.ask(query, min_position=min_position)

    def caught_up(self, projection: str, position: int) -> bool:
        """Has ``projection`` dealt with every event up to ``position`` (read-your-writes)?"""
        if type(position) is not int or position < 0:
            position = check_whole(position, "position", _POSITION, where="caught_up")
        return self.position_of(projection) >= position

    def positions(self) -> dict[str, int]:
        """How far each projection has got: the positions a caller can wait on."""
        out = {
            name: sub.position for name, sub in self.subscriptions.items() if sub.partition is None
        }
        out.update({name: group.position for name, group in self.groups.items()})
        return out

    # -- driving -------------------------------------------------------------------------------
    def pump(self, max_rounds: int = 1_000_000) -> int:
        """Step every subscription until none can make progress now; returns events handled.

        Sagas dispatch commands that append events, so this loops until quiet.
        ``max_rounds`` (a whole number >= 1) caps the rounds of stepping every subscription.
        """
        if type(max_rounds) is not int or max_rounds < 1:
            max_rounds = check_whole(max_rounds, "max_rounds", _ROUNDS, where="pump", low=1)
        total = 0
        subs = list(self.subscriptions.values())
        for _ in range(max_rounds):
            n = sum(sub.pump() for sub in subs)
            total += n
            if n == 0:
                break
        return total

    def next_due(self) -> float | None:
        due = [t for sub in self.subscriptions.values() if (t := sub.next_due()) is not None]
        return min(due) if due else None

    def run_until_idle(self, max_rounds: int = 100_000) -> int:
        """Pump, advancing a :class:`ManualClock` to each due retry or held delivery.

        Crashed subscriptions stay down; restart them first if they should catch up.
        ``max_rounds`` (a whole number >= 1) caps the pumps, one per clock move.
        """
        if type(max_rounds) is not int or max_rounds < 1:
            max_rounds = check_whole(
                max_rounds, "max_rounds", _ROUNDS, where="run_until_idle", low=1
            )
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise ConfigError("run_until_idle needs a ManualClock; drive other clocks with pump()")
        total = 0
        for _ in range(max_rounds):
            total += self.pump()
            due = self.next_due()
            if due is None:
                return total
            clock.advance_to(due)
        return total

    def set_faults(self, plan: FaultPlan | None) -> None:
        check_plan(plan)
        for sub in self.subscriptions.values():
            sub.set_faults(plan)

    def stats(self) -> list[dict[str, Any]]:
        return [sub.stats() for sub in self.subscriptions.values()]


def _check_parts(clock: object, rng: object, store: object) -> None:
    """Check the parts :class:`Engine` is given that it would only use later."""
    if clock is not None and (isinstance(clock, type) or not callable(getattr(clock, "now", None))):
        raise ConfigError(
            f"Engine(clock={clock!r}): pass a Clock (an object whose now() tells seconds: "
            "ManualClock(), CallableClock(lambda: env.now), MonotonicClock()), or None"
        )
    if rng is not None and (
        isinstance(rng, type) or not callable(getattr(rng, "getrandbits", None))
    ):
        raise ConfigError(
            f"Engine(rng={rng!r}): pass a random.Random (e.g. random.Random(7)), or None for "
            "random.Random(seed)"
        )
    if store is not None and (
        isinstance(store, type)
        or not all(callable(getattr(store, m, None)) for m in _STORE_METHODS)
    ):
        raise ConfigError(
            f"Engine(store={store!r}): pass an EventStore instance (InMemoryEventStore, "
            "SqliteEventStore...), or None for an in-memory one"
        )


def _check_consumer(consumer: object, where: str) -> None:
    if isinstance(consumer, Projection):
        return
    hint = ""
    if isinstance(consumer, type) and issubclass(consumer, Projection):
        hint = f" ({consumer.__name__}() rather than the class {consumer.__name__})"
    raise ConfigError(f"{where}(consumer={consumer!r}): pass a Projection or Saga instance{hint}")


def _check_subscribe(
    delivery: object, batch_size: int, every: int | None, retry: object, faults: object
) -> DeliveryPolicy:
    """Check :meth:`Engine.subscribe`'s arguments; returns the delivery policy."""
    check_whole(batch_size, "batch_size", "a whole number >= 1", low=1)
    if every is not None:
        check_whole(every, "checkpoint_every", "a whole number >= 1, or None", low=1)
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigError(f"retry={retry!r}: pass a RetryPolicy, or None (the default)")
    check_plan(faults)
    if isinstance(delivery, str):
        return policy_named(delivery)
    if isinstance(delivery, type) or not all(
        callable(getattr(delivery, m, None)) for m in _POLICY_METHODS
    ):
        raise ConfigError(
            f"delivery={delivery!r}: pass 'at-most-once', 'at-least-once', 'effectively-once' "
            "or a DeliveryPolicy instance"
        )
    return delivery  # type: ignore[return-value]


def _check_dispatch(options: dict[str, Any]) -> None:
    for key, value in options.items():
        if key not in _OPTIONS:
            raise ConfigError(f"dispatch({key}=...): no such option; pass {', '.join(_OPTIONS)}")
        if key == "metadata":
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"dispatch(metadata={value!r}): pass a mapping, or None")
        elif value is not None and not isinstance(value, str):
            raise ConfigError(f"dispatch({key}={value!r}): pass a str, or None")
