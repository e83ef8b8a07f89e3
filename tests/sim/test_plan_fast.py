"""The fast planner: common random numbers, positive intervals, sequential stopping, rare
crashes reweighted, minimal answers and ``--set`` on the command line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cqrs_lab.cli import main
from cqrs_lab.sim import Dist, plan_search
from cqrs_lab.sim.builtin import resolve_scenario
from cqrs_lab.sim.plan_intervals import positive_interval, weighted_quantile
from cqrs_lab.sim.plan_search import Job, rare_event_notes
from cqrs_lab.sim.planner import plan
from cqrs_lab.sim.queueing.tdist import mean_ci
from cqrs_lab.sim.scenario_parts import CrashSpec
from tests.sim.helpers import plain

KNOB = "projections.balances.consumers"


def _crashes(ttf: float, duration: float, rate: float = 400.0) -> Any:
    s = resolve_scenario("crashes_effectively_once").with_(duration=duration, slos=())
    crash = CrashSpec(Dist("exponential", ttf), Dist.fixed(2.0))
    return s.with_rate(rate).with_projection("balances", crash=crash)


def _fake(values: dict[int, list[float]]) -> Any:
    """A stand-in for one simulation: the metric for (value, replication), cycling."""

    def run(job: Job) -> dict[str, Any]:
        xs = values[job.value]
        return {
            "value": job.value,
            "replication": job.replication,
            "kind": job.kind,
            "seed": job.scenario.seed,
            "consumer_crashes": 0,
            "metric": xs[job.replication % len(xs)],
        }

    return run


def test_replication_r_of_every_candidate_runs_on_the_same_seed() -> None:
    s = plain(1.0, 600.0, balances_only=True).with_projection(
        "balances", partitions=6, per_event=Dist.fixed(0.003), per_batch=Dist.fixed(0.002)
    )
    p = plan(s, knob=KNOB, metric="lag_p99_s", limit=0.05, replications=2, n_jobs=1)
    assert p.runs is not None and p.runs[KNOB].nunique() >= 2
    seeds = p.runs.groupby("replication")["seed"].unique()
    assert all(len(v) == 1 for v in seeds)  # the same seed for every candidate
    assert [int(v[0]) for v in seeds] == [s.seed + r for r in seeds.index]


def test_the_interval_of_a_skewed_positive_quantity_never_goes_below_zero() -> None:
    xs = [0.01, 0.012, 0.9]
    assert mean_ci(xs, 0.95).low < 0  # the symmetric t interval would claim a negative lag
    iv = positive_interval(xs, 0.95)
    assert 0 < iv.low < min(xs) and iv.high > iv.center > iv.low and iv.method == "log-t"
    zeros = positive_interval([0.0, 0.0, 0.4], 0.95)
    assert zeros.method == "bootstrap" and zeros.low >= 0
    stuck = positive_interval([0.05, float("inf")], 0.95)  # a run ended with events waiting
    assert stuck.high == float("inf") and stuck.low == 0.05


def test_sequential_stopping_stops_on_decisive_candidates_and_adds_runs_to_straddling_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 1 misses by far, 2 straddles the limit 0.1, 3 meets by far
    values = {1: [5.0, 6.0], 2: [0.05, 0.2], 3: [0.01, 0.011], 4: [0.01, 0.011]}
    monkeypatch.setattr(plan_search, "run_job", _fake(values))
    s = plain(1.0, 100.0, balances_only=True).with_projection("balances", partitions=4)
    p = plan(s, knob=KNOB, metric="lag_p99_s", limit=0.1, low=1, high=4, replications=2,
             max_replications=8, n_jobs=1, progress=False)  # fmt: skip
    runs = p.probes.set_index(KNOB)
    assert p.value == 3
    assert int(runs.loc[1, "runs"]) == 2 and runs.loc[1, "verdict"] == "misses"
    assert int(runs.loc[3, "runs"]) == 2 and runs.loc[3, "verdict"] == "meets"
    assert int(runs.loc[2, "runs"]) == 8 and runs.loc[2, "verdict"] == "not decisive"
    assert "2 is not decisive" in p.describe()


def test_the_answer_is_minimal_and_the_value_below_is_shown_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {v: [0.5 / v, 0.52 / v, 0.49 / v] for v in range(1, 9)}  # meets from 5 up
    monkeypatch.setattr(plan_search, "run_job", _fake(values))
    s = plain(1.0, 100.0, balances_only=True).with_projection("balances", partitions=8)
    p = plan(s, knob=KNOB, metric="lag_p99_s", limit=0.105, low=1, replications=3, n_jobs=1)
    probes = p.probes.set_index(KNOB)
    assert p.value == 5 and bool(probes.loc[5, "meets"])
    assert probes.loc[4, "verdict"] == "misses" and probes.loc[4, "lag_p99_s_ci_low"] >= 0.105
    assert "4 misses" in p.describe()


def test_undersampled_crashes_are_flagged_and_not_when_runs_see_several() -> None:
    rare = rare_event_notes(_crashes(600.0, 300.0))
    assert rare == [
        "a crash every ~600 s in a 300 s run: 1.5 expected crashes per run "
        "(balances, 3 consumers); the p99 may miss them"
    ]
    assert rare_event_notes(_crashes(15.0, 60.0)) == []


def test_rare_crashes_are_reweighted_and_the_plan_says_so() -> None:
    s = _crashes(600.0, 4.0)
    p = plan(s, knob=KNOB, metric="lag_p99_s", limit=0.2, low=1, high=2, replications=2,
             n_jobs=1, progress=False)  # fmt: skip
    assert any("expected crashes per run" in n for n in p.notes)
    assert "the p99 may miss them" in repr(p)
    assert p.runs is not None and set(p.runs["kind"]) <= {"crash-free", "crashes"}
    crashed = p.probes[p.probes["verdict"] != "misses without crashes"]
    assert len(crashed) >= 1
    # runs with crashes made frequent: about 3 per run, each weighted down to the real rate
    assert (crashed["consumer_crashes"] > 0).all()
    assert ((crashed["crash_weight"] > 0) & (crashed["crash_weight"] < 0.5)).all()


def test_a_mixture_quantile_weighs_each_sample_by_its_share() -> None:
    calm, crash = [0.01] * 98 + [0.02] * 2, [1.0] * 100
    assert weighted_quantile([(calm, 1.0), (crash, 0.0)], 0.99) == 0.02
    assert weighted_quantile([(calm, 0.98), (crash, 0.02)], 0.99) == 1.0
    assert weighted_quantile([(calm, 0.995), (crash, 0.005)], 0.99) == 0.02


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--set", "projections.balances.crash.ttf=-1"], "crash.ttf' must be a time"),
        (["--set", "projections.balances.consumerz=2"], "not a field you can sweep"),
        (["--set", "rate"], "write KEY=VALUE"),
        (["--target", "lag_p99_s<0"], "seconds > 0"),
        (["--target", "throughput_per_s<5"], "choose one of lag_p50_s"),
        (["--knob", "commands.service"], "knob 'commands.service'"),
    ],
)
def test_plan_command_mistakes_are_one_line_and_exit_2(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "baseline", "--duration", "1", "-j", "1", *argv]) == 2
    captured = capsys.readouterr()
    assert words in captured.err and len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


def test_plan_command_sets_a_crash_rate_and_notes_the_rare_crashes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["plan", "crashes_effectively_once", "--duration", "3", "--rate", "300", "-j", "1",
            "-r", "2", "--max", "2", "--target", "lag_p99_s<0.5", "--json",
            "--set", "projections.balances.crash.ttf=600"]  # fmt: skip
    assert main(argv) in (0, 1)
    captured = capsys.readouterr()
    assert "a crash every ~600 s in a 3 s run" in captured.err
    answer = json.loads(captured.out)
    assert answer["notes"] and all(r["consumer_crashes"] >= 0 for r in answer["probes"])


def test_a_candidate_missing_without_crashes_gets_no_crash_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def run(job: Job) -> dict[str, Any]:
        slow = job.value == 1
        base = 1.0 if slow else 0.01
        lags = [base * (1 + 0.01 * job.replication)] * 200
        if job.kind == "crashes":
            lags = [*lags[:-10], *[5.0] * 10]  # 5% slow events: consumers down often
        return {"value": job.value, "replication": job.replication, "kind": job.kind,
                "seed": job.scenario.seed, "consumer_crashes": 3 * (job.kind == "crashes"),
                "metric": None, "lags": lags}  # fmt: skip

    monkeypatch.setattr(plan_search, "run_job", run)
    p = plan(_crashes(600.0, 60.0), knob=KNOB, metric="lag_p99_s", limit=0.2, low=1, high=2,
             replications=3, n_jobs=1, progress=False)  # fmt: skip
    assert p.runs is not None
    kinds = p.runs.groupby(KNOB)["kind"].unique()
    assert list(kinds[1]) == ["crash-free"] and set(kinds[2]) == {"crash-free", "crashes"}
    assert p.value == 2 and "1 misses without crashes" in p.describe()
    # the crash runs' slow 5% (their own p99: 5 s) is weighted down to the real crash rate
    # (crashes 15 times rarer: 0.3% of events), so the p99 stays ~10 ms
    assert p.ci_high < 0.02
