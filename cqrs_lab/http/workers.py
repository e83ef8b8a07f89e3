"""``cqrs-lab serve --store postgresql://... --workers N``: N server processes on one port.

**Shape: a pre-forking parent.** The parent binds the listening socket on the configured
address (port 0: a free one, known before any worker starts), then starts N workers, each a
fresh ``cqrs-lab serve`` interpreter (``subprocess``, not ``os.fork``: no connection pool or
thread is copied) that inherits the socket and runs uvicorn on it (``--listen-fd``). The
kernel hands each connection to one worker's ``accept``. Chosen over ``SO_REUSEPORT`` (each
worker binding its own socket) because there the kernel keeps one accept queue per socket: a
worker killed with connections waiting in its queue resets them, and port 0 cannot be shared;
with one inherited socket the queue is shared and a survivor accepts what the dead one left.

A worker stops (gracefully, as on SIGTERM) once its parent is gone, killed with SIGKILL or
by the out-of-memory killer, so no orphan keeps serving the port
(:mod:`cqrs_lab.stores.worker_parent`). The parent restarts nothing (a supervisor's job:
systemd, Kubernetes): when a worker dies it says so on stderr and keeps serving with the
others; it forwards SIGTERM and SIGINT to the
workers (each drains gracefully), and exits when they have, or when none is left: with
:data:`STORE_FAILED_EXIT` when each stopped on the event store's failure (their database
unreachable), as a single server does, else 1. Once every
worker listens it prints one start line naming the workers' process ids.

Each worker is a whole server over the shared PostgreSQL store: commands append to the log
(optimistic concurrency per stream; idempotency records and stored responses are rows, so a
retry reaching another worker is answered from the record, and a key two workers get at once
is taken by one, in its transaction: the other answers 409 "request in progress"); each
worker keeps its own in-memory replica of the read models, fed by the gap-safe reader
tailing the log, so a consistency token (a position) taken from any worker is honoured by
any other: the read waits (bounded by ``wait``) until this worker's replica has applied that
position, or answers stale with ``X-Stale: true``, as a single server does. Sagas do not
run in serve workers when there are several (they would all send): ``cqrs-lab project``
runs them (:mod:`cqrs_lab.stores.postgres_project`).

>>> child_argv(["serve", "--workers", "2", "--port=0", "--store", "postgresql://h/db"], 5)
... # doctest: +NORMALIZE_WHITESPACE
['serve', '--port=0', '--store', 'postgresql://h/db', '--listen-fd', '5', '--sagas', 'external',
 '--workers', '1']
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from cqrs_lab.errors import StoreFailure
from cqrs_lab.stores.worker_parent import child_env, workers_exit_status

#: exit status of a server stopped by its event store's failure (sysexits' EX_TEMPFAIL)
STORE_FAILED_EXIT = StoreFailure.exit_status

__all__ = [
    "START_PREFIX",
    "STORE_FAILED_EXIT",
    "child_argv",
    "merge_stages",
    "run_workers",
    "worker_stages",
]

#: the first words of the line a serve process prints once it listens
START_PREFIX = "cqrs-lab serve:"


def child_argv(argv: Sequence[str], fd: int) -> list[str]:
    """The worker's command line: the parent's without ``--workers``, on the inherited socket
    ``fd``, with sagas left to ``cqrs-lab project``; one worker, said last (argparse takes
    the last value), whatever the parent's line held (an abbreviation such as ``--worker 2``
    made each worker a parent of its own, without end)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--workers", "--sagas"):
            skip = True  # and its value
        elif not arg.startswith(("--workers=", "--sagas=")):
            out.append(arg)
    return [*out, "--listen-fd", str(fd), "--sagas", "external", "--workers", "1"]


def worker_stages(path: str, pid: int) -> str:
    """Where worker ``pid`` writes its ``--stages-csv`` samples (merged by the parent)."""
    return f"{path}.worker-{pid}"


