"""The catch-up's pages (``cqrs_lab.stores.postgres_page.Page``): decoded as they are iterated,
and always the envelopes ``read_all`` gives, field for field, including when the quick path
refuses an event in the middle of a page and the rest goes event by event."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest

from cqrs_lab.core import ANY, Event, EventRegistry, ManualClock, RawEvent, SequentialIds
from cqrs_lab.stores.postgres import PostgresEventStore
from cqrs_lab.stores.postgres_decode import decode_page, page_columns, page_extent
from cqrs_lab.stores.postgres_page import Page
from tests.contract.store_contract import Noted, Priced
from tests.postgres.test_pg_page_decode import _page_row, _permuted, _same_envelopes

PAGE = 12


@dataclass(frozen=True, slots=True)
class Tagged(Event):
    tags: list[str]


def _store(dsn: str, schema: str) -> PostgresEventStore:
    clock = ManualClock(1_700_000_000.0)
    return PostgresEventStore(dsn, clock, SequentialIds("p"), EventRegistry([Noted]),
                              schema=schema, pool_size=2)  # fmt: skip


def _log(store: PostgresEventStore) -> None:
    """Three pages of Noted events only (every page can take the quick path), with, in the
    first page, a payload that does not fit the class at event 5 and a NaN (which orjson
    refuses: the page is parsed text by text) at event 8, and in the second (parsed in one
    call) a payload that does not fit at its event 4; metadata and a correlation id on
    some."""
    for k in range(3 * PAGE - 2):
        if k in (5, PAGE + 4):
            event = RawEvent("Noted", Noted.schema_version, {"nope": k})
        elif k == 8:
            event = RawEvent("Noted", Noted.schema_version, {"text": math.nan})
        else:
            event = Noted(f"n{k}")
        store.append(f"s{k % 4}", [event], ANY, metadata={"k": k} if k % 3 == 0 else None,
                     correlation_id=f"c{k}" if k % 5 == 0 else None)  # fmt: skip


def test_pages_stream_the_envelopes_read_all_gives(pg_dsn: str, pg_schema: str) -> None:
    store = _store(pg_dsn, pg_schema)
    try:
        _log(store)
        pages = list(store.read_all_pages(0, PAGE))
        assert [len(p) for p in pages] == [PAGE, PAGE, PAGE - 2]
        assert all(isinstance(p, Page) for p in pages)
        assert all(p._builders is not None for p in pages)  # the quick path is tried
        assert [p._loads is None for p in pages] == [False, True, True]  # parsed in one call
        start = 0
        for page in pages:
            want = store.read_all(start, PAGE)
            _same_envelopes(list(page), want)
            _same_envelopes(list(page), want)  # a second pass builds them again, equal
            assert page == want and page == page and page != want[:-1]
            assert page.last_position == want[-1].position
            start = page.last_position
        first, want = pages[0], store.read_all(0, PAGE)
        assert isinstance(first[5].payload, RawEvent)  # did not fit: kept in stored form
        assert isinstance(pages[1][4].payload, RawEvent)
        assert [type(e.payload) for e in pages[1]].count(RawEvent) == 1
        assert math.isnan(first[8].payload.text)  # parsed by json, built by the quick builder
        _same_envelopes([first[k] for k in range(PAGE)], want)
        _same_envelopes([first[-1], first[-PAGE]], [want[-1], want[0]])
        _same_envelopes(first[3:9], want[3:9])
        _same_envelopes(first[::5], want[::5])
        assert first[9:3] == [] and first[-3:] == want[-3:]
        for bad in (PAGE, -PAGE - 1):
            with pytest.raises(IndexError, match="out of range"):
                first[bad]
        assert repr(first) == f"<Page of {PAGE} events, positions 1..{PAGE}>"
    finally:
        store.close()


def test_what_the_caller_throws_in_propagates(pg_dsn: str, pg_schema: str) -> None:
    """Only a failure to build an event switches a page to the event-by-event path: an
    exception thrown into the iterator between events is raised, not swallowed."""
    store = _store(pg_dsn, pg_schema)
    try:
        _log(store)
        page = next(store.read_all_pages(0, PAGE))
        events = iter(page)
        assert next(events).position == 1
        with pytest.raises(KeyError, match="from the caller"):
            events.throw(KeyError("from the caller"))
        events = iter(page)
        assert [e.position for e in events] == list(range(1, PAGE + 1))
    finally:
        store.close()


def test_a_page_parsed_in_one_call_keeps_the_position_order(pg_dsn: str, pg_schema: str) -> None:
    """The payloads parsed as one array are reordered and cut with the other columns: a page
    whose rows came out of order, or cut at the horizon, still pairs each payload with its
    event."""
    store = _store(pg_dsn, pg_schema)
    try:
        for k in range(PAGE):
            store.append(f"s{k % 3}", [Noted(f"n{k}")], ANY)
        want = store.read_all(0)
        row, encoding = _page_row(pg_dsn, pg_schema, PAGE)
        mixed = _permuted(row, [5, 0, 11, 3, 9, 1, 7, 2, 10, 4, 8, 6])
        reg, keep = store.registry, store.registry.decode_if_known
        for r in (row, mixed):
            assert page_columns(r, PAGE, encoding)[1] is None  # parsed in one call
            _same_envelopes(list(Page(r, PAGE, reg, keep, encoding)), want)
            _same_envelopes(decode_page(r, PAGE, reg, keep, encoding), want)
            held = (r[0], 5, *r[2:])  # the first position not below the horizon: 5
            assert page_extent(held) == (4, 4)
            _same_envelopes(list(Page(held, 4, reg, keep, encoding)), want[:4])
    finally:
        store.close()


def test_every_pass_decodes_payloads_of_its_own(pg_dsn: str, pg_schema: str) -> None:
    """Payloads parsed with the page go to one decode only: an upcaster that changes the dict
    it is given in place, and a caller that changes a payload's list, leave every other pass,
    and every index, as ``read_all`` gives them."""

    def to_cents(d: dict[str, Any]) -> dict[str, Any]:
        d["cents"] = d.pop("price") * 100  # in place
        return d

    def add_currency(d: dict[str, Any]) -> dict[str, Any]:
        d["currency"] = "EUR"
        return d

    registry = EventRegistry([Priced, Tagged])
    registry.upcaster("Priced", 1, to_cents)
    registry.upcaster("Priced", 2, add_currency)
    store = PostgresEventStore(pg_dsn, ManualClock(1.0), SequentialIds("u"), registry,
                               schema=pg_schema, pool_size=2)  # fmt: skip
    try:
        for k in range(1, 6):
            store.append("p", [RawEvent("Priced", 1, {"price": k})], ANY)
        for k in range(3):
            store.append("t", [Tagged([f"a{k}", f"b{k}"])], ANY)
        old, tags = next(store.read_all_pages(0, 5)), next(store.read_all_pages(5, 5))
        assert old._loads is None and tags._loads is None  # both parsed in one call
        for page, want in ((old, store.read_all(0, 5)), (tags, store.read_all(5, 5))):
            assert page[-1] == want[-1]  # an index before the first pass
            first = list(page)
            assert first == want
            for env in first:  # the caller changes what it got
                if isinstance(env.payload, Tagged):
                    env.payload.tags.append("changed")
            assert list(page) == want and page[0] == want[0] and page[1:3] == want[1:3]
    finally:
        store.close()
