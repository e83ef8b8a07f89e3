"""``cqrs-lab project``: run a domain's sagas as competing worker processes on PostgreSQL.

Beside ``cqrs-lab serve --store postgresql://... --workers N`` (whose workers then only
follow the sagas' state): each worker owns a fair share of the sagas' partitions through
PostgreSQL advisory locks and takes over those of a worker that dies; see
:mod:`cqrs_lab.stores.postgres_project`. ``--workers K`` starts K worker processes and
forwards SIGTERM/SIGINT to them (it restarts none).

>>> import argparse
>>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
>>> args = parser.parse_args(["project", "--store", "postgresql://h/db", "--workers", "2"])
>>> args.workers, args.partitions, args.projection, args.snapshot_every
(2, 8, None, 20000)
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Any

from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.postgres_slot_snapshots import DEFAULT_SLOT_SNAPSHOT_EVERY
from cqrs_lab.stores.store_urls import is_postgres, shown_store
from cqrs_lab.stores.worker_parent import (
    MAX_WORKERS,
    child_env,
    orphaned,
    workers_exit_status,
)

__all__ = ["register", "run"]

DEFAULT_DOMAIN = "cqrs_lab.domains.bank"
#: the collector's thresholds in a worker process (see ``_work``)
WORKER_GC_THRESHOLDS = (100_000, 50, 100)


def run(args: argparse.Namespace) -> int:
    if not is_postgres(args.store):
        raise ConfigError(
            f"--store {args.store!r}: project workers share a PostgreSQL store; pass "
            f"postgresql://..."
        )
    if not 1 <= args.workers <= MAX_WORKERS:
        raise ConfigError(
            f"--workers {args.workers}: saga worker processes, a whole number from 1 to "
            f"{MAX_WORKERS}"
        )
    if args.snapshot_every < 1:
        raise ConfigError(
            f"--snapshot-every {args.snapshot_every}: pass a whole number of positions >= 1"
        )
    if not 1 <= args.batch_size <= 100_000:  # 0 read nothing and polled for ever
        raise ConfigError(f"--batch-size {args.batch_size}: events per step, 1 to 100000")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # this command's own process (an entry point): its logging, its signal handlers and, in
    # a worker, its collector's thresholds, restored when it returns. A worker replays the
    # events of the slots it takes: millions of short-lived objects that reference counting
    # frees; the young-generation collections cost about a fifth of a catch-up (W4's log,
    # profiled), so a worker runs them rarely, as `simulate` does, with what was built
    # before frozen out of their scans
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(message)s")
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    thresholds = gc.get_threshold() if args.workers == 1 else None
    try:
        if thresholds is None:
            return _parent(args, stop)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*WORKER_GC_THRESHOLDS)
        return _work(args, stop)
    finally:
        if thresholds is not None:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
        for s, handler in old.items():
            signal.signal(s, handler)


def _work(args: argparse.Namespace, stop: threading.Event) -> int:
    from cqrs_lab.stores.postgres_project import open_worker

    worker = open_worker(
        args.store,
        args.domain,
        args.projection,
        partitions=args.partitions,
        batch_size=args.batch_size,
        record_applications=args.record_applications,
        snapshot_every=args.snapshot_every,
    )
    try:
        line = (
            f"cqrs-lab project: worker {worker.name} (pid {os.getpid()}) running "
            f"{', '.join(worker.views)} ({args.partitions} partitions each) on "
            f"{shown_store(args.store)}\n"
        )
        sys.stdout.write(line)  # one write: the workers share the parent's stdout
        sys.stdout.flush()
        gone = orphaned()  # started by a parent that was killed: stop, as on SIGTERM
        worker.run(lambda: stop.is_set() or gone())
    finally:
        worker.close()
    return 0


def _parent(args: argparse.Namespace, stop: threading.Event) -> int:
    argv = sys.argv[sys.argv.index("project") :] if "project" in sys.argv else []
    if not argv:
        raise ConfigError("--workers: start it from the command line (cqrs-lab project ...)")
    child = [a for a in argv if not a.startswith("--workers")]
    if "--workers" in argv:  # drop the value too
        i = argv.index("--workers")
        child = argv[:i] + argv[i + 2 :]
    cmd = [sys.executable, "-m", "cqrs_lab.cli", *child, "--workers", "1"]
    env = child_env(os.environ)
    procs = [subprocess.Popen(cmd, env=env) for _ in range(args.workers)]
    pids = ", ".join(str(p.pid) for p in procs)
    print(f"cqrs-lab project: {args.workers} workers, pids {pids}", flush=True)
    reported: set[int] = set()
    while not stop.is_set() and len(reported) < len(procs):
        for p in procs:
            if p.poll() is not None and p.pid not in reported:
                reported.add(p.pid)
                print(f"cqrs-lab project: worker {p.pid} exited with {p.returncode} "
                      f"(none is restarted)", file=sys.stderr, flush=True)  # fmt: skip
        stop.wait(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    if stop.is_set():
        return 0
    return workers_exit_status(p.returncode for p in procs)


def register(sub: Any) -> None:
    """Add ``project`` to the ``cqrs-lab`` command line."""
    p = sub.add_parser(
        "project", help="run a domain's sagas as competing workers on a PostgreSQL store"
    )
    p.add_argument("--store", required=True, help="the shared store: postgresql://...")
    p.add_argument(
        "--domain",
        default=DEFAULT_DOMAIN,
        help="a module with a 'domain' attribute or 'module:object' (default: %(default)s)",
    )
    p.add_argument(
        "--projection",
        action="append",
        default=None,
        metavar="NAME",
        help="a saga to run (repeat for several; default: every saga of the domain)",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    p.add_argument(
        "--partitions",
        type=int,
        default=8,
        help="partitions of each saga, shared out among the workers; every worker of one "
        "store must use the same number (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=64,
        metavar="EVENTS",
        help="events read per batch; a partition's batch is one transaction (default: %(default)s)",
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=DEFAULT_SLOT_SNAPSHOT_EVERY,
        metavar="POSITIONS",
        help="snapshot each partition's saga state every this many positions, so a worker "
        "taking a partition over replays only what follows it (default: %(default)s)",
    )
    p.add_argument(
        "--record-applications",
        action="store_true",
        help="also write each application to table project_applied, in its transaction "
        "(for drills counting duplicates; grows without bound) (default: off)",
    )
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="log level (default: %(default)s)",
    )
    p.set_defaults(run=run)
