"""W4's lab side: the W1 ledger on :class:`~cqrs_lab.stores.postgres.PostgresEventStore`.

Each writer is a thread with its own store of one connection; it owns the accounts with
``idx % writers == its number`` and keeps them in memory as an aggregate cache would (loaded
from their streams before the clock starts, as the peer's cache is), decides each command
and appends its one event with the expected version, one transaction per command (or
``group`` commands per transaction in the store's ``group_commit()``, as the server's
writer does). Followers (threads, one
connection each) tail the global order with the safe or the naive reader and record each
event's lag from its append to its application.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.workload_w1 import ACCOUNTS, OPENING_BALANCE
from cqrs_lab.core import CallableClock, EventRegistry, SequentialIds
from cqrs_lab.domains.bank.messages import AccountOpened, Deposited, Withdrawn
from cqrs_lab.stores.postgres import PostgresEventStore, Reader
from cqrs_lab.stores.postgres_catch_up import catch_up_tables

REGISTRY = EventRegistry([AccountOpened, Deposited, Withdrawn])
CLOCK = CallableClock(time.monotonic)  # one clock for every thread and process of the machine
Command = tuple[int, str, int]


def sid(idx: int) -> str:
    return f"account-{idx}"


def open_store(
    dsn: str, prefix: str, *, reader: Reader = "safe", pool_size: int = 1
) -> PostgresEventStore:
    return PostgresEventStore(
        dsn, CLOCK, SequentialIds(prefix), REGISTRY, reader=reader, pool_size=pool_size
    )


def open_accounts(dsn: str) -> None:
    """The 1,000 accounts, opened in index order in one transaction (not timed)."""
    store = open_store(dsn, "o")
    try:
        with store.batch():
            for idx in range(ACCOUNTS):
                store.append(sid(idx), [AccountOpened(str(idx), "", OPENING_BALANCE)], 0)
    finally:
        store.close()


def fold(events: Sequence[Any], balances: dict[str, int]) -> None:
    for e in events:
        if type(e) is Deposited:
            balances[e.account_id] += e.amount
        elif type(e) is Withdrawn:
            balances[e.account_id] -= e.amount
        else:
            balances[e.account_id] = e.opening_balance


class Writer:
    """One writer: its own connection, its accounts cached, its commands."""

    def __init__(self, dsn: str, number: int, cmds: list[Command], group: int = 1) -> None:
        self.store = open_store(dsn, f"w{number}-")
        self.cmds, self.group = cmds, group
        self.balances: dict[str, int] = {}
        self.versions: dict[int, int] = {}
        for idx in sorted({c[0] for c in cmds}):  # load, as the peer's cache does
            stream = self.store.read_stream(sid(idx))
            fold([env.payload for env in stream], self.balances)
            self.versions[idx] = len(stream)
        self.accepted = self.refused = 0

    def run(self) -> None:
        store, cmds, group = self.store, self.cmds, self.group
        for first in range(0, len(cmds), group):
            # group commit: the transaction's appends in one round trip (as the server's
            # writer does); one command per transaction: the plain batch
            with store.group_commit(group) if group > 1 else store.batch():
                for idx, kind, amount in cmds[first : first + group]:
                    key = str(idx)
                    if kind == "deposit":
                        event: Any = Deposited(key, amount)
                        self.balances[key] += amount
                    elif amount > self.balances[key]:
                        self.refused += 1
                        continue
                    else:
                        event = Withdrawn(key, amount)
                        self.balances[key] -= amount
                    store.append(sid(idx), [event], self.versions[idx])
                    self.versions[idx] += 1
                    self.accepted += 1

    def close(self) -> None:
        self.store.close()


def split(cmds: list[Command], writers: int) -> list[list[Command]]:
    """The spec's split: writer ``k`` takes the commands on accounts ``idx % writers == k``."""
    return [[c for c in cmds if c[0] % writers == k] for k in range(writers)]


def run_threads(targets: Sequence[Callable[[], None]]) -> float:
    """Start one thread per target together; the seconds until the last has finished."""
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in targets]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def write(dsn: str, cmds: list[Command], writers: int, group: int = 1) -> tuple[float, int, int]:
    """(seconds, accepted, refused) for ``cmds`` split over ``writers`` threads."""
    ws = [Writer(dsn, k, part, group) for k, part in enumerate(split(cmds, writers))]
    try:
        seconds = run_threads([w.run for w in ws])
    finally:
        for w in ws:
            w.close()
    return seconds, sum(w.accepted for w in ws), sum(w.refused for w in ws)


