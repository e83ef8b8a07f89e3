"""``cqrs-lab serve``: a domain's engine behind a real uvicorn server.

``--domain`` names what is served (default the bank); ``--stage-timings`` exports per-stage
timings on ``/metrics`` and ``--stages-csv PATH`` also writes the raw samples on exit (what
``cqrs-lab loadtest`` starts). Once uvicorn listens, one line on stdout says what is served,
where, on which store, and where the API docs are (:func:`start_line`). Process-wide
settings belong here, to the entry point, never to the app: the garbage collector is
frozen once the app is up and again as the log grows (``--gc-freeze-every``, 0: never;
:class:`CollectorFreezer`, called by the app's lifespan wrapper
:class:`~cqrs_lab.http.serve_process.ServeLifespan`), and uvicorn runs with the guarded
protocol (:func:`~cqrs_lab.http.serve_process.run_uvicorn`). When the event store fails (its
database unreachable: :mod:`cqrs_lab.http.driver`), the process shuts down and exits
:data:`STORE_FAILED_EXIT` (75, ``EX_TEMPFAIL``) for its supervisor to restart it.

>>> import argparse
>>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
>>> args = parser.parse_args(["serve", "--port", "0", "--stages", "out.csv"])
>>> args.port, args.domain, args.stages_csv, args.restart_after
(0, 'cqrs_lab.domains.bank', 'out.csv', 1.0)
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any

from cqrs_lab.core import DELIVERY_POLICIES, Engine
from cqrs_lab.core.bus import DEFAULT_IDEMPOTENCY_MAX_KEYS, DEFAULT_IDEMPOTENCY_RETENTION
from cqrs_lab.errors import ConfigError, StoreFailure
from cqrs_lab.http.config import ADMIN_TOKEN_ENV, DEFAULT_DOMAIN, ServerConfig
from cqrs_lab.http.serve_args import check_serve_args
from cqrs_lab.http.serve_process import ServeLifespan, run_uvicorn
from cqrs_lab.http.workers import STORE_FAILED_EXIT
from cqrs_lab.stores.store_urls import shown_store
from cqrs_lab.stores.view_snapshots import DEFAULT_SNAPSHOT_EVERY
from cqrs_lab.stores.worker_parent import orphaned

__all__ = [
    "CollectorFreezer",
    "ServeLifespan",
    "register",
    "run_uvicorn",
    "serve",
    "start_line",
]

log = logging.getLogger("cqrs_lab.http.cli")


def start_line(config: ServerConfig, url: str) -> str:
    """The one line ``serve`` prints once it listens: what, where, on which store (without
    the credentials of a store URL), the docs.

    >>> print(start_line(ServerConfig(), "http://127.0.0.1:8000"))  # doctest: +NORMALIZE_WHITESPACE
    cqrs-lab serve: cqrs_lab.domains.bank (effectively-once delivery) on
    http://127.0.0.1:8000, store memory; API docs http://127.0.0.1:8000/docs
    >>> external = ServerConfig(store="postgresql://lab@db/lab", workers=2)
    >>> start_line(external, "http://h:1").endswith("run them with cqrs-lab project")
    True
    """
    line = (
        f"cqrs-lab serve: {config.domain} ({config.delivery} delivery) on {url}, store "
        f"{shown_store(config.store)}; API docs {url}/docs"
    )
    if config.sagas == "external" or config.workers > 1:  # nothing here sends saga steps
        line += "; sagas only follow the log here: run them with cqrs-lab project"
    return line


def serve(args: argparse.Namespace) -> int:
    """Build the config, the engine and the app, then run uvicorn until stopped."""
    from cqrs_lab.http.app import create_app_from_config
    from cqrs_lab.http.stages import StageTimings
    from cqrs_lab.http.workers import worker_stages

    check_serve_args(args)
    config = ServerConfig(
        domain=args.domain,
        delivery=args.delivery,
        store=args.store,
        admin_token=ServerConfig.admin_token_from_env(args.admin_token),
        queue_size=args.queue_size,
        ready_max_lag=args.ready_max_lag,
        max_body_bytes=args.max_body_bytes,
        sqlite_synchronous=args.sqlite_synchronous,
        snapshot_every=args.snapshot_every,
        max_wait=args.max_wait,
        restart_after=args.restart_after if args.restart_after >= 0 else None,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        idempotency_retention=args.idempotency_retention,
        idempotency_max_keys=args.idempotency_max_keys,
        workers=args.workers,
        sagas=args.sagas,
    )
    if args.workers > 1:  # a pre-forking parent: see cqrs_lab.http.workers
        from cqrs_lab.http.workers import run_workers

        if "serve" not in sys.argv:
            raise ConfigError("--workers: start it from the command line (cqrs-lab serve ...)")
        argv = sys.argv[sys.argv.index("serve") :]
        stop = threading.Event()  # this command's own process: its handlers, restored after

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return run_workers(
                args.host, args.port, args.workers, argv, stop, stages_csv=args.stages_csv
            )
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.log_projections:
        logging.getLogger("cqrs_lab.http.projections").setLevel(logging.DEBUG)
    if args.listen_fd is not None and args.stages_csv:  # a worker: the parent merges them
        args.stages_csv = worker_stages(args.stages_csv, os.getpid())
    stages = StageTimings() if args.stage_timings or args.stages_csv else None
    app = create_app_from_config(config, stages)
    driver = app.state.driver
    gone = orphaned() if args.listen_fd is not None else lambda: False  # a --workers child

    def write_stages() -> None:
        if stages is not None and args.stages_csv:
            stages.write_csv(args.stages_csv)

    if args.gc_freeze_every > 0:
        freezer = CollectorFreezer(app.state.engine, args.gc_freeze_every)
        served = ServeLifespan(app, freezer.start, freezer.tick, write_stages)
    else:
        served = ServeLifespan(app, on_shutdown=write_stages)
    fd = args.listen_fd
    pauses = stages.collector_callback() if stages is not None else None
    if pauses is not None:  # the collector's pauses as a stage (this process only)
        gc.callbacks.append(pauses)
    try:
        run_uvicorn(
            served,
            args.host,
            args.port,
            log_level=args.log_level,
            graceful_seconds=10,
            config=config,
            announce=lambda url: print(start_line(config, url), flush=True),
            sockets=None if fd is None else [socket.socket(fileno=fd)],
            stages=stages,
            stop_if=lambda: driver.failed is not None or gone(),
        )
    finally:
        if pauses is not None:
            gc.callbacks.remove(pauses)
    if gone():
        print("cqrs-lab serve: worker stopped, its parent is gone", file=sys.stderr)
        return 1
    if driver.failed is not None:  # crash-only: its supervisor restarts it (see driver.py)
        print(f"cqrs-lab serve: stopped, the event store failed: {driver.failed}", file=sys.stderr)
        return STORE_FAILED_EXIT
    return 0


class CollectorFreezer:
    """The served process's collector policy (this entry point's, process-wide): once the
    app has started, ``gc.collect()`` and ``gc.freeze()`` (:meth:`start`); then
    ``gc.freeze()`` again each time the log has grown by ``every`` events (:meth:`tick`,
    called every half second). Full collections then stop walking the framework and the
    ever-growing log (measured: 100 ms pauses every half second under load without it);
    frozen objects are still freed by reference counting when they are dropped."""

    def __init__(self, engine: Engine, every: int) -> None:
        self.engine, self.every = engine, every
        self.frozen_at = 0

    def start(self) -> None:
        gc.collect()
        gc.freeze()
        self.frozen_at = self._head()

    def tick(self) -> None:
        head = self._head()
        if head < 0:
            return
        if head - self.frozen_at >= self.every:
            gc.freeze()
            self.frozen_at = head

    def _head(self) -> int:
        """The log's head, or -1 when the store fails (the driver stops the server on it,
        exit 75: at start-up too, where uvicorn printed the error's traceback, exit 3)."""
        try:
            return self.engine.store.head_position
        except StoreFailure:
            return -1


