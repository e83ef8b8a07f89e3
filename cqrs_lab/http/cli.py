"""``cqrs-lab serve``: the engine behind a real uvicorn server.

>>> import argparse
>>> parser = argparse.ArgumentParser(); register(parser.add_subparsers())
>>> parser.parse_args(["serve", "--port", "0"]).port
0
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from typing import Any

from cqrs_lab.core import DELIVERY_POLICIES
from cqrs_lab.http.config import ADMIN_TOKEN_ENV, ServerConfig

__all__ = ["register", "run_uvicorn", "serve"]


def run_uvicorn(
    app: Any, host: str, port: int, *, log_level: str = "info", graceful_seconds: int = 10
) -> None:
    """Serve ``app`` with one uvicorn worker (uvloop and httptools where installed)."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
    )


def serve(args: argparse.Namespace) -> int:
    """Build the config, the engine and the app, then run uvicorn until stopped."""
    from cqrs_lab.http.app import create_app_from_config

    config = ServerConfig(
        delivery=args.delivery,
        store=args.store,
        admin_token=ServerConfig.admin_token_from_env(args.admin_token),
        queue_size=args.queue_size,
        ready_max_lag=args.ready_max_lag,
        max_body_bytes=args.max_body_bytes,
        sqlite_synchronous=args.sqlite_synchronous,
        max_wait=args.max_wait,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.log_projections:
        logging.getLogger("cqrs_lab.http.projections").setLevel(logging.DEBUG)
    app = create_app_from_config(config)
    run_uvicorn(app, args.host, args.port, log_level=args.log_level, graceful_seconds=10)
    return 0


def register(sub: Any) -> None:
    """Add ``serve`` to the ``cqrs-lab`` command line."""
    p = sub.add_parser("serve", help="serve the bank over HTTP with uvicorn (127.0.0.1:8000)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
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
    p.add_argument("--sqlite-synchronous", default="FULL", choices=("NORMAL", "FULL"))
    p.add_argument("--log-projections", action="store_true", help="log each applied event")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(run=serve)
