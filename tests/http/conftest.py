"""Helpers: the app in-process on its own event loop thread, and the real server as a process.

``Live`` runs the app's lifespan (so the driver pumps in the background, as under uvicorn)
on a private event loop thread and talks to it with ``httpx`` over the ASGI transport.
``Server`` starts ``cqrs-lab serve`` as a subprocess on a free port on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from cqrs_lab.http import ServerConfig, StageTimings, build_engine, create_app
from cqrs_lab.http.router import LabApp

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-admin-token"


class Live:
    """The app served in-process: ``live.get(...)``, ``live.post(...)``, ``live.run(coro)``."""

    def __init__(self, app: LabApp) -> None:
        self.app = app
        self.engine = app.state.engine
        self.driver = app.state.driver
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack = contextlib.AsyncExitStack()
        self.run(self.stack.enter_async_context(app.api.router.lifespan_context(app.api)))
        transport = httpx.ASGITransport(app=app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://lab")

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        """Run a coroutine on the app's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on the loop thread (the engine's only thread)."""

        async def inner() -> T:
            return fn()

        return self.run(inner())

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every projection has caught up with the head."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call(
                lambda: all(s.backlog() == 0 and s.idle for s in self.engine.subscriptions.values())
            ):
                return
            time.sleep(0.01)
        raise AssertionError("projections did not catch up")

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.run(self.client.aclose())
        self.run(self.stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


MakeLive = Callable[..., Live]


@pytest.fixture
def make_live() -> Iterator[MakeLive]:
    made: list[Live] = []

    def make(stages: StageTimings | None = None, **settings: Any) -> Live:
        config = ServerConfig(**settings)
        built = build_engine(config)
        live = Live(
            create_app(
                built.engine,
                config,
                responses=built.responses,
                checkpoints=built.checkpoints,
                close=built.store.close if built.store is not None else None,
                stages=stages,
            )
        )
        made.append(live)
        return live

    yield make
    for live in made:
        live.close()


@pytest.fixture
def live(make_live: Callable[..., Live]) -> Live:
    return make_live(admin_token=TOKEN, restart_after=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``cqrs-lab serve`` as a subprocess on 127.0.0.1 (killed on close, never left behind)."""

    def __init__(self, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cqrs_lab.cli", "serve", "--port", str(self.port), *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.url + "/livez", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("server did not come up within 20 s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def terminate(self) -> tuple[int, str]:
        """SIGTERM (uvicorn's graceful shutdown); returns the exit code and the log."""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=15)
        return self.proc.returncode, err.decode()
