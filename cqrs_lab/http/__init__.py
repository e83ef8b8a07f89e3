"""The real HTTP deployment: the engine served by uvicorn, driven by asyncio in real time.

>>> from cqrs_lab.http import ServerConfig, build_engine, create_app
>>> config = ServerConfig(delivery="effectively-once", store="memory")
>>> app = create_app(build_engine(config).engine, config)

``cqrs-lab serve`` runs it; see :mod:`cqrs_lab.http.cli`.
"""

from cqrs_lab.http.app import create_app, create_app_from_config
from cqrs_lab.http.config import ADMIN_TOKEN_ENV, BuiltEngine, ServerConfig, build_engine
from cqrs_lab.http.driver import Driver, Overloaded, ProjectionLogger
from cqrs_lab.http.problems import Problem

__all__ = [
    "ADMIN_TOKEN_ENV",
    "BuiltEngine",
    "Driver",
    "Overloaded",
    "Problem",
    "ProjectionLogger",
    "ServerConfig",
    "build_engine",
    "create_app",
    "create_app_from_config",
]
