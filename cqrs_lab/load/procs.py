"""Processes of a load test: free ports, CPU seconds from /proc, liveness, bounded stops.

>>> 1024 <= free_port() <= 65535
True
>>> local_postgres("postgresql://postgres@127.0.0.1:5433/lab"), local_postgres("memory")
(5433, None)
>>> local_postgres("postgresql://lab@db.example.com/lab") is None
True
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from cqrs_lab.errors import ConfigError

__all__ = [
    "DatabaseCpu",
    "cpu_seconds",
    "free_port",
    "local_postgres",
    "postgres_cpu_seconds",
    "stop",
    "tree_cpu_seconds",
    "wait_live",
    "wait_ready",
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds ``pid`` has used (None: no such process), to the microsecond: the sum of
    its live threads' run time as the scheduler counts it (``/proc/PID/task/TID/schedstat``,
    nanoseconds). The process's own ``stat`` counts whole clock ticks (10 ms), ended
    threads included; when those ticks hold more than the live threads (threads that ended
    after using CPU), the ticks are the reading, as they were before. In ticks alone, one
    second of a server's idle CPU read 0, 0.01 or 0.02 cores at random: a tenth of a light
    level's CPU, which the twin's calibration subtracts."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    live = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                live += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # the thread ended meanwhile: its time is in the ticks
    except OSError:
        return ticks
    return max(ticks, live / 1e9)


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


def local_postgres(store: str) -> int | None:
    """The port of a PostgreSQL store served on this machine (host ``127.0.0.1``,
    ``localhost``, ``::1`` or a unix socket's folder; port 5432 unless given), else None:
    another store, or a database on another host, whose CPU this machine does not spend."""
    if not store.startswith(("postgresql://", "postgres://")):
        return None
    url = urllib.parse.urlsplit(store)
    query = urllib.parse.parse_qs(url.query)
    host = query.get("host", [urllib.parse.unquote(url.hostname or "")])[0]
    if not (host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("/")):
        return None
    try:
        return int(query.get("port", [url.port or 5432])[0])
    except ValueError:
        return None


def _listening(port: int) -> set[str]:
    """The socket inodes listening on TCP ``port`` or on PostgreSQL's unix socket for it."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f[9])
    try:
        unix = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        unix = []
    inodes.update(f[6] for f in map(str.split, unix) if f[-1].endswith(f".s.PGSQL.{port}"))
    return inodes


def postgres_cpu_seconds(port: int) -> float | None:
    """CPU seconds of the local PostgreSQL server on ``port``: its postmaster (the process
    named ``postgres`` whose parent is not) and every ``postgres`` process under it (the
    backends serving the connections, the writers), and the backends that have ended
    (their CPU is the postmaster's children's). The postmaster is the one listening on
    ``port``; when something listens there but whose sockets cannot be read, the only
    postmaster on the machine; None when neither is found (the caller records the
    database's CPU as not measured)."""
    procs: dict[int, tuple[str, int, list[str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            fields = tail.split()
            procs[int(entry.name)] = (head.split("(", 1)[1], int(fields[1]), fields)
    pg = {p for p, (comm, _, _) in procs.items() if comm == "postgres"}
    masters = [p for p in pg if procs[p][1] not in pg]
    inodes = {f"socket:[{i}]" for i in _listening(port)}

    def listens(pid: int) -> bool:
        try:
            return any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            return False

    found = [p for p in masters if listens(p)] or (masters if inodes and len(masters) == 1 else [])
    if not found:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    master = found[0]
    total = sum(int(x) for x in procs[master][2][13:15])  # children ended: cutime, cstime
    for p in pg:
        up = p
        while up in pg and up != master:
            up = procs[up][1]
        if up == master:
            total += int(procs[p][2][11]) + int(procs[p][2][12])
    return total / tick


class DatabaseCpu:
    """The CPU seconds of the PostgreSQL server of ``store`` when it runs on this machine
    (:func:`local_postgres`), read from its start: :meth:`read` gives its running total
    (None: not measured, as for a database on another host or another store), ``used``
    the seconds spent since this object was made or :meth:`restart` ed."""

    def __init__(self, store: str) -> None:
        self.port = local_postgres(store)
        self.start = self.last = postgres_cpu_seconds(self.port) if self.port else None

    def read(self) -> float | None:
        """The running total now (the last one read if the server is gone)."""
        if self.start is not None and self.port:
            self.last = postgres_cpu_seconds(self.port) or self.last
        return self.last

    def restart(self) -> float | None:
        """The seconds spent so far, and count from now on (None: not measured)."""
        start, last = self.start, self.read()
        if start is None or last is None:
            return None
        self.start = last
        return last - start

    @property
    def used(self) -> float | None:
        """Seconds spent from the start to the last reading (None: not measured)."""
        return None if self.start is None or self.last is None else self.last - self.start


def wait_live(
    url: str, proc: subprocess.Popen[bytes] | None, timeout: float, log: Path | None = None
) -> None:
    """Until ``url/livez`` answers 200; a ConfigError when ``proc`` exits first (saying
    why with the last line of its ``log``, where it wrote its error) or after ``timeout``."""
    if _answered(url + "/livez", proc, timeout, log, 1.0) is not None:
        raise ConfigError(f"{url}: not live after {timeout:g} s")


def wait_ready(
    url: str, proc: subprocess.Popen[bytes] | None, timeout: float, log: Path | None = None
) -> None:
    """Until ``url/readyz`` answers 200 (its views have caught up with the log: a server
    started on a store that already holds events replays them first); a ConfigError when
    ``proc`` exits first (as :func:`wait_live`) or after ``timeout``, with the server's
    last reason."""
    why = _answered(url + "/readyz", proc, timeout, log, 2.0)
    if why is not None:
        raise ConfigError(
            f"{url}: not ready after {timeout:g} s (/readyz: {why}); a store holding many "
            "events is replayed into the views before the load starts: give the load test a "
            "fresh database, or one with fewer events"
        )


def _answered(
    url: str, proc: subprocess.Popen[bytes] | None, timeout: float, log: Path | None, each: float
) -> str | None:
    """Until ``url`` answers 200 (None) or ``timeout`` passes (the last reason it did not:
    the body of its last error answer, or the connection's error); a ConfigError when
    ``proc`` exits first, with the last line of its ``log``."""
    deadline = time.monotonic() + timeout
    why = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            said = log.read_text(errors="replace").strip() if log and log.exists() else ""
            last = f": {said.splitlines()[-1].strip()} ({log.name})" if log and said else ""
            raise ConfigError(
                f"the server exited with code {proc.returncode}{last or '; see its log'}"
            )
        try:
            with urllib.request.urlopen(url, timeout=each) as resp:
                if resp.status == 200:
                    return None
        except urllib.error.HTTPError as exc:  # e.g. 503: catching up, or a view is down
            why = exc.read().decode("utf-8", "replace").strip()[:300] or f"HTTP {exc.code}"
        except OSError as exc:
            why = str(exc)
        time.sleep(0.1)
    return why


def stop(proc: subprocess.Popen[bytes], grace: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)
