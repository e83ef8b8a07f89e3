"""The tests' throwaway PostgreSQL cluster: :mod:`cqrs_lab.stores.pg_cluster`, re-exported.

The suite runs it with ``durable=False`` (``fsync`` off): a test cluster's data is thrown
away, so durability buys nothing and would only slow the suite.
"""

from __future__ import annotations

from cqrs_lab.stores.pg_cluster import (
    INSTALL_HINT,
    Cluster,
    ClusterError,
    find_bindir,
    free_port,
    start_cluster,
)

__all__ = ["INSTALL_HINT", "Cluster", "ClusterError", "find_bindir", "free_port", "start_cluster"]
