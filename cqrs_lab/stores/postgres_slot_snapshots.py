"""Snapshots of the sagas' slots of ``cqrs-lab project``, so a slot taken over does not
replay the whole log.

A slot (one partition of one saga, see :mod:`cqrs_lab.stores.postgres_project`) keeps its
saga's state in memory. Every ``every`` positions, :meth:`SlotSnapshots.save` writes that
state (``Saga.snapshot()``, pickled) in table ``project_snapshots``, one row per slot, in
the transaction of a live batch, right after the batch's tracking record: that transaction
commits the state, the record and the steps sent together, or none of them (a rolled-back
batch takes its snapshot with it). At that point the state is exactly the effect of the
slot's events up to the position the record commits: the batch is every event of the
partition after the slot's last one, read gap-safe up to that position, all applied. (As
with the server's read-model snapshots, a saga's state is its tables: state it keeps
outside them is not in the snapshot.)

A worker taking the slot over calls :meth:`SlotSnapshots.restore`: the slot's snapshot is
loaded when it is at or below the slot's tracking watermark and its *kind* (the saga's
class, its ``snapshot_version``, the partition count) matches, and the worker reads the
log from its position on, replaying without sending up to the watermark; otherwise it
replays from 0. The state is read back with :mod:`pickle` from the store's own database,
which is as trusted as the log itself.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

from cqrs_lab.core import Saga
from cqrs_lab.errors import ConfigError

if TYPE_CHECKING:  # psycopg is imported only where a store is opened (not by the CLI's parser)
    from cqrs_lab.stores.postgres_store import PostgresEventStore

__all__ = ["DEFAULT_SLOT_SNAPSHOT_EVERY", "SlotSnapshots"]

#: positions a slot moves between two snapshots (``cqrs-lab project --snapshot-every``;
#: the server's read-model snapshots use the same default)
DEFAULT_SLOT_SNAPSHOT_EVERY = 20_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS project_snapshots (key bytea PRIMARY KEY, kind text NOT NULL, "
    "position bigint NOT NULL, state bytea NOT NULL)"
)


def check_every(every: object, name: str = "snapshot_every") -> int:
    """``every`` if it is a whole number of positions >= 1.

    >>> check_every(20_000)
    20000
    >>> check_every(0)
    Traceback (most recent call last):
    cqrs_lab.errors.ConfigError: snapshot_every=0: pass a whole number of positions >= 1
    """
    if type(every) is not int or every < 1:
        raise ConfigError(f"{name}={every!r}: pass a whole number of positions >= 1")
    return every


class SlotSnapshots:
    """The slots' snapshots in table ``project_snapshots``; see the module."""

    def __init__(
        self,
        store: PostgresEventStore,
        partitions: int,
        every: int = DEFAULT_SLOT_SNAPSHOT_EVERY,
    ) -> None:
        self.store = store
        self.partitions = partitions
        self.every = check_every(every)
        self.saved = 0  # snapshots written by this process (committed or not)
        with store.batch():  # workers starting together: one creates the table
            store.execute("SELECT pg_advisory_xact_lock(hashtext('cqrs_lab.schema'))")
            store.execute(_SCHEMA)

    def kind(self, saga: Saga) -> str:
        """What a snapshot must match to be restored: class, version, partition count."""
        cls = type(saga)
        return f"{cls.__module__}.{cls.__qualname__}:v{cls.snapshot_version}:p{self.partitions}"

    def due(self, taken: int, position: int) -> bool:
        """Whether a slot whose last snapshot is at ``taken`` takes one at ``position``."""
        return position - taken >= self.every

    def save(self, key: str, saga: Saga, position: int) -> None:
        """Write ``saga``'s state as of ``position`` for slot ``key``; call inside the
        ``store.batch()`` that commits the slot's tracking record at ``position``."""
        state = pickle.dumps(saga.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)
        self.store.execute(
            "INSERT INTO project_snapshots VALUES (%s,%s,%s,%s) ON CONFLICT (key) DO UPDATE "
            "SET kind = excluded.kind, position = excluded.position, state = excluded.state",
            (key.encode(), self.kind(saga), position, state),
        )
        self.saved += 1

    def restore(self, key: str, saga: Saga, upto: int) -> int:
        """Load slot ``key``'s snapshot into the fresh ``saga`` if it is usable (at or below
        ``upto``, the slot's tracking watermark, and of ``saga``'s kind); returns its
        position, or 0 (nothing loaded: replay the log from the start)."""
        rows = self.store.query(
            "SELECT kind, position, state FROM project_snapshots WHERE key = %s AND position <= %s",
            (key.encode(), upto),
        )
        if not rows or rows[0][0] != self.kind(saga):
            return 0
        try:
            saga.restore(pickle.loads(rows[0][2]))  # the store's own database
        except ConfigError:  # its tables changed and its version was not bumped: replay
            return 0
        return int(rows[0][1])
