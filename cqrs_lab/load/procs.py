"""Processes of a load test: free ports, CPU seconds from /proc, liveness, bounded stops,
and the final audit of the read models.

>>> 1024 <= free_port() <= 65535
True
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from cqrs_lab.errors import ConfigError

__all__ = ["audit", "cpu_seconds", "free_port", "stop", "wait_live"]


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


def audit(url: str, out: Path, budget: float = 30.0) -> dict[str, Any]:
    """After the load: wait for the read models to catch up with every acknowledged write,
    then save the statement of each account written to (the loader checks nothing is lost).

    Bounded by ``budget`` seconds in all; accounts not fetched in time count as unverified.
    """
    from cqrs_lab.load.results import acknowledged_writes

    acked = acknowledged_writes(out / "records")
    if not acked:
        return {"accounts": 0}
    head = max(p for _, p in acked)
    accounts = sorted({a for a, _ in acked})
    t_end = time.monotonic() + budget
    skipped = 0
    with (out / "audit.jsonl").open("w", encoding="utf-8") as fh:
        for acct in accounts:
            req = urllib.request.Request(
                f"{url}/accounts/{acct}/statement?limit=1000&wait=5&stale=refuse",
                headers={"X-Consistency-Token": str(head)},
            )
            body: Any = None
            for _ in range(3):
                left = t_end - time.monotonic()
                if left <= 0:
                    skipped += 1
                    break
                try:
                    with urllib.request.urlopen(req, timeout=min(10.0, left)) as resp:
                        body = json.loads(resp.read())
                        break
                except OSError:
                    time.sleep(0.2)
            fh.write(json.dumps({"account": acct, "statement": body}) + "\n")
    return {"accounts": len(accounts), "head": head, "out_of_time": skipped}
