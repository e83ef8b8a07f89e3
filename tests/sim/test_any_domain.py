"""The simulation runs any declared domain through the one install: the inventory end to end,
the same wiring as the in-process engine, and a broken view that cannot fail silently."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path
from typing import Any

import pytest

from cqrs_lab.checks import ApplicationLog, check_engine
from cqrs_lab.core import Engine, Envelope, Projection, View, install, on
from cqrs_lab.core.domain import load_domain
from cqrs_lab.domains import bank, inventory
from cqrs_lab.sim import Scenario, Simulation, builtin_scenario, load_scenario, simulate
from cqrs_lab.sim.cli import fewer_collections
from cqrs_lab.sim.scenario import ProjectionSpec

SCENARIOS = Path(__file__).resolve().parents[2] / "cqrs_lab" / "scenarios"


class BrokenBalances(Projection):
    """A view whose handler has the wrong signature: it raises on every deposit."""

    name = "broken"

    @on(bank.Deposited)
    def _deposited(self, e: bank.Deposited) -> None:  # type: ignore[misc]  # no envelope
        pass


#: the bank with one more view, deliberately broken (imported by reference below)
broken = dataclasses.replace(
    bank.domain,
    name="bank-with-a-broken-view",
    views=(*bank.domain.views, View("broken", BrokenBalances)),
)


def test_inventory_runs_end_to_end_and_its_invariant_passes() -> None:
    s = load_scenario(SCENARIOS / "inventory.toml").with_(duration=4.0)
    assert s.resolved_domain is inventory.domain and s.workload.population == 200
    log = ApplicationLog()
    result = simulate(s, recorder=log)
    outcomes = result.commands["outcome"].value_counts()
    assert outcomes["accepted"] > 500 and set(result.commands["kind"]) == {
        "reserve",
        "ship",
        "release",
        "restock",
    }
    assert len(result.reads) > 0 and result.summary_dict()["failing_consumers"] == 0
    for sub in result.engine.subscriptions.values():
        sub.restart()
    result.engine.pump()
    report = check_engine(result.engine, log)
    found = [r for r in report.results if r.name.startswith("inventory:")]
    assert [r.status for r in found] == ["pass"], report.to_text()
    assert report.ok, report.to_text()


@pytest.mark.parametrize("ref", ["cqrs_lab.domains.bank", "cqrs_lab.domains.inventory"])
def test_the_simulation_wires_the_domain_as_the_in_process_engine_does(ref: str) -> None:
    domain = load_domain(ref)
    direct = Engine(seed=1)
    install(direct, domain)
    s = Scenario(
        domain=ref,
        duration=1.0,
        projections=tuple(ProjectionSpec(name) for name in domain.view_names),
    )
    sim = Simulation(s)
    assert set(sim.engine.bus.handlers) == set(direct.bus.handlers)
    names = [e.event_type() for e in (*domain.events, *domain.extra_events)]
    assert [sim.engine.registry.class_for(n) for n in names] == [
        direct.registry.class_for(n) for n in names
    ]
    simulated, installed = sim.engine.installed[0].views, direct.installed[0].views
    assert list(simulated) == list(installed) == list(domain.view_names)
    assert [type(v) for v in simulated.values()] == [type(v) for v in installed.values()]


def test_a_view_that_fails_on_every_event_is_loud() -> None:
    s = builtin_scenario().with_(
        domain="tests.sim.test_any_domain:broken", duration=3.0, reads=None, slos=()
    )
    s = s.with_(projections=(*s.projections, ProjectionSpec("broken", partitions=2, consumers=1)))
    s = s.with_projection("broken", retry=dataclasses.replace(s.projections[0].retry, base=0.01))
    result = simulate(s)
    summary = result.summary_dict()
    assert summary["failing_consumers"] == 1
    row = result.failures.iloc[0]
    assert row["projection"] == "broken" and row["dead_letters"] > 10
    assert "TypeError" in row["error"]
    failing = result.incidents[result.incidents["kind"] == "consumer-failing"]
    assert list(failing["where"]) == ["broken"] and "TypeError" in failing["detail"].iloc[0]
    # the healthy views are not blamed
    assert set(result.failures["projection"]) == {"broken"}


def test_simulate_leaves_the_process_collector_alone_and_the_cli_tunes_it() -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    class Watch(ApplicationLog):
        def applied(self, *args: Any) -> None:
            if not seen:
                seen.append(gc.get_threshold())
            super().applied(*args)

    simulate(builtin_scenario(), duration=0.5, recorder=Watch())
    assert seen == [before] and gc.get_threshold() == before
    seen.clear()
    with fewer_collections():  # what the cqrs-lab commands wrap their runs in
        simulate(builtin_scenario(), duration=0.5, recorder=Watch())
    assert seen and seen[0] != before and gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_poison_and_drift_are_generic_on_the_inventory() -> None:
    s = load_scenario(SCENARIOS / "inventory.toml").with_(duration=6.0, reads=None, slos=())
    from cqrs_lab.sim.scenario import DriftSpec

    s = s.with_(poison=(1.0,), drift=DriftSpec(start=1.0, rate=20.0, fix_at=4.0))
    result = simulate(s)
    kinds = list(result.incidents["kind"])
    assert "poison" in kinds and "drift" in kinds and "fix" in kinds
    detail = result.incidents[result.incidents["kind"] == "drift"]["detail"].iloc[0]
    assert "StockReserved v2" in detail  # the first kind's event, by default
    fix = result.incidents[result.incidents["kind"] == "fix"]["detail"].iloc[0]
    assert int(fix.split("; ")[1].split()[0]) > 0  # parked v2 events replayed
    envs: list[Envelope] = result.engine.store.read_all()
    assert any(e.schema_version == 2 for e in envs)


def test_the_cli_warns_naming_the_failing_projection_and_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cqrs_lab.cli import main

    path = tmp_path / "broken.toml"
    path.write_text(
        '[scenario]\ndomain = "tests.sim.test_any_domain:broken"\nduration = 2.0\n'
        "[workload.mix]\ndeposit = 1.0\n[workload.arrivals]\nrate = 100.0\n"
        "[projections.balances]\n[projections.broken]\npartitions = 1\nconsumers = 1\n"
        "[projections.broken.retry]\nbase = 0.01\n"
    )
    assert main(["simulate", str(path)]) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and "'broken'" in warning[0] and "TypeError" in warning[0]
    assert "consumer-failing" in out  # the incidents table names it too
