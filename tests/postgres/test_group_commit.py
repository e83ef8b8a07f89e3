"""The PostgreSQL store's group commit: deferred appends, sent in one round trip on exit."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from cqrs_lab.core import (
    ANY,
    NO_STREAM,
    Engine,
    EventRegistry,
    ManualClock,
    RawEvent,
    SequentialIds,
)
from cqrs_lab.errors import ConcurrencyError
from cqrs_lab.http import ServerConfig
from cqrs_lab.http.driver import Driver
from cqrs_lab.stores.postgres import PostgresEventStore
from tests.contract.store_contract import Noted


@pytest.fixture
def stores(pg_dsn: str, pg_schema: str) -> Iterator[tuple[PostgresEventStore, PostgresEventStore]]:
    registry = EventRegistry([Noted])
    a = PostgresEventStore(pg_dsn, ManualClock(), SequentialIds("a"), registry, schema=pg_schema)
    b = PostgresEventStore(pg_dsn, ManualClock(), SequentialIds("b"), registry, schema=pg_schema)
    yield a, b
    a.close()
    b.close()


def test_appends_are_visible_inside_and_committed_together(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    a, b = stores
    with a.group_commit(4):
        first = a.append("x", [Noted("1"), Noted("2")], NO_STREAM)
        a.append("y", [Noted("3")], NO_STREAM)
        # the group sees its own appends; another connection sees none before the commit
        assert a.stream_version("x") == 2
        assert [e.payload.text for e in a.read_stream("x", 1)] == ["2"]
        assert b.read_all(0) == [] and b.stream_version("x") == 0
        a.append("x", [Noted("4")], 2)
        assert a.head_position == 4
    assert [e.position for e in first] == [1, 2]
    # the rows were inserted in a subtransaction: their xmin is not the transaction's own id
    # (which was taken before the positions), as the gap-safe reader requires
    ids = b.query("SELECT DISTINCT xmin::text::bigint, tx::text::bigint FROM events")
    assert len(ids) == 1 and ids[0][0] > ids[0][1] % 2**32, ids
    log = b.read_all(0)
    assert [(e.stream_id, e.stream_version, e.payload.text) for e in log] == [
        ("x", 1, "1"), ("x", 2, "2"), ("y", 1, "3"), ("x", 3, "4"),
    ]  # fmt: skip
    assert [e.position for e in log] == [1, 2, 3, 4]


def test_a_stale_version_inside_the_group_fails_that_append_only(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    a, b = stores
    with a.group_commit():
        a.append("x", [Noted("1")], NO_STREAM)
        with pytest.raises(ConcurrencyError, match="'x'"):
            a.append("x", [Noted("late")], NO_STREAM)
        a.append("y", [Noted("2")], 0)
    assert [e.payload.text for e in b.read_all(0)] == ["1", "2"]


def test_a_stream_moved_by_another_writer_fails_the_group_on_exit_naming_it(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    a, b = stores
    b.append("x", [Noted("0")], NO_STREAM)
    with pytest.raises(ConcurrencyError) as caught, a.group_commit():
        a.append("y", [Noted("1")], NO_STREAM)
        a.append("x", [Noted("stale")], NO_STREAM)  # b is at version 1: found on exit
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == ("x", 0, 1)
    assert [e.payload.text for e in b.read_all(0)] == ["0"]  # nothing of the group committed
    with a.group_commit():  # the store is usable again
        a.append("x", [Noted("1")], 1)
    assert [e.stream_version for e in b.read_stream("x")] == [1, 2]


def test_any_and_outbox_keep_each_streams_positions_increasing(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    a, b = stores
    b.append("y", [Noted("0")], NO_STREAM)
    with a.group_commit(8):
        a.append("x", [Noted("1")], NO_STREAM)
        y = a.append("y", [Noted("2")], ANY, outbox=[("topic", {"k": 1})])  # reads y's version
        x = a.append("x", [Noted("3")], 1)
    assert y[0].stream_version == 2 and x[0].position > y[0].position
    log = b.read_all(0)
    streams = [(e.stream_id, e.stream_version) for e in log]
    assert streams == [("y", 1), ("x", 1), ("y", 2), ("x", 2)]
    assert [(m.topic, m.payload, m.position) for m in b.outbox_pending()] == [
        ("topic", {"k": 1}, y[0].position)
    ]
    # unused reserved positions are holes, never reused: the next append is above them
    nxt = b.append("z", [Noted("4")], NO_STREAM)
    assert nxt[0].position > log[-1].position


def test_the_driver_answers_the_command_that_lost_the_race_and_commits_the_others(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    a, b = stores
    engine = Engine(clock=a.clock, ids=a.ids, store=a, registry=a.registry)
    config = ServerConfig(domain="cqrs_lab.domains.inventory")
    driver = Driver(engine, config, group=a.batch, group_commit=a.group_commit)
    b.append("y", [Noted("other process")], NO_STREAM)

    def append(stream: str, text: str) -> Callable[[], int]:
        return lambda: a.append(stream, [Noted(text)], NO_STREAM)[0].stream_version

    async def three() -> list[object]:
        await driver.start()  # its tasks run at the next await: the three form one group
        futs = [driver.submit(append(s, s)) for s in ("x", "y", "z")]  # "y" is stale
        out = await asyncio.gather(*futs, return_exceptions=True)
        await driver.stop()
        return out

    x, y, z = asyncio.run(three())
    assert x == 1 and z == 1
    assert isinstance(y, ConcurrencyError) and y.stream_id == "y" and y.actual == 1
    assert driver.regrouped == 1
    assert [(e.stream_id, e.payload.text) for e in b.read_all(0)] == [
        ("y", "other process"), ("x", "x"), ("z", "z"),
    ]  # fmt: skip


def test_a_group_run_again_one_by_one_counts_each_command_once(pg_dsn: str, pg_schema: str) -> None:
    """The rolled-back group's commands ran once before their rerun: the engine's outcome
    counters and latency histogram count each command once, as what was committed."""
    from cqrs_lab.core import install
    from cqrs_lab.domains import bank

    stores = []
    engines = []
    for prefix in ("a", "b"):
        registry = EventRegistry()
        store = PostgresEventStore(
            pg_dsn, ManualClock(), SequentialIds(prefix), registry, schema=pg_schema
        )
        engine = Engine(clock=ManualClock(), ids=SequentialIds(prefix), store=store,
                        registry=registry)  # fmt: skip
        install(engine, bank.domain, views=[])
        stores.append(store)
        engines.append(engine)
    a, b = engines
    try:
        for account in ("x", "y", "z"):
            a.dispatch(bank.OpenAccount(account, account, 100))
        config = ServerConfig(domain="cqrs_lab.domains.bank")
        driver = Driver(a, config, group=stores[0].batch, group_commit=stores[0].group_commit)
        accepted = a.metrics.counter("commands_total", outcome="accepted")
        latency = a.metrics.histogram("command_latency_seconds")
        before = accepted.value, latency.count
        race = [True]

        def deposit(account: str) -> Callable[[], int]:
            def run() -> int:
                version = a.dispatch(bank.Deposit(account, 1)).stream_version
                if account == "y" and race:  # another process moves "y" before a commits
                    race.pop()
                    b.dispatch(bank.Deposit("y", 5))
                return version

            return run

        async def three() -> list[object]:
            await driver.start()  # its tasks run at the next await: the three form one group
            futs = [driver.submit(deposit(s)) for s in ("x", "y", "z")]
            out = await asyncio.gather(*futs, return_exceptions=True)
            await driver.stop()
            return out

        assert asyncio.run(three()) == [2, 3, 2]  # "y" decided again on its current version
        assert driver.regrouped == 1
        assert (accepted.value, latency.count) == (before[0] + 3, before[1] + 3)
        assert a.metrics.counter("commands_total", outcome="conflict").value == 0
    finally:
        for store in stores:
            store.close()


def _group_writer(dsn: str, schema: str, writer: int, events: int) -> None:
    """Group commits of 1-4 appends of 1-4 events to the writer's own streams, pausing at
    random between taking positions and sending the rows (the window a skip needs)."""
    rng = random.Random(writer)
    store = PostgresEventStore(
        dsn, ManualClock(), SequentialIds(f"w{writer}-"), schema=schema, pool_size=1
    )
    versions = [0] * 8
    written = 0
    try:
        while written < events:
            with store.group_commit(8):
                for _ in range(rng.randint(1, 4)):
                    s = rng.randrange(8)
                    k = rng.randint(1, 4)
                    new = [RawEvent("Ticked", 1, {"n": written + i}) for i in range(k)]
                    store.append(f"w{writer}-s{s}", new, versions[s])
                    versions[s] += k
                    written += k
                    if rng.random() < 0.3:
                        time.sleep(rng.uniform(0.0005, 0.003))
    finally:
        store.close()


def _follow(store: PostgresEventStore, writing: threading.Event, seen: list[int]) -> None:
    after = 0
    while True:
        envs = store.read_all(after, 500)
        seen.extend(e.position for e in envs)
        if envs:
            after = envs[-1].position
        elif not writing.is_set() and after >= store.head_position:
            return
        else:
            time.sleep(0.001)


def test_group_commits_are_gap_safe_and_the_naive_reader_skips(pg_dsn: str, pg_schema: str) -> None:
    """4 writers in group commits, a safe and a naive follower tailing the log meanwhile: the
    safe one reads every committed event (positions reserved early, rows sent late), the
    naive one misses some (this test can see a skip)."""
    readers = [
        PostgresEventStore(pg_dsn, ManualClock(), SequentialIds("r"), schema=pg_schema,
                           reader=reader, pool_size=1)
        for reader in ("safe", "naive")
    ]  # fmt: skip
    seen: list[list[int]] = [[], []]
    writing = threading.Event()
    writing.set()
    followers = [
        threading.Thread(target=_follow, args=(r, writing, s))
        for r, s in zip(readers, seen, strict=True)
    ]
    writers = [
        threading.Thread(target=_group_writer, args=(pg_dsn, pg_schema, w, 2500)) for w in range(4)
    ]
    for t in followers + writers:
        t.start()
    for t in writers:
        t.join(120)
    writing.clear()
    for t in followers:
        t.join(60)
    committed = [int(r[0]) for r in readers[0].query("SELECT position FROM events ORDER BY 1")]
    for r in readers:
        r.close()
    assert len(committed) >= 4 * 2500
    safe, naive = seen
    assert safe == committed  # every event, once, in order
    skipped = set(committed) - set(naive)
    assert skipped, "the naive reader missed nothing: the test no longer opens the window"


def test_a_streams_tail_is_its_version_and_last_position_in_one_query(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    """What a read's ETag needs (its version, and whether the read model has reached its
    last event), committed or appended in the open group."""
    a, b = stores
    assert a.stream_tail("t") == (0, 0)
    a.append("t", [Noted("1"), Noted("2")], NO_STREAM)
    b.append("u", [Noted("3")], NO_STREAM)
    assert a.stream_tail("t") == (2, 2) and a.stream_tail("u") == (1, 3)
    with a.group_commit(2):
        envs = a.append("t", [Noted("4")], 2)
        assert a.stream_tail("t") == (3, envs[0].position)
        assert b.stream_tail("t") == (2, 2)  # not committed yet
    assert b.stream_tail("t") == (3, envs[0].position)
