"""The throwaway cluster does not outlive the process that started it: killed with SIGKILL
(no ``stop()``, no teardown), its watchdog stops the server and removes the folder; after a
normal ``stop()`` the watchdog exits too."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.postgres.cluster import start_cluster

STARTER = """
import json, sys, time
from cqrs_lab.stores.pg_cluster import start_cluster
cluster = start_cluster()
print(json.dumps({"root": str(cluster.root), "port": cluster.port,
                  "watchdog": cluster.watchdog.pid}), flush=True)
time.sleep(600)
"""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_a_killed_starter_leaves_no_cluster_behind() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        info = json.loads(starter.stdout.readline())
        root, port, watchdog = Path(info["root"]), info["port"], info["watchdog"]
        assert _listening(port) and (root / "data" / "postmaster.pid").exists()
        starter.send_signal(signal.SIGKILL)
        starter.wait(10)
        assert _until(lambda: not _listening(port) and not root.exists(), 60)
        assert _until(lambda: not _alive(watchdog), 10)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        if starter.stdout is not None:
            starter.stdout.close()


def test_a_stopped_cluster_ends_its_watchdog() -> None:
    cluster = start_cluster()
    watchdog = cluster.watchdog
    assert watchdog is not None and watchdog.poll() is None
    cluster.stop()
    assert watchdog.poll() == 0 and not cluster.root.exists()
    assert not _listening(cluster.port)
