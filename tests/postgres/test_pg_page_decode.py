"""A page of the log read as one row (``cqrs_lab.stores.postgres_decode``) against the
row-by-row path.

``read_all`` and ``read_all_pages`` decode a page from a dozen packed columns (NUL-joined
strings, big-endian numbers, per-event JSON parsed by orjson where it reads as ``json`` does);
``read_positions`` still reads row by row (``stored_envelope``). Every field of every envelope
must agree, value and exact type, whatever the payloads and ids hold.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import psycopg
import pytest

from cqrs_lab.core import ANY, Envelope, EventRegistry, ManualClock, RawEvent, SequentialIds
from cqrs_lab.stores.postgres import PostgresEventStore, Reader
from cqrs_lab.stores.postgres_decode import (
    _orjson_reads,
    decode_page,
    loads_array,
    page_extent,
    page_sql,
)
from cqrs_lab.stores.postgres_reader import read_page
from tests.contract.store_contract import Noted, Priced

TRICKY = 'quote " backslash \\ nul \x00 tab \t emoji \U0001f600 line-sep \u2028 é'


def _registry() -> EventRegistry:
    reg = EventRegistry([Noted, Priced])
    reg.upcaster("Priced", 1, lambda d: {"cents": d["price"] * 100})
    reg.upcaster("Priced", 2, lambda d: {**d, "currency": "EUR"})
    return reg


def _store(dsn: str, schema: str, name: str, clock: ManualClock, **kw: Any) -> PostgresEventStore:
    return PostgresEventStore(dsn, clock, SequentialIds(name), _registry(), schema=schema, **kw)


def _same(a: Any, b: Any, where: str) -> None:
    """Equal, and of exactly the same types all the way down (NaN equal to NaN, -0.0 apart
    from 0.0)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, float):
        assert repr(a) == repr(b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{k}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, where


def _same_envelopes(got: list[Envelope], want: list[Envelope]) -> None:
    assert [e.position for e in got] == [e.position for e in want]
    for g, w in zip(got, want, strict=True):
        for name in Envelope._fields:
            _same(getattr(g, name), getattr(w, name), f"position {w.position} {name}")


def _tricky_log(store: PostgresEventStore, clock: ManualClock) -> None:
    """Known, upcast, unknown and ill-fitting events; ids, payloads and metadata with quotes,
    backslashes, NUL, emoji; correlation and causation ids on some; integers beyond 64 bits,
    NaN, infinities and a lone surrogate (what orjson does not read as json does)."""
    clock.advance(1.0)  # a float with an integral value stays a float
    store.append("plain", [Noted("one")], ANY, metadata={"tenant": "t1", "n": 2},
                 correlation_id="c-1", causation_id="k-1")  # fmt: skip
    clock.advance(0.1 + 0.2)
    store.append("old-price", [RawEvent("Priced", 1, {"price": 3})], ANY)  # upcast on read
    store.append(f"s-{TRICKY.replace(chr(0), '')}", [Noted(TRICKY), Noted("")], ANY,
                 metadata={"why": TRICKY, "nested": {"list": [1, 2.5, None, True]}},
                 causation_id=TRICKY.replace("\x00", ""))  # fmt: skip
    store.append("odd", [RawEvent("Mystery", 1, {"s": TRICKY, "x": [1, -0.0, 1e300]})], ANY,
                 correlation_id="")  # fmt: skip
    store.append("odd", [RawEvent("Noted", Noted.schema_version, {"nope": 1})], ANY)
    store.append("odd", [RawEvent("Noted", 99, {"text": "from a newer writer"})], ANY)
    numbers = {"big": 2**70, "neg": -(2**64) - 1, "edge": 2**64 - 1, "id": "12345678901234567890"}
    store.append("nums", [RawEvent("Mystery", 1, numbers)], ANY)  # orjson: floats
    store.append("nums", [RawEvent("Mystery", 1, {"nan": math.nan, "inf": -math.inf})], ANY)
    store.append("nums", [RawEvent("Mystery", 2, {"lone": "\ud800", "pair": "\U0001f600"})], ANY)
    for k in range(20):  # a plain run, so that several pages follow
        clock.advance(1 / 3)
        store.append(f"run-{k % 3}", [Noted(f"n{k}")], ANY, metadata={"k": k} if k % 4 else None)


@pytest.mark.parametrize("reader", ["safe", "naive"])
def test_pages_read_every_field_as_the_row_by_row_path(
    pg_dsn: str, pg_schema: str, reader: Reader
) -> None:
    clock = ManualClock(1_700_000_000.0)
    store = _store(pg_dsn, pg_schema, "d", clock, reader=reader, pool_size=2)
    try:
        _tricky_log(store, clock)
        head = store.head_position
        want = store.read_positions(1, head)  # row by row
        assert len(want) == head == 30
        _same_envelopes(store.read_all(0), want)
        _same_envelopes([e for p in store.read_all_pages(0, 7) for e in p], want)
        _same_envelopes(store.read_all(3, 5), want[3:8])
        kinds = [type(e.payload).__name__ for e in want[:10]]
        assert kinds == ["Noted", "Priced", "Noted", "Noted", "RawEvent", "RawEvent",
                         "RawEvent", "RawEvent", "RawEvent", "RawEvent"]  # fmt: skip
        assert want[1].payload == Priced(300, "EUR") and want[1].schema_version == 3
        assert want[0].metadata == {"tenant": "t1", "n": 2}
        assert (want[0].correlation_id, want[0].causation_id) == ("c-1", "k-1")
        assert want[2].payload == Noted(TRICKY) and want[3].payload == Noted("")
        assert want[4].correlation_id == "" and want[5].correlation_id is None
        assert type(want[0].recorded_at) is float
        big = want[7].payload.data
        assert big["big"] == 2**70 and type(big["big"]) is int and big["edge"] == 2**64 - 1
        assert big["id"] == "12345678901234567890" and math.isnan(want[8].payload.data["nan"])
        assert want[9].payload.data == {"lone": "\ud800", "pair": "\U0001f600"}
    finally:
        store.close()


def test_what_orjson_refuses_json_reads_event_by_event(pg_dsn: str, pg_schema: str) -> None:
    """A page without long digit runs goes to orjson; an event it refuses (NaN, a lone
    surrogate) is read by json, the others still by orjson, all as the row-by-row path."""
    clock = ManualClock(2.0)
    store = _store(pg_dsn, pg_schema, "j", clock)
    try:
        store.append("a", [Noted("before")], ANY)
        store.append("a", [RawEvent("Mystery", 1, {"nan": math.nan, "inf": math.inf})], ANY)
        store.append("a", [RawEvent("Mystery", 1, {"lone": "\udc00x"})], ANY)
        store.append("a", [Noted("after")], ANY)
        row, _ = _page_row(pg_dsn, pg_schema, 10)
        assert _orjson_reads(row[5])  # so orjson is tried on every event of this page
        want = store.read_positions(1, 4)
        _same_envelopes(store.read_all(0), want)
        assert math.isnan(want[1].payload.data["nan"])
        assert want[2].payload.data["lone"] == "\udc00x"
    finally:
        store.close()


def _page_row(dsn: str, schema: str, limit: int, encoding: str | None = None) -> tuple[Any, str]:
    with psycopg.connect(dsn, autocommit=True, options=f"-c search_path={schema}") as conn:
        if encoding is not None:
            conn.execute(f"SET client_encoding TO '{encoding}'")
        row = read_page(conn, page_sql("safe"), 0, limit).fetchone()
        return row, conn.info.encoding


def _permuted(row: Any, order: list[int]) -> tuple[Any, ...]:
    """The page row with its events in another order (each column alike)."""
    out = list(row)
    for k in (2, 3, 4, 5):  # NUL-joined columns
        parts = row[k].split(b"\x00")
        out[k] = b"\x00".join(parts[i] for i in order)
    records = [row[6][32 * i : 32 * i + 32] for i in range(row[0])]
    out[6] = b"".join(records[i] for i in order)
    return tuple(out)


def test_a_page_out_of_order_and_cut_at_the_horizon_decodes_in_position_order(
    pg_dsn: str, pg_schema: str
) -> None:
    """The aggregates follow the subquery's order; were they ever not to, the page is put
    back in position order, and a horizon inside the page still cuts it at the right event."""
    clock = ManualClock(5.0)
    store = _store(pg_dsn, pg_schema, "o", clock)
    try:
        _tricky_log(store, clock)
        reg, keep = _registry(), store.registry.decode_if_known
        row, encoding = _page_row(pg_dsn, pg_schema, 12)
        assert page_extent(row) == (12, 12)
        straight = decode_page(row, 12, reg, keep, encoding)
        _same_envelopes(straight, store.read_positions(1, 12))
        order = [5, 0, 11, 3, 9, 1, 7, 2, 10, 4, 8, 6]
        mixed = _permuted(row, order)
        assert page_extent(mixed) == (12, 12)
        _same_envelopes(decode_page(mixed, 12, reg, keep, encoding), straight)
        for cut in (row, mixed):  # the first position not below the horizon: 5
            held = (cut[0], 5, *cut[2:])
            assert page_extent(held) == (4, 4)
            _same_envelopes(decode_page(held, 4, reg, keep, encoding), straight[:4])
    finally:
        store.close()


def test_a_client_encoding_other_than_utf8(pg_dsn: str, pg_schema: str) -> None:
    """Strings come in the connection's encoding: decoded with it, they are the same."""
    clock = ManualClock(1.0)
    store = _store(pg_dsn, pg_schema, "l", clock)
    try:
        store.append("café-1", [Noted("crème brûlée")], ANY, correlation_id="à")
        store.append("café-2", [RawEvent("Mystery", 1, {"é": "ü"})], ANY, metadata={"ï": 1})
        row, encoding = _page_row(pg_dsn, pg_schema, 10, encoding="LATIN1")
        assert encoding != "utf-8"
        got = decode_page(row, 2, _registry(), store.registry.decode_if_known, encoding)
        _same_envelopes(got, store.read_positions(1, 2))
    finally:
        store.close()


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '{"big": 18446744073709551616}',
        '{"neg": -9223372036854775809}',
        '{"edge": 18446744073709551615, "f": 0.30000000000000004, "e": 1e300, "z": -0.0}',
        '{"nan": NaN, "inf": Infinity, "minf": -Infinity}',
        '{"lone": "\\ud800", "pair": "\\ud83d\\ude00", "nul": "\\u0000"}',
        '{"s": "12345678901234567890"}',
        '{"dup": 1, "dup": 2}',
        '[1, "two", null, true, false, {"x": []}]',
    ],
)
def test_loads_array_reads_as_json_does(text: str) -> None:
    _same(loads_array(f"{text},{text}"), json.loads(f"[{text},{text}]"), text)


def test_the_orjson_guard_sends_long_digit_runs_to_json() -> None:
    assert _orjson_reads(b'{"a": 123456789012345678}')  # 18 digits: orjson reads them
    assert not _orjson_reads(b'{"a": 1234567890123456789}')
    assert not _orjson_reads(b'{"a": "x9999999999999999999"}')  # in a string: json, to be safe
