"""Which sagas run where on the PostgreSQL store: the passive replicas a serve worker keeps,
the sagas a ``cqrs-lab project`` worker may run, and the advisory-lock keys the workers share
(see :mod:`cqrs_lab.stores.postgres_project`)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from cqrs_lab.core import Domain, Engine, Saga
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.postgres_records import PostgresCheckpoints

__all__ = ["PASSIVE", "lock_key", "passive_sagas", "saga_names"]

#: ``replay_until`` of a saga that only follows the log (a serve worker's replica)
PASSIVE = 2**62


def passive_sagas(engine: Engine, checkpoints: PostgresCheckpoints | None = None) -> list[str]:
    """Make every saga on ``engine`` a read-only replica: it follows the log (its state and
    queries stay current) and sends nothing. Returns their names.

    ``checkpoints`` (the server's) never saves their positions from now on: the saga's row
    keeps what the last server that ran it had handled (the project workers start from it),
    not how far a replica that sent nothing has read.
    """
    names = []
    for name in engine.positions():
        consumer = engine.projection(name)
        if isinstance(consumer, Saga):
            consumer.replay_until = PASSIVE
            names.append(name)
    if checkpoints is not None:
        checkpoints.floors = None
        checkpoints.passive = frozenset(names)
    return names


def saga_names(domain: Domain, chosen: Iterable[str] | None = None) -> list[str]:
    """The domain's sagas (``chosen`` must name sagas only)."""
    sagas = [n for n in domain.view_names if isinstance(domain.view(n).factory(), Saga)]
    if chosen is None:
        return sagas
    names = list(chosen)
    for name in names:
        domain.view(name)  # an unknown name fails here, naming the declared ones
        if name not in sagas:
            raise ConfigError(
                f"--projection {name!r} is a read model, not a saga: read models are kept by "
                f"each serve worker; pass one of the sagas ({', '.join(sagas) or 'none'})"
            )
    return names


def lock_key(schema: str, name: str) -> int:
    """The first key of an advisory lock (a non-negative int4, stable across processes).

    >>> lock_key("public", "transfer-saga") == lock_key("public", "transfer-saga") >= 0
    True
    """
    return zlib.crc32(f"cqrs_lab:{schema}:{name}".encode()) & 0x7FFFFFFF
