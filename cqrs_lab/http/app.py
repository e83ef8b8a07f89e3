"""The app factory: an ASGI app over an engine, built from its dependencies, never at import.

>>> from cqrs_lab.http import ServerConfig, build_engine, create_app
>>> config = ServerConfig()
>>> built = build_engine(config)
>>> app = create_app(built.engine, config)
>>> app.api.title
'cqrs-lab'
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from cqrs_lab.core import Engine
from cqrs_lab.http.commands import CommandGateway
from cqrs_lab.http.config import BuiltEngine, ServerConfig, build_engine
from cqrs_lab.http.driver import Driver, ProjectionLogger
from cqrs_lab.http.lane import LabApp
from cqrs_lab.http.metrics import HttpMetrics
from cqrs_lab.http.ops import ops_router
from cqrs_lab.http.problems import install_handlers
from cqrs_lab.http.routes import bank_routes, document
from cqrs_lab.stores.records import ResponseRecords, ResponseStore

__all__ = ["create_app", "create_app_from_config"]


def create_app(
    engine: Engine,
    config: ServerConfig,
    *,
    responses: ResponseStore | None = None,
    checkpoints: Any = None,
    close: Any = None,
) -> LabApp:
    """An app serving ``engine`` (with the bank installed) under ``config``.

    ``responses`` keeps Idempotency-Key answers (default: in memory, bounded);
    ``checkpoints`` (a :class:`~cqrs_lab.stores.records.SqliteCheckpoints`) persists
    projection positions and dead letters; ``close`` is called after the graceful shutdown.
    The engine's store is used for group commits when it has a ``batch()`` method.
    The result is a :class:`~cqrs_lab.http.lane.LabApp`; ``app.api`` is the FastAPI app.
    """
    if engine.recorder is None:
        recorder = ProjectionLogger()
        engine.recorder = recorder
        for sub in engine.subscriptions.values():
            sub.recorder = recorder
    resumed_from: dict[str, int] = checkpoints.previous() if checkpoints is not None else {}
    group = getattr(engine.store, "batch", None)

    def save() -> None:
        if checkpoints is not None:
            checkpoints.save(engine.positions(), engine.dead_letters.list())

    driver = Driver(engine, config, group=group, after_batch=save if checkpoints else None)
    metrics = HttpMetrics(engine, lambda: driver.shed)
    records = responses if responses is not None else ResponseRecords(config.response_records)
    gateway = CommandGateway(engine, driver, metrics, records)

    def readiness() -> tuple[bool, list[str]]:
        reasons = []
        head = engine.store.head_position
        for name, sub in engine.subscriptions.items():
            if sub.crashed:
                reasons.append(f"projection {name} is down")
            elif head - sub.position > config.ready_max_lag:
                reasons.append(
                    f"projection {name} lags {head - sub.position} positions "
                    f"(bound {config.ready_max_lag})"
                )
            elif sub.position < min(resumed_from.get(name, 0), head):
                reasons.append(
                    f"projection {name} is replaying: at {sub.position}, had "
                    f"reached {resumed_from[name]} before the restart"
                )
        if not driver.alive:
            reasons.append("the engine driver is not running")
        return not reasons, reasons

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await driver.start()
        try:
            yield
        finally:
            await driver.stop()
            if close is not None:
                close()

    app = FastAPI(
        title="cqrs-lab",
        version="0.1.0",
        description=(
            "The cqrs_lab engine served over HTTP: bank commands and queries with "
            "consistency tokens, read-your-writes, optimistic concurrency, idempotency keys "
            "and operations routes. Errors are application/problem+json."
        ),
        lifespan=lifespan,
        redirect_slashes=False,
    )
    _problem_openapi(app)
    install_handlers(app)
    routes = bank_routes(engine, driver, gateway, config.max_body_bytes, config.max_wait)
    document(app, routes)
    app.include_router(
        ops_router(
            engine,
            driver,
            metrics,
            config.admin_token,
            readiness,
            resumed_from,
            checkpoints.history if checkpoints is not None else None,
        )
    )
    app.state.engine = engine
    app.state.driver = driver
    app.state.metrics = metrics
    app.state.config = config
    return LabApp(app, routes, metrics, config.max_body_bytes)


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; errors name the field at fault",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def _problem_openapi(api: FastAPI) -> None:
    """Document every 4xx/5xx answer as application/problem+json (what the app sends)."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = FastAPI.openapi(api)
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps.pop("HTTPValidationError", None)
        comps.pop("ValidationError", None)
        comps["Problem"] = _PROBLEM_SCHEMA
        ref = {"$ref": "#/components/schemas/Problem"}
        for path in schema["paths"].values():
            for op in path.values():
                responses = op.setdefault("responses", {})
                if op.get("requestBody") or op.get("parameters"):
                    responses.setdefault("422", {"description": "invalid request"})
                if op.get("requestBody"):
                    responses.setdefault("400", {"description": "malformed JSON"})
                    responses.setdefault("413", {"description": "body too large"})
                for code, resp in responses.items():
                    if code[0] in "45":
                        resp["content"] = {"application/problem+json": {"schema": ref}}
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


def create_app_from_config(config: ServerConfig) -> LabApp:
    """Build the engine on the configured store and the app over it (the CLI's factory)."""
    built: BuiltEngine = build_engine(config)
    close = built.store.close if built.store is not None else None
    return create_app(
        built.engine, config, responses=built.responses, checkpoints=built.checkpoints, close=close
    )
