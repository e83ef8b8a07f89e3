"""The read side of the bank: balances, statements, the transfer saga and the queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cqrs_lab.core import Envelope, Projection, Saga, SagaCause, on
from cqrs_lab.domains.bank.messages import (
    AccountClosed,
    AccountOpened,
    CompensateTransfer,
    CompleteTransfer,
    CreditForTransfer,
    DebitForTransfer,
    Deposited,
    FailTransfer,
    Refund,
    TransferCompensated,
    TransferCompleted,
    TransferFailed,
    TransferRequested,
    Withdrawn,
)
from cqrs_lab.errors import CommandRefused

__all__ = [
    "LINE_FIELDS",
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


#: the fields of a statement line, in the order a line is kept
LINE_FIELDS = ("version", "position", "kind", "amount", "transfer_id", "at")


class Statements(Projection):
    """``lines``: account -> list of statement lines (tuples of :data:`LINE_FIELDS`), oldest
    first: the newest lines of each
    account, at most :attr:`max_lines` (and at least three quarters of it once that many were
    written). A statement is a recent history, not the ledger (the balance and the log keep
    the whole story), so the view's memory is bounded by the number of accounts, whatever
    the length of the log.
    """

    name = "statements"
    #: lines kept per account (the most ``GET /accounts/{id}/statement?limit=`` can ask for)
    max_lines: ClassVar[int] = 1000

    def __init__(self) -> None:
        super().__init__()
        self.lines = self.table("lines")

    def _line(
        self, e: Deposited | Withdrawn | AccountOpened, env: Envelope, kind: str, amount: int
    ) -> None:
        lines, key = self.lines, e.account_id
        kept = lines.get(key)
        if kept is not None and len(kept) >= self.max_lines:
            # a new list (the old one stays intact for an undo); once every max_lines/4 lines
            lines.put(key, kept[len(kept) - self.max_lines * 3 // 4 :])
        # a tuple in LINE_FIELDS order (less than half a dict's memory); the query makes dicts
        lines.append(
            key,
            (
                env.stream_version,
                env.position,
                kind,
                amount,
                getattr(e, "transfer_id", None),
                env.recorded_at,
            ),
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

    Correct by construction under every semantics that promises no loss (at-least-once,
    effectively-once), partitioned or not, whatever the order of deliveries:

    - each event is recorded as a *fact* on the transfer's row (requested, debited by event
      E, deposited to account X by event F, ended); facts only accumulate, so a duplicate or
      a late redelivery changes nothing and the row never moves backwards;
    - the next step is derived from the facts (:meth:`_advance`), so a reply that arrives
      before its trigger (a ``Withdrawn`` before the ``TransferRequested`` that caused it, as
      partitions or a reorder deliver them) is kept and acted on once the trigger arrives;
    - each step's idempotency key names the event that *caused* it (the request for the
      debit, the debit for the credit or refund, the credit for the completion), not the
      delivery that ran it, so a step re-sent is a true replay: the bus answers it from its
      record, and the replayed step's events are already in the log, where their delivery
      moves the saga on.

    Under at-most-once a lost delivery is lost for good: a lost ``TransferRequested`` leaves
    the transfer requested with no money moved; a lost debit or credit leaves it open after
    the money moved (the debited amount held between the accounts until someone acts). Such
    transfers are counted by :meth:`open_instances` and the subscription's ``lost``.
    """

    name = "transfer-saga"
    idempotent = True
    #: ended transfers kept (the newest to end): an older one is forgotten, and
    #: ``GET /transfers/{id}`` answers 404 for it (the log keeps its events)
    keep_ended: ClassVar[int] = 10_000
    _ENDED = frozenset({"completed", "compensated", "failed"})

    def __init__(self) -> None:
        super().__init__()
        self.transfers = self.table("transfers")
        self.ended = self.table("ended")  # transfer id -> True, in the order they ended

    def open_instances(self) -> int:
        return sum(1 for row in self.transfers.values() if row["status"] not in self._ENDED)

    def view(self, transfer_id: str) -> dict[str, Any] | None:
        """The transfer as clients see it (without the saga's bookkeeping)."""
        row = self.transfers.get(transfer_id)
        if row is None or row.get("source") is None:
            return None  # only replies seen so far: not yet a transfer a client asked for
        keys = ("transfer_id", "status", "source", "target", "amount", "reason")
        return {k: row[k] for k in keys if k in row}

    # -- facts --------------------------------------------------------------------------------
    def _row(self, transfer_id: str, env: Envelope) -> dict[str, Any]:
        row = self.transfers.get(transfer_id)
        if row is None:
            return {"transfer_id": transfer_id, "correlation_id": env.correlation_id}
        return dict(row)

    def _save(self, row: dict[str, Any]) -> dict[str, Any]:
        row["status"] = status = _status(row)
        tid = row["transfer_id"]
        self.transfers.put(tid, row)
        if status in self._ENDED and tid not in self.ended:
            ended = self.ended
            ended.put(tid, True)
            if len(ended) > self.keep_ended:  # forget the transfer that ended longest ago
                oldest = next(iter(ended))
                ended.delete(oldest)
                self.transfers.delete(oldest)
        return row

    def _fact(self, transfer_id: str, env: Envelope, **facts: Any) -> dict[str, Any]:
        """Record the facts not known yet (a fact once set never changes)."""
        row = self._row(transfer_id, env)
        changed = {k: v for k, v in facts.items() if row.get(k) is None}
        if not changed and "status" in row:
            return row
        row.update(changed)
        return self._save(row)

    @on(TransferRequested)
    def _requested(self, e: TransferRequested, env: Envelope) -> None:
        row = self._fact(
            e.transfer_id, env, request=env.event_id, request_at=env.position, source=e.source,
            target=e.target, amount=e.amount,
        )  # fmt: skip
        self._advance(row)

    @on(Withdrawn)
    def _debited(self, e: Withdrawn, env: Envelope) -> None:
        if e.transfer_id is not None:
            self._advance(self._fact(e.transfer_id, env, debit=env.event_id, debit_at=env.position))

    @on(Deposited)
    def _deposited(self, e: Deposited, env: Envelope) -> None:
        tid = e.transfer_id
        if tid is None:
            return
        row = self._row(tid, env)
        deposits = row.get("deposits") or {}
        if e.account_id not in deposits:  # a credit (to the target) or a refund (to the source)
            row["deposits"] = {**deposits, e.account_id: env.event_id}
            row["deposits_at"] = {**(row.get("deposits_at") or {}), e.account_id: env.position}
            row = self._save(row)
        self._advance(row)

    @on(TransferCompleted)
    def _completed(self, e: TransferCompleted, env: Envelope) -> None:
        self._fact(e.transfer_id, env, outcome="completed")

    @on(TransferCompensated)
    def _compensated(self, e: TransferCompensated, env: Envelope) -> None:
        self._fact(e.transfer_id, env, outcome="compensated", reason=e.reason)

    @on(TransferFailed)
    def _failed(self, e: TransferFailed, env: Envelope) -> None:
        self._fact(e.transfer_id, env, outcome="failed", reason=e.reason)

    # -- the next step, from the facts ---------------------------------------------------------
    def _advance(self, row: dict[str, Any]) -> None:
        if row.get("request") is None or row.get("outcome") is not None:
            return  # the trigger is still to come, or the transfer has ended
        tid, corr = row["transfer_id"], row["correlation_id"]
        source, target, amount = row["source"], row["target"], row["amount"]
        if row.get("debit") is None:
            request = SagaCause(row["request"], corr, row.get("request_at") or 0)
            try:
                self.send(DebitForTransfer(source, amount, tid), request, "debit")
            except CommandRefused as refused:
                self.send(FailTransfer(tid, refused.reason), request, "fail")
            return  # the debit's Withdrawn moves the saga on when it is delivered
        credit = (row.get("deposits") or {}).get(target)
        if credit is not None:
            at = (row.get("deposits_at") or {}).get(target) or 0
            self.send(CompleteTransfer(tid), SagaCause(credit, corr, at), "complete")
            return
        debit = SagaCause(row["debit"], corr, row.get("debit_at") or 0)
        try:  # (again after a refund: the replayed refusal gives the same reason back)
            self.send(CreditForTransfer(target, amount, tid), debit, "credit")
        except CommandRefused as refused:
            self.send(Refund(source, amount, tid), debit, "refund")
            self.send(CompensateTransfer(tid, refused.reason), debit, "compensate")


def _status(row: dict[str, Any]) -> str:
    """Where the facts put a transfer; facts only accumulate, so this only moves forward."""
    outcome = row.get("outcome")
    if outcome is not None:
        return str(outcome)
    source = row.get("source")
    if source is not None and source in (row.get("deposits") or {}):
        return "compensating"
    if row.get("debit") is not None:
        return "crediting"
    return "debiting"


# -- queries ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GetBalance:
    account_id: str


@dataclass(frozen=True, slots=True)
class GetAccount:
    account_id: str


@dataclass(frozen=True, slots=True)
class GetStatement:
    """The account's statement lines, oldest first: the last ``limit`` (1 to 1000), or all."""

    account_id: str
    limit: int | None = None
    bounds: ClassVar[dict[str, tuple[int, int]]] = {"limit": (1, 1000)}


@dataclass(frozen=True, slots=True)
class GetTotals:
    pass


@dataclass(frozen=True, slots=True)
class GetTransfer:
    transfer_id: str
