"""The SQLite store passes the same contract as the in-memory one, on real files."""

from __future__ import annotations

import itertools
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cqrs_lab.core import NO_STREAM, EventRegistry, ManualClock, RawEvent, SequentialIds, Snapshot
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.sqlite import SqliteEventStore
from tests.contract.store_contract import EventStoreContract, Noted, Priced


def _count(path: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _files(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.counter = itertools.count()

    def make_store(
        self, clock: ManualClock, ids: SequentialIds, registry: EventRegistry
    ) -> SqliteEventStore:
        return SqliteEventStore(self.dir / f"store{next(self.counter)}.db", clock, ids, registry)

    def test_reopening_gives_back_the_log_in_stored_form(
        self, clock: ManualClock, registry: EventRegistry
    ) -> None:
        path = self.dir / "reopen.db"
        first = SqliteEventStore(path, clock, SequentialIds("e"), registry)
        first.append("p", [RawEvent("Priced", 1, {"price": 3})], NO_STREAM, correlation_id="c")
        first.append("s", [Noted("a"), Noted("b")], NO_STREAM, metadata={"traceparent": "t"})
        first.save_snapshot(Snapshot("s", 2, {"seen": 2}))
        first.append("o", [Noted("x")], NO_STREAM, outbox=[("t", {"n": 1})])
        first.close()
        again = SqliteEventStore(path, clock, SequentialIds("f"), registry)
        assert again.boot == first.boot + 1
        assert again.head_position == 4 and again.stream_version("s") == 2
        envs = again.read_all(0)
        assert [type(e.payload) for e in envs] == [Priced, Noted, Noted, Noted]  # decoded once
        assert envs[0].payload == Priced(300, "EUR") and envs[0].schema_version == 3
        assert [e.payload for e in again.read_stream("p")] == [Priced(300, "EUR")]
        assert [e.payload for e in again.read_stream("s")] == [Noted("a"), Noted("b")]
        assert envs[1].metadata == {"traceparent": "t"} and envs[0].correlation_id == "c"
        snap = again.load_snapshot("s")
        assert snap is not None and snap.version == 2 and snap.state == {"seen": 2}
        assert [m.payload for m in again.outbox_pending()] == [{"n": 1}]
        again.append("s", [Noted("c")], 2)  # versions continue from the file
        assert again.read_all(4)[0].position == 5

    def test_what_cannot_be_decoded_stays_in_stored_form(
        self, clock: ManualClock, registry: EventRegistry
    ) -> None:
        path = self.dir / "unknown.db"
        first = SqliteEventStore(path, clock, SequentialIds("e"), registry)
        first.append("s", [RawEvent("Gone", 1, {"x": 1}), Noted("a")], NO_STREAM)
        first.append("p", [RawEvent("Priced", 1, {"wrong": 1})], NO_STREAM)
        first.close()
        again = SqliteEventStore(path, clock, SequentialIds("f"), registry)
        payloads = [e.payload for e in again.read_all(0)]
        assert payloads == [
            RawEvent("Gone", 1, {"x": 1}),
            Noted("a"),
            RawEvent("Priced", 1, {"wrong": 1}),
        ]

    def test_a_batch_commits_together_and_uses_wal(
        self, clock: ManualClock, registry: EventRegistry
    ) -> None:
        store = self.make_store(clock, SequentialIds("e"), registry)
        assert store.query("PRAGMA journal_mode")[0][0] == "wal"
        with store.batch():
            store.append("a", [Noted("1")], NO_STREAM)
            store.append("b", [Noted("2")], NO_STREAM)
            assert _count(store.path) == 0  # not committed yet: another reader sees nothing
        assert _count(store.path) == 2

    def test_bad_synchronous_mode_is_named(self, clock: ManualClock) -> None:
        with pytest.raises(ConfigError, match="synchronous"):
            SqliteEventStore(self.dir / "x.db", clock, SequentialIds(), synchronous="sometimes")


def test_one_store_owns_the_file_a_second_is_refused_until_it_closes(tmp_path: Path) -> None:
    path = tmp_path / "owned.db"
    first = SqliteEventStore(path, ManualClock(), SequentialIds("a"))
    first.append("s", [Noted("x")], NO_STREAM)
    with pytest.raises(ConfigError, match="another store has this file open"):
        SqliteEventStore(path, ManualClock(), SequentialIds("b"))
    assert first.append("s", [Noted("y")], 1)[0].position == 2  # the owner is untouched
    first.close()
    second = SqliteEventStore(path, ManualClock(), SequentialIds("c"))
    assert second.head_position == 2
    second.close()
