"""The database stops under a served deployment (``pg_ctl stop -m immediate``, as a crash or
a failover does), with one server process or two: the server answers what was in flight 503
problem+json with Retry-After, never 500 and never a freeze, stops and exits 75 for its
supervisor to restart it; restarted once the database is back, nothing it acknowledged is
lost and nothing is applied twice: each command retried with its Idempotency-Key is applied
exactly once, in doubt or not. ``cqrs-lab project`` workers stop the same way, exit 75.

The cluster is this test's own (it is stopped under the server), not the session's, and
durable: with ``synchronous_commit`` off, as the suite's cluster runs, an immediate stop
loses the last commits it had acknowledged, by PostgreSQL's own design.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from cqrs_lab.http.workers import STORE_FAILED_EXIT
from tests.http.conftest import Server
from tests.postgres.cluster import Cluster, running_cluster

pytestmark = pytest.mark.slow  # a cluster of its own and two uvicorn subprocesses

CLIENTS = 4


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    with running_cluster(durable=True) as cluster:
        yield cluster


def _deposits(server: Server, tid: int, outcomes: dict[str, httpx.Response | None]) -> None:
    """Deposit 1 with a fresh key until the server is gone (None: no answer)."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for i in range(100_000):
            key = f"c{tid}-{i}"
            try:
                outcomes[key] = http.post(
                    "/accounts/a/deposits", json={"amount": 1}, headers={"Idempotency-Key": key}
                )
            except httpx.ConnectError:  # the server is gone: never sent
                outcomes[key] = None
                return
            except httpx.TransportError:  # in flight when the server went: in doubt
                outcomes[key] = None


@pytest.mark.parametrize("workers", [1, 2])
def test_the_database_stopping_stops_the_server_and_loses_nothing(
    own_cluster: Cluster, workers: int
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{own_cluster.port}/postgres"
    first = Server("--store", url, "--workers", str(workers))
    outcomes: dict[str, httpx.Response | None] = {}
    try:
        opened = httpx.post(f"{first.url}/accounts", json={"account_id": "a"}, timeout=10)
        assert opened.status_code == 201, opened.text
        clients = [
            threading.Thread(target=_deposits, args=(first, t, outcomes)) for t in range(CLIENTS)
        ]
        for c in clients:
            c.start()
        time.sleep(1.0)
        stopped_at = time.monotonic()
        own_cluster.stop_server()
        code = first.proc.wait(15)
        exited_in = time.monotonic() - stopped_at
        for c in clients:
            c.join(15)
        assert not any(c.is_alive() for c in clients)
        log = first.proc.stderr.read().decode() if first.proc.stderr is not None else ""
    finally:
        first.kill()
    assert code == STORE_FAILED_EXIT, log[-2000:]
    assert "stopped, the event store failed" in log and "cannot be reached" in log
    assert "Traceback" not in log
    answered = [r for r in outcomes.values() if r is not None]
    acked = [k for k, r in outcomes.items() if r is not None and r.status_code == 200]
    refused = [r for r in answered if r.status_code == 503]
    assert len(acked) >= 20, f"only {len(acked)} deposits acknowledged before the stop"
    assert {r.status_code for r in answered} <= {200, 503}, [r.text for r in answered][-3:]
    for r in refused:
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) > 0 and "Traceback" not in r.text
    print(
        f"\ndatabase stopped under {CLIENTS} clients, {workers} server process(es): "
        f"{len(acked)} acknowledged, "
        f"{len(refused)} refused 503, {len(outcomes) - len(answered)} with no answer; "
        f"the server exited {code} {exited_in:.2f} s after the stop"
    )
    own_cluster.start()
    second = Server("--store", url)
    try:
        with httpx.Client(base_url=second.url, timeout=10) as http:
            token = 0  # the furthest position of any answer: a replayed one carries the
            for key in outcomes:  # position its command had, before the ones applied now
                again = http.post(
                    "/accounts/a/deposits", json={"amount": 1}, headers={"Idempotency-Key": key}
                )
                assert again.status_code == 200, again.text
                if key in acked:
                    assert again.headers["idempotent-replayed"] == "true", key
                token = max(token, int(again.headers["x-consistency-token"]))
            got = http.get(  # (the view may still be applying the last of them: wait)
                "/accounts/a", params={"wait": 5}, headers={"X-Consistency-Token": str(token)}
            )
            assert got.status_code == 200 and got.headers["x-stale"] == "false", got.text
            assert got.json()["balance"] == len(outcomes)
    finally:
        second.kill()


def test_project_workers_stop_with_75_when_the_database_stops(own_cluster: Cluster) -> None:
    url = f"postgresql://postgres@127.0.0.1:{own_cluster.port}/postgres"
    cmd = [sys.executable, "-m", "cqrs_lab.cli", "project", "--store", url, "--workers", "2"]
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 30
            while "".join(lines).count("running transfer-saga") < 2:  # both hold slots
                assert time.monotonic() < deadline and proc.poll() is None, lines
                time.sleep(0.05)
            own_cluster.stop_server()
            code = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(10)
    out = "".join(lines)
    assert code == STORE_FAILED_EXIT, out[-2000:]
    assert out.count(f"exited with {STORE_FAILED_EXIT}") == 2 and "cannot be reached" in out
    assert "Traceback" not in out
