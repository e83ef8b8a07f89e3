"""What a command handler works with and what an accepted command produced (the command bus,
:mod:`cqrs_lab.core.bus`, makes both): a :class:`UnitOfWork` loads the one aggregate a
command may change and collects its outbox messages; a :class:`CommandResult` names the
events appended and the position a client reads its own write at."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

from cqrs_lab.core.aggregate import Aggregate, Repository
from cqrs_lab.core.messages import Envelope
from cqrs_lab.errors import CqrsLabError

__all__ = ["CommandResult", "UnitOfWork"]

A = TypeVar("A", bound=Aggregate)


class CommandResult(NamedTuple):
    """What an accepted command produced. ``position`` is the consistency token."""

    command_id: str
    stream_id: str
    stream_version: int
    position: int
    events: tuple[Envelope, ...]
    replayed: bool = False  # answered from the idempotency record, nothing appended


class UnitOfWork:
    """What a handler sees: load aggregates, publish outbox messages. One aggregate may change."""

    __slots__ = ("_loaded", "_outbox", "_private", "command_id", "repository")

    def __init__(self, repository: Repository, command_id: str, private: bool) -> None:
        self.repository = repository
        self.command_id = command_id
        self._private = private
        self._loaded: list[Aggregate] = []
        self._outbox: list[tuple[str, Mapping[str, Any]]] = []

    def load(self, cls: type[A], stream_id: str) -> A:
        """The aggregate of ``stream_id`` (version 0 and no events if it does not exist yet)."""
        agg = self.repository.load(cls, stream_id, private=self._private)
        self._loaded.append(agg)
        return agg

    def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Record an integration message, appended atomically with the events."""
        self._outbox.append((topic, payload))

    def changed(self) -> Aggregate | None:
        loaded = self._loaded
        if len(loaded) == 1:
            return loaded[0] if loaded[0]._pending else None
        changed = [a for a in loaded if a._pending]
        if len(changed) > 1:
            names = ", ".join(a.id for a in changed)
            raise CqrsLabError(
                f"a command handler changed {len(changed)} aggregates ({names}); one command "
                f"changes one aggregate: coordinate several with a saga"
            )
        return changed[0] if changed else None

    def forget(self) -> None:
        """Evict aggregates a failed handler may have changed (those with recorded events)."""
        for agg in self._loaded:
            if agg._pending:
                self.repository.evict(agg.id)