def merge_stages(path: str, pids: Sequence[int]) -> None:
    """Concatenate the workers' stage samples into ``path`` (one header), removing theirs."""
    parts = [Path(worker_stages(path, pid)) for pid in pids]
    parts = [p for p in parts if p.exists()]
    if not parts:
        return
    with open(path, "w", encoding="utf-8") as out:
        for i, part in enumerate(parts):
            lines = part.read_text(encoding="utf-8").splitlines(keepends=True)
            out.writelines(lines if i == 0 else lines[1:])
            part.unlink()


def _forward(stream: IO[str], ready: threading.Event, lines: list[str]) -> None:
    """Copy a worker's output to ours, keeping its start line back (the parent prints one)."""
    for line in stream:
        if line.startswith(START_PREFIX) and not ready.is_set():
            lines.append(line.rstrip("\n"))
            ready.set()
            continue
        sys.stdout.write(line)
        sys.stdout.flush()


def run_workers(
    host: str,
    port: int,
    workers: int,
    argv: Sequence[str],
    stop: threading.Event,
    *,
    stages_csv: str | None = None,
) -> int:
    """Bind ``host:port``, start ``workers`` serve processes on it, wait until ``stop`` is
    set (``cqrs-lab serve`` sets it on SIGTERM/SIGINT).

    ``argv`` is the ``serve`` command line (from ``serve`` on). Returns the exit status: 0
    once stopped, 1 when every worker died on its own, 3 when one did not start (75 when it
    did not because the database cannot be reached, 2 when its settings were refused).
    ``stages_csv``: the workers' ``--stages-csv`` samples are merged there once they exit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.set_inheritable(True)
    fd = sock.fileno()
    bound = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "cqrs_lab.cli", *child_argv(argv, fd)]
    env = child_env(os.environ)
    procs: list[subprocess.Popen[str]] = []
    readies: list[threading.Event] = []
    lines: list[str] = []
    try:
        for _ in range(workers):
            proc = subprocess.Popen(cmd, pass_fds=(fd,), env=env, stdout=subprocess.PIPE, text=True)
            ready = threading.Event()
            assert proc.stdout is not None
            threading.Thread(target=_forward, args=(proc.stdout, ready, lines), daemon=True).start()
            procs.append(proc)
            readies.append(ready)
        sock.close()  # the workers hold it now
        while not all(r.is_set() for r in readies):
            if stop.is_set() or any(p.poll() is not None for p in procs):
                print("cqrs-lab serve: a worker did not start; stopping", file=sys.stderr)
                gone = [p.returncode for p in procs if p.poll() is not None]
                _stop(procs)
                # what one process would say: 75 its database unreachable (its supervisor
                # retries), 2 its settings refused (a ConfigError), else 3
                return next((c for c in (STORE_FAILED_EXIT, 2) if c in gone), 3)
            time.sleep(0.05)
        shown = f"[{host}]" if ":" in host else host
        first = lines[0].replace(" on http", f" ({workers} workers) on http", 1)
        pids = ", ".join(str(p.pid) for p in procs)
        print(f"{first}; worker pids {pids}; http://{shown}:{bound}", flush=True)
        reported: set[int] = set()
        while not stop.is_set():
            for p in procs:
                if p.poll() is not None and p.pid not in reported:
                    reported.add(p.pid)
                    print(
                        f"cqrs-lab serve: worker {p.pid} exited with {p.returncode}; "
                        f"{workers - len(reported)} left (none is restarted)",
                        file=sys.stderr,
                        flush=True,
                    )
            if len(reported) == workers:
                return workers_exit_status(p.returncode for p in procs)
            stop.wait(0.2)
        _stop(procs)
        return 0
    finally:
        if stages_csv:
            _stop(procs)
            merge_stages(stages_csv, [p.pid for p in procs])
        sock.close()


def _stop(procs: list[subprocess.Popen[str]], timeout: float = 15.0) -> None:
    """SIGTERM every worker (each drains), SIGKILL those still running after ``timeout``."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
