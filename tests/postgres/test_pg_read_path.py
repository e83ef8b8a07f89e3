"""The catch-up read path of the PostgreSQL store (``postgres_reader.envelopes``).

``read_all`` builds a page's envelopes in one pass (one ``json.loads`` for the page, known
types built straight into their class); whatever that fast path does not handle (a type the
registry does not know, an older schema version, a payload that does not fit its class) must
come out exactly as the row-by-row path gives it, which ``read_positions`` still uses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cqrs_lab.core import ANY, Event, EventRegistry, ManualClock, RawEvent, SequentialIds
from cqrs_lab.errors import ConfigError
from cqrs_lab.stores.postgres import PostgresEventStore, Reader
from cqrs_lab.stores.postgres_reader import payload_builder
from tests.contract.store_contract import Noted


def test_a_mixed_page_reads_as_the_row_by_row_path(pg_dsn: str, pg_schema: str) -> None:
    registry = EventRegistry([Noted])
    store = PostgresEventStore(pg_dsn, ManualClock(), SequentialIds(), registry, schema=pg_schema)
    try:
        version = Noted.schema_version
        store.append("a", [Noted("one")], ANY, metadata={"tenant": "t1", "n": 2})
        store.append("a", [RawEvent("Noted", version, {"nope": 1})], ANY)  # does not fit
        store.append("b", [RawEvent("Unknown", 1, {"x": [1, 2]})], ANY, correlation_id="c")
        store.append("b", [Noted("two"), Noted("three")], ANY)
        page = store.read_all(0, 100)
        assert page == store.read_positions(1, 5)
        kinds = [type(env.payload).__name__ for env in page]
        assert kinds == ["Noted", "RawEvent", "RawEvent", "Noted", "Noted"]
        assert page[0].metadata == {"tenant": "t1", "n": 2}
        assert page[1].payload == RawEvent("Noted", version, {"nope": 1})
        assert page[2].correlation_id == "c"
        assert [env.position for env in store.read_all(2, 2)] == [3, 4]
    finally:
        store.close()


# -- the catch-up iterator (read_all_pages) -------------------------------------------------
def _store(dsn: str, schema: str, name: str, **kw: Any) -> PostgresEventStore:
    registry = EventRegistry([Noted])
    return PostgresEventStore(dsn, ManualClock(), SequentialIds(name), registry, schema=schema,
                              **kw)  # fmt: skip


def _mixed_log(store: PostgresEventStore, n: int) -> None:
    """``n`` appends over three streams: known events, a payload that does not fit, an unknown
    type, metadata on some."""
    for k in range(n):
        if k % 7 == 3:
            store.append("b", [RawEvent("Noted", Noted.schema_version, {"nope": k})], ANY)
        elif k % 5 == 4:
            store.append("c", [RawEvent("Unknown", 1, {"k": k})], ANY, correlation_id=f"c{k}")
        else:
            store.append(f"s{k % 3}", [Noted(f"n{k}"), Noted(f"m{k}")], ANY,
                         metadata={"k": k} if k % 2 else None)  # fmt: skip


@pytest.mark.parametrize("reader", ["safe", "naive"])
@pytest.mark.parametrize("pool_size", [1, 2])
def test_pages_are_read_alls_pages(
    pg_dsn: str, pg_schema: str, reader: Reader, pool_size: int
) -> None:
    """Pipelined (pool of 2) or page by page (pool of 1): exactly the pages successive
    read_all calls give, and together the whole log."""
    store = _store(pg_dsn, pg_schema, "p", reader=reader, pool_size=pool_size)
    try:
        _mixed_log(store, 20)
        for after in (0, 7):
            pages = list(store.read_all_pages(after, 4))
            assert [len(p) for p in pages[:-1]] == [4] * (len(pages) - 1)
            assert 1 <= len(pages[-1]) <= 4
            assert [e for p in pages for e in p] == store.read_all(after)
            start = after
            for page in pages:
                assert page == store.read_all(start, 4)
                start = page[-1].position
        assert list(store.read_all_pages(store.head_position, 4)) == []
    finally:
        store.close()


def test_pages_stop_at_the_horizon(pg_dsn: str, pg_schema: str) -> None:
    """A position taken and not committed holds the safe pages back, as it holds read_all."""
    slow, fast = _store(pg_dsn, pg_schema, "s"), _store(pg_dsn, pg_schema, "f")
    reader = _store(pg_dsn, pg_schema, "r", pool_size=2)
    try:
        fast.append("a", [Noted("1"), Noted("2"), Noted("3")], ANY)
        with slow.batch():
            (late,) = slow.append("w", [Noted("late")], ANY)  # position 4, not committed
            fast.append("a", [Noted("5"), Noted("6")], ANY)  # 5 and 6 committed
            pages = list(reader.read_all_pages(0, 2))
            assert [[e.position for e in p] for p in pages] == [[1, 2], [3]]
            assert late.position == 4
        pages = list(reader.read_all_pages(3, 2))
        assert [[e.position for e in p] for p in pages] == [[4, 5], [6]]
    finally:
        for store in (slow, fast, reader):
            store.close()


def test_pages_close_cleanly_on_early_exit(pg_dsn: str, pg_schema: str) -> None:
    """Leaving after the first page drops the query in flight and gives the connection
    back: the pool is idle again and the store reads and writes as before."""
    store = _store(pg_dsn, pg_schema, "e", pool_size=2)
    try:
        _mixed_log(store, 12)
        pages = store.read_all_pages(0, 3)
        first = next(pages)
        stats = store.pool.get_stats()
        assert stats["pool_available"] == stats["pool_size"] - 1  # the iterator holds one
        pages.close()
        stats = store.pool.get_stats()
        assert stats["pool_available"] == stats["pool_size"]
        assert first == store.read_all(0, 3)
        store.append("z", [Noted("after")], ANY)
        assert [e for p in store.read_all_pages(0, 5) for e in p] == store.read_all(0)
    finally:
        store.close()


def test_writing_in_the_loop_and_inside_a_batch(pg_dsn: str, pg_schema: str) -> None:
    """A catch-up writing each page's effect in a batch (the effectively-once shape) reads
    every event; inside a batch the pages are read on the batch's connection (a naive reader
    sees the batch's own append there; a safe one never reads past its own transaction)."""
    store = _store(pg_dsn, pg_schema, "w", pool_size=2)
    naive = _store(pg_dsn, pg_schema, "n", pool_size=2, reader="naive")
    try:
        _mixed_log(store, 10)
        store.execute("CREATE TABLE seen (position bigint PRIMARY KEY)")
        for page in store.read_all_pages(0, 4):
            with store.batch():
                store.execute("INSERT INTO seen SELECT unnest(%s::bigint[])",
                              ([e.position for e in page],))  # fmt: skip
        seen = [r[0] for r in store.query("SELECT position FROM seen ORDER BY 1")]
        assert seen == [e.position for e in store.read_all(0)]
        everything = store.read_all(0)
        with naive.batch():
            (mine,) = naive.append("x", [Noted("mine")], ANY)
            pages = list(naive.read_all_pages(0, 100))
            assert [e for p in pages for e in p] == [*everything, mine]
        with store.batch():
            store.append("y", [Noted("theirs")], ANY)
            assert [e for p in store.read_all_pages(0, 100) for e in p] == store.read_all(0)
    finally:
        store.close()
        naive.close()


