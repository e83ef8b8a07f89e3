"""A throwaway PostgreSQL cluster for the session, and a clean schema for each test.

When the server binaries are missing the suite FAILS (never skips) saying what to install.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest

from tests.postgres.cluster import Cluster, running_cluster
from tests.postgres.workers_run import two_workers_run  # noqa: F401 - one run, two modules

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE lab")
        yield cluster


@pytest.fixture(scope="session")
def pg_dsn(pg_cluster: Cluster) -> str:
    """The DSN of the test database (each test works in its own schema: see ``pg_schema``)."""
    return pg_cluster.dsn("lab")


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema name, dropped after the test."""
    schema = f"t{next(_names)}"
    yield schema
    drop_schema(pg_dsn, schema)


@pytest.fixture
def db_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a fresh database, dropped after the test (a served engine works in schema
    public, so a test of the served deployment needs a database of its own)."""
    name = f"db{next(_names)}"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:{pg_cluster.port}/{name}"
    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
