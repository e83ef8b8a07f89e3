"""Messages: commands (imperative), events (past tense) and the envelope events travel in.

Commands and events are frozen dataclasses that subclass :class:`Command` and :class:`Event`:

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True, slots=True)
... class Deposited(Event):
...     account_id: str
...     amount: int
>>> Deposited("a1", 5).event_type(), Deposited.schema_version
('Deposited', 1)

An :class:`Envelope` is what the store records: the event plus its ids, stream version, global
position (the consistency token), schema version, correlation and causation ids and the time
it was recorded (from the injected clock).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "ANY",
    "NO_STREAM",
    "Command",
    "Envelope",
    "Event",
    "ExpectedVersion",
    "RawEvent",
    "event_to_dict",
]


class Command:
    """Base of commands. Subclass as a frozen dataclass named in the imperative (``Deposit``).

    ``internal = True`` declares a command that only the domain itself sends (a saga's step,
    a compensation): the engine runs it like any other, but a driver that exposes commands to
    clients (the HTTP server) never offers it.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, slots=True)
    ... class Refund(Command):
    ...     internal = True
    ...     account_id: str
    >>> Refund.internal, Command.internal
    (True, False)
    """

    __slots__ = ()
    #: only the domain sends it (sagas, compensations); never exposed to clients
    internal: ClassVar[bool] = False
    #: fields holding identifiers besides those named ``*_id`` (drivers validate them as ids)
    id_fields: ClassVar[tuple[str, ...]] = ()

    def command_type(self) -> str:
        return type(self).__name__


class Event:
    """Base of events. Subclass as a frozen dataclass named in the past tense (``Deposited``).

    ``schema_version`` is the version this class writes; older stored versions are lifted to
    it by upcasters on read. ``type_name`` overrides the stored type name (default: class name).
    """

    __slots__ = ()
    schema_version: ClassVar[int] = 1
    type_name: ClassVar[str | None] = None

    @classmethod
    def event_type(cls) -> str:
        return cls.type_name or cls.__name__


@dataclasses.dataclass(frozen=True, slots=True)
class RawEvent:
    """An event in stored form: type name, schema version and a JSON-like payload.

    Stores hand these out for events written by another schema version (an older producer,
    or a newer one the reader does not know yet); the subscription decodes them through the
    registry and upcasters, so a failure to decode is that one event's failure.
    """

    type_name: str
    schema_version: int
    data: Mapping[str, Any]


class ExpectedVersion(enum.Enum):
    """Special expected versions for :meth:`EventStore.append`; an ``int`` means exactly that."""

    ANY = "any"
    NO_STREAM = "no stream"

    def __str__(self) -> str:
        return self.value


ANY = ExpectedVersion.ANY
NO_STREAM = ExpectedVersion.NO_STREAM


class Envelope(NamedTuple):
    """One recorded event. Immutable; ``position`` is global, increasing and starts at 1
    (gap-free in the in-memory and SQLite stores; a shared store may leave holes, see
    :meth:`EventStore.read_all <cqrs_lab.core.store.EventStore.read_all>`)."""

    event_id: str
    stream_id: str
    stream_version: int
    position: int
    event_type: str
    schema_version: int
    payload: Any  # an Event instance, or a RawEvent for an undecoded stored form
    correlation_id: str | None
    causation_id: str | None
    recorded_at: float
    metadata: Mapping[str, Any]


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event's fields as a plain dict (for JSON and SQLite stores)."""
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}  # type: ignore[arg-type]
