"""A store's sagas run in one place at a time: one server (``--sagas internal``) or
``cqrs-lab project`` workers, never both and never two servers (each would send every step)."""

from __future__ import annotations

import itertools

import pytest

from cqrs_lab.domains import bank
from cqrs_lab.errors import ConfigError
from cqrs_lab.http.config import ServerConfig, build_engine
from cqrs_lab.stores.postgres_project import open_worker

_names = itertools.count(1)


def test_the_sagas_run_in_one_place_at_a_time(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = db_url
    import cqrs_lab.stores.postgres_sagas as sagas

    real_claim = sagas.claim_sagas
    monkeypatch.setattr(sagas, "claim_sagas", lambda store: real_claim(store, wait=0.3))
    internal = build_engine(ServerConfig(store=url, sagas="internal"))
    try:
        with pytest.raises(ConfigError, match="another cqrs-lab serve process runs the sagas"):
            build_engine(ServerConfig(store=url, sagas="internal"))
        external = build_engine(ServerConfig(store=url, sagas="external"))  # a replica: fine
        external.store.close()
        with pytest.raises(ConfigError, match="runs the sagas on this store itself"):
            open_worker(url, bank.domain, None, partitions=4)
    finally:
        internal.store.close()  # its lock goes with its session
    worker = open_worker(url, bank.domain, None, partitions=4)
    try:
        with pytest.raises(ConfigError, match="1 cqrs-lab project worker"):
            build_engine(ServerConfig(store=url, sagas="internal"))
    finally:
        worker.close()
    build_engine(ServerConfig(store=url, sagas="internal")).store.close()  # free again


def test_a_database_gone_while_the_sagas_are_claimed_is_unavailable_not_a_traceback(
    pg_dsn: str, pg_schema: str
) -> None:
    """The start-up's own session (the saga-runner lock) meets the database gone: the lab's
    StoreUnavailable (``serve`` exits 75, try again later), not psycopg's error."""
    import socket

    from cqrs_lab.core import SequentialIds
    from cqrs_lab.errors import StoreUnavailable
    from cqrs_lab.stores.deployment_clock import DeploymentClock
    from cqrs_lab.stores.postgres_sagas import claim_sagas
    from cqrs_lab.stores.postgres_store import PostgresEventStore

    store = PostgresEventStore(pg_dsn, DeploymentClock(), SequentialIds(), schema=pg_schema)
    try:
        with socket.socket() as s:  # a port nothing listens on once closed
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        store.dsn = f"host=127.0.0.1 port={port} dbname=lab user=postgres"
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            claim_sagas(store, wait=0.3)
    finally:
        store.close()


def test_a_server_whose_saga_lock_session_was_dropped_stops_as_on_an_outage(
    db_url: str,
) -> None:
    """The lock is held by a session of its own, idle; the database dropped it (terminated
    here; ``idle_session_timeout`` does the same) and the server went on running the sagas,
    ``/readyz`` 200, while ``cqrs-lab project`` was let in beside it: the sagas ran in two
    places. Its next checkpoint now finds the session gone: StoreUnavailable (exit 75)."""
    import psycopg

    from cqrs_lab.errors import StoreUnavailable

    built = build_engine(ServerConfig(store=db_url, sagas="internal"))
    store = built.store
    try:
        (lock,) = store.held
        built.checkpoints.save(built.engine.positions(), [])  # held: fine
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (lock.info.backend_pid,))
        store._held_checked = -1e9  # the next save checks (at most once a second)
        with pytest.raises(StoreUnavailable, match="dropped the session holding this process"):
            built.checkpoints.save(built.engine.positions(), [])
    finally:
        store.close()
