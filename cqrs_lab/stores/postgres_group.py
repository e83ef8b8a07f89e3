"""Group commit on the PostgreSQL store: a transaction in two round trips, whatever it appends.

:meth:`PostgresEventStore.group_commit <cqrs_lab.stores.postgres_store.PostgresEventStore.
group_commit>` opens a transaction whose appends are *deferred*. Its ``BEGIN`` goes in one
round trip with taking the transaction id and then reserving a block of positions (about one
per command). Each append checks its expected version against what the transaction already
appended to the stream, takes its positions from the block (one more round trip only when the
block runs out), returns its envelopes at once, and keeps its rows here. On exit, one
simple query sends everything: one call of ``cqrs_lab_group`` (a PL/pgSQL function, see
:mod:`cqrs_lab.stores.postgres_schema`), then the outbox rows if any, then ``COMMIT``. The
function

1. locks the transaction's streams in sorted order (no deadlock between two group commits),
   then checks every stream's version in one statement (its snapshot taken after all the
   locks); a stream that moved raises SQLSTATE ``CQ409``, which becomes
   :class:`~cqrs_lab.errors.ConcurrencyError` naming the stream;
2. inserts every event in one statement (the rows sent as one JSON document) inside a block
   with an exception clause, which is a subtransaction: the rows' ``xmin`` is its id, taken
   after every position of the transaction, so the gap-safe reader's guarantee holds (see
   :mod:`cqrs_lab.stores.postgres_reader`).

A conflict found at exit rolls the whole transaction back: the caller cannot tell which of
its commands lost the race, so it runs them again one per transaction, where a conflict is
raised by the append of the command that lost (the HTTP driver does that). Positions reserved
and not used (a refused command appends nothing) are holes, as a rollback leaves.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from cqrs_lab.core import Envelope, Event, IdFactory, RawEvent
from cqrs_lab.core.store import check_expected
from cqrs_lab.errors import ConcurrencyError
from cqrs_lab.stores.postgres_schema import (
    OUTBOX_INSERT,
    dump_json,
    lock_version_and_positions,
)

__all__ = [
    "CONFLICT_SQLSTATE",
    "Pending",
    "StreamEntry",
    "defer",
    "flush",
    "group_transaction",
    "reserve",
]

#: raised by ``cqrs_lab_group`` when a stream is not at the version the group expected
CONFLICT_SQLSTATE = "CQ409"
# every row in one statement, the checks and the rows each one JSON document made by the C
# encoder: writer threads share one GIL, and dumping 13 binary arrays element by element in
# Python was about 40% of a group's Python time. With the flush in one simple query (it was a
# pipeline: a wait on the socket per statement), measured on W4 (32 writer threads, 16
# commands per transaction, 2 shared cores): Python CPU 45-53 us per command before, 32-40
# after; medians of 3, 12,227-18,380 commands/s (2.0-2.9x eventsourcing) before,
# 18,579-21,522 (2.5-3.0x) after
_GROUP = "SELECT cqrs_lab_group(%s::json, %s::json)"


@dataclass
class StreamEntry:
    """A stream appended to in the open group: the version it must be at when the group
    commits (``want``), its version after the group's appends and their envelopes."""

    want: int
    version: int
    envelopes: list[Envelope] = field(default_factory=list)


@dataclass
class Pending:
    """The deferred appends of one group-commit transaction."""

    hint: int  # positions to reserve at the first append
    streams: dict[str, StreamEntry] = field(default_factory=dict)
    rows: list[list[Any]] = field(default_factory=list)  # each: one event's 11 columns
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    free: list[int] = field(default_factory=list)  # reserved positions not used yet (reversed)
    has_xid: bool = False

    @property
    def head(self) -> int:
        return max((e.envelopes[-1].position for e in self.streams.values() if e.envelopes),
                   default=0)  # fmt: skip


_POSITIONS = "SELECT ARRAY(SELECT nextval('events_position_seq') FROM generate_series(1, %s))"


@contextlib.contextmanager
def group_transaction(conn: psycopg.Connection[Any], pending: Pending) -> Iterator[None]:
    """One transaction on ``conn`` in two round trips besides the block's own statements:
    ``BEGIN`` with the transaction id and ``pending.hint`` positions (one simple query, in
    that order: the id before the positions), and on exit :func:`flush` with ``COMMIT``."""
    conn.autocommit = True  # BEGIN and COMMIT are sent by hand, each with other work
    try:
        cur = conn.execute(  # a simple query (no parameters): three statements, in order
            f"BEGIN; SELECT pg_current_xact_id(); "
            f"SELECT ARRAY(SELECT nextval('events_position_seq') "
            f"FROM generate_series(1, {int(pending.hint)}))"
        )
        while cur.nextset():
            pass  # the last result: the positions
        row = cur.fetchone()
        assert row is not None
        pending.has_xid = True
        pending.free = [int(p) for p in reversed(row[0])]
        yield
        flush(conn, pending)
    except BaseException:
        with contextlib.suppress(psycopg.Error):
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        raise
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.autocommit = False


