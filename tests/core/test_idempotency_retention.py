"""Idempotency records are kept for one explicit retention, on every store (issue 15, item 3).

A retry within ``idempotency_retention`` seconds and within the ``idempotency_max_keys``
newest keys is applied once; a key past either bound is forgotten and answered as new. The
memory store used to forget an ``Idempotency-Key`` after 100,000 newer keys, silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cqrs_lab.core import Engine, InMemoryIdempotencyStore, ManualClock, SequentialIds
from cqrs_lab.core.bus import DEFAULT_IDEMPOTENCY_MAX_KEYS, DEFAULT_IDEMPOTENCY_RETENTION
from cqrs_lab.domains import bank
from cqrs_lab.errors import ConfigError
from cqrs_lab.http.config import ServerConfig, build_engine
from cqrs_lab.stores.durable_records import (
    ResponseRecords,
    SqliteIdempotencyStore,
    SqliteResponseRecords,
    StoredResponse,
)
from cqrs_lab.stores.sqlite import SqliteEventStore

ANSWER = StoredResponse("fp", 200, b"{}", ())


def test_the_default_retention_is_a_million_keys_and_a_day_on_every_store(
    tmp_path: Path,
) -> None:
    assert DEFAULT_IDEMPOTENCY_MAX_KEYS >= 1_000_000
    assert DEFAULT_IDEMPOTENCY_RETENTION == 24 * 3600
    config = ServerConfig()
    assert (config.idempotency_retention, config.idempotency_max_keys) == (
        DEFAULT_IDEMPOTENCY_RETENTION,
        DEFAULT_IDEMPOTENCY_MAX_KEYS,
    )
    clock = ManualClock()
    memory = build_engine(config)
    durable = build_engine(ServerConfig(store=f"sqlite:{tmp_path / 'lab.db'}"))
    kept = [
        Engine(clock=clock).bus.idempotency,
        InMemoryIdempotencyStore(clock),
        ResponseRecords(clock),
        memory.engine.bus.idempotency,
        memory.responses,
        durable.engine.bus.idempotency.retention,
        durable.responses.retention,
    ]
    for records in kept:
        assert (records.ttl, records.max_keys) == (24 * 3600, DEFAULT_IDEMPOTENCY_MAX_KEYS)
    durable.store.close()


def test_a_served_memory_store_keeps_a_key_past_150_000_newer_ones() -> None:
    responses = build_engine(ServerConfig()).responses
    responses.put("first", ANSWER)
    for i in range(150_000):  # 10 s of load were enough to forget it (100,000 newer keys)
        responses.put(f"k{i}", ANSWER)
    assert responses.get("first") == ANSWER


def test_a_retry_within_the_configured_count_is_applied_once_after_many_newer_keys() -> None:
    clock = ManualClock()
    engine = Engine(clock=clock)
    bank.install(engine, statements=False, saga=False)
    engine.bus.idempotency = InMemoryIdempotencyStore(clock, max_keys=1_000)
    engine.dispatch(bank.OpenAccount("a", "ann", 0))
    engine.dispatch(bank.Deposit("a", 5), idempotency_key="mine")
    for i in range(999):
        engine.dispatch(bank.Deposit("a", 1), idempotency_key=f"other-{i}")
        clock.advance(1.0)
    retry = engine.dispatch(bank.Deposit("a", 5), idempotency_key="mine")
    assert retry.replayed and engine.store.stream_version("account-a") == 1 + 1 + 999
    engine.dispatch(bank.Deposit("a", 1), idempotency_key="one-more")  # now 1,001 newer keys
    assert not engine.dispatch(bank.Deposit("a", 5), idempotency_key="mine").replayed
    assert engine.bus.idempotency.evicted == 2  # "mine", then "other-0" for the new "mine"


def test_response_records_expire_by_age_and_by_count() -> None:
    clock = ManualClock()
    records = ResponseRecords(clock, ttl=60, max_keys=3)
    records.put("old", ANSWER)
    clock.advance(30)
    for key in ("a", "b"):
        records.put(key, ANSWER)
    clock.advance(31)  # "old" is 61 s old, the others 31 s
    assert records.get("old") is None and records.get("a") == ANSWER
    for key in ("c", "d", "e"):
        records.put(key, ANSWER)
    assert [records.get(k) is not None for k in "abcde"] == [False, False, True, True, True]
    assert len(records) == 3


@pytest.mark.parametrize(("ttl", "max_keys"), [(0, 10), (-1.0, 10), (60, 0), (60, 2.5), (60, -3)])
def test_bad_retention_is_named(ttl: float, max_keys: int) -> None:
    with pytest.raises(ConfigError, match=r"ttl|max_keys"):
        InMemoryIdempotencyStore(ManualClock(), ttl=ttl, max_keys=max_keys)
    with pytest.raises(ConfigError, match=r"ttl|max_keys"):
        ResponseRecords(ManualClock(), ttl=ttl, max_keys=max_keys)


def test_bad_server_retention_is_named() -> None:
    with pytest.raises(ConfigError, match="idempotency_retention"):
        ServerConfig(idempotency_retention=0)
    with pytest.raises(ConfigError, match="idempotency_max_keys"):
        ServerConfig(idempotency_max_keys=0)


# -- SQLite: pruned in the file, by age and count ---------------------------------------------
def _sqlite(path: Path, clock: ManualClock) -> SqliteEventStore:
    return SqliteEventStore(path, clock, SequentialIds("e"), synchronous="OFF")


def _keys(store: SqliteEventStore, table: str) -> list[str]:
    return [k for (k,) in store.query(f"SELECT key FROM {table} ORDER BY rowid")]


def test_sqlite_response_records_are_pruned_in_the_file_by_count_and_age(
    tmp_path: Path,
) -> None:
    clock = ManualClock(1_000.0)
    store = _sqlite(tmp_path / "r.db", clock)
    records = SqliteResponseRecords(store, ttl=600, max_keys=100)
    for i in range(250):
        records.put(f"k{i}", ANSWER)
    assert records.get("k249") == ANSWER and records.get("k150") == ANSWER
    kept = _keys(store, "http_responses")
    assert 100 <= len(kept) <= 101 and kept[-100:] == [f"k{i}" for i in range(150, 250)]
    assert records.get("k0") is None
    store.close()
    clock.advance(601)
    again = _sqlite(tmp_path / "r.db", clock)
    reopened = SqliteResponseRecords(again, ttl=600, max_keys=100)
    assert reopened.get("k249") is None  # older than the retention: answered as new
    reopened.put("fresh", ANSWER)  # the next write prunes what expired
    assert _keys(again, "http_responses") == ["fresh"]


def test_sqlite_idempotency_records_are_pruned_and_kept_across_a_reopen(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "i.db"
    built = [_sqlite(path, clock)]

    def engine_on(store: SqliteEventStore) -> Engine:
        engine = Engine(clock=clock, store=store, registry=store.registry)
        bank.install(engine, statements=False, saga=False)
        engine.bus.idempotency = SqliteIdempotencyStore(
            store,
            lambda: {c.__name__: c for c in engine.bus.handlers},
            ttl=3600,
            max_keys=200,
            cache_size=10,
        )
        return engine

    engine = engine_on(built[0])
    engine.dispatch(bank.OpenAccount("a", "ann", 0))
    for i in range(500):
        engine.dispatch(bank.Deposit("a", 1), idempotency_key=f"k{i}")
    assert len(engine.bus.idempotency._cache) == 10  # the cache is bounded too
    assert 200 <= len(_keys(built[0], "idempotency")) <= 202
    built[0].close()
    again = _sqlite(path, clock)
    engine = engine_on(again)
    assert engine.dispatch(bank.Deposit("a", 1), idempotency_key="k499").replayed
    assert engine.dispatch(bank.Deposit("a", 1), idempotency_key="k300").replayed
    assert not engine.dispatch(bank.Deposit("a", 1), idempotency_key="k10").replayed
    clock.advance(3601)
    assert not engine.dispatch(bank.Deposit("a", 1), idempotency_key="k499").replayed
    again.close()


def test_a_file_whose_responses_have_no_age_is_migrated(tmp_path: Path) -> None:
    clock = ManualClock(50.0)
    store = _sqlite(tmp_path / "old.db", clock)
    store.execute(
        "CREATE TABLE http_responses (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
        "status INTEGER NOT NULL, body BLOB NOT NULL, headers TEXT NOT NULL)"
    )
    store.execute("INSERT INTO http_responses VALUES ('k', 'fp', 200, x'7b7d', '[]')")
    records = SqliteResponseRecords(store, ttl=60, max_keys=10)
    assert records.get("k") == ANSWER  # kept from the migration on, for the retention
    clock.advance(61)
    assert records.get("k") is None
    store.close()
