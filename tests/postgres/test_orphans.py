"""A parent killed with SIGKILL (by hand, by a supervisor's timeout, by the out-of-memory
killer) leaves no orphan: ``serve --workers 2`` workers stop serving its port, and
``project --workers 2`` workers stop taking partitions, within about a second. Before, both
kept running unsupervised, the serve workers still answering on the port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import Server

pytestmark = pytest.mark.slow  # real parents and workers

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in found]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a reparented child may wait unreaped in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _all_stop(pids: list[int], within: float) -> float:
    started = time.monotonic()
    while any(_running(p) for p in pids):
        assert time.monotonic() - started < within, [p for p in pids if _running(p)]
        time.sleep(0.05)
    return time.monotonic() - started


def test_serve_workers_stop_when_their_parent_is_killed(db_url: str) -> None:
    server = Server("--store", db_url, "--workers", "2")
    workers = _children(server.proc.pid)
    try:
        assert len(workers) == 2
        assert httpx.get(f"{server.url}/livez", timeout=5).status_code == 200
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(5)
        took = _all_stop(workers, within=10)
        with pytest.raises(httpx.TransportError):  # nobody answers on the port any more
            httpx.get(f"{server.url}/livez", timeout=2)
        print(f"\nserve workers stopped {took:.2f} s after their parent's SIGKILL")
    finally:
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        server.kill()


def test_project_workers_stop_when_their_parent_is_killed(db_url: str) -> None:
    cmd = [sys.executable, "-m", "cqrs_lab.cli", "project", "--store", db_url, "--workers", "2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as parent:
        workers: list[int] = []
        lines: list[str] = []
        assert parent.stdout is not None
        threading.Thread(target=lambda: lines.extend(parent.stdout), daemon=True).start()
        try:
            deadline = time.monotonic() + 30
            while "".join(lines).count(" running ") < 2:  # both workers print once up
                assert time.monotonic() < deadline and parent.poll() is None, lines
                time.sleep(0.05)
            workers = _children(parent.pid)
            assert len(workers) == 2
            parent.send_signal(signal.SIGKILL)
            parent.wait(5)
            took = _all_stop(workers, within=10)
            print(f"\nproject workers stopped {took:.2f} s after their parent's SIGKILL")
        finally:
            for pid in workers:
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)
