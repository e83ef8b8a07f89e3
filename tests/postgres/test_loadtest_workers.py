"""``cqrs-lab loadtest --store postgresql://... --workers 2``: the runner starts a two-worker
server and a saga worker on the shared store, and the run completes against them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.load import LoadTestOptions, load_results, run_loadtest
from tests.postgres.cluster import Cluster

pytestmark = pytest.mark.slow  # a real server, saga worker and Locust


@pytest.fixture
def load_db(pg_cluster: Cluster) -> Iterator[str]:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE loaded")
    yield f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/loaded"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE loaded WITH (FORCE)")


def test_workers_need_postgresql() -> None:
    with pytest.raises(ConfigError, match="one-process stores"):
        LoadTestOptions(rate=5.0, server_workers=2)


def test_a_load_test_against_two_server_workers(load_db: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    opts = LoadTestOptions(
        rate=20.0, duration=4.0, out=str(out), accounts=20, store=load_db, server_workers=2
    )
    try:
        path, code = run_loadtest(opts)
    except Exception as exc:  # say what the server and the saga worker said
        logs = {n: (out / n).read_text()[-1500:] for n in ("server.log", "project.log")
                if (out / n).exists()}  # fmt: skip
        raise AssertionError(f"the load test failed: {exc!r}; {logs}") from exc
    result = load_results(path)
    s = result.summary.iloc[0]
    assert code == 0, (path / "server.log").read_text()[-2000:]
    assert s["requests"] > 20 and s["status_5xx"] == 0 and s["conn_errors"] == 0
    log = (path / "server.log").read_text()
    assert "(2 workers)" in log and "worker pids" in log
    assert "cqrs-lab project: worker" in (path / "project.log").read_text()
    # each worker wrote its stage samples; the parent merged them into the one file
    stages = path / "server" / "stages.csv"
    assert len(stages.read_text().splitlines()) > 1
    assert not list(stages.parent.glob("stages.csv.worker-*"))
