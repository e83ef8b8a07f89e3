"""Many processes over one PostgreSQL store, and the kill -9 drill.

``serve --workers 2`` and ``project --workers 2`` (the bank: transfers, so the saga runs in
the project workers) on the throwaway cluster; a client loop on 127.0.0.1 sends commands
with Idempotency-Keys and retries; one serve worker and one project worker are killed with
SIGKILL mid-load. Then: no acknowledged command lost, no event applied twice by the saga,
every transfer ended and money conserved (the bank's invariants on an engine rebuilt from
the log), and the surviving project worker took over the dead one's partitions (the time
it took is measured). The counts are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from cqrs_lab.checks.invariants import check_domain_invariants
from cqrs_lab.cli import main
from cqrs_lab.core import Engine, ManualClock, SequentialIds
from cqrs_lab.domains import bank
from cqrs_lab.stores.postgres import PostgresEventStore
from cqrs_lab.stores.postgres_sagas import passive_sagas
from tests.postgres.cluster import Cluster, free_port
from tests.postgres.many_processes import Client, Proc, slot_owners

pytestmark = pytest.mark.slow  # real server and worker processes

SAGA = "transfer-saga"
PARTITIONS = 8


@pytest.fixture
def drill_db(pg_cluster: Cluster) -> Iterator[tuple[str, str]]:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE drill")
    yield f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/drill", pg_cluster.dsn("drill")
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE drill WITH (FORCE)")


def test_workers_need_the_postgresql_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2", "--store", "memory"]) == 2
    err = capsys.readouterr().err.strip()
    assert "one-process stores" in err and "postgresql://" in err and "\n" not in err


@pytest.mark.parametrize("command", ["serve", "project"])
def test_a_worker_count_past_the_limit_is_refused_before_any_process_starts(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://nobody@127.0.0.1:9/none"  # never reached: refused first
    assert main([command, "--workers", str(10**9), "--store", url]) == 2
    err = capsys.readouterr().err
    assert "1000000000" in err and "from 1 to 64" in err


def test_project_refuses_a_read_model_and_a_non_postgres_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["project", "--store", "sqlite:x.db"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err


def test_a_plain_read_model_is_not_a_project_view() -> None:
    from cqrs_lab.errors import ConfigError
    from cqrs_lab.stores.postgres_sagas import saga_names

    assert saga_names(bank.domain) == [SAGA]
    with pytest.raises(ConfigError, match="read model, not a saga"):
        saga_names(bank.domain, ["balances"])


@pytest.mark.slow
def test_the_parent_forwards_sigterm_and_exits(drill_db: tuple[str, str]) -> None:
    url, _ = drill_db
    serve = Proc("serve", "--store", url, "--workers", "2", "--port", "0")
    try:
        found = serve.wait_line(r"worker pids ([\d, ]+); (http://\S+)")
        pids = [int(p) for p in found.group(1).split(", ")]
        assert httpx.get(found.group(2) + "/livez", timeout=5).status_code == 200
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(30) == 0
        for pid in pids:  # each worker drained and exited (reaped by the parent)
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        serve.close()


def _shares(owners: list[int]) -> list[int]:
    """The slots each owner holds, fewest first."""
    return sorted(owners.count(o) for o in set(owners))


def _rebuilt(url: str) -> tuple[Engine, PostgresEventStore]:
    clock = ManualClock()
    store = PostgresEventStore(url, clock, SequentialIds("check-"), pool_size=2)
    engine = Engine(clock=clock, seed=0, store=store, registry=store.registry)
    bank.install(engine)
    passive_sagas(engine)  # follow the log, send nothing
    engine.run_until_idle()
    return engine, store


def test_kill_9_drill(drill_db: tuple[str, str]) -> None:
    url, dsn = drill_db
    port = free_port()
    serve = Proc("serve", "--store", url, "--workers", "2", "--port", str(port),
                 "--gc-freeze-every", "0")  # fmt: skip
    project: Proc | None = None
    try:
        pids = serve.wait_line(r"worker pids ([\d, ]+);").group(1)
        serve_pids = [int(p) for p in pids.split(", ")]
        project = Proc("project", "--store", url, "--workers", "2", "--record-applications",
                       "--partitions", str(PARTITIONS))  # fmt: skip
        project_pids = [int(p) for p in project.wait_line(r"pids ([\d, ]+)").group(1).split(", ")]
        # one snapshot of the locks per look: the workers settle on fair shares of 4 and 4
        # (the first may have taken more before the second joined; it gives the extra back at
        # its next rebalance, and they wait free until the other's next one)
        deadline = time.monotonic() + 60
        while _shares(slot_owners(dsn, "public", SAGA)) != [4, 4]:
            assert time.monotonic() < deadline, "the project workers never shared the slots"
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        accounts = [f"acc{i}" for i in range(8)]
        with httpx.Client(base_url=base, timeout=10) as http:
            for a in accounts:
                r = http.post("/accounts", json={"account_id": a, "opening_balance": 10_000},
                              headers={"Idempotency-Key": f"open-{a}"})  # fmt: skip
                assert r.status_code == 201, r.text
        clients = [Client(base, accounts, seed=i) for i in range(4)]
        threads = [
            threading.Thread(target=c.run, args=(60, f"c{i}"), daemon=True)
            for i, c in enumerate(clients)
        ]
        for t in threads:
            t.start()
        while sum(len(c.acknowledged) for c in clients) < 60:
            time.sleep(0.02)
        owners_before = slot_owners(dsn, "public", SAGA)
        os.kill(serve_pids[0], signal.SIGKILL)
        os.kill(project_pids[0], signal.SIGKILL)
        killed_at = time.monotonic()
        took_over: float | None = None
        while time.monotonic() - killed_at < 30:
            owners = slot_owners(dsn, "public", SAGA)
            if len(owners) == PARTITIONS and len(set(owners)) == 1:
                took_over = time.monotonic() - killed_at
                break
            time.sleep(0.01)
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        acked = [a for c in clients for a in c.acknowledged]
        # every transfer ends (the surviving saga worker finishes them)
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while True:
                requested, ended = conn.execute(
                    "SELECT count(*) FILTER (WHERE type_name = 'TransferRequested'), "
                    "count(*) FILTER (WHERE type_name IN "
                    "('TransferCompleted', 'TransferCompensated', 'TransferFailed')) FROM events"
                ).fetchone()  # type: ignore[misc]
                if requested == ended or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            present = {
                int(r[0])
                for r in conn.execute(
                    "SELECT position FROM events WHERE position = ANY(%s)",
                    ([a["position"] for a in acked],),
                )
            }
            duplicated = conn.execute(
                "SELECT count(*) FROM (SELECT view, position FROM project_applied "
                "GROUP BY view, position HAVING count(*) > 1) d"
            ).fetchone()[0]  # type: ignore[index]
            applied = conn.execute("SELECT count(*) FROM project_applied").fetchone()[0]  # type: ignore[index]
            double_steps = conn.execute(
                "SELECT count(*) FROM (SELECT type_name, data::json->>'transfer_id' AS t, "
                "data::json->>'account_id' AS a FROM events WHERE data::json->>'transfer_id' "
                "IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1) d"
            ).fetchone()[0]  # type: ignore[index]
            sent_by_serve = conn.execute(  # saga steps appended by a serve worker (b...)
                "SELECT count(*) FROM events WHERE data::json->>'transfer_id' IS NOT NULL "
                "AND type_name <> 'TransferRequested' AND event_id NOT LIKE 'p%'"
            ).fetchone()[0]  # type: ignore[index]
        lost = [a for a in acked if a["position"] not in present]
        engine, store = _rebuilt(url)
        try:
            report = check_domain_invariants(engine)
        finally:
            store.close()
        survivors = set(slot_owners(dsn, "public", SAGA))
        rolled_back = sum("rolled back" in line for line in project.err)
        shown = "none" if took_over is None else f"{took_over * 1000:.0f} ms"
        print(
            f"\nkill -9 drill: acknowledged {len(acked)}, lost {len(lost)}, duplicated "
            f"{duplicated} (saga applications {applied}, double steps {double_steps}), "
            f"transfers requested {requested} ended {ended}, client retries "
            f"{sum(c.retries for c in clients)}, given up {sum(c.given_up for c in clients)}, "
            f"saga batches rolled back and retried {rolled_back}, time to take over {shown}"
        )
        # nothing moved the fair shares while the load ran (no worker lost a slot)
        assert _shares(owners_before) == [4, 4]
        assert took_over is not None and len(survivors) == 1
        assert sum(c.given_up for c in clients) == 0
        assert len(acked) + sum(c.refused for c in clients) == 4 * 60 + 0
        assert lost == []
        assert duplicated == 0 and double_steps == 0 and applied > 0
        assert requested == ended > 0
        assert sent_by_serve == 0  # sagas ran in the project workers only
        assert report.ok, report
    finally:
        serve.close()
        if project is not None:
            project.close()
