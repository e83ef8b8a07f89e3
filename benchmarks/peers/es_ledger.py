"""W1 on the ``eventsourcing`` library (9.5.6), in memory.

``fastest=True`` is its fastest setting per the spec: aggregate cache of 1000, fast-forward
off, deepcopy from the cache off. Catch-up reads the notification log and folds the mapped
domain events into {account: balance}.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from benchmarks.workload_w1 import ACCOUNTS, OPENING_BALANCE


class Account(Aggregate):
    @event("Opened")
    def __init__(self, balance: int) -> None:
        self.balance = balance

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount

    @event("Withdrawn")
    def withdraw(self, amount: int) -> None:
        self.balance -= amount


class Bank(Application[UUID]):
    def open(self) -> UUID:
        account = Account(OPENING_BALANCE)
        self.save(account)
        return account.id

    def execute(self, account_id: UUID, kind: str, amount: int) -> bool:
        account: Any = self.repository.get(account_id)
        if kind == "withdraw":
            if amount > account.balance:
                return False
            account.withdraw(amount)
        else:
            account.deposit(amount)
        self.save(account)
        return True


def run(cmds: list[tuple[int, str, int]], fastest: bool = True) -> dict[str, float]:
    env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    if fastest:
        env |= {
            "AGGREGATE_CACHE_MAXSIZE": "1000",
            "AGGREGATE_CACHE_FASTFORWARD": "n",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        }
    app = Bank(env=env)
    ids = [app.open() for _ in range(ACCOUNTS)]
    accepted = 0
    start = time.perf_counter()
    for idx, kind, amount in cmds:
        accepted += app.execute(ids[idx], kind, amount)
    write = time.perf_counter() - start
    start = time.perf_counter()
    view: dict[UUID, int] = {}
    events = 0
    position = 1
    while True:
        notifications = app.recorder.select_notifications(position, 1000)
        if not notifications:
            break
        for n in notifications:
            e: Any = app.mapper.to_domain_event(n)
            if isinstance(e, Account.Deposited):  # type: ignore[attr-defined]
                view[e.originator_id] += e.amount
            elif isinstance(e, Account.Withdrawn):  # type: ignore[attr-defined]
                view[e.originator_id] -= e.amount
            else:
                view[e.originator_id] = e.balance
            events += 1
        position = notifications[-1].id + 1
    catch_up = time.perf_counter() - start
    return {
        "write_per_s": len(cmds) / write,
        "catch_up_per_s": events / catch_up,
        "accepted": accepted,
        "events": events,
        "total": sum(view.values()),
    }
