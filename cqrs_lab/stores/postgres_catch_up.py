"""Catch a read model kept in PostgreSQL tables up with the log, effectively once, in few
transactions.

A read model in tables is effectively once when its rows and its tracking record commit in
one transaction: a crash rolls both back together, and the catch-up starts again from the
record. One transaction per page of 1,000 events is correct but slow to replay a long log:
on this 2-core machine a commit (with ``synchronous_commit`` on, a WAL flush) and the
page's upsert took about 1.7 ms, half of a W4 catch-up into tables. :func:`catch_up_tables`
therefore folds pages in memory (the :class:`TableView`'s ``fold``) and writes them
(``flush``) with the tracking record once ``commit_every`` seconds have passed since the
last commit or ``max_pending`` events wait, as Kafka Streams commits exactly-once work
every ``commit.interval.ms`` (100 ms there too). ``commit_every=0`` commits every page.
What a crash loses is the uncommitted work, at most one interval, which the next catch-up
redoes from the record.

Each transaction first moves the tracking record from the position this catch-up last
committed to the new one (``UPDATE ... WHERE watermark = last``, which also locks the row
until the commit): a second catch-up of the same view that committed in between makes the
update miss, this one's transaction rolls back and :class:`~cqrs_lab.errors.LostSlot`
says so; a concurrent one waits on the row lock, then misses. So two catch-ups of one view
never both apply an event. A position the record lists above its watermark (tracked out of
order by another writer) is not folded again.

Measured (W4, ``make bench``; the figure sits beside the peer's): see
``benchmarks/w4_postgres.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cqrs_lab.core import Envelope
from cqrs_lab.core.readmodel import Progress
from cqrs_lab.errors import ConfigError, LostSlot
from cqrs_lab.stores.postgres_records import PostgresTracking
from cqrs_lab.stores.postgres_store import PostgresEventStore
from cqrs_lab.stores.tracking import _check_key, _encode

__all__ = ["CatchUp", "TableView", "catch_up_tables"]


class TableView(Protocol):
    """A read model kept in PostgreSQL tables, in two steps: ``fold`` a page of events into
    pending changes in memory, ``flush`` them to the tables on the store's current
    transaction (and forget them); ``discard`` forgets them unwritten (the transaction
    failed, or the fold did halfway)."""

    def fold(self, events: Sequence[Envelope]) -> None: ...

    def flush(self, store: PostgresEventStore) -> None: ...

    def discard(self) -> None: ...


@dataclass(frozen=True)
class CatchUp:
    """What :func:`catch_up_tables` did: ``events`` folded, ``transactions`` committed, and
    the ``position`` the tracking record holds now."""

    events: int
    transactions: int
    position: int


def _check(store: object, page: int, commit_every: float, max_pending: int) -> None:
    if not isinstance(store, PostgresEventStore):
        raise ConfigError(
            f"catch_up_tables(store={type(store).__name__}): pass a PostgresEventStore (the "
            "tables and the tracking record live in its database)"
        )
    if type(page) is not int or page < 1:
        raise ConfigError(f"catch_up_tables(page={page!r}): events per read; pass an int >= 1")
    if not isinstance(commit_every, int | float) or not 0 <= commit_every < float("inf"):
        raise ConfigError(
            f"catch_up_tables(commit_every={commit_every!r}): seconds between commits; "
            "pass a finite number >= 0 (0 commits every page)"
        )
    if type(max_pending) is not int or max_pending < 1:
        raise ConfigError(
            f"catch_up_tables(max_pending={max_pending!r}): the most events folded before a "
            "commit; pass an int >= 1"
        )


def catch_up_tables(
    store: PostgresEventStore,
    key: str,
    view: TableView,
    *,
    page: int = 1000,
    commit_every: float = 0.1,
    max_pending: int = 100_000,
    clock: Callable[[], float] = time.monotonic,
) -> CatchUp:
    """Fold the log from ``view``'s tracking record (``key``) to its head into ``view``,
    committing its rows and the record together every ``commit_every`` seconds (on
    ``clock``) or ``max_pending`` events, and once at the end (see the module).

    An error (from ``fold``, ``flush`` or the database) rolls the open transaction back,
    calls ``view.discard()`` and propagates: the tables and the record stay as the last
    commit left them, and calling this again carries on from there. Needs a store with
    ``pool_size`` of 2 or more to read and write at once (it reads page by page otherwise).
    """
    _check(store, page, commit_every, max_pending)
    key = _check_key(key, "catch_up_tables")
    with store.batch():  # the record exists from here on, so every commit can fence on it
        store.execute(
            "INSERT INTO tracking VALUES (%s, 0, '[]') ON CONFLICT (key) DO NOTHING",
            (key.encode(),),
        )
    start = PostgresTracking(store).load(key)
    above = start.above
    committed = last = start.watermark
    events = transactions = pending = 0
    since = clock()
    pages = store.read_all_pages(last, page)
    try:
        for envs in pages:
            last = _last_position(envs)
            if above:
                envs = [e for e in envs if e.position not in above]
            if envs:
                view.fold(envs)
            pending += len(envs)
            if pending >= max_pending or clock() - since >= commit_every:
                _commit(store, key, view, committed, last, above)
                committed, events, pending = last, events + pending, 0
                transactions += 1
                since = clock()
        if last > committed:
            _commit(store, key, view, committed, last, above)
            committed, events = last, events + pending
            transactions += 1
    except BaseException:
        view.discard()
        raise
    finally:
        pages.close()
    return CatchUp(events, transactions, committed)


def _last_position(envs: Sequence[Envelope]) -> int:
    """A page's last position (a :class:`~cqrs_lab.stores.postgres_page.Page` says it
    without decoding; a list, read page by page, is decoded already)."""
    known = getattr(envs, "last_position", None)
    return known if isinstance(known, int) else envs[-1].position


def _commit(
    store: PostgresEventStore,
    key: str,
    view: TableView,
    committed: int,
    last: int,
    above: set[int],
) -> None:
    record = Progress(last)
    record.above = {p for p in above if p > last}
    left = _encode(key, record)  # as PostgresTracking writes it
    with store.batch():
        moved = store.execute_count(
            "UPDATE tracking SET watermark = %s, above = %s WHERE key = %s AND watermark = %s",
            (last, left, key.encode(), committed),
        )
        if moved != 1:
            raise LostSlot(
                f"catch_up_tables({key!r}): the tracking record left position {committed} "
                "under this catch-up (another catch-up of the same view committed); its "
                "uncommitted work is rolled back: run one catch-up per view"
            )
        view.flush(store)
