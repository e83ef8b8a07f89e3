"""Positions across processes: holes left by rolled-back appends, consistency tokens
honoured by another server process than the one that gave them, and no cached aggregate
remembering a rolled-back commit once another process has written to its stream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from cqrs_lab.core import ANY, Engine, ManualClock, MonotonicClock, SequentialIds
from cqrs_lab.domains import bank
from cqrs_lab.domains.bank.aggregates import Account, account_stream
from cqrs_lab.http.config import ServerConfig
from cqrs_lab.http.driver import Driver
from cqrs_lab.stores.postgres import PostgresEventStore
from tests.core.helpers import Tally, Ticked
from tests.http.conftest import Server
from tests.postgres.cluster import Cluster
from tests.postgres.conftest import drop_schema

_names = itertools.count(1)
SEMANTICS = ("at-most-once", "at-least-once", "effectively-once")


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    name = f"holes{next(_names)}"
    yield name
    drop_schema(pg_dsn, name)


def _tally(name: str) -> Tally:
    tally = Tally()
    tally.name = name
    return tally


def test_a_rolled_back_batch_leaves_a_hole_every_subscription_passes(
    pg_dsn: str, schema: str
) -> None:
    clock = ManualClock()
    store = PostgresEventStore(pg_dsn, clock, SequentialIds("e"), schema=schema, pool_size=2)
    try:
        engine = Engine(clock=clock, seed=1, store=store, registry=store.registry)
        store.registry.register(Ticked)
        tallies = {s: _tally(f"tally-{s}") for s in SEMANTICS}
        for semantics, tally in tallies.items():
            engine.subscribe(tally, semantics)
        store.append("s0", [Ticked(0), Ticked(1)], ANY)
        engine.run_until_idle()
        with pytest.raises(RuntimeError), store.batch():
            store.append("s1", [Ticked(2), Ticked(3), Ticked(4)], ANY)  # takes 3..5
            raise RuntimeError("the batch fails after taking positions")
        for i in range(5, 8):
            store.append(f"s{i % 2}", [Ticked(i)], ANY)
        engine.run_until_idle()
        positions = [e.position for e in store.read_all(0)]
        assert positions == [1, 2, 6, 7, 8]  # a hole at 3..5, never filled
        for semantics, tally in tallies.items():
            sub = engine.subscription(tally.name)
            assert sub.position == sub.checkpoint == store.head_position == 8, semantics
            assert sorted(tally.count.to_dict()) == positions, semantics
    finally:
        store.close()


@pytest.fixture
def served(pg_cluster: Cluster) -> Iterator[str]:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE tokens")
    yield f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/tokens"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE tokens WITH (FORCE)")


@pytest.mark.slow
def test_a_token_from_one_process_is_honoured_by_another(served: str, pg_cluster: Cluster) -> None:
    a = Server("--store", served, "--sagas", "external")
    b = Server("--store", served, "--sagas", "external")
    try:
        with (
            httpx.Client(base_url=a.url, timeout=10) as ca,
            httpx.Client(base_url=b.url, timeout=10) as cb,
        ):
            r = ca.post("/accounts", json={"account_id": "x", "opening_balance": 5})
            assert r.status_code == 201, r.text
            token = r.headers["x-consistency-token"]
            got = cb.get("/accounts/x?wait=5", headers={"X-Consistency-Token": token})
            assert got.status_code == 200 and got.headers["x-stale"] == "false"
            assert got.json()["balance"] == 5
            # an older transaction still open holds every safe reader below it
            with psycopg.connect(pg_cluster.dsn("tokens")) as held:
                held.execute("SELECT pg_current_xact_id()")  # takes a transaction id
                r = ca.post("/accounts/x/deposits", json={"amount": 3})
                token = r.headers["x-consistency-token"]
                stale = cb.get("/accounts/x?wait=0.3", headers={"X-Consistency-Token": token})
                assert stale.headers["x-stale"] == "true"
                assert int(stale.headers["x-read-position"]) < int(token)
                assert stale.json()["balance"] == 5
                held.rollback()
            fresh = cb.get("/accounts/x?wait=5", headers={"X-Consistency-Token": token})
            assert fresh.headers["x-stale"] == "false" and fresh.json()["balance"] == 8
    finally:
        a.kill()
        b.kill()


def test_a_failed_group_commit_leaves_no_phantom_aggregate(pg_dsn: str, schema: str) -> None:
    def engine_on(ids: str) -> tuple[Engine, PostgresEventStore]:
        clock = MonotonicClock()
        store = PostgresEventStore(pg_dsn, clock, SequentialIds(ids), schema=schema, pool_size=2)
        engine = Engine(clock=clock, seed=1, store=store, registry=store.registry)
        bank.install(engine)
        return engine, store

    engine, store = engine_on("a")
    other, other_store = engine_on("b")
    doomed: list[int] = []  # set by the command whose group commit is made to fail

    @contextlib.contextmanager
    def group() -> Iterator[None]:
        with store.batch():
            yield
            if doomed:
                doomed.clear()
                raise RuntimeError("the commit fails")  # the transaction rolls back

    def withdraw() -> object:
        doomed.append(1)
        return engine.dispatch(bank.Withdraw("x", 30))

    async def scenario() -> int:
        driver = Driver(engine, ServerConfig(), group=group)
        await driver.start()
        try:
            await driver.submit(lambda: engine.dispatch(bank.OpenAccount("x", "x", 100)))
            with pytest.raises(RuntimeError):
                await driver.submit(withdraw)
            other.dispatch(bank.Deposit("x", 5))  # another process: back at that version
            account = engine.repository.load(Account, account_stream("x"))
            return int(account.balance)
        finally:
            await driver.stop(timeout=5)

    try:
        assert asyncio.run(scenario()) == 105  # not 70: the withdrawal never happened
    finally:
        store.close()
        other_store.close()
