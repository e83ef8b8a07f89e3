"""The event-loop twin: calibrated stage by stage from one real light load test, its
queueing produced by the simulation; and the judging of a validation up to the knee.
Expected values come from the run's own measurements or from the model's definition."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.calibration_inputs import quantiles, window
from cqrs_lab.load.knee import KneeResult
from cqrs_lab.load.knee_validation import format_closing, knee_row, trend_sign, trends
from cqrs_lab.load.loop_calibration import calibrate_loop, client_offsets, sim_cpu
from cqrs_lab.load.loop_repeats import repeat_factors, repeats
from cqrs_lab.load.loop_scenario import describe_calibration
from cqrs_lab.load.loop_speed_fit import TIME_BOUNDS
from cqrs_lab.load.loop_stages import idle_gaps, slow_down, stage_calls, transport_samples
from cqrs_lab.load.loop_twin import (
    LoopCalibration,
    client_cold,
    predict_loop,
    simulate_twin,
    simulated_figures,
)
from cqrs_lab.load.measure import measure
from cqrs_lab.load.results import LoadResult, load_results
from cqrs_lab.sim import load_scenario
from tests.load.test_twin import synthetic_run


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> LoadResult:
    """A real light run of the bank: about 120 commands/s and as many reads for 6 s."""
    from cqrs_lab.load import LoadTestOptions, run_loadtest

    out, code = run_loadtest(
        LoadTestOptions(rate=200.0, duration=6.0, out=str(tmp_path_factory.mktemp("light")))
    )
    assert code == 0
    return load_results(out)


@pytest.fixture(scope="module")
def cal(light: LoadResult) -> LoopCalibration:
    return calibrate_loop([light], warmup=1.0)


@pytest.mark.slow
def test_the_request_cpu_is_solved_so_the_loop_uses_the_measured_cpu(
    light: LoadResult, cal: LoopCalibration
) -> None:
    m = measure(light, 1.0)
    idle = float(light.run.get("server_idle_cpu") or 0.0)
    assert cal.request_s > 0
    assert sim_cpu(cal, cal.anchor_rate) == pytest.approx(m["server_cpu"] - idle, rel=0.05)
    assert cal.reads_per_command == pytest.approx(1.0, abs=0.3)  # the default users' mix
    assert set(cal.per_event) == {"balances", "statements", "transfer-saga"}


@pytest.mark.slow
def test_the_engine_samples_are_the_warm_calls(light: LoadResult, cal: LoopCalibration) -> None:
    st = idle_gaps(light.stages)
    lo, hi = window(light, 1.0)
    at = st["at"].to_numpy(dtype=float) - light.t0
    inside = st[(at >= lo) & (at < hi)]
    secs, _, warm = stage_calls(inside[~repeats(inside)], "command")
    # the warm calls (a command right after another in a batch left to command_repeat)
    # when the run had 20 or more, else every call, as quantiles
    chosen = warm if len(warm) >= 20 else secs
    expected = np.mean(quantiles(chosen, min(1000, len(chosen))))
    assert np.mean(cal.command_s) == pytest.approx(expected, rel=1e-6)
    if len(warm) >= 20:
        assert np.mean(warm) <= np.mean(secs)
    assert cal.cold >= 0 and cal.cold_time > 0
    # the writer's batches were timed: a batch costs more than its commands
    assert cal.batch_s > 0
    # the client warms up as it sends faster: never slower than at the calibration level
    assert client_cold(cal, 4 * cal.anchor_rate) <= 1.0 == client_cold(cal, cal.anchor_rate)


@pytest.mark.slow
def test_the_twin_uses_less_cpu_per_command_as_it_warms_and_queues_near_its_knee(
    cal: LoopCalibration,
) -> None:
    at = predict_loop(cal, cal.anchor_rate, 8.0)
    heavy = predict_loop(cal, 4 * cal.anchor_rate, 8.0)
    # four times the load: more CPU, but less than four times (warm work, bigger batches)
    assert at["server_cpu"] < heavy["server_cpu"] < 4 * at["server_cpu"]
    rate = cal.anchor_rate
    for _ in range(8):  # double the load until the simulated loop is 85% busy
        near = simulated_figures(cal, rate, 6.0, 1)
        if near["server_cpu"] >= 0.85 * cal.cpus:
            break
        rate *= 2
    # the simulation's own latency (before the client-side offset) queues near the knee
    idle = simulated_figures(cal, cal.anchor_rate, 6.0, 1)
    assert near["server_cpu"] >= 0.85 * cal.cpus
    assert near["command_latency_p99_s"] > 1.5 * idle["command_latency_p99_s"]


@pytest.mark.slow
def test_the_transports_read_is_calibrated_warm_and_written_as_a_turn_of_its_own(
    light: LoadResult, cal: LoopCalibration, tmp_path: Path
) -> None:
    st = idle_gaps(light.stages)
    lo, hi = window(light, 1.0)
    at = st["at"].to_numpy(dtype=float) - light.t0
    secs, _, _ = stage_calls(st[(at >= lo) & (at < hi)], "transport")
    assert len(secs) >= 500  # the protocol timed every request's read
    # each read less the slow-down its idle gap implies: no more than the reads as timed
    assert 0 < np.mean(cal.transport_s) <= np.mean(secs)
    if cal.cold > 0:
        assert np.mean(cal.transport_s) < np.mean(secs)
    s = load_scenario(cal.write(tmp_path / "twin.toml", rate=300.0, duration=5.0))
    assert s.server is not None
    assert s.server.transport.mean == pytest.approx(np.mean(cal.transport_s), rel=1e-3)
    # its own slow-down after idling, fitted on its own reads, is the scenario's
    assert cal.transport_cold is not None
    own = (cal.transport_cold, cal.transport_cold_time)
    assert s.server.transport_chill == pytest.approx(own, rel=1e-5)


def test_the_transports_read_gets_its_own_slow_down_fitted_on_its_own_reads() -> None:
    """Requests right after others (10 us) and at idle gaps from 0.1 to 50 ms: a read
    costs 20 us warm and up to four times as much after idling, the engine's command 50 us
    and up to twice as much (both with a 2 ms time constant): each stage's fit finds its
    own, and the reads' samples are their warm cost once their own slow-down is taken off
    (not the engine's)."""
    rows, t = [], 1.0
    for g in [1e-5] * 200 + list(np.geomspace(1e-4, 0.05, 400)):
        t += g
        read = 2e-5 * (1 + 3.0 * (1 - np.exp(-g / 0.002)))
        rows.append(("transport", "read", t + read, read, 1))
        t += read + 2e-5  # the request's own work before its command (untimed)
        cmd = 5e-5 * (1 + 1.0 * (1 - np.exp(-g / 0.002)))
        rows.append(("command", "a", t + cmd, cmd, 1))
        t += cmd
    st = idle_gaps(pd.DataFrame(rows, columns=["stage", "name", "at", "seconds", "events"]))
    cold, tau = slow_down(st, ("transport",))
    assert cold == pytest.approx(3.0, rel=0.1) and tau == pytest.approx(0.002, rel=0.25)
    engine = slow_down(st, ("command",))
    assert engine[0] == pytest.approx(1.0, rel=0.1)
    own = transport_samples(st, cold, tau, 1000)
    assert np.median(own) == pytest.approx(2e-5, rel=0.1)
    assert np.median(transport_samples(st, *engine, 1000)) > 1.3 * np.median(own)


def test_work_right_after_its_kind_is_measured_apart_and_written_as_its_factor() -> None:
    """Every 10 ms, right after a projection's step, two requests arrive together: two
    transport reads (the second right
    after the first, 12 us against 20), the two reads' GET requests (the second right after
    the first, 50 us against 100 after its read), then a batch of two commands (the second
    right after the first, 8 us against 20). Each factor is the repeats' median over the
    others'; the repeats are set apart from the kind's own samples; a real calibration's
    factors go into the scenario."""
    rows = []
    for i in range(40):
        t = 1.0 + i * 0.01
        rows += [("projection", "balances", t, 10e-6)]  # other work, right before
        rows += [("transport", "read", t + 20e-6, 20e-6), ("transport", "read", t + 32e-6, 12e-6)]
        rows += [("request", "GET /queries/{name} 200", t + 132e-6, 100e-6),
                 ("request", "GET /queries/{name} 200", t + 182e-6, 50e-6)]  # fmt: skip
        rows += [("command", "Deposit", t + 202e-6, 20e-6),
                 ("command", "Deposit", t + 210e-6, 8e-6)]  # fmt: skip
    st = pd.DataFrame(rows, columns=["stage", "name", "at", "seconds"]).assign(events=1)
    st = idle_gaps(st)
    assert repeat_factors(st) == {"transport": 0.6, "request": 0.5, "command": 0.4}
    marked = st[repeats(st)]
    assert len(marked) == 80 and set(marked["seconds"].round(9)) == {12e-6, 8e-6}
    # fewer than 20 repeats of a kind: no factor measured (1)
    assert repeat_factors(st[st["at"] < 1.0 + 19 * 0.01]) == {
        "transport": 1.0, "request": 1.0, "command": 1.0}  # fmt: skip


def test_a_requests_own_transport_read_does_not_warm_its_work_but_warms_the_next_read() -> None:
    """Two requests 10 ms apart, each a transport read (20 us) then a command (50 us)."""
    rows = []
    for t in (1.0, 1.01):
        rows += [("transport", "read", t + 2e-5, 2e-5, 1), ("command", "a", t + 8e-5, 5e-5, 1)]
    rows.append(("transport", "read", 1.01011, 2e-5, 1))  # a second read right after
    st = idle_gaps(pd.DataFrame(rows, columns=["stage", "name", "at", "seconds", "events"]))
    cmd = st[st["stage"] == "command"]["gap"].to_numpy()
    tr = st[st["stage"] == "transport"]["gap"].to_numpy()
    # the second command's gap runs from the first command's end, not from its own read
    assert cmd[1] == pytest.approx(1.01003 - 1.00008, abs=1e-9)
    assert tr[1] == pytest.approx(1.01 - 1.00008, abs=1e-9)  # from the first command's end
    assert tr[2] == pytest.approx(1e-5, abs=1e-9)  # the read right after the second command


@pytest.mark.slow
def test_the_written_scenario_is_the_event_loop(cal: LoopCalibration, tmp_path: Path) -> None:
    s = load_scenario(cal.write(tmp_path / "twin.toml", rate=300.0, duration=5.0))
    assert s.server is not None and s.server.request.mean == pytest.approx(cal.request_s)
    # the factors of work right after its kind, as measured (1: not measured, not written)
    assert set(cal.repeats) == {"transport", "request", "command"}
    for kind, factor in cal.repeats.items():
        assert factor > 0
        assert getattr(s.server, f"{kind}_repeat") == pytest.approx(factor, rel=1e-5)
    repeated = replace(cal, repeats={"transport": 0.7, "request": 0.55, "command": 1.0})
    sv = repeated.scenario(300.0, 5.0).server
    assert sv is not None and sv.repeats == {"transport": 0.7, "request": 0.55}
    assert sv.command_repeat == 1.0
    assert s.commands.handlers == 1 and s.reads is not None
    assert s.reads.rate == pytest.approx(300.0 * cal.reads_per_command)
    # the machine's wandering speed, fitted on the run's calls (0: none found, not written)
    assert s.server.speed_sd == pytest.approx(cal.speed_sd, abs=1e-5)
    assert cal.speed_sd == 0 or s.server.speed_time == pytest.approx(cal.speed_time, rel=1e-5)
    # the load generator's users, as loadtest sized its open model's pool: 0.6 commands
    # per task of the default users, one user per 4 tasks/s
    assert cal.users == 0 and cal.commands_per_task == pytest.approx(0.6)
    assert s.server.clients == math.ceil(300.0 / 0.6 / 4) == cal.clients_at(300.0)


def test_runs_without_engine_timings_are_refused_by_the_loop_twin(tmp_path: Path) -> None:
    run = load_results(synthetic_run(tmp_path / "r", rate=20, cpu_per_s=0.1))
    with pytest.raises(ConfigError, match="no 'command' timings"):
        calibrate_loop([run])


def _table(measured: list[float], predicted: list[float]) -> pd.DataFrame:
    return pd.DataFrame({
        "metric": ["command_latency_p50_s"] * len(measured),
        "sent_commands_per_s": [100.0 * (i + 1) for i in range(len(measured))],
        "measured": measured, "predicted": predicted,
        "rel_error": [p / m - 1 for m, p in zip(measured, predicted, strict=True)],
        "verdict": ["pass"] * len(measured), "calibration": [False] * len(measured),
        "view": ["balances"] * len(measured),
    })  # fmt: skip


def test_a_trend_against_the_measurement_is_a_disagreement_and_flat_is_none() -> None:
    assert trend_sign(1.0, 1.04) == 0 and trend_sign(1.0, 1.2) == 1
    t = trends(_table([1.0, 1.2, 1.5], [1.0, 0.9, 1.52]))
    assert list(t["measured_sign"]) == [1, 1]
    assert list(t["predicted_sign"]) == [-1, 1]
    assert list(t["agrees"]) == [False, True]


def test_the_closing_table_shows_the_repeats_range_and_a_miss_inside_it() -> None:
    """Two levels that fail their band: the twin's 1.3 ms lies inside the repeats' 1.1..2.9
    ms at the first, its 0.9 ms below the second's 2.0..4.0 ms; only the first says so."""
    table = _table([0.002, 0.003], [0.0013, 0.0009]).assign(
        verdict=["fail", "fail"], measured_low=[0.0011, 0.002], measured_high=[0.0029, 0.004]
    )
    knee = {"measured_per_s": 400.0, "ci_low_per_s": 380.0, "ci_high_per_s": 420.0,
            "predicted_per_s": 410.0, "rel_error": 0.025, "verdict": "pass"}  # fmt: skip
    lines = format_closing(table, trends(table), knee).splitlines()
    first, second = lines[2], lines[3]
    assert "1.10..2.90" in first and first.endswith("fail (band 20%), inside the repeats' range")
    assert "2.00..4.00" in second and second.endswith("fail (band 20%)")
    assert not any(line.startswith("repeats within") for line in lines)  # no repeats column


def test_the_closing_table_says_where_the_repeats_do_not_hold_their_own_band() -> None:
    """The first level's three repeats all lie within 20% of its pooled p50 (1.7..2.3 ms of
    2 ms); the second's do not (2.0..4.0 of 3 ms: -33%); a level measured as nothing (0 ms,
    one repeat NaN) holds nothing rather than dividing by zero."""
    table = _table([0.002, 0.003, 0.001], [0.0021, 0.0031, 0.001]).assign(
        repeats=3,
        measured=[0.002, 0.003, 0.0],
        measured_low=[0.0017, 0.002, 0.0],
        measured_high=[0.0023, 0.004, math.nan],
    )
    knee = {"measured_per_s": 400.0, "ci_low_per_s": 380.0, "ci_high_per_s": 420.0,
            "predicted_per_s": 410.0, "rel_error": 0.025, "verdict": "pass"}  # fmt: skip
    lines = format_closing(table, trends(table), knee).splitlines()
    held = [line for line in lines if line.startswith("repeats within")]
    assert held == ["repeats within their band of the pooled figure: 25% 1/1, 50% 0/1, 75% 0/1"]


@pytest.mark.slow
def test_the_closing_table_names_every_figure_the_trends_and_the_knee(
    cal: LoopCalibration,
) -> None:
    knee = KneeResult(4 * cal.anchor_rate, 3.8 * cal.anchor_rate, 4.2 * cal.anchor_rate,
                      pd.DataFrame(), False, "")  # fmt: skip
    row = knee_row(knee, cal, duration=2.0)
    assert row["predicted_per_s"] > cal.anchor_rate
    assert row["verdict"] == ("pass" if abs(row["rel_error"]) <= 0.15 else "fail")
    table = _table([0.001, 0.0012], [0.0011, 0.0013])
    text = format_closing(table, trends(table), row)
    assert "command latency p50 (ms)" in text and "+10%" in text
    assert "trends: 1 of 1 adjacent-level changes agree in sign" in text
    assert text.splitlines()[-1].startswith(f"knee: measured {knee.capacity_per_s:.0f}")


@pytest.mark.slow
def test_one_disturbed_calibration_run_does_not_move_the_clients_offsets(
    light: LoadResult, cal: LoopCalibration
) -> None:
    steady = measure(light, 1.0)
    stalled = {**steady, "command_latency_p99_s": steady["command_latency_p99_s"] + 0.05,
               "lag_p95_s": steady["lag_p95_s"] + 0.02}  # fmt: skip
    alone = client_offsets(cal, [steady], cal.anchor_rate, 1)
    three = client_offsets(cal, [steady, stalled, steady], cal.anchor_rate, 1)
    assert three.latency_offset_s == alone.latency_offset_s
    assert three.lag_offset_s == alone.lag_offset_s
    two_of_three = client_offsets(cal, [stalled, steady, stalled], cal.anchor_rate, 1)
    assert two_of_three.latency_offset_s["p99"] == pytest.approx(
        alone.latency_offset_s["p99"] + 0.05
    )  # a stall in most runs is the level's, and counts


def test_a_numpy_rate_writes_a_valid_scenario() -> None:
    """Rates from a pandas column or a numpy grid are numpy floats: the scenario written
    for one must still be TOML (its repr once wrote ``rate = np.float64(...)``)."""
    cal = LoopCalibration(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
                          per_batch={"balances": 1e-5}, request_s=2.5e-4,
                          reads_per_command=1.0, mix={"deposit": 1.0}, keys=100)  # fmt: skip
    s = cal.scenario(rate=np.float64(200.0), duration=np.float64(2.0))
    assert s.reads is not None and s.reads.rate == 200.0
    assert predict_loop(cal, np.float64(150.0), duration=2.0)["offered_commands_per_s"] == 150.0


def test_a_wandering_speed_is_written_into_the_scenario_and_described() -> None:
    base = dict(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
                per_batch={"balances": 1e-5}, request_s=2.5e-4, reads_per_command=1.0,
                mix={"deposit": 1.0}, keys=100)  # fmt: skip
    still = LoopCalibration(**base)  # type: ignore[arg-type]
    moving = LoopCalibration(**base, speed_sd=0.2, speed_time=0.1)  # type: ignore[arg-type]
    s = moving.scenario(rate=200.0, duration=2.0)
    assert s.server is not None
    assert (s.server.speed_sd, s.server.speed_time) == (0.2, 0.1)
    assert "wanders by 20% (sd of its log) over stretches of 100 ms" in describe_calibration(moving)
    assert "bound" not in describe_calibration(moving)
    # a fit that reached its longest time constant says so: runs of a level do not resolve it
    slow = LoopCalibration(**base, speed_sd=0.24, speed_time=TIME_BOUNDS[1])  # type: ignore[arg-type]
    said = describe_calibration(slow)
    assert "over stretches of 2000 ms (time constant) (at the fit's bound" in said
    t = still.scenario(rate=200.0, duration=2.0)
    assert t.server is not None and t.server.speed_sd == 0.0
    assert "wanders" not in describe_calibration(still)


def test_the_clients_offset_is_the_same_at_every_rate() -> None:
    """What is not simulated (the client's side) is added as measured at the calibration
    level, unscaled: the prediction at four times that rate is the simulated percentile plus
    the same offset (no correction that could turn a trend)."""
    from dataclasses import replace

    cal = LoopCalibration(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
                          per_batch={"balances": 1e-5}, request_s=2.5e-4,
                          reads_per_command=1.0, mix={"deposit": 1.0}, keys=100, cold=1.5,
                          anchor_rate=50.0)  # fmt: skip
    offsets = {"p50": 4e-4, "p95": 6e-4, "p99": 8e-4}
    cal = replace(cal, latency_offset_s=offsets, lag_offset_s={"p50": 1e-5, "p95": 2e-5})
    assert client_cold(cal, 200.0) < 0.9  # the generator's CPU would warm up: not these
    raw = simulated_figures(cal, 200.0, 5.0, 3)
    got = predict_loop(cal, 200.0, 5.0, 3)
    for p, off in offsets.items():
        key = f"command_latency_{p}_s"
        assert got[key] == pytest.approx(raw[key] + off, rel=1e-9)
    assert got["lag_p95_s"] == pytest.approx(raw["lag_p95_s"] + 2e-5, rel=1e-9)


@pytest.mark.slow
def test_twin_on_a_measure_knee_folder_judges_its_levels_again_up_to_its_knee(
    light: LoadResult,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``cqrs-lab twin DIR`` on a folder that ``--measure-knee`` wrote (its ``knee.csv`` and
    its levels) prints the closing table again with the twin as it is now, without a load
    test: the knee found again from the saved steps, the levels compared with it."""
    import argparse
    import shutil

    import cqrs_lab.load.knee_validation as kv
    from cqrs_lab.load.cli import register
    from tests.load.test_knee import OFFERED, table

    full = kv.predicted_capacity  # its bisection, on 2 simulated seconds a rate (not 20)
    monkeypatch.setattr(
        kv, "predicted_capacity", lambda c, seed=1, duration=20.0: full(c, seed, 2.0)
    )

    base = tmp_path / "knee-run"
    shutil.copytree(light.path, base / f"commands-{light.path.name}")
    finished = [100.0, 150.0, 225.0, 337.0, 420.0, 418.0, 405.0]  # a knee at 419/s
    table(OFFERED, finished).assign(role="").to_csv(base / "knee.csv", index=False)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["twin", str(base), "--warmup", "1", "--no-plots"])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "level             sent  figure" in out and "calibration" in out
    assert "knee: measured 419 commands/s (95% CI " in out
    row = pd.read_csv(base / "knee-prediction.csv").iloc[0]
    assert row["measured_per_s"] == pytest.approx(419.0)
    assert row["predicted_per_s"] > 0 and (base / "validation.csv").is_file()
    assert not (base / "twin.csv").exists()  # not the comparison of plain levels
    # only the calibration level: no level to judge at its measured CPU, an empty table
    assert "with the server's measured CPU" not in out
    assert pd.read_csv(base / "validation-cpu-matched.csv").empty
    # --predict-processes goes with such a folder too (it was once left unanswered)
    import cqrs_lab.load.loop_processes as lp

    quick = lp.predict_processes
    monkeypatch.setattr(lp, "predict_processes", lambda c, n: quick(c, n, duration=1.0))
    again = ["twin", str(base), "--warmup", "1", "--no-plots", "--predict-processes", "1,2"]
    args = parser.parse_args(again)
    assert args.run(args) == 0
    assert "predicted capacity per server process count" in capsys.readouterr().out
    assert list(pd.read_csv(base / "twin-processes.csv")["processes"]) == [1, 2]


def test_past_the_knee_the_generators_users_hold_the_twins_throughput() -> None:
    """Offered three times its capacity, the twin with the load generator's pool finishes
    about what it finishes at the knee (the users wait, the server's queue stays bounded),
    as a measured ramp does; open arrivals without the pool shed at the queue's limit and,
    paying to turn them away, finish less."""
    from dataclasses import replace

    cal = LoopCalibration(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
                          per_batch={"balances": 1e-5}, request_s=2.5e-4,
                          reads_per_command=1.0, mix={"deposit": 1.0}, keys=100, cpus=0.5,
                          commands_per_task=0.6)  # fmt: skip
    assert cal.clients_at(900.0) == 375 and cal.clients_at(1e6) == 500
    assert replace(cal, users=64).clients_at(1e6) == 64  # a fixed pool (--users)
    knee = simulated_figures(cal, cal.capacity_bound, 5.0, 1)["finished_per_s"]
    pooled = simulated_figures(cal, 3 * cal.capacity_bound, 5.0, 1)
    open_ = simulated_figures(replace(cal, commands_per_task=0.0), 3 * cal.capacity_bound, 5.0, 1)
    assert pooled["finished_per_s"] >= 0.9 * knee
    assert pooled["arrived_per_s"] > 2.5 * pooled["finished_per_s"]  # offered, not sent
    assert open_["finished_per_s"] < 0.9 * pooled["finished_per_s"]


def test_the_knee_is_judged_with_the_ramps_own_users(tmp_path: Path) -> None:
    """The ramp's segments each ran a fixed pool (run.json "users"): the twin's capacity
    and curve against the ramp use the largest, not the pool sized per rate."""
    from cqrs_lab.load.knee_validation import as_ramp

    cal = LoopCalibration(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
                          per_batch={"balances": 1e-5}, request_s=2.5e-4,
                          reads_per_command=1.0, mix={"deposit": 1.0},
                          commands_per_task=0.6)  # fmt: skip
    assert as_ramp(cal, tmp_path) is cal  # no ramp here
    for seg, text in ((1, '{"users": 417}'), (2, '{"users": 500}'), (3, "{damaged")):
        (tmp_path / "knee" / f"segment-{seg}").mkdir(parents=True)
        (tmp_path / "knee" / f"segment-{seg}" / "run.json").write_text(text)
    ramp = as_ramp(cal, tmp_path)
    assert ramp.users == 500 and ramp.clients_at(100.0) == 500 and cal.clients_at(100.0) == 42


@pytest.mark.slow
def test_a_slow_down_the_measured_cpu_rules_out_is_not_kept(
    light: LoadResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow-down after idling fitted so large (501 times, over 0.1 s) that the simulated
    light level spends more than the server did with no CPU at all for the requests (on
    PostgreSQL the fit came out anywhere from 1.1 to 2.4 times over runs of one setting, and
    at 2.4 the solve left the requests nothing): the calibration drops it, says so, and the
    loop spends the measured CPU again with the requests' CPU solved without it."""
    import cqrs_lab.load.loop_calibration as lc

    monkeypatch.setattr(lc, "slow_down", lambda st, *kinds: (500.0, 0.1))
    cal = calibrate_loop([light], warmup=1.0)
    assert cal.notes["cold_rejected"] == 500.0
    assert cal.cold == 0.0 and cal.transport_cold == 0.0 and cal.request_s > 0
    assert "the 501.00 times fitted left the requests no CPU" in cal.describe()
    m = measure(light, 1.0)
    idle = float(light.run.get("server_idle_cpu") or 0.0)
    assert sim_cpu(cal, cal.anchor_rate) == pytest.approx(m["server_cpu"] - idle, rel=0.05)
    # a slow-down the measured CPU allows is kept (the fixture's own calibration)
    monkeypatch.undo()
    assert "cold_rejected" not in calibrate_loop([light], warmup=1.0).notes


def test_the_twin_splits_each_latency_where_the_servers_app_starts() -> None:
    # the same split as a measured latency (cqrs_lab.load.answer_delay): before the
    # command's task starts on the loop, and from there to its answer
    cal = LoopCalibration(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
                          per_batch={"balances": 1e-5}, request_s=2.5e-4, reads_per_command=1.0,
                          mix={"deposit": 1.0}, keys=100, transport_s=(3e-5,))  # fmt: skip
    light, heavy = (simulate_twin(cal, rate, 4.0, 1) for rate in (200.0, 1500.0))
    for sim in (light, heavy):
        assert (sim["to_app_s"] >= 0).all() and (sim["app_s"] > 0).all()
        total = (sim["to_app_s"] + sim["app_s"]).to_numpy()
        assert total == pytest.approx(sim["latency_s"].to_numpy(), abs=1e-9)
    # near its capacity the wait before the app grows, the app's own time far less
    grow = heavy.quantile(0.95) / light.quantile(0.95)
    assert grow["to_app_s"] > 3 and grow["to_app_s"] > grow["app_s"]
    figures = simulated_figures(cal, 200.0, 4.0, 1)
    assert figures["app_p50_s"] == pytest.approx(float(light["app_s"].median()))
    assert predict_loop(cal, 200.0, 4.0)["to_app_p95_s"] == figures["to_app_p95_s"]
