"""Slots of the saga workers (``cqrs-lab project``, :mod:`cqrs_lab.stores.postgres_project`):
who owns which partition of which saga, and taking one over.

**Competing consumers.** Each saga's events are split into ``partitions`` partitions by
the correlation id (every event of one saga instance shares it: the request and each step
the saga sent), or by stream when an event has none; partition ``p`` of view ``v`` is a
*slot*. A worker owns a slot while it holds the PostgreSQL session advisory lock of that
slot (``pg_try_advisory_lock(key(v), p)``), which PostgreSQL releases when the worker's
connection dies (kill -9 included). Workers also hold one *member* lock each, so every
worker counts the live ones in ``pg_locks``; every ``rebalance_every`` seconds a worker
aims at its fair share (``ceil(slots / members)``): it releases slots above it (between two
batches) and tries to lock free slots below it, so the survivors take a dead worker's slots
in their next round, and a newcomer gets its share as the others give theirs up.

**Taking a slot.** When a worker takes a slot, it first raises the slot's tracking row to
the saga's row in ``checkpoints`` if that is higher (where a server that ran the saga itself
had handled every partition: see :mod:`cqrs_lab.stores.postgres_serve`), then rebuilds the
saga's state from the slot's snapshot (:mod:`~cqrs_lab.stores.postgres_slot_snapshots`) or
from the start, replaying the slot's events with the saga's ``replay_until`` at the
checkpoint (it sends nothing for them: their steps are in the log).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import psycopg

from cqrs_lab.core import Domain, Engine, Saga
from cqrs_lab.core.readmodel import Progress
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.postgres_records import PostgresTracking
from cqrs_lab.stores.postgres_sagas import lock_key
from cqrs_lab.stores.postgres_slot_snapshots import SlotSnapshots
from cqrs_lab.stores.postgres_store import PostgresEventStore

__all__ = ["Slot", "SlotOwner"]

log = logging.getLogger("cqrs_lab.project")


@dataclass
class Slot:
    """One partition of one saga, owned by this worker."""

    view: str
    partition: int
    saga: Saga
    progress: Progress  # the committed tracking record
    fetched: int = 0  # every event up to here was handed to the saga (replayed or live)
    applied: int = 0  # live applications committed
    snapshot_at: int = 0  # the position of the slot's latest snapshot (0: none)

    @property
    def key(self) -> str:
        return f"project:{self.view}/{self.partition}"


class SlotOwner:
    """The membership and slots of a :class:`~cqrs_lab.stores.postgres_project.ProjectWorker`
    (which sets the attributes below): its member lock, its fair share of the slots, and
    taking and releasing one."""

    domain: Domain
    views: list[str]
    partitions: int
    schema: str
    slots: dict[tuple[str, int], Slot]
    name: str
    store: PostgresEventStore
    engine: Engine
    tracking: PostgresTracking
    snapshots: SlotSnapshots
    locks: psycopg.Connection[Any]  # the session holding this worker's advisory locks
    members_key: int
    member: int

    def _join(self) -> int:
        for i in range(4096):
            if self._try_lock(self.members_key, i):
                return i
        raise ConfigError("4096 project workers are running on this store; stop some")

    def _on_locks(self, sql: str, params: tuple[int, ...]) -> tuple[Any, ...] | None:
        """One statement on the session of the advisory locks; the database dropping it is
        StoreUnavailable, as on the store's own connections (the worker exits 75)."""
        with self.store.translated(self.locks):
            return self.locks.execute(sql, params).fetchone()

    def _try_lock(self, k1: int, k2: int) -> bool:
        row = self._on_locks("SELECT pg_try_advisory_lock(%s, %s)", (k1, k2))
        return bool(row and row[0])

    def members(self) -> int:
        """Live workers on this store (each holds one member lock)."""
        row = self._on_locks(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid::bigint = %s AND objsubid = 2",
            (self.members_key,),
        )
        return max(1, int(row[0]) if row else 1)

    def all_slots(self) -> list[tuple[str, int]]:
        return [(v, p) for v in self.views for p in range(self.partitions)]

    def rebalance(self) -> list[tuple[str, int]]:
        """Aim at the fair share now; returns the slots taken this round."""
        total = self.all_slots()
        fair = math.ceil(len(total) / self.members())
        for slot_id in sorted(self.slots, reverse=True)[: max(0, len(self.slots) - fair)]:
            self.release(slot_id)
        taken = []
        start = self.member * fair  # spread the first tries of different workers
        for i in range(len(total)):
            if len(self.slots) >= fair:
                break
            view, p = total[(start + i) % len(total)]
            if (view, p) not in self.slots and self._try_lock(lock_key(self.schema, view), p):
                self._acquire(view, p)
                taken.append((view, p))
        return taken

    def _acquire(self, view: str, p: int) -> None:
        # the row the fence locks exists from now on, at least where a server that ran the
        # saga itself had handled every partition (its row in checkpoints; a passive server
        # never moves it): events up to there had their steps sent
        served = self.store.query("SELECT position FROM checkpoints WHERE name = %s", (view,))
        self.store.execute(
            "INSERT INTO tracking VALUES (%s, %s, '[]') ON CONFLICT (key) DO UPDATE SET "
            "watermark = excluded.watermark, above = '[]' "
            "WHERE tracking.watermark < excluded.watermark",
            (f"project:{view}/{p}".encode(), int(served[0][0]) if served else 0),
        )  # (a slot's record never has positions above its watermark: it commits batches)
        slot = Slot(view, p, self._fresh_saga(view), Progress())
        self._reset(slot)
        self.slots[(view, p)] = slot
        log.info("worker %s took %s/%d at %d", self.name, view, p, slot.progress.watermark)

    def _fresh_saga(self, view: str) -> Saga:
        saga = self.domain.view(view).factory()
        assert isinstance(saga, Saga)  # saga_names() let only sagas in
        saga.bind(self.engine.bus.dispatch)
        return saga

    def _reset(self, slot: Slot) -> None:
        """Start the slot again from its checkpoint: state restored from its snapshot (or
        none) and replayed from the log after it."""
        slot.saga = saga = self._fresh_saga(slot.view)
        slot.progress = self.tracking.load(slot.key)
        saga.replay_until = slot.progress.watermark  # sends nothing up to there
        slot.fetched = slot.snapshot_at = self.snapshots.restore(
            slot.key, saga, slot.progress.watermark
        )

    def release(self, slot_id: tuple[str, int]) -> None:
        view, p = slot_id
        self.slots.pop(slot_id, None)
        self._on_locks("SELECT pg_advisory_unlock(%s, %s)", (lock_key(self.schema, view), p))
        log.info("worker %s released %s/%d", self.name, view, p)
