"""The bank ledger: accounts, deposits, withdrawals and transfers through a saga.

>>> from cqrs_lab.core import Engine
>>> from cqrs_lab.domains import bank
>>> engine = Engine(seed=1)
>>> app = bank.install(engine)
>>> r = engine.dispatch(bank.OpenAccount("a1", "ann", 100))
>>> _ = engine.pump()
>>> engine.ask(bank.GetBalance("a1"), min_position=r.position).value
100
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cqrs_lab.core import DeliveryPolicy, Engine, FaultPlan, RetryPolicy, Subscription
from cqrs_lab.domains.bank.messages import *  # noqa: F403
from cqrs_lab.domains.bank.messages import EVENTS
from cqrs_lab.domains.bank.messages import __all__ as _messages
from cqrs_lab.domains.bank.model import HANDLERS, Account, Transfer, account_stream, transfer_stream
from cqrs_lab.domains.bank.views import (
    Balances,
    GetAccount,
    GetBalance,
    GetStatement,
    GetTotals,
    GetTransfer,
    Statements,
    TransferSaga,
)

__all__ = [
    *_messages,
    "Account",
    "Balances",
    "BankApp",
    "GetAccount",
    "GetBalance",
    "GetStatement",
    "GetTotals",
    "GetTransfer",
    "Statements",
    "Transfer",
    "TransferSaga",
    "account_stream",
    "install",
    "transfer_stream",
]


@dataclass
class BankApp:
    """Handles on what :func:`install` wired, for tests, checks and notebooks."""

    engine: Engine
    balances: Balances
    statements: Statements
    saga: TransferSaga
    subscriptions: dict[str, Subscription]


def install(
    engine: Engine,
    *,
    delivery: DeliveryPolicy | str = "effectively-once",
    saga_delivery: DeliveryPolicy | str | None = None,
    batch_size: int = 256,
    checkpoint_every: int | None = None,
    retry: RetryPolicy | None = None,
    faults: FaultPlan | None = None,
    statements: bool = True,
    saga: bool = True,
) -> BankApp:
    """Register the bank's handlers, projections, saga and queries on ``engine``."""
    for event_class in EVENTS:
        engine.registry.register(event_class)
    for command_type, handler in HANDLERS.items():
        engine.register(command_type, handler)
    opts: dict[str, Any] = {
        "batch_size": batch_size, "checkpoint_every": checkpoint_every,
        "retry": retry, "faults": faults,
    }  # fmt: skip
    balances, lines, transfer_saga = Balances(), Statements(), TransferSaga()
    subs = {"balances": engine.subscribe(balances, delivery, **opts)}
    if statements:
        subs["statements"] = engine.subscribe(lines, delivery, **opts)
    if saga:
        subs["transfer-saga"] = engine.subscribe(transfer_saga, saga_delivery or delivery, **opts)
        engine.register_query(
            GetTransfer, lambda q: transfer_saga.view(q.transfer_id), "transfer-saga"
        )
    engine.register_query(GetBalance, lambda q: balances.balances.get(q.account_id), "balances")
    engine.register_query(GetAccount, lambda q: _account(balances, q.account_id), "balances")
    engine.register_query(GetTotals, lambda q: dict(balances.totals.items()), "balances")
    if statements:
        engine.register_query(GetStatement, lambda q: _statement(lines, q), "statements")
    return BankApp(engine, balances, lines, transfer_saga, subs)


def _account(view: Balances, account_id: str) -> dict[str, Any] | None:
    row = view.accounts.get(account_id)
    if row is None:
        return None
    return {**row, "balance": view.balances.get(account_id, 0)}


def _statement(view: Statements, q: GetStatement) -> list[dict[str, Any]] | None:
    lines = view.lines.get(q.account_id)
    if lines is None:
        return None
    return list(lines if q.limit is None else lines[-q.limit :])
