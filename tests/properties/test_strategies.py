"""The strategies exported from ``cqrs_lab.testing``: what they generate and how they shrink."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import find, given, settings

from cqrs_lab.core import DELIVERY_POLICIES, CrashAt, CrashPoint, FaultPlan, policy_named
from cqrs_lab.domains import bank, inventory
from cqrs_lab.errors import ConfigError
from cqrs_lab.testing import (
    bank_commands,
    delivery_semantics,
    fault_actions,
    fault_plans,
    inventory_commands,
)

QUIET = settings(database=None, max_examples=500, derandomize=True)


@pytest.mark.parametrize(
    "kind", [bank.OpenAccount, bank.Deposit, bank.Withdraw, bank.RequestTransfer]
)
def test_bank_commands_cover_every_kind(kind: type) -> None:
    found = find(bank_commands(), lambda c: isinstance(c, kind), settings=QUIET)
    assert type(found) is kind


@pytest.mark.parametrize(
    "kind",
    [inventory.AddProduct, inventory.Restock, inventory.Reserve, inventory.Release, inventory.Ship],
)
def test_inventory_commands_cover_every_kind(kind: type) -> None:
    assert type(find(inventory_commands(), lambda c: isinstance(c, kind), settings=QUIET)) is kind


@given(delivery_semantics())
def test_delivery_semantics_are_the_engine_policies(name: str) -> None:
    assert name in DELIVERY_POLICIES
    assert policy_named(name).name == name


@given(fault_plans(max_position=9, max_actions=3))
def test_fault_plans_are_scripted_sorted_and_in_range(plan: FaultPlan) -> None:
    positions = [a.position for a in plan.actions]
    assert positions == sorted(positions)
    assert all(1 <= p <= 9 for p in positions) and len(positions) <= 3
    assert plan.drop == plan.duplicate == plan.crash == 0.0
    text = str(plan)
    assert text == ("; ".join(str(a) for a in plan.actions) or "no faults")


def test_fault_plans_shrink_to_an_early_crash() -> None:
    plan = find(
        fault_plans(), lambda p: any(isinstance(a, CrashAt) for a in p.actions), settings=QUIET
    )
    assert plan.actions == (CrashAt(1, CrashPoint.BEFORE_HANDLE),)
    assert str(plan) == "crash the consumer before handling event 1"


def test_fault_actions_can_target_one_subscription() -> None:
    a: Any = find(
        fault_actions(5, subscriptions=("balances",), kinds=("crash",)),
        lambda a: True,
        settings=QUIET,
    )
    assert a.subscription == "balances"
    assert str(a) == "crash consumer balances before handling event 1"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fault_actions(0), "max_position=0"),
        (lambda: fault_actions(3, kinds=("explode",)), "kinds="),
        (lambda: fault_plans(max_actions=-1), "max_actions=-1"),
        (lambda: bank_commands(accounts=()), "accounts=()"),
        (lambda: inventory_commands(max_quantity=0), "max_quantity=0"),
    ],
)
def test_bad_parameters_are_config_errors(call: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()