def register(sub: Any) -> None:
    """Add ``serve`` to the ``cqrs-lab`` command line."""
    p = sub.add_parser(
        "serve", help="serve a domain over HTTP with uvicorn (default: the bank, 127.0.0.1:8000)"
    )
    p.add_argument(
        "--domain",
        default=DEFAULT_DOMAIN,
        help="the domain to serve: a module with a 'domain' attribute or 'module:object' "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port", type=int, default=8000, help="TCP port; 0: any free one (default: %(default)s)"
    )
    p.add_argument(
        "--delivery",
        choices=DELIVERY_POLICIES,
        default="effectively-once",
        help="delivery semantics of the projections (default: %(default)s)",
    )
    p.add_argument(
        "--store",
        default="memory",
        help="event store: memory, sqlite:PATH (durable) or postgresql://... (shared; needs "
        "the postgres extra) (default: %(default)s)",
    )
    p.add_argument(
        "--admin-token",
        default=None,
        help=f"bearer token for rebuild/faults/replay, at least 8 characters (or "
        f"${ADMIN_TOKEN_ENV}) (default: none, those routes off)",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=1024,
        help="commands queued before new ones are shed with 429 (default: %(default)s)",
    )
    p.add_argument(
        "--ready-max-lag",
        type=int,
        default=10_000,
        metavar="POSITIONS",
        help="/readyz answers 503 while a view is this far behind (default: %(default)s)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=64 * 1024,
        help="larger request bodies are refused with 413 (default: %(default)s)",
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="longest read-your-writes wait a read may ask for (default: %(default)s)",
    )
    p.add_argument(
        "--restart-after",
        type=float,
        default=1.0,
        help="seconds before a crashed consumer is restarted; negative: never "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a connection (408) whose request headers are not complete by then "
        "(slow clients; default: %(default)s)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="answer 408 and close when a request body is not in this long after its headers, "
        "and disconnect a client that reads none of its answers this long "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=2048,
        help="open connections at most; one more gets 503 problem+json and is closed "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--sqlite-synchronous",
        default="FULL",
        choices=("NORMAL", "FULL"),
        help="SQLite's synchronous pragma: FULL survives a power cut, NORMAL a crash of the "
        "process only (default: %(default)s)",
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=DEFAULT_SNAPSHOT_EVERY,
        metavar="POSITIONS",
        help="with the SQLite store, snapshot each read model every this many positions; a "
        "restart replays only the events after the latest snapshot (default: %(default)s)",
    )
    p.add_argument(
        "--stage-timings",
        action="store_true",
        help="time commands, queries, projection steps, requests and append-to-apply lag; "
        "export them on /metrics (cqrs_lab_stage_seconds, cqrs_lab_stage_items) "
        "(default: off)",
    )
    p.add_argument(
        "--stages-csv",
        "--stages",
        dest="stages_csv",
        default=None,
        metavar="PATH",
        help="also write the raw stage samples to this CSV on exit (implies --stage-timings; "
        "default: none)",
    )
    p.add_argument(
        "--gc-freeze-every",
        type=int,
        default=5_000,
        metavar="EVENTS",
        help="freeze the garbage collector's heap after start-up and every EVENTS new events "
        "(default: %(default)s; 0: never)",
    )
    p.add_argument(
        "--idempotency-retention",
        type=float,
        default=DEFAULT_IDEMPOTENCY_RETENTION,
        metavar="SECONDS",
        help="keep what each Idempotency-Key was answered with this long: a retry within it "
        "(and within --idempotency-max-keys) is applied once (default: %(default)s)",
    )
    p.add_argument(
        "--idempotency-max-keys",
        type=int,
        default=DEFAULT_IDEMPOTENCY_MAX_KEYS,
        metavar="KEYS",
        help="keep the records of this many of the newest keys at most (default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (PostgreSQL store only; sagas then run in "
        "`cqrs-lab project`) (default: %(default)s)",
    )
    p.add_argument(
        "--sagas",
        choices=("internal", "external"),
        default="internal",
        help="external: sagas only follow the log here and send nothing (run them with "
        "`cqrs-lab project`; implied by --workers > 1) (default: %(default)s)",
    )
    p.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--log-projections", action="store_true", help="log each applied event (default: off)"
    )
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        help="uvicorn's log level (default: %(default)s)",
    )
    p.set_defaults(run=serve)
