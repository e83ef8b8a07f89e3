"""Engine bugs the checks found, kept as regression tests (minimal reproductions)."""

from __future__ import annotations

from cqrs_lab.checks import ApplicationLog, check_engine, check_no_double_effect, quiesce
from cqrs_lab.core import CrashAt, CrashPoint, DelayAt, DuplicateAt, Engine, FaultPlan, ManualClock
from cqrs_lab.domains import bank


def engine_with_log(**install: object) -> tuple[Engine, ApplicationLog]:
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=1, recorder=log)
    log.attach(engine)
    bank.install(engine, saga=False, statements=False, **install)  # type: ignore[arg-type]
    return engine, log


def test_crash_after_a_mid_batch_checkpoint_takes_the_consumer_down_cleanly() -> None:
    """Found by the stateful test: a crash planned "after the checkpoint" fires inside
    commit() in the middle of a batch (checkpoint_every=2); the crash empties the inbox and
    the loop went on to pop from it (IndexError)."""
    engine, log = engine_with_log(batch_size=4, checkpoint_every=2)
    for a in "abc":
        engine.dispatch(bank.OpenAccount(a, "owner", 0))
    sub = engine.subscription("balances")
    sub.set_faults(FaultPlan(actions=(CrashAt(1, CrashPoint.AFTER_CHECKPOINT),)))
    engine.run_until_idle()  # raised IndexError before the fix
    assert sub.crashed and sub.position == 2  # events 1 and 2 were committed together
    quiesce(engine)
    assert check_engine(engine, log).ok


def test_switching_faults_off_does_not_apply_a_held_duplicate_twice_at_most_once() -> None:
    """Found while building the stateful test: event 2 is both delayed and duplicated; the
    duplicate is delivered (and taken) at once, the original is held. ``set_faults(None)``
    moved the held original straight into the inbox, past at-most-once's dedup on take, so
    event 2 was applied twice under a semantics that promises never twice."""
    engine, log = engine_with_log(
        delivery="at-most-once", faults=FaultPlan(actions=(DelayAt(2, 5.0), DuplicateAt(2)))
    )
    for i in range(3):
        engine.dispatch(bank.OpenAccount(f"a{i}", "owner", 10))
    engine.pump()
    engine.set_faults(None)  # the held original of event 2 comes out now
    quiesce(engine)
    assert log.net_applications("balances") == {1: 1, 2: 1, 3: 1}
    assert check_no_double_effect(engine, log).ok
    assert engine.projection("balances").state()["totals"]["total"] == 30
