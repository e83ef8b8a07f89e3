"""Fault schedules generated and shrunk by hypothesis, for both example domains.

Each semantics is held to its promises under any scripted schedule of crashes, drops,
duplicates, delays and reorders; and a property that fails shrinks to the smallest schedule
that shows it, printed as a sentence.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import find, given, settings
from hypothesis import strategies as st

from cqrs_lab.checks import (
    ApplicationLog,
    CheckReport,
    check_engine,
    check_no_double_effect,
    quiesce,
)
from cqrs_lab.core import CrashAt, CrashPoint, DuplicateAt, Engine, FaultPlan, ManualClock
from cqrs_lab.domains import bank, inventory
from cqrs_lab.errors import CommandRefused
from cqrs_lab.testing import (
    bank_commands,
    delivery_semantics,
    fault_plans,
    inventory_commands,
)

OPENING = [bank.OpenAccount(a, "owner", 50) for a in ("a", "b", "c")]


def run(
    install: Any, commands: list[Any], plan: FaultPlan, delivery: str
) -> tuple[Engine, ApplicationLog]:
    log = ApplicationLog()
    engine = Engine(clock=ManualClock(), seed=5, recorder=log)
    log.attach(engine)
    install(engine, delivery=delivery, faults=plan, batch_size=3, checkpoint_every=2)
    for i, cmd in enumerate(commands):
        with contextlib.suppress(CommandRefused):
            engine.dispatch(cmd)
        if i % 3 == 2:  # let the consumers run between bursts of commands
            engine.pump()
    quiesce(engine)
    return engine, log


def assert_promises(report: CheckReport, delivery: str, plan: FaultPlan) -> None:
    status: dict[str, list[str]] = {r.name.split(":")[0]: [] for r in report.results}
    for r in report.results:
        status[r.name.split(":")[0]].append(r.status)
    text = f"{delivery}, schedule: {plan}\n{report.to_text()}"
    assert set(status["application record"]) == {"pass"}, text
    assert set(status["stream versions"]) == {"pass"}, text
    if delivery != "at-most-once":
        assert set(status["no loss"]) == {"pass"}, text
    else:
        assert "fail" not in status["no loss"], text  # every loss was a reported crash loss
    if delivery != "at-least-once":
        assert set(status["no double effect"]) == {"pass"}, text
    if delivery == "effectively-once":
        assert report.ok, text
        if not plan.transport_faults:
            assert all(r.status == "pass" for r in report.results), text


@given(
    commands=st.lists(bank_commands(max_amount=40), max_size=12),
    plan=fault_plans(max_position=15, max_actions=4),
    delivery=delivery_semantics(),
)
@settings(max_examples=max(settings().max_examples, 200))
def test_bank_keeps_its_promises_under_any_schedule(
    commands: list[Any], plan: FaultPlan, delivery: str
) -> None:
    engine, log = run(bank.install, OPENING + commands, plan, delivery)
    assert_promises(check_engine(engine, log, ordered=not plan.transport_faults), delivery, plan)


@given(
    commands=st.lists(inventory_commands(), min_size=1, max_size=15),
    plan=fault_plans(max_position=12, max_actions=4),
    delivery=delivery_semantics(),
)
@settings(max_examples=max(settings().max_examples, 200))
def test_inventory_keeps_its_promises_under_any_schedule(
    commands: list[Any], plan: FaultPlan, delivery: str
) -> None:
    engine, log = run(inventory.install, commands, plan, delivery)
    assert_promises(check_engine(engine, log, ordered=not plan.transport_faults), delivery, plan)


def test_a_failing_schedule_shrinks_to_one_readable_fault() -> None:
    """At-least-once with the non-idempotent balances projection: which schedules make the
    checker report a double effect? Any redelivery of an applied event: a crash after
    handling and before the checkpoint, or a transport duplicate. One such fault at the very
    first event suffices, so the minimal schedule is a single fault at event 1."""

    def double_counts(plan: FaultPlan) -> bool:
        engine, log = run(bank.install, OPENING, plan, "at-least-once")
        return not check_no_double_effect(engine, log).ok

    plan = find(
        fault_plans(max_position=3, max_actions=4),
        double_counts,
        settings=settings(database=None, max_examples=300, derandomize=True),
    )
    assert len(plan.actions) == 1
    (action,) = plan.actions
    assert action.position == 1
    assert action in (CrashAt(1, CrashPoint.AFTER_HANDLE), DuplicateAt(1))
    assert str(plan) in (
        "crash the consumer after handling, before the checkpoint event 1",
        "duplicate event 1",
    )
    # the shrunk schedule really is a counterexample, and the no-fault schedule is not
    assert double_counts(plan) and not double_counts(FaultPlan())
