"""The property tests find each defect the lab once shipped, and shrink it to a short,
readable counterexample (the broken variants live in ``broken.py``).

If one of these stops failing, the property tests have gone blind to that defect. The fixed
engine runs the same machines in ``test_sagas_stateful.py`` and ``test_stateful.py``."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from tests.properties import test_stateful
from tests.properties.broken import (
    LegacyTransferSaga,
    PositionAtPoll,
    legacy_partition_watermark,
)
from tests.properties.machines import machine

# derandomized and without the example database: the same search every run
SEARCH = settings(
    max_examples=2500,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    report_multiple_bugs=False,
    suppress_health_check=list(HealthCheck),
)


def counterexample(cls: type[RuleBasedStateMachine], match: str | None = None) -> list[str]:
    """Run the machine, expect a failure, and return the shrunk example's rules as
    hypothesis prints them (``state.rule(...)``; invariants and teardown left out)."""
    with pytest.raises(AssertionError, match=match) as failure:
        run_state_machine_as_test(cls, settings=SEARCH)
    notes = "\n".join(getattr(failure.value, "__notes__", []))
    calls = [line.strip() for line in notes.splitlines() if line.strip().startswith("state.")]
    return [c for c in calls if not c.startswith(("state.safety", "state.teardown"))]


def short(steps: list[str], most: int) -> None:
    """The shrunk counterexample is a short list of rules a person can replay."""
    assert steps, "the counterexample ran no rule"
    assert len(steps) <= most, "\n".join(steps)


def test_a_saga_ignoring_early_replies_loses_money_under_effectively_once() -> None:
    # defect 1: a partitioned saga crashes after its debit; on restart the Withdrawn comes
    # before the redelivered TransferRequested and the transfer never completes
    cls = machine(semantics="effectively-once", partitions=3, saga_class=LegacyTransferSaga)
    steps = counterexample(cls)
    short(steps, 20)
    assert any("transfer(" in s for s in steps), steps


def test_a_saga_reset_by_a_late_duplicate_never_ends_under_at_least_once() -> None:
    # defect 2: a duplicate TransferRequested resets the row to debiting
    cls = machine(semantics="at-least-once", partitions=1, saga_class=LegacyTransferSaga)
    steps = counterexample(cls)
    short(steps, 20)
    assert any("transfer(" in s for s in steps), steps


def test_a_watermark_that_jumps_after_healing_is_caught() -> None:
    # defect 3: heal a partition's transport at run time; what it held lands behind
    cls = machine(semantics="effectively-once", partitions=3, name="LegacyWatermark")
    with legacy_partition_watermark():
        steps = counterexample(cls)
    short(steps, 20)
    # the transport held an event when it was healed (by a rule, or by the teardown, which
    # lifts every fault plan at run time before it quiesces)
    assert any(("unreliable(" in s or "transport_fault(" in s) for s in steps), steps


def test_at_most_once_counting_polled_events_as_done_is_caught() -> None:
    # defect 4: a read marked fresh without the write
    cls = type(
        "PositionAtPollMachine", (test_stateful.BankUnderFaults,), {"semantics": PositionAtPoll()}
    )
    steps = counterexample(cls, match="honest position")
    short(steps, 3)
