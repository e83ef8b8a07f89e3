"""A durable event store on SQLite (stdlib ``sqlite3``, WAL journal), same contract as memory.

One process owns the file: the store keeps a write-through mirror of the log in memory, so
reads (the subscriptions poll ``read_all`` constantly) never touch the disk, and every
append is one SQLite transaction, or part of a group commit opened with :meth:`batch`.
Events are stored as JSON with their type name and schema version
(:meth:`EventRegistry.encode`); on reopening, they are loaded in stored form
(:class:`RawEvent`) and decoded through the upcasters once, when first read, where the
registry knows their type (what it cannot decode stays in stored form for the reader).

>>> from cqrs_lab.core import ManualClock, SequentialIds
>>> store = SqliteEventStore(":memory:", ManualClock(), SequentialIds("e"))
>>> store.head_position
0
"""

from __future__ import annotations

import json
import sqlite3
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
from cqrs_lab.core.store import check_expected, read_stream_from
from cqrs_lab.errors import ConfigError, CqrsLabError, StoreBroken

__all__ = ["SYNCHRONOUS_MODES", "SqliteEventStore", "StoreBroken"]

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
_EMPTY: Mapping[str, Any] = {}

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
"""


class SqliteEventStore:
    """The :class:`~cqrs_lab.core.EventStore` protocol on a SQLite file (WAL).

    ``path`` is a file path or ``":memory:"``; ``synchronous`` is SQLite's durability
    setting (``FULL``: a commit survives power loss; ``NORMAL``: it survives a killed
    process). ``boot`` counts how often the file was opened, so id factories can make ids
    unique across restarts (``SequentialIds(f"{store.boot}-")``).
    """

    def __init__(
        self,
        path: str | Path,
        clock: Clock,
        ids: IdFactory,
        registry: EventRegistry | None = None,
        *,
        synchronous: str = "FULL",
    ) -> None:
        if str(synchronous).upper() not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"synchronous={synchronous!r}: pass one of {', '.join(SYNCHRONOUS_MODES)}"
            )
        self.path = str(path)
        self.clock = clock
        self.ids = ids
        self.registry = registry if registry is not None else EventRegistry()
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open SQLite store at {self.path!r}: {exc}") from exc
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self.db.executescript(_SCHEMA)
        self._depth = 0  # open batch() levels
        self._broken: BaseException | None = None
        self._log: list[Envelope] = []
        self._streams: dict[str, list[Envelope]] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._outbox: dict[str, OutboxMessage] = {}
        self._outbox_seq = 0
        self._loaded = self._decoded = 0
        self.boot = self._next_boot()
        self._load()

    # -- opening -------------------------------------------------------------------------
    def _next_boot(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='boot'").fetchone()
        boot = int(row[0]) + 1 if row else 1
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('boot', ?)", (str(boot),))
        return boot

    def _load(self) -> None:
        rows = self.db.execute(
            "SELECT event_id, stream_id, stream_version, position, type_name, schema_version, "
            "data, correlation_id, causation_id, recorded_at, metadata FROM events "
            "ORDER BY position"
        )
        log, streams = self._log, self._streams
        for eid, sid, ver, pos, tname, schema, data, corr, caus, at, meta in rows:
            if pos != len(log) + 1:
                raise StoreBroken(f"{self.path}: gap in the log before position {pos}")
            raw = RawEvent(tname, schema, json.loads(data))
            env = Envelope(eid, sid, ver, pos, tname, schema, raw, corr, caus, at, json.loads(meta))
            log.append(env)
            streams.setdefault(sid, []).append(env)
        for sid, ver, state in self.db.execute("SELECT stream_id, version, state FROM snapshots"):
            self._snapshots[sid] = Snapshot(sid, ver, json.loads(state))
        for mid, _seq, topic, payload, pos, corr in self.db.execute(
            "SELECT message_id, seq, topic, payload, position, correlation_id FROM outbox "
            "WHERE published = 0 ORDER BY seq"
        ):
            self._outbox[mid] = OutboxMessage(mid, topic, json.loads(payload), pos, corr)
        row = self.db.execute("SELECT max(seq) FROM outbox").fetchone()
        self._outbox_seq = int(row[0] or 0)
        self._loaded = len(log)  # events up to here came from the file, in stored form

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: every write inside is one transaction, committed on exit.

        Acknowledge the commands of a batch only after the ``with`` block has exited.
        """
        self._check()
        if self._depth == 0:
            self.db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._commit()

    def _commit(self) -> None:
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._broken = exc
            raise StoreBroken(f"commit to {self.path} failed: {exc}; restart the server") from exc

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
            raise StoreBroken(f"write to {self.path} failed: {exc}; restart the server") from exc
        if own:
            self._commit()

    def _check(self) -> None:
        if self._broken is not None:
            raise StoreBroken(
                f"the SQLite store at {self.path} failed earlier ({self._broken}); restart"
            )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement in the current transaction (for records kept beside the log)."""
        with self._write() as db:
            return db.execute(sql, params).fetchall()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Read rows (no transaction of its own)."""
        self._check()
        return self.db.execute(sql, params).fetchall()

    def close(self) -> None:
        self.db.close()

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
        stream = self._streams.get(stream_id)
        version = len(stream) if stream is not None else 0
        if expected_version is not ANY:
            check_expected(stream_id, expected_version, version)
        if not events and not outbox:
            return []
        position = len(self._log)
        now = self.clock.now()
        meta = dict(metadata) if metadata is not None else _EMPTY
        meta_json = json.dumps(meta)
        out: list[Envelope] = []
        rows: list[tuple[Any, ...]] = []
        for event in events:
            version += 1
            position += 1
            raw = event if type(event) is RawEvent else self.registry.encode(event)  # type: ignore[arg-type]
            env = Envelope(
                self.ids(),
                stream_id,
                version,
                position,
                raw.type_name,
                raw.schema_version,
                event,
                correlation_id,
                causation_id,
                now,
                meta,
            )
            out.append(env)
            rows.append(
                (
                    position,
                    env.event_id,
                    stream_id,
                    version,
                    raw.type_name,
                    raw.schema_version,
                    json.dumps(raw.data),
                    correlation_id,
                    causation_id,
                    now,
                    meta_json,
                )
            )
        messages = []
        for topic, payload in outbox:
            self._outbox_seq += 1
            messages.append(OutboxMessage(self.ids(), topic, payload, position, correlation_id))
        with self._write() as db:
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            db.executemany(
                "INSERT INTO outbox VALUES (?,?,?,?,?,?,0)",
                [
                    (
                        m.message_id,
                        self._outbox_seq - len(messages) + i + 1,
                        m.topic,
                        json.dumps(m.payload),
                        m.position,
                        m.correlation_id,
                    )
                    for i, m in enumerate(messages)
                ],
            )
        self._log.extend(out)
        if stream is None:
            stream = self._streams[stream_id] = []
        stream.extend(out)
        for m in messages:
            self._outbox[m.message_id] = m
        return out

    # -- reading -------------------------------------------------------------------------
    def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """Events of one stream with version > ``after_version``, decoded to current classes."""
        return read_stream_from(self._streams, self.registry, stream_id, after_version)

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Envelope]:
        """Events at global positions > ``after``, at most ``limit``, in stored form."""
        if after < 0:
            raise ConfigError(f"read_all(after={after}): positions start at 0; pass >= 0")
        end = len(self._log) if limit is None else min(len(self._log), after + limit)
        if end > self._decoded:
            self._decode_loaded(end)
        return self._log[after:end]

    def _decode_loaded(self, end: int) -> None:
        """Decode events loaded from the file up to ``end``, once, where the registry can.

        What it cannot decode (unknown type, failing upcaster) stays in stored form, so the
        subscription that reads it fails on that one event and parks it as a dead letter.
        """
        log, registry = self._log, self.registry
        stop = min(end, self._loaded)
        for i in range(self._decoded, stop):
            env = log[i]
            if type(env.payload) is RawEvent and registry.knows(env.event_type):
                try:
                    decoded = registry.decode_envelope(env)
                except CqrsLabError:
                    continue
                log[i] = decoded
                stream = self._streams[env.stream_id]
                stream[env.stream_version - 1] = decoded
        self._decoded = max(self._decoded, stop)

    def stream_version(self, stream_id: str) -> int:
        stream = self._streams.get(stream_id)
        return len(stream) if stream is not None else 0

    @property
    def head_position(self) -> int:
        return len(self._log)

    @property
    def last_recorded_at(self) -> float:
        """When the last event was recorded (0.0 for an empty log), on the store's clock."""
        return self._log[-1].recorded_at if self._log else 0.0

    def stream_ids(self) -> list[str]:
        return list(self._streams)

    # -- snapshots -----------------------------------------------------------------------
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the snapshot; persist it when its state is JSON (else in memory only)."""
        self._snapshots[snapshot.stream_id] = snapshot
        try:
            state = json.dumps(dict(snapshot.state))
        except (TypeError, ValueError):
            return  # a snapshot is an optimisation: the log alone rebuilds the aggregate
        self.execute(
            "INSERT OR REPLACE INTO snapshots VALUES (?,?,?)",
            (snapshot.stream_id, snapshot.version, state),
        )

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return self._snapshots.get(stream_id)

    # -- outbox --------------------------------------------------------------------------
    def outbox_pending(self, limit: int | None = None) -> list[OutboxMessage]:
        pending = list(self._outbox.values())
        return pending if limit is None else pending[:limit]

    def outbox_mark_published(self, message_ids: Iterable[str]) -> None:
        ids = [mid for mid in message_ids if mid in self._outbox]
        if not ids:
            return
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET published = 1 WHERE message_id = ?", [(m,) for m in ids]
            )
        for mid in ids:
            self._outbox.pop(mid, None)
