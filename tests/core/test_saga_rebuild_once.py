"""A saga rebuilt on purpose moves money once, even after its idempotency records expired.

An admin rebuild (in place or shadow) replays the whole log into the saga. Its steps were
sent before; their effects are in the log. The bus's records of them are bounded, so the
rebuild cannot count on them: it replays the saga's facts without sending the steps caused
by events at or below the position the saga had reached when the rebuild started.
"""

from __future__ import annotations

import pytest

from cqrs_lab.checks import check_domain_invariants, quiesce
from cqrs_lab.core import DelayAt, DropAt, Engine, FaultPlan, InMemoryIdempotencyStore, ManualClock
from cqrs_lab.domains import bank


def _engine_after_transfers(count: int) -> tuple[Engine, ManualClock]:
    clock = ManualClock()
    engine = Engine(clock=clock)
    bank.install(engine)
    engine.bus.idempotency = InMemoryIdempotencyStore(clock, ttl=5, max_keys=1_000)
    engine.dispatch(bank.OpenAccount("a", "ann", 1_000))
    engine.dispatch(bank.OpenAccount("b", "bob", 0))
    engine.dispatch(bank.OpenAccount("c", "cy", 0))
    engine.dispatch(bank.CloseAccount("c"))  # a credit to c is refused: refund, compensate
    for i in range(count):
        engine.dispatch(bank.RequestTransfer(f"t{i}", "a", "c" if i % 3 == 2 else "b", 10))
        engine.run_until_idle()
        clock.advance(10)  # every record is older than the retention when the rebuild starts
    return engine, clock


def _request_id(engine: Engine, transfer_id: str) -> str:
    for env in engine.store.read_all(0, 1_000_000):
        if (
            isinstance(env.payload, bank.TransferRequested)
            and env.payload.transfer_id == transfer_id
        ):
            return env.event_id
    raise AssertionError(transfer_id)


def _ended(engine: Engine) -> dict[str, int]:
    """How many TransferCompleted/Compensated/Failed events each transfer has in the log."""
    counts: dict[str, int] = {}
    ends = (bank.TransferCompleted, bank.TransferCompensated, bank.TransferFailed)
    for env in engine.store.read_all(0, 1_000_000):
        if isinstance(env.payload, ends):
            counts[env.payload.transfer_id] = counts.get(env.payload.transfer_id, 0) + 1
    return counts


@pytest.mark.parametrize("shadow", [False, True], ids=["in-place", "shadow"])
def test_a_rebuilt_saga_moves_no_money_twice(shadow: bool) -> None:
    engine, _clock = _engine_after_transfers(9)
    assert (
        engine.bus.idempotency.get("transfer-saga:" + _request_id(engine, "t8") + ":debit") is None
    )
    balances = {a: engine.ask(bank.GetBalance(a)).value for a in "abc"}
    assert balances == {"a": 940, "b": 60, "c": 0}
    head = engine.store.head_position

    engine.subscription("transfer-saga").rebuild(shadow=shadow)
    engine.run_until_idle()

    assert engine.store.head_position == head  # no step was sent again
    assert {a: engine.ask(bank.GetBalance(a)).value for a in "abc"} == balances
    assert engine.ask(bank.GetTotals()).value["total"] == 1_000  # money conserved
    assert _ended(engine) == {f"t{i}": 1 for i in range(9)}  # each transfer ended once
    saga = engine.projection("transfer-saga")
    assert saga.open_instances() == 0  # type: ignore[attr-defined]
    statuses = {engine.ask(bank.GetTransfer(f"t{i}")).value["status"] for i in range(9)}
    assert statuses == {"completed", "compensated"}  # the rebuilt rows say where each ended

    engine.dispatch(bank.RequestTransfer("t9", "a", "b", 10))  # new work still flows
    engine.run_until_idle()
    assert engine.ask(bank.GetBalance("b")).value == 70
    assert engine.ask(bank.GetTransfer("t9")).value["status"] == "completed"


def test_a_rebuild_started_behind_the_head_sends_the_steps_it_had_not_taken() -> None:
    engine, _clock = _engine_after_transfers(2)
    sub = engine.subscription("transfer-saga")
    engine.dispatch(bank.RequestTransfer("late", "a", "b", 5))  # not yet seen by the saga
    reached = sub.position
    sub.rebuild()
    assert engine.projection("transfer-saga").replay_until == reached  # type: ignore[attr-defined]
    engine.run_until_idle()
    assert engine.ask(bank.GetTransfer("late")).value["status"] == "completed"
    assert engine.ask(bank.GetBalance("b")).value == 25
    assert _ended(engine) == {"t0": 1, "t1": 1, "late": 1}


