"""Deliberately broken variants of the engine: the defects the lab once shipped.

Each is kept so that a test can show the property tests find it and shrink it to a short
counterexample. A defect the property tests cannot find is a hole in the tests.

1. :class:`LegacyTransferSaga`: step keys named after the delivery that ran the step, a
   reply that arrives before its trigger ignored, the row reset by a late duplicate (under
   effectively-once one crash of a partitioned saga leaves a transfer debited and never
   credited; under at-least-once transfers never end).
2. :func:`legacy_skip_foreign`: the partition watermark read the inbox's first entry as its
   lowest once the transport was healed, and jumped over deliveries released behind it.
3. :class:`PositionAtPoll`: at-most-once counted an event as done once polled, so a read
   came back marked fresh without the write.
4. Internal commands over HTTP: see ``tests/http`` (the route table's broken variant).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from cqrs_lab.core import AtMostOnce, Envelope, Saga, Subscription, on
from cqrs_lab.domains.bank import (
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


class LegacyTransferSaga(Saga):
    """The first wave's transfer saga (only the commands renamed)."""

    name = "transfer-saga"
    idempotent = True

    def __init__(self) -> None:
        super().__init__()
        self.transfers = self.table("transfers")

    def open_instances(self) -> int:
        ended = ("completed", "compensated", "failed")
        return sum(1 for row in self.transfers.values() if row["status"] not in ended)

    def _status(self, transfer_id: str, status: str, **extra: Any) -> None:
        self.transfers.update(transfer_id, transfer_id=transfer_id, status=status, **extra)

    @on(TransferRequested)
    def _requested(self, e: TransferRequested, env: Envelope) -> None:
        self._status(e.transfer_id, "debiting", source=e.source, target=e.target, amount=e.amount)
        try:
            self.send(DebitForTransfer(e.source, e.amount, e.transfer_id), env, "debit")
        except CommandRefused as refused:
            self.send(FailTransfer(e.transfer_id, refused.reason), env, "fail")

    @on(Withdrawn)
    def _debited(self, e: Withdrawn, env: Envelope) -> None:
        tid = e.transfer_id
        row = self.transfers.get(tid) if tid else None
        if tid is None or row is None or row["status"] != "debiting":
            return
        self._status(tid, "crediting")
        try:
            self.send(CreditForTransfer(row["target"], e.amount, tid), env, "credit")
        except CommandRefused as refused:
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


def legacy_skip_foreign(self: Subscription) -> None:
    """The first wave's partition watermark: trusts the inbox to be in order once no
    transport is set, so deliveries the healed transport released are jumped over."""
    if self.crashed:
        return
    ceiling = self.fetched
    inbox = self.inbox
    if inbox:
        first = inbox[0].position if self.transport is None else min(e.position for e in inbox)
        ceiling = min(ceiling, first - 1)
    if self.transport is not None:
        held = self.transport.lowest_position()
        if held is not None:
            ceiling = min(ceiling, held - 1)
    self.record.raise_to(ceiling)


@contextmanager
def legacy_partition_watermark() -> Iterator[None]:
    with mock.patch.object(Subscription, "_skip_foreign", legacy_skip_foreign):
        yield


class PositionAtPoll(AtMostOnce):
    """At-most-once that counts an event as done when it is taken, before it is handled."""

    def take(self, sub: Subscription, got: list[Envelope], now: float) -> None:
        super().take(sub, got, now)
        for env in sub.inbox:
            sub.record.add(env.position)