def bulk_log(dsn: str, cmds: list[Command]) -> None:
    """The events of ``cmds`` (after the openings), each account's in one append, 50 accounts
    per transaction: the log a catch-up reads, written fast (not timed)."""
    balances = dict.fromkeys(range(ACCOUNTS), OPENING_BALANCE)
    per: dict[int, list[Any]] = {idx: [] for idx in range(ACCOUNTS)}
    for idx, kind, amount in cmds:
        if kind == "deposit":
            balances[idx] += amount
            per[idx].append(Deposited(str(idx), amount))
        elif amount <= balances[idx]:
            balances[idx] -= amount
            per[idx].append(Withdrawn(str(idx), amount))
    store = open_store(dsn, "b")
    try:
        for first in range(0, ACCOUNTS, 50):
            with store.batch():
                for idx in range(first, first + 50):
                    store.append(sid(idx), per[idx], 1)
    finally:
        store.close()


def catch_up(dsn: str, page: int = 1000) -> tuple[float, int, dict[str, int]]:
    """Read the whole log in order through the safe reader's catch-up iterator
    (``read_all_pages``: the next page's query runs while this one is folded), folding
    {account: balance}: (seconds, events, balances)."""
    store = open_store(dsn, "c", pool_size=2)  # the iterator's connection and a spare
    balances: dict[str, int] = {}
    events = 0
    try:
        start = time.perf_counter()
        for envs in store.read_all_pages(0, page):
            fold([env.payload for env in envs], balances)
            events += len(envs)
        return time.perf_counter() - start, events, balances
    finally:
        store.close()


UPSERT = (
    "INSERT INTO {table} SELECT * FROM unnest(%s::text[], %s::bigint[]) ON CONFLICT (account) "
    "DO UPDATE SET balance = {table}.balance + excluded.balance"
)


class BalancesTable:
    """The balances read model as a :class:`~cqrs_lab.stores.postgres_catch_up.TableView`:
    pages folded into {account: change} in memory (an opening adds its balance to a row that
    starts at 0), written as one upsert per commit."""

    def __init__(self, table: str) -> None:
        self.upsert = UPSERT.format(table=table)
        self.pending: dict[str, int] = {}

    def fold(self, events: Sequence[Any]) -> None:
        pending = self.pending
        for env in events:
            e = env.payload
            t = type(e)
            if t is Deposited:
                change = e.amount
            elif t is Withdrawn:
                change = -e.amount
            else:
                change = e.opening_balance
            pending[e.account_id] = pending.get(e.account_id, 0) + change

    def flush(self, store: PostgresEventStore) -> None:
        store.execute(self.upsert, (list(self.pending), list(self.pending.values())))
        self.pending = {}

    def discard(self) -> None:
        self.pending = {}


def catch_up_into_table(
    dsn: str, table: str, page: int = 1000, commit_every: float = 0.1
) -> tuple[float, int, int]:
    """Catch up from position 0 into a PostgreSQL table {account: balance}, effectively-once,
    with the lab's ``catch_up_tables``: the table's changes and the tracking record in one
    transaction every ``commit_every`` seconds (0: every page). (seconds, events,
    transactions)."""
    store = open_store(dsn, "v", pool_size=2)  # the reading connection and the writing one
    store.execute(f"CREATE TABLE {table} (account text PRIMARY KEY, balance bigint NOT NULL)")
    try:
        start = time.perf_counter()
        done = catch_up_tables(store, table, BalancesTable(table), page=page,
                               commit_every=commit_every)  # fmt: skip
        return time.perf_counter() - start, done.events, done.transactions
    finally:
        store.close()


@dataclass
class Follower:
    """Tails the log with one reader, as a polling projection worker does."""

    dsn: str
    reader: Reader
    start: int
    lags: list[float] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)

    def follow(self, writing: threading.Event, head: list[int]) -> None:
        store = open_store(self.dsn, "f", reader=self.reader)
        after = self.start
        try:
            while True:
                envs = store.read_all(after, 1000)
                now = time.monotonic()
                for env in envs:
                    self.lags.append(now - env.recorded_at)
                    self.seen.append(env.position)
                if envs:
                    after = envs[-1].position
                elif not writing.is_set() and after >= head[0]:
                    break
                else:
                    time.sleep(0.002)
        finally:
            store.close()


def lag(dsn: str, cmds: list[Command], writers: int) -> tuple[list[Follower], float, list[int]]:
    """Write ``cmds`` with ``writers`` threads while a safe and a naive follower tail the
    log from its head: (followers, writing seconds, the positions committed meanwhile)."""
    probe = open_store(dsn, "p")
    start = probe.head_position
    followers = [Follower(dsn, "safe", start), Follower(dsn, "naive", start)]
    writing, head = threading.Event(), [0]
    writing.set()
    threads = [threading.Thread(target=f.follow, args=(writing, head)) for f in followers]
    for t in threads:
        t.start()
    try:
        seconds, _, _ = write(dsn, cmds, writers)
    finally:
        head[0] = probe.head_position
        writing.clear()
        for t in threads:
            t.join(60)
        rows = probe.query("SELECT position FROM events WHERE position > %s", (start,))
        probe.close()
    return followers, seconds, sorted(int(r[0]) for r in rows)
