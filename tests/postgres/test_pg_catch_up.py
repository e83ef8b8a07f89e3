"""``catch_up_tables``: a read model in PostgreSQL tables caught up effectively once, in
few transactions. The view below adds to its rows (an event applied twice shows), so every
test compares the table with the log's own count, after crashes at every point, a second
catch-up committing under the first, and positions tracked above the watermark."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from cqrs_lab.core import ANY, Envelope, EventRegistry, ManualClock, SequentialIds
from cqrs_lab.errors import ConfigError, LostSlot
from cqrs_lab.stores.postgres import PostgresEventStore
from cqrs_lab.stores.postgres_catch_up import CatchUp, catch_up_tables
from tests.contract.store_contract import Noted

PAGE = 10
EVENTS = 57  # six pages, the last one short


class Boom(Exception):
    pass


class Counts:
    """Events per stream, in table ``counts`` (added to, never set)."""

    def __init__(self, fail_fold: int | None = None, fail_flush: int | None = None) -> None:
        self.pending: dict[str, int] = {}
        self.folds = self.flushes = 0
        self.fail_fold, self.fail_flush = fail_fold, fail_flush
        self.during_fold: list[object] = []

    def fold(self, events: Sequence[Envelope]) -> None:
        self.folds += 1
        for n, env in enumerate(events):
            if self.folds == self.fail_fold and n == len(events) // 2:
                raise Boom(f"fold {self.folds}")
            self.pending[env.stream_id] = self.pending.get(env.stream_id, 0) + 1
        for hook in self.during_fold:
            hook()  # type: ignore[operator]

    def flush(self, store: PostgresEventStore) -> None:
        self.flushes += 1
        store.execute(
            "INSERT INTO counts SELECT * FROM unnest(%s::text[], %s::bigint[]) "
            "ON CONFLICT (stream) DO UPDATE SET n = counts.n + excluded.n",
            (list(self.pending), list(self.pending.values())),
        )
        if self.flushes == self.fail_flush:
            raise Boom(f"flush {self.flushes}")  # after the rows went in: they roll back
        self.pending.clear()

    def discard(self) -> None:
        self.pending.clear()


def _store(dsn: str, schema: str) -> PostgresEventStore:
    store = PostgresEventStore(dsn, ManualClock(1_700_000_000.0), SequentialIds("c"),
                               EventRegistry([Noted]), schema=schema, pool_size=2)  # fmt: skip
    store.execute("CREATE TABLE IF NOT EXISTS counts (stream text PRIMARY KEY, n bigint)")
    return store


def _log(store: PostgresEventStore) -> dict[str, int]:
    want: dict[str, int] = {}
    for k in range(EVENTS):
        stream = f"s{k % 7}"
        store.append(stream, [Noted(f"n{k}")], ANY)
        want[stream] = want.get(stream, 0) + 1
    return want


Logged = tuple[PostgresEventStore, dict[str, int]]


@pytest.fixture
def logged(pg_dsn: str, pg_schema: str) -> Iterator[Logged]:
    """A store on the test's schema with :func:`_log` written, and the counts it wrote."""
    store = _store(pg_dsn, pg_schema)
    try:
        yield store, _log(store)
    finally:
        store.close()


def _table(store: PostgresEventStore) -> dict[str, int]:
    return {s: int(n) for s, n in store.query("SELECT stream, n FROM counts")}


def _watermark(store: PostgresEventStore, key: str) -> int:
    return int(store.query("SELECT watermark FROM tracking WHERE key = %s", (key.encode(),))[0][0])


def test_commits_follow_the_interval_and_the_cap(logged: Logged) -> None:
    store, want = logged
    every_page = catch_up_tables(store, "a", Counts(), page=PAGE, commit_every=0)
    assert every_page == CatchUp(EVENTS, 6, EVENTS)
    assert _table(store) == want
    store.execute("TRUNCATE counts")
    one = catch_up_tables(store, "b", Counts(), page=PAGE, commit_every=60.0)
    assert one == CatchUp(EVENTS, 1, EVENTS)  # the interval never passed: once at the end
    assert _table(store) == want
    store.execute("TRUNCATE counts")
    ticks = itertools.count()  # each clock reading a second on: a commit every 2 pages
    timed = catch_up_tables(store, "c", Counts(), page=PAGE, commit_every=2,
                            clock=lambda: next(ticks))  # fmt: skip
    assert timed == CatchUp(EVENTS, 3, EVENTS)
    store.execute("TRUNCATE counts")
    capped = catch_up_tables(store, "d", Counts(), page=PAGE, commit_every=60.0, max_pending=25)
    assert capped.transactions == 2  # 30 events (three pages), then the last 27 at the end
    assert _table(store) == want and _watermark(store, "d") == EVENTS
    again = catch_up_tables(store, "d", Counts(), page=PAGE)
    assert again == CatchUp(0, 0, EVENTS) and _table(store) == want  # nothing twice


@pytest.mark.parametrize("where", ["fold", "flush"])
def test_a_crash_at_any_point_loses_and_repeats_nothing(logged: Logged, where: str) -> None:
    store, want = logged
    crashes = 0
    for n in range(1, 8):
        store.execute("TRUNCATE counts")
        store.execute("DELETE FROM tracking")
        key = f"{where}-{n}"
        view = Counts(**{f"fail_{where}": n})
        before = 0
        while True:  # the crashed catch-up is simply run again, as a restarted worker
            try:
                result = catch_up_tables(store, key, view, page=PAGE, commit_every=0)
                assert result.events == EVENTS - before  # from the record on
                break
            except Boom:
                crashes += 1
                assert not view.pending  # discarded: the next run folds from the record
                before = _watermark(store, key)
                assert sum(_table(store).values()) == before
        assert _table(store) == want, (where, n)
        assert _watermark(store, key) == EVENTS
    assert crashes == 6  # the 7th fold or flush never comes: six pages, one commit each


