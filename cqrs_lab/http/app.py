"""The app factory: an ASGI app serving a domain's engine, built from its dependencies.

The domain is ``config.domain`` (default the bank), installed on the engine by
:func:`~cqrs_lab.http.build_engine`. Every domain gets ``POST /commands/{name}`` and
``GET /queries/{name}`` (:mod:`cqrs_lab.http.generic`); a domain that names hand-designed
routes in ``Domain.http_routes`` (``"module:function"``, called with a
:class:`~cqrs_lab.http.router.RouteContext`) gets those too, in the same route table.

>>> from cqrs_lab.http import ServerConfig, build_engine, create_app
>>> config = ServerConfig()
>>> app = create_app(build_engine(config).engine, config)
>>> app.api.title, sorted({r.path for r in app.routes})[:2]
('cqrs-lab: bank', ['/accounts', '/accounts/{account_id}'])
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route as StarletteRoute

from cqrs_lab.core import Domain, Engine, RecorderFanout, load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.http.commands import CommandGateway
from cqrs_lab.http.config import BuiltEngine, ServerConfig, build_engine
from cqrs_lab.http.driver import Driver
from cqrs_lab.http.generic import domain_routes
from cqrs_lab.http.health import ServedRecorder, readiness_check
from cqrs_lab.http.metrics import HttpMetrics
from cqrs_lab.http.openapi import document
from cqrs_lab.http.ops import BODY_MODELS, ops_router
from cqrs_lab.http.problems import install_handlers
from cqrs_lab.http.reads import Reads
from cqrs_lab.http.router import LabApp, Route, RouteContext, check_table
from cqrs_lab.http.stages import StageTimings
from cqrs_lab.stores.durable_records import ResponseRecords, ResponseStore

__all__ = ["create_app", "create_app_from_config"]


def create_app(
    engine: Engine,
    config: ServerConfig,
    *,
    responses: ResponseStore | None = None,
    checkpoints: Any = None,
    close: Any = None,
    stages: StageTimings | None = None,
) -> LabApp:
    """An app serving ``engine``, on which ``config.domain`` is installed.

    ``responses`` keeps Idempotency-Key answers (default: in memory, bounded);
    ``checkpoints`` (a :class:`~cqrs_lab.stores.durable_records.SqliteCheckpoints`) persists
    projection positions and dead letters; ``close`` is called after the graceful shutdown;
    ``stages`` (``cqrs-lab serve --stage-timings``) times each stage and exports the totals
    on ``/metrics``. The engine's store is used for group commits when it has a ``batch()``
    method (and its ``group_commit()`` when it has one, see the driver). The result is a
    :class:`~cqrs_lab.http.router.LabApp`; ``app.api`` is FastAPI.
    """
    domain = _served(engine, config)
    recorder = ServedRecorder(stages)
    _observe(engine, recorder)
    resumed_from: dict[str, int] = checkpoints.previous() if checkpoints is not None else {}
    group = getattr(engine.store, "batch", None)

    def save() -> None:
        if checkpoints is not None:
            checkpoints.save(engine.positions(), engine.dead_letters.list())

    driver = Driver(
        engine,
        config,
        group=group,
        group_commit=getattr(engine.store, "group_commit", None),
        after_batch=save if checkpoints else None,
        stages=stages,
    )
    metrics = HttpMetrics(engine, lambda: driver.shed, lambda: recorder.failing(engine))
    if stages is not None:
        metrics.registry.register(stages)
    records = (
        responses
        if responses is not None
        else ResponseRecords(
            engine.clock, ttl=config.idempotency_retention, max_keys=config.idempotency_max_keys
        )
    )
    gateway = CommandGateway(engine, driver, metrics, records, stages)
    # after a restart each read model replays the log: up to the head found at start-up
    # (at least where it had got before), reads without a token say they are stale
    boot_head = engine.store.head_position
    catch_up = {name: max(boot_head, resumed_from.get(name, 0)) for name in engine.subscriptions}
    reads = Reads(engine, driver, config.max_wait, stages, catch_up)
    ctx = RouteContext(
        engine, domain, driver, gateway, reads, config.max_body_bytes, config.max_wait
    )
    readiness = readiness_check(
        engine, lambda: driver.alive, recorder, config.ready_max_lag, catch_up
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await driver.start()
        try:
            yield
        finally:
            await driver.stop()
            if close is not None:
                close()

    api = FastAPI(
        title=f"cqrs-lab: {domain.name}",
        version="0.1.0",
        description=(
            f"The {domain.name} domain ({domain.description}) on the cqrs_lab engine, served "
            "over HTTP: commands answer with a consistency token, queries can wait for one "
            "(read-your-writes); optimistic concurrency, idempotency keys and operations "
            "routes. Errors are application/problem+json."
        ),
        lifespan=lifespan,
        redirect_slashes=False,
    )
    install_handlers(api)
    ops = ops_router(
        engine,
        driver,
        metrics,
        config.admin_token,
        readiness,
        resumed_from,
        checkpoints.history if checkpoints is not None else None,
    )
    api.include_router(ops)
    routes = [*_hand_designed(domain, ctx), *domain_routes(ctx)]
    served = [r for r in [*api.routes, *ops.routes] if isinstance(r, StarletteRoute)]
    check_table(routes, [(m, r.path) for r in served for m in r.methods or ()])
    document(api, routes, BODY_MODELS)
    api.state.engine = engine
    api.state.driver = driver
    api.state.metrics = metrics
    api.state.config = config
    api.state.domain = domain
    api.state.stages = stages
    api.state.routes = served  # flat (a 405 names every method served on the path)
    return LabApp(api, routes, metrics, config.max_body_bytes, stages, served)


def _served(engine: Engine, config: ServerConfig) -> Domain:
    domain = load_domain(config.domain)
    if not any(done.domain is domain for done in engine.installed):
        raise ConfigError(
            f"domain={domain.name!r}: it is not installed on this engine; build the engine "
            "with build_engine(config) (or cqrs_lab.core.install(engine, domain))"
        )
    return domain


def _observe(engine: Engine, recorder: ServedRecorder) -> None:
    """Make ``recorder`` observe every subscription, beside any recorder already there."""
    if engine.recorder is None:
        engine.recorder = recorder
    for sub in engine.subscriptions.values():
        sub.recorder = (
            recorder if sub.recorder is None else RecorderFanout([sub.recorder, recorder])
        )


def _hand_designed(domain: Domain, ctx: RouteContext) -> list[Route]:
    """The routes ``domain.http_routes`` names (``"module:function"``), imported now."""
    ref = domain.http_routes
    if ref is None:
        return []
    module_name, _, attr = ref.partition(":")
    try:
        build: Callable[[RouteContext], list[Route]] = getattr(
            importlib.import_module(module_name), attr or "routes"
        )
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"domain {domain.name!r}: http_routes={ref!r} cannot be imported ({exc}); name a "
            "function 'module:function' that takes a RouteContext and returns routes"
        ) from None
    return list(build(ctx))


def create_app_from_config(config: ServerConfig, stages: StageTimings | None = None) -> LabApp:
    """Build the engine on the configured store and the app over it (the CLI's factory)."""
    built: BuiltEngine = build_engine(config)
    close = built.store.close if built.store is not None else None
    return create_app(
        built.engine,
        config,
        responses=built.responses,
        checkpoints=built.checkpoints,
        close=close,
        stages=stages,
    )
