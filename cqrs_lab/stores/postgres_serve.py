"""Wiring the engine of ``cqrs-lab serve --store postgresql://...`` on the PostgreSQL store.

One server process on a shared database: events, idempotency records, stored responses,
checkpoints and dead letters live in PostgreSQL (read models stay in memory and replay the
log at start-up; read-model snapshots are kept by the SQLite store only). The HTTP layer
calls :func:`build_postgres_engine` and wraps the result (tests/postgres/test_serve_postgres.py
runs it against a real server).
"""

from __future__ import annotations

from dataclasses import dataclass

from cqrs_lab.core import (
    CallableClock,
    Domain,
    Engine,
    Installed,
    MonotonicClock,
    Saga,
    SequentialIds,
    install,
)
from cqrs_lab.stores.postgres_records import (
    PostgresCheckpoints,
    PostgresIdempotencyStore,
    PostgresResponseRecords,
)
from cqrs_lab.stores.postgres_store import PostgresEventStore

__all__ = ["PostgresServed", "build_postgres_engine"]


@dataclass
class PostgresServed:
    """The engine and the PostgreSQL parts the server needs besides it."""

    engine: Engine
    installed: Installed
    store: PostgresEventStore
    checkpoints: PostgresCheckpoints
    responses: PostgresResponseRecords


def build_postgres_engine(
    dsn: str, domain: Domain, *, delivery: str, seed: int, ttl: float, max_keys: int
) -> PostgresServed:
    """``domain`` installed on an engine whose store and records are in PostgreSQL."""
    monotonic = MonotonicClock()
    # a monotonic clock restarts at 0 with the process: continue from the last event's time
    offset = [0.0]
    clock = CallableClock(lambda: offset[0] + monotonic.now())
    store = PostgresEventStore(dsn, clock, SequentialIds())
    offset[0] = store.last_recorded_at
    store.ids = ids = SequentialIds(f"b{store.boot}-")  # unique across restarts
    engine = Engine(clock=clock, seed=seed, ids=ids, store=store, registry=store.registry)
    installed = install(engine, domain, delivery=delivery)
    engine.bus.idempotency = PostgresIdempotencyStore(
        store, lambda: {c.__name__: c for c in engine.bus.handlers}, ttl=ttl, max_keys=max_keys
    )
    responses = PostgresResponseRecords(store, ttl=ttl, max_keys=max_keys)
    sagas = {
        name: consumer
        for name in engine.positions()
        if isinstance(consumer := engine.projection(name), Saga)
    }
    checkpoints = PostgresCheckpoints(
        store, floors=lambda: {name: saga.replay_until for name, saga in sagas.items()}
    )
    for name, position in checkpoints.previous().items():
        if name in sagas:  # a replaying saga sends nothing again up to where it had got
            sagas[name].replay_until = position
    return PostgresServed(engine, installed, store, checkpoints, responses)
