"""Scenario files: the shipped ones load and run; bad ones are refused with file, key, allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cqrs_lab.errors import ScenarioError
from cqrs_lab.sim import load_scenario, parse_scenario, simulate

SCENARIOS = Path(__file__).resolve().parents[2] / "cqrs_lab" / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.toml"))


def test_the_issue_scenarios_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    for wanted in (
        "baseline",
        "read_heavy_catalogue",
        "burst_overload",
        "crashes_at_most_once",
        "crashes_at_least_once",
        "crashes_effectively_once",
        "retry_storm_poison",
        "schema_drift",
        "rebuild_live",
        "autoscale_diurnal",
    ):
        assert wanted in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_loads_and_runs_briefly(path: Path) -> None:
    s = load_scenario(path)
    assert s.source == str(path)
    result = simulate(s.with_rate(s.workload.arrivals.rate / 4), duration=2.0)
    assert int(result.summary["commands"].iloc[0]) == len(result.commands) > 0


def _refused(text: str, *fragments: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, source="my-file.toml")
    message = str(info.value)
    assert "my-file.toml" in message
    for f in fragments:
        assert f in message, message


def test_unknown_top_level_table() -> None:
    _refused("[workloads]\nx = 1\n", "'workloads'", "allowed keys", "workload")


def test_unknown_nested_key_names_the_dotted_path_and_the_allowed_keys() -> None:
    _refused(
        "[projections.balances]\nconsumer = 2\n",
        "'projections.balances.consumer'",
        "consumers",
        "partitions",
    )


def test_unknown_projection_name() -> None:
    _refused("[projections.ledger]\n", "'projections.ledger'", "balances", "transfer-saga")


def test_wrong_type() -> None:
    _refused('[commands]\nhandlers = "four"\n', "'commands.handlers'", "whole number", "'four'")
    _refused("[workload.arrivals]\nrate = true\n", "'workload.arrivals.rate'", "number")


def test_impossible_values() -> None:
    _refused("[workload.arrivals]\nrate = -5\n", "'workload.arrivals.rate'", "> 0")
    _refused("[scenario]\nduration = 0\n", "'scenario.duration'", "> 0")
    _refused("[projections.balances]\ntransient_errors = 1.5\n", "transient_errors", "<= 1")
    _refused(
        '[projections.balances]\ndelivery = "exactly-once"\n',
        "'projections.balances.delivery'",
        "at-most-once",
        "effectively-once",
    )
    _refused(
        '[[slo]]\nsli = "command_latency"\nthreshold = 0.1\nobjective = 1.0\n',
        "'slo[0].objective'",
        "below 1",
    )
    _refused(
        '[commands]\nservice = { dist = "weibull", mean = 1 }\n',
        "'commands.service.dist'",
        "exponential",
        "empirical",
    )


def test_cross_field_rules() -> None:
    _refused(
        "[projections.balances]\npartitions = 2\nconsumers = 3\n",
        "'projections.balances.consumers'",
        "<= partitions",
    )
    _refused(
        '[projections.balances]\ndelivery = "effectively-once"\ncheckpoint_interval = 1.0\n',
        "checkpoint_interval",
        "at-least-once",
    )
    _refused("[workload.mix]\ntransfer = 1.0\n", "'workload.mix.transfer'", "transfer-saga")
    _refused('[[slo]]\nsli = "projection_lag"\nthreshold = 0.5\n', "'slo[0].projection'")
    _refused(
        '[faults.rebuild]\nmode = "shadow"\n[projections.balances]\npartitions = 4\n'
        "consumers = 1\n",
        "'faults.rebuild.mode'",
        "partitions = 1",
    )


def test_a_short_run_gets_a_bucket_that_fits_unless_the_file_wrote_one() -> None:
    """The default 1 s bucket of a run shorter than a second is the run's length, as
    ``--duration`` makes it; a bucket the file wrote is checked as written."""
    short = parse_scenario("[scenario]\nduration = 0.5\n")
    assert short.bucket == 0.5
    assert parse_scenario("[scenario]\nduration = 30\n").bucket == 1.0
    _refused("[scenario]\nduration = 0.5\nbucket = 1\n", "'scenario.bucket'", "<= duration (0.5)")


def test_missing_trace_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[workload.arrivals]\nprocess = "trace"\npath = "nope.csv"\n')
    with pytest.raises(ScenarioError, match=r"s\.toml.*workload\.arrivals\.path.*cannot be read"):
        load_scenario(f)


@pytest.mark.parametrize("time", ["nan", "inf", "-1"])
def test_a_trace_time_that_is_not_a_finite_time_is_refused(tmp_path: Path, time: str) -> None:
    (tmp_path / "t.csv").write_text(f"time,kind\n0.5,deposit\n{time},deposit\n")
    f = tmp_path / "s.toml"
    f.write_text('[workload.arrivals]\nprocess = "trace"\npath = "t.csv"\n')
    with pytest.raises(ScenarioError, match=r"t\.csv line 3: want a time in seconds"):
        load_scenario(f)


def test_a_spread_that_overflows_a_float_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[commands]\nservice = { dist = "lognormal", mean = 0.01, cv = 1e300 }\n')
    with pytest.raises(ScenarioError, match=r"'commands\.service\.cv'.*<= 100, got 1e\+300"):
        load_scenario(f)


def test_unreadable_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"missing\.toml"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\n")
    with pytest.raises(ScenarioError, match=r"bad\.toml: not valid TOML"):
        load_scenario(bad)


def test_files_that_are_not_utf8_text_are_refused_by_name(tmp_path: Path) -> None:
    binary = b"\x00\x01\xff\xfe,,\n"
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b"[scenario]\nname = 'caf\xe9'\n")
    with pytest.raises(ScenarioError, match=r"latin\.toml: not UTF-8 text \(byte 0xe9"):
        load_scenario(latin)
    (tmp_path / "trace.csv").write_bytes(binary)
    f = tmp_path / "s.toml"
    f.write_text('[workload.arrivals]\nprocess = "trace"\npath = "trace.csv"\n')
    with pytest.raises(ScenarioError, match=r"s\.toml.*workload\.arrivals\.path.*not a CSV"):
        load_scenario(f)
    (tmp_path / "times.csv").write_bytes(binary)
    f.write_text(
        '[workload.arrivals]\nprocess = "poisson"\nrate = 5.0\n'
        '[commands]\nservice = { dist = "empirical", file = "times.csv" }\n'
    )
    with pytest.raises(ScenarioError, match=r"'commands\.service\.file'.*not a CSV"):
        load_scenario(f)


def test_trace_replay_uses_the_recorded_times_and_kinds(tmp_path: Path) -> None:
    (tmp_path / "trace.csv").write_text("time,command\n0.5,deposit\n0.25,withdraw\n1.5,deposit\n")
    f = tmp_path / "t.toml"
    f.write_text('[workload.arrivals]\nprocess = "trace"\npath = "trace.csv"\nspeed = 2.0\n')
    s = load_scenario(f)
    result = simulate(s, duration=0.5)
    c = result.commands
    # sorted by time, replayed twice as fast; the row at 1.5 s comes at 0.75 s, after the end
    assert c["arrival_s"].tolist() == [0.125, 0.25]
    assert c["kind"].tolist() == ["withdraw", "deposit"]


def test_a_folder_named_like_a_packaged_scenario_does_not_hide_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`simulate burst_overload --out burst_overload` makes that folder: the next run of the
    same command must still find the packaged scenario, not try to read the folder."""
    from cqrs_lab.sim.builtin import resolve_scenario

    monkeypatch.chdir(tmp_path)
    (tmp_path / "burst_overload").mkdir()
    assert resolve_scenario("burst_overload").name == "burst-overload"
    (tmp_path / "mine").mkdir()
    with pytest.raises(ScenarioError, match="mine"):
        resolve_scenario("mine")  # a folder of another name: still told it is not a file
