"""Commands and events of the bank ledger.

Clients send the public commands (open an account, deposit, withdraw, request a transfer).
The transfer saga sends the internal ones (debit and credit for a transfer, refund, and the
transfer's outcome); :attr:`Command.internal` keeps them off every client-facing route, so a
client can neither mint money with a refund nor forge a saga's reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from cqrs_lab.core import Command, Event

__all__ = [
    "AccountClosed",
    "AccountOpened",
    "CloseAccount",
    "CompensateTransfer",
    "CompleteTransfer",
    "CreditForTransfer",
    "DebitForTransfer",
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


@dataclass(frozen=True, slots=True)
class Withdraw(Command):
    account_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class DebitForTransfer(Command):
    """The saga's debit of a transfer's source (a ``Withdrawn`` carrying the transfer id)."""

    internal = True
    account_id: str
    amount: int
    transfer_id: str


@dataclass(frozen=True, slots=True)
class CreditForTransfer(Command):
    """The saga's credit of a transfer's target (a ``Deposited`` carrying the transfer id)."""

    internal = True
    account_id: str
    amount: int
    transfer_id: str


@dataclass(frozen=True, slots=True)
class Refund(Command):
    """Give back money a transfer took: allowed even on a closed account (never refused)."""

    internal = True
    account_id: str
    amount: int
    transfer_id: str


@dataclass(frozen=True, slots=True)
class CloseAccount(Command):
    """An operator's action in this example (no client route closes an account)."""

    internal = True
    account_id: str


@dataclass(frozen=True, slots=True)
class RequestTransfer(Command):
    id_fields = ("source", "target")
    transfer_id: str
    source: str
    target: str
    amount: int


@dataclass(frozen=True, slots=True)
class CompleteTransfer(Command):
    internal = True
    transfer_id: str


@dataclass(frozen=True, slots=True)
class CompensateTransfer(Command):
    internal = True
    transfer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FailTransfer(Command):
    internal = True
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
