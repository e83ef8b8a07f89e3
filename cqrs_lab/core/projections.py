"""Projections: handlers per event type that write read models, and the query side.

>>> from dataclasses import dataclass
>>> from cqrs_lab.core.messages import Event
>>> from cqrs_lab.core.aggregate import on
>>> @dataclass(frozen=True, slots=True)
... class Deposited(Event):
...     account_id: str
...     amount: int
>>> class Balances(Projection):
...     name = "balances"
...     def __init__(self) -> None:
...         super().__init__()
...         self.balances = self.table("balances")
...     @on(Deposited)
...     def _deposited(self, e: Deposited, env: object) -> None:
...         self.balances.put(e.account_id, self.balances.get(e.account_id, 0) + e.amount)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar, NamedTuple, Protocol

from cqrs_lab.core.aggregate import collect_handlers
from cqrs_lab.core.arguments import check_whole
from cqrs_lab.core.messages import Command, Envelope, Event
from cqrs_lab.core.partitions import partition_of
from cqrs_lab.core.readmodel import Table
from cqrs_lab.core.tracking import InMemoryTracking
from cqrs_lab.errors import ConfigError, UnknownQuery

__all__ = ["Cause", "Projection", "QueryBus", "QueryResult", "Saga", "SagaCause"]


class Projection:
    """Base of projections. ``@on(EventType)`` methods take ``(event, envelope)``.

    ``tracking`` is the read side's own store of tracking records: under effectively-once
    each subscription feeding the projection (one per partition) commits its record there in
    the same unit as the table writes. Subclasses must be constructible with no arguments
    (``fresh()``) so a shadow rebuild can build a second copy.
    """

    name: ClassVar[str] = ""
    #: True when applying an event twice has the same effect as once (the checks use it)
    idempotent: ClassVar[bool] = False
    #: bump when the meaning of the tables' rows changes: a durable snapshot taken by another
    #: version is ignored and the view replays the log instead
    snapshot_version: ClassVar[int] = 1
    _handler_fns: ClassVar[dict[type[Event], Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handler_fns = collect_handlers(cls)
        if not cls.name:
            cls.name = cls.__name__

    def __init__(self) -> None:
        self.tables: list[Table] = []
        self.tracking = InMemoryTracking()
        self.active_writer: object = None  # the subscription whose undo log the tables use
        self.handlers: dict[type[Event], Callable[[Any, Envelope], None]] = {
            t: fn.__get__(self) for t, fn in self._handler_fns.items()
        }

    def table(self, name: str) -> Table:
        """Create and register a table of this projection."""
        t = Table(name)
        self.tables.append(t)
        return t

    def handles(self, event_type: type[Event]) -> bool:
        return event_type in self.handlers

    def reset(self) -> None:
        """Empty every table and forget progress (the start of an in-place rebuild)."""
        for t in self.tables:
            t.clear()
        self.tracking.clear()

    def fresh(self) -> Projection:
        """A new, empty instance of the same projection (for a shadow rebuild)."""
        return type(self)()

    def take_over(self, other: Projection) -> None:
        """Adopt ``other``'s rows and progress in one step (the swap after a shadow rebuild)."""
        for mine, theirs in zip(self.tables, other.tables, strict=True):
            mine.replace_with(theirs)
        self.tracking.replace_with(other.tracking)

    def snapshot(self) -> dict[str, dict[Any, Any]]:
        """Every table's rows by table name, for a durable snapshot of the view.

        The dicts are fresh but the rows are shared with the live tables: serialise at once.
        Every view gets this from its tables (``self.table(...)``); state kept outside its
        tables is not in it.
        """
        return {t.name: t.to_dict() for t in self.tables}

    def restore(self, snapshot: Mapping[str, Mapping[Any, Any]]) -> None:
        """Load the tables from :meth:`snapshot`'s result (what the view had at that point).

        >>> class Counts(Projection):
        ...     def __init__(self) -> None:
        ...         super().__init__()
        ...         self.counts = self.table("counts")
        >>> a, b = Counts(), Counts()
        >>> a.counts.put("x", 2)
        >>> b.restore(a.snapshot()); b.state()
        {'counts': {'x': 2}}
        """
        names = sorted(t.name for t in self.tables)
        if sorted(snapshot) != names:
            raise ConfigError(
                f"restore: the snapshot of {self.name!r} has tables {sorted(snapshot)}, the "
                f"view has {names}; bump {type(self).__name__}.snapshot_version when the "
                f"tables change so an old snapshot is ignored"
            )
        for t in self.tables:
            t.load(snapshot[t.name])

    def state(self) -> dict[str, dict[Any, Any]]:
        """Every table as a plain dict, for comparing read models."""
        return {t.name: t.to_dict() for t in self.tables}


