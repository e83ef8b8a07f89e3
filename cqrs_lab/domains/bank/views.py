"""The read side of the bank: balances, statements, the transfer saga and the queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cqrs_lab.core import Envelope, Projection, Saga, on
from cqrs_lab.domains.bank.messages import (
    AccountClosed,
    AccountOpened,
    CompensateTransfer,
    CompleteTransfer,
    Deposit,
    Deposited,
    FailTransfer,
    Refund,
    TransferCompensated,
    TransferCompleted,
    TransferFailed,
    TransferRequested,
    Withdraw,
    Withdrawn,
)
from cqrs_lab.errors import CommandRejected

__all__ = [
    "Balances",
    "GetAccount",
    "GetBalance",
    "GetStatement",
    "GetTotals",
    "GetTransfer",
    "Statements",
    "TransferSaga",
]


class Balances(Projection):
    """``balances``: account -> balance; ``accounts``: account -> details; ``totals``."""

    name = "balances"

    def __init__(self) -> None:
        super().__init__()
        self.balances = self.table("balances")
        self.accounts = self.table("accounts")
        self.totals = self.table("totals")

    def _add(self, account_id: str, delta: int) -> None:
        balances, totals = self.balances, self.totals
        balances.put(account_id, balances.get(account_id, 0) + delta)
        totals.put("total", totals.get("total", 0) + delta)

    @on(AccountOpened)
    def _opened(self, e: AccountOpened, env: Envelope) -> None:
        self.accounts.put(
            e.account_id, {"account_id": e.account_id, "owner": e.owner, "open": True}
        )
        self.totals.put("accounts", self.totals.get("accounts", 0) + 1)
        self._add(e.account_id, e.opening_balance)

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        balances, totals, account = self.balances, self.totals, e.account_id
        balances.put(account, balances.get(account, 0) + e.amount)
        totals.put("total", totals.get("total", 0) + e.amount)

    @on(Withdrawn)
    def _withdrawn(self, e: Withdrawn, env: Envelope) -> None:
        balances, totals, account = self.balances, self.totals, e.account_id
        balances.put(account, balances.get(account, 0) - e.amount)
        totals.put("total", totals.get("total", 0) - e.amount)

    @on(AccountClosed)
    def _closed(self, e: AccountClosed, env: Envelope) -> None:
        self.accounts.update(e.account_id, open=False)


class Statements(Projection):
    """``lines``: account -> list of statement lines, oldest first."""

    name = "statements"

    def __init__(self) -> None:
        super().__init__()
        self.lines = self.table("lines")

    def _line(
        self, e: Deposited | Withdrawn | AccountOpened, env: Envelope, kind: str, amount: int
    ) -> None:
        self.lines.append(
            e.account_id,
            {
                "version": env.stream_version,
                "position": env.position,
                "kind": kind,
                "amount": amount,
                "transfer_id": getattr(e, "transfer_id", None),
                "at": env.recorded_at,
            },
        )

    @on(AccountOpened)
    def _opened(self, e: AccountOpened, env: Envelope) -> None:
        self._line(e, env, "opened", e.opening_balance)

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        self._line(e, env, "deposit", e.amount)

    @on(Withdrawn)
    def _withdrawn(self, e: Withdrawn, env: Envelope) -> None:
        self._line(e, env, "withdrawal", -e.amount)


class TransferSaga(Saga):
    """Moves money between two accounts: debit, credit, and a refund if the credit is refused.

    Each step is a command whose idempotency key comes from the event that triggered it, so
    a redelivered event (at-least-once, a crash) re-sends the same command and the bus
    answers from its record instead of moving money twice.
    """

    name = "transfer-saga"
    idempotent = True

    def __init__(self) -> None:
        super().__init__()
        self.transfers = self.table("transfers")

    def _status(self, transfer_id: str, status: str, **extra: Any) -> None:
        self.transfers.update(transfer_id, transfer_id=transfer_id, status=status, **extra)

    @on(TransferRequested)
    def _requested(self, e: TransferRequested, env: Envelope) -> None:
        self._status(e.transfer_id, "debiting", source=e.source, target=e.target, amount=e.amount)
        try:
            self.send(Withdraw(e.source, e.amount, e.transfer_id), env, "debit")
        except CommandRejected as refused:
            self.send(FailTransfer(e.transfer_id, refused.reason), env, "fail")

    @on(Withdrawn)
    def _debited(self, e: Withdrawn, env: Envelope) -> None:
        tid = e.transfer_id
        row = self.transfers.get(tid) if tid else None
        if tid is None or row is None or row["status"] != "debiting":
            return
        self._status(tid, "crediting")
        try:
            self.send(Deposit(row["target"], e.amount, tid), env, "credit")
        except CommandRejected as refused:
            self._status(tid, "compensating", reason=refused.reason)
            self.send(Refund(row["source"], e.amount, tid), env, "refund")
            self.send(CompensateTransfer(tid, refused.reason), env, "compensate")

    @on(Deposited)
    def _credited(self, e: Deposited, env: Envelope) -> None:
        tid = e.transfer_id
        row = self.transfers.get(tid) if tid else None
        if tid is None or row is None or row["status"] != "crediting":
            return
        if e.account_id == row["target"]:
            self.send(CompleteTransfer(tid), env, "complete")

    @on(TransferCompleted)
    def _completed(self, e: TransferCompleted, env: Envelope) -> None:
        self._status(e.transfer_id, "completed")

    @on(TransferCompensated)
    def _compensated(self, e: TransferCompensated, env: Envelope) -> None:
        self._status(e.transfer_id, "compensated", reason=e.reason)

    @on(TransferFailed)
    def _failed(self, e: TransferFailed, env: Envelope) -> None:
        self._status(e.transfer_id, "failed", reason=e.reason)


# -- queries ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GetBalance:
    account_id: str


@dataclass(frozen=True, slots=True)
class GetAccount:
    account_id: str


@dataclass(frozen=True, slots=True)
class GetStatement:
    account_id: str
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class GetTotals:
    pass


@dataclass(frozen=True, slots=True)
class GetTransfer:
    transfer_id: str
