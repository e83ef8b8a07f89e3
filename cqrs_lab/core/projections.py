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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cqrs_lab.core.aggregate import collect_handlers
from cqrs_lab.core.messages import Command, Envelope, Event
from cqrs_lab.core.readmodel import Progress, Table
from cqrs_lab.errors import ConfigError, UnknownQuery

__all__ = ["Projection", "QueryBus", "QueryResult", "Saga"]


class Projection:
    """Base of projections. ``@on(EventType)`` methods take ``(event, envelope)``.

    ``progress`` is the read side's own record of applied positions: under effectively-once
    it commits in the same unit as the table writes. A projection fed by several partitions
    keeps one record per partition (:meth:`progress_for`). Subclasses must be constructible with
    no arguments (``fresh()``) so a shadow rebuild can build a second copy.
    """

    name: ClassVar[str] = ""
    #: True when applying an event twice has the same effect as once (the checks use it)
    idempotent: ClassVar[bool] = False
    _handler_fns: ClassVar[dict[type[Event], Callable[..., Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handler_fns = collect_handlers(cls)
        if not cls.name:
            cls.name = cls.__name__

    def __init__(self) -> None:
        self.tables: list[Table] = []
        self.progress = Progress()
        self.partition_progress: dict[int, Progress] = {}
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
        self.progress = Progress()
        self.partition_progress = {}

    def progress_for(self, partition: int | None) -> Progress:
        """The record of one partition (``None``: the whole log)."""
        if partition is None:
            return self.progress
        found = self.partition_progress.get(partition)
        if found is None:
            found = self.partition_progress[partition] = Progress()
        return found

    def fresh(self) -> Projection:
        """A new, empty instance of the same projection (for a shadow rebuild)."""
        return type(self)()

    def take_over(self, other: Projection) -> None:
        """Adopt ``other``'s rows and progress in one step (the swap after a shadow rebuild)."""
        for mine, theirs in zip(self.tables, other.tables, strict=True):
            mine.replace_with(theirs)
        self.progress = other.progress.copy()
        self.partition_progress = {k: v.copy() for k, v in other.partition_progress.items()}

    def state(self) -> dict[str, dict[Any, Any]]:
        """Every table as a plain dict, for comparing read models."""
        return {t.name: t.to_dict() for t in self.tables}


Dispatch = Callable[..., Any]


class Saga(Projection):
    """A process manager: reacts to events and dispatches commands.

    Commands go through :meth:`send`, whose idempotency key is derived from the triggering
    event and a step name, so a redelivered event re-sends the same command and the command
    bus answers from its idempotency record instead of acting twice.
    """

    def __init__(self) -> None:
        super().__init__()
        self._dispatch: Dispatch | None = None

    def bind(self, dispatch: Dispatch) -> None:
        """Give the saga the command bus's ``dispatch`` (done by ``Engine.subscribe``)."""
        self._dispatch = dispatch

    def fresh(self) -> Projection:
        twin = super().fresh()
        if isinstance(twin, Saga) and self._dispatch is not None:
            twin.bind(self._dispatch)
        return twin

    def send(self, command: Command, cause: Envelope, step: str) -> Any:
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
    """A query's answer and the position of the read model that answered it."""

    value: Any
    position: int
    stale: bool = False  # True when a requested min_position was not reached


class QueryBus:
    """Routes queries to handlers; each handler names the projection it reads.

    ``ask(query, min_position=P)`` tells whether the answer reflects position P, so a
    caller can read its own writes or at least know it did not.
    """

    def __init__(self) -> None:
        self._routes: dict[type, tuple[Callable[[Any], Any], Callable[[], int]]] = {}

    def register(
        self, query_type: type, handler: Callable[[Any], Any], position: Callable[[], int]
    ) -> None:
        """``position`` returns how far the read model behind ``handler`` has applied."""
        self._routes[query_type] = (handler, position)

    def ask(self, query: Any, *, min_position: int = 0) -> QueryResult:
        route = self._routes.get(type(query))
        if route is None:
            raise UnknownQuery(
                f"no handler registered for query {type(query).__name__}; register one with "
                f"QueryBus.register (known: {sorted(t.__name__ for t in self._routes)})"
            )
        handler, position = route
        pos = position()
        return QueryResult(handler(query), pos, stale=pos < min_position)

    def routes(self) -> Mapping[type, tuple[Callable[[Any], Any], Callable[[], int]]]:
        return dict(self._routes)
