"""The bank's workload: accounts as keys, a deposit/withdraw/transfer mix, and strategies.

Samplers draw the amount first (uniform from 1 to ``max_amount``), then, for a transfer, the
target account; the simulation and the load generator call the same functions.

>>> import random
>>> from cqrs_lab.core import Draw
>>> d = Draw(random.Random(3), WORKLOAD, keys=5, params=WORKLOAD.defaults())
>>> d.index = 2
>>> deposit(d)
Deposit(account_id='acct-2', amount=24)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cqrs_lab.core import Command, CommandKind, Draw, Param, ReadKind, Workload
from cqrs_lab.domains.bank.messages import Deposit, OpenAccount, RequestTransfer, Withdraw
from cqrs_lab.domains.bank.views import GetBalance, GetStatement
from cqrs_lab.errors import ConfigError

__all__ = ["ACCOUNTS", "WORKLOAD", "account_key", "commands", "deposit", "transfer", "withdraw"]

#: account ids the strategies draw from by default
ACCOUNTS = ("a", "b", "c")


def account_key(index: int) -> str:
    """The id of the ``index``-th account (0 is the hottest under Zipf)."""
    return f"acct-{index}"


def open_account(d: Draw) -> OpenAccount:
    return OpenAccount(d.key(), f"owner-{d.index}", d.params["opening_balance"])


def deposit(d: Draw) -> Deposit:
    amount = d.upto(d.params["max_amount"])
    return Deposit(d.key(), amount)


def withdraw(d: Draw) -> Withdraw:
    amount = d.upto(d.params["max_amount"])
    return Withdraw(d.key(), amount)


def transfer(d: Draw) -> RequestTransfer:
    amount = d.upto(d.params["max_amount"])
    return RequestTransfer(f"t{d.seq}", d.key(), d.other(), amount)


def commands(
    accounts: Sequence[str] = ACCOUNTS, *, max_amount: int = 100, transfers: int = 5
) -> Any:
    """Hypothesis strategy of bank commands: open, deposit, withdraw, transfer (``t0``..).

    Amounts stay small so that overdrafts and refusals happen too; a transfer id drawn twice
    is refused by the domain, which is part of what is tested.
    """
    from hypothesis import strategies as st

    if max_amount < 1 or transfers < 1:
        raise ConfigError("bank commands: pass max_amount >= 1 and transfers >= 1")
    if not accounts:
        raise ConfigError("accounts=(): pass at least one account id")
    acc = st.sampled_from(tuple(accounts))
    amount = st.integers(1, max_amount)
    tid = st.integers(0, transfers - 1).map(lambda i: f"t{i}")
    out: st.SearchStrategy[Command] = st.one_of(
        st.builds(OpenAccount, acc, st.just("owner"), st.integers(0, max_amount)),
        st.builds(Deposit, acc, amount),
        st.builds(Withdraw, acc, amount),
        st.builds(RequestTransfer, tid, acc, acc, amount),
    )
    return out


WORKLOAD = Workload(
    population="accounts",
    key=account_key,
    setup=open_account,
    kinds=(
        CommandKind("deposit", Deposit, deposit, 0.6),
        CommandKind("withdraw", Withdraw, withdraw, 0.3),
        CommandKind("transfer", RequestTransfer, transfer, 0.1),
    ),
    reads=(
        ReadKind("balances", lambda d: GetBalance(d.key())),
        ReadKind("statements", lambda d: GetStatement(d.key(), 20)),
    ),
    params={
        "opening_balance": Param(1000, "money each account opens with", 0),
        "max_amount": Param(100, "largest amount moved (amounts are uniform from 1)", 1),
    },
    default_population=1000,
    min_population=2,
    strategies=commands,
)
