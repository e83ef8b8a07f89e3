"""The loop twin calibrated from a real light load test against ``serve --store
postgresql://... --workers 2``: it learns the two processes, the writer's wait for the
commit and a CPU balance, and predicts the capacity at other process counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cqrs_lab.load import LoadTestOptions, load_results, run_loadtest
from cqrs_lab.load.loop_calibration import IDLE_POLL, calibrate_loop, sim_cpu
from cqrs_lab.load.loop_processes import predict_processes
from tests.postgres.cluster import Cluster

pytestmark = pytest.mark.slow  # a real two-worker server, a saga worker and Locust


@pytest.fixture
def twin_db(pg_cluster: Cluster) -> Iterator[str]:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE twin")
    yield f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/twin"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE twin WITH (FORCE)")


def test_the_idle_poll_is_the_servers() -> None:
    from cqrs_lab.http.config import ServerConfig

    assert ServerConfig.idle_poll == IDLE_POLL


def test_the_loop_twin_calibrates_from_two_workers_and_predicts_other_counts(
    twin_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    opts = LoadTestOptions(
        rate=120.0, duration=5.0, out=str(out), accounts=50, store=twin_db, server_workers=2
    )
    path, code = run_loadtest(opts)
    assert code == 0, (path / "server.log").read_text()[-2000:]
    run = json.loads((path / "run.json").read_text())
    # the parent and its two workers, each with its CPU; the workers do the work
    per_process = run["server_process_cpu_s"]
    assert len(per_process) == 3
    worker_cpu = sorted(per_process.values())[1:]
    assert min(worker_cpu) > 0.1 and sum(worker_cpu) <= run["server_cpu_s"] + 1e-6

    result = load_results(path)
    cal = calibrate_loop([result], warmup=1.0)
    assert cal.processes == 2 and cal.notes["stage_parts"] == 2
    assert cal.poll == IDLE_POLL
    # each writer batch waited for PostgreSQL's commit round trips (over 50 µs on loopback)
    assert len(cal.commit_s) > 20 and float(sum(cal.commit_s) / len(cal.commit_s)) > 5e-5, cal
    assert cal.pump_wait_s > 0, cal
    # the CPU balance: what is left for the requests once the engine's stages are CPU only
    # is positive, and the two simulated loops spend the workers' measured CPU (within 5%)
    busy = cal.notes["busy_cpu"]
    assert cal.request_s > 0, cal.describe()
    assert sim_cpu(cal, cal.anchor_rate) == pytest.approx(busy, rel=0.05), cal.describe()

    table = predict_processes(cal, [1, 2, 3, 4], duration=1.5)
    assert list(table["processes"]) == [1, 2, 3, 4]
    assert (table["capacity_per_s"] > cal.anchor_rate).all(), table
    # every process pumps every event: from two processes on, a process's share of the
    # capacity does not grow (with one, the server also runs the sagas, which several
    # processes leave to a worker of their own: 1 -> 2 moves that work off the loops); the
    # knee search's resolution is about 3% of a capacity
    per = table["per_process_per_s"].to_list()
    assert per[2] <= 1.03 * per[1] and per[3] <= 1.03 * per[2], table
    assert per[0] <= 1.1 * per[1], table
