"""The examples in the simulation's docstrings run (the oracles' own are tested beside them)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    f"cqrs_lab.sim.{m}"
    for m in (
        "application_rows",
        "arrivals",
        "builtin",
        "distributions",
        "domain_probe",
        "gc_tuning",
        "incidents",
        "simulation",
        "planner",
        "results",
        "scenario",
        "scenario_keys",
        "scenario_load",
        "scenario_parts",
        "scenario_reference",
        "slo",
        "sweep",
    )
] + ["cqrs_lab.sim", "cqrs_lab.sim.queueing"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples: list only modules that do"
    assert result.failed == 0
