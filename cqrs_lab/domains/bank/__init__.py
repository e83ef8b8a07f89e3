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

from cqrs_lab.core import (
    DeliveryPolicy,
    Domain,
    Engine,
    FaultPlan,
    Invariant,
    Query,
    RetryPolicy,
    Subscription,
    View,
)
from cqrs_lab.core import install as install_domain
from cqrs_lab.core.arguments import check_bool
from cqrs_lab.domains.bank.aggregates import (
    HANDLERS,
    Account,
    Transfer,
    account_stream,
    transfer_stream,
)
from cqrs_lab.domains.bank.invariants import check_sagas, trace_transfers
from cqrs_lab.domains.bank.messages import *  # noqa: F403
from cqrs_lab.domains.bank.messages import EVENTS
from cqrs_lab.domains.bank.messages import __all__ as _messages
from cqrs_lab.domains.bank.views import (
    LINE_FIELDS,
    Balances,
    GetAccount,
    GetBalance,
    GetStatement,
    GetTotals,
    GetTransfer,
    Statements,
    TransferSaga,
)
from cqrs_lab.domains.bank.workload import WORKLOAD
from cqrs_lab.errors import ConfigError

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
    "check_sagas",
    "domain",
    "install",
    "trace_transfers",
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


def _id(q: Any, field: str = "account_id") -> str:
    """The query's id, refused with a ConfigError unless a str (a list cannot be looked up,
    and a number never names a row: ids are strings)."""
    value = getattr(q, field)
    if not isinstance(value, str):
        raise ConfigError(f"{type(q).__name__}({field}={value!r}): pass a str")
    return value


def _balance(view: Balances, q: GetBalance) -> int | None:
    balance: int | None = view.balances.get(_id(q))
    return balance


def _transfer(view: TransferSaga, q: GetTransfer) -> dict[str, Any] | None:
    return view.view(_id(q, "transfer_id"))


def _account(view: Balances, q: GetAccount) -> dict[str, Any] | None:
    row = view.accounts.get(_id(q))
    if row is None:
        return None
    return {**row, "balance": view.balances.get(q.account_id, 0)}


def _statement(view: Statements, q: GetStatement) -> list[dict[str, Any]] | None:
    limit = q.limit
    if limit is not None and (type(limit) is not int or not 1 <= limit <= 1000):
        raise ConfigError(
            f"GetStatement(limit={limit!r}): the last 1 to 1000 lines, or None for every line"
        )
    lines = view.lines.get(_id(q))
    if lines is None:
        return None
    kept = lines if limit is None else lines[-limit:]
    return [dict(zip(LINE_FIELDS, line, strict=True)) for line in kept]


#: the bank, declared once: every driver installs it through :func:`cqrs_lab.core.install`
domain = Domain(
    name="bank",
    description="Accounts, deposits, withdrawals and transfers through a saga",
    events=EVENTS,
    handlers=HANDLERS,
    aggregates=(Account, Transfer),
    views=(
        View("balances", Balances, "account -> balance, account details, totals"),
        View("statements", Statements, "account -> its statement lines"),
        View("transfer-saga", TransferSaga, "the saga moving money between accounts"),
    ),
    queries=(
        Query(GetBalance, "balances", _balance),
        Query(GetAccount, "balances", _account),
        Query(GetTotals, "balances", lambda v, q: dict(v.totals.items())),
        Query(GetStatement, "statements", _statement),
        Query(GetTransfer, "transfer-saga", _transfer),
    ),
    invariants=(
        Invariant(
            "sagas",
            check_sagas,
            "every transfer ends once; a finished transfer moved exactly its money",
        ),
    ),
    workload=WORKLOAD,
    http_routes="cqrs_lab.domains.bank.http:routes",
)


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
    """Install :data:`domain` on ``engine`` (through the one :func:`cqrs_lab.core.install`).

    ``statements`` and ``saga`` choose the optional views; ``saga_delivery`` gives the saga
    its own delivery semantics.
    """
    statements = check_bool(statements, "statements", "True or False", where="install")
    saga = check_bool(saga, "saga", "True or False", where="install")
    views = [
        "balances",
        *(["statements"] if statements else []),
        *(["transfer-saga"] if saga else []),
    ]
    done = install_domain(
        engine,
        domain,
        views=views,
        delivery=delivery,
        delivery_of={"transfer-saga": saga_delivery} if saga_delivery is not None else None,
        batch_size=batch_size,
        checkpoint_every=checkpoint_every,
        retry=retry,
        faults=faults,
    )
    v = done.views
    return BankApp(
        engine,
        v["balances"],  # type: ignore[arg-type]
        v.get("statements") or Statements(),  # type: ignore[arg-type]
        v.get("transfer-saga") or TransferSaga(),  # type: ignore[arg-type]
        done.subscriptions,
    )