@pytest.mark.parametrize("fault", ["delay", "drop"])
@pytest.mark.parametrize("delivery", ["effectively-once", "at-least-once"])
def test_a_debit_delivered_before_its_request_after_a_rebuild_still_gets_its_credit(
    fault: str, delivery: str
) -> None:
    """The rebuild's bound is at the request; the debit it caused is above it. Delivered
    first (the request held back), the debit is a fact; the request's delivery, below the
    bound, then derives the credit, whose cause (the debit) was never handled before the
    rebuild: the credit is sent (judged by the delivery's position it was not, and the
    transfer stayed open with its money gone)."""
    engine = Engine(clock=ManualClock(), seed=1)
    bank.install(engine, delivery=delivery)
    engine.dispatch(bank.OpenAccount("a", "ann", 100))  # 1
    engine.dispatch(bank.OpenAccount("b", "bob", 0))  # 2
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))  # 3
    sub = engine.subscription("transfer-saga")
    sub.step(max_events=3)  # the request sends the debit: Withdrawn at 4
    assert engine.store.head_position == 4 and sub.position == 3
    sub.rebuild()  # in place: sends nothing caused at or below 3
    held = DelayAt(3, 1.0) if fault == "delay" else DropAt(3)
    sub.set_faults(FaultPlan(actions=(held,)))
    quiesce(engine, stop_faults=False)
    quiesce(engine)
    assert engine.ask(bank.GetTransfer("t1")).value["status"] == "completed"
    assert [engine.ask(bank.GetBalance(a)).value for a in "ab"] == [70, 30]
    assert _ended(engine) == {"t1": 1}
    assert check_domain_invariants(engine).ok


def test_a_parked_event_replayed_below_the_bound_still_sends_its_step() -> None:
    engine, _clock = _engine_after_transfers(1)
    sub = engine.subscription("transfer-saga")
    saga = engine.projection("transfer-saga")
    handlers = saga.handlers
    real = handlers[bank.TransferRequested]

    def poisoned(event: object, env: object) -> None:
        raise RuntimeError("a bug, fixed later")

    handlers[bank.TransferRequested] = poisoned
    engine.dispatch(bank.RequestTransfer("parked", "a", "b", 7))
    engine.run_until_idle()
    [letter] = engine.dead_letters.list("transfer-saga")
    handlers[bank.TransferRequested] = real
    sub.rebuild()  # the bound passes the parked event, whose step was never taken
    engine.run_until_idle()
    assert engine.ask(bank.GetBalance("b")).value == 10  # the rebuild sent nothing for it
    sub.replay_dead_letter(letter.id)
    engine.run_until_idle()
    assert engine.ask(bank.GetBalance("b")).value == 17
    assert engine.ask(bank.GetTransfer("parked")).value["status"] == "completed"


def test_the_saga_forgets_the_transfers_that_ended_longest_ago(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bank.TransferSaga, "keep_ended", 3)
    engine, _clock = _engine_after_transfers(6)  # t2 and t5 go to the closed account
    saga = engine.projection("transfer-saga")
    assert sorted(saga.transfers) == ["t3", "t4", "t5"]  # type: ignore[attr-defined]
    assert engine.ask(bank.GetTransfer("t0")).value is None  # forgotten: the log keeps it
    assert engine.ask(bank.GetTransfer("t5")).value["status"] == "compensated"
    assert engine.ask(bank.GetTotals()).value["total"] == 1_000


def test_a_statement_keeps_the_newest_lines_of_each_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bank.Statements, "max_lines", 8)
    engine = Engine(clock=ManualClock())
    bank.install(engine)
    engine.dispatch(bank.OpenAccount("a", "ann", 0))
    for amount in range(1, 21):
        engine.dispatch(bank.Deposit("a", amount))
    engine.run_until_idle()
    lines = engine.ask(bank.GetStatement("a")).value
    assert 6 <= len(lines) <= 8
    assert [line["amount"] for line in lines] == list(range(21 - len(lines), 21))
    assert engine.ask(bank.GetStatement("a", 3)).value == lines[-3:]
    assert engine.ask(bank.GetBalance("a")).value == 210  # the balance keeps the whole story
