"""Which sagas run where on the PostgreSQL store: the passive replicas a serve worker keeps,
the sagas a ``cqrs-lab project`` worker may run, and the advisory-lock keys the workers share
(see :mod:`cqrs_lab.stores.postgres_project`).

The sagas of a store run in one place at a time: either in one server (``--sagas internal``,
which holds the store's *saga-runner* lock, :func:`claim_sagas`) or in ``cqrs-lab project``
workers (each holds a *member* lock). Each side takes its own lock, then looks for the
other's, and refuses to start when it is held: two servers both running the sagas, or a
server and project workers, would each send every step (the bus's idempotency records stop
a double effect only while they are kept). Started at the same moment, both may refuse;
never both run. PostgreSQL releases the locks with the session, kill -9 included.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable
from typing import Any

import psycopg

from cqrs_lab.core import Domain, Engine, Saga
from cqrs_lab.errors import ConfigError, CqrsLabError
from cqrs_lab.stores.postgres_records import PostgresCheckpoints
from cqrs_lab.stores.postgres_store import PostgresEventStore

__all__ = [
    "PASSIVE",
    "claim_sagas",
    "live_holders",
    "lock_key",
    "passive_sagas",
    "runner_key",
    "saga_names",
]

#: ``replay_until`` of a saga that only follows the log (a serve worker's replica)
PASSIVE = 2**62


def passive_sagas(engine: Engine, checkpoints: PostgresCheckpoints | None = None) -> list[str]:
    """Make every saga on ``engine`` a read-only replica: it follows the log (its state and
    queries stay current) and sends nothing. Returns their names.

    ``checkpoints`` (the server's) never saves their positions from now on: the saga's row
    keeps what the last server that ran it had handled (the project workers start from it),
    not how far a replica that sent nothing has read.
    """
    names = []
    for name in engine.positions():
        consumer = engine.projection(name)
        if isinstance(consumer, Saga):
            consumer.replay_until = PASSIVE
            names.append(name)
    if checkpoints is not None:
        checkpoints.floors = None
        checkpoints.passive = frozenset(names)
    return names


def saga_names(domain: Domain, chosen: Iterable[str] | None = None) -> list[str]:
    """The domain's sagas (``chosen`` must name sagas only)."""
    sagas = [n for n in domain.view_names if isinstance(domain.view(n).factory(), Saga)]
    if chosen is None:
        return sagas
    names = list(chosen)
    for name in names:
        domain.view(name)  # an unknown name fails here, naming the declared ones
        if name not in sagas:
            raise ConfigError(
                f"--projection {name!r} is a read model, not a saga: read models are kept by "
                f"each serve worker; pass one of the sagas ({', '.join(sagas) or 'none'})"
            )
    return names


def lock_key(schema: str, name: str) -> int:
    """The first key of an advisory lock (a non-negative int4, stable across processes).

    >>> lock_key("public", "transfer-saga") == lock_key("public", "transfer-saga") >= 0
    True
    """
    return zlib.crc32(f"cqrs_lab:{schema}:{name}".encode()) & 0x7FFFFFFF


def runner_key(schema: str) -> int:
    """The first key of the saga-runner lock (second key 0) of the store's schema."""
    return lock_key(schema, "saga-runner")


def live_holders(conn: psycopg.Connection[Any], key: int) -> int:
    """Sessions other than ``conn``'s holding an advisory lock ``(key, n)`` in its database."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid::bigint = %s AND objsubid = 2 AND pid <> pg_backend_pid()",
        (key,),
    ).fetchone()
    return int(row[0]) if row else 0


def claim_sagas(store: PostgresEventStore, wait: float = 3.0) -> None:
    """This process runs the store's sagas: hold its saga-runner lock until ``store`` is
    closed (or the process dies). Raises :class:`ConfigError` while another server holds it
    or ``cqrs-lab project`` workers are live on the store, after trying for ``wait`` seconds
    (a process that has just stopped frees its locks when its session ends, a moment later).
    """
    conn = store.session()  # the database gone meanwhile: StoreUnavailable, exit 75
    key = runner_key(store.schema)
    deadline = time.monotonic() + wait
    while True:
        try:
            with store.translated(conn):
                row = conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (key,)).fetchone()
                mine = bool(row and row[0])
                workers = live_holders(conn, lock_key(store.schema, "members"))
                if mine and not workers:
                    store.on_close.append(conn.close)  # the lock goes with the session
                    store.held.append(conn)  # watched: lost, the server stops (exit 75)
                    return
                if mine:
                    conn.execute("SELECT pg_advisory_unlock(%s, 0)", (key,))
        except CqrsLabError:
            conn.close()
            raise
        if time.monotonic() >= deadline:
            conn.close()
            raise ConfigError(
                f"--sagas internal: {workers} cqrs-lab project worker(s) run the sagas on "
                f"this store; stop them first, or serve with --sagas external"
                if workers
                else "--sagas internal: another cqrs-lab serve process runs the sagas on this "
                "store; stop it, or serve this one with --sagas external"
            )
        time.sleep(0.1)
