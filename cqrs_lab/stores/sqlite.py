"""A durable event store on SQLite (stdlib ``sqlite3``, WAL journal), same contract as memory.

One process owns the file: the store holds an exclusive lock on it (``flock``) while open,
and a second store on the same file, in this process or another, is refused at once instead
of serving stale reads and failing on its first write. Every append is one SQLite
transaction, or part of a group commit opened with :meth:`batch`. The store keeps in memory
only what is small or recent: the version of the ``cache_streams`` streams written last (for
optimistic concurrency without a query; an older stream's comes from the file's index), the
head position, and the newest ``cache_events`` events (subscriptions that keep up read those
without touching the disk); older events and whole streams are read from the file. Events
are stored as JSON with their type name and schema version (:meth:`EventRegistry.encode`);
events read from the file come in stored form (:class:`RawEvent`) and are decoded through
the upcasters where the registry knows their type (what it cannot decode stays in stored
form for the reader).

>>> from cqrs_lab.core import ManualClock, SequentialIds
>>> store = SqliteEventStore(":memory:", ManualClock(), SequentialIds("e"))
>>> store.head_position
0
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cqrs_lab.core import (
    ANY,
    Clock,
    Envelope,
    Event,
    EventRegistry,
    ExpectedVersion,
    IdFactory,
    OutboxMessage,
    RawEvent,
    Snapshot,
)
from cqrs_lab.core.store import check_events, check_expected
from cqrs_lab.errors import ConfigError, StoreBroken
from cqrs_lab.stores.file_owner import own_file
from cqrs_lab.stores.sqlite_reads import COLUMNS, NO_METADATA, SqliteReads, stored_envelope

__all__ = ["SYNCHRONOUS_MODES", "SqliteEventStore", "StoreBroken"]

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY, event_id TEXT NOT NULL, stream_id TEXT NOT NULL,
    stream_version INTEGER NOT NULL, type_name TEXT NOT NULL, schema_version INTEGER NOT NULL,
    data TEXT NOT NULL, correlation_id TEXT, causation_id TEXT, recorded_at REAL NOT NULL,
    metadata TEXT NOT NULL, UNIQUE (stream_id, stream_version));
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, topic TEXT NOT NULL,
    payload TEXT NOT NULL, position INTEGER NOT NULL, correlation_id TEXT,
    published INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE published = 0;
"""


