"""The ``serve`` process: uvicorn with the guarded protocol (:func:`run_uvicorn`), and hooks
around the app's lifespan (:class:`ServeLifespan`).

Used by the entry point, ``cqrs-lab serve`` (:mod:`cqrs_lab.http.cli`), only; the
process-wide settings it hooks in (the collector's) are the entry point's own, never set
here nor by an app a test or notebook embeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from cqrs_lab.http.config import ServerConfig
from cqrs_lab.http.stages import StageTimings

__all__ = ["ServeLifespan", "run_uvicorn"]

Message = MutableMapping[str, Any]


def run_uvicorn(
    app: Any,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    graceful_seconds: int = 10,
    config: ServerConfig | None = None,
    announce: Callable[[str], None] | None = None,
    sockets: list[socket.socket] | None = None,
    stages: StageTimings | None = None,
    stop_if: Callable[[], bool] | None = None,
) -> None:
    """Serve ``app`` with one uvicorn worker (uvloop where installed) and the guarded
    httptools protocol: header and body timeouts and the connection limit of ``config``
    (:mod:`cqrs_lab.http.protocol`). ``announce`` is called with the base URL (the port
    actually bound, also for port 0) once uvicorn listens; ``sockets``: listen on these
    (inherited from ``--workers``' parent) instead of binding; ``stages``: the protocol times
    each read (``serve --stage-timings``); ``stop_if``: checked on uvicorn's ticks (every
    0.1 s), a graceful shutdown once it says so, as on SIGTERM. Exits 3 if it never started."""
    import uvicorn

    from cqrs_lab.http.protocol import guarded_protocol

    config = config or ServerConfig()
    protocol = guarded_protocol(
        config.header_timeout, config.body_timeout, config.max_connections, stages
    )
    settings = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=protocol,
        ws="none",  # no WebSocket here: an upgrade is answered as plain HTTP (protocol.py)
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=graceful_seconds,
    )

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and announce is not None:
                bound = [s.getsockname() for srv in self.servers for s in srv.sockets or ()]
                real = bound[0][1] if bound else port
                shown = f"[{host}]" if ":" in host else host
                announce(f"http://{shown}:{real}")

        async def on_tick(self, counter: int) -> bool:
            stop = await super().on_tick(counter)
            return stop or (stop_if is not None and stop_if())

    server = Announcing(settings)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):  # uvicorn exits if it cannot bind
        server.run(sockets=sockets)
    if not server.started:  # uvicorn logged why (a name not resolved, a port in use)
        lifespan = getattr(server, "lifespan", None)
        if lifespan is None or not lifespan.should_exit:  # the app itself had started
            where = "the inherited socket" if sockets else f"--host {host} --port {port}"
            print(f"cqrs-lab serve: could not listen on {where} (see above)", file=sys.stderr)
        sys.exit(3)  # uvicorn's start-up failure status


class ServeLifespan:
    """An ASGI wrapper for the ``serve`` process only, around the app's own lifespan.

    Once the app has started: ``on_started()``, then ``on_tick()`` every ``period`` seconds
    until shutdown (the entry point passes its collector policy: :class:`~cqrs_lab.http.
    cli.CollectorFreezer`). Once the app has shut down (its driver drained):
    ``on_shutdown()``, before uvicorn hands the stopping signal back to the process.
    """

    def __init__(
        self,
        app: Any,
        on_started: Callable[[], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        on_shutdown: Callable[[], None] | None = None,
        period: float = 0.5,
    ) -> None:
        self.app, self.period = app, period
        self.on_started, self.on_tick, self.on_shutdown = on_started, on_tick, on_shutdown
        self.task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def observed(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                if self.on_started is not None:
                    self.on_started()
                if self.on_tick is not None:
                    self.task = asyncio.create_task(self._ticks(self.on_tick), name="cqrs-tick")
            elif message["type"] == "lifespan.shutdown.complete":
                if self.task is not None:
                    self.task.cancel()
                if self.on_shutdown is not None:
                    self.on_shutdown()
            await send(message)

        await self.app(scope, receive, observed)

    async def _ticks(self, tick: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(self.period)
            tick()
