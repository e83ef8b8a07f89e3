"""What the SQLite store reads (a part of its class, :class:`SqliteReads`; the store is
:class:`~cqrs_lab.stores.sqlite.SqliteEventStore`): the log from the cache of newest events
or from the file, stream versions, snapshots and the outbox's pending messages.

The newest ``cache_events`` events are served from memory; older ones are read from the file
in chunks of ``_CHUNK`` that subscriptions catching up side by side share. Events read from
the file come in stored form and are decoded where the registry knows their type.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from cqrs_lab.core import Envelope, EventRegistry, OutboxMessage, RawEvent, Snapshot
from cqrs_lab.errors import ConfigError, StoreBroken

__all__ = ["COLUMNS", "NO_METADATA", "SqliteReads", "stored_envelope"]

NO_METADATA: Mapping[str, Any] = {}
_CHUNK = 2048  # events read from the file at a time, below the cache of newest events
_CHUNKS_KEPT = 8  # decoded chunks kept for the other subscriptions catching up
COLUMNS = (
    "event_id, stream_id, stream_version, position, type_name, schema_version, data, "
    "correlation_id, causation_id, recorded_at, metadata"
)


def stored_envelope(row: tuple[Any, ...]) -> Envelope:
    """An envelope in stored form from a row of ``COLUMNS``."""
    eid, sid, ver, pos, tname, schema, data, corr, caus, at, meta = row
    raw = RawEvent(tname, schema, json.loads(data))
    metadata = NO_METADATA if meta == "{}" else json.loads(meta)  # most events carry none
    return Envelope(eid, sid, ver, pos, tname, schema, raw, corr, caus, at, metadata)


class SqliteReads:
    """The reads of a :class:`~cqrs_lab.stores.sqlite.SqliteEventStore` (which sets the
    attributes below when it opens the file)."""

    path: str
    db: sqlite3.Connection
    registry: EventRegistry
    cache_streams: int
    _broken: BaseException | None
    _head: int
    _versions: OrderedDict[str, int]  # stream -> version, for the streams used last
    _tail: list[Envelope]  # the newest events, positions _tail_start + 1, ...
    _tail_start: int
    _last_at: float
    _chunks: OrderedDict[int, list[Envelope]]
    _snapshots: dict[str, Snapshot]  # those whose state is not JSON
    _loaded: int  # events up to here came from the file, in stored form
    _decoded: int  # cached events up to here are decoded

    def _check(self) -> None:
        if self._broken is not None:
            raise StoreBroken(
                f"the SQLite store at {self.path} failed earlier "
                f"({self._broken!r}); restart the server"
            )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Read rows (no transaction of its own)."""
        self._check()
        return self.db.execute(sql, params).fetchall()

    def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """Events of one stream with version > ``after_version``, decoded to current classes."""
        if after_version >= self._version(stream_id):
            return []
        rows = self.query(
            f"SELECT {COLUMNS} FROM events WHERE stream_id = ? AND stream_version > ? "
            "ORDER BY stream_version",
            (stream_id, after_version),
        )
        decode = self.registry.decode_envelope
        return [decode(stored_envelope(row)) for row in rows]

    def read_all(self, after: int = 0, limit: int | None = None) -> list[Envelope]:
        """Events at global positions > ``after``, at most ``limit``, in stored form (decoded
        where the registry knows the type)."""
        if after < 0:
            raise ConfigError(f"read_all(after={after}): positions start at 0; pass >= 0")
        head = self._head
        end = head if limit is None else min(head, after + limit)
        if end <= after:
            return []
        start = self._tail_start
        if end > self._decoded:
            self._decode_loaded(end)
        if after >= start:
            return self._tail[after - start : end - start]
        self._check()
        return self._older(after, min(end, start)) + self._tail[: max(0, end - start)]

    def _older(self, after: int, end: int) -> list[Envelope]:
        """Events after ``after`` up to ``end`` from the file, through a few decoded chunks
        of ``_CHUNK`` events that subscriptions catching up side by side share."""
        out: list[Envelope] = []
        pos = after
        while pos < end:
            first = pos - pos % _CHUNK  # the chunk holds positions first + 1 .. first + _CHUNK
            chunk = self._chunks.get(first)
            if chunk is None:
                rows = self.db.execute(
                    f"SELECT {COLUMNS} FROM events WHERE position > ? AND position <= ? "
                    "ORDER BY position",
                    (first, first + _CHUNK),
                )
                chunk = [self.registry.decode_if_known(stored_envelope(row)) for row in rows]
                if len(chunk) == _CHUNK:  # a whole chunk never changes: keep it a while
                    self._chunks[first] = chunk
                    if len(self._chunks) > _CHUNKS_KEPT:
                        self._chunks.popitem(last=False)
            else:
                self._chunks.move_to_end(first)
            piece = chunk[pos - first : end - first]
            if not piece:
                break
            out.extend(piece)
            pos += len(piece)
        return out

    def _decode_loaded(self, end: int) -> None:
        """Decode the cached events loaded from the file up to ``end``, once."""
        tail, start = self._tail, self._tail_start
        stop = min(end, self._loaded)
        for pos in range(max(self._decoded, start), stop):
            env = tail[pos - start]
            if type(env.payload) is RawEvent:
                tail[pos - start] = self.registry.decode_if_known(env)
        self._decoded = max(self._decoded, stop)

    def stream_version(self, stream_id: str) -> int:
        return self._version(stream_id)

    def _version(self, stream_id: str) -> int:
        versions = self._versions
        version = versions.get(stream_id)
        if version is None:  # not used lately (or new): the file knows, through its index
            row = self.db.execute(
                "SELECT max(stream_version) FROM events WHERE stream_id = ?", (stream_id,)
            ).fetchone()
            version = int(row[0] or 0)
            if version:
                self._set_version(stream_id, version)
        return version

    def _set_version(self, stream_id: str, version: int) -> None:
        versions = self._versions
        versions[stream_id] = version
        versions.move_to_end(stream_id)
        if len(versions) > self.cache_streams:
            versions.popitem(last=False)

    @property
    def head_position(self) -> int:
        return self._head

    @property
    def last_recorded_at(self) -> float:
        """When the last event was recorded (0.0 for an empty log), on the store's clock."""
        return self._last_at

    def stream_ids(self) -> list[str]:
        sql = "SELECT stream_id FROM events GROUP BY stream_id ORDER BY min(position)"
        return [r[0] for r in self.db.execute(sql)]  # in order of first append

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        kept = self._snapshots.get(stream_id)
        if kept is not None:
            return kept
        rows = self.query("SELECT version, state FROM snapshots WHERE stream_id = ?", (stream_id,))
        return Snapshot(stream_id, rows[0][0], json.loads(rows[0][1])) if rows else None

    def outbox_pending(self, limit: int | None = None) -> list[OutboxMessage]:
        """Messages not yet published, oldest first (read from the file: pending messages are
        not kept in memory, however many a server without a relay accumulates)."""
        rows = self.query(
            "SELECT message_id, topic, payload, position, correlation_id FROM outbox "
            "WHERE published = 0 ORDER BY seq LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [OutboxMessage(m, t, json.loads(p), pos, c) for m, t, p, pos, c in rows]
