"""Records kept beside the log in PostgreSQL, written in the same transactions as the events.

The PostgreSQL twins of :mod:`cqrs_lab.stores.durable_records` and
:mod:`cqrs_lab.stores.tracking`, with the same retention options (``ttl`` seconds on the
engine's clock and at most ``max_keys`` newest per table, pruned by :class:`PgPruner` in the
transactions that write them):

- :class:`PostgresIdempotencyStore`: the command bus's idempotency records;
- :class:`PostgresResponseRecords`: the first HTTP response to each ``Idempotency-Key``;
- :class:`PostgresCheckpoints`: each projection's position and the dead letters parked;
- :class:`PostgresTracking`: the tracking port; a ``commit`` inside ``store.batch()`` is part
  of the batch's transaction, so an effectively-once read model's rows and its tracking
  record commit as one unit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from cqrs_lab.core import Command, CommandResult, DeadLetter, IdempotencyRecord
from cqrs_lab.core.bus import check_retention
from cqrs_lab.core.idempotency import DEFAULT_IDEMPOTENCY_MAX_KEYS, DEFAULT_IDEMPOTENCY_RETENTION
from cqrs_lab.core.readmodel import Progress
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.durable_records import StoredResponse
from cqrs_lab.stores.postgres_store import PostgresEventStore
from cqrs_lab.stores.tracking import _check_key, _encode

__all__ = [
    "PgPruner",
    "PostgresCheckpoints",
    "PostgresIdempotencyStore",
    "PostgresResponseRecords",
    "PostgresTracking",
]


class PgPruner:
    """Keeps table ``table`` (columns ``seq``, ``recorded_at``) within ``ttl`` seconds and the
    ``max_keys`` newest rows (by ``seq``, the order of insertion)."""

    def __init__(
        self, store: PostgresEventStore, table: str, *, ttl: float | None, max_keys: int | None
    ) -> None:
        check_retention(ttl, max_keys, f"retention of table {table!r}")
        self.store, self.table, self.ttl, self.max_keys = store, table, ttl, max_keys
        self.every = max(1, min(1000, (max_keys or 100_000) // 100))
        self.pruned = 0
        self._writes = 0
        with store.batch():  # processes starting together: IF NOT EXISTS alone races
            store.execute("SELECT pg_advisory_xact_lock(hashtext('cqrs_lab.schema'))")
            store.execute(f"CREATE INDEX IF NOT EXISTS {table}_at ON {table} (recorded_at)")
            store.execute(f"CREATE INDEX IF NOT EXISTS {table}_seq ON {table} (seq)")

    def expired(self, recorded_at: float) -> bool:
        return self.ttl is not None and self.store.clock.now() - recorded_at > self.ttl

    def wrote(self) -> None:
        """Count one written row; prune every ``every`` writes (in the write's transaction)."""
        self._writes += 1
        if self._writes >= self.every:
            self._writes = 0
            self.prune()

    def prune(self) -> int:
        """Delete the rows past either bound now; returns how many."""
        store, table, n = self.store, self.table, 0
        if self.ttl is not None:
            horizon = store.clock.now() - self.ttl
            n += store.execute_count(f"DELETE FROM {table} WHERE recorded_at < %s", (horizon,))
        if self.max_keys is not None:
            n += store.execute_count(
                f"DELETE FROM {table} WHERE seq < (SELECT seq FROM {table} "
                f"ORDER BY seq DESC LIMIT 1 OFFSET %s)",
                (self.max_keys - 1,),
            )
        self.pruned += n
        return n


class PostgresIdempotencyStore:
    """The command bus's ``IdempotencyStore`` in the store's database (see the SQLite twin,
    :class:`~cqrs_lab.stores.durable_records.SqliteIdempotencyStore`)."""

    def __init__(
        self,
        store: PostgresEventStore,
        command_types: Callable[[], Mapping[str, type]],
        *,
        ttl: float | None = DEFAULT_IDEMPOTENCY_RETENTION,
        max_keys: int | None = DEFAULT_IDEMPOTENCY_MAX_KEYS,
    ) -> None:
        self.store = store
        self.command_types = command_types
        self.retention = PgPruner(store, "idempotency", ttl=ttl, max_keys=max_keys)

    def get(self, key: str) -> IdempotencyRecord | None:
        rows = self.store.query(
            "SELECT command_type, command, result, rejection, recorded_at FROM idempotency "
            "WHERE key = %s",
            (key,),
        )
        if not rows or self.retention.expired(rows[0][4]):
            return None
        ctype, command, result, rejection, at = rows[0]
        cls = self.command_types().get(ctype)
        if cls is None:
            raise ConfigError(
                f"idempotency record {key!r} holds a {ctype!r} command, which has no handler "
                f"now; register the command type before reopening this store"
            )
        res: CommandResult | None = None
        if result is not None:
            cid, sid, ver, pos, first = json.loads(result)
            events = tuple(self.store.read_positions(first, pos)) if first else ()
            res = CommandResult(cid, sid, ver, pos, events)
        return IdempotencyRecord(cls(**json.loads(command)), res, rejection, at)

    def put(self, key: str, record: IdempotencyRecord) -> None:
        cmd: Command = record.command
        fields = {f.name: getattr(cmd, f.name) for f in dataclasses.fields(cmd)}  # type: ignore[arg-type]
        r = record.result
        result = None
        if r is not None:
            first = r.events[0].position if r.events else 0  # positions may have holes
            result = json.dumps([r.command_id, r.stream_id, r.stream_version, r.position, first])
        self.store.execute(
            "INSERT INTO idempotency (key, command_type, command, result, rejection, recorded_at) "
            "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (key) DO UPDATE SET "
            "seq = nextval('idempotency_seq_seq'), command_type = excluded.command_type, "
            "command = excluded.command, result = excluded.result, "
            "rejection = excluded.rejection, recorded_at = excluded.recorded_at",
            (key, type(cmd).__name__, json.dumps(fields), result, record.rejection,
             record.recorded_at),
        )  # fmt: skip
        self.retention.wrote()


class PostgresResponseRecords:
    """HTTP response records in the store's database, written in the command's transaction."""

    def __init__(
        self,
        store: PostgresEventStore,
        *,
        ttl: float | None = DEFAULT_IDEMPOTENCY_RETENTION,
        max_keys: int | None = DEFAULT_IDEMPOTENCY_MAX_KEYS,
    ) -> None:
        self.store = store
        self.retention = PgPruner(store, "http_responses", ttl=ttl, max_keys=max_keys)

    def hold(self, key: str) -> bool:
        """Take ``key`` until the current transaction ends (a transaction-level advisory
        lock; never waits): False when another server process holds it, running a request
        with that key. Without it two processes given one key at once both applied it."""
        rows = self.store.query(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('http_responses:' || %s, 0))",
            (key,),
        )
        return bool(rows[0][0])

    def get(self, key: str) -> StoredResponse | None:
        rows = self.store.query(
            "SELECT fingerprint, status, body, headers, recorded_at FROM http_responses "
            "WHERE key = %s",
            (key,),
        )
        if not rows or self.retention.expired(rows[0][4]):
            return None
        fp, status, body, headers, _ = rows[0]
        return StoredResponse(fp, status, bytes(body), tuple(tuple(h) for h in json.loads(headers)))

    def put(self, key: str, response: StoredResponse) -> None:
        self.store.execute(
            "INSERT INTO http_responses (key, fingerprint, status, body, headers, recorded_at) "
            "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (key) DO UPDATE SET "
            "seq = nextval('http_responses_seq_seq'), fingerprint = excluded.fingerprint, "
            "status = excluded.status, body = excluded.body, headers = excluded.headers, "
            "recorded_at = excluded.recorded_at",
            (key, response.fingerprint, response.status, response.body,
             json.dumps(response.headers), self.store.clock.now()),
        )  # fmt: skip
        self.retention.wrote()


