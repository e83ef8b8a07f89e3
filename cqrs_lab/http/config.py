"""Server settings, validated once, and the wiring of an engine for the HTTP deployment.

>>> config = ServerConfig(delivery="at-least-once", store="memory")
>>> config.store_path is None, config.domain
(True, 'cqrs_lab.domains.bank')
>>> built = build_engine(ServerConfig(domain="cqrs_lab.domains.inventory"))
>>> built.installed.domain.name, sorted(built.installed.views)
('inventory', ['stock'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cqrs_lab.core import (
    DELIVERY_POLICIES,
    CallableClock,
    Domain,
    Engine,
    Installed,
    MonotonicClock,
    Saga,
    SequentialIds,
    install,
    load_domain,
)
from cqrs_lab.core.bus import (
    DEFAULT_IDEMPOTENCY_MAX_KEYS,
    DEFAULT_IDEMPOTENCY_RETENTION,
    InMemoryIdempotencyStore,
)
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.store_urls import is_postgres
from cqrs_lab.stores.view_snapshots import DEFAULT_SNAPSHOT_EVERY
from cqrs_lab.stores.worker_parent import MAX_WORKERS

__all__ = ["ADMIN_TOKEN_ENV", "DEFAULT_DOMAIN", "BuiltEngine", "ServerConfig", "build_engine"]


#: the environment variable read for the admin token when ``--admin-token`` is not given
ADMIN_TOKEN_ENV = "CQRS_LAB_ADMIN_TOKEN"
#: the domain served when none is named
DEFAULT_DOMAIN = "cqrs_lab.domains.bank"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the served app is configured with; bad values raise :class:`ConfigError`.

    - ``domain``: what is served, a reference for :func:`cqrs_lab.core.load_domain`
      (``"cqrs_lab.domains.inventory"``, ``"mypackage.orders:domain"``) or a Domain.
    - ``store``: ``"memory"`` or ``"sqlite:PATH"``.
    - ``queue_size``: commands waiting to be handled; beyond it, 429 with ``Retry-After``.
    - ``max_body_bytes``: larger request bodies get 413.
    - ``ready_max_lag``: ``/readyz`` answers 503 while a projection is this many positions
      behind the head (or behind where it had got before a restart).
    - ``max_wait``: the longest read-your-writes wait a caller may ask for, in seconds.
    - ``restart_after``: seconds after which the driver restarts a crashed consumer (None:
      stays down until ``POST /faults`` restarts it).
    - ``idempotency_retention`` (seconds) and ``idempotency_max_keys``: how long, and for how
      many of the newest keys, every store keeps what an ``Idempotency-Key`` was answered
      with (the HTTP response and the bus's record of saga steps): a retry within both is
      applied once; a key past them is answered as new. Persisted with the SQLite store.
    - ``header_timeout``: seconds a connection has to send its request line and headers
      (408 problem+json and closed after); ``body_timeout``: seconds a body has to arrive
      after its headers (408, closed), and a client to read its answers (disconnected);
      headers over 64 KiB get 431; ``max_connections``: open connections at most (one
      more is answered 503 problem+json with ``Retry-After`` and closed). See
      :mod:`cqrs_lab.http.protocol`.
    - ``workers``: server processes sharing the port (PostgreSQL only; see
      :mod:`cqrs_lab.http.workers`); ``sagas``: ``"internal"`` (sagas send their commands
      from this process) or ``"external"`` (they are read-only replicas here and run in
      ``cqrs-lab project``; always so with several workers).
    - ``snapshot_every``: with the SQLite store, each read model is snapshotted with its
      tracking record every this many positions, and a restart replays only what follows
      its latest snapshot (see :mod:`cqrs_lab.stores.view_snapshots`).
    """

    domain: str | Domain = DEFAULT_DOMAIN
    delivery: str = "effectively-once"
    store: str = "memory"
    admin_token: str | None = None
    queue_size: int = 1024
    batch_size: int = 256
    max_body_bytes: int = 64 * 1024
    ready_max_lag: int = 10_000
    max_wait: float = 10.0
    restart_after: float | None = 1.0
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 2048
    idle_poll: float = 0.05
    idempotency_retention: float = DEFAULT_IDEMPOTENCY_RETENTION
    idempotency_max_keys: int = DEFAULT_IDEMPOTENCY_MAX_KEYS
    seed: int = 0
    sqlite_synchronous: str = "FULL"
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY
    workers: int = 1
    sagas: str = "internal"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        load_domain(self.domain)  # a bad reference fails here, saying how to name one
        if self.delivery not in DELIVERY_POLICIES:
            raise ConfigError(
                f"delivery={self.delivery!r}: pass one of {', '.join(DELIVERY_POLICIES)}"
            )
        durable = (self.store.startswith("sqlite:") and self.store[7:]) or is_postgres(self.store)
        if self.store != "memory" and not durable:
            raise ConfigError(
                f"store={self.store!r}: pass 'memory', 'sqlite:PATH' or 'postgresql://...'"
            )
        for name in (
            "queue_size", "batch_size", "max_body_bytes", "idempotency_max_keys", "snapshot_every"
        ):  # fmt: skip
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: pass a whole number >= 1")
        if not self.idempotency_retention > 0:
            raise ConfigError(
                f"idempotency_retention={self.idempotency_retention}: pass seconds > 0 "
                f"(how long a retry with the same Idempotency-Key is applied once)"
            )
        if self.ready_max_lag < 0:
            raise ConfigError(f"ready_max_lag={self.ready_max_lag}: pass positions >= 0")
        if not 0 <= self.max_wait <= 300:
            raise ConfigError(f"max_wait={self.max_wait}: pass seconds between 0 and 300")
        if self.restart_after is not None and self.restart_after < 0:
            raise ConfigError(f"restart_after={self.restart_after}: pass seconds >= 0, or None")
        for name in ("header_timeout", "body_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(f"{name}={getattr(self, name)}: pass seconds in (0, 3600]")
        if self.max_connections < 1:
            raise ConfigError(f"max_connections={self.max_connections}: pass a number >= 1")
        if not 0 < self.idle_poll <= 5:
            raise ConfigError(f"idle_poll={self.idle_poll}: pass seconds in (0, 5]")
        if type(self.workers) is not int or not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(
                f"workers={self.workers!r} (--workers): server processes, a whole number from 1 "
                f"to {MAX_WORKERS} (each is a process with its own engine and views)"
            )
        if self.sagas not in ("internal", "external"):
            raise ConfigError(f"sagas={self.sagas!r}: pass 'internal' or 'external'")
        if (self.workers > 1 or self.sagas == "external") and not is_postgres(self.store):
            raise ConfigError(
                f"workers={self.workers}, sagas={self.sagas!r} with store={self.store!r}: "
                f"memory and SQLite are one-process stores; pass --store postgresql://..."
            )
        if self.admin_token is not None and len(self.admin_token) < 8:
            raise ConfigError("admin_token: pass at least 8 characters (or none to turn admin off)")

    @property
    def store_path(self) -> str | None:
        return self.store[7:] if self.store.startswith("sqlite:") else None

    @staticmethod
    def admin_token_from_env(given: str | None) -> str | None:
        """``given`` if set, else the ``CQRS_LAB_ADMIN_TOKEN`` environment variable."""
        return given or os.environ.get(ADMIN_TOKEN_ENV) or None


@dataclass
class BuiltEngine:
    """An engine with the configured domain installed, and its durable parts (None with
    the memory store)."""

    engine: Engine
    installed: Installed
    store: Any = None  # SqliteEventStore when durable
    checkpoints: Any = None  # SqliteCheckpoints when durable
    responses: Any = None  # ResponseRecords, or SqliteResponseRecords when durable
    #: view -> the position its read model was restored at from a snapshot (durable only)
    restored: dict[str, int] = field(default_factory=dict)


def build_engine(config: ServerConfig) -> BuiltEngine:
    """``config.domain`` installed (through :func:`cqrs_lab.core.install`, as every driver
    does) on an engine with a :class:`MonotonicClock`, on the configured store, with the
    configured retention of idempotency records on every store."""
    from cqrs_lab.stores.durable_records import (
        ResponseRecords,
        SqliteCheckpoints,
        SqliteIdempotencyStore,
        SqliteResponseRecords,
    )

    domain = load_domain(config.domain)
    if is_postgres(config.store):
        from cqrs_lab.stores.postgres_serve import build_postgres_engine

        served = build_postgres_engine(
            config.store, domain, delivery=config.delivery, seed=config.seed,
            ttl=config.idempotency_retention, max_keys=config.idempotency_max_keys,
        )  # fmt: skip
        built = BuiltEngine(served.engine, served.installed, served.store)
        built.checkpoints, built.responses = served.checkpoints, served.responses
        from cqrs_lab.stores.postgres_sagas import claim_sagas, passive_sagas

        if config.sagas == "external" or config.workers > 1:  # sagas run in `cqrs-lab project`
            passive_sagas(served.engine, served.checkpoints)
        elif any(isinstance(served.engine.projection(n), Saga) for n in served.engine.positions()):
            try:
                claim_sagas(served.store)  # never two places sending the same steps
            except ConfigError:
                served.store.close()
                raise
        return built
    monotonic = MonotonicClock()
    path = config.store_path
    ttl, max_keys = config.idempotency_retention, config.idempotency_max_keys
    if path is None:
        engine = Engine(clock=monotonic, seed=config.seed)
        engine.bus.idempotency = InMemoryIdempotencyStore(monotonic, ttl, max_keys)
        built = BuiltEngine(engine, install(engine, domain, delivery=config.delivery))
        built.responses = ResponseRecords(monotonic, ttl=ttl, max_keys=max_keys)
        return built
    from cqrs_lab.stores.sqlite import SqliteEventStore
    from cqrs_lab.stores.view_snapshots import SqliteViewSnapshots

    # a monotonic clock restarts at 0 with the process; events recorded before a restart
    # carry the old process's times, so this boot's clock continues from the last of them
    offset = [0.0]
    clock = CallableClock(lambda: offset[0] + monotonic.now())
    counter = SequentialIds()  # replaced below once the boot number is known
    store = SqliteEventStore(path, clock, counter, synchronous=config.sqlite_synchronous)
    try:
        store.claim_domain(domain.name)
    except ConfigError:
        store.close()
        raise
    offset[0] = store.last_recorded_at
    store.ids = ids = SequentialIds(f"b{store.boot}-")  # unique across restarts
    engine = Engine(clock=clock, seed=config.seed, ids=ids, store=store, registry=store.registry)
    built = BuiltEngine(engine, install(engine, domain, delivery=config.delivery), store)
    engine.bus.idempotency = SqliteIdempotencyStore(
        store, lambda: {c.__name__: c for c in engine.bus.handlers}, ttl=ttl, max_keys=max_keys
    )
    # read models restart from their latest snapshot and replay only the events after it
    snapshots = SqliteViewSnapshots(store, every=config.snapshot_every)
    built.restored = snapshots.restore(engine)
    built.responses = SqliteResponseRecords(store, ttl=ttl, max_keys=max_keys)
    # a saga replaying what it handled before the restart sends nothing again: its steps'
    # effects are in the log, and their idempotency records may have expired since (a saga
    # restarted in the middle of a rebuild keeps the bound the rebuild started with)
    sagas = {
        name: consumer
        for name in engine.positions()
        if isinstance(consumer := engine.projection(name), Saga)
    }
    built.checkpoints = SqliteCheckpoints(
        store,
        on_save=lambda: snapshots.save_due(engine),
        floors=lambda: {name: saga.replay_until for name, saga in sagas.items()},
    )
    for name, position in built.checkpoints.previous().items():
        if name in sagas:
            sagas[name].replay_until = position
    return built
