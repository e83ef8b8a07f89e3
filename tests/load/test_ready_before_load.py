"""A load test starts on caught-up views: a server started on a store that already holds
events replays them first, and the stage samples it keeps are the latest (the load's), not
the replay's."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.http.stages import StageTimings
from cqrs_lab.load.procs import wait_ready


@contextmanager
def readyz(answers: list[int]) -> Iterator[tuple[str, list[int]]]:
    """A server whose /readyz answers the given statuses in turn, then the last forever."""
    asked: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = answers[min(len(asked), len(answers) - 1)]
            asked.append(status)
            body = b"catching up: balances at 10 of 900000" if status != 200 else b"ready"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", asked
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_load_waits_until_the_views_have_caught_up() -> None:
    with readyz([503, 503, 503, 200]) as (url, asked):
        wait_ready(url, None, 10.0)
    assert asked == [503, 503, 503, 200]


def test_a_server_never_ready_is_refused_with_its_reason() -> None:
    with readyz([503]) as (url, _), pytest.raises(ConfigError) as err:
        wait_ready(url, None, 0.5)
    said = str(err.value)
    assert "not ready after 0.5 s" in said and "catching up: balances at 10" in said
    assert "fresh database" in said


def test_a_server_that_exits_while_replaying_is_refused() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with readyz([503]) as (url, _), pytest.raises(ConfigError, match="exited with code 3"):
        wait_ready(url, proc, 5.0)


def test_the_stage_samples_kept_are_the_latest() -> None:
    """A limit of 4: a replay's 6 samples, then the load's 3; the 4 kept are the last
    replay sample and the load's, in order; the totals count every sample."""
    stages = StageTimings(limit=4)
    for k in range(6):
        stages.add("projection", "balances", 0.001, events=1024 + k)
    for k in range(3):
        stages.add("command", "Deposit", 0.0001 * (k + 1))
    kept = list(stages.samples)
    assert [(s[0], s[4]) for s in kept] == [
        ("projection", 1029), ("command", 1), ("command", 1), ("command", 1)
    ]  # fmt: skip
    assert stages.totals["projection"][1] == sum(1024 + k for k in range(6))
    assert stages.totals["command"] == [pytest.approx(0.0006), 3.0]
