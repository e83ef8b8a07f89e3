"""``cqrs-lab serve --store postgresql://...``: the real server on the PostgreSQL store.

A uvicorn subprocess on 127.0.0.1, killed with SIGKILL after acknowledging commands and
started again on the same database: the log, the balances and the Idempotency-Key answers
are all still there.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.http.config import ServerConfig, build_engine
from tests.http.conftest import Server
from tests.postgres.cluster import Cluster

pytestmark = pytest.mark.slow  # real uvicorn subprocesses


@pytest.fixture
def served_url(pg_cluster: Cluster) -> Iterator[str]:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE served")
    yield f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/served"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE served WITH (FORCE)")


def test_a_killed_server_restarts_with_everything_it_acknowledged(served_url: str) -> None:
    first = Server("--store", served_url)
    try:
        with httpx.Client(base_url=first.url, timeout=10) as client:
            for account, opening in (("a", 100), ("b", 0)):
                r = client.post(
                    "/accounts", json={"account_id": account, "opening_balance": opening}
                )
                assert r.status_code == 201, r.text
            deposit = client.post(
                "/accounts/a/deposits", json={"amount": 7}, headers={"Idempotency-Key": "k1"}
            )
            assert deposit.status_code == 200, deposit.text
            token = deposit.headers["x-consistency-token"]
            # a token read waits for the view only when given ?wait= (without it, a stale
            # answer says X-Stale: true and is right to)
            got = client.get(
                "/accounts/a", params={"wait": 5}, headers={"X-Consistency-Token": token}
            )
            assert got.headers["x-stale"] == "false" and got.json()["balance"] == 107
            assert got.headers["etag"] == '"2"'  # opened, deposited: the stream's version
            stale = client.post(
                "/accounts/a/deposits", json={"amount": 1}, headers={"If-Match": '"1"'}
            )
            assert stale.status_code == 412, stale.text
            fresh = client.post(
                "/accounts/a/deposits", json={"amount": 1}, headers={"If-Match": '"2"'}
            )
            assert fresh.status_code == 200, fresh.text
            got = client.get(
                "/accounts/a",
                params={"wait": 5},
                headers={"X-Consistency-Token": fresh.headers["x-consistency-token"]},
            )
            assert got.headers["x-stale"] == "false" and got.headers["etag"] == '"3"'
            assert got.json()["balance"] == 108
    finally:
        first.kill()  # SIGKILL
    second = Server("--store", served_url)
    try:
        with httpx.Client(base_url=second.url, timeout=10) as client:
            replay = client.post(
                "/accounts/a/deposits", json={"amount": 7}, headers={"Idempotency-Key": "k1"}
            )
            assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
            assert replay.json() == deposit.json()
            got = client.get(
                "/accounts/a", params={"wait": 5}, headers={"X-Consistency-Token": token}
            )
            assert got.status_code == 200 and got.headers["x-stale"] == "false"
            assert got.json()["balance"] == 108  # applied once
    finally:
        second.kill()


def test_a_store_that_is_no_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        ServerConfig(store="postgres:/nohost")


def test_a_database_is_served_and_projected_only_with_the_domain_that_wrote_it(
    db_url: str,
) -> None:
    """Another domain's views and sagas would dead-letter the events they do not know (as
    on SQLite): the first domain served is recorded in the schema, any other refused, for
    ``serve`` and for ``cqrs-lab project`` workers alike, before either touches a view."""
    from cqrs_lab.stores.postgres_project import open_worker

    build_engine(ServerConfig(store=db_url)).store.close()  # the bank's, recorded
    with pytest.raises(ConfigError, match="holds the events of domain 'bank', not 'inventory'"):
        build_engine(ServerConfig(store=db_url, domain="cqrs_lab.domains.inventory"))
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'domain'").fetchall() == [("bank",)]
    build_engine(ServerConfig(store=db_url)).store.close()  # the bank's again: fine
    open_worker(db_url, "cqrs_lab.domains.bank", None, partitions=2).close()


def test_a_project_worker_of_another_domain_is_refused(db_url: str) -> None:
    import dataclasses

    from cqrs_lab.domains import bank
    from cqrs_lab.stores.postgres_project import open_worker

    open_worker(db_url, bank.domain, None, partitions=2).close()  # the first records "bank"
    other = dataclasses.replace(bank.domain, name="bank-fork")  # the same sagas, renamed
    with pytest.raises(ConfigError, match="domain 'bank', not 'bank-fork'"):
        open_worker(db_url, other, None, partitions=4)
    # refused before it wrote anything: the partition count is still the first worker's,
    # and the next refusal names the domain again, not the count
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT value FROM meta WHERE key LIKE 'project.partitions.%'")
        assert rows.fetchall() == [("2",)]
    with pytest.raises(ConfigError, match="domain 'bank', not 'bank-fork'"):
        open_worker(db_url, other, None, partitions=4)


@pytest.mark.parametrize(
    "theirs",
    ["CREATE TABLE events (id int, payload text)", "CREATE TABLE meta (k int, v int)"],
)
def test_a_database_of_something_else_is_refused_and_left_as_it_was(
    db_url: str, theirs: str
) -> None:
    """Another program's ``events`` table: the lab created its nine tables beside it, then
    crashed with a traceback; its ``meta``: a traceback. Both are refused before anything
    is created; a database with only other names in it (``users``) is used as it is."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(theirs)
    with pytest.raises(ConfigError, match="holds tables of something else"):
        build_engine(ServerConfig(store=db_url))
    with psycopg.connect(db_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert len(tables) == 1  # theirs only


def test_a_database_with_other_tables_only_gets_the_store_beside_them(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id int)")
    build_engine(ServerConfig(store=db_url)).store.close()
    build_engine(ServerConfig(store=db_url)).store.close()  # and it is a store now


def test_serve_with_workers_refused_its_settings_exits_2_as_one_process_does(db_url: str) -> None:
    """A worker's ConfigError (here another domain's schema) made the parent exit 3."""
    import subprocess
    import sys

    build_engine(ServerConfig(store=db_url)).store.close()  # the bank's
    cmd = [sys.executable, "-m", "cqrs_lab.cli", "serve", "--port", "0", "--workers", "2",
           "--store", db_url, "--domain", "cqrs_lab.domains.inventory"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "holds the events of domain 'bank'" in done.stderr
