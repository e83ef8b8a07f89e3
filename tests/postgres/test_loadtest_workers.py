"""``cqrs-lab loadtest --store postgresql://... --workers 2``: the runner starts a two-worker
server and a saga worker on the shared store, and the run completes against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.load import LoadTestOptions, load_results

pytestmark = pytest.mark.slow  # a real server, saga worker and Locust


def test_workers_need_postgresql() -> None:
    with pytest.raises(ConfigError, match="one-process stores"):
        LoadTestOptions(rate=5.0, server_workers=2)


def test_a_load_test_against_two_server_workers(two_workers_run: tuple[Path, int]) -> None:
    path, code = two_workers_run  # the session's run (tests/postgres/workers_run.py)
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
