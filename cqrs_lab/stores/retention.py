"""Retention of the records kept per ``Idempotency-Key`` in the SQLite file: by age and count.

A table that keeps one row per key (the command bus's idempotency records, the HTTP
responses) has a ``recorded_at`` column on the store's clock, indexed. :class:`Pruner` deletes,
in the transaction of the write that calls it, rows older than ``ttl`` seconds and all but the
``max_keys`` newest (by ``rowid``, the order of insertion). It runs every ``every`` writes, so
the table holds at most about 1% more than ``max_keys`` rows; a reader checks the age of what
it finds, so a row past ``ttl`` is never answered even before it is deleted.

>>> from cqrs_lab.core import ManualClock, SequentialIds
>>> from cqrs_lab.stores.sqlite import SqliteEventStore
>>> clock = ManualClock()
>>> store = SqliteEventStore(":memory:", clock, SequentialIds("e"))
>>> store.execute("CREATE TABLE t (key TEXT PRIMARY KEY, recorded_at REAL NOT NULL)")
[]
>>> pruner = Pruner(store, "t", ttl=60.0, max_keys=2)
>>> for key in "abc":
...     rows = store.execute("INSERT INTO t VALUES (?, ?)", (key, clock.now()))
...     pruner.wrote()
>>> [k for (k,) in store.query("SELECT key FROM t ORDER BY rowid")]
['b', 'c']
"""

from __future__ import annotations

from cqrs_lab.core.bus import check_retention
from cqrs_lab.stores.sqlite import SqliteEventStore

__all__ = ["Pruner"]


class Pruner:
    """Keeps table ``table`` of ``store`` within ``ttl`` seconds and ``max_keys`` rows."""

    def __init__(
        self, store: SqliteEventStore, table: str, *, ttl: float | None, max_keys: int | None
    ) -> None:
        check_retention(ttl, max_keys, f"retention of table {table!r}")
        self.store = store
        self.table = table
        self.ttl = ttl
        self.max_keys = max_keys
        self.every = max(1, min(1000, (max_keys or 100_000) // 100))
        self.pruned = 0
        self._writes = 0
        self._rows = int(store.query(f"SELECT count(*) FROM {table}")[0][0])
        store.execute(f"CREATE INDEX IF NOT EXISTS {table}_at ON {table} (recorded_at)")

    def expired(self, recorded_at: float) -> bool:
        """Is a row recorded at ``recorded_at`` past the time bound?"""
        return self.ttl is not None and self.store.clock.now() - recorded_at > self.ttl

    def wrote(self) -> None:
        """Count one written row; prune every ``every`` writes (call inside the write's
        transaction, so the prune commits with it)."""
        self._writes += 1
        self._rows += 1
        if self._writes >= self.every:
            self._writes = 0
            self.prune()

    def prune(self) -> int:
        """Delete the rows past either bound now; returns how many."""
        store, table, before = self.store, self.table, self.pruned
        if self.ttl is not None:
            horizon = store.clock.now() - self.ttl
            store.execute(f"DELETE FROM {table} WHERE recorded_at < ?", (horizon,))
            self._deleted()
        if self.max_keys is not None and self._rows > self.max_keys:
            store.execute(
                f"DELETE FROM {table} WHERE rowid < (SELECT rowid FROM {table} "
                f"ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
                (self.max_keys - 1,),
            )
            self._deleted()
            self._rows = int(store.query(f"SELECT count(*) FROM {table}")[0][0])
        return self.pruned - before

    def _deleted(self) -> None:
        n = int(self.store.query("SELECT changes()")[0][0])
        self.pruned += n
        self._rows = max(0, self._rows - n)
