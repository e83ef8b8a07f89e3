"""Two server processes on one store: a command that loses a race for its stream (the other
process appended between its decision and its append) is decided again, not answered 409."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from cqrs_lab.core import ManualClock, SequentialIds
from cqrs_lab.domains.bank.messages import Deposited
from cqrs_lab.http import ServerConfig, build_engine, create_app
from cqrs_lab.stores.postgres import PostgresEventStore
from tests.http.conftest import Live
from tests.postgres.cluster import Cluster


@pytest.fixture
def race_url(pg_cluster: Cluster) -> Iterator[str]:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE race")
    yield f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/race"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE race WITH (FORCE)")


@pytest.mark.parametrize("if_match", [None, '"1"'])
def test_a_lost_race_is_decided_again_unless_the_client_named_a_version(
    race_url: str, if_match: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ServerConfig(domain="cqrs_lab.domains.bank", store=race_url)
    built = build_engine(config)
    live = Live(create_app(built.engine, config, responses=built.responses,
                           checkpoints=built.checkpoints))  # fmt: skip
    store = built.engine.store
    assert isinstance(store, PostgresEventStore)
    other = PostgresEventStore(
        store.dsn, ManualClock(), SequentialIds("other-"), store.registry, pool_size=1
    )
    try:
        opened = live.post("/accounts", json={"account_id": "a", "opening_balance": 100})
        assert opened.status_code == 201, opened.text
        real = store.append
        raced: list[str] = []

        def append(stream_id: str, events: Any, expected: Any, **kw: Any) -> Any:
            if not raced:  # the other process commits first, after this one decided
                raced.append(stream_id)
                other.append(stream_id, [Deposited("a", 5)], other.stream_version(stream_id))
            return real(stream_id, events, expected, **kw)

        monkeypatch.setattr(store, "append", append)
        headers = {"If-Match": if_match} if if_match else {}
        r = live.post("/accounts/a/deposits", json={"amount": 7}, headers=headers)
        assert raced
        if if_match is None:
            assert r.status_code == 200, r.text
            assert r.json()["stream_version"] == 3  # after the other process's deposit
            got = live.get(
                "/accounts/a",
                params={"wait": 5},
                headers={"X-Consistency-Token": str(r.json()["position"])},
            )
            assert got.headers["x-stale"] == "false" and got.json()["balance"] == 112
        else:  # the client asked for version 1: the race is its conflict to see
            assert r.status_code == 409 and r.json()["title"] == "concurrent write", r.text
    finally:
        live.close()
        other.close()
        store.close()
