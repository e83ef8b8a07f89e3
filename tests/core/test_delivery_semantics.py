"""Each delivery semantics keeps its promise under crashes at every named point and under
transport duplicates, reorders, delays and drops (and breaks exactly the promise it does not make).
"""

from __future__ import annotations

import pytest

from cqrs_lab.core import CrashAt, CrashPoint, DelayAt, DropAt, DuplicateAt, FaultPlan, ReorderAt
from tests.core.helpers import tally_engine

N = 20
BATCH = 5  # the crash at event 7 happens inside the batch 6..10


def run(delivery: str, plan: FaultPlan, batch: int = BATCH):  # type: ignore[no-untyped-def]
    engine, tally, rec = tally_engine(N, delivery=delivery, batch_size=batch, faults=plan)
    sub = engine.subscriptions["tally"]
    engine.run_until_idle()
    if sub.crashed:
        sub.restart()
        engine.run_until_idle()
    assert not sub.crashed and sub.position == N
    counts = {p: tally.count.get(p, 0) for p in range(1, N + 1)}
    return counts, rec, sub


@pytest.mark.parametrize("point", list(CrashPoint))
def test_at_most_once_loses_exactly_the_in_flight_events_and_never_applies_twice(
    point: CrashPoint,
) -> None:
    counts, rec, sub = run("at-most-once", FaultPlan(actions=(CrashAt(7, point),)))
    assert rec.crashes == 1
    assert max(counts.values()) == 1
    lost = {p for p, c in counts.items() if c == 0}
    assert lost == set(rec.lost) == set(range(1, N + 1)) - set(rec.applications)
    # the batch 6..10 was taken before handling; what had not run when it crashed is gone
    expected = {
        CrashPoint.BEFORE_HANDLE: {7, 8, 9, 10},
        CrashPoint.AFTER_HANDLE: {8, 9, 10},
        CrashPoint.AFTER_CHECKPOINT: set(),  # the batch had finished: nothing in flight
    }[point]
    assert lost == expected
    assert sub.lost == len(expected)


@pytest.mark.parametrize("point", list(CrashPoint))
def test_at_least_once_loses_nothing_and_applies_the_redelivered_events_again(
    point: CrashPoint,
) -> None:
    counts, rec, sub = run("at-least-once", FaultPlan(actions=(CrashAt(7, point),)))
    assert min(counts.values()) >= 1  # nothing lost
    twice = {p for p, c in counts.items() if c == 2}
    # handled since the last checkpoint (5), then redelivered from it after the restart
    expected = {
        CrashPoint.BEFORE_HANDLE: {6},
        CrashPoint.AFTER_HANDLE: {6, 7},
        CrashPoint.AFTER_CHECKPOINT: set(),
    }[point]
    assert twice == expected
    assert max(counts.values()) <= 2
    assert sub.duplicates_applied == len(expected)
    assert rec.lost == []


@pytest.mark.parametrize("point", list(CrashPoint))
def test_effectively_once_loses_nothing_and_applies_each_once(point: CrashPoint) -> None:
    counts, rec, sub = run("effectively-once", FaultPlan(actions=(CrashAt(7, point),)))
    assert set(counts.values()) == {1}
    assert rec.crashes == 1 and rec.lost == []
    if point is not CrashPoint.AFTER_CHECKPOINT:
        # the open unit (events 6.. of the batch) was undone with its record, then redone
        assert 6 in rec.undone
    assert sub.duplicates_applied == 0


TRANSPORT = FaultPlan(
    actions=(DuplicateAt(9), ReorderAt(12, by=2), DelayAt(3, 0.5), DropAt(15)),
    redelivery_timeout=2.0,
)


def test_transport_faults_under_at_most_once_lose_nothing_without_a_crash() -> None:
    counts, rec, sub = run("at-most-once", TRANSPORT)
    assert set(counts.values()) == {1}
    assert (9, "duplicate") in rec.skips
    assert sub.transport is not None and sub.transport.dropped == 1


def test_transport_duplicate_is_applied_twice_under_at_least_once() -> None:
    counts, _, sub = run("at-least-once", TRANSPORT)
    assert counts[9] == 2
    assert {p for p, c in counts.items() if c != 1} == {9}
    assert sub.duplicates_applied == 1