class SqliteEventStore(SqliteReads):
    """The :class:`~cqrs_lab.core.EventStore` protocol on a SQLite file (WAL).

    ``path`` is a file path or ``":memory:"``; ``synchronous`` is SQLite's durability
    setting (``FULL``: a commit survives power loss; ``NORMAL``: it survives a killed
    process); ``cache_events`` how many of the newest events are kept in memory. ``boot``
    counts how often the file was opened, so id factories can make ids unique across
    restarts (``SequentialIds(f"{store.boot}-")``).
    """

    def __init__(
        self,
        path: str | Path,
        clock: Clock,
        ids: IdFactory,
        registry: EventRegistry | None = None,
        *,
        synchronous: str = "FULL",
        cache_events: int = 10_000,
        cache_streams: int = 10_000,
    ) -> None:
        if str(synchronous).upper() not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"synchronous={synchronous!r}: pass one of {', '.join(SYNCHRONOUS_MODES)}"
            )
        if type(cache_events) is not int or cache_events < 1:
            raise ConfigError(f"cache_events={cache_events!r}: pass a whole number >= 1")
        if type(cache_streams) is not int or cache_streams < 1:
            raise ConfigError(f"cache_streams={cache_streams!r}: pass a whole number >= 1")
        self.path = str(path)
        self.clock = clock
        self.ids = ids
        self.registry = registry if registry is not None else EventRegistry()
        self.cache_events = cache_events
        self.cache_streams = cache_streams
        self._owner = own_file(self.path)  # before SQLite writes anything to it
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            self._disown()
            raise ConfigError(f"cannot open SQLite store at {self.path!r}: {exc}") from exc
        try:
            self._check_is_a_store()  # before anything is written to someone else's file
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            self._disown()
            raise ConfigError(
                f"{self.path}: not an event store of this lab ({exc}); give a new file, or "
                "one a cqrs-lab SQLite store wrote"
            ) from None
        except ConfigError:
            self.db.close()
            self._disown()
            raise
        self._depth = 0  # open batch() levels
        self._broken: BaseException | None = None
        self._head = 0
        #: stream -> version, for the ``cache_streams`` streams used last (others: a query)
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._tail: list[Envelope] = []  # the newest events, positions _tail_start + 1, ...
        self._tail_start = 0
        self._last_at = 0.0
        self._chunks: OrderedDict[int, list[Envelope]] = OrderedDict()
        self._snapshots: dict[str, Snapshot] = {}  # those whose state is not JSON
        self._outbox_seq = 0
        self._loaded = self._decoded = 0
        self.boot = self._next_boot()
        self._load()

    # -- opening -------------------------------------------------------------------------
    def _check_is_a_store(self) -> None:
        """A file with tables is this lab's store (its ``meta`` and ``events``) or refused,
        untouched; an empty or new one becomes a store."""
        tables = {
            r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if not tables:
            return
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(events)")}
        if "meta" not in tables or not {"position", "stream_id", "data"} <= columns:
            raise ConfigError(
                f"{self.path}: a SQLite database of something else (tables "
                f"{', '.join(sorted(tables))}), not an event store of this lab: left as it "
                "was; give a new file, or one a cqrs-lab SQLite store wrote"
            )

    def claim_domain(self, name: str) -> None:
        """The store holds the events of domain ``name``: recorded when it first serves,
        refused when the file holds another domain's (its views would dead-letter them)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='domain'").fetchone()
        legacy = row is not None and ("." in row[0] or ":" in row[0]) and _named(row[0]) == name
        if row is None or legacy:
            # a store written before names were recorded holds the module reference
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('domain', ?)", (name,))
        elif row[0] != name:
            raise ConfigError(
                f"{self.path} holds the events of domain {row[0]!r}, not {name!r}: serve it "
                f"with that domain (a --domain whose domain is named {row[0]!r}), or give "
                "another store"
            )

    def _next_boot(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='boot'").fetchone()
        boot = int(row[0]) + 1 if row else 1
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('boot', ?)", (str(boot),))
        return boot

    def _load(self) -> None:
        """Versions, the head and the newest events; the rest stays in the file."""
        count, head = self.db.execute("SELECT count(*), max(position) FROM events").fetchone()
        head = int(head or 0)
        if count != head:
            raise StoreBroken(f"{self.path}: {head - count} gaps in the log of {head} events")
        self._head = head
        start = max(0, head - self.cache_events)
        rows = self.db.execute(
            f"SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position", (start,)
        )
        self._tail = [stored_envelope(row) for row in rows]
        self._tail_start = start
        self._last_at = self._tail[-1].recorded_at if self._tail else 0.0
        row = self.db.execute("SELECT max(seq) FROM outbox").fetchone()
        self._outbox_seq = int(row[0] or 0)
        self._loaded = head  # events up to here came from the file, in stored form
        self._decoded = start  # those in the cache are decoded when first read

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: every write inside is one transaction, committed on exit.

        Acknowledge the commands of a batch only after the ``with`` block has exited. A block
        that raises rolls the transaction back, and the store then refuses work
        (:class:`StoreBroken`): it had already handed out the block's events, which are not
        in the file, so only a restart makes the process agree with the file again.
        """
        self._check()
        if self._depth == 0:
            self.db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException as exc:
            if self._broken is None:
                self._broken = exc
            raise
        finally:
            self._depth -= 1
            if self._depth == 0:
                if self._broken is None:
                    self._commit()
                else:
                    self._rollback()

    def _commit(self) -> None:
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._broken = exc
            self._rollback()
            raise StoreBroken(f"commit to {self.path} failed: {exc}; restart the server") from exc

    def _rollback(self) -> None:
        if self.db.in_transaction:
            # SQLite may have rolled back already (SQLITE_FULL, ...)
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._check()
        own = self._depth == 0
        if own:
            self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except sqlite3.Error as exc:
            self._broken = exc
            if own:
                self._rollback()
            raise StoreBroken(f"write to {self.path} failed: {exc}; restart the server") from exc
        except BaseException:
            if own:  # nothing was kept in memory yet: the store stays usable
                self._rollback()
            raise
        if own:
            self._commit()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement in the current transaction (for records kept beside the log)."""
        with self._write() as db:
            return db.execute(sql, params).fetchall()

    def close(self) -> None:
        self.db.close()
        self._disown()  # after SQLite's own handles: closing a file drops its locks

    def _disown(self) -> None:
        if self._owner is not None:
            os.close(self._owner)
            self._owner = None

    # -- writing -------------------------------------------------------------------------
    def append(
        self,
        stream_id: str,
        events: Sequence[Event | RawEvent],
        expected_version: int | ExpectedVersion,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        outbox: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> list[Envelope]:
        self._check()
        if type(stream_id) is not str or not stream_id:
            check_events(stream_id, events)
        version = self._version(stream_id)
        if expected_version is not ANY:
            check_expected(stream_id, expected_version, version)
        if not events and not outbox:
            return []
        position = self._head
        now = self.clock.now()
        meta = dict(metadata) if metadata is not None else NO_METADATA
        meta_json = json.dumps(meta)
        out: list[Envelope] = []
        rows: list[tuple[Any, ...]] = []
        encode = self.registry.encode
        for event in events:
            version += 1
            position += 1
            raw = event if type(event) is RawEvent else encode(event)  # type: ignore[arg-type]
            eid = self.ids()
            tname, schema = raw.type_name, raw.schema_version
            out.append(Envelope(
                eid, stream_id, version, position, tname, schema, event,
                correlation_id, causation_id, now, meta,
            ))  # fmt: skip
            rows.append((
                position, eid, stream_id, version, tname, schema, json.dumps(raw.data),
                correlation_id, causation_id, now, meta_json,
            ))  # fmt: skip
        messages = []
        for topic, payload in outbox:
            self._outbox_seq += 1
            messages.append(OutboxMessage(self.ids(), topic, payload, position, correlation_id))
        first_seq = self._outbox_seq - len(messages) + 1
        with self._write() as db:
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            if messages:
                db.executemany(
                    "INSERT INTO outbox VALUES (?,?,?,?,?,?,0)",
                    [
                        (m.message_id, first_seq + i, m.topic, json.dumps(m.payload),
                         m.position, m.correlation_id)
                        for i, m in enumerate(messages)
                    ],
                )  # fmt: skip
        if out:
            self._head = position
            self._set_version(stream_id, version)
            self._last_at = now
            self._keep(out)
        return out

    def _keep(self, out: list[Envelope]) -> None:
        """Add to the cache of newest events; drop the oldest half when it is twice full."""
        tail = self._tail
        tail.extend(out)
        if len(tail) > 2 * self.cache_events:
            drop = len(tail) - self.cache_events
            del tail[:drop]
            self._tail_start += drop
            self._decoded = max(self._decoded, self._tail_start)

    # -- snapshots -----------------------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Persist the snapshot when its state is JSON (else keep it in memory only)."""
        try:
            state = json.dumps(dict(snapshot.state))
        except (TypeError, ValueError):
            self._snapshots[snapshot.stream_id] = snapshot
            return  # a snapshot is an optimisation: the log alone rebuilds the aggregate
        self._snapshots.pop(snapshot.stream_id, None)
        self.execute(
            "INSERT OR REPLACE INTO snapshots VALUES (?,?,?)",
            (snapshot.stream_id, snapshot.version, state),
        )

    # -- outbox --------------------------------------------------------------------------
    def outbox_mark_published(self, message_ids: Iterable[str]) -> None:
        ids = [(mid,) for mid in message_ids]
        if not ids:
            return
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET published = 1 WHERE message_id = ? AND published = 0", ids
            )


def _named(reference: str) -> str:
    """The domain name a module reference recorded by an earlier version stands for: its
    module's last part (``cqrs_lab.domains.bank`` -> ``bank``), read, never imported (a
    file names what it likes)."""
    return reference.partition(":")[0].rsplit(".", 1)[-1]