def test_a_second_catch_up_committing_underneath_stops_the_first(
    pg_dsn: str, pg_schema: str
) -> None:
    store, other = _store(pg_dsn, pg_schema), _store(pg_dsn, pg_schema)
    try:
        want = _log(store)
        first = Counts()
        ran: list[CatchUp] = []

        def rival() -> None:  # while the first folds its third page, after two commits
            if first.folds == 3 and not ran:
                ran.append(catch_up_tables(other, "v", Counts(), page=PAGE, commit_every=60))

        first.during_fold.append(rival)
        with pytest.raises(LostSlot, match="another catch-up of the same view"):
            catch_up_tables(store, "v", first, page=PAGE, commit_every=0)
        assert ran == [CatchUp(EVENTS - 2 * PAGE, 1, EVENTS)]
        assert _table(store) == want and _watermark(store, "v") == EVENTS
    finally:
        other.close()
        store.close()


def test_positions_tracked_above_the_watermark_are_not_folded_again(logged: Logged) -> None:
    store, want = logged
    done = [e for e in store.read_all(0) if e.position in (3, 12, 40)]
    for env in done:  # applied out of order by someone else, tracked above watermark 0
        want[env.stream_id] -= 1
    store.execute("INSERT INTO tracking VALUES (%s, 0, '[3, 12, 40]')", (b"above",))
    result = catch_up_tables(store, "above", Counts(), page=PAGE, commit_every=0)
    assert result.events == EVENTS - 3 and _table(store) == {s: n for s, n in want.items() if n}
    assert store.query("SELECT above FROM tracking WHERE key = %s", (b"above",)) == [("[]",)]


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"page": 0}, "page=0"),
        ({"commit_every": -1}, "commit_every=-1"),
        ({"commit_every": float("nan")}, "commit_every=nan"),
        ({"max_pending": 0}, "max_pending=0"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(
    pg_dsn: str, pg_schema: str, kwargs: dict[str, float], names: str
) -> None:
    store = _store(pg_dsn, pg_schema)
    try:
        with pytest.raises(ConfigError, match=names.replace("(", r"\(")):
            catch_up_tables(store, "x", Counts(), **kwargs)  # type: ignore[arg-type]
        assert store.query("SELECT count(*) FROM tracking") == [(0,)]
    finally:
        store.close()


def test_a_store_other_than_postgresql_is_refused(tmp_path: Path) -> None:
    from cqrs_lab.stores import SqliteEventStore

    store = SqliteEventStore(tmp_path / "log.db", ManualClock(0.0), SequentialIds("s"))
    try:
        with pytest.raises(ConfigError, match="store=SqliteEventStore"):
            catch_up_tables(store, "x", Counts())  # type: ignore[arg-type]
    finally:
        store.close()


_KILLED = """
import sys, time
from tests.postgres.test_pg_catch_up import Counts, _store
from cqrs_lab.stores.postgres_catch_up import catch_up_tables

class Slow(Counts):
    def fold(self, events):
        super().fold(events)
        time.sleep(0.05)  # a slow projection: killed while it folds, between commits

store = _store(sys.argv[1], sys.argv[2])
catch_up_tables(store, "killed", Slow(), page=5, commit_every=0.12)
"""


def test_a_catch_up_killed_mid_interval_loses_and_repeats_nothing(
    pg_dsn: str, pg_schema: str, logged: Logged
) -> None:
    store, want = logged
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, pg_dsn, pg_schema])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            rows = store.query("SELECT watermark FROM tracking WHERE key = 'killed'")
            if rows and int(rows[0][0]) > 0:
                break  # one commit in; the next page is being folded
            time.sleep(0.01)
        time.sleep(0.07)
        assert proc.poll() is None, "the catch-up ended before it could be killed"
    finally:
        proc.kill()
        proc.wait()
    left = _watermark(store, "killed")
    assert 0 < left < EVENTS
    assert sum(_table(store).values()) == left  # what committed is exactly the record
    result = catch_up_tables(store, "killed", Counts(), page=PAGE)
    assert result.events == EVENTS - left and _table(store) == want


def test_two_catch_ups_of_one_view_at_once_apply_every_event_once(
    pg_dsn: str, pg_schema: str
) -> None:
    """Two threads, each its own store, racing on one view from the start: each commit
    waits on the other's row lock or misses the fence; whatever each ends with, the table
    counts every event once."""
    import threading

    def race(store: PostgresEventStore, key: str, start: threading.Barrier,
             outcomes: list[object]) -> None:  # fmt: skip
        start.wait()
        try:
            outcomes.append(catch_up_tables(store, key, Counts(), page=3, commit_every=0))
        except LostSlot as lost:
            outcomes.append(lost)

    stores = [_store(pg_dsn, pg_schema) for _ in range(2)]
    try:
        want = _log(stores[0])
        for round_ in range(5):
            key = f"race-{round_}"
            stores[0].execute("TRUNCATE counts")
            start = threading.Barrier(2)
            outcomes: list[object] = []
            threads = [threading.Thread(target=race, args=(s, key, start, outcomes))
                       for s in stores]  # fmt: skip
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert len(outcomes) == 2
            assert _table(stores[0]) == want and _watermark(stores[0], key) == EVENTS
            done = sum(o.events for o in outcomes if isinstance(o, CatchUp))
            assert done <= EVENTS  # between them, never an event applied twice
    finally:
        for store in stores:
            store.close()