@pytest.mark.parametrize(("after", "page"), [(-1, 10), (0, 0), (0, 1.5)])
def test_pages_refuse_bad_arguments_at_once(
    pg_dsn: str, pg_schema: str, after: int, page: Any
) -> None:
    store = _store(pg_dsn, pg_schema, "b")
    try:
        with pytest.raises(ConfigError, match="read_all_pages"):
            store.read_all_pages(after, page)  # raised by the call, not by the first next()
    finally:
        store.close()


# -- payload_builder: the decode's constructor agrees with cls(**data) -----------------------
def _domain_event_classes() -> list[type[Event]]:
    from cqrs_lab.domains.bank import messages as bank
    from cqrs_lab.domains.inventory import product

    found = {
        obj for mod in (bank, product) for obj in vars(mod).values()
        if isinstance(obj, type) and issubclass(obj, Event) and obj is not Event
    }  # fmt: skip
    return sorted(found, key=lambda c: c.__name__)


_SAMPLES = {"str": "s-1", "int": 7, "float": 2.5, "bool": True}


def _sample(cls: type[Event]) -> dict[str, Any]:
    """A payload for ``cls``: a value of its declared type for each field (None when it may
    be None)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = str(f.type)
        out[f.name] = None if "None" in kind else _SAMPLES[kind.split("[")[0].strip()]
    return out


def test_every_domain_event_is_built_as_its_constructor_builds_it() -> None:
    classes = _domain_event_classes()
    assert len(classes) >= 10  # the bank's and the inventory's events
    for cls in classes:
        data = _sample(cls)
        build = payload_builder(cls)
        assert build.__name__ == "build"  # the generated builder, not the constructor
        built = build(dict(data))
        assert type(built) is cls
        assert built == cls(**data) and hash(built) == hash(cls(**data))
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, next(iter(data)), "changed")  # still frozen
        for wrong in ({**data, "extra": 1}, dict(list(data.items())[1:])):
            with pytest.raises(TypeError) as by_builder:
                build(wrong)
            with pytest.raises(TypeError) as by_class:
                cls(**wrong)
            assert str(by_builder.value) == str(by_class.value)


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked(Event):
    amount: int

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError("amount must be >= 0")


@dataclasses.dataclass(frozen=True)
class _NoSlots(Event):
    text: str = "d"


def test_classes_the_fast_build_does_not_fit_use_their_constructor() -> None:
    """A __post_init__ still runs (and rejects); a class without slots still gets defaults."""
    assert payload_builder(_Checked).__name__ == payload_builder(_NoSlots).__name__ == "<lambda>"
    with pytest.raises(ValueError, match="amount"):
        payload_builder(_Checked)({"amount": -1})
    assert payload_builder(_Checked)({"amount": 3}) == _Checked(3)
    assert payload_builder(_NoSlots)({}) == _NoSlots("d")
    assert payload_builder(_NoSlots)({"text": "t"}) == _NoSlots("t")
