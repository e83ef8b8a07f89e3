"""The write side of the bank: accounts and transfers, and the command handlers."""

from __future__ import annotations

from cqrs_lab.core import Aggregate, Command, UnitOfWork, on
from cqrs_lab.core.bus import Handler
from cqrs_lab.domains.bank.messages import (
    AccountClosed,
    AccountOpened,
    CloseAccount,
    CompensateTransfer,
    CompleteTransfer,
    CreditForTransfer,
    DebitForTransfer,
    Deposit,
    Deposited,
    FailTransfer,
    OpenAccount,
    Refund,
    RequestTransfer,
    TransferCompensated,
    TransferCompleted,
    TransferFailed,
    TransferRequested,
    Withdraw,
    Withdrawn,
)
from cqrs_lab.errors import CommandRefused

__all__ = ["HANDLERS", "Account", "Transfer", "account_stream", "transfer_stream"]


def account_stream(account_id: str) -> str:
    return f"account-{account_id}"


def transfer_stream(transfer_id: str) -> str:
    return f"transfer-{transfer_id}"


def _id(field: str, value: str) -> str:
    """An id a command names: a non-empty str (None, 5, "" or a list is refused)."""
    if not isinstance(value, str) or not value:
        raise CommandRefused(f"{field} must be a non-empty string, got {value!r}")
    return value


def _account(uow: UnitOfWork, account_id: str) -> Account:
    return uow.load(Account, account_stream(_id("account id", account_id)))


def _transfer(uow: UnitOfWork, transfer_id: str) -> Transfer:
    return uow.load(Transfer, transfer_stream(_id("transfer id", transfer_id)))


def _positive(amount: int) -> None:
    if type(amount) is not int or amount <= 0:
        raise CommandRefused(f"amount must be a whole number > 0, got {amount!r}")