def reserve(conn: psycopg.Connection[Any], pending: Pending, n: int) -> list[int]:
    """``n`` positions for an append, from the reserved block (reserving more if needed: the
    transaction's id first, then the positions, as the gap-safe reader requires)."""
    if len(pending.free) < n:
        k = n - len(pending.free) if pending.has_xid else max(n, pending.hint)
        with conn.pipeline():
            if not pending.has_xid:
                conn.execute("SELECT pg_current_xact_id()")
            cur = conn.execute(_POSITIONS, (k,))
        row = cur.fetchone()
        assert row is not None
        pending.has_xid = True
        pending.free[:0] = [int(p) for p in reversed(row[0])]  # later positions at the front
    return [pending.free.pop() for _ in range(n)]


def defer(
    conn: psycopg.Connection[Any],
    pending: Pending,
    now: float,
    ids: IdFactory,
    stream_id: str,
    events: Sequence[Event | RawEvent],
    raws: list[RawEvent],
    want: int | None,
    meta: Mapping[str, Any],
    meta_json: str,
    correlation_id: str | None,
    causation_id: str | None,
    outbox: Sequence[tuple[str, Mapping[str, Any]]],
) -> list[Envelope]:
    """An append inside a group commit: checked against the group's own appends to the
    stream, positioned from the reserved block, its rows kept for :func:`flush`. ``want`` is
    the expected version (None: any)."""
    entry = pending.streams.get(stream_id)
    positions: list[int] = []
    if entry is None and (want is None or not raws):
        # its version is needed now: lock the stream and read it (and take positions in the
        # same round trip; the block's unused ones would now be below them: drop them)
        version, positions = lock_version_and_positions(conn, stream_id, len(raws), want)
        pending.has_xid, pending.free = True, []
        if want is not None:
            check_expected(stream_id, want, version)
        entry = pending.streams[stream_id] = StreamEntry(version, version)
    elif entry is None:
        assert want is not None
        entry = pending.streams[stream_id] = StreamEntry(want, want)
    elif want is not None:
        check_expected(stream_id, want, entry.version)
    if raws and not positions:
        positions = reserve(conn, pending, len(raws))
    version = entry.version
    out: list[Envelope] = []
    for event, raw, position in zip(events, raws, positions, strict=True):
        version += 1
        env = Envelope(
            ids(), stream_id, version, position, raw.type_name, raw.schema_version, event,
            correlation_id, causation_id, now, meta,
        )  # fmt: skip
        out.append(env)
        pending.rows.append(row_params(env, raw.data, meta_json))
    entry.version = version
    entry.envelopes.extend(out)
    last = positions[-1] if positions else 0
    for topic, payload in outbox:
        pending.outbox.append((ids(), topic, json.dumps(payload), last, correlation_id))
    return out


def flush(conn: psycopg.Connection[Any], pending: Pending) -> None:
    """Send the group's checks, rows and outbox and ``COMMIT`` in one round trip (see the
    module): one simple query, its parameters bound on the client (a pipeline of the same
    statements cost several sends and waits, each a release and a reacquisition of the GIL)."""
    if not pending.rows and not pending.outbox:
        conn.execute("COMMIT")
        return
    names = sorted(pending.streams)
    statements: list[str] = []
    params: list[Any] = []
    if names:
        statements.append(_GROUP)
        checks = [[s, pending.streams[s].want] for s in names]
        params += (dump_json(checks), dump_json(pending.rows))
    for message in pending.outbox:
        statements.append(OUTBOX_INSERT)
        params += message
    statements.append("COMMIT")
    try:  # a statement that fails skips the rest (COMMIT too); the caller rolls back
        psycopg.ClientCursor(conn).execute("; ".join(statements), params)
    except pg_errors.UniqueViolation as exc:  # a writer that bypassed the lock
        if exc.diag.constraint_name != "events_stream_version":
            raise
        stream, actual = _stream_of(exc.diag.message_detail, names)
        raise ConcurrencyError(stream, pending.streams[stream].want, actual) from None
    except psycopg.Error as exc:
        if exc.sqlstate != CONFLICT_SQLSTATE:
            raise
        stream = exc.diag.message_detail or ""
        actual = int(exc.diag.message_hint or 0)
        raise ConcurrencyError(stream, pending.streams[stream].want, actual) from None


def _stream_of(detail: str | None, names: list[str]) -> tuple[str, int]:
    """The stream a unique-violation detail names (``Key (stream_id, stream_version)=(s, 3)
    already exists``) and the version it is at least at."""
    for name in names:
        head = f"=({name}, "
        if detail and head in detail:
            number = detail.split(head, 1)[1].split(")", 1)[0]
            return name, int(number) if number.isdigit() else 0
    return names[0], 0


def row_params(env: Envelope, data: Any, meta_json: str) -> list[Any]:
    return [
        env.position, env.event_id, env.stream_id, env.stream_version, env.event_type,
        env.schema_version, json.dumps(data), env.correlation_id, env.causation_id,
        env.recorded_at, meta_json,
    ]  # fmt: skip
