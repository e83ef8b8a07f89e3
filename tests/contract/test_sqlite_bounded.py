"""The SQLite store keeps only its newest events in memory, and its transactions are honest.

- The store used to mirror the whole log in memory; now it keeps each stream's version and
  the newest ``cache_events`` events, and reads the rest from the file. The contract runs
  again with a cache of two events, so every read goes through the file.
- ``batch()`` committed when its block raised; ``_write()`` left ``BEGIN IMMEDIATE`` open
  after an error that was not SQLite's; opening the HTTP response records inside a batch
  committed it (``executescript`` commits first).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cqrs_lab.core import NO_STREAM, EventRegistry, ManualClock, SequentialIds
from cqrs_lab.errors import ConfigError, StoreBroken
from cqrs_lab.stores.durable_records import (
    SqliteCheckpoints,
    SqliteIdempotencyStore,
    SqliteResponseRecords,
)
from cqrs_lab.stores.sqlite import SqliteEventStore
from tests.contract import test_sqlite_store
from tests.contract.store_contract import Noted


def _count(path: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


class TestSqliteEventStoreReadingTheFile(test_sqlite_store.TestSqliteEventStore):
    """The whole contract with a cache of two events: older events come from the file."""

    def make_store(
        self, clock: ManualClock, ids: SequentialIds, registry: EventRegistry
    ) -> SqliteEventStore:
        path = self.dir / f"small{next(self.counter)}.db"
        return SqliteEventStore(path, clock, ids, registry, cache_events=2)


def _store(path: Path, cache: int | None = None) -> SqliteEventStore:
    registry = EventRegistry([Noted])
    if cache is None:
        return SqliteEventStore(path, ManualClock(), SequentialIds("e"), registry)
    return SqliteEventStore(path, ManualClock(), SequentialIds("e"), registry, cache_events=cache)


def test_memory_holds_the_newest_events_only_and_reads_reach_the_whole_log(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "log.db", cache=10)
    for i in range(100):
        store.append(f"s{i % 3}", [Noted(str(i))], i // 3)
    assert 10 <= len(store._tail) <= 20  # not the 100 events
    texts = [e.payload.text for e in store.read_all(0)]
    assert texts == [str(i) for i in range(100)]
    assert [e.position for e in store.read_all(45, 10)] == list(range(46, 56))
    assert [e.payload.text for e in store.read_stream("s1", 30)] == [
        str(i) for i in range(91, 100, 3)
    ]
    store.close()
    again = _store(tmp_path / "log.db", cache=10)
    assert len(again._tail) == 10 and again.head_position == 100
    assert again.stream_version("s0") == 34 and again.stream_ids() == ["s0", "s1", "s2"]
    assert [e.payload for e in again.read_all(0)] == [Noted(str(i)) for i in range(100)]
    again.append("s0", [Noted("x")], 34)
    assert again.read_all(100)[0].position == 101


def test_bad_cache_size_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cache_events"):
        _store(tmp_path / "x.db", cache=0)


def test_a_batch_that_raises_is_rolled_back_and_the_store_asks_for_a_restart(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "b.db")
    store.append("s", [Noted("kept")], NO_STREAM)
    with pytest.raises(RuntimeError, match="handler bug"), store.batch():
        store.append("s", [Noted("lost")], 1)
        raise RuntimeError("handler bug")
    assert _count(store.path) == 1  # the block's append is not in the file
    with pytest.raises(StoreBroken, match="restart"):
        store.append("s", [Noted("next")], 1)
    store.close()
    again = _store(tmp_path / "b.db")
    assert [e.payload for e in again.read_all(0)] == [Noted("kept")]


def test_a_write_that_fails_outside_sqlite_is_rolled_back_and_the_store_goes_on(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "w.db")
    with pytest.raises(TypeError):  # the outbox payload is not JSON, found inside the write
        store.append("s", [Noted("a")], NO_STREAM, outbox=[("t", {"x": object()})])
    assert not store.db.in_transaction and _count(store.path) == 0
    assert store.head_position == 0
    store.append("s", [Noted("b")], NO_STREAM)  # was: cannot start a transaction within one
    assert _count(store.path) == 1


def test_opening_the_records_inside_a_batch_does_not_commit_it(tmp_path: Path) -> None:
    store = _store(tmp_path / "r.db")
    with store.batch():
        store.append("s", [Noted("a")], NO_STREAM)
        SqliteResponseRecords(store)
        SqliteIdempotencyStore(store, dict)
        SqliteCheckpoints(store)
        assert _count(store.path) == 0  # still one open transaction
    assert _count(store.path) == 1


def test_catching_up_reads_the_file_in_shared_decoded_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cqrs_lab.stores import sqlite_reads as module

    monkeypatch.setattr(module, "_CHUNK", 8)
    monkeypatch.setattr(module, "_CHUNKS_KEPT", 2)
    store = _store(tmp_path / "c.db", cache=5)
    for i in range(60):
        store.append("s", [Noted(str(i))], i)
    for after, limit in ((0, 3), (3, 10), (7, 1), (20, 25), (0, 60), (50, 9)):
        got = [e.payload.text for e in store.read_all(after, limit)]
        assert got == [str(i) for i in range(after, min(60, after + limit))], (after, limit)
    assert len(store._chunks) == 2  # whole chunks only, the two read last
    first = store.read_all(48, 3)[0]
    assert store.read_all(48, 3)[0] is first  # decoded once, shared by the next reader
