"""The tests' throwaway PostgreSQL cluster: :mod:`cqrs_lab.stores.pg_cluster`, re-exported.

The suite runs it with ``durable=False`` (``fsync`` off): a test cluster's data is thrown
away, so durability buys nothing and would only slow the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cqrs_lab.stores.pg_cluster import (
    INSTALL_HINT,
    Cluster,
    ClusterError,
    find_bindir,
    free_port,
    start_cluster,
)

__all__ = [
    "INSTALL_HINT",
    "Cluster",
    "ClusterError",
    "find_bindir",
    "free_port",
    "running_cluster",
    "start_cluster",
]


@contextmanager
def running_cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """A cluster for the block, stopped after it; missing server binaries FAIL the test
    (never a skip) saying what to install."""
    try:
        cluster = start_cluster(durable=durable)
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
