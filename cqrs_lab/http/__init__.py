"""The real HTTP deployment: a domain's engine served by uvicorn, driven by asyncio in real time.

>>> from cqrs_lab.http import ServerConfig, build_engine, create_app
>>> config = ServerConfig(domain="cqrs_lab.domains.inventory", store="memory")
>>> app = create_app(build_engine(config).engine, config)
>>> app.api.title
'cqrs-lab: inventory'

``cqrs-lab serve --domain REF`` runs it; see :mod:`cqrs_lab.http.cli`. A domain's own
routes (``Domain.http_routes``) are built from :class:`Route` entries over a
:class:`RouteContext`; see :mod:`cqrs_lab.domains.bank.http` for an example.
"""

from cqrs_lab.errors import Overloaded, Problem
from cqrs_lab.http.app import create_app, create_app_from_config
from cqrs_lab.http.config import (
    ADMIN_TOKEN_ENV,
    DEFAULT_DOMAIN,
    BuiltEngine,
    ServerConfig,
    build_engine,
)
from cqrs_lab.http.driver import Driver, ProjectionLogger
from cqrs_lab.http.router import LabApp, Route, RouteContext
from cqrs_lab.http.stages import StageTimings

__all__ = [
    "ADMIN_TOKEN_ENV",
    "DEFAULT_DOMAIN",
    "BuiltEngine",
    "Driver",
    "LabApp",
    "Overloaded",
    "Problem",
    "ProjectionLogger",
    "Route",
    "RouteContext",
    "ServerConfig",
    "StageTimings",
    "build_engine",
    "create_app",
    "create_app_from_config",
]
