"""``cqrs-lab serve``: a domain's engine behind a real uvicorn server.

``--domain`` names what is served (default the bank); ``--stage-timings`` exports per-stage
timings on ``/metrics`` and ``--stages-csv PATH`` also writes the raw samples on exit (what
``cqrs-lab loadtest`` starts). Process-wide settings belong here, to the entry point, never
to the app: the garbage collector is frozen once the app is up and again as the log grows
(``--gc-freeze-every``, 0: never).

>>> import argparse
>>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
>>> args = parser.parse_args(["serve", "--port", "0", "--stages", "out.csv"])
>>> args.port, args.domain, args.stages_csv, args.restart_after
(0, 'cqrs_lab.domains.bank', 'out.csv', 1.0)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import logging
from collections.abc import Callable, MutableMapping
from typing import Any

from cqrs_lab.core import DELIVERY_POLICIES, Engine
from cqrs_lab.core.bus import DEFAULT_IDEMPOTENCY_MAX_KEYS, DEFAULT_IDEMPOTENCY_RETENTION
from cqrs_lab.http.config import ADMIN_TOKEN_ENV, DEFAULT_DOMAIN, ServerConfig

__all__ = ["ServeLifespan", "register", "run_uvicorn", "serve"]

log = logging.getLogger("cqrs_lab.http.cli")
Message = MutableMapping[str, Any]


def run_uvicorn(
    app: Any,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    graceful_seconds: int = 10,
    config: ServerConfig | None = None,
) -> None:
    """Serve ``app`` with one uvicorn worker (uvloop where installed) and the guarded
    httptools protocol: header and body timeouts and the connection limit of ``config``
    (:mod:`cqrs_lab.http.protocol`)."""
    import uvicorn

    from cqrs_lab.http.protocol import guarded_protocol

    config = config or ServerConfig()
    protocol = guarded_protocol(config.header_timeout, config.body_timeout, config.max_connections)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=protocol,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
    )


class ServeLifespan:
    """An ASGI wrapper for the ``serve`` process only, around the app's own lifespan.

    Once the app has started: ``gc.collect()`` and ``gc.freeze()``, then ``gc.freeze()``
    again each time the log has grown by ``gc_freeze_every`` events (checked every
    ``period`` seconds; None: never). Full collections then stop walking the framework and
    the ever-growing log (measured: 100 ms pauses every half second under load without
    it); frozen objects are still freed by reference counting when they are dropped.
    Once the app has shut down (its driver drained): ``on_shutdown()``, before uvicorn
    hands the stopping signal back to the process.
    """

    def __init__(
        self,
        app: Any,
        engine: Engine,
        gc_freeze_every: int | None,
        on_shutdown: Callable[[], None] | None = None,
        period: float = 0.5,
    ) -> None:
        self.app, self.engine, self.every, self.period = app, engine, gc_freeze_every, period
        self.on_shutdown = on_shutdown
        self.frozen_at = 0
        self.task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def observed(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete" and self.every is not None:
                self.freeze()
                watch = self._watch(self.every)
                self.task = asyncio.create_task(watch, name="cqrs-gc-freeze")
            elif message["type"] == "lifespan.shutdown.complete":
                if self.task is not None:
                    self.task.cancel()
                if self.on_shutdown is not None:
                    self.on_shutdown()
            await send(message)

        await self.app(scope, receive, observed)

    def freeze(self) -> None:
        gc.collect()
        gc.freeze()
        self.frozen_at = self.engine.store.head_position

    async def _watch(self, every: int) -> None:
        while True:
            await asyncio.sleep(self.period)
            head = self.engine.store.head_position
            if head - self.frozen_at >= every:
                gc.freeze()
                self.frozen_at = head


def serve(args: argparse.Namespace) -> int:
    """Build the config, the engine and the app, then run uvicorn until stopped."""
    from cqrs_lab.http.app import create_app_from_config
    from cqrs_lab.http.stages import StageTimings

    config = ServerConfig(
        domain=args.domain,
        delivery=args.delivery,
        store=args.store,
        admin_token=ServerConfig.admin_token_from_env(args.admin_token),
        queue_size=args.queue_size,
        ready_max_lag=args.ready_max_lag,
        max_body_bytes=args.max_body_bytes,
        sqlite_synchronous=args.sqlite_synchronous,
        max_wait=args.max_wait,
        restart_after=args.restart_after if args.restart_after >= 0 else None,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        idempotency_retention=args.idempotency_retention,
        idempotency_max_keys=args.idempotency_max_keys,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.log_projections:
        logging.getLogger("cqrs_lab.http.projections").setLevel(logging.DEBUG)
    stages = StageTimings() if args.stage_timings or args.stages_csv else None
    app = create_app_from_config(config, stages)

    def write_stages() -> None:
        if stages is not None and args.stages_csv:
            stages.write_csv(args.stages_csv)

    every = args.gc_freeze_every if args.gc_freeze_every > 0 else None
    served = ServeLifespan(app, app.state.engine, every, write_stages)
    run_uvicorn(
        served, args.host, args.port, log_level=args.log_level, graceful_seconds=10, config=config
    )
    return 0


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
    p.add_argument("--host", default="127.0.0.1", help="(default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    p.add_argument("--delivery", choices=DELIVERY_POLICIES, default="effectively-once")
    p.add_argument("--store", default="memory", help="memory (default) or sqlite:PATH")
    p.add_argument(
        "--admin-token",
        default=None,
        help=f"bearer token for rebuild/faults/replay (or ${ADMIN_TOKEN_ENV}); none: off",
    )
    p.add_argument("--queue-size", type=int, default=1024, help="commands queued before 429")
    p.add_argument("--ready-max-lag", type=int, default=10_000, help="positions, for /readyz")
    p.add_argument("--max-body-bytes", type=int, default=64 * 1024)
    p.add_argument("--max-wait", type=float, default=10.0, help="longest read-your-writes wait")
    p.add_argument(
        "--restart-after",
        type=float,
        default=1.0,
        help="seconds before a crashed consumer is restarted; negative: never (default: 1)",
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
        help="answer 408 and close when a request body stalls this long between two chunks "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=2048,
        help="open connections at most; one more gets 503 problem+json and is closed "
        "(default: %(default)s)",
    )
    p.add_argument("--sqlite-synchronous", default="FULL", choices=("NORMAL", "FULL"))
    p.add_argument(
        "--stage-timings",
        action="store_true",
        help="time commands, queries, projection steps, requests and append-to-apply lag; "
        "export them on /metrics (cqrs_lab_stage_seconds, cqrs_lab_stage_items)",
    )
    p.add_argument(
        "--stages-csv",
        "--stages",
        dest="stages_csv",
        default=None,
        metavar="PATH",
        help="also write the raw stage samples to this CSV on exit (implies --stage-timings)",
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
    p.add_argument("--log-projections", action="store_true", help="log each applied event")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=serve)
