"""Both tracking stores pass the contract; SQLite's records commit with the store's batch.

``SqliteEventStore`` offers one transaction API usable from outside, ``batch()``: it commits
on exit, and a block that raises rolls back and leaves the store refusing work until a
restart. A transaction that never commits is also a process killed inside the batch, so the
atomicity tests kill one (a child process ends with ``os._exit`` mid-batch) and reopen the
file.
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from cqrs_lab.core import ManualClock, Progress, SequentialIds
from cqrs_lab.core.tracking import InMemoryTracking, TrackingStore
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores import SqliteEventStore, SqliteTracking
from tests.contract.tracking_contract import TrackingContract, as_tuple, progress

ROOT = Path(__file__).resolve().parents[2]


class TestInMemoryTracking(TrackingContract):
    def make(self) -> TrackingStore:
        return InMemoryTracking()


def _open(path: Path) -> SqliteTracking:
    return SqliteTracking(SqliteEventStore(path, ManualClock(), SequentialIds("e")))


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What another connection sees: only committed transactions."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


class TestSqliteTracking(TrackingContract):
    @pytest.fixture(autouse=True)
    def _files(self, tmp_path: Path) -> Iterator[None]:
        self.dir = tmp_path
        self.counter = itertools.count()
        self.opened: list[SqliteEventStore] = []
        yield
        for store in self.opened:
            store.close()

    def _track(self, path: Path) -> SqliteTracking:
        tracking = _open(path)
        self.opened.append(tracking.store)
        return tracking

    def make(self) -> SqliteTracking:
        # a new file each call: the hypothesis test calls make() once per example
        return self._track(self.dir / f"tracking{next(self.counter)}.db")

    def reopen(self, store: TrackingStore) -> SqliteTracking:
        assert isinstance(store, SqliteTracking)
        store.store.close()
        return self._track(Path(store.store.path))

    # -- the file --------------------------------------------------------------------------
    def test_the_table_holds_compact_sorted_json(self) -> None:
        tracking = self.make()
        tracking.commit("balances/p3", progress(7, 12, 9, 10))
        rows = _rows(Path(tracking.store.path), "SELECT key, watermark, above FROM tracking")
        assert rows == [("balances/p3", 7, "[9,10,12]")]

    def test_records_live_beside_the_log_and_survive_other_writers(self) -> None:
        tracking = self.make()
        tracking.commit("", progress(4))
        again = SqliteTracking(tracking.store)  # a second adapter on the same store
        assert as_tuple(again.load("")) == (4, [])
        tracking.store.execute("INSERT OR REPLACE INTO meta VALUES ('x', 'y')")
        assert as_tuple(self.reopen(tracking).load("")) == (4, [])

    # -- one transaction with the store ----------------------------------------------------
    def test_a_commit_in_a_batch_lands_with_the_batch(self) -> None:
        tracking = self.make()
        store, path = tracking.store, Path(tracking.store.path)
        store.execute("CREATE TABLE balances (account TEXT PRIMARY KEY, balance INTEGER)")
        with store.batch():
            store.execute("INSERT INTO balances VALUES ('a1', 5)")
            tracking.commit("balances", progress(1))
            assert as_tuple(tracking.load("balances")) == (1, [])  # read-your-writes
            assert _rows(path, "SELECT * FROM tracking") == []  # not committed yet
            assert _rows(path, "SELECT * FROM balances") == []
        assert _rows(path, "SELECT key, watermark FROM tracking") == [("balances", 1)]
        assert _rows(path, "SELECT * FROM balances") == [("a1", 5)]

    def test_a_batch_that_never_commits_leaves_the_last_committed_record(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "crash.db"
        first = _open(path)
        first.store.execute("CREATE TABLE balances (account TEXT PRIMARY KEY, balance INTEGER)")
        with first.store.batch():
            first.store.execute("INSERT INTO balances VALUES ('a1', 5)")
            first.commit("balances", progress(1))
        first.store.close()
        # a process writes the next unit inside a batch and is killed before it exits
        child = textwrap.dedent(f"""
            import os
            from cqrs_lab.core import ManualClock, Progress, SequentialIds
            from cqrs_lab.stores import SqliteEventStore, SqliteTracking
            store = SqliteEventStore({str(path)!r}, ManualClock(), SequentialIds("c"))
            tracking = SqliteTracking(store)
            with store.batch():
                store.execute("UPDATE balances SET balance = 9 WHERE account = 'a1'")
                tracking.commit("balances", Progress(2))
                tracking.commit("other", Progress(7))
                tracking.reset("balances/old")
                assert tracking.load("balances").watermark == 2
                os._exit(3)
        """)
        done = subprocess.run(
            [sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 3, done.stderr
        again = self._track(path)
        assert again.keys() == ["balances"]
        assert as_tuple(again.load("balances")) == (1, [])
        assert again.store.query("SELECT balance FROM balances") == [(5,)]

    def test_opening_inside_a_batch_does_not_commit_it_early(self) -> None:
        store = self.make().store
        path = Path(store.path)
        with store.batch():
            store.execute("INSERT OR REPLACE INTO meta VALUES ('x', 'y')")
            SqliteTracking(store).commit("k", Progress(1))
            assert _rows(path, "SELECT * FROM meta WHERE key = 'x'") == []
        assert _rows(path, "SELECT value FROM meta WHERE key = 'x'") == [("y",)]

    # -- validation ------------------------------------------------------------------------
    @pytest.mark.parametrize("key", [3, None, b"k", ("a",)])
    def test_a_key_that_is_not_a_str_is_named(self, key: object) -> None:
        tracking = self.make()
        for call in (
            lambda: tracking.load(key),  # type: ignore[arg-type]
            lambda: tracking.commit(key, Progress()),  # type: ignore[arg-type]
            lambda: tracking.reset(key),  # type: ignore[arg-type]
        ):
            with pytest.raises(ConfigError, match=r"key=.*a tracking key is a str"):
                call()
        assert tracking.keys() == []

    def test_a_key_that_cannot_be_stored_is_named(self) -> None:
        tracking = self.make()
        with pytest.raises(ConfigError, match="UTF-8"):
            tracking.commit("a\udc80", Progress())
        tracking.commit("fine", Progress(1))  # and the store still works
        assert tracking.keys() == ["fine"]

    @pytest.mark.parametrize(
        ("record", "message"),
        [
            (Progress(-1), r"watermark=-1; pass an int from 0"),
            (Progress(2**63), r"watermark=9223372036854775808"),
            (Progress(True), r"watermark=True"),
            (Progress(1.5), r"watermark=1.5"),  # type: ignore[arg-type]
            (progress(5, 5), r"above holds 5, not above the watermark 5"),
            (progress(5, 3, 8), r"above holds 3"),
            (progress(5, 7, "8"), r"above holds a non-int"),  # type: ignore[arg-type]
            ({"watermark": 1}, r"record=dict\): pass a Progress"),
        ],
    )
    def test_a_malformed_record_is_refused_and_nothing_is_written(
        self, record: Progress, message: str
    ) -> None:
        tracking = self.make()
        tracking.commit("k", progress(1, 3))
        with pytest.raises(ConfigError, match=message):
            tracking.commit("k", record)
        assert as_tuple(tracking.load("k")) == (1, [3])
        tracking.commit("k", progress(2))  # no transaction was left open
        assert _rows(Path(tracking.store.path), "SELECT watermark FROM tracking") == [(2,)]

    def test_only_a_sqlite_store_is_accepted(self) -> None:
        with pytest.raises(ConfigError, match="pass a SqliteEventStore"):
            SqliteTracking(InMemoryTracking())  # type: ignore[arg-type]
