"""The engine on the PostgreSQL store: a domain runs, the lab's checks pass, records persist."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from cqrs_lab.checks.application_log import ApplicationLog
from cqrs_lab.checks.invariants import check_engine
from cqrs_lab.core import DeadLetter, Engine, ManualClock, SequentialIds
from cqrs_lab.domains import bank
from cqrs_lab.stores.postgres import (
    PostgresCheckpoints,
    PostgresEventStore,
    PostgresIdempotencyStore,
)
from tests.postgres.cluster import INSTALL_HINT, ClusterError, find_bindir
from tests.postgres.conftest import drop_schema

_names = itertools.count(1)


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    name = f"eng{next(_names)}"
    yield name
    drop_schema(pg_dsn, name)


def _engine(dsn: str, schema: str, clock: ManualClock) -> tuple[Engine, ApplicationLog]:
    store = PostgresEventStore(dsn, clock, SequentialIds("e"), schema=schema, pool_size=2)
    log = ApplicationLog()
    engine = Engine(clock=clock, seed=1, store=store, registry=store.registry, recorder=log)
    log.attach(engine)
    bank.install(engine, delivery="effectively-once", statements=False)
    engine.bus.idempotency = PostgresIdempotencyStore(
        store, lambda: {c.__name__: c for c in engine.bus.handlers}, ttl=3600.0, max_keys=100
    )
    return engine, log


def test_the_bank_runs_on_postgres_and_the_checks_pass(pg_dsn: str, schema: str) -> None:
    clock = ManualClock()
    engine, log = _engine(pg_dsn, schema, clock)
    store = engine.store
    assert isinstance(store, PostgresEventStore)
    try:
        engine.dispatch(bank.OpenAccount("a", "ann", 10))
        engine.dispatch(bank.OpenAccount("b", "bob", 0))
        first = engine.dispatch(bank.Deposit("a", 5), idempotency_key="k1")
        again = engine.dispatch(bank.Deposit("a", 5), idempotency_key="k1")
        assert again.replayed and again.position == first.position
        engine.dispatch(bank.RequestTransfer("t1", "a", "b", 12))
        engine.run_until_idle()
        report = check_engine(engine, log)
        assert report.ok, report
        assert store.head_position >= 5  # the transfer's saga appended its steps too
        assert engine.subscription("balances").position == store.head_position
        head = store.head_position
    finally:
        store.close()
    # a second process on the same schema answers the retry from the recorded result
    engine2, _ = _engine(pg_dsn, schema, clock)
    store2 = engine2.store
    assert isinstance(store2, PostgresEventStore)
    try:
        replay = engine2.dispatch(bank.Deposit("a", 5), idempotency_key="k1")
        assert replay.replayed and replay.position == first.position
        assert [e.position for e in replay.events] == [e.position for e in first.events]
        assert store2.head_position == head  # nothing appended again
    finally:
        store2.close()


def test_checkpoints_and_dead_letters_survive_a_new_store(pg_dsn: str, schema: str) -> None:
    clock = ManualClock()
    store = PostgresEventStore(pg_dsn, clock, SequentialIds("e"), schema=schema)
    try:
        (env,) = store.append("s", [bank.Deposited("a", 1)], 0)
        saved: list[int] = []
        checkpoints = PostgresCheckpoints(
            store, on_save=lambda: saved.append(1), floors=lambda: {"sagas": 9}
        )
        letter = DeadLetter("d1", "balances", env, "boom", 3, 1.5)
        with store.batch():
            checkpoints.save({"balances": 1, "sagas": 2}, [letter])
        assert saved == [1]
    finally:
        store.close()
    again = PostgresEventStore(pg_dsn, clock, SequentialIds("f"), schema=schema)
    try:
        reopened = PostgresCheckpoints(again)
        assert reopened.previous() == {"balances": 1, "sagas": 9}  # the floor was higher
        (row,) = reopened.history()
        assert row["id"] == "d1" and row["position"] == 1 and row["attempts"] == 3
        assert row["boot"] == again.boot - 1
    finally:
        again.close()


def test_missing_server_binaries_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    with pytest.raises(ClusterError) as err:
        find_bindir()
    assert str(err.value) == INSTALL_HINT
    assert "install the Debian package `postgresql`" in INSTALL_HINT
