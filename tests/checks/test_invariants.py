"""Each invariant on small engine runs whose answer follows from the delivery semantics,
and proof that each check bites on a deliberately broken variant."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from cqrs_lab.checks import (
    ApplicationLog,
    check_application_order,
    check_convergence,
    check_engine,
    check_log_streams,
    check_no_double_effect,
    check_no_loss,
    check_no_lost_update,
    check_record_explains_model,
    interleave,
    quiesce,
)
from cqrs_lab.core import (
    ANY,
    AtMostOnce,
    CrashAt,
    CrashPoint,
    DuplicateAt,
    Engine,
    FaultPlan,
    InMemoryEventStore,
    ManualClock,
    ReorderAt,
    SequentialIds,
)
from cqrs_lab.domains import bank
from cqrs_lab.domains.bank import check_sagas


def run_bank(
    delivery: Any, plan: FaultPlan | None, *, saga: bool = False
) -> tuple[Engine, ApplicationLog]:
    """Open a (10), deposit 5 and 7 into a, open b (0): positions 1..4 on two streams."""
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=1, recorder=log)
    log.attach(engine)
    bank.install(engine, delivery=delivery, faults=plan, saga=saga, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 10))
    engine.dispatch(bank.Deposit("a", 5))
    engine.dispatch(bank.Deposit("a", 7))
    engine.dispatch(bank.OpenAccount("b", "bob", 0))
    quiesce(engine)
    return engine, log


def status(report: Any, name: str) -> str:
    return str(report[name].status)


def test_recorder_counts_deliveries_applications_and_crash_losses() -> None:
    # at-most-once, crash before handling event 2: the batch 2..4 was taken (checkpointed)
    # and is lost; only event 1 was applied
    _, log = run_bank("at-most-once", FaultPlan(actions=(CrashAt(2, CrashPoint.BEFORE_HANDLE),)))
    assert log.net_applications("balances") == {1: 1}
    assert log.lost_positions("balances") == {2, 3, 4}
    assert log.counts()["balances"]["crashed"] == 1
    df = log.to_frame()
    assert set(df["kind"]) == {"delivered", "applied", "crashed", "lost"}


def test_effectively_once_rollback_is_recorded_and_undone() -> None:
    # crash after handling event 2, before the commit: the unit (1, 2) is rolled back and
    # redelivered, so each event counts once
    engine, log = run_bank("effectively-once", FaultPlan(actions=(CrashAt(2),)))
    kinds = [r.kind for r in log.records("balances")]
    assert kinds.count("rolled_back") == 2
    assert log.net_applications("balances") == {1: 1, 2: 1, 3: 1, 4: 1}
    assert check_engine(engine, log).ok


def test_a_clean_run_passes_every_check_under_every_semantics() -> None:
    for delivery in ("at-most-once", "at-least-once", "effectively-once"):
        engine, log = run_bank(delivery, None, saga=True)
        report = check_engine(engine, log)
        assert report.ok, report.to_text()
        assert all(r.status == "pass" for r in report.results), report.to_text()


def test_non_idempotent_projection_under_at_least_once_with_a_duplicate_double_counts() -> None:
    # the transport duplicates event 2 (deposit 5): Balances adds it twice
    engine, log = run_bank("at-least-once", FaultPlan(actions=(DuplicateAt(2),)))
    double = check_no_double_effect(engine, log)
    assert status(double, "no double effect: balances") == "fail"
    (v,) = double.violations()
    assert v.evidence[0]["position"] == 2 and v.evidence[0]["applications"] == 2
    # the read model is 10 + 5 + 5 + 7 = 27 against the fold's 22; at-least-once does not
    # promise convergence for a projection that is applied twice, so this is info
    conv = check_convergence(engine, log)
    assert status(conv, "convergence: balances") == "info"
    assert engine.projection("balances").state()["balances"]["a"] == 27
    # and the log explains the read model exactly, duplicate included
    assert check_record_explains_model(engine, log).ok
    assert not check_engine(engine, log).ok


def test_the_same_duplicate_is_harmless_under_effectively_once() -> None:
    engine, log = run_bank("effectively-once", FaultPlan(actions=(DuplicateAt(2),)))
    assert check_engine(engine, log).ok
    assert engine.projection("balances").state()["balances"]["a"] == 22


class CheckpointFirst(AtMostOnce):
    """Broken: claims at-least-once (no loss) but checkpoints before the handler runs."""

    name: ClassVar[str] = "at-least-once"
    promises_no_loss: ClassVar[bool] = True


def test_checkpoint_before_handler_under_a_crash_loses_events_and_is_reported() -> None:
    engine, log = run_bank(
        CheckpointFirst(), FaultPlan(actions=(CrashAt(3, CrashPoint.BEFORE_HANDLE),))
    )
    loss = check_no_loss(engine, log)
    assert status(loss, "no loss: balances") == "fail"
    # events 3 and 4 were in flight when the crash hit
    assert sorted(v.evidence[0]["position"] for v in loss.violations()) == [3, 4]
    assert status(check_convergence(engine, log), "convergence: balances") == "fail"


def test_at_most_once_loss_is_info_when_a_crash_reported_it() -> None:
    engine, log = run_bank(
        "at-most-once", FaultPlan(actions=(CrashAt(3, CrashPoint.BEFORE_HANDLE),))
    )
    loss = check_no_loss(engine, log)
    assert status(loss, "no loss: balances") == "info"
    assert all(v.evidence[0]["reported_lost_by_crash"] for v in loss.violations())


def test_no_loss_needs_quiescence() -> None:
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=1, recorder=log)
    log.attach(engine)
    bank.install(engine, saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 10))  # never pumped
    res = check_no_loss(engine, log)["no loss: balances"]
    assert res.status == "fail" and "not at quiescence" in res.violations[0].message


def test_application_order_with_a_reorder() -> None:
    # deliver event 2 (a v2) after event 3 (a v3): stream a is applied out of version order
    engine, log = run_bank("effectively-once", FaultPlan(actions=(ReorderAt(2, by=1),)))
    seq = [e.position for e in log.applied_sequence("balances")]
    assert seq.index(3) < seq.index(2)
    assert status(check_application_order(engine, log), "application order: balances") == "info"
    forced = check_application_order(engine, log, ordered=True)
    assert status(forced, "application order: balances") == "fail"
    assert forced.violations()[0].evidence[0]["missing_version"] == 2
    # the model still converges: order does not matter to sums
    assert check_convergence(engine, log).ok


def test_in_place_rebuild_starts_a_new_epoch() -> None:
    engine, log = run_bank("effectively-once", None)
    engine.subscription("balances").rebuild()
    quiesce(engine)
    # every event applied twice in all, but once since the rebuild
    assert sum(r.kind == "applied" for r in log.records("balances")) == 8
    assert log.net_applications("balances") == {1: 1, 2: 1, 3: 1, 4: 1}
    assert check_engine(engine, log).ok


def test_shadow_rebuild_is_reported_unverifiable_and_still_converges() -> None:
    engine, log = run_bank("effectively-once", None)
    engine.subscription("balances").rebuild(shadow=True)
    engine.dispatch(bank.Deposit("b", 4))
    quiesce(engine)
    # the shadow copy applied events 1..5 without a recorder: the log cannot vouch for them
    assert not log.verifiable("balances")
    report = check_engine(engine, log)
    for check in ("application record", "no loss", "no double effect", "application order"):
        res = report[f"{check}: balances"]
        assert res.status == "info" and "shadow rebuild" in res.summary
    assert report["convergence: balances"].status == "pass"
    assert report.ok
    # an in-place rebuild afterwards is recorded again from the start
    engine.subscription("balances").rebuild()
    quiesce(engine)
    assert log.verifiable("balances")
    assert all(r.status == "pass" for r in check_engine(engine, log).results)


def test_application_record_bites_on_a_projection_mutated_behind_its_back() -> None:
    engine, log = run_bank("effectively-once", None)
    engine.projection("balances").tables[0].put("a", 999)
    res = check_record_explains_model(engine, log)
    assert not res.ok
    assert res.violations()[0].evidence[0] == {"read_model": 999, "recorded": 22}


# -- sagas ----------------------------------------------------------------------------------
def transfers(delivery: str, plan: FaultPlan | None, saga: Any = None) -> Engine:
    """The saga (and only the saga) runs under ``delivery``; balances are effectively-once."""
    engine = Engine(clock=ManualClock(), seed=4)
    bank.install(engine, saga_delivery=delivery, faults=plan, saga=saga is None, statements=False)
    if saga is not None:
        engine.subscribe(saga, delivery, faults=plan)
    engine.dispatch(bank.OpenAccount("a", "ann", 100))
    engine.dispatch(bank.OpenAccount("b", "bob", 0))
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))  # completes
    engine.dispatch(bank.RequestTransfer("t2", "a", "zz", 20))  # no target: compensated
    engine.dispatch(bank.RequestTransfer("t3", "b", "a", 500))  # insufficient: failed
    quiesce(engine)
    return engine


def test_sagas_end_and_conserve_money() -> None:
    engine = transfers("at-least-once", FaultPlan(actions=(CrashAt(7),)))
    report = check_sagas(engine)
    assert report.ok, report.to_text()
    # t1 moved 30 from a to b; t2 (no account zz) was refunded; t3 (b has 30 < 500) failed
    assert engine.projection("balances").state()["balances"] == {"a": 70, "b": 30}


class ForgetfulSaga(bank.TransferSaga):
    """Broken: sends its commands without idempotency keys, so a redelivery acts twice."""

    name = "forgetful-saga"

    def send(self, command: Any, cause: Any, step: str) -> Any:
        assert self._dispatch is not None
        return self._dispatch(command)


def test_a_saga_without_idempotency_keys_moves_money_twice_under_redelivery() -> None:
    # crash after handling event 3 (t1 requested, the debit already sent) before the
    # checkpoint: the redelivered request debits again
    engine = transfers("at-least-once", FaultPlan(actions=(CrashAt(3),)), saga=ForgetfulSaga())
    res = check_sagas(engine)["sagas: money conserved"]
    assert res.status == "fail"
    assert any(
        v.evidence[0]["transfer"] == "t1" and len(v.evidence[0]["debits"]) == 2
        for v in res.violations
    )


def test_unfinished_transfer_is_reported() -> None:
    engine = Engine(clock=ManualClock(), seed=4)
    bank.install(engine, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 100))
    engine.dispatch(bank.RequestTransfer("t1", "a", "b", 30))  # the saga never runs
    res = check_sagas(engine)["sagas: every transfer ends"]
    assert res.status == "fail" and "t1" in res.violations[0].message


# -- optimistic concurrency -----------------------------------------------------------------
class LastWriterWins(InMemoryEventStore):
    """Broken: ignores the expected version, so a stale decision is appended anyway."""

    def append(self, stream_id: str, events: Any, expected_version: Any, **kw: Any) -> Any:
        return super().append(stream_id, events, ANY, **kw)


def race(engine: Engine) -> Any:
    bank.install(engine, saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 100))
    # both writers read a at v1 (balance 100), then both commit a withdrawal of 80
    return interleave(engine, [[bank.Withdraw("a", 80)], [bank.Withdraw("a", 80)]], [0, 1, 0, 1])


def test_occ_refuses_the_stale_write() -> None:
    engine = Engine(clock=ManualClock(), seed=0)
    writes = race(engine)
    assert [x.outcome for x in writes] == ["accepted", "conflict"]
    assert check_no_lost_update(engine, writes).ok


def test_a_store_without_occ_loses_an_update_and_is_reported() -> None:
    clock = ManualClock()
    engine = Engine(clock=clock, seed=0, store=LastWriterWins(clock, SequentialIds()))
    writes = race(engine)
    assert [x.outcome for x in writes] == ["accepted", "accepted"]
    rep = check_no_lost_update(engine, writes)
    assert not rep.ok
    (v,) = rep.violations()
    assert v.evidence[0]["read_version"] == 1 and v.evidence[0]["stored_at_version"] == 3
    # the business rule it broke: 100 - 80 - 80 is an overdraft
    engine.pump()
    assert engine.projection("balances").state()["balances"]["a"] == -60


def test_interleave_rejects_a_bad_schedule() -> None:
    from cqrs_lab.errors import ConfigError

    engine = Engine(clock=ManualClock(), seed=0)
    bank.install(engine, saga=False, statements=False)
    with pytest.raises(ConfigError, match=r"schedule\[0\]=5"):
        interleave(engine, [[bank.Deposit("a", 1)]], [5])


class LossyLog(InMemoryEventStore):
    """Broken: its global read skips the event at position 2."""

    def read_all(self, after: int = 0, limit: int | None = None) -> Any:
        return [e for e in super().read_all(after, limit) if e.position != 2]


def test_stream_versions_bite_on_a_store_that_loses_an_event() -> None:
    clock = ManualClock()
    engine = Engine(clock=clock, seed=0, store=LossyLog(clock, SequentialIds()))
    bank.install(engine, saga=False, statements=False)
    engine.dispatch(bank.OpenAccount("a", "ann", 1))
    engine.dispatch(bank.Deposit("a", 2))  # position 2, a v2: skipped by read_all
    engine.dispatch(bank.Deposit("a", 3))  # a v3 now follows a v1
    res = check_log_streams(engine)
    assert res.status == "fail"
    (v,) = res.violations
    assert v.evidence[0]["version"] == 3 and v.evidence[0]["previous_version"] == 1


def test_saga_read_model_disagreeing_with_the_log_is_reported() -> None:
    engine = transfers("effectively-once", None)
    saga = engine.projection("transfer-saga")
    saga.tables[0].update("t1", status="debiting")  # the log says completed
    res = check_sagas(engine)["sagas: read model agrees"]
    assert res.status == "fail"
    assert "t1" in res.violations[0].message and "'completed'" in res.violations[0].message


class ShortMemorySaga(bank.TransferSaga):
    keep_ended = 3  # the bank's saga keeps 10,000: a long run forgets the same way


def test_transfers_the_saga_forgot_by_design_are_not_shown_wrongly() -> None:
    """Past ``keep_ended`` the saga forgets the transfers that ended longest ago; the check
    counted each as a row that disagrees with the log (a correct run failed). A transfer
    it should still keep, missing, is still a failure."""
    engine = Engine(clock=ManualClock(), seed=1)
    bank.install(engine, saga=False)
    engine.subscribe(ShortMemorySaga(), "effectively-once")
    engine.dispatch(bank.OpenAccount("a", "ann", 100))
    engine.dispatch(bank.OpenAccount("b", "bob", 100))
    for i in range(5):
        engine.dispatch(bank.RequestTransfer(f"t{i}", "a", "b", 1))
        engine.run_until_idle()
    saga = engine.projection("transfer-saga")
    assert sorted(saga.tables[0]) == ["t2", "t3", "t4"]  # t0 and t1 forgotten
    assert check_sagas(engine).ok, check_sagas(engine).to_text()
    saga.tables[0].delete("t2")  # the oldest it must still keep
    res = check_sagas(engine)["sagas: read model agrees"]
    assert res.status == "fail" and "t2" in res.violations[0].message


def test_convergence_excuses_a_poison_event_parked_as_a_dead_letter() -> None:
    """A poison event is parked; the read model lacks it, as check_no_loss accepts: the
    fold leaves it out too, until it is replayed (then it is folded again)."""
    from tests.checks.test_consumers import Picky, engine_with

    picky = Picky(bad=(2,))
    engine = engine_with(picky, events=5)
    log = ApplicationLog()
    engine.subscriptions["picky"].recorder = log
    engine.run_until_idle()
    (letter,) = engine.dead_letters.list()
    assert letter.envelope.position == 3

    assert check_no_loss(engine, log).ok
    result = check_convergence(engine, log)["convergence: picky"]
    assert result.status == "pass", result
    assert result.summary == "equals the fold of 4 events (1 dead-lettered excused)"

    picky.left[2] = 0  # fixed: the replay applies it, and the fold takes it back
    engine.subscriptions["picky"].replay_dead_letter(letter.id)
    assert check_convergence(engine, log)["convergence: picky"].summary == (
        "equals the fold of 5 events"
    )
