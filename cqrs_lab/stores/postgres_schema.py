"""The tables of the PostgreSQL event store, and opening its connection pool.

Every table lives in one schema (``public`` unless the store is given another), so several
stores (tests, labs) can share one database. The global position comes from a sequence with
``CACHE 1`` (the default): each ``nextval`` is then ordered in real time across sessions,
which the gap-safe reader relies on (see :mod:`cqrs_lab.stores.postgres_reader`).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from cqrs_lab.errors import ConfigError, StoreUnavailable
from cqrs_lab.stores.store_urls import shown_store

__all__ = [
    "OUTBOX_INSERT",
    "SCHEMA_DDL",
    "check_is_a_store",
    "check_schema_name",
    "dump_json",
    "lock_version_and_positions",
    "one_line",
    "open_pool",
]

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: one statement each (run in one transaction when the store opens)
SCHEMA_DDL: tuple[str, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS events_position_seq CACHE 1",
    "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events ("
    " position bigint PRIMARY KEY, event_id text NOT NULL, stream_id text NOT NULL,"
    " stream_version bigint NOT NULL, type_name text NOT NULL, schema_version integer NOT NULL,"
    " data text NOT NULL, correlation_id text, causation_id text,"
    " recorded_at double precision NOT NULL, metadata text NOT NULL,"
    " tx xid8 NOT NULL,"
    " CONSTRAINT events_stream_version UNIQUE (stream_id, stream_version))",
    "CREATE TABLE IF NOT EXISTS snapshots ("
    " stream_id text PRIMARY KEY, version bigint NOT NULL, state text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq bigserial PRIMARY KEY, message_id text NOT NULL UNIQUE, topic text NOT NULL,"
    " payload text NOT NULL, position bigint NOT NULL, correlation_id text,"
    " published boolean NOT NULL DEFAULT false)",
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE NOT published",
    "CREATE TABLE IF NOT EXISTS idempotency ("
    " key text PRIMARY KEY, seq bigserial NOT NULL, command_type text NOT NULL,"
    " command text NOT NULL, result text, rejection text, recorded_at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS http_responses ("
    " key text PRIMARY KEY, seq bigserial NOT NULL, fingerprint text NOT NULL,"
    " status integer NOT NULL, body bytea NOT NULL, headers text NOT NULL,"
    " recorded_at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    " name text PRIMARY KEY, position bigint NOT NULL, boot integer NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    " boot integer NOT NULL, id text NOT NULL, subscription text NOT NULL,"
    " position bigint NOT NULL, event_type text NOT NULL, error text NOT NULL,"
    " attempts integer NOT NULL, parked_at double precision NOT NULL, PRIMARY KEY (boot, id))",
    # keys are bytes (UTF-8): a PostgreSQL text value cannot hold NUL
    "CREATE TABLE IF NOT EXISTS tracking ("
    " key bytea PRIMARY KEY, watermark bigint NOT NULL, above text NOT NULL)",
    # group commit (cqrs_lab.stores.postgres_group), one call: lock the streams in the order
    # given (sorted by the caller), then check every one's version in one statement, whose
    # snapshot is taken after all the locks (a stream not at its version raises CQ409, detail:
    # the stream, hint: its version), then insert the rows in a block with an exception
    # clause: a subtransaction, so the rows' xmin is an id taken after every position of the
    # transaction (see postgres_reader). Both arguments are JSON arrays: ``checks`` of
    # [stream, version], ``rows`` of the events' 11 columns (the client encodes one document
    # with the C encoder, where arrays were dumped element by element in Python)
    "CREATE OR REPLACE FUNCTION cqrs_lab_group(checks json, rows json) RETURNS void"
    " LANGUAGE plpgsql AS $$ DECLARE bad record; BEGIN"
    " PERFORM pg_advisory_xact_lock(hashtextextended(c->>0, 7))"
    " FROM json_array_elements(checks) c;"
    " SELECT u.s, v.a INTO bad FROM (SELECT c->>0 AS s, (c->>1)::bigint AS w"
    " FROM json_array_elements(checks) c) u CROSS JOIN LATERAL (SELECT"
    " coalesce(max(stream_version), 0) AS a FROM events WHERE stream_id = u.s) v"
    " WHERE v.a <> u.w LIMIT 1;"
    " IF FOUND THEN RAISE EXCEPTION 'stream % is at version %', bad.s, bad.a"
    " USING ERRCODE = 'CQ409', DETAIL = bad.s, HINT = bad.a::text; END IF;"
    " BEGIN INSERT INTO events SELECT (r->>0)::bigint, r->>1, r->>2, (r->>3)::bigint,"
    " r->>4, (r->>5)::integer, r->>6, r->>7, r->>8, (r->>9)::float8, r->>10,"
    " pg_current_xact_id() FROM json_array_elements(rows) r;"
    " EXCEPTION WHEN unique_violation THEN RAISE; END;"
    " END $$",
)


# lock a stream for the transaction and take the transaction id (so it is held before any
# position), then, in a statement of its own (a snapshot taken after the lock), read the
# stream's version and, only if it is ``want`` (NULL: any), take ``n`` positions
_LOCK = (
    "CREATE OR REPLACE FUNCTION cqrs_lab_lock(stream text, n integer, want bigint,"
    " OUT version bigint, OUT positions bigint[]) LANGUAGE plpgsql AS $$ BEGIN"
    " PERFORM pg_advisory_xact_lock(hashtextextended(stream, 7)), pg_current_xact_id();"
    " SELECT coalesce(max(stream_version), 0) INTO version FROM events"
    " WHERE stream_id = stream;"
    " positions := CASE WHEN want IS NULL OR version = want THEN ARRAY(SELECT"
    " nextval('events_position_seq') FROM generate_series(1, n)) ELSE '{}' END;"
    " END $$"
)
# one append in one statement: cqrs_lab_lock, then (only if the version is the one wanted)
# the rows, a JSON array of [event_id, type_name, schema_version, data, correlation_id,
# causation_id, recorded_at, metadata], inserted in a block with an exception clause: a
# subtransaction, so their xmin is an id taken after the positions (see postgres_reader). A
# writer that bypassed the lock (the unique constraint) gives positions NULL and the version
_APPEND = (
    "CREATE OR REPLACE FUNCTION cqrs_lab_append(stream text, want bigint, rows json,"
    " OUT version bigint, OUT positions bigint[]) LANGUAGE plpgsql AS $$"
    " DECLARE c text; BEGIN"
    " SELECT l.version, l.positions INTO version, positions"
    " FROM cqrs_lab_lock(stream, json_array_length(rows), want) l;"
    " IF cardinality(positions) = 0 THEN RETURN; END IF;"
    " BEGIN INSERT INTO events SELECT positions[i], r->>0, stream, version + i, r->>1,"
    " (r->>2)::integer, r->>3, r->>4, r->>5, (r->>6)::float8, r->>7, pg_current_xact_id()"
    " FROM json_array_elements(rows) WITH ORDINALITY AS x(r, i);"
    " EXCEPTION WHEN unique_violation THEN GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME;"
    " IF c IS DISTINCT FROM 'events_stream_version' THEN RAISE; END IF;"
    " SELECT coalesce(max(stream_version), 0) INTO version FROM events"
    " WHERE stream_id = stream; positions := NULL; END;"
    " END $$"
)
SCHEMA_DDL += (_LOCK, _APPEND)

OUTBOX_INSERT = (
    "INSERT INTO outbox (message_id, topic, payload, position, correlation_id) "
    "VALUES (%s,%s,%s,%s,%s)"
)

#: JSON documents sent to the functions above: raw UTF-8 (the server copies it as it is)
dump_json = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


#: the columns that make ``meta`` and ``events`` this lab's (another program's are refused)
_OWN_COLUMNS = {
    "meta": {"key", "value"},
    "events": {"position", "event_id", "stream_id", "stream_version", "data", "recorded_at"},
}


def check_is_a_store(conn: psycopg.Connection[Any], schema: str, dsn: str) -> None:
    """Refuse, before anything is created in it, a schema holding a table of the store's
    names (``events``, ``meta``, ...) that is not this lab's store: another program's
    tables would be altered beside, or its rows read as events."""
    names = sorted({m.group(1) for m in map(_TABLE.search, SCHEMA_DDL) if m is not None})
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = ANY(%s)",
        (schema, names),
    ).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    if not found or all(found.get(t, set()) >= cols for t, cols in _OWN_COLUMNS.items()):
        return  # nothing of the store's yet, or the store itself
    raise ConfigError(
        f"PostgreSQL schema {schema!r} at {shown_store(dsn)!r} holds tables of something "
        f"else ({', '.join(sorted(found))}), not an event store of this lab: left as it was; "
        "give a database of its own"
    )


_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")


def lock_version_and_positions(
    conn: psycopg.Connection[Any], stream_id: str, n: int, want: int | None
) -> tuple[int, list[int]]:
    """In one statement (``cqrs_lab_lock``): lock ``stream_id`` for the transaction, take
    the transaction id, read the stream's version and, if it is ``want`` (None: any), take
    ``n`` positions. Returns the version and the positions (none on a mismatch)."""
    row = conn.execute("SELECT * FROM cqrs_lab_lock(%s, %s, %s)", (stream_id, n, want)).fetchone()
    assert row is not None
    return int(row[0]), row[1]


def check_schema_name(schema: str) -> str:
    if not isinstance(schema, str) or not _NAME.fullmatch(schema):
        raise ConfigError(
            f"schema={schema!r}: pass a lower-case SQL identifier (letters, digits, _; "
            f"at most 63 characters), e.g. 'cqrs_lab'"
        )
    return schema


def open_pool(dsn: str, schema: str, *, min_size: int, max_size: int) -> ConnectionPool:
    """A pool whose connections work in ``schema`` (created if missing), ready to use."""
    if not isinstance(dsn, str) or not dsn:
        raise ConfigError(f"dsn={dsn!r}: pass a libpq connection string or postgresql:// URL")
    if not 1 <= min_size <= max_size:
        raise ConfigError(
            f"pool_size={max_size!r}: pass a whole number >= {max(1, min_size)} "
            f"(connections the store may open)"
        )
    options = _options(dsn, schema)  # before anything is done with the DSN
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            # processes starting together would race on the catalog (IF NOT EXISTS is not
            # atomic): one at a time, under a session advisory lock
            conn.execute("SELECT pg_advisory_lock(hashtext('cqrs_lab schema'))")
            try:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('cqrs_lab schema'))")
    except psycopg.Error as exc:
        reason = one_line(exc)
        if _transient(exc):  # nothing to fix in the command: try again later (exit 75)
            raise StoreUnavailable(
                f"PostgreSQL at {shown_store(dsn)!r} cannot be reached ({reason}); start it, "
                "or retry once it accepts connections"
            ) from exc
        raise ConfigError(
            f"cannot connect to PostgreSQL with dsn={shown_store(dsn)!r}: {reason}; "
            f"check the DSN (user, password, database) and the server's access rules"
        ) from exc
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs={"options": options},
        open=True,
        name=f"cqrs-lab-{schema}",
    )
    try:
        pool.wait(timeout=30)
    except PoolTimeout as exc:
        pool.close()
        raise StoreUnavailable(
            f"PostgreSQL at {shown_store(dsn)!r} accepted no pool connection within 30 s (gone "
            "again, or at max_connections): retry once it accepts connections"
        ) from exc
    return pool


def _options(dsn: str, schema: str) -> str:
    """The DSN's own ``options`` (else ``PGOPTIONS``: server settings, ``-c name=value``)
    with the store's search path added: passed alone, the pool's replaced them all. A
    search path of their own is refused: the store's schema decides where its tables are."""
    try:
        own = str(conninfo_to_dict(dsn).get("options") or "")
    except psycopg.ProgrammingError:
        own = ""  # a malformed DSN: the connection just made would have failed on it
    own = own or os.environ.get("PGOPTIONS", "")  # libpq's default, which ours replaces
    if "search_path" in own:
        raise ConfigError(
            f"dsn={shown_store(dsn)!r}: options set search_path ({own!r}); drop it: the store "
            f"works in schema {schema!r} (give a database of its own to keep stores apart)"
        )
    return f"{own} -c search_path={schema}".strip()


def _transient(exc: psycopg.Error) -> bool:
    """Whether a failure to connect is the server's state, not the command's: refused,
    unanswered or cut (no server there yet), a name the resolver could not look up for now,
    or PostgreSQL saying it cannot take a connection for now (starting up, shutting down,
    recovering, out of connection slots); not a wrong password, user or database name, a
    missing password, SSL settings the server does not match, or a malformed DSN. (libpq
    gives no SQLSTATE for a failed connection: its message is all there is.)"""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    text = str(exc)
    return any(state in text for state in _TRANSIENT)


#: what libpq and PostgreSQL say, failing a connection, while the server cannot take one
_TRANSIENT = (
    "Connection refused",
    "timeout expired",
    "timed out",
    "closed the connection unexpectedly",
    "No route to host",
    "Network is unreachable",
    "Connection reset",
    "Temporary failure in name resolution",
    "starting up",
    "shutting down",
    "recovery mode",
    "not yet accepting connections",
    "too many clients",
    "connection slots are reserved",
)


def one_line(exc: BaseException) -> str:
    """A psycopg error's message, which spans lines, on one line; a connection string it
    quotes (libpq does, for a malformed URI) has its password masked."""
    return shown_store(" ".join(str(exc).split()))