Dispatch = Callable[..., Any]


class Cause(Protocol):
    """What a saga's command is caused by: an event's id and its correlation id.

    An :class:`Envelope` is one; so is a :class:`SagaCause` kept in a saga's row, for a step
    taken later, when the event that caused it is not the one being delivered.
    """

    @property
    def event_id(self) -> str: ...

    @property
    def correlation_id(self) -> str | None: ...


class SagaCause(NamedTuple):
    """An event remembered by a saga as the cause of a later step, with its position in the
    log where the saga knows it (0: not known; see :meth:`Saga.send`)."""

    event_id: str
    correlation_id: str | None
    position: int = 0


class Saga(Projection):
    """A process manager: reacts to events and dispatches commands.

    Commands go through :meth:`send`, whose idempotency key is the saga's name, the id of the
    event that caused the step and the step's name. The key names the *cause*, not the
    delivery that happened to run the step, so however events are redelivered or reordered a
    step re-sent is the same command under the same key: a true replay, answered by the
    command bus from its idempotency record (the bus must keep records at least as long as
    an event can be redelivered). A saga built this way records what it learns as facts that
    only accumulate, and derives its next step from them, so a reply that arrives before its
    trigger, a duplicate and a replay all leave it where the log says it is.

    ``open_instances()`` counts instances that have not ended (a metric: under at-most-once
    a lost event can leave an instance open for ever; under the other semantics it must
    reach zero once the log is quiet).

    The bus keeps its records for a bounded time and count, so a saga rebuilt by replaying
    a long log cannot count on them: ``replay_until`` is the position up to which events were
    handled before (a restarted server sets it from the saga's saved checkpoint). A step
    whose *cause* is at or below it is not sent again (:meth:`send` returns ``None``): the
    step was taken then and its effects are in the log, where their delivery moves the saga
    on, as a replayed record would have. The cause's position is the step's, not the
    delivery's that happened to run it: after a rebuild a debit delivered before its request
    (reordered, delayed) makes the request's delivery, at or below the bound, derive the
    credit, whose cause, the debit, was never handled before: that step is sent. A cause
    that does not know its position (a :class:`SagaCause` without one) is judged by the
    delivery's position.

    When the events were handled up to different positions in different partitions (by
    partitioned workers elsewhere), :meth:`replay_floors` adds one bound per partition: an
    event is then replayed without sending while its position is at or below
    ``replay_until`` or its partition's floor.
    """

    def __init__(self) -> None:
        super().__init__()
        self._dispatch: Dispatch | None = None
        self.replay_until = 0
        self._envelope: Envelope | None = None  # the event being handled
        self._floors: tuple[int, ...] = ()  # per partition (see replay_floors)
        self._floor_top = 0  # the highest of them: above it no partition is computed
        self.handlers = {t: self._noting_position(fn) for t, fn in self.handlers.items()}

    def _noting_position(
        self, fn: Callable[[Any, Envelope], None]
    ) -> Callable[[Any, Envelope], None]:
        def handle(event: Any, env: Envelope) -> None:
            self._envelope = env
            fn(event, env)

        return handle

    def replay_floors(self, floors: Sequence[int]) -> None:
        """Send nothing for an event at or below its partition's floor: ``floors[p]`` for
        partition ``p = partition_of(correlation_id or stream_id, len(floors))`` (how
        ``cqrs-lab project`` splits a saga's events). ``()`` removes them.

        >>> saga = Saga()
        >>> saga.replay_floors([4, 9])  # partition 0 handled up to 4, partition 1 up to 9
        >>> partition_of("d", 2), partition_of("a", 2)
        (0, 1)
        >>> saga.floor_of("d"), saga.floor_of("a"), Saga().floor_of("a")
        (4, 9, 0)
        """
        if isinstance(floors, str | bytes | Mapping | AbstractSet) or not isinstance(
            floors, Iterable
        ):
            raise ConfigError(
                f"replay_floors(floors={floors!r}): pass a list of positions (whole numbers "
                ">= 0), one per partition in order, or () for none"
            )
        given: tuple[object, ...] = tuple(floors)
        listed: list[int] = []
        for floor in given:  # numpy's whole numbers too
            if isinstance(floor, bool) or not isinstance(floor, Integral) or floor < 0:
                raise ConfigError(
                    f"replay_floors(floors={floors!r}): {floor!r} is no position; pass whole "
                    "numbers >= 0, one per partition"
                )
            listed.append(int(floor))
        self._floors = tuple(listed)
        self._floor_top = max(self._floors, default=0)

    @property
    def replays_through(self) -> int:
        """The highest position whose steps this saga may replay without sending (its bound
        or a partition's floor): above it, every step an event causes is sent."""
        return max(self.replay_until, self._floor_top)

    def floor_of(self, key: str) -> int:
        """The floor of the partition of ``key`` (a correlation or stream id); 0 if none."""
        floors = self._floors
        return floors[partition_of(key, len(floors))] if floors else 0

    def bind(self, dispatch: Dispatch) -> None:
        """Give the saga the command bus's ``dispatch`` (done by ``Engine.subscribe``)."""
        self._dispatch = dispatch

    def fresh(self) -> Projection:
        twin = super().fresh()
        if isinstance(twin, Saga) and self._dispatch is not None:
            twin.bind(self._dispatch)
        if isinstance(twin, Saga):  # a shadow rebuild keeps the bounds of the live copy
            twin.replay_floors(self._floors)
        return twin

    def open_instances(self) -> int:
        """Instances started and not yet ended (0 for a saga that does not say)."""
        return 0

    def send(self, command: Command, cause: Cause, step: str) -> Any:
        """Dispatch ``command`` as ``step`` of the instance ``cause`` moved on (``None``, and
        nothing sent, while replaying an event handled before: see ``replay_until``)."""
        env = self._envelope
        if env is not None and env.position > 0:
            position = getattr(cause, "position", 0) or env.position  # the step's cause's
            if position <= self.replay_until:
                return None
            # the partition is computed only at or below the highest floor
            if position <= self._floor_top and position <= self.floor_of(
                env.correlation_id or env.stream_id
            ):
                return None
        if self._dispatch is None:
            raise ConfigError(
                f"saga {self.name!r} has no command bus: subscribe it with Engine.subscribe "
                f"or call bind(bus.dispatch)"
            )
        return self._dispatch(
            command,
            idempotency_key=f"{self.name}:{cause.event_id}:{step}",
            correlation_id=cause.correlation_id,
            causation_id=cause.event_id,
        )


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A query's answer and the position of the read model that answered it.

    ``lost`` counts the events the read model's consumer declared lost (at-most-once: taken
    and never applied) up to ``position``: a read can be current and still miss them.
    """

    value: Any
    position: int
    stale: bool = False  # True when a requested min_position was not reached
    lost: int = 0


def _none_lost() -> int:
    return 0


_POSITION = "a log position, a whole number >= 0"


class QueryBus:
    """Routes queries to handlers; each handler names the projection it reads.

    ``ask(query, min_position=P)`` tells whether the answer reflects position P, so a
    caller can read its own writes or at least know it did not.
    """

    def __init__(self) -> None:
        self._routes: dict[type, _Route] = {}

    def register(
        self,
        query_type: type,
        handler: Callable[[Any], Any],
        position: Callable[[], int],
        lost: Callable[[], int] = _none_lost,
    ) -> None:
        """``position`` returns how far the read model behind ``handler`` has dealt with the
        log; ``lost`` how many events it declared lost on the way."""
        self._routes[query_type] = _Route(handler, position, lost)

    def ask(self, query: Any, *, min_position: int = 0) -> QueryResult:
        route = self._routes.get(type(query))
        if route is None:
            raise UnknownQuery(
                f"no handler registered for query {type(query).__name__}; register one with "
                f"QueryBus.register (known: {sorted(t.__name__ for t in self._routes)})"
            )
        if type(min_position) is not int or min_position < 0:
            min_position = check_whole(min_position, "min_position", _POSITION, where="ask")
        pos = route.position()
        return QueryResult(route.handler(query), pos, pos < min_position, route.lost())

    def routes(self) -> Mapping[type, tuple[Callable[[Any], Any], Callable[[], int]]]:
        return {t: (r.handler, r.position) for t, r in self._routes.items()}


class _Route(NamedTuple):
    handler: Callable[[Any], Any]
    position: Callable[[], int]
    lost: Callable[[], int]
