"""One install for every driver: the in-process engine, the simulation and the HTTP server
build the same handlers, event types, views and queries for each domain, the two shipped
ones and a third declared in the tests the way a user declares theirs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cqrs_lab.core import Engine, install, load_domain
from cqrs_lab.http import ServerConfig, build_engine
from cqrs_lab.sim import Scenario, Simulation
from cqrs_lab.sim.scenario import ProjectionSpec

DOMAINS = ["cqrs_lab.domains.bank", "cqrs_lab.domains.inventory", "tests.domains.carts:domain"]
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06-model-your-own-system.ipynb"


@pytest.fixture
def notebook_domain(tmp_path: Path) -> Iterator[str]:
    """The domain notebook 6 writes from scratch, taken from its ``%%writefile`` cell."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    [source] = [
        "".join(c["source"]) for c in cells if "".join(c["source"]).startswith("%%writefile")
    ]
    (tmp_path / "ticketing.py").write_text(source.split("\n", 1)[1])
    sys.path.insert(0, str(tmp_path))
    try:
        yield "ticketing:domain"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("ticketing", None)


def shape(engine: Engine) -> dict[str, Any]:
    """What a driver wired: handler functions by command, event classes by name, the views
    with their types and the query types (by what the engine itself holds)."""
    [done] = engine.installed
    return {
        "domain": done.domain.name,
        "handlers": dict(engine.bus.handlers),
        "events": {n: engine.registry.class_for(n) for n in sorted(engine.registry._classes)},
        "views": [(name, type(view)) for name, view in done.views.items()],
        "queries": sorted(q.__name__ for q in engine.queries._routes),
    }


@pytest.mark.parametrize("ref", DOMAINS)
def test_every_driver_builds_the_same_domain(ref: str) -> None:
    check_every_driver(ref)


def test_every_driver_builds_the_notebooks_domain(notebook_domain: str) -> None:
    assert load_domain(notebook_domain).name == "ticketing"
    check_every_driver(notebook_domain)


def check_every_driver(ref: str) -> None:
    domain = load_domain(ref)
    in_process = Engine(seed=1)
    install(in_process, domain)
    served = build_engine(ServerConfig(domain=ref)).engine
    scenario = Scenario(
        domain=ref,
        duration=1.0,
        projections=tuple(ProjectionSpec(name) for name in domain.view_names),
    )
    simulated = Simulation(scenario).engine
    expected = shape(in_process)
    assert shape(served) == expected
    assert shape(simulated) == expected
    assert set(expected["handlers"]) == set(domain.handlers)
    assert [name for name, _ in expected["views"]] == list(domain.view_names)
    assert expected["queries"] == sorted(q.name for q in domain.queries)


def test_a_simulated_run_of_the_third_domain_sends_its_workload() -> None:
    scenario = Scenario(
        domain=DOMAINS[2], duration=2.0, projections=(ProjectionSpec("cart-sizes"),)
    )
    result = Simulation(scenario).run()
    kinds = result.commands["kind"].value_counts()
    assert list(kinds.index) == ["add"] and kinds["add"] > 50
    assert result.summary_dict()["accepted"] > 0