class PostgresCheckpoints:
    """Each projection's position and the dead letters parked, per boot of the store (the
    twin of :class:`~cqrs_lab.stores.durable_records.SqliteCheckpoints`, same options).

    ``passive`` names projections whose position this process never saves: the sagas a
    server only follows while ``cqrs-lab project`` workers run them (their row keeps what
    the last server that ran them had handled; see :mod:`cqrs_lab.stores.postgres_serve`).
    """

    def __init__(
        self,
        store: PostgresEventStore,
        on_save: Callable[[], object] | None = None,
        floors: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.store = store
        #: called at the end of every ``save``, in its transaction
        self.on_save = on_save
        #: projection -> a position it is known to have handled the log up to before
        self.floors = floors
        #: projections whose row this process never moves
        self.passive: frozenset[str] = frozenset()
        self._saved: dict[str, int] = {}
        self._letters: set[str] = set()
        self._previous = {n: int(p) for n, p, _ in store.query("SELECT * FROM checkpoints")}

    def previous(self) -> dict[str, int]:
        return dict(self._previous)

    def save(self, positions: Mapping[str, int], letters: list[DeadLetter]) -> None:
        """Record positions that moved and letters not seen before (call inside a batch);
        first, that the sessions holding this process's locks are still there."""
        self.store.check_held()
        boot = self.store.boot
        floors = self.floors() if self.floors is not None else {}
        for name, pos in positions.items():
            if name in self.passive:
                continue
            pos = max(pos, floors.get(name, 0))
            if self._saved.get(name) != pos:
                self.store.execute(
                    "INSERT INTO checkpoints VALUES (%s,%s,%s) ON CONFLICT (name) DO UPDATE "
                    "SET position = excluded.position, boot = excluded.boot",
                    (name, pos, boot),
                )
                self._saved[name] = pos
        for d in letters:
            if d.id not in self._letters:
                env = d.envelope
                self.store.execute(
                    "INSERT INTO dead_letters VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT DO NOTHING",
                    (boot, d.id, d.subscription, env.position, env.event_type, d.error,
                     d.attempts, d.parked_at),
                )  # fmt: skip
                self._letters.add(d.id)
        if self.on_save is not None:
            self.on_save()

    def history(self) -> list[dict[str, Any]]:
        """Every dead letter ever parked, across boots (oldest first)."""
        cols = ("boot", "id", "subscription", "position", "event_type", "error", "attempts",
                "parked_at")  # fmt: skip
        rows = self.store.query("SELECT * FROM dead_letters ORDER BY boot, parked_at")
        return [dict(zip(cols, row, strict=True)) for row in rows]


class PostgresTracking:
    """The :class:`~cqrs_lab.core.tracking.TrackingStore` port in table ``tracking``.

    Writes go through the store's current transaction: inside ``store.batch()`` a ``commit``
    lands with the read model's rows written there. Keys are stored as UTF-8 bytes, so any
    ``str`` that encodes (NUL included) is a key.
    """

    def __init__(self, store: PostgresEventStore) -> None:
        if not isinstance(store, PostgresEventStore):
            raise ConfigError(
                f"PostgresTracking(store={type(store).__name__}): pass a PostgresEventStore "
                f"(use InMemoryTracking for in-memory records)"
            )
        self.store = store

    def load(self, key: str) -> Progress:
        rows = self.store.query(
            "SELECT watermark, above FROM tracking WHERE key = %s",
            (_check_key(key, "load").encode(),),
        )
        if not rows:
            return Progress()
        record = Progress(int(rows[0][0]))
        record.above = set(json.loads(rows[0][1]))
        return record

    def commit(self, key: str, record: Progress) -> None:
        key = _check_key(key, "commit")
        above = _encode(key, record)  # checked before the write
        self.store.execute(
            "INSERT INTO tracking VALUES (%s,%s,%s) ON CONFLICT (key) DO UPDATE "
            "SET watermark = excluded.watermark, above = excluded.above",
            (key.encode(), record.watermark, above),
        )

    def reset(self, key: str) -> None:
        self.store.execute(
            "DELETE FROM tracking WHERE key = %s", (_check_key(key, "reset").encode(),)
        )

    def keys(self) -> list[str]:
        return sorted(bytes(r[0]).decode() for r in self.store.query("SELECT key FROM tracking"))
