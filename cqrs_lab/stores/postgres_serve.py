"""Wiring the engine of ``cqrs-lab serve --store postgresql://...`` on the PostgreSQL store.

One server process on a shared database: events, idempotency records, stored responses,
checkpoints and dead letters live in PostgreSQL (read models stay in memory and replay the
log at start-up; read-model snapshots are kept by the SQLite store only). The HTTP layer
calls :func:`build_postgres_engine` and wraps the result (tests/postgres/test_serve_postgres.py
runs it against a real server).

**Sagas across mode switches.** A saga runs either here (one server, ``--sagas internal``:
its progress is its row in ``checkpoints``) or in ``cqrs-lab project`` workers (its
progress is one tracking row ``project:VIEW/P`` per partition), and a deployment may switch
back and forth. Each step must be sent once, whichever side handled its trigger: a server
whose sagas are passive never moves their ``checkpoints`` row
(:func:`~cqrs_lab.stores.postgres_sagas.passive_sagas`); a project slot starts at the
higher of its tracking row and that row; and a server running the sagas replays each event
without sending when it is at or below the higher of its ``checkpoints`` row and the
tracking row of the event's partition (:meth:`Saga.replay_floors
<cqrs_lab.core.Saga.replay_floors>`, :func:`project_floors`), as the workers progressed
unevenly per partition.
"""

from __future__ import annotations

from dataclasses import dataclass

from cqrs_lab.core import (
    Domain,
    Engine,
    Installed,
    Saga,
    SequentialIds,
    install,
)
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.deployment_clock import DeploymentClock
from cqrs_lab.stores.postgres_records import (
    PostgresCheckpoints,
    PostgresIdempotencyStore,
    PostgresResponseRecords,
)
from cqrs_lab.stores.postgres_store import PostgresEventStore

__all__ = ["PostgresServed", "build_postgres_engine", "project_floors"]


@dataclass
class PostgresServed:
    """The engine and the PostgreSQL parts the server needs besides it."""

    engine: Engine
    installed: Installed
    store: PostgresEventStore
    checkpoints: PostgresCheckpoints
    responses: PostgresResponseRecords


def build_postgres_engine(
    dsn: str,
    domain: Domain,
    *,
    delivery: str,
    seed: int,
    ttl: float,
    max_keys: int,
) -> PostgresServed:
    """``domain`` installed on an engine whose store and records are in PostgreSQL (a
    store holding another domain's events is refused)."""
    clock = DeploymentClock()  # one clock for every process of the deployment
    store = PostgresEventStore(dsn, clock, SequentialIds())
    try:
        store.claim_domain(domain.name)
    except ConfigError:
        store.close()
        raise
    clock.floor = store.last_recorded_at
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
    for name, saga in sagas.items():  # nor for what the project workers had handled
        saga.replay_floors(project_floors(store, name))
    return PostgresServed(engine, installed, store, checkpoints, responses)


def project_floors(store: PostgresEventStore, view: str) -> list[int]:
    """How far ``cqrs-lab project`` workers handled saga ``view`` in each of its partitions
    (the watermarks of its tracking rows; ``[]`` when no worker ever ran it)."""
    rows = store.query("SELECT value FROM meta WHERE key = %s", (f"project.partitions.{view}",))
    if not rows:
        return []
    keys = {f"project:{view}/{p}".encode(): p for p in range(int(rows[0][0]))}
    floors = [0] * len(keys)
    for key, watermark in store.query(
        "SELECT key, watermark FROM tracking WHERE key = ANY(%s)", (list(keys),)
    ):
        floors[keys[bytes(key)]] = int(watermark)
    return floors
