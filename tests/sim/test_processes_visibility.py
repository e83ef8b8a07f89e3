"""The simulation's multi-process shape: ``commands.processes`` (server processes, each with
its own queue and handler pool) and ``commands.commit_visibility`` (how long after its commit
an event becomes readable by projections). Each parameter's effect, their validation in a
scenario file, and determinism with both set."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from cqrs_lab.errors import ScenarioError
from cqrs_lab.sim import builtin_scenario, parse_scenario, simulate
from cqrs_lab.sim.distributions import Dist
from cqrs_lab.sim.planner import stability_bound
from cqrs_lab.sim.scenario import Scenario


def _with(s: Scenario, **changes: object) -> Scenario:
    return s.with_(commands=dataclasses.replace(s.commands, **changes))


def test_more_processes_lower_command_latency_at_high_load() -> None:
    # baseline: 4 handlers of 2 ms mean service, about 2,000 commands/s of capacity; at
    # 1,800 commands/s one process queues, two processes (8 handlers in all) hardly do
    base = builtin_scenario("baseline").with_rate(1800.0)
    r1, r2 = simulate(base, duration=4.0), simulate(_with(base, processes=2), duration=4.0)
    one, two = r1.summary.iloc[0], r2.summary.iloc[0]
    assert one["commands"] == two["commands"]  # the same arrivals
    assert two["latency_p99_s"] < one["latency_p99_s"] / 2
    assert two["latency_p50_s"] < one["latency_p50_s"]
    # utilisation is of every process's handlers: about halved
    u1, u2 = (
        r1.timeseries["handler_utilisation"].mean(),
        r2.timeseries["handler_utilisation"].mean(),
    )
    assert u1 > 0.8 and 0.4 < u2 < 0.6 * u1


def test_one_process_is_the_single_process_model_unchanged() -> None:
    base = builtin_scenario("baseline")
    a = simulate(base, duration=2.0)
    b = simulate(_with(base, processes=1, commit_visibility=Dist.fixed(0.0)), duration=2.0)
    pd.testing.assert_frame_equal(a.commands, b.commands)
    pd.testing.assert_frame_equal(a.summary, b.summary)


@pytest.mark.parametrize("delay", [0.05, 0.2])
def test_visibility_delay_adds_about_itself_to_the_lag(delay: float) -> None:
    base = builtin_scenario("baseline")
    now = simulate(base, duration=4.0).summary.iloc[0]
    later = simulate(_with(base, commit_visibility=Dist.fixed(delay)), duration=4.0)
    row = later.summary.iloc[0]
    grown = row["lag_p50_s"] - now["lag_p50_s"]
    assert delay * 0.9 < grown < delay * 1.1, grown
    assert row["lag_p99_s"] >= delay
    # command latency is not affected: commands read their streams, not the global order
    assert row["latency_p99_s"] == pytest.approx(now["latency_p99_s"], rel=0.05)
    # every event of the run still reaches the views once visible: nothing is lost
    assert row["events"] > 0


def test_a_random_delay_keeps_events_in_commit_order() -> None:
    s = _with(builtin_scenario("baseline"), commit_visibility=Dist("exponential", 0.02))
    result = simulate(s, duration=2.0)
    apps = result.applications
    assert len(apps) > 1000
    for _, part in apps.groupby(["projection", "partition"]):
        positions = part["position"].to_numpy()
        assert (positions[1:] > positions[:-1]).all()  # in order in a partition, each once
    assert (apps["lag_s"] >= 0).all()


def test_same_seed_same_tables_with_both_parameters() -> None:
    s = _with(
        builtin_scenario("baseline"), processes=3, commit_visibility=Dist("exponential", 0.03)
    )
    a, b = simulate(s, duration=2.0), simulate(s, duration=2.0)
    pd.testing.assert_frame_equal(a.commands, b.commands)
    pd.testing.assert_frame_equal(a.applications, b.applications)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    c = simulate(s, seed=7, duration=2.0)
    assert not a.commands["end_s"].equals(c.commands["end_s"])


def test_the_parameters_are_read_from_a_scenario_file() -> None:
    s = parse_scenario(
        "[workload.arrivals]\nrate = 50.0\n[commands]\nprocesses = 4\n"
        "commit_visibility = { dist = 'exponential', mean = 0.01 }\n",
        source="multi.toml",
    )
    assert s.commands.processes == 4
    assert s.commands.commit_visibility == Dist("exponential", 0.01)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("processes = 0", "commands.processes"),
        ("processes = 2.5", "commands.processes"),
        ("commit_visibility = -1.0", "commands.commit_visibility"),
        ("commit_visibility = 'soon'", "commands.commit_visibility"),
    ],
)
def test_bad_values_name_the_file_and_the_key(line: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(
            f"[workload.arrivals]\nrate = 50.0\n[commands]\n{line}\n", source="multi.toml"
        )
    assert "multi.toml" in str(info.value)
    assert fragment in str(info.value)


def test_the_planner_counts_handlers_per_process() -> None:
    s = builtin_scenario("baseline").with_rate(1800.0)  # 1,800/s x 2 ms: 3.6 handlers busy
    assert stability_bound(s, "commands.handlers") == 4
    assert stability_bound(_with(s, processes=2), "commands.handlers") == 2  # 1.8 each
