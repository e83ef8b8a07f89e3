"""W4's peer: the W1 ledger on ``eventsourcing`` 9.5.6 with its PostgreSQL persistence.

The aggregate and application of :mod:`benchmarks.peers.es_ledger` (its fastest settings:
aggregate cache of 1000, fast-forward off, no deepcopy), persisted by
``eventsourcing.postgres`` (psycopg 3; its application recorder takes an EXCLUSIVE lock on
the events table in each inserting transaction, which is how it keeps readers from skipping).
Each writer is a thread with an application of its own (one pooled connection); catch-up
reads the notification log with ``select_notifications`` and folds the mapped domain events.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg.sql import SQL, Identifier

from benchmarks.peers.es_ledger import Account, Bank
from benchmarks.workload_w1 import ACCOUNTS, OPENING_BALANCE

Command = tuple[int, str, int]


def env(port: int, dbname: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",  # the throwaway cluster trusts local connections
        "POSTGRES_POOL_SIZE": "1",
        "AGGREGATE_CACHE_MAXSIZE": "1000",
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }


def close(app: Bank) -> None:
    app.close()


def open_accounts(settings: dict[str, str]) -> list[UUID]:
    """The 1,000 accounts, saved in one transaction (not timed); their ids in index order."""
    app = Bank(env=settings)
    try:
        accounts = [Account(OPENING_BALANCE) for _ in range(ACCOUNTS)]
        app.save(*accounts)
        return [a.id for a in accounts]
    finally:
        close(app)


class Writer:
    """One writer: an application of its own, its accounts in its cache, its commands."""

    def __init__(
        self, settings: dict[str, str], ids: list[UUID], cmds: list[Command], group: int = 1
    ) -> None:
        self.app = Bank(env=settings)
        self.ids, self.cmds, self.group = ids, cmds, group
        for idx in sorted({c[0] for c in cmds}):  # fills the aggregate cache
            self.app.repository.get(ids[idx])
        self.accepted = self.refused = 0

    def run(self) -> None:
        if self.group > 1:
            self._run_grouped()
            return
        execute, ids = self.app.execute, self.ids
        for idx, kind, amount in self.cmds:
            if execute(ids[idx], kind, amount):
                self.accepted += 1
            else:
                self.refused += 1

    def _run_grouped(self) -> None:
        """``group`` commands decided on the cached aggregates, then one ``save`` (one
        transaction) of the aggregates they changed."""
        app, ids, cmds, group = self.app, self.ids, self.cmds, self.group
        for first in range(0, len(cmds), group):
            changed: dict[UUID, Any] = {}
            for idx, kind, amount in cmds[first : first + group]:
                account: Any = app.repository.get(ids[idx])
                if kind == "deposit":
                    account.deposit(amount)
                elif amount > account.balance:
                    self.refused += 1
                    continue
                else:
                    account.withdraw(amount)
                changed[account.id] = account
                self.accepted += 1
            if changed:
                app.save(*changed.values())

    def close(self) -> None:
        close(self.app)


def bulk_log(settings: dict[str, str], cmds: list[Command]) -> list[UUID]:
    """The openings and the events of ``cmds``, each account's saved at once, 50 accounts per
    transaction: the log a catch-up reads, written fast (not timed). The accounts' ids."""
    accounts: list[Any] = [Account(OPENING_BALANCE) for _ in range(ACCOUNTS)]
    for idx, kind, amount in cmds:
        account = accounts[idx]
        if kind == "deposit":
            account.deposit(amount)
        elif amount <= account.balance:
            account.withdraw(amount)
    app = Bank(env=settings)
    try:
        for first in range(0, ACCOUNTS, 50):
            app.save(*accounts[first : first + 50])
    finally:
        close(app)
    return [a.id for a in accounts]


def catch_up(settings: dict[str, str], page: int = 1000) -> tuple[float, int, dict[UUID, int]]:
    """Read the notification log from the start, folding {account: balance}:
    (seconds, events, balances)."""
    app = Bank(env=settings)
    try:
        select, to_domain = app.recorder.select_notifications, app.mapper.to_domain_event
        deposited, withdrawn = Account.Deposited, Account.Withdrawn  # type: ignore[attr-defined]
        view: dict[UUID, int] = {}
        events, position = 0, 1
        start = time.perf_counter()
        while notifications := select(position, page):
            for n in notifications:
                e: Any = to_domain(n)
                if isinstance(e, deposited):
                    view[e.originator_id] += e.amount
                elif isinstance(e, withdrawn):
                    view[e.originator_id] -= e.amount
                else:
                    view[e.originator_id] = e.balance
            events += len(notifications)
            position = notifications[-1].id + 1
        return time.perf_counter() - start, events, view
    finally:
        close(app)


class BalancesView(PostgresTrackingRecorder):
    """A materialised {account: balance} table written with its tracking record, one
    transaction per page (how ``eventsourcing`` keeps a PostgreSQL view exactly-once)."""

    def __init__(self, datastore: PostgresDatastore, table: str) -> None:
        super().__init__(datastore)
        self.table = table
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {0} (account uuid PRIMARY KEY, balance bigint)").format(
                Identifier(table)
            )
        )
        self.upsert = SQL(
            "INSERT INTO {0} SELECT * FROM unnest(%s::uuid[], %s::bigint[]) ON CONFLICT "
            "(account) DO UPDATE SET balance = {0}.balance + excluded.balance"
        ).format(Identifier(table))

    def apply(self, changes: dict[UUID, int], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.upsert, (list(changes), list(changes.values())))
            self._insert_tracking(curs, tracking)


def catch_up_into_table(
    settings: dict[str, str], table: str, page: int = 1000
) -> tuple[float, int]:
    """Catch up from the start into a PostgreSQL table, the view and its tracking record in
    one transaction per page. (seconds, events)."""
    app = Bank(env=settings)
    datastore = PostgresDatastore(
        settings["POSTGRES_DBNAME"], "127.0.0.1", settings["POSTGRES_PORT"], "postgres", ""
    )
    view = BalancesView(datastore, table)
    view.create_table()
    try:
        select, to_domain = app.recorder.select_notifications, app.mapper.to_domain_event
        deposited, withdrawn = Account.Deposited, Account.Withdrawn  # type: ignore[attr-defined]
        events, position = 0, 1
        start = time.perf_counter()
        while notifications := select(position, page):
            changes: dict[UUID, int] = {}
            for n in notifications:
                e: Any = to_domain(n)
                if isinstance(e, deposited):
                    change = e.amount
                elif isinstance(e, withdrawn):
                    change = -e.amount
                else:
                    change = e.balance
                changes[e.originator_id] = changes.get(e.originator_id, 0) + change
            position = notifications[-1].id + 1
            view.apply(changes, Tracking(table, position - 1))
            events += len(notifications)
        return time.perf_counter() - start, events
    finally:
        datastore.close()
        close(app)
