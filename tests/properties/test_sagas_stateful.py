"""Sagas keep their promises, partitioned or not, under crashes at named points, duplicates,
reorders, delays, drops and fault plans changed at run time: with no loss promised every
transfer ends and money is conserved; under at-most-once every loss is declared and explains
what did not end (see ``machines.py`` for the invariants)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.properties.machines import machine

# each example is cheap (a few ms); a profile asking for more (``thorough``) gets more
SETTINGS = settings(max_examples=max(settings().max_examples, 150), stateful_step_count=40)


@pytest.mark.parametrize("partitions", [1, 3])
@pytest.mark.parametrize("semantics", ["at-most-once", "at-least-once", "effectively-once"])
def test_every_transfer_ends_or_its_loss_is_declared(semantics: str, partitions: int) -> None:
    run_state_machine_as_test(
        machine(semantics=semantics, partitions=partitions), settings=SETTINGS
    )
