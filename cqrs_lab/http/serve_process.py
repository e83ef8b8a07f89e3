"""The ``serve`` process: uvicorn with the guarded protocol (:func:`run_uvicorn`), and the
process-wide garbage-collector policy around the app's lifespan (:class:`ServeLifespan`).

Used by the entry point, ``cqrs-lab serve`` (:mod:`cqrs_lab.http.cli`), only: process-wide
settings belong to it, never to an app a test or notebook embeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import socket
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from cqrs_lab.core import Engine
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
) -> None:
    """Serve ``app`` with one uvicorn worker (uvloop where installed) and the guarded
    httptools protocol: header and body timeouts and the connection limit of ``config``
    (:mod:`cqrs_lab.http.protocol`). ``announce`` is called with the base URL (the port
    actually bound, also for port 0) once uvicorn listens; ``sockets``: listen on these
    (inherited from ``--workers``' parent) instead of binding; ``stages``: the protocol times
    each read (``serve --stage-timings``). Exits 3 if it never started."""
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

    server = Announcing(settings)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if not server.started:
        sys.exit(3)  # uvicorn's start-up failure status


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