def test_transport_faults_under_effectively_once_apply_each_once() -> None:
    counts, rec, _ = run("effectively-once", TRANSPORT)
    assert set(counts.values()) == {1}
    assert (9, "duplicate") in rec.skips


def test_reorder_and_delay_change_the_order_of_application() -> None:
    _, rec, _ = run("effectively-once", TRANSPORT)
    order = rec.applications
    assert order.index(12) > order.index(13)  # moved back behind later events
    assert order.index(3) > order.index(4)  # delayed until its due time
    assert order.index(15) > order.index(16)  # dropped, redelivered after the timeout


def test_a_dropped_delivery_comes_back_only_after_the_redelivery_timeout() -> None:
    engine, tally, _ = tally_engine(5, delivery="effectively-once", faults=FaultPlan(
        actions=(DropAt(2),), redelivery_timeout=3.0))  # fmt: skip
    sub = engine.subscriptions["tally"]
    engine.pump()
    assert sub.position == 1 and tally.count.get(2) is None and tally.count.get(5) == 1
    assert sub.next_due() == 3.0
    engine.run_until_idle()
    assert sub.position == 5 and tally.count.get(2) == 1


@pytest.mark.parametrize("delivery", ["at-most-once", "at-least-once", "effectively-once"])
def test_random_faults_keep_each_promise(delivery: str) -> None:
    plan = FaultPlan(drop=0.1, duplicate=0.2, reorder=0.2, delay=0.1, redelivery_timeout=1.0)
    engine, tally, _ = tally_engine(300, seed=11, delivery=delivery, batch_size=16, faults=plan)
    sub = engine.subscriptions["tally"]
    for _ in range(6):  # crash and restart a few times along the way
        engine.pump()
        sub.crash()
        sub.restart()
        engine.clock.advance(0.3)  # type: ignore[attr-defined]
    engine.run_until_idle()
    counts = [tally.count.get(p, 0) for p in range(1, 301)]
    if delivery == "at-most-once":
        assert max(counts) == 1
    elif delivery == "at-least-once":
        assert min(counts) >= 1 and max(counts) >= 2  # duplicates were injected
    else:
        assert counts == [1] * 300


def test_a_crash_after_a_mid_batch_checkpoint_stops_the_batch_and_loses_nothing() -> None:
    plan = FaultPlan(actions=(CrashAt(3, CrashPoint.AFTER_CHECKPOINT),))
    engine, tally, _ = tally_engine(
        10, delivery="at-least-once", batch_size=10, checkpoint_every=3, faults=plan
    )
    sub = engine.subscriptions["tally"]
    engine.pump()
    assert sub.crashed and sub.checkpoint == 3 and sorted(tally.count) == [1, 2, 3]
    sub.restart()
    engine.pump()
    assert [tally.count.get(p) for p in range(1, 11)] == [1] * 10  # resumed after 3: no repeat


@pytest.mark.parametrize("rebuild", ["in place", "shadow"])
def test_at_most_once_counts_as_lost_only_what_the_view_handles_until_a_rebuild(
    rebuild: str,
) -> None:
    from cqrs_lab.checks import quiesce
    from cqrs_lab.core import Engine, ManualClock
    from cqrs_lab.domains import bank

    engine = Engine(clock=ManualClock(), seed=1)
    bank.install(engine, delivery="at-most-once", saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 10))
    engine.pump()
    sub = engine.subscription("balances")
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 5))  # balances ignores it
    sub.poll()
    sub.crash()  # in flight: nothing balances would have applied
    assert sub.lost == 0
    deposit = engine.dispatch(bank.Deposit("a", 3))
    sub.restart()
    sub.poll()
    sub.crash()  # the deposit in flight: lost for good
    quiesce(engine)
    answer = engine.ask(bank.GetBalance("a"), min_position=deposit.position)
    assert (answer.value, answer.lost) == (10, 1)
    sub.rebuild(shadow=rebuild == "shadow")
    quiesce(engine)
    answer = engine.ask(bank.GetBalance("a"), min_position=deposit.position)
    assert (answer.value, answer.lost) == (13, 0)  # replayed from 0: nothing is missing now
