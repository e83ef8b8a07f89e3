"""Scenario files name their domain; what they name is validated against it; the file
reference is the validator's own table, rendered."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cqrs_lab.errors import ScenarioError
from cqrs_lab.sim import Scenario, parse_scenario
from cqrs_lab.sim.scenario_keys import TABLES
from cqrs_lab.sim.scenario_parts import (
    AutoscaleSpec,
    CommandSpec,
    CrashSpec,
    DriftSpec,
    ProjectionSpec,
    ReadSpec,
    RebuildSpec,
    RetrySpec,
)
from cqrs_lab.sim.scenario_reference import render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenario-reference.md"
INVENTORY = '[scenario]\ndomain = "cqrs_lab.domains.inventory"\n'


def _refused(text: str, *fragments: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="my-file.toml")
    message = str(info.value)
    assert "my-file.toml" in message
    for f in fragments:
        assert f in message, message


def test_the_reference_in_docs_is_the_rendered_table() -> None:
    assert DOCS.read_text(encoding="utf-8") == render(), (
        "docs/scenario-reference.md is stale: run "
        "`cqrs-lab scenario-reference --out docs/scenario-reference.md`"
    )


@pytest.mark.parametrize(
    ("path", "spec"),
    [
        ("commands", CommandSpec()),
        ("projections.NAME", ProjectionSpec()),
        ("projections.NAME.crash", CrashSpec()),
        ("projections.NAME.autoscale", AutoscaleSpec()),
        ("projections.NAME.retry", RetrySpec()),
        ("reads", ReadSpec()),
        ("faults.drift", DriftSpec()),
        ("faults.rebuild", RebuildSpec()),
    ],
)
def test_the_table_defaults_are_the_dataclass_defaults(path: str, spec: object) -> None:
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}  # type: ignore[arg-type]
    for key in TABLES[path].keys:
        placeholder = isinstance(key.default, str) and key.default[:1] == "<"
        if key.name in fields and key.kind != "table" and not placeholder:
            assert key.default == fields[key.name], (path, key.name)


def test_an_empty_file_is_the_bank_with_its_first_view_and_declared_defaults() -> None:
    s = parse_scenario("")
    assert s.domain == "cqrs_lab.domains.bank" and [p.name for p in s.projections] == ["balances"]
    assert s.workload.population == 1000 and s.params() == {
        "opening_balance": 1000,
        "max_amount": 100,
    }
    assert dict(s.mix()) == {"deposit": 0.6, "withdraw": 0.3}  # transfer needs the saga


def test_the_inventory_names_its_own_views_kinds_population_and_parameters() -> None:
    s = parse_scenario(
        INVENTORY + "[workload]\nproducts = 50\nmax_quantity = 3\n"
        "[workload.mix]\nreserve = 1.0\n[projections.stock]\nconsumers = 1\n"
        "[reads]\nrate = 10.0\n"
    )
    assert s.workload.population == 50 and s.params()["max_quantity"] == 3
    assert s.params()["initial_stock"] == 100 and s.reads is not None
    assert [p.name for p in s.projections] == ["stock"] and s.reads.projection == "stock"
    assert parse_scenario(INVENTORY).projections == (ProjectionSpec("stock"),)


def test_views_kinds_and_keys_of_another_domain_are_refused() -> None:
    _refused(INVENTORY + "[projections.balances]\n", "'projections.balances'", "stock")
    _refused(INVENTORY + "[workload.mix]\ndeposit = 1.0\n", "'workload.mix.deposit'", "reserve")
    _refused(INVENTORY + "[workload]\naccounts = 10\n", "'workload.accounts'", "products")
    _refused('[reads]\nprojection = "transfer-saga"\n', "'reads.projection'", "balances")


def test_domain_parameters_are_checked_with_file_key_and_allowed_values() -> None:
    _refused("[workload]\nmax_amount = 0\n", "'workload.max_amount'", ">= 1")
    _refused("[workload]\nopening_balance = 1.5\n", "'workload.opening_balance'", "whole number")
    _refused(INVENTORY + "[workload]\nproducts = 0\n", "'workload.products'", "from 1")
    _refused(
        "[workload]\nmax_quantity = 3\n",
        "'workload.max_quantity'",
        "opening_balance",
        "accounts",
    )


def test_a_domain_that_does_not_import_is_a_clear_error() -> None:
    _refused('[scenario]\ndomain = "no_such_pkg.orders"\n', "'scenario.domain'", "no_such_pkg")
    _refused(
        '[scenario]\ndomain = "cqrs_lab.domains.bank:nothing"\n', "'scenario.domain'", "nothing"
    )
    with pytest.raises(ScenarioError, match=r"'projections\.balances' is not a view"):
        Scenario(domain="cqrs_lab.domains.inventory").with_(duration=1.0)


def test_the_drift_event_must_be_the_domains() -> None:
    _refused('[faults.drift]\nevent = "StockReserved"\n', "'faults.drift.event'", "Deposited")
