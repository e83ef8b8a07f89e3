"""Every error cqrs_lab raises on purpose derives from :class:`CqrsLabError`.

Each subclass says when it is raised and inherits the matching builtin where one fits,
so ``except KeyError`` still catches an unknown command. Messages say what was wrong and
how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ClusterError",
    "CommandRefused",
    "ConcurrencyError",
    "ConfigError",
    "ConsumerCrashed",
    "CqrsLabError",
    "DeadLetterNotFound",
    "DomainError",
    "HistoryError",
    "IdempotencyConflict",
    "InjectedFault",
    "LostSlot",
    "MissingExtra",
    "NotFound",
    "Overloaded",
    "PreconditionFailed",
    "Problem",
    "ProjectionNotFound",
    "ScenarioError",
    "StoreBroken",
    "StoreFailure",
    "StoreUnavailable",
    "TransactionAborted",
    "UnknownCommand",
    "UnknownEventType",
    "UnknownQuery",
    "UpcastError",
]


class CqrsLabError(Exception):
    """Root of every error cqrs_lab raises on purpose."""


class ConfigError(CqrsLabError, ValueError):
    """A parameter given to the library is out of range or of the wrong type.

    The message names the parameter, the value given and what is allowed.
    """


class ScenarioError(ConfigError):
    """A scenario file is malformed: the message names the file, the key and what is allowed."""


class DomainError(ConfigError):
    """A domain declaration (or a reference to a part of one) is inconsistent: the message
    names the domain, the part and what it declares."""


class HistoryError(ConfigError):
    """A history cannot be read (missing, a folder without history files, not UTF-8), is
    empty, or holds a malformed record: the message names the file, the line and the
    field, and what is allowed."""


class MissingExtra(CqrsLabError, ImportError):
    """A command needs a third-party package that is not installed: the message names the
    package and the extra that installs it (``pip install 'cqrs_lab[sim]'``)."""


class ConcurrencyError(CqrsLabError):
    """An append's expected version does not match the stream's actual version.

    Raised by an event store when another writer appended to the stream first (optimistic
    concurrency). Reload the aggregate and retry the command.
    """

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, but the stream is at "
            f"version {actual}; another writer appended first. Reload the aggregate and "
            f"retry the command (or append with expected_version=ANY if order does not matter)."
        )


class PreconditionFailed(ConcurrencyError):
    """A command sent with the stream version it must find (HTTP ``If-Match``) was decided on
    a stream that had moved past it before the decision: nothing was appended. Read the
    stream again and send the command with its new version."""


class TransactionAborted(CqrsLabError):
    """The database aborted a transaction to break a deadlock, or a serialization conflict,
    with another process's: nothing in it happened; run it again. The served driver reruns
    its batch one command per transaction (a few tries each, then 503 with Retry-After)."""

    #: seconds a client should wait before sending it again: at once, nearly
    retry_after = 1


class UnknownCommand(CqrsLabError, KeyError):
    """A command was dispatched whose type has no registered handler."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownQuery(CqrsLabError, KeyError):
    """A query was asked whose type has no registered handler."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CommandRefused(CqrsLabError):
    """A command broke a business rule; nothing was appended.

    ``reason`` is a sentence a person can read ("insufficient funds: balance 10, withdrawal 25").
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class IdempotencyConflict(CqrsLabError):
    """An idempotency key was reused with a different command payload.

    Use a fresh key for a different command; reuse a key only to retry the same command.
    """


class NotFound(CqrsLabError, KeyError):
    """A thing asked for by id does not exist (a stream, a row, a saga)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ProjectionNotFound(NotFound):
    """A projection or subscription was named that the engine does not have."""


class DeadLetterNotFound(NotFound):
    """A dead letter was asked for by an id the dead-letter store does not hold."""


class UnknownEventType(CqrsLabError, KeyError):
    """A stored event names a type (or schema version) the registry does not know.

    Register the event class, or an upcaster from the stored schema version.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UpcastError(CqrsLabError):
    """An upcaster failed or the upcaster chain has a gap between two schema versions."""


class StoreFailure(CqrsLabError):
    """The event store itself failed (not a handler, not a command): :class:`StoreBroken`
    or :class:`StoreUnavailable`. A subscription never counts it as its handler's failure
    (no retry of the event, no dead letter: the event stays in flight), and the served
    process stops on it so a restart recovers from what was committed. A command line that
    stops on it exits :attr:`exit_status` (75, sysexits' ``EX_TEMPFAIL``: try again later),
    for its supervisor to restart it."""

    exit_status = 75
    #: seconds a client should wait before retrying: the time a supervisor takes to restart
    retry_after = 5


class StoreBroken(StoreFailure):
    """A write to the SQLite file failed part-way (disk full, I/O error).

    The store refuses every later call, because its memory and the file may disagree:
    restart the process, which reloads the log from the file.
    """


class StoreUnavailable(StoreFailure):
    """The database behind the store cannot be reached (it stopped, restarted or dropped
    the connection) or gave no connection within the pool's wait; retry after
    ``retry_after`` seconds. What was in flight was not acknowledged; a transaction whose
    commit was under way may or may not have committed (an HTTP command: retry it with the
    same Idempotency-Key; a projection: its checkpoint says)."""

    def __init__(self, message: str, retry_after: int = StoreFailure.retry_after) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class LostSlot(CqrsLabError):
    """A ``cqrs-lab project`` worker found a partition's tracking record moved under it:
    another worker owns the partition now. Its batch is rolled back and the worker gives the
    partition up (handled inside the worker; never reaches the user)."""


class ConsumerCrashed(CqrsLabError):
    """Raised inside a subscription at a named crash point to simulate a consumer crash.

    The subscription catches it, loses its in-flight work as its delivery semantics dictate,
    and stays down until the driver calls ``restart()``.
    """

    def __init__(self, subscription: str, point: str, position: int) -> None:
        self.subscription = subscription
        self.point = point
        self.position = position
        super().__init__(f"consumer {subscription!r} crashed {point} at position {position}")


class InjectedFault(CqrsLabError):
    """A simulated projection handler failure (a transient error or a poison event), raised
    on purpose by the simulation's fault injection; the engine retries it with backoff and
    parks the event as a dead letter when it keeps failing."""


class Overloaded(CqrsLabError):
    """The served engine's command queue is full; retry after ``retry_after`` seconds.

    Raised by the HTTP driver when a command arrives and ``queue_size`` commands are already
    waiting (or the server is stopping); the app answers 429 with ``Retry-After``.
    """

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"the command queue is full; retry after {retry_after} s")


class Problem(CqrsLabError):
    """An HTTP error answer (RFC 9457): ``status``, a short ``title``, a ``detail`` sentence
    saying what to fix, response ``headers`` and extra members of the body.

    Raised inside a route of the HTTP app; the app turns it into an
    ``application/problem+json`` response (plain data here: no web framework needed).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


class ClusterError(CqrsLabError, RuntimeError):
    """A throwaway PostgreSQL cluster could not be found, created or started (the message
    says why; :mod:`cqrs_lab.stores.pg_cluster`)."""
