from __future__ import annotations

import pytest

from cqrs_lab.core import CrashAt, CrashPoint, Engine, FaultPlan, ManualClock, OutboxRelay
from cqrs_lab.core.store import OutboxMessage
from cqrs_lab.domains import bank


def setup(delivery: str = "effectively-once", faults: FaultPlan | None = None) -> Engine:
    engine = Engine(clock=ManualClock(), seed=3)
    bank.install(engine, delivery=delivery, faults=faults)
    engine.dispatch(bank.OpenAccount("a", "ann", 100))
    engine.dispatch(bank.OpenAccount("b", "bob", 0))
    return engine


def balance(engine: Engine, account: str) -> int:
    return engine.repository.load(bank.Account, bank.account_stream(account)).balance


def test_transfer_moves_money_and_completes() -> None:
    engine = setup()
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))
    engine.run_until_idle()
    assert (balance(engine, "a"), balance(engine, "b")) == (70, 30)
    assert engine.ask(bank.GetTransfer("t1")).value["status"] == "completed"
    assert engine.repository.load(bank.Transfer, "transfer-t1").status == "completed"


def test_refused_credit_is_compensated_and_money_is_conserved() -> None:
    engine = setup()
    engine.dispatch(bank.CloseAccount("b"))
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))
    engine.run_until_idle()
    assert (balance(engine, "a"), balance(engine, "b")) == (100, 0)
    row = engine.ask(bank.GetTransfer("t1")).value
    assert row["status"] == "compensated" and "closed" in row["reason"]
    kinds = [line["kind"] for line in engine.ask(bank.GetStatement("a")).value]
    assert kinds == ["opened", "withdrawal", "deposit"]  # debit, then the refund


def test_refused_debit_fails_the_transfer_without_moving_money() -> None:
    engine = setup()
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 500))
    engine.run_until_idle()
    assert (balance(engine, "a"), balance(engine, "b")) == (100, 0)
    assert engine.ask(bank.GetTransfer("t1")).value["status"] == "failed"


@pytest.mark.parametrize("delivery", ["at-least-once", "effectively-once"])
@pytest.mark.parametrize("point", list(CrashPoint))
def test_saga_is_idempotent_under_redelivery_after_a_crash(
    delivery: str, point: CrashPoint
) -> None:
    # crash the saga right around the TransferRequested event (position 4): on restart it is
    # delivered again and re-sends the debit with the same idempotency key
    plan = FaultPlan(actions=(CrashAt(4, point, subscription="transfer-saga"),))
    engine = setup(delivery, plan)
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))
    engine.run_until_idle()
    saga = engine.subscriptions["transfer-saga"]
    assert saga.crashes == 1
    saga.restart()
    engine.run_until_idle()
    assert (balance(engine, "a"), balance(engine, "b")) == (70, 30)
    assert engine.ask(bank.GetTransfer("t1")).value["status"] == "completed"


def test_outbox_is_relayed_at_least_once_with_stable_ids() -> None:
    engine = setup()
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 5))
    engine.dispatch(bank.RequestTransfer("t2", "a", "b", 6))
    received: list[OutboxMessage] = []
    relay = OutboxRelay(engine.store, received.append)
    first_id = engine.store.outbox_pending()[0].message_id
    relay.crash_after_publish.add(first_id)  # crash after publishing, before marking it
    assert relay.run() == 0
    assert [m.message_id for m in received] == [first_id]
    relay.run()
    ids = [m.message_id for m in received]
    assert ids[0] == ids[1] == first_id and len(ids) == 3  # redelivered once, same id
    assert {m.payload["transfer_id"] for m in received} == {"t1", "t2"}
    assert engine.store.outbox_pending() == []
    # a consumer deduplicating by id sees each message once
    assert len({m.message_id for m in received}) == 2


def test_the_refund_is_never_refused_even_if_the_source_closed_meanwhile() -> None:
    engine = setup()
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))
    engine.subscriptions["transfer-saga"].step()  # the saga debits a
    assert balance(engine, "a") == 70
    engine.dispatch(bank.CloseAccount("b"))  # the credit will be refused
    engine.dispatch(bank.CloseAccount("a"))  # and the source closed in between
    engine.run_until_idle()
    assert (balance(engine, "a"), balance(engine, "b")) == (100, 0)
    assert engine.ask(bank.GetTransfer("t1")).value["status"] == "compensated"
    assert len(engine.dead_letters) == 0
