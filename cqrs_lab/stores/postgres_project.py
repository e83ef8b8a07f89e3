"""``cqrs-lab project``: saga workers as separate processes over the shared PostgreSQL store.

**What runs where.** Sagas (views with side effects: they send commands) run here and only
here once the server has several workers (``serve --workers N`` or ``--sagas external``);
plain read models stay where they are read: each serve worker keeps its own in-memory
replica fed by the gap-safe reader, so a read never crosses a process. Naming a plain
read model here is refused.

**Competing consumers.** Each saga's events are split into partitions; a worker owns a
*slot* (one partition of one saga) while it holds its advisory lock, and aims at its fair
share of them: :mod:`cqrs_lab.stores.postgres_slots`.

**Effectively once.** A slot's saga state is in memory; its progress is a tracking record
(:class:`~cqrs_lab.stores.postgres_records.PostgresTracking`, key ``project:VIEW/P``). One
batch of a slot is ONE transaction (``store.batch()``): the commands the saga sends (their
events and idempotency records) and the tracking record commit together, or nothing does.
The tracking row is locked and compared with the record the worker started from first
(a fence: a worker that lost its slot unawares can never commit over the new owner).
Taking a slot rebuilds its state from its checkpoint (:mod:`cqrs_lab.stores.postgres_slots`;
the slot's snapshots are taken every ``snapshot_every`` positions in a live batch's
transaction); a batch that fails (a conflict with a serve worker, a deadlock) is rolled
back in PostgreSQL and its changes to the saga's tables undone, and is tried again. With
``record_applications`` each live application (an event the saga handles, past the
checkpoint) is also written, in the same transaction, to table ``project_applied`` (for
drills counting duplicates: ``tests/postgres/test_many_processes.py``).

A partition's events are read by the worker from the whole log (filtered in the worker).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cqrs_lab.core import (
    Domain,
    Engine,
    Envelope,
    Repository,
    Saga,
    SequentialIds,
    install,
    load_domain,
)
from cqrs_lab.core.idempotency import DEFAULT_IDEMPOTENCY_MAX_KEYS, DEFAULT_IDEMPOTENCY_RETENTION
from cqrs_lab.core.partitions import MAX_PARTITIONS, partition_of
from cqrs_lab.core.readmodel import Progress, UndoLog, rollback
from cqrs_lab.errors import ConfigError, LostSlot, StoreFailure
from cqrs_lab.stores.deployment_clock import DeploymentClock
from cqrs_lab.stores.postgres_records import (
    PostgresIdempotencyStore,
    PostgresTracking,
)
from cqrs_lab.stores.postgres_sagas import live_holders, lock_key, runner_key, saga_names
from cqrs_lab.stores.postgres_slot_snapshots import DEFAULT_SLOT_SNAPSHOT_EVERY, SlotSnapshots
from cqrs_lab.stores.postgres_slots import Slot, SlotOwner
from cqrs_lab.stores.postgres_store import PostgresEventStore

__all__ = ["ProjectWorker", "open_worker"]

log = logging.getLogger("cqrs_lab.project")


@dataclass
class ProjectWorker(SlotOwner):
    """One ``cqrs-lab project`` worker process: owns a fair share of the slots and runs them.

    Drive it with :meth:`run` (until ``stop()`` returns true) or :meth:`rebalance` and
    :meth:`step` (tests). Close with :meth:`close`.
    """

    dsn: str
    domain: Domain
    views: list[str]
    partitions: int = 8
    batch_size: int = 64
    rebalance_every: float = 0.5
    idle_poll: float = 0.05
    record_applications: bool = False
    schema: str = "public"
    snapshot_every: int = DEFAULT_SLOT_SNAPSHOT_EVERY
    slots: dict[tuple[str, int], Slot] = field(default_factory=dict)
    failures: int = 0  # batches rolled back in a row (backs off)

    def __post_init__(self) -> None:
        if type(self.partitions) is not int or not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ConfigError(
                f"partitions={self.partitions!r}: pass a whole number in 1..{MAX_PARTITIONS}"
            )
        if not self.views:
            raise ConfigError(f"domain {self.domain.name!r} has no saga to run")
        if type(self.batch_size) is not int or not 1 <= self.batch_size <= 100_000:
            raise ConfigError(
                f"batch_size={self.batch_size!r} (--batch-size): events per step, a whole "
                "number from 1 to 100000"
            )
        self.clock = clock = DeploymentClock()  # the serve workers' clock (lag, expiry)
        store = PostgresEventStore(self.dsn, clock, SequentialIds(), schema=self.schema)
        try:  # before it writes anything: another domain's sagas would misread its events
            store.claim_domain(self.domain.name)
        except ConfigError:
            store.close()
            raise
        clock.floor = store.last_recorded_at
        self.name = f"p{store.boot}"
        store.ids = ids = SequentialIds(f"{self.name}-")  # unique across processes
        self.store = store
        self.engine = engine = Engine(
            clock=self.clock, seed=store.boot, ids=ids, store=store, registry=store.registry
        )
        install(engine, self.domain, views=[])  # events, upcasters and command handlers
        engine.bus.idempotency = PostgresIdempotencyStore(
            store,
            lambda: {c.__name__: c for c in engine.bus.handlers},
            ttl=DEFAULT_IDEMPOTENCY_RETENTION,
            max_keys=DEFAULT_IDEMPOTENCY_MAX_KEYS,
        )
        self.tracking = PostgresTracking(store)
        self.snapshots = SlotSnapshots(store, self.partitions, self.snapshot_every)
        for view in self.views:  # a slot means one thing to every worker: one partition count
            key = f"project.partitions.{view}"
            store.execute(
                "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                (key, str(self.partitions)),
            )
            kept = int(store.query("SELECT value FROM meta WHERE key = %s", (key,))[0][0])
            if kept != self.partitions:
                store.close()
                raise ConfigError(
                    f"partitions={self.partitions}: the workers of {view!r} on this store use "
                    f"{kept}; pass {kept} (the count cannot change once saga workers ran)"
                )
        if self.record_applications:
            with store.batch():  # workers starting together: one creates the table
                store.execute("SELECT pg_advisory_xact_lock(hashtext('cqrs_lab.schema'))")
                store.execute(
                    "CREATE TABLE IF NOT EXISTS project_applied (view text NOT NULL, "
                    "part integer NOT NULL, position bigint NOT NULL, worker text NOT NULL)"
                )
        try:
            self.locks = store.session()
        except StoreFailure:
            store.close()
            raise
        self.members_key = lock_key(self.schema, "members")
        self.member = self._join()
        deadline = time.monotonic() + 3.0  # a server just stopped frees its lock a moment later
        while self._saga_runners():  # see postgres_sagas
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            self.close()
            raise ConfigError(
                "a cqrs-lab serve process runs the sagas on this store itself (--sagas "
                "internal); restart it with --sagas external (or --workers 2 or more) first"
            )
        self._last_rebalance = -math.inf

    # -- processing ------------------------------------------------------------------------
    def _part(self, env: Envelope) -> int:
        return partition_of(env.correlation_id or env.stream_id, self.partitions)

    def step(self) -> int:
        """One batch for every view this worker owns slots of; returns live applications."""
        done = 0
        for view in self.views:
            mine = [s for s in self.slots.values() if s.view == view]
            if not mine:
                continue
            after = min(s.fetched for s in mine)
            replaying = any(s.fetched < s.progress.watermark for s in mine)
            limit = 4 * self.batch_size if replaying else self.batch_size
            batch = self.store.read_all(after, limit)  # before any write (see the reader)
            if batch:
                for slot in mine:
                    done += self._run(slot, batch)
        return done

    def _run(self, slot: Slot, batch: list[Envelope]) -> int:
        last = batch[-1].position
        if last <= slot.fetched:
            return 0
        own = [e for e in batch if e.position > slot.fetched and self._part(e) == slot.partition]
        saga = slot.saga
        handled = saga.handlers
        live = [
            e.position for e in own
            if e.position > slot.progress.watermark and type(e.payload) in handled
        ]  # fmt: skip
        if not live:  # replay only (sends nothing), or nothing this saga handles
            _apply(saga, own)
            slot.fetched = last
            return 0
        undo: UndoLog = []
        for table in saga.tables:
            table._undo = undo
        store, record = self.store, Progress(last)
        snapshot = False
        try:
            with store.batch():
                rows = store.query(
                    "SELECT watermark FROM tracking WHERE key = %s FOR UPDATE",
                    (slot.key.encode(),),
                )
                if not rows or int(rows[0][0]) != slot.progress.watermark:
                    raise LostSlot(f"{slot.key} moved to {rows[0][0] if rows else None}")
                _apply(saga, own)
                if self.record_applications:
                    store.execute(
                        "INSERT INTO project_applied SELECT %s, %s, unnest(%s::bigint[]), %s",
                        (slot.view, slot.partition, live, self.name),
                    )
                self.tracking.commit(slot.key, record)
                # the state is the effect of the slot's events up to `last` exactly
                snapshot = self.snapshots.due(slot.snapshot_at, last)
                if snapshot:
                    self.snapshots.save(slot.key, saga, last)
        except LostSlot as lost:
            log.warning("worker %s lost %s", self.name, lost)
            self.release((slot.view, slot.partition))
            return 0
        except Exception as exc:  # rolled back in PostgreSQL: undo the saga's state too
            rollback(undo)
            self._forget_aggregates()
            self.failures += 1
            log.warning("worker %s: batch of %s rolled back (%s); again", self.name, slot.key, exc)
            time.sleep(0.01 * min(self.failures, 20))
            return 0
        finally:
            for table in saga.tables:
                table._undo = None
        self.failures = 0
        slot.progress, slot.fetched = record, last
        if snapshot:
            slot.snapshot_at = last
        slot.applied += len(live)
        return len(live)

    def _forget_aggregates(self) -> None:
        """Drop the cached aggregates: some may hold events of the rolled-back batch (a
        cache ahead of the log is reloaded, but not once another process's append has
        brought the stream back to the same version)."""
        engine = self.engine
        fresh = Repository(self.store, cache_size=engine.repository.cache_size)
        engine.repository = engine.bus.repository = fresh

    def _saga_runners(self) -> int:
        """Servers that run the sagas themselves on this store (their runner lock)."""
        with self.store.translated(self.locks):
            return live_holders(self.locks, runner_key(self.schema))

    def run(self, stop: Callable[[], bool]) -> None:
        """Rebalance and step until ``stop()`` is true (checked between batches)."""
        while not stop():
            now = time.monotonic()
            if now - self._last_rebalance >= self.rebalance_every:
                self.rebalance()
                self._last_rebalance = now
            if self.step() == 0:
                head = self.store.head_position
                if all(s.fetched >= head for s in self.slots.values()):
                    time.sleep(self.idle_poll)

    def close(self) -> None:
        self.slots.clear()
        self.locks.close()  # every advisory lock goes with the session
        self.store.close()


def _apply(saga: Saga, events: list[Envelope]) -> None:
    handlers = saga.handlers
    for env in events:
        handler = handlers.get(type(env.payload))
        if handler is not None:
            handler(env.payload, env)


def open_worker(
    dsn: str, domain: str | Domain, views: list[str] | None, **options: Any
) -> ProjectWorker:
    """A :class:`ProjectWorker` for ``domain``'s sagas (``views``: some of them)."""
    d = load_domain(domain)
    return ProjectWorker(dsn, d, saga_names(d, views), **options)
