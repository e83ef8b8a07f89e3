"""The processes of one load test (:mod:`cqrs_lab.load.runner` drives them): the server
and Locust, each logging into the results folder and pinned to its side of the CPU split.

The server is the shipped one, ``cqrs-lab serve --domain REF --stage-timings`` (with
``--workers N``, a ``cqrs-lab project`` process runs its sagas), unless ``--host`` names one
already running; with ``--server-cpus`` its processes run in a control group
(:mod:`cqrs_lab.load.cpu_limit`). The Locust users are :mod:`cqrs_lab.load.locustfile` (or
``locustfile``), built from the same domain's workload, headless in one process or a master
and its workers. A server of several processes gets a CPU per process (:func:`worker_split`).
The load starts once the server is ready (``/readyz``): a server started on a store that
already holds events (a PostgreSQL database or a SQLite file used before) first replays
them into its views, and a load test meeting that replay measures it, not the server.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.cpu_limit import CpuLimit
from cqrs_lab.load.options import LoadTestOptions, default_locustfile
from cqrs_lab.load.procs import (
    cpu_seconds,
    free_port,
    tree_cpu_seconds,
    wait_live,
    wait_ready,
)

__all__ = ["READY_TIMEOUT", "Launch", "worker_split"]

#: seconds a started server may take to be ready (its views caught up with the store's log)
READY_TIMEOUT = 180.0


def worker_split(
    split: tuple[set[int], set[int]] | None, workers: int
) -> tuple[tuple[set[int], set[int]] | None, str | None]:
    """The (server, generator) CPUs for a server of ``workers`` processes, from the split
    for one: each server process gets a CPU of its own (they inherit the server's mask), the
    generator the rest; with too few CPUs for that, no pinning (and why), rather than all
    the workers sharing one core.

    >>> worker_split(({0}, {1, 2, 3}), 2)
    (({0, 1}, {2, 3}), None)
    >>> worker_split(({0}, {1}), 2)[0] is None
    True
    """
    if split is None or workers <= 1:
        return split, None
    cpus = sorted(split[0] | split[1])
    if len(cpus) < workers + 1:
        return None, (
            f"{workers} server processes and the load generator need {workers + 1} CPUs to "
            f"have one each; {len(cpus)} usable, so nothing was pinned"
        )
    return (set(cpus[:workers]), set(cpus[workers:])), None


class Launch:
    """Starts the processes of one load test described by ``opts`` into the results folder
    ``out`` and keeps them (``procs``, their ``logs``, the server's ``cpu_limit``) for the
    runner to stop."""

    def __init__(self, opts: LoadTestOptions, out: Path) -> None:
        self.opts, self.out = opts, out
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []
        self.split, self.unpinned = worker_split(opts.cpu_split(), opts.server_workers)
        self.traffic = opts.traffic()
        self.cpu_limit: CpuLimit | None = None  # --server-cpus: the server's control group

    def spawn(
        self,
        args: list[str],
        log: str,
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> subprocess.Popen[bytes]:
        fh = open(self.out / log, "wb")  # noqa: SIM115 - closed in the runner's finish()
        self.logs.append(fh)
        if cpus is not None:  # pinned before it loads anything (taskset execs it: same pid)
            args = ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus))), *args]
        proc = subprocess.Popen(
            args, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def server(self) -> tuple[str, subprocess.Popen[bytes] | None, str | None]:
        if self.opts.host is not None:
            token = self.opts.admin_token or os.environ.get("CQRS_LAB_ADMIN_TOKEN")
            url = self.opts.host.rstrip("/")
            try:
                wait_live(url, None, 3.0)
            except ConfigError:
                raise ConfigError(
                    f"--host {url}: no live cqrs-lab server there (GET /livez did not answer 200 "
                    "within 3 s); start it first (cqrs-lab serve), or fix the URL"
                ) from None
            return url, None, token
        port = free_port()
        token = self.opts.admin_token or f"load-{os.getpid()}-{port}"
        (self.out / "server").mkdir(exist_ok=True)
        stages = str(self.out / "server" / "stages.csv")
        args = [sys.executable, "-m", "cqrs_lab.cli", "serve", "--port", str(port),
                "--delivery", self.opts.delivery, "--admin-token", token, "--domain",
                self.opts.domain, "--stage-timings", "--stages-csv", stages,
                "--restart-after", "1", "--log-level", "warning"]  # fmt: skip
        o = self.opts
        if o.server_cpus is not None:  # the group first: nothing started if it cannot be
            if self.split and o.server_cpus > len(self.split[0]):
                raise ConfigError(
                    f"--server-cpus {o.server_cpus:g}: the server is pinned to "
                    f"{len(self.split[0])} CPU(s), so that limit would never bind; pass at "
                    "most that (or --no-pin)"
                )
            self.cpu_limit = CpuLimit(o.server_cpus, o.server_cpu_period)
        if o.store != "memory":
            args += ["--store", o.store]
        if o.server_workers > 1:  # the sagas run in a project worker (see http/workers.py)
            args += ["--workers", str(o.server_workers)]
            project = [sys.executable, "-m", "cqrs_lab.cli", "project", "--store", o.store,
                       "--domain", o.domain]  # fmt: skip
            worker = self.spawn(project, "project.log", cpus=self.split and self.split[0])
            if self.cpu_limit is not None:
                self.cpu_limit.add(worker.pid)
        proc = self.spawn(args, "server.log", cpus=self.split and self.split[0])
        if self.cpu_limit is not None:  # before it serves; the processes it starts stay in
            self.cpu_limit.add(proc.pid)
        url = f"http://127.0.0.1:{port}"
        log = self.out / "server.log"
        wait_live(url, proc, 20.0, log)
        wait_ready(url, proc, READY_TIMEOUT, log)  # the load meets caught-up views, no replay
        return url, proc, token

    def locust(self, url: str) -> list[subprocess.Popen[bytes]]:
        o = self.opts
        base = [sys.executable, "-m", "locust", "-f", o.locustfile or str(default_locustfile()),
                "--host", url, "--domain", o.domain, "--keys", str(self.traffic.keys),
                "--zipf-s", str(o.zipf_s), "--mix", o.mix, "--params", o.params,
                "--think", str(o.think), "--lab-seed", str(o.seed),
                "--records-dir", str(self.out / "records"), "--loglevel", "WARNING",
                "--skip-setup", "--lab-duration", str(o.duration)]  # fmt: skip
        if o.rate is not None:
            base += ["--rate", str(o.rate)]
        env = {**os.environ, "CQRS_LAB_SHAPE": o.shape or ""}
        users = o.pool_size()
        csv = str(self.out / "locust")
        # every user up within 0.1 s, or within a second past 100 of them (at 100 per second
        # a closed run of 1,000 users had 400 of them by its end, its summary saying 1,000)
        spawn = max(1, min(10 * users, max(100, users)))
        head = ["--headless", "-u", str(users), "-r", str(spawn),
                # --lab-duration times the load; -t (stale-clocked in Locust) is a backstop
                "-t", f"{math.ceil(o.duration) + 30}s", "--stop-timeout", "5", "--only-summary",
                "--exit-code-on-error", "0", "--csv", csv, *o.classes]  # fmt: skip
        cpus = self.split and self.split[1]
        if o.processes == 1:
            return [self.spawn([*base, *head], "locust.log", env, cpus)]
        port = free_port()
        mode = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                "--expect-workers", str(o.processes)]  # fmt: skip
        master = self.spawn([*base, *head, *mode], "locust-master.log", env, cpus)
        join = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        workers = [self.spawn([*base, *join, *o.classes], f"locust-worker-{i}.log", env, cpus)
                   for i in range(o.processes)]  # fmt: skip
        return [master, *workers]

    def server_cpu(self, pid: int) -> dict[int, float]:
        """CPU seconds of the server's processes by id (with --workers: the parent and its
        workers, whose CPU the parent's own figure leaves out)."""
        if self.opts.server_workers > 1:
            return tree_cpu_seconds(pid)
        c = cpu_seconds(pid)
        return {} if c is None else {pid: c}
