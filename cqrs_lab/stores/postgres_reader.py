"""Reading the global order of a PostgreSQL log without skipping: the gap-safe reader.

**The bug.** A position from a sequence is taken when a row is inserted but becomes visible
when its transaction commits. Writer A takes 1000, writer B takes 1001 and commits first; a
reader that asks ``WHERE position > 999 ORDER BY position`` sees 1001, moves its checkpoint to
1001, and never reads 1000 once A commits. That is the ``"naive"`` reader below, kept as a
deliberately flawed, selectable mode so the lab can show the skip and its checks catch it.

**The technique chosen: a transaction-visibility horizon.** Each append, in its transaction:

1. takes its transaction id (``pg_current_xact_id()``), so a transaction holds an id before
   it holds any position;
2. takes its positions (``nextval``; the sequence has ``CACHE 1``, so positions are handed out
   in real-time order across sessions);
3. inserts its rows in a subtransaction begun after that (a PL/pgSQL block with an exception
   clause, :mod:`cqrs_lab.stores.postgres_schema`): the rows' ``xmin`` is the
   subtransaction's own id, assigned after the positions, so it is above the id of every
   transaction that took a lower position (that one took its position earlier, and its id
   before its position).

The safe reader reads in position order, in one statement, asking per row whether its
``xmin`` is older than ``pg_snapshot_xmin(pg_current_snapshot())`` (the oldest transaction
still running; a scalar subquery, so the server computes it once per statement from the
statement's one snapshot, not once per row), and keeps the rows up to the first that is not
(the statement returns a page as one row and names that first position;
:mod:`cqrs_lab.stores.postgres_decode` cuts the page before it).
For a row it keeps, every transaction with a lower id has finished, so every lower position is
either visible in the same snapshot or will never exist (rolled back): nothing below it can
appear later.

(The snapshot's ``xmax`` is no substitute for step 3: it is one past the newest *completed*
transaction, and a transaction may hold an id above it. A first version that stored
``pg_snapshot_xmax`` with each row skipped events under the proof test.)

**Why this one.** The alternatives: an advisory lock (or ``LOCK TABLE``, as ``eventsourcing``
does) held from taking positions to commit serialises every appender's commit, so writers
lose their concurrency, which is what a multi-process deployment is for; gap tracking with a
timeout (Marten's high-water mark) must guess how long a transaction may stay open and skips
for good when it guesses short. The horizon never skips and never waits on a guess: the
reader only waits (lag) while a transaction older than the event is still open. Appenders pay
a subtransaction per append and a per-stream transaction lock (appenders to one stream queue on it
instead of racing to the unique constraint, so a lost race never burns positions). A group
commit (:mod:`cqrs_lab.stores.postgres_group`, what the server's writer uses) pays them once
per transaction: it takes every position of the transaction first, then inserts all its rows
in one subtransaction, whose id is above every position's taker just the same.

**Measured** (``.venv/bin/python -m tests.postgres.measure_reader``, three runs on a
throwaway cluster with fsync off, 2 cores shared with other work; 8 writer processes, 50,000
events, a safe and a naive projection worker side by side): 1,650-2,275 events/s appended
(pauses included); lag from append to application, safe p50 100-102 ms and p99 0.6-2.0 s,
naive p50 68-75 ms and p99 0.5-1.7 s (the workers share the cores with the writers, which
dominates the tail); skipped: safe 0, naive 6,782-8,816. The write path alone, one
connection, 4 events per append: 0.62-0.95 ms per append against 0.25-0.31 ms for a plain
insert taking its position from the sequence default (2.1-3.1x: the stream lock, the
savepoint and the transaction id; since then an append is one statement, see
:mod:`cqrs_lab.stores.postgres_append`). Group commit, 32 writer threads, 16 one-event
commands per transaction (``python -m benchmarks w4_postgres``, 16,000 commands, medians of
3, load average 2-4 on 2 shared cores): 18,579-21,522 commands/s against ``eventsourcing``'s
6,978-8,159 (2.5-3.0x); one command per transaction 3,195-3,564 against 1,026-1,080
(3.0-3.5x).
Catch-up of W4's 95,291 events (``PostgresEventStore.read_all_pages``, pages of 1,000, folded
into balances). Read row by row, py-spy put decoding at 60% of the reader's time
(``json.loads`` of the page 16%, the event constructors about 10%, the envelopes the rest),
the collector at 18% (per event a row tuple, a parsed payload, an event and an envelope) and
fetching rows at 16%. Read as one row per page (:mod:`cqrs_lab.stores.postgres_decode`: no
row tuples, each payload parsed by orjson just before its event is built, envelopes made in
C), against the row-by-row reader of the commit before, alternating in one process (11 runs,
medians, CPU time, 2 cores shared with other work, load average 1-1.5): the reader's process
236 ms against 292 ms, of which the collector 66 ms against 88 ms; the server 110 ms against
90 ms (aggregating a page costs it about what sending its rows saved); together 346 ms against
380 ms. When the server has a core of its own it runs beside the reader and only the reader's
time counts; when the cores are busy the two add up. W4's ``catch_ups`` (``python -m
benchmarks w4_postgres``; medians of 3 per figure), this reader and the row-by-row one in
alternate runs, load average 1.5-2.5: with the default collector 2.90-3.88x the peer (5 runs,
median 3.73x; 237,000-470,000 events/s) against 2.22-2.79x (4 runs, median 2.44x;
233,000-326,000); with the collector as a ``cqrs-lab project`` worker runs it 2.80-4.66x
(median 3.93x) against 2.90-4.05x (median 3.90x), no clear change (what the reader gained
there is mostly the collector's work it no longer causes, and its server does more); into
tables 2.30-3.04x (median 2.75x) against 2.22-2.32x (median 2.27x). The peer moved between
76,000 and 138,000 events/s across these runs. Reading the horizon once per statement (not
once per row) took the server's share of a whole-log read from 21-25 ms to 16-17 ms.
Then each page's payloads parsed by orjson in one call as one array, and the pages of
``read_all_pages`` decoded as the caller iterates them (:mod:`cqrs_lab.stores.postgres_page`:
the envelopes it does not keep die young, so far fewer survive into a full collection): W4's
``catch_ups``, three runs in a row, load average under 1: with the default collector 5.23x,
5.10x and 4.99x the peer (514,729-550,221 events/s against 99,999-110,274); with the
collector as a project worker 4.76x, 4.11x, 5.09x; into tables 3.59x, 3.03x, 3.72x.

**What it costs besides.** The horizon is cluster-wide: any long transaction (in any database
of the server, including an idle-in-transaction session that has written) holds every safe
reader at the position it had when it began; that lag is the price of never skipping. A
reader inside a transaction that has itself written sees no further than its own start, so
read the log before writing in a unit. Positions are unique and increasing, but a transaction
that rolls back after taking positions (an error or a crash inside a batch) leaves a hole the
sequence never fills: read the log by ``position > after``, never by counting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Literal

import psycopg

from cqrs_lab.core import Envelope, RawEvent
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.postgres_decode import (
    COLUMNS,
    decode_page,
    page_extent,
    page_sql,
    payload_builder,
)

__all__ = [
    "COLUMNS",
    "READERS",
    "Reader",
    "check_reader",
    "decode_page",
    "page_extent",
    "page_sql",
    "payload_builder",
    "pipelined_pages",
    "read_page",
    "stored_envelope",
]

Reader = Literal["safe", "naive"]
READERS: tuple[Reader, ...] = ("safe", "naive")

_EMPTY: Mapping[str, Any] = {}


def check_reader(reader: object) -> Reader:
    if reader == "safe":
        return "safe"
    if reader == "naive":
        return "naive"
    raise ConfigError(
        f"reader={reader!r}: pass 'safe' (never skips an event that commits late) or 'naive' "
        f"(the flawed 'position > after' read, for demonstrating skipped events)"
    )


def read_page(
    conn: psycopg.Connection[Any], sql: str, after: int, limit: int
) -> psycopg.Cursor[Any]:
    """Run a :func:`~cqrs_lab.stores.postgres_decode.page_sql` statement on ``conn`` in binary
    format; ``fetchone()`` the cursor for the page's row. Fetching W4's 95,291 events in pages
    of 1,000 this way took 17 ms of the client's CPU, against 43 ms for the same pages as rows
    (binary format; best of 5)."""
    return conn.cursor(binary=True).execute(sql, {"after": after, "limit": limit})


def pipelined_pages(
    conn: psycopg.Connection[Any],
    sql: str,
    after: int,
    page: int,
    decode: Callable[[Sequence[Any], int], Sequence[Envelope]],
) -> Generator[Sequence[Envelope], None, None]:
    """The pages of a catch-up on ``conn`` (a connection of its own), one query in flight.

    Each page is what one ``page_sql(reader)`` statement from the previous page's last
    position returns, cut at the horizon
    (:func:`~cqrs_lab.stores.postgres_decode.page_extent`), decoded by ``decode(row, n)``; the
    iterator ends at the first empty one. As soon as a page's row is in, the next page's
    statement is sent (pipeline mode), so the server runs it while the caller decodes and
    handles this page. Closing the iterator early reads and drops the one statement still in
    flight.
    """
    with conn.pipeline():
        cursor = read_page(conn, sql, after, page)
        while True:
            row = cursor.fetchone()
            n, last = page_extent(row)
            if n == 0 or row is None:
                return
            cursor = read_page(conn, sql, last, page)  # in flight from here
            yield decode(row, n)


def stored_envelope(row: Sequence[Any]) -> Envelope:
    """An envelope in stored form from a row of :data:`COLUMNS`."""
    eid, sid, ver, pos, tname, schema, data, corr, caus, at, meta = row
    raw = RawEvent(tname, schema, json.loads(data))
    metadata = _EMPTY if meta == "{}" else json.loads(meta)
    return Envelope(eid, sid, int(ver), int(pos), tname, schema, raw, corr, caus, at, metadata)
