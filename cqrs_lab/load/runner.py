"""Run one load test end to end: server, Locust (headless, optionally distributed), faults,
an audit of the final read models, and a results folder.

The server (the shipped one, ``cqrs-lab serve --domain REF --stage-timings``) and the Locust
users, built from the same domain's workload, are started by :mod:`cqrs_lab.load.launch`.
The mix and the fault steps' view names are checked against the domain before anything
starts.

Folder layout: ``run.json`` (the domain, keys and workload parameters served, options,
timings, exit codes, CPU seconds), ``summary.json`` (the one-row summary,
:mod:`cqrs_lab.load.summary`), ``records/`` (exact requests and history per Locust
process), ``server/stages.csv`` (the server's raw stage timings), ``metrics-start.txt`` /
``metrics-end.txt`` (``/metrics``), ``faults.jsonl``, ``cpu.csv`` (server, generator and
local database CPU seconds over time), ``audit.jsonl`` (the final answers of the workload's
reads for every key written to), ``locust_*.csv`` and logs.

The rest of the machine's CPU is recorded too: the generator's (``generator_cpu_s``: every
Locust process) and, when the store is PostgreSQL served on this machine (host 127.0.0.1,
localhost or a unix socket), the database server's (``database_cpu_s``: its postmaster and
backends, :func:`~cqrs_lab.load.procs.postgres_cpu_seconds`) over the run, and its CPU
while the server idles before the load (``database_idle_cpu``, cores). A database on
another host is not measured (``database_cpu_s`` null): the twin then assumes it costs
this machine nothing.

(The options, checked before anything starts: :mod:`cqrs_lab.load.options`.)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cqrs_lab.display import show_progress
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.audit import audit_views, history_counts
from cqrs_lab.load.faults import post_fault
from cqrs_lab.load.launch import Launch
from cqrs_lab.load.metrics import scrape
from cqrs_lab.load.options import USER_CLASSES, LoadTestOptions
from cqrs_lab.load.procs import DatabaseCpu, cpu_seconds, stop
from cqrs_lab.load.traffic import create_keys

if TYPE_CHECKING:
    import subprocess

    import pandas as pd

__all__ = ["USER_CLASSES", "LoadTestOptions", "run_loadtest", "write_summary"]


class _Run(Launch):
    def __init__(self, opts: LoadTestOptions, out: Path) -> None:
        super().__init__(opts, out)
        self.fault_failures = 0
        self.info: dict[str, Any] = {
            "options": {**asdict(self.opts), "faults": [asdict(f) for f in opts.faults]},
            # what was served and loaded, resolved: the twin calibrates from these
            "domain": opts.domain,
            "keys": self.traffic.keys,
            "params": dict(self.traffic.params),
            "model": opts.model,
            "users": opts.pool_size(),
            "machine_cpus": len(os.sched_getaffinity(0)),
            "cpus": None
            if self.split is None
            else {"server": sorted(self.split[0]), "generator": sorted(self.split[1])},
        }
        if self.unpinned is not None:
            self.info["cpus_unpinned"] = self.unpinned
        self.info["database_cpu_s"] = None  # a database on this machine: its CPU

    def drive(self, url: str, token: str | None, server: subprocess.Popen[bytes] | None) -> int:
        # the population first, here: done inside Locust it would eat into --duration
        self.info["keys_created"] = create_keys(url, self.traffic)
        scrape_to = self.out / "metrics-start.txt"
        scrape_to.write_text(scrape(url))
        db = DatabaseCpu(self.opts.store)
        if server is not None:  # the server's own CPU use while idle (polling, timers)
            c0, w0 = self.server_cpu(server.pid), time.monotonic()
            time.sleep(1.0)
            c1, idle_s = self.server_cpu(server.pid), time.monotonic() - w0
            if c0 and c1:
                self.info["server_idle_cpu"] = (sum(c1.values()) - sum(c0.values())) / idle_s
            if (d_idle := db.restart()) is not None:  # the database's, serving its polls
                self.info["database_idle_cpu"] = d_idle / idle_s
        cpu0 = self.server_cpu(server.pid) if server is not None else {}
        srv_cpu = dict(cpu0)  # per process: the last reading (a worker that died keeps it)
        if self.cpu_limit is not None:  # its throttling under the load, not at start-up
            self.cpu_limit.mark()
        t0 = time.monotonic()
        self.info["t0_monotonic"], self.info["t0_wall"] = t0, time.time()
        locusts = self.locust(url)
        pending = sorted(self.opts.faults, key=lambda f: f.at)
        deadline = t0 + self.opts.duration + 60.0 + (15.0 if self.opts.processes > 1 else 0.0)
        faults_log = (self.out / "faults.jsonl").open("w", encoding="utf-8")
        cpu_rows = ["t,server_cpu_s,generator_cpu_s,database_cpu_s"]
        gen_cpu: dict[int, float] = {}
        from tqdm.auto import tqdm

        bar = tqdm(total=int(self.opts.duration), unit="s", desc="load test",
                   disable=not show_progress())  # fmt: skip
        master_done: float | None = None
        try:
            while any(p.poll() is None for p in locusts) and time.monotonic() < deadline:
                if len(locusts) > 1 and locusts[0].poll() is not None:
                    # the master has ended the run: a worker it did not reach would wait 60 s
                    # for a heartbeat; give them 5 s to flush and quit, then stop them
                    master_done = master_done or time.monotonic()
                    if time.monotonic() - master_done > 5.0:
                        break
                bar.update(max(0, min(int(self.opts.duration), int(time.monotonic() - t0)) - bar.n))
                now = time.monotonic()
                while pending and now - t0 >= pending[0].at:
                    step = pending.pop(0)
                    status = post_fault(url, token, step)
                    self.fault_failures += not 200 <= status < 300
                    faults_log.write(
                        json.dumps(
                            {
                                "at": step.at,
                                "sent": time.monotonic(),
                                "body": step.body,
                                "status": status,
                            }
                        )
                        + "\n"
                    )
                for p in locusts:
                    if (c := cpu_seconds(p.pid)) is not None:
                        gen_cpu[p.pid] = c
                s_cpu = None
                if server is not None and (now_cpu := self.server_cpu(server.pid)):
                    srv_cpu.update(now_cpu)
                    s_cpu = round(sum(srv_cpu.values()), 2)
                d_cpu = db.read()
                cpu_rows.append(
                    f"{now:.3f},{'' if s_cpu is None else s_cpu},{sum(gen_cpu.values()):.2f},"
                    + ("" if d_cpu is None else f"{d_cpu:.2f}")
                )
                time.sleep(
                    0.25 if not pending else min(0.25, max(0.01, pending[0].at - (now - t0)))
                )
        finally:
            bar.close()
            faults_log.close()
            codes = [stop(p, 10.0) for p in locusts]
        self.info["locust_exit_codes"] = codes
        self.info["t1_monotonic"] = time.monotonic()
        self.info["generator_cpu_s"] = sum(gen_cpu.values())
        db.read()
        self.info["database_cpu_s"] = db.used
        if server is not None and cpu0:
            srv_cpu.update(self.server_cpu(server.pid))
            self.info["server_cpu_s"] = sum(srv_cpu.values()) - sum(cpu0.values())
            # per server process (with --workers: the parent, then each worker)
            self.info["server_process_cpu_s"] = {
                str(p): c - cpu0.get(p, 0.0) for p, c in srv_cpu.items()
            }
        (self.out / "cpu.csv").write_text("\n".join(cpu_rows) + "\n")
        if self.opts.audit:
            self.info["audit"] = audit_views(url, self.out, self.traffic)
        (self.out / "metrics-end.txt").write_text(scrape(url))
        code = max(codes) if codes else 1
        self.info["operations"] = operations = _count_requests(self.out / "records")
        # operations per Locust process's history: all are merged into one check
        self.info["histories"] = history_counts(self.out / "records")
        problems = []
        if not operations:
            problems.append("Locust recorded no request: see locust*.log")
        if self.fault_failures:
            problems.append(f"{self.fault_failures} fault request(s) failed: see faults.jsonl")
        self.info["problems"] = problems
        return code or (1 if problems else 0)

    def finish(self) -> None:
        try:
            for p in reversed(self.procs):
                stop(p, 15.0)
        finally:  # also on failure or Ctrl-C: the group goes with the server
            if self.cpu_limit is not None:
                self.info["server_cpu_limit"] = self.cpu_limit.close()
        for fh in self.logs:
            fh.close()
        (self.out / "run.json").write_text(json.dumps(self.info, indent=2, default=str))


def _count_requests(records: Path) -> int:
    """Request rows written by every Locust process (header lines not counted)."""
    total = 0
    for path in records.glob("requests-*.csv"):
        with path.open("rb") as fh:
            total += max(0, sum(1 for _ in fh) - 1)
    return total


#: what a run writes before its load starts
_BEFORE_LOAD = {"run.json", "server.log", "project.log", "server", "records", "faults.jsonl"}


def never_started(out: Path) -> bool:
    """Whether ``out`` holds only what a load test wrote before its load started (its server
    or host failed): no request recorded, no summary, nothing else; such a folder is
    replaced by the next run into it."""
    if not out.is_dir() or not (out / "run.json").is_file():
        return False
    names = {p.name for p in out.iterdir()}
    if not names <= _BEFORE_LOAD:
        return False
    records = out / "records"
    return not records.exists() or not any(records.iterdir())


def run_loadtest(opts: LoadTestOptions) -> tuple[Path, int]:
    """Run the load test described by ``opts``; returns the results folder and an exit code
    (not 0 when Locust failed, recorded no request, or a fault request failed)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(opts.out) if opts.out else Path("results") / f"loadtest-{stamp}"
    if never_started(out):  # a run that failed before any load: nothing of value in it
        shutil.rmtree(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"--out {out}: exists and is not an empty folder; a run would mix its files with "
            "what is there. Pass a new folder (or remove this one)"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "records").mkdir(exist_ok=True)
    run = _Run(opts, out)
    try:
        url, server, token = run.server()
        run.info["host"] = url
        code = run.drive(url, token, server)
    finally:
        run.finish()
    write_summary(out)
    return out, code


def write_summary(out: Path) -> pd.DataFrame:
    """Write ``summary.json`` (the one-row summary: seconds, rates per second, whether the
    generator was the bound) into the results folder ``out``, and return the summary."""
    from cqrs_lab.load.results import load_results

    summary = load_results(out).summary
    (out / "summary.json").write_text(summary.iloc[0].to_json(indent=2) + "\n")
    return summary
