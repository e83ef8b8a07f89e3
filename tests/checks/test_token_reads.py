"""A read that ignores the consistency token is caught by the history checker; the same
client waiting on its token is not."""

from __future__ import annotations

from cqrs_lab.checks import Operation, check_history
from cqrs_lab.core import Engine, ManualClock
from cqrs_lab.domains import bank


def session(wait_for_token: bool) -> list[Operation]:
    """One client deposits and reads its balance back, three times over; the projection only
    catches up when the client waits (or at the end of each round)."""
    clock = ManualClock()
    engine = Engine(clock=clock, seed=3)
    bank.install(engine, saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 0))
    engine.run_until_idle()
    history = []
    for amount in (5, 7, 9):
        t0 = clock.now()
        r = engine.dispatch(bank.Deposit("a", amount))
        clock.advance(0.01)
        history.append(Operation("c1", "write", "a", t0, clock.now(), "ok", amount, r.position))
        t1 = clock.now()
        if wait_for_token:
            while not engine.caught_up("balances", r.position):
                engine.pump()
        answer = engine.ask(bank.GetBalance("a"))  # the broken client passes no token
        clock.advance(0.01)
        history.append(
            Operation("c1", "read", "a", t1, clock.now(), "ok", answer.value, answer.position)
        )
        engine.run_until_idle()
        clock.advance(1.0)
    return history


def test_a_read_that_ignores_the_token_violates_read_your_writes() -> None:
    report = check_history(session(wait_for_token=False))
    ryw = report["read-your-writes"]
    assert ryw.status == "fail"
    # each round's read answered from the position before that round's deposit
    assert len(ryw.violations) == 3
    for v in ryw.violations:
        write, read = v.evidence
        assert write["op"] == "write" and read["op"] == "read"
        assert read["position"] == write["position"] - 1
    assert not report.ok


def test_the_same_client_waiting_on_its_token_reads_its_writes() -> None:
    history = session(wait_for_token=True)
    assert check_history(history).ok
    assert [op.value for op in history if op.op == "read"] == [5, 12, 21]
