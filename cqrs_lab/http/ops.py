"""Operations routes: projections, rebuilds, dead letters, faults, metrics, health.

Routes that change the engine (rebuild, replay, faults) need ``Authorization: Bearer
<admin token>``; a server started without a token answers them 403 (they are off).

>>> from cqrs_lab.http import Driver, ServerConfig, build_engine
>>> config = ServerConfig(domain="cqrs_lab.domains.inventory")
>>> engine = build_engine(config).engine
>>> metrics = HttpMetrics(engine, lambda: 0)
>>> router = ops_router(engine, Driver(engine, config), metrics, None, lambda: (True, []), {})
>>> sorted({r.path for r in router.routes})[:4]
['/dead-letters', '/dead-letters/{letter_id}/replay', '/faults', '/livez']
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field, StrictFloat, StrictInt
from starlette.responses import Response

from cqrs_lab.core import DeadLetter, Engine, FaultPlan
from cqrs_lab.errors import ConfigError, DeadLetterNotFound, Problem, ProjectionNotFound
from cqrs_lab.http.driver import Driver
from cqrs_lab.http.metrics import HttpMetrics
from cqrs_lab.http.openapi import PROBLEM
from cqrs_lab.http.schemas import INTEGRAL, StrictBody, parse_body, read_json_body

__all__ = ["BODY_MODELS", "FaultsBody", "ops_router"]

# StrictFloat takes JSON integers too; one type, so the bounds are documented as
# minimum/maximum (on a union, pydantic would write non-standard ge/le)
Probability = Annotated[StrictFloat, Field(ge=0, le=1)]
Seconds = Annotated[StrictFloat, Field(ge=0, le=60)]
_ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token", **PROBLEM},
    403: {"description": "admin routes are off (no admin token configured)", **PROBLEM},
    404: {"description": "no such projection or dead letter", **PROBLEM},
}


class TransportFaults(StrictBody):
    """Per-event probabilities of transport faults and consumer crashes (seeded)."""

    drop: Probability = 0.0
    duplicate: Probability = 0.0
    reorder: Probability = 0.0
    delay: Probability = 0.0
    crash: Probability = 0.0
    reorder_window: Annotated[StrictInt, Field(ge=1, le=1000), INTEGRAL] = 4
    delay_seconds: Annotated[list[Seconds], Field(min_length=2, max_length=2)] = [0.01, 0.1]
    redelivery_timeout: Seconds = 1.0


class FaultsBody(StrictBody):
    """``plan``: faults to switch on (null: off; absent: unchanged). ``crash`` and
    ``restart``: projections to crash or bring back now."""

    plan: TransportFaults | None = None
    crash: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=20)] = []
    restart: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=20)] = []


_SHADOW = {
    "name": "shadow",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "rebuild beside the live copy and swap when caught up",
}
#: the body of POST /faults, declared here because the route parses it itself (after the
#: token check); its schemas are added to the document's components (``openapi.document``)
_FAULTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FaultsBody"}}},
    }
}
#: body models the operations routes parse themselves, for the OpenAPI components
BODY_MODELS = (FaultsBody,)


def _letter(d: DeadLetter) -> dict[str, Any]:
    env = d.envelope
    return {
        "id": d.id,
        "projection": d.subscription,
        "position": env.position,
        "event_type": env.event_type,
        "stream_id": env.stream_id,
        "error": d.error,
        "attempts": d.attempts,
        "parked_at": d.parked_at,
        "correlation_id": env.correlation_id,
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such figures (no data yet) are sent as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(_finite(data)), status, media_type="application/json")


def ops_router(
    engine: Engine,
    driver: Driver,
    metrics: HttpMetrics,
    admin_token: str | None,
    readiness: Callable[[], tuple[bool, list[str]]],
    resumed_from: dict[str, int],
    history: Callable[[], list[dict[str, Any]]] | None = None,
) -> APIRouter:
    """The operations routes for ``engine`` run by ``driver``."""
    router = APIRouter(tags=["operations"])

    def admin(request: Request) -> None:
        if admin_token is None:
            raise Problem(
                403,
                "admin routes are off",
                "start the server with --admin-token (or CQRS_LAB_ADMIN_TOKEN)",
            )
        got = request.headers.get("authorization", "")
        scheme, _, token = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.encode(), admin_token.encode()
        ):
            raise Problem(
                401,
                "unauthorized",
                "send Authorization: Bearer <admin token>",
                headers={"WWW-Authenticate": 'Bearer realm="cqrs-lab admin"'},
            )

    def sub(name: str) -> Any:
        try:
            return engine.subscription(name)
        except ProjectionNotFound as exc:
            raise Problem(404, "not found", str(exc)) from None

    @router.get("/projections")
    async def projections() -> Response:
        """Per projection: position, lag in positions and seconds, backlog, semantics, DLQ."""
        out = []
        for stats in engine.stats():
            name = stats["name"]
            out.append(
                {
                    **stats,
                    "lag_positions": stats["backlog"],
                    "resumed_from": resumed_from.get(name, 0),
                }
            )
        return _json({"head": engine.store.head_position, "projections": out})

    @router.post(
        "/projections/{name}/rebuild",
        status_code=202,
        responses={**_ADMIN, 422: {"description": "shadow is not true or false", **PROBLEM}},
        openapi_extra={"parameters": [_SHADOW]},
    )
    async def rebuild(name: str, request: Request) -> Response:
        """Replay the projection from position 0 (``shadow=true``: beside the live copy)."""
        admin(request)  # before anything else is looked at: no token, 401
        if len(request.query_params.getlist("shadow")) > 1:
            raise Problem(422, "invalid request", "query parameter shadow: given twice")
        raw = request.query_params.get("shadow", "false")
        if raw not in ("true", "false"):
            raise Problem(422, "invalid request", "query parameter shadow: true or false")
        shadow = raw == "true"
        sub(name).rebuild(shadow=shadow)
        driver.notify()
        return _json({"projection": name, "shadow": shadow, "status": "rebuilding"}, 202)

    @router.get("/dead-letters")
    async def dead_letters() -> Response:
        """Events that kept failing, parked per projection (``history``: across restarts,
        with the SQLite store)."""
        body: dict[str, Any] = {
            "dead_letters": [_letter(d) for d in engine.dead_letters.list()],
            "replayed": engine.dead_letters.replayed,
        }
        if history is not None:
            body["history"] = history()
        return _json(body)

    @router.post("/dead-letters/{letter_id}/replay", responses=_ADMIN)
    async def replay(letter_id: str, request: Request) -> Response:
        """Apply one parked event again; on success it leaves the dead-letter store."""
        admin(request)
        try:
            letter = engine.dead_letters.get(letter_id)
            engine.subscription(letter.subscription).replay_dead_letter(letter_id)
        except DeadLetterNotFound as exc:
            raise Problem(404, "not found", str(exc)) from None
        except Exception as exc:  # the projection's own error: the letter stays parked
            raise Problem(
                409, "replay failed", f"{type(exc).__name__}: {exc}; the letter stays parked"
            ) from None
        return _json({"replayed": _letter(letter)})

    @router.get("/faults")
    async def faults() -> Response:
        """The fault plan in force and the consumers that are down."""
        plan = driver.faults
        return _json(
            {
                "plan": None if plan is None else str(plan),
                "crashed": list(driver.pending()),
                "restart_after": driver.config.restart_after,
            }
        )

    @router.post(
        "/faults",
        responses={**_ADMIN, 422: {"description": "invalid plan", **PROBLEM}},
        openapi_extra=_FAULTS_BODY,
    )
    async def set_faults(request: Request) -> Response:
        """Switch transport faults and consumer crashes on and off at run time."""
        admin(request)  # the token first: no token, 401, whatever the body
        body: FaultsBody = parse_body(FaultsBody, await read_json_body(request, 64 * 1024))
        for name in (*body.crash, *body.restart):
            sub(name)
        if "plan" in body.model_fields_set:
            p = body.plan
            try:
                plan = (
                    None
                    if p is None
                    else FaultPlan(
                        drop=p.drop,
                        duplicate=p.duplicate,
                        reorder=p.reorder,
                        delay=p.delay,
                        crash=p.crash,
                        reorder_window=p.reorder_window,
                        delay_seconds=(float(p.delay_seconds[0]), float(p.delay_seconds[1])),
                        redelivery_timeout=p.redelivery_timeout,
                    )
                )
            except ConfigError as exc:
                raise Problem(422, "invalid request", str(exc)) from None
            driver.set_faults(plan)
        for name in body.crash:
            sub(name).crash()
        for name in body.restart:
            sub(name).restart()
        driver.notify()
        return _json(
            {
                "plan": None if driver.faults is None else str(driver.faults),
                "crashed": list(driver.pending()),
            }
        )

    @router.get(
        "/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}}
    )
    async def prometheus() -> Response:
        """Prometheus exposition: request latency, command outcomes, lag, backlog, DLQ."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/livez")
    async def livez() -> Response:
        """200 while the driver's tasks run."""
        if not driver.alive:
            raise Problem(503, "not live", "the engine driver has stopped")
        return _json({"status": "live"})

    @router.get("/readyz", responses={503: {"description": "not ready", **PROBLEM}})
    async def readyz() -> Response:
        """503 while a projection is down, failing (its handler keeps raising), lags more
        than the bound, or is still replaying; the reasons name each one."""
        ok, reasons = readiness()
        if not ok:
            raise Problem(
                503, "not ready", "; ".join(reasons), headers={"Retry-After": "1"}, reasons=reasons
            )
        return _json({"status": "ready"})

    return router
