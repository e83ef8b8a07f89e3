"""Commands and events of the bank ledger."""

from __future__ import annotations

from dataclasses import dataclass

from cqrs_lab.core import Command, Event

__all__ = [
    "AccountClosed",
    "AccountOpened",
    "CloseAccount",
    "CompensateTransfer",
    "CompleteTransfer",
    "Deposit",
    "Deposited",
    "FailTransfer",
    "OpenAccount",
    "Refund",
    "RequestTransfer",
    "TransferCompensated",
    "TransferCompleted",
    "TransferFailed",
    "TransferRequested",
    "Withdraw",
    "Withdrawn",
]


# -- commands ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenAccount(Command):
    account_id: str
    owner: str = ""
    opening_balance: int = 0


@dataclass(frozen=True, slots=True)
class Deposit(Command):
    account_id: str
    amount: int
    transfer_id: str | None = None


@dataclass(frozen=True, slots=True)
class Withdraw(Command):
    account_id: str
    amount: int
    transfer_id: str | None = None


@dataclass(frozen=True, slots=True)
class Refund(Command):
    """Give back money a transfer took: allowed even on a closed account (never refused)."""

    account_id: str
    amount: int
    transfer_id: str


@dataclass(frozen=True, slots=True)
class CloseAccount(Command):
    account_id: str


@dataclass(frozen=True, slots=True)
class RequestTransfer(Command):
    transfer_id: str
    source: str
    target: str
    amount: int


@dataclass(frozen=True, slots=True)
class CompleteTransfer(Command):
    transfer_id: str


@dataclass(frozen=True, slots=True)
class CompensateTransfer(Command):
    transfer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FailTransfer(Command):
    transfer_id: str
    reason: str


# -- events -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AccountOpened(Event):
    account_id: str
    owner: str
    opening_balance: int


@dataclass(frozen=True, slots=True)
class Deposited(Event):
    account_id: str
    amount: int
    transfer_id: str | None = None


@dataclass(frozen=True, slots=True)
class Withdrawn(Event):
    account_id: str
    amount: int
    transfer_id: str | None = None


@dataclass(frozen=True, slots=True)
class AccountClosed(Event):
    account_id: str


@dataclass(frozen=True, slots=True)
class TransferRequested(Event):
    transfer_id: str
    source: str
    target: str
    amount: int


@dataclass(frozen=True, slots=True)
class TransferCompleted(Event):
    transfer_id: str


@dataclass(frozen=True, slots=True)
class TransferCompensated(Event):
    transfer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TransferFailed(Event):
    transfer_id: str
    reason: str


EVENTS: tuple[type[Event], ...] = (
    AccountOpened, Deposited, Withdrawn, AccountClosed,
    TransferRequested, TransferCompleted, TransferCompensated, TransferFailed,
)  # fmt: skip
