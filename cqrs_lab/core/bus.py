"""Command routing: a mapping from command type to handler, idempotency keys, results.

A handler takes the command and a :class:`UnitOfWork`; it loads one aggregate, calls its
methods (which ``record`` events or raise :class:`CommandRefused`) and may ``publish``
integration messages to the outbox. The bus appends the events and the outbox messages in one
all-or-nothing append with the aggregate's version as the expected version.

>>> from dataclasses import dataclass
>>> from cqrs_lab.core import Aggregate, Event, InMemoryEventStore, ManualClock, SequentialIds, on
>>> @dataclass(frozen=True, slots=True)
... class Deposited(Event):
...     amount: int
>>> @dataclass(frozen=True, slots=True)
... class Deposit(Command):
...     account_id: str
...     amount: int
>>> class Account(Aggregate):
...     balance = 0
...     @on(Deposited)
...     def _deposited(self, e: Deposited) -> None:
...         self.balance += e.amount
>>> def handle_deposit(cmd: Deposit, uow: UnitOfWork) -> None:
...     uow.load(Account, cmd.account_id).record(Deposited(cmd.amount))
>>> clock, ids = ManualClock(), SequentialIds()
>>> store = InMemoryEventStore(clock, ids)
>>> bus = CommandBus(store, clock, ids, handlers={Deposit: handle_deposit})
>>> result = bus.dispatch(Deposit("a1", 10), idempotency_key="k1")
>>> result.position, result.stream_version  # the position is the consistency token
(1, 1)
>>> bus.dispatch(Deposit("a1", 10), idempotency_key="k1").replayed  # a retry appends nothing
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cqrs_lab.core.aggregate import Repository
from cqrs_lab.core.clock import Clock
from cqrs_lab.core.idempotency import (
    DEFAULT_IDEMPOTENCY_MAX_KEYS,
    DEFAULT_IDEMPOTENCY_RETENTION,
    IdempotencyRecord,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    check_retention,
)
from cqrs_lab.core.ids import IdFactory
from cqrs_lab.core.messages import ANY, Command, Envelope
from cqrs_lab.core.metrics import Metrics
from cqrs_lab.core.store import EventStore
from cqrs_lab.core.unit_of_work import CommandResult, UnitOfWork
from cqrs_lab.errors import (
    CommandRefused,
    ConcurrencyError,
    ConfigError,
    CqrsLabError,
    IdempotencyConflict,
    UnknownCommand,
)

__all__ = [
    "DEFAULT_IDEMPOTENCY_MAX_KEYS",
    "DEFAULT_IDEMPOTENCY_RETENTION",
    "CommandBus",
    "CommandResult",
    "Decision",
    "Handler",
    "IdempotencyRecord",
    "InMemoryIdempotencyStore",
    "UnitOfWork",
    "check_retention",
]

Handler = Callable[[Any, UnitOfWork], Any]


_new_result = tuple.__new__  # a CommandResult from its fields, without a Python frame


@dataclass(slots=True)
class Decision:
    """A command decided but not yet appended (the simulation commits it after service time)."""

    bus: CommandBus
    command: Command
    command_id: str
    uow: UnitOfWork
    idempotency_key: str | None
    correlation_id: str | None
    causation_id: str | None
    metadata: Mapping[str, Any] | None
    started: float
    result: CommandResult | None = field(default=None)

    def commit(self) -> CommandResult:
        """Append the decided events; raises :class:`ConcurrencyError` if the stream moved."""
        return self.bus._commit(self)


class CommandBus:
    """Routes commands to handlers and appends what they decide."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock,
        ids: IdFactory,
        *,
        repository: Repository | None = None,
        handlers: Mapping[type[Command], Handler] | None = None,
        idempotency: IdempotencyStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.repository = repository if repository is not None else Repository(store)
        self.handlers: dict[type[Command], Handler] = dict(handlers or {})
        self.idempotency = idempotency or InMemoryIdempotencyStore(clock)
        self.metrics = metrics if metrics is not None else Metrics()
        self._latency = self.metrics.histogram("command_latency_seconds")
        self._outcomes = {
            o: self.metrics.counter("commands_total", outcome=o)
            for o in ("accepted", "refused", "conflict", "replayed", "error")
        }
        self._accepted = self._outcomes["accepted"]

    def register(self, command_type: type[Command], handler: Handler) -> None:
        self.handlers[command_type] = handler

    def dispatch(
        self,
        command: Command,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CommandResult:
        """Handle ``command`` and append its events. Raises what the handler raises."""
        if idempotency_key is not None:
            decision = self.decide(
                command,
                idempotency_key=idempotency_key,
                correlation_id=correlation_id,
                causation_id=causation_id,
                metadata=metadata,
                _private=False,
            )
            return decision.result or self._commit(decision)
        # the hot path, inlined: decide and commit in one go
        clock = self.clock
        started = clock.now()
        handler = self.handlers.get(type(command))
        if handler is None:
            raise self._unknown(command)
        command_id = self.ids()
        uow = UnitOfWork(self.repository, command_id, False)
        try:
            handler(command, uow)
            agg = uow.changed()
        except CommandRefused:
            uow.forget()
            self._outcomes["refused"].value += 1
            self._latency.observe(clock.now() - started)
            raise
        except BaseException:
            uow.forget()
            self._outcomes["error"].value += 1
            raise
        if agg is None or uow._outbox:
            return self._commit(
                Decision(
                    self,
                    command,
                    command_id,
                    uow,
                    None,
                    correlation_id,
                    causation_id,
                    metadata,
                    started,
                )
            )
        try:
            envs = self.store.append(
                agg.id,
                agg._pending,
                agg.version,
                correlation_id=correlation_id or command_id,
                causation_id=causation_id or command_id,
                metadata=metadata,
            )
        except ConcurrencyError:
            uow.forget()
            self._outcomes["conflict"].value += 1
            raise
        except BaseException:
            uow.forget()
            self._outcomes["error"].value += 1
            raise
        last = envs[-1]
        version = last.stream_version
        self.repository.saved(agg, version)
        self._accepted.value += 1
        self._latency.observe(clock.now() - started)
        return _new_result(
            CommandResult, (command_id, agg.id, version, last.position, tuple(envs), False)
        )

    def _unknown(self, command: Command) -> UnknownCommand:
        self._outcomes["error"].inc()
        return UnknownCommand(
            f"no handler registered for command {type(command).__name__}; register one "
            f"with CommandBus.register (known: {sorted(c.__name__ for c in self.handlers)})"
        )

    def decide(
        self,
        command: Command,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        _private: bool = True,
    ) -> Decision:
        """Run the handler now and return the decision; ``commit()`` appends it later.

        A decision answered from the idempotency record has ``result`` set already.
        """
        started = self.clock.now()
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not idempotency_key:
                raise ConfigError(
                    f"idempotency_key={idempotency_key!r}: pass a non-empty str (the same "
                    "for every retry of one command), or None"
                )
            record = self.idempotency.get(idempotency_key)
            if record is not None:
                return self._replay(idempotency_key, record, command, started)
        handler = self.handlers.get(type(command))
        if handler is None:
            raise self._unknown(command)
        command_id = self.ids()
        uow = UnitOfWork(self.repository, command_id, _private)
        try:
            handler(command, uow)
        except CommandRefused as exc:
            uow.forget()
            self._outcomes["refused"].inc()
            self._latency.observe(self.clock.now() - started)
            if idempotency_key is not None:
                self.idempotency.put(
                    idempotency_key, IdempotencyRecord(command, None, exc.reason, started)
                )
            raise
        except BaseException:
            uow.forget()
            self._outcomes["error"].inc()
            raise
        return Decision(
            self, command, command_id, uow, idempotency_key,
            correlation_id, causation_id, metadata, started,
        )  # fmt: skip

    def _replay(
        self, key: str, record: IdempotencyRecord, command: Command, started: float
    ) -> Decision:
        if record.command != command:
            self._outcomes["error"].inc()
            raise IdempotencyConflict(
                f"idempotency key {key!r} was first used for {record.command!r}, now for "
                f"{command!r}; use a new key for a different command"
            )
        self._outcomes["replayed"].inc()
        if record.rejection is not None:
            raise CommandRefused(record.rejection)
        assert record.result is not None  # invariant: a record holds a result or a rejection
        r = record.result
        replayed = CommandResult(
            r.command_id, r.stream_id, r.stream_version, r.position, r.events, True
        )
        uow = UnitOfWork(self.repository, "", False)
        return Decision(self, command, r.command_id, uow, key, None, None, None, started, replayed)

    def _commit(self, d: Decision) -> CommandResult:
        uow = d.uow
        if d.result is not None:
            return d.result
        if d.idempotency_key is not None:  # decided twice under one key: the first commit
            record = self.idempotency.get(d.idempotency_key)  # holds it; this one is its
            if record is not None:  # retry (same command) or a conflict (another)
                uow.forget()
                replay = self._replay(d.idempotency_key, record, d.command, d.started)
                d.result = replay.result
                assert d.result is not None
                return d.result
        try:
            agg = uow.changed()
        except CqrsLabError:
            uow.forget()
            self._outcomes["error"].inc()
            raise
        store = self.store
        if agg is None:
            envs: list[Envelope] = []
            if uow._outbox:
                envs = store.append("$outbox", (), ANY, outbox=uow._outbox)
            result = CommandResult(d.command_id, "", 0, store.head_position, ())
        else:
            try:
                envs = store.append(
                    agg.id,
                    agg._pending,
                    agg.version,
                    correlation_id=d.correlation_id or d.command_id,
                    causation_id=d.causation_id or d.command_id,
                    metadata=d.metadata,
                    outbox=uow._outbox,
                )
            except ConcurrencyError:
                uow.forget()
                self._outcomes["conflict"].inc()
                raise
            except BaseException:
                uow.forget()
                self._outcomes["error"].inc()
                raise
            last = envs[-1]
            version = last.stream_version
            self.repository.saved(agg, version)
            result = _new_result(
                CommandResult, (d.command_id, agg.id, version, last.position, tuple(envs), False)
            )
        self._accepted.value += 1
        self._latency.observe(self.clock.now() - d.started)
        if d.idempotency_key is not None:
            self.idempotency.put(
                d.idempotency_key, IdempotencyRecord(d.command, result, None, d.started)
            )
        d.result = result
        return result
