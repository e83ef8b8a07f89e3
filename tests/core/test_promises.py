"""Regression tests for the promises the first wave broke (each reproduced deterministically
with the public API; the property tests find the same defects in ``tests/properties``)."""

from __future__ import annotations

import pytest

from cqrs_lab.core import (
    CrashAt,
    CrashPoint,
    DelayAt,
    DuplicateAt,
    Engine,
    FaultPlan,
    ManualClock,
    Projection,
)
from cqrs_lab.core.partitions import partition_of
from cqrs_lab.domains import bank
from tests.properties.broken import LegacyTransferSaga

PARTS = 3


def partitioned_saga(saga: Projection, semantics: str) -> Engine:
    engine = Engine(clock=ManualClock(), seed=3)
    bank.install(engine, saga=False, statements=False)
    engine.subscribe_partitioned(saga, semantics, partitions=PARTS)
    for account in ("a", "b"):
        engine.dispatch(bank.OpenAccount(account, account, 100))
    return engine


def balances(engine: Engine) -> tuple[int, int]:
    rows = engine.projection("balances").state()["balances"]
    return rows["a"], rows["b"]


def crash_after_debit_then_reply_first(saga: Projection) -> Engine:
    # t0's stream and its source account b live in different partitions
    tr, src = partition_of("transfer-t0", PARTS), partition_of("account-b", PARTS)
    assert tr != src
    engine = partitioned_saga(saga, "effectively-once")
    engine.pump()
    requested = engine.dispatch(bank.RequestTransfer("t0", "b", "a", 30)).position
    saga_tr = engine.subscription(f"transfer-saga/p{tr}")
    saga_tr.set_faults(FaultPlan(actions=(CrashAt(requested, CrashPoint.AFTER_HANDLE),)))
    saga_tr.pump()  # handles the request, debits b, crashes before its unit commits
    assert saga_tr.crashed
    engine.subscription(f"transfer-saga/p{src}").pump()  # the Withdrawn arrives first
    saga_tr.restart()
    engine.run_until_idle()
    return engine


def test_one_saga_crash_under_effectively_once_still_completes_the_transfer() -> None:
    engine = crash_after_debit_then_reply_first(bank.TransferSaga())
    assert engine.projection("transfer-saga").state()["transfers"]["t0"]["status"] == "completed"
    assert balances(engine) == (130, 70)
    assert engine.projection("transfer-saga").open_instances() == 0  # type: ignore[attr-defined]


def test_the_legacy_saga_loses_the_money_in_the_same_run() -> None:
    engine = crash_after_debit_then_reply_first(LegacyTransferSaga())
    assert balances(engine) == (100, 70)  # b debited, a never credited
    assert engine.projection("transfer-saga").open_instances() == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("saga", [bank.TransferSaga, LegacyTransferSaga])
def test_a_late_duplicate_request_does_not_reopen_a_finished_transfer(saga: type) -> None:
    engine = Engine(clock=ManualClock(), seed=3)
    bank.install(engine, delivery="at-least-once", saga=False, statements=False)
    sub = engine.subscribe(saga(), "at-least-once")
    engine.dispatch(bank.OpenAccount("a", "a", 100))
    engine.dispatch(bank.OpenAccount("b", "b", 0))
    requested = engine.dispatch(bank.RequestTransfer("t0", "a", "b", 30)).position
    # the request is delivered now (the duplicate) and again 5 s later (the original)
    sub.set_faults(FaultPlan(actions=(DuplicateAt(requested), DelayAt(requested, 5.0))))
    engine.pump()
    status = engine.projection("transfer-saga").state()["transfers"]["t0"]["status"]
    assert status == "completed"
    engine.run_until_idle()  # the late original arrives
    status = engine.projection("transfer-saga").state()["transfers"]["t0"]["status"]
    if saga is LegacyTransferSaga:
        assert status == "debiting"  # reset, and it never moves again
    else:
        assert status == "completed"
    assert balances(engine) == (70, 30)


def test_healing_a_partitions_transport_never_skips_a_held_event() -> None:
    engine = Engine(clock=ManualClock(), seed=3)
    bank.install(engine, saga=False, statements=False)
    view = bank.Balances()
    view.name = "partitioned-balances"
    group = engine.subscribe_partitioned(view, "effectively-once", partitions=PARTS)
    p = partition_of("account-a", PARTS)
    member = group.members[p]
    engine.dispatch(bank.OpenAccount("a", "a", 0))
    first = engine.dispatch(bank.Deposit("a", 1)).position
    member.set_faults(FaultPlan(actions=(DelayAt(first, 60.0),)))
    engine.dispatch(bank.Deposit("a", 2))
    engine.dispatch(bank.Deposit("a", 4))
    member.step(max_events=1)  # opened; the first deposit held, the others in the inbox
    member.set_faults(None)  # healed: the held deposit lands behind them
    assert member.position < first
    engine.pump()
    assert view.state()["balances"]["a"] == 7
    assert member.position == engine.store.head_position


def test_at_most_once_positions_count_only_applied_or_lost_events() -> None:
    engine = Engine(clock=ManualClock(), seed=3)
    bank.install(engine, delivery="at-most-once", saga=False, statements=False)
    sub = engine.subscription("balances")
    token = engine.dispatch(bank.OpenAccount("a", "a", 10)).position
    sub.poll()  # taken, not applied
    read = engine.ask(bank.GetBalance("a"), min_position=token)
    assert read.stale and read.value is None and not engine.caught_up("balances", token)
    sub.crash()  # what was taken is gone for good: declared lost
    sub.restart()
    engine.pump()
    read = engine.ask(bank.GetBalance("a"), min_position=token)
    assert not read.stale and read.lost == 1 and read.value is None
    assert sub.stats()["lost"] == 1


@pytest.mark.parametrize("delivery", ["at-most-once", "at-least-once", "effectively-once"])
def test_a_new_read_model_under_a_used_name_starts_from_position_zero(delivery: str) -> None:
    # the engine's checkpoints outlive a subscription; a new, empty read model must not
    # resume from the checkpoint its predecessor committed
    engine = Engine(clock=ManualClock(), seed=3)
    bank.install(engine, saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "a", 5))
    for _ in range(2):
        view = bank.Balances()
        view.name = "again"
        engine.subscribe(view, delivery).pump()
        assert view.state()["balances"] == {"a": 5}
        engine.subscriptions.pop("again")
