"""The command line, sweeps with confidence intervals, and the planner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cqrs_lab.cli import main
from cqrs_lab.errors import ConfigError
from cqrs_lab.sim import Dist, builtin_scenario
from cqrs_lab.sim.planner import plan, stability_bound
from cqrs_lab.sim.sweep import apply_param, sweep, sweep_runs
from tests.sim.helpers import plain


def test_simulate_without_a_file_runs_the_builtin_baseline_and_writes_tables_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--duration", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "scenario baseline" in out and "latency_p99_s" in out
    for name in (
        "summary.csv",
        "commands.csv",
        "applications.csv",
        "timeseries.csv",
        "lag.png",
        "backlog.png",
        "latency.png",
        "utilisation.png",
    ):
        assert (tmp_path / name).stat().st_size > 0


def test_simulate_json_is_one_object_with_the_summary_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["simulate", "baseline", "--duration", "1", "--seed", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seed"] == 3 and data["duration_s"] == 1.0 and data["commands"] > 0


def test_a_bad_scenario_file_exits_2_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[commands]\nhandlerz = 3\n")
    assert main(["simulate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "commands.handlerz" in err and "handlers" in err


def test_sweep_and_plan_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "sweep",
                "--duration",
                "1",
                "--param",
                "commands.handlers=2,4",
                "-r",
                "2",
                "-j",
                "1",
                "--metrics",
                "latency_p99_s",
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["commands.handlers"] for r in rows] == [2, 4]
    assert (
        main(
            [
                "plan",
                "--duration",
                "1",
                "--knob",
                "commands.handlers",
                "--target",
                "latency_p99_s<0.05",
                "-r",
                "2",
                "-j",
                "1",
                "--max",
                "4",
                "--json",
            ]
        )
        == 0
    )
    answer = json.loads(capsys.readouterr().out)
    assert 1 <= answer["value"] <= 4 and answer["ci_high"] < 0.05


def test_sweep_means_lie_inside_their_intervals_and_common_seeds_are_used() -> None:
    s = builtin_scenario().with_(duration=1.0, reads=None, slos=())
    runs = sweep_runs(
        s,
        {"commands.handlers": [1, 3]},
        replications=3,
        metrics=("latency_p99_s", "commands"),
        n_jobs=1,
    )
    assert len(runs) == 6
    # replication r of every grid point sees the same arrivals (seed base + r)
    by_rep = runs.groupby("replication")["commands"].nunique()
    assert (by_rep == 1).all()
    df = sweep(
        s, {"commands.handlers": [1, 3]}, replications=3, metrics=("latency_p99_s",), n_jobs=2
    )
    assert (df["latency_p99_s_ci_low"] <= df["latency_p99_s_mean"]).all()
    assert (df["latency_p99_s_mean"] <= df["latency_p99_s_ci_high"]).all()
    one, three = df["latency_p99_s_mean"].tolist()
    assert one > three  # more handlers, shorter queues


def test_an_interval_of_a_count_or_a_time_never_goes_below_zero() -> None:
    from cqrs_lab.sim.sweep import summarise

    runs = pd.DataFrame({"k": [1, 1, 1], "shed": [0, 0, 262], "delta": [-5.0, 1.0, 40.0]})
    row = summarise(runs, ["k"], ["shed", "delta"]).iloc[0]
    assert row["shed_ci_low"] == 0.0 < row["shed_mean"] < row["shed_ci_high"]
    assert row["delta_ci_low"] < 0  # a value that was negative: not cut


def test_unknown_parameter_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"projections\.NAME\.FIELD"):
        apply_param(builtin_scenario(), "consumers", 3)
    with pytest.raises(ConfigError, match="no projection 'ledger'"):
        apply_param(builtin_scenario(), "projections.ledger.consumers", 3)


def test_a_value_that_does_not_fit_the_rest_of_the_scenario_names_the_parameter() -> None:
    """duration=0.5 is a duration, but the baseline's 1 s bucket does not fit in it: the
    error blamed the packaged scenario file, as if it were broken."""
    with pytest.raises(ConfigError, match=r"^parameter duration=0\.5 does not fit .*bucket"):
        apply_param(builtin_scenario(), "duration", 0.5)


def test_a_run_saved_without_plots_leaves_no_earlier_runs_plots(tmp_path: Path) -> None:
    from cqrs_lab.sim import simulate

    result = simulate(plain(duration=1.0))
    with_plots = {p.name for p in result.save(tmp_path)}
    assert {"lag.png", "summary.csv"} <= with_plots
    without = {p.name for p in result.save(tmp_path, figures=False)}
    assert {p.name for p in tmp_path.iterdir()} == without  # the plots went with the run
    assert not any(name.endswith(".png") for name in without)


def test_a_metric_that_is_not_a_number_is_refused_naming_the_numbers() -> None:
    s = plain(duration=1.0)
    with pytest.raises(ConfigError, match=r"metrics \['scenario'\]: not a number.*'accepted'"):
        sweep_runs(s, {}, replications=1, metrics=("scenario",), n_jobs=1)
    share = sweep_runs(s, {}, replications=1, metrics=("slo_met",), n_jobs=1)
    assert share["slo_met"].iloc[0] in (True, False)  # a verdict's share is a number


def test_planner_finds_the_smallest_consumer_count_and_the_one_below_misses() -> None:
    s = plain(4.0, 600.0, balances_only=True)
    s = s.with_projection(
        "balances",
        partitions=6,
        consumers=1,
        per_event=Dist.fixed(0.003),
        per_batch=Dist.fixed(0.002),
    )
    # demand: 600 events/s * (3 ms + 2 ms / 64) = 1.82 busy consumers -> at least 2
    assert stability_bound(s, "projections.balances.consumers") == 2
    p = plan(
        s,
        knob="projections.balances.consumers",
        metric="lag_p99_s",
        limit=0.5,
        replications=3,
        n_jobs=1,
    )
    assert p.value is not None and p.value >= 2
    probes = p.probes.set_index("projections.balances.consumers")
    assert bool(probes.loc[p.value, "meets"]) and probes.loc[p.value, "lag_p99_s_ci_high"] < 0.5
    if p.value - 1 in probes.index:
        assert not bool(probes.loc[p.value - 1, "meets"])
    else:
        assert p.value == p.lower_bound


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("commands.handlers", 0, "whole number from 1"),
        ("commands.handlers", 2.5, "whole number"),
        ("rate", -5, "> 0"),
        ("duration", 0, "> 0"),
        ("workload.accounts", 0, "whole number"),
        ("workload.opening_balance", -1, ">= 0"),
        ("workload.keys", "random", "uniform, zipf"),
        ("projections.balances.delivery", "twice", "effectively-once"),
        ("reads.projection", "nowhere", "balances"),
        ("commands.service", "fast", "time in seconds"),
        ("projections.balances.crash", 1, "not a field you can sweep"),
    ],
)
def test_a_swept_value_is_checked_as_the_scenario_file_key_is(
    key: str, value: object, words: str
) -> None:
    with pytest.raises(ConfigError, match="parameter '" + key.replace(".", r"\.")) as info:
        apply_param(builtin_scenario(), key, value)
    assert words in str(info.value)
    assert repr(value) in str(info.value) or "not a field" in words


def test_a_swept_time_sets_the_mean_and_keeps_the_kind_and_cv() -> None:
    s = builtin_scenario()
    before = s.commands.service
    after = apply_param(s, "commands.service", 0.004).commands.service
    assert (after.kind, after.cv, after.mean) == (before.kind, before.cv, 0.004)
    assert apply_param(s, "projections.balances.consumers", 2).projection("balances").consumers == 2


def test_the_planner_refuses_a_knob_that_is_not_a_count_before_running() -> None:
    with pytest.raises(ConfigError, match=r"knob 'commands\.service'.*commands\.handlers"):
        plan(builtin_scenario(), knob="commands.service", n_jobs=1)
