"""The PostgreSQL adapters (``pip install 'cqrs-lab[postgres]'``: psycopg 3, psycopg-pool, orjson).

A shared event store several processes append to and read from, with a gap-safe reader of
the global order (:mod:`cqrs_lab.stores.postgres_reader` explains the technique and its cost),
and the records kept beside the log, written in the same transactions.

>>> from cqrs_lab.stores.postgres import PostgresEventStore, PostgresTracking
>>> PostgresEventStore.__name__, PostgresTracking.__name__
('PostgresEventStore', 'PostgresTracking')

Typical use (needs a running server)::

    store = PostgresEventStore("postgresql://lab@127.0.0.1/lab", clock, ids, reader="safe")
    tracking = PostgresTracking(store)
    with store.batch():  # one transaction: the read model's rows and its tracking record
        store.execute("UPDATE balances SET balance = balance + %s WHERE account = %s", (5, "a1"))
        tracking.commit("balances", progress)

A read model in tables that folds in memory and writes its changes in few transactions
(the rows and the tracking record together, every 100 ms by default) catches up with
:func:`~cqrs_lab.stores.postgres_catch_up.catch_up_tables`.
"""

from __future__ import annotations

from cqrs_lab.stores.postgres_catch_up import CatchUp, TableView, catch_up_tables
from cqrs_lab.stores.postgres_reader import READERS, Reader
from cqrs_lab.stores.postgres_records import (
    PgPruner,
    PostgresCheckpoints,
    PostgresIdempotencyStore,
    PostgresResponseRecords,
    PostgresTracking,
)
from cqrs_lab.stores.postgres_store import PostgresEventStore

__all__ = [
    "READERS",
    "CatchUp",
    "PgPruner",
    "PostgresCheckpoints",
    "PostgresEventStore",
    "PostgresIdempotencyStore",
    "PostgresResponseRecords",
    "PostgresTracking",
    "Reader",
    "TableView",
    "catch_up_tables",
]
