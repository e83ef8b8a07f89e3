"""Records kept beside the log in the same SQLite file, written in the same transactions.

- :class:`SqliteIdempotencyStore`: the command bus's idempotency records, so a saga that
  replays after a restart re-sends its commands and gets the recorded answers instead of
  moving money twice.
- :class:`ResponseRecords` (memory) and :class:`SqliteResponseRecords`: the first HTTP
  response to each ``Idempotency-Key``.
- :class:`SqliteCheckpoints`: each projection's last position and the dead letters parked,
  so a restarted server knows how far it had got before it died.

Records per key are kept ``ttl`` seconds (on the engine's clock) and at most the
``max_keys`` newest (defaults: 24 h and 1,000,000): a retry within both is answered from its
record; a key past them is answered as new. The SQLite tables are pruned by
:class:`~cqrs_lab.stores.retention.Pruner` in the transactions that write them.

>>> from cqrs_lab.core import ManualClock
>>> clock = ManualClock()
>>> records = ResponseRecords(clock, ttl=60, max_keys=2)
>>> records.put("k", StoredResponse("fp", 200, b"{}", ()))
>>> records.get("k").status
200
>>> clock.advance(61)
>>> records.get("k") is None
True
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cqrs_lab.core import Clock, Command, CommandResult, DeadLetter, IdempotencyRecord
from cqrs_lab.core.idempotency import (
    DEFAULT_IDEMPOTENCY_MAX_KEYS,
    DEFAULT_IDEMPOTENCY_RETENTION,
    RetainedRecords,
)
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.retention import Pruner
from cqrs_lab.stores.sqlite import SqliteEventStore

__all__ = [
    "ResponseRecords",
    "ResponseStore",
    "SqliteCheckpoints",
    "SqliteIdempotencyStore",
    "SqliteResponseRecords",
    "StoredResponse",
]

# one statement each, run by store.execute: executescript would COMMIT an open batch first
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS idempotency ("
    "key TEXT PRIMARY KEY, command_type TEXT NOT NULL, command TEXT NOT NULL, "
    "result TEXT, rejection TEXT, recorded_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS http_responses ("
    "key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, "
    "body BLOB NOT NULL, headers TEXT NOT NULL, recorded_at REAL NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    "name TEXT PRIMARY KEY, position INTEGER NOT NULL, boot INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dead_letters ("
    "boot INTEGER NOT NULL, id TEXT NOT NULL, subscription TEXT NOT NULL, "
    "position INTEGER NOT NULL, event_type TEXT NOT NULL, error TEXT NOT NULL, "
    "attempts INTEGER NOT NULL, parked_at REAL NOT NULL, PRIMARY KEY (boot, id))",
)


def _ensure_schema(store: SqliteEventStore) -> None:
    for statement in _SCHEMA:
        store.execute(statement)
    columns = {row[1] for row in store.query("PRAGMA table_info(http_responses)")}
    if "recorded_at" not in columns:  # a file written before responses had an age
        store.execute("ALTER TABLE http_responses ADD COLUMN recorded_at REAL NOT NULL DEFAULT 0")
        store.execute("UPDATE http_responses SET recorded_at = ?", (store.clock.now(),))


class SqliteIdempotencyStore:
    """The command bus's ``IdempotencyStore`` on the event store's SQLite file.

    ``command_types`` returns the command classes by name (the bus's registered handlers),
    to rebuild recorded commands; the recorded result's events are read back from the log.
    Records are kept ``ttl`` seconds and at most the ``max_keys`` newest; the ``cache_size``
    newest are also kept in memory.
    """

    def __init__(
        self,
        store: SqliteEventStore,
        command_types: Callable[[], Mapping[str, type]],
        *,
        ttl: float | None = DEFAULT_IDEMPOTENCY_RETENTION,
        max_keys: int | None = DEFAULT_IDEMPOTENCY_MAX_KEYS,
        cache_size: int = 4096,
    ) -> None:
        _ensure_schema(store)
        self.store = store
        self.command_types = command_types
        self.retention = Pruner(store, "idempotency", ttl=ttl, max_keys=max_keys)
        self.cache_size = max(1, cache_size)
        self._cache: OrderedDict[str, IdempotencyRecord] = OrderedDict()

    def get(self, key: str) -> IdempotencyRecord | None:
        found = self._cache.get(key)
        if found is not None:
            return None if self.retention.expired(found.recorded_at) else found
        rows = self.store.query(
            "SELECT command_type, command, result, rejection, recorded_at FROM idempotency "
            "WHERE key = ?",
            (key,),
        )
        if not rows:
            return None
        ctype, command, result, rejection, at = rows[0]
        if self.retention.expired(at):
            return None
        cls = self.command_types().get(ctype)
        if cls is None:
            raise ConfigError(
                f"idempotency record {key!r} holds a {ctype!r} command, which has no handler "
                f"now; register the command type before reopening this store"
            )
        res: CommandResult | None = None
        if result is not None:
            cid, sid, ver, pos, n = json.loads(result)
            events = tuple(self.store.read_all(pos - n, n)) if n else ()
            res = CommandResult(cid, sid, ver, pos, events)
        record = IdempotencyRecord(cls(**json.loads(command)), res, rejection, at)
        self._remember(key, record)
        return record

    def _remember(self, key: str, record: IdempotencyRecord) -> None:
        cache = self._cache
        cache[key] = record
        cache.move_to_end(key)
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    def put(self, key: str, record: IdempotencyRecord) -> None:
        cmd: Command = record.command
        fields = {f.name: getattr(cmd, f.name) for f in dataclasses.fields(cmd)}  # type: ignore[arg-type]
        r = record.result
        result = (
            None
            if r is None
            else json.dumps(
                [r.command_id, r.stream_id, r.stream_version, r.position, len(r.events)]
            )
        )
        self.store.execute(
            "INSERT OR REPLACE INTO idempotency VALUES (?,?,?,?,?,?)",
            (
                key,
                type(cmd).__name__,
                json.dumps(fields),
                result,
                record.rejection,
                record.recorded_at,
            ),
        )
        self.retention.wrote()
        self._remember(key, record)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first response given to an ``Idempotency-Key``, and the request it answered."""

    fingerprint: str
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


class ResponseStore(Protocol):
    def get(self, key: str) -> StoredResponse | None: ...

    def put(self, key: str, response: StoredResponse) -> None: ...

    def hold(self, key: str) -> bool | None:
        """Take ``key`` for the current transaction: False when another process sharing the
        store holds it now (running a request with that key). None: a one-process store,
        whose gateway's own in-flight set covers it (nothing to take, nothing to re-read)."""
        ...


class ResponseRecords(RetainedRecords[StoredResponse]):
    """In-memory response records: each kept ``ttl`` seconds of ``clock``, at most the
    ``max_keys`` newest (``None``: no bound of that kind). ``evicted`` counts those dropped."""

    def __init__(
        self,
        clock: Clock,
        *,
        ttl: float | None = DEFAULT_IDEMPOTENCY_RETENTION,
        max_keys: int | None = DEFAULT_IDEMPOTENCY_MAX_KEYS,
    ) -> None:
        super().__init__(clock, ttl, max_keys, where="ResponseRecords")

    def put(self, key: str, response: StoredResponse, recorded_at: float | None = None) -> None:
        super().put(key, response, self.clock.now() if recorded_at is None else recorded_at)

    def hold(self, key: str) -> bool | None:
        return None  # one process: the gateway's own in-flight set covers it


class SqliteResponseRecords:
    """Response records in the store's file, written in the command's own transaction, kept
    ``ttl`` seconds and at most the ``max_keys`` newest."""

    def __init__(
        self,
        store: SqliteEventStore,
        *,
        ttl: float | None = DEFAULT_IDEMPOTENCY_RETENTION,
        max_keys: int | None = DEFAULT_IDEMPOTENCY_MAX_KEYS,
    ) -> None:
        _ensure_schema(store)
        self.store = store
        self.retention = Pruner(store, "http_responses", ttl=ttl, max_keys=max_keys)

    def hold(self, key: str) -> bool | None:
        return None  # one process per file: the gateway's own in-flight set covers it

    def get(self, key: str) -> StoredResponse | None:
        rows = self.store.query(
            "SELECT fingerprint, status, body, headers, recorded_at FROM http_responses "
            "WHERE key = ?",
            (key,),
        )
        if not rows or self.retention.expired(rows[0][4]):
            return None
        fp, status, body, headers, _ = rows[0]
        return StoredResponse(fp, status, bytes(body), tuple(tuple(h) for h in json.loads(headers)))

    def put(self, key: str, response: StoredResponse) -> None:
        self.store.execute(
            "INSERT OR REPLACE INTO http_responses "
            "(key, fingerprint, status, body, headers, recorded_at) VALUES (?,?,?,?,?,?)",
            (
                key,
                response.fingerprint,
                response.status,
                response.body,
                json.dumps(response.headers),
                self.store.clock.now(),
            ),
        )
        self.retention.wrote()


class SqliteCheckpoints:
    """Each projection's position and the dead letters parked, per boot of the server.

    ``previous()`` is where each projection had got before this boot: a restarted server
    whose read models live in memory replays the log and is not ready until it is back there.
    """

    def __init__(
        self,
        store: SqliteEventStore,
        on_save: Callable[[], object] | None = None,
        floors: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        _ensure_schema(store)
        self.store = store
        #: called at the end of every ``save``, in its transaction (the read-model snapshots)
        self.on_save = on_save
        #: projection -> a position up to which it is known to have handled the log before,
        #: even while it replays below it (a saga being rebuilt): saved when it is higher
        self.floors = floors
        self._saved: dict[str, int] = {}
        self._letters: set[str] = set()
        self._previous = {n: p for n, p, _ in store.query("SELECT * FROM checkpoints")}

    def previous(self) -> dict[str, int]:
        return dict(self._previous)

    def save(self, positions: Mapping[str, int], letters: list[DeadLetter]) -> None:
        """Record positions that moved and letters not seen before (call inside a batch)."""
        boot = self.store.boot
        floors = self.floors() if self.floors is not None else {}
        for name, pos in positions.items():
            pos = max(pos, floors.get(name, 0))
            if self._saved.get(name) != pos:
                self.store.execute(
                    "INSERT OR REPLACE INTO checkpoints VALUES (?,?,?)", (name, pos, boot)
                )
                self._saved[name] = pos
        for d in letters:
            if d.id not in self._letters:
                env = d.envelope
                self.store.execute(
                    "INSERT OR REPLACE INTO dead_letters VALUES (?,?,?,?,?,?,?,?)",
                    (
                        boot,
                        d.id,
                        d.subscription,
                        env.position,
                        env.event_type,
                        d.error,
                        d.attempts,
                        d.parked_at,
                    ),
                )
                self._letters.add(d.id)
        if self.on_save is not None:
            self.on_save()

    def history(self) -> list[dict[str, Any]]:
        """Every dead letter ever parked, across boots (oldest first)."""
        cols = (
            "boot",
            "id",
            "subscription",
            "position",
            "event_type",
            "error",
            "attempts",
            "parked_at",
        )
        rows = self.store.query("SELECT * FROM dead_letters ORDER BY boot, parked_at")
        return [dict(zip(cols, row, strict=True)) for row in rows]
