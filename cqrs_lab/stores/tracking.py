"""Tracking records in the SQLite event store's file, written in the store's transactions.

:class:`SqliteTracking` writes through the store's own connection, so a ``commit`` made
inside ``store.batch()`` lands in the same SQLite transaction as everything else written
there: a durable read model commits its rows and its tracking record as one unit, and after
a crash the file holds both or neither.

>>> from cqrs_lab.core import ManualClock, Progress, SequentialIds
>>> from cqrs_lab.stores import SqliteEventStore
>>> store = SqliteEventStore(":memory:", ManualClock(), SequentialIds("e"))
>>> tracking = SqliteTracking(store)
>>> p = Progress(3); p.add(5)
>>> with store.batch():  # one transaction: the read model's rows would be written here too
...     tracking.commit("balances/p0", p)
>>> tracking.load("balances/p0"), tracking.keys()
(Progress(watermark=3, above=[5]), ['balances/p0'])
"""

from __future__ import annotations

import json
from typing import Any

from cqrs_lab.core.readmodel import Progress
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.sqlite import SqliteEventStore

__all__ = ["SqliteTracking"]

# one statement, run by store.execute: executescript would COMMIT an open batch first
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tracking "
    "(key TEXT PRIMARY KEY, watermark INTEGER NOT NULL, above TEXT NOT NULL)"
)
_MAX_INTEGER = 2**63 - 1  # SQLite's INTEGER


class SqliteTracking:
    """The :class:`~cqrs_lab.core.tracking.TrackingStore` port in table ``tracking``.

    Every method goes to the file (no cache), on the store's connection: a ``load`` inside a
    batch sees the batch's own commits; other connections see them once the batch exits.
    All ``SqliteTracking`` objects on one store share the table, so give keys a prefix
    (``"balances/p3"``). ``above`` is kept as a compact JSON list of sorted positions.
    """

    def __init__(self, store: SqliteEventStore) -> None:
        if not isinstance(store, SqliteEventStore):
            raise ConfigError(
                f"SqliteTracking(store={type(store).__name__}): pass a SqliteEventStore "
                f"(use InMemoryTracking for in-memory records)"
            )
        self.store = store
        store.execute(_SCHEMA)

    def load(self, key: str) -> Progress:
        rows = self.store.query(
            "SELECT watermark, above FROM tracking WHERE key = ?", (_check_key(key, "load"),)
        )
        if not rows:
            return Progress()
        watermark, above = rows[0]
        record = Progress(watermark)
        record.above = set(json.loads(above))
        return record

    def commit(self, key: str, record: Progress) -> None:
        key = _check_key(key, "commit")
        above = _encode(key, record)  # checked before the write: a write never fails half-way
        self.store.execute(
            "INSERT OR REPLACE INTO tracking VALUES (?,?,?)", (key, record.watermark, above)
        )

    def reset(self, key: str) -> None:
        self.store.execute("DELETE FROM tracking WHERE key = ?", (_check_key(key, "reset"),))

    def keys(self) -> list[str]:
        # sorted in Python: the port's order is str order, whatever SQLite's collation
        return sorted(row[0] for row in self.store.query("SELECT key FROM tracking"))


def _check_key(key: Any, method: str) -> str:
    if not isinstance(key, str):
        raise ConfigError(
            f"{method}(key={key!r}): a tracking key is a str (e.g. 'balances/p3'); "
            f"got {type(key).__name__}"
        )
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{method}(key={key!r}): a tracking key must encode as UTF-8 ({exc.reason}); "
            f"remove the lone surrogate"
        ) from None
    return key


def _encode(key: str, record: Any) -> str:
    """The record's ``above`` as compact JSON, after checking the record is well formed."""
    if not isinstance(record, Progress):
        raise ConfigError(
            f"commit({key!r}, record={type(record).__name__}): pass a Progress "
            f"(cqrs_lab.core.Progress)"
        )
    wm = record.watermark
    if type(wm) is not int or not 0 <= wm <= _MAX_INTEGER:
        raise ConfigError(
            f"commit({key!r}): record.watermark={wm!r}; pass an int from 0 to {_MAX_INTEGER}"
        )
    if not all(type(p) is int for p in record.above):
        raise ConfigError(f"commit({key!r}): record.above holds a non-int; positions are ints")
    above = sorted(record.above)
    if above and above[0] <= wm:
        raise ConfigError(
            f"commit({key!r}): record.above holds {above[0]}, not above the watermark {wm}; "
            f"build the record with Progress.add or raise_to, which keep above > watermark"
        )
    return json.dumps(above, separators=(",", ":"))
