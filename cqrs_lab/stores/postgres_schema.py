"""The tables of the PostgreSQL event store, and opening its connection pool.

Every table lives in one schema (``public`` unless the store is given another), so several
stores (tests, labs) can share one database. The global position comes from a sequence with
``CACHE 1`` (the default): each ``nextval`` is then ordered in real time across sessions,
which the gap-safe reader relies on (see :mod:`cqrs_lab.stores.postgres_reader`).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.store_urls import shown_store

__all__ = [
    "SCHEMA_DDL",
    "VERSION_AND_POSITIONS",
    "check_schema_name",
    "insert_sql",
    "lock_version_and_positions",
    "open_pool",
]

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: one statement each (run in one transaction when the store opens)
SCHEMA_DDL = (
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
    # given (sorted by the caller), check each one's version, each check a statement of its
    # own and so a snapshot taken after the locks (a stream not at its version raises CQ409,
    # detail: the stream, hint: its version), then insert the rows in a block with an
    # exception clause: a subtransaction, so the rows' xmin is an id taken after every
    # position of the transaction (see postgres_reader)
    "CREATE OR REPLACE FUNCTION cqrs_lab_group(streams text[], wants bigint[],"
    " v_pos bigint[], v_eid text[], v_sid text[], v_ver bigint[], v_type text[],"
    " v_schema integer[], v_data text[], v_corr text[], v_caus text[], v_at float8[],"
    " v_meta text[]) RETURNS void"
    " LANGUAGE plpgsql AS $$ DECLARE s text; w bigint; a bigint; BEGIN"
    " FOREACH s IN ARRAY streams LOOP"
    " PERFORM pg_advisory_xact_lock(hashtextextended(s, 7)); END LOOP;"
    " FOR s, w IN SELECT * FROM unnest(streams, wants) LOOP"
    " SELECT coalesce(max(stream_version), 0) INTO a FROM events WHERE stream_id = s;"
    " IF a <> w THEN RAISE EXCEPTION 'stream % is at version %, expected %', s, a, w"
    " USING ERRCODE = 'CQ409', DETAIL = s, HINT = a::text; END IF;"
    " END LOOP;"
    " BEGIN INSERT INTO events SELECT *, pg_current_xact_id() FROM unnest(v_pos, v_eid,"
    " v_sid, v_ver, v_type, v_schema, v_data, v_corr, v_caus, v_at, v_meta);"
    " EXCEPTION WHEN unique_violation THEN RAISE; END;"
    " END $$",
)


# the stream's version and, only when it is the one wanted (or any is), its positions
VERSION_AND_POSITIONS = (
    "WITH v AS (SELECT coalesce(max(stream_version), 0) AS v FROM events "
    "WHERE stream_id = %(stream)s) "
    "SELECT v.v, ARRAY(SELECT nextval('events_position_seq') FROM generate_series(1, %(n)s) "
    "WHERE %(want)s::bigint IS NULL OR v.v = %(want)s::bigint) FROM v"
)


def lock_version_and_positions(
    conn: psycopg.Connection[Any], stream_id: str, n: int, want: int | None
) -> tuple[int, list[int]]:
    """In one round trip: lock ``stream_id`` for the transaction, take the transaction id (so
    it is held before any position), read the stream's version and, if it is ``want`` (None:
    any), take ``n`` positions. Returns the version and the positions (none on a mismatch)."""
    with conn.pipeline():  # one round trip; the server still runs them in order
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7)), pg_current_xact_id()",
            (stream_id,),
        )
        cur = conn.execute(VERSION_AND_POSITIONS, {"stream": stream_id, "n": n, "want": want})
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), [int(p) for p in row[1]]


@functools.cache
def insert_sql(n: int) -> str:
    """The statement inserting ``n`` event rows (each records its transaction id)."""
    row = "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,pg_current_xact_id())"
    return f"INSERT INTO events VALUES {','.join([row] * n)}"


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
        reason = " ".join(str(exc).split())  # psycopg's message spans lines: one line
        raise ConfigError(
            f"cannot connect to PostgreSQL with dsn={shown_store(dsn)!r}: {reason}; "
            f"check that the server runs and the DSN is right"
        ) from exc
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs={"options": f"-c search_path={schema}"},
        open=True,
        name=f"cqrs-lab-{schema}",
    )
    try:
        pool.wait(timeout=30)
    except PoolTimeout as exc:
        pool.close()
        raise ConfigError(
            f"PostgreSQL at {shown_store(dsn)!r} accepted no pool connection within 30 s; "
            f"check max_connections on the server"
        ) from exc
    return pool
