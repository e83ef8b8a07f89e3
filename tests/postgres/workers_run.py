"""One real light load test against ``serve --store postgresql://... --workers 2``, shared
by the tests that look at such a run (the runner's, the loop twin's): a session fixture,
so the server, the saga worker and Locust start once (about 9 s saved)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cqrs_lab.load import LoadTestOptions, run_loadtest
from tests.postgres.cluster import Cluster

__all__ = ["two_workers_run"]


@pytest.fixture(scope="session")
def two_workers_run(
    pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, int]]:
    """The run's folder and exit code: 120 tasks/s offered for 10 s, 50 accounts, two
    server workers and a saga worker on a database of its own (dropped afterwards)."""
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE workers2")
    out = tmp_path_factory.mktemp("workers2") / "run"
    store = f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/workers2"
    opts = LoadTestOptions(
        rate=120.0, duration=10.0, out=str(out), accounts=50, store=store, server_workers=2
    )
    try:
        try:
            run = run_loadtest(opts)
        except Exception as exc:  # say what the server and the saga worker said
            logs = {n: (out / n).read_text()[-1500:] for n in ("server.log", "project.log")
                    if (out / n).exists()}  # fmt: skip
            raise AssertionError(f"the load test failed: {exc!r}; {logs}") from exc
        yield run
    finally:
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute("DROP DATABASE workers2 WITH (FORCE)")
