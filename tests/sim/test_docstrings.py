"""The examples in the simulation's docstrings run (the oracles' own are tested beside them)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    f"cqrs_lab.sim.{m}"
    for m in (
        "arrivals",
        "autoscale",
        "builtin",
        "cli",
        "commands",
        "consumers",
        "distributions",
        "incidents",
        "model",
        "planner",
        "plots",
        "readers",
        "recorder",
        "results",
        "scenario",
        "scenario_file",
        "scenario_load",
        "slo",
        "sweep",
    )
] + ["cqrs_lab.sim"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
