"""Processes of a load test: free ports, CPU seconds from /proc, liveness, bounded stops.

>>> 1024 <= free_port() <= 65535
True
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from cqrs_lab.errors import ConfigError

__all__ = ["cpu_seconds", "free_port", "stop", "tree_cpu_seconds", "wait_live"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of ``pid`` and of each process descending from it (``serve --workers``:
    the parent and its workers), by process id; empty once ``pid`` is gone."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry.name)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        up = frontier.pop()
        kids = [p for p, pp in parent.items() if pp == up and p not in tree]
        tree.update(kids)
        frontier += kids
    out = {p: c for p in sorted(tree) if (c := cpu_seconds(p)) is not None}
    return out if pid in out else {}


def wait_live(url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigError(f"the server exited with code {proc.returncode}; see server.log")
        try:
            with urllib.request.urlopen(url + "/livez", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise ConfigError(f"{url}: not live after {timeout:g} s")


def stop(proc: subprocess.Popen[bytes], grace: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)
