"""Read-model snapshots in the SQLite store's file, so a restart does not replay the whole log.

A served read model lives in memory. Every ``every`` positions it has moved,
:meth:`SqliteViewSnapshots.save_due` writes each view's tables (``Projection.snapshot()``,
pickled) together with its tracking record, through the store's connection: called inside
``store.batch()`` (the server calls it with the checkpoints, after each batch), the snapshot,
its record and the batch's events land in one transaction. On start-up
:meth:`SqliteViewSnapshots.restore` loads the latest snapshot of each view and points its
subscription just after it, so only the events after it are replayed: restart time grows
with ``every`` and with the read model's size, not with the whole log.

A snapshot is taken only at a quiet point of its subscription (no open unit, nothing fetched
and not handled, not crashed, not rebuilding), so its rows are exactly the effect of the
positions its record says were dealt with. Partitioned subscriptions share one read model
between several records and are not snapshotted (they replay). A snapshot is ignored, and
the view replays the log, when its projection's class or ``snapshot_version`` changed.
The snapshot is read back with :mod:`pickle` from the store's own file, which is as trusted
as the log itself; never point the server at a file from someone you do not trust.

>>> from cqrs_lab.core import Engine, ManualClock, SequentialIds
>>> from cqrs_lab.domains import bank
>>> from cqrs_lab.stores import SqliteEventStore
>>> store = SqliteEventStore(":memory:", ManualClock(), SequentialIds("e"))
>>> engine = Engine(clock=ManualClock(), store=store, registry=store.registry)
>>> _ = bank.install(engine)
>>> _ = engine.dispatch(bank.OpenAccount("a", "ann", 5))
>>> _ = engine.run_until_idle()
>>> snapshots = SqliteViewSnapshots(store, every=1)
>>> with store.batch():
...     snapshots.save_due(engine)
['balances', 'statements', 'transfer-saga']
>>> later = Engine(clock=ManualClock(), store=store, registry=store.registry)
>>> _ = bank.install(later)
>>> snapshots.restore(later)["balances"], later.ask(bank.GetBalance("a")).value
(1, 5)
"""

from __future__ import annotations

import json
import pickle
from typing import Any

from cqrs_lab.core import Engine, Progress
from cqrs_lab.core.subscription import Subscription
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.sqlite import SqliteEventStore

__all__ = ["DEFAULT_SNAPSHOT_EVERY", "SqliteViewSnapshots"]

#: positions a view moves between two snapshots (the server's ``--snapshot-every``)
DEFAULT_SNAPSHOT_EVERY = 20_000

# one statement, run by store.execute: executescript would COMMIT an open batch first
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS view_snapshots (name TEXT PRIMARY KEY, kind TEXT NOT NULL, "
    "position INTEGER NOT NULL, record TEXT NOT NULL, state BLOB NOT NULL)"
)


class SqliteViewSnapshots:
    """Snapshots of the engine's read models in table ``view_snapshots``; see the module."""

    def __init__(self, store: SqliteEventStore, every: int = DEFAULT_SNAPSHOT_EVERY) -> None:
        if not isinstance(store, SqliteEventStore):
            raise ConfigError(
                f"SqliteViewSnapshots(store={type(store).__name__}): pass a SqliteEventStore"
            )
        if type(every) is not int or every < 1:
            raise ConfigError(f"every={every!r}: pass a whole number of positions >= 1")
        self.store = store
        self.every = every
        store.execute(_SCHEMA)
        self._taken = {n: p for n, p in store.query("SELECT name, position FROM view_snapshots")}

    def positions(self) -> dict[str, int]:
        """View name -> the position of its latest snapshot."""
        return dict(self._taken)

    def save_due(self, engine: Engine) -> list[str]:
        """Snapshot every view that moved ``every`` positions since its last snapshot and is
        at a quiet point (call inside ``store.batch()``). Returns the views snapshotted."""
        saved = []
        for name, sub in engine.subscriptions.items():
            taken = self._taken.get(name, 0)
            if sub.position < taken:  # rebuilt since: a restart must not restore the old state
                self.store.execute("DELETE FROM view_snapshots WHERE name = ?", (name,))
                self._taken[name] = taken = 0
            if sub.position - taken < self.every or not _quiet(sub):
                continue
            record = sub.record
            state = pickle.dumps(sub.consumer.snapshot(), protocol=pickle.HIGHEST_PROTOCOL)
            self.store.execute(
                "INSERT OR REPLACE INTO view_snapshots VALUES (?,?,?,?,?)",
                (name, _kind(sub), record.watermark, _encode(record), state),
            )
            self._taken[name] = record.watermark
            saved.append(name)
        return saved

    def restore(self, engine: Engine) -> dict[str, int]:
        """Load each view's latest snapshot into ``engine`` (before anything is delivered);
        returns view name -> the position restored. Views without a usable snapshot (none,
        another class, version or set of tables, partitioned) replay the log from 0."""
        restored = {}
        for name, kind, position, record, state in self.store.query(
            "SELECT name, kind, position, record, state FROM view_snapshots"
        ):
            sub = engine.subscriptions.get(name)
            if sub is None or sub.partition is not None or kind != _kind(sub):
                continue
            try:
                sub.consumer.restore(pickle.loads(state))  # the store's own file
            except ConfigError:  # its tables changed and its version was not bumped: replay
                continue
            tracking, key = sub.tracking_location
            tracking.commit(key, _decode(position, record))
            sub.reset_progress()
            restored[name] = sub.position
        return restored


def _quiet(sub: Subscription) -> bool:
    return (
        sub.partition is None
        and not sub.inbox
        and not sub.undo
        and not sub.unit
        and not sub.crashed
        and sub.retry_at is None
        and sub.shadow is None
        and not sub.rebuilding
    )


def _kind(sub: Subscription) -> str:
    """What a snapshot must match to be restored: class, version, delivery semantics."""
    cls = type(sub.consumer)
    return f"{cls.__module__}.{cls.__qualname__}:v{cls.snapshot_version}:{sub.policy.name}"


def _encode(record: Progress) -> str:
    return json.dumps(sorted(record.above), separators=(",", ":"))


def _decode(watermark: int, above: Any) -> Progress:
    record = Progress(watermark)
    record.above = set(json.loads(above))
    return record
