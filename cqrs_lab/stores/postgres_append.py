"""One append on the PostgreSQL store, sent at once: one statement, one round trip.

:meth:`PostgresEventStore.append <cqrs_lab.stores.postgres_store.PostgresEventStore.append>`
outside a group commit calls ``cqrs_lab_append`` (a PL/pgSQL function, see
:mod:`cqrs_lab.stores.postgres_schema`), which in order locks the stream for the rest of the
transaction (appenders to one stream queue there instead of racing to the unique constraint,
so a lost race never burns positions), takes the transaction id, reads the version in a
statement of its own (a snapshot taken after the lock) and, only if it is the expected one,
takes positions and inserts the rows in a subtransaction whose id is taken after the positions
(what the gap-safe reader relies on: see :mod:`cqrs_lab.stores.postgres_reader`). The rows
travel as one JSON document. The first statement of a batch carries its ``BEGIN`` (one simple
query, parameters bound on the client), so a batch of one append is two round trips with its
``COMMIT``.

Before, the same steps took four round trips (``BEGIN``, a pipeline of the lock and the
version, a pipeline of savepoint, insert and release, ``COMMIT``) and psycopg waited on the
socket about 12 times per transaction (once per statement in a pipeline), each wait releasing
and taking back the GIL that the writer threads share; now about 2. Measured on W4's write
path, 32 writer threads, one command per transaction (durable throwaway cluster, 2 cores
shared with other work): Python CPU 447-491 us and server CPU 355-378 us per transaction
before, 212-238 us and 255-293 us after; ``python -m benchmarks w4_postgres`` medians of 3:
1,783-2,194 commands/s (1.8-2.7x ``eventsourcing``) before, 3,195-3,564 (3.0-3.5x) after.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from cqrs_lab.core import ANY, Envelope, Event, ExpectedVersion, IdFactory, RawEvent
from cqrs_lab.core.store import check_expected
from cqrs_lab.errors import ConcurrencyError
from cqrs_lab.stores.postgres_schema import OUTBOX_INSERT, dump_json

__all__ = ["append_now"]

_APPEND = "SELECT version, positions FROM cqrs_lab_append(%s, %s, %s::json)"


def append_now(
    conn: psycopg.Connection[Any],
    begin: bool,
    ids: IdFactory,
    now: float,
    stream_id: str,
    events: Sequence[Event | RawEvent],
    raws: list[RawEvent],
    expected: int | ExpectedVersion,
    want: int | None,
    meta: Mapping[str, Any],
    meta_json: str,
    correlation_id: str | None,
    causation_id: str | None,
    outbox: Sequence[tuple[str, Mapping[str, Any]]],
) -> list[Envelope]:
    """Append ``events`` (encoded: ``raws``) to ``stream_id`` in ``conn``'s transaction
    (in autocommit mode: ``begin`` sends its ``BEGIN`` first) if it is at version ``want``
    (None: any); raises :class:`~cqrs_lab.errors.ConcurrencyError`
    (nothing written, the transaction still usable) if not. The events' ids are taken before
    the check (a refused append uses them up)."""
    eids = [ids() for _ in raws]
    rows = [
        [eid, raw.type_name, raw.schema_version, json.dumps(raw.data), correlation_id,
         causation_id, now, meta_json]
        for eid, raw in zip(eids, raws, strict=True)
    ]  # fmt: skip
    params = (stream_id, want, dump_json(rows))
    if begin:  # the transaction's first statement: BEGIN in the same simple query
        cur: psycopg.Cursor[Any] = psycopg.ClientCursor(conn)
        cur.execute(f"BEGIN; {_APPEND}", params)
        cur.nextset()
    else:
        cur = conn.execute(_APPEND, params)
    row = cur.fetchone()
    assert row is not None
    version, positions = int(row[0]), row[1]
    if positions is None:  # a writer that bypassed the lock won the unique constraint
        raise ConcurrencyError(stream_id, expected, version)
    if expected is not ANY:
        check_expected(stream_id, expected, version)
    out = [
        Envelope(eid, stream_id, version + k, position, raw.type_name, raw.schema_version,
                 event, correlation_id, causation_id, now, meta)
        for k, (eid, event, raw, position) in enumerate(
            zip(eids, events, raws, positions, strict=True), 1
        )
    ]  # fmt: skip
    if outbox:
        last = positions[-1] if positions else 0
        with conn.pipeline():
            for topic, payload in outbox:
                conn.execute(
                    OUTBOX_INSERT,
                    (ids(), topic, json.dumps(payload), last, correlation_id),
                )
    return out