class Account(Aggregate):
    """A bank account: opened once, never overdrawn, closed to further deposits."""

    snapshot_every = 100

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.account_id = ""
        self.opened = False
        self.closed = False
        self.balance = 0

    def open(self, account_id: str, owner: str, opening_balance: int) -> None:
        if self.opened:
            raise CommandRefused(f"account {account_id} is already open")
        if type(opening_balance) is not int or opening_balance < 0:
            raise CommandRefused(
                f"opening balance must be a whole number >= 0, got {opening_balance!r}"
            )
        if not isinstance(owner, str):
            raise CommandRefused(f"owner must be a string (it may be empty), got {owner!r}")
        self.record(AccountOpened(account_id, owner, opening_balance))

    def _require_open(self) -> None:
        if not self.opened:
            raise CommandRefused(
                f"account {self.id.removeprefix('account-')} does not exist; open it first"
            )
        if self.closed:
            raise CommandRefused(f"account {self.account_id} is closed")

    def deposit(self, amount: int, transfer_id: str | None) -> None:
        _positive(amount)
        self._require_open()
        self.record(Deposited(self.account_id, amount, transfer_id))

    def withdraw(self, amount: int, transfer_id: str | None) -> None:
        _positive(amount)
        self._require_open()
        if amount > self.balance:
            raise CommandRefused(
                f"insufficient funds in account {self.account_id}: balance {self.balance}, "
                f"withdrawal {amount}"
            )
        self.record(Withdrawn(self.account_id, amount, transfer_id))

    def refund(self, amount: int, transfer_id: str) -> None:
        """A compensation: the account need only exist (closing it does not refuse its money)."""
        _positive(amount)
        if not self.opened:
            raise CommandRefused(f"account {self.id.removeprefix('account-')} does not exist")
        self.record(Deposited(self.account_id, amount, transfer_id))

    def close(self) -> None:
        self._require_open()
        self.record(AccountClosed(self.account_id))

    @on(AccountOpened)
    def _opened(self, e: AccountOpened) -> None:
        self.account_id, self.opened, self.balance = e.account_id, True, e.opening_balance

    @on(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.balance += e.amount

    @on(Withdrawn)
    def _withdrawn(self, e: Withdrawn) -> None:
        self.balance -= e.amount

    @on(AccountClosed)
    def _closed(self, e: AccountClosed) -> None:
        self.closed = True


class Transfer(Aggregate):
    """A transfer's lifecycle: requested, then completed, compensated or failed, once."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status = "new"

    def request(self, cmd: RequestTransfer) -> None:
        if self.status != "new":
            raise CommandRefused(f"transfer {cmd.transfer_id} was already requested")
        _positive(cmd.amount)
        if cmd.source == cmd.target:
            raise CommandRefused("a transfer needs two different accounts")
        self.record(TransferRequested(cmd.transfer_id, cmd.source, cmd.target, cmd.amount))

    def _finish(self, transfer_id: str) -> None:
        if self.status != "requested":
            raise CommandRefused(f"transfer {transfer_id} is {self.status}, not in progress")

    @on(TransferRequested)
    def _requested(self, e: TransferRequested) -> None:
        self.status = "requested"

    @on(TransferCompleted)
    def _completed(self, e: TransferCompleted) -> None:
        self.status = "completed"

    @on(TransferCompensated)
    def _compensated(self, e: TransferCompensated) -> None:
        self.status = "compensated"

    @on(TransferFailed)
    def _failed(self, e: TransferFailed) -> None:
        self.status = "failed"


def open_account(cmd: OpenAccount, uow: UnitOfWork) -> None:
    _account(uow, cmd.account_id).open(cmd.account_id, cmd.owner, cmd.opening_balance)


def deposit(cmd: Deposit, uow: UnitOfWork) -> None:
    _account(uow, cmd.account_id).deposit(cmd.amount, None)


def withdraw(cmd: Withdraw, uow: UnitOfWork) -> None:
    _account(uow, cmd.account_id).withdraw(cmd.amount, None)


def debit_for_transfer(cmd: DebitForTransfer, uow: UnitOfWork) -> None:
    _account(uow, cmd.account_id).withdraw(cmd.amount, cmd.transfer_id)


def credit_for_transfer(cmd: CreditForTransfer, uow: UnitOfWork) -> None:
    _account(uow, cmd.account_id).deposit(cmd.amount, cmd.transfer_id)


def refund(cmd: Refund, uow: UnitOfWork) -> None:
    _account(uow, cmd.account_id).refund(cmd.amount, cmd.transfer_id)


def close_account(cmd: CloseAccount, uow: UnitOfWork) -> None:
    _account(uow, cmd.account_id).close()


def request_transfer(cmd: RequestTransfer, uow: UnitOfWork) -> None:
    _id("source account id", cmd.source)
    _id("target account id", cmd.target)
    _transfer(uow, cmd.transfer_id).request(cmd)
    uow.publish("transfers.requested", {"transfer_id": cmd.transfer_id, "amount": cmd.amount})


def complete_transfer(cmd: CompleteTransfer, uow: UnitOfWork) -> None:
    t = _transfer(uow, cmd.transfer_id)
    t._finish(cmd.transfer_id)
    t.record(TransferCompleted(cmd.transfer_id))


def compensate_transfer(cmd: CompensateTransfer, uow: UnitOfWork) -> None:
    t = _transfer(uow, cmd.transfer_id)
    t._finish(cmd.transfer_id)
    t.record(TransferCompensated(cmd.transfer_id, cmd.reason))


def fail_transfer(cmd: FailTransfer, uow: UnitOfWork) -> None:
    t = _transfer(uow, cmd.transfer_id)
    t._finish(cmd.transfer_id)
    t.record(TransferFailed(cmd.transfer_id, cmd.reason))


HANDLERS: dict[type[Command], Handler] = {
    OpenAccount: open_account,
    Deposit: deposit,
    Withdraw: withdraw,
    DebitForTransfer: debit_for_transfer,
    CreditForTransfer: credit_for_transfer,
    Refund: refund,
    CloseAccount: close_account,
    RequestTransfer: request_transfer,
    CompleteTransfer: complete_transfer,
    CompensateTransfer: compensate_transfer,
    FailTransfer: fail_transfer,
}
