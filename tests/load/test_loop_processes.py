"""The loop twin of several server processes, without a server: the waits read from the
stage timings, the rest of the machine's CPU read from a run's files, the scenario it
writes and its capacity per process count."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.load import load_results
from cqrs_lab.load.loop_processes import format_processes, predict_processes, processes_report
from cqrs_lab.load.loop_stages import tick_overhead
from cqrs_lab.load.loop_twin import LoopCalibration, predicted_knee, simulated_figures
from cqrs_lab.load.loop_waits import (
    commit_growth,
    generator_apart,
    other_cpu,
    shared_cores,
    stage_waits,
    transactions,
    workers,
)
from tests.load.helpers import T0, request, write_run


def calibration(**changes: object) -> LoopCalibration:
    base: dict[str, object] = dict(
        command_s=(2e-4,), query_s=(1e-4,), per_event={"balances": 1e-4},
        per_batch={"balances": 0.0}, request_s=3e-4, reads_per_command=0.0,
        mix={"deposit": 1.0}, keys=200,
    )  # fmt: skip
    return LoopCalibration(**{**base, **changes})  # type: ignore[arg-type]


def test_the_merged_samples_are_told_apart_by_worker() -> None:
    at = [1.0, 1.2, 1.4, 1.1, 1.3, 1.5]  # worker 0's part, then worker 1's
    assert list(workers(pd.DataFrame({"at": at}))) == [0, 0, 0, 1, 1, 1]


def test_the_waits_come_off_the_cpu_of_the_stages_that_hold_them() -> None:
    """Batches of 2 commands timed 1 ms each (wall), the batch 3 ms of which 1.5 ms waited:
    1.5 ms of CPU for 2 ms of command time, so 75% of a command's time is CPU. Pump ticks
    of 2 steps of 0.5 ms each waited 0.4 ms: 40% of the steps' time is waiting."""
    rows = []
    for i in range(20):
        t = float(i)
        rows += [("command", t + 0.001, 0.001, 1), ("command", t + 0.002, 0.001, 1),
                 ("writer", t + 0.003, 0.003, 2), ("projection", t + 0.5, 0.0005, 3),
                 ("projection", t + 0.501, 0.0005, 3)]  # fmt: skip
    st = pd.DataFrame(rows, columns=["stage", "at", "seconds", "events"])
    waits = pd.DataFrame(
        [("commit", i + 0.003, 0.0015) for i in range(20)]
        + [("pump-wait", i + 0.501, 0.0004) for i in range(20)],
        columns=["stage", "at", "seconds"],
    )
    w = stage_waits(waits, st, 100)
    assert w.command_cpu == pytest.approx(0.75)
    assert w.projection_cpu == pytest.approx(0.6)
    assert w.pump_wait_s == pytest.approx(0.0002)  # per step: a tick's wait over its 2 steps
    assert set(w.commit_s) == {0.0015}
    assert stage_waits(waits[waits["stage"] == "none"], st, 100).command_cpu == 1.0


def test_the_cores_shared_are_the_machines_whatever_the_run_was_pinned_to() -> None:
    assert shared_cores({"cpus": {"server": [0], "generator": [1]}, "machine_cpus": 2}) == 2
    assert shared_cores({"cpus": None, "machine_cpus": 8}) == 8
    assert shared_cores({"cpus": {"server": [0]}}) is None


def test_the_scenario_has_the_processes_and_their_waits() -> None:
    cal = calibration(processes=3, commit_s=(0.001, 0.003), pump_wait_s=4e-4, poll=0.05,
                      cores=2)  # fmt: skip
    s = cal.scenario(rate=100.0, duration=2.0)
    assert s.commands.processes == 3 and s.server is not None
    assert s.server.commit.mean == pytest.approx(0.002)
    assert (s.server.pump_wait.mean, s.server.poll, s.server.cores) == (4e-4, 0.05, 2)


def test_a_commit_wait_costs_capacity_only_until_batches_grow_to_absorb_it() -> None:
    """One process, 0.6 ms of CPU per command: 1667/s by hand. A 1 ms commit wait per
    batch holds the loop while commands queue, so batches grow and the knee stays close
    to the CPU's (the wait is paid per batch, not per command); a light level's cost per
    command (1.6 ms, batches of one) would have put it at 625/s."""
    free = predicted_knee(calibration(), duration=2.0)
    held = predicted_knee(calibration(commit_s=(0.001,)), duration=2.0)
    assert free == pytest.approx(1 / 0.0006, rel=0.1)
    batches_of_one = 1 / 0.0016  # what the light level's cost per command would give
    assert 1.5 * batches_of_one < held <= free * 1.02


def test_adding_processes_on_shared_cores_stops_helping() -> None:
    slow = calibration(command_s=(1e-3,), request_s=1.5e-3, per_event={"balances": 5e-4})
    table = predict_processes(replace(slow, cores=2), [1, 2, 3, 4], duration=4.0)
    cap = table["capacity_per_s"].to_list()
    # by hand, per command 2.5 ms split over N loops plus 0.5 ms of pumping per loop, on
    # two cores: 333 and 571/s, then 2 / (2.5 + 3 * 0.5) ms = 500 and 2 / 4.5 ms = 444/s
    for got, want in zip(cap, [333, 571, 500, 444], strict=True):
        assert got == pytest.approx(want, rel=0.1)
    assert list(table["helps"]) == [True, True, False, False]
    text = format_processes(table)
    assert "capacity (commands/s)" in text
    assert text.count("stops helping") == 2


def machine_run(tmp_path: Path, database: bool | None, columns: int = 4) -> Path:
    """A run folder whose cpu.csv samples every second for 10 s: the generator spends
    0.1 s of CPU per second, the database 0.05 (``database``: its CPU recorded in run.json;
    None: no ``database_cpu_s`` key at all, as in older runs)."""
    lines = ["t,server_cpu_s,generator_cpu_s,database_cpu_s"[: None if columns == 4 else -15]]
    for t in range(11):
        row = f"{T0 + t},{0.2 * t:.2f},{0.1 * t:.2f}"
        lines.append(row + (f",{0.05 * t:.2f}" if columns == 4 else ""))
    run = {} if database is None else {"database_cpu_s": 0.5 if database else None}
    path = write_run(tmp_path / "run", [request(0.0, "deposit"), request(10.0, "deposit")],
                     run=run)  # fmt: skip
    (path / "cpu.csv").write_text("\n".join(lines) + "\n")
    assert json.loads((path / "run.json").read_text()).get("database_cpu_s", "-") == run.get(
        "database_cpu_s", "-"
    )
    return path


def test_the_rest_of_the_machine_is_read_over_the_window(tmp_path: Path) -> None:
    path = machine_run(tmp_path, True)
    got = other_cpu(load_results(path), 2.0, 8.0)
    assert got == pytest.approx({"generator": 0.6, "database": 0.3})
    # what the database spent serving the idle server's polls (0.02 cores) comes off
    run = json.loads((path / "run.json").read_text())
    (path / "run.json").write_text(json.dumps({**run, "database_idle_cpu": 0.02}))
    got = other_cpu(load_results(path), 2.0, 8.0)
    assert got == pytest.approx({"generator": 0.6, "database": 0.3 - 0.02 * 6})


@pytest.mark.parametrize(("database", "columns"), [(False, 4), (None, 4), (None, 3)])
def test_a_database_not_measured_costs_nothing(
    tmp_path: Path, database: bool | None, columns: int
) -> None:
    """run.json's ``database_cpu_s`` null (a remote database) or absent (an older run, with
    or without the column): the database counts 0, the generator as measured."""
    got = other_cpu(load_results(machine_run(tmp_path, database, columns)), 2.0, 8.0)
    assert got == pytest.approx({"generator": 0.6, "database": 0.0})


def test_without_other_cpu_the_single_process_twin_is_unchanged() -> None:
    """The field's default is 0: the scenario has neither ``cores`` (one loop, two cores)
    nor ``other_cpu``, and the simulated figures are those of a calibration without cores."""
    cal = calibration(reads_per_command=1.0)
    assert cal.other_cpu_s == 0.0
    two = replace(cal, cores=2)
    assert two.toml(300.0, 2.0) == cal.toml(300.0, 2.0)
    assert "other_cpu" not in two.toml(300.0, 2.0)
    assert simulated_figures(two, 300.0, 2.0, 1) == simulated_figures(cal, 300.0, 2.0, 1)
    assert two.capacity_bound == cal.capacity_bound


def test_other_cpu_goes_into_the_scenario_with_the_machines_cores() -> None:
    cal = calibration(cores=2, other_cpu_s=4e-4)
    s = cal.scenario(rate=100.0, duration=2.0)
    assert s.server is not None and (s.server.cores, s.server.other_cpu) == (2, 4e-4)
    assert "generator 0.400 ms of CPU per command on the machine's 2 cores" in cal.describe()
    # no cores recorded: nothing to share, nothing written
    assert "other_cpu" not in replace(cal, cores=None).toml(100.0, 2.0)
    with pytest.raises(ConfigError, match="other_cpu_s"):
        calibration(other_cpu_s=-1e-3)


def test_the_rest_of_the_machine_lowers_the_capacity_of_processes_sharing_its_cores() -> None:
    """Per command 2.5 ms split over N loops plus 0.5 ms of pumping per loop, and 1 ms of
    the generator's and database's CPU, on two cores. By hand: min(1 / per loop, 2 / (N *
    per loop + 1 ms)): one process keeps its core, 333/s; then 2 / 4.5 ms = 444/s (571/s
    without the other CPU), 2 / 5 ms = 400/s, 2 / 5.5 ms = 364/s."""
    slow = calibration(command_s=(1e-3,), request_s=1.5e-3, per_event={"balances": 5e-4},
                       cores=2, other_cpu_s=1e-3)  # fmt: skip
    want = [333, 444, 400, 364]
    for n, w in zip([1, 2, 3, 4], want, strict=True):
        assert replace(slow, processes=n).capacity_bound == pytest.approx(w, rel=0.01)
    table = predict_processes(slow, [1, 2, 3, 4], duration=4.0)
    for got, w in zip(table["capacity_per_s"].to_list(), want, strict=True):
        assert got == pytest.approx(w, rel=0.1)
    assert list(table["helps"]) == [True, True, False, False]


def test_the_generators_cpu_per_command_warms_up_as_it_sends_faster() -> None:
    """1 ms of the generator's CPU per command at the calibration level, 50 commands/s, no
    reads; its work slows down after idling as the server's does (up to 2 times, time
    constant 1 ms): by hand, 1 + 1 / (1 + r * 1 ms) is 1.952 at 50/s and 1.667 at 500/s,
    so at 500/s it spends 0.854 ms per command; at the calibration level, 1 ms."""
    cal = calibration(cores=2, other_cpu_s=1e-3, cold=1.0, cold_time=1e-3, anchor_rate=50.0)
    at = {r: cal.scenario(rate=r, duration=2.0).server for r in (50.0, 500.0)}
    assert at[50.0] is not None and at[50.0].other_cpu == pytest.approx(1e-3)
    assert at[500.0] is not None
    assert at[500.0].other_cpu == pytest.approx(1e-3 * (1 + 1 / 1.5) / (1 + 1 / 1.05), rel=1e-6)
    assert at[500.0].other_cpu == pytest.approx(0.854e-3, rel=1e-3)


def test_a_batch_waits_longer_for_its_commit_the_more_commands_it_holds() -> None:
    """40 batches of one waiting 1 ms, 20 of two 1.4 ms, 5 of three 1.8 ms (too few to
    count): 0.4 ms more per command beyond the first; the samples become what a batch of one
    waits (those of two less 0.4 ms), and the growth goes into the scenario."""
    commit = pd.DataFrame({
        "stage": "commit", "at": 0.0,
        "seconds": [0.001] * 40 + [0.0014] * 20 + [0.0018] * 5,
        "events": [1] * 40 + [2] * 20 + [3] * 5,
    })  # fmt: skip
    work = pd.DataFrame({"stage": ["command"] * 4, "seconds": [1e-4] * 4, "events": [1] * 4})
    w = stage_waits(commit, work, 100)
    assert w.commit_per_command_s == pytest.approx(4e-4)
    assert set(np.round(w.commit_s, 9)) == {0.001}  # every batch's wait as for one command
    # one batch size only, or none seen 20 times: no growth is claimed
    assert commit_growth(commit[commit["events"] == 1]) == 0.0
    assert commit_growth(commit.assign(events=[1] * 40 + [2] * 19 + [3] * 6)) == 0.0
    cal = calibration(commit_s=(0.001,), commit_per_command_s=4e-4)
    s = cal.scenario(rate=100.0, duration=2.0)
    assert s.server is not None and s.server.commit_per_command == pytest.approx(4e-4)
    assert "+0.400 ms per command beyond the first" in cal.describe()


def test_the_pump_ticks_cpu_outside_its_steps_is_spread_over_them() -> None:
    """Ticks of 4 ms wall, 1 ms of it waiting, holding 2 steps of 1 ms wall each, half of
    it CPU: (4 - 1 - 2 * 0.5) / 2 = 1 ms of CPU per step outside it; after an idle gap
    long enough for the full slow-down (2.5 times), 0.4 ms warm."""
    st = pd.DataFrame({"stage": ["pump"] * 10 + ["projection"] * 20,
                       "seconds": [0.004] * 10 + [0.001] * 20, "gap": [1.0] * 30})  # fmt: skip
    waited = pd.DataFrame({"stage": ["pump-wait"] * 10, "seconds": [0.001] * 10})
    assert tick_overhead(st, waited, 0.5, 0.0, 1e-3) == pytest.approx(1e-3)
    assert tick_overhead(st, waited, 0.5, 1.5, 1e-3) == pytest.approx(4e-4)
    # steps all CPU: (4 - 1 - 2) / 2; steps and waits taking all of the tick, or too few
    # ticks: nothing outside them
    assert tick_overhead(st, waited, 1.0, 0.0, 1e-3) == pytest.approx(5e-4)
    assert tick_overhead(st, waited.assign(seconds=0.002), 1.0, 0.0, 1e-3) == 0.0
    assert tick_overhead(st.iloc[5:], waited, 0.5, 0.0, 1e-3) == 0.0


def test_the_database_cpu_per_transaction_goes_into_the_scenario_and_the_bound() -> None:
    """Per command 2.5 ms split over 2 loops plus 0.5 ms of pumping per loop, and the
    database 0.5 ms per transaction, on two cores. By hand, with batches of one: a command
    is 3 transactions (its batch, and a pump step in each process's replica of the one
    view), 1.5 ms of the database's CPU: 2 / (2 * 1.75 + 1.5) ms = 400/s (571/s for a
    loop alone)."""
    cal = calibration(command_s=(1e-3,), request_s=1.5e-3, per_event={"balances": 5e-4},
                      cores=2, database_cpu_s=5e-4, processes=2)  # fmt: skip
    assert cal.capacity_bound == pytest.approx(400.0, rel=1e-6)
    assert replace(cal, database_cpu_s=0.0).capacity_bound == pytest.approx(571.4, rel=1e-3)
    s = cal.scenario(rate=100.0, duration=2.0)
    assert s.server is not None and (s.server.cores, s.server.database_cpu) == (2, 5e-4)
    assert s.server.other_cpu == 0.0  # no generator on the shared cores
    assert "database 0.500 ms of CPU per transaction" in cal.describe()
    # one process with the database's CPU shares the cores; without cores nothing is written
    one = replace(cal, processes=1)
    assert one.shares_cores and "database_cpu = 0.0005" in one.toml(100.0, 2.0)
    assert "database_cpu" not in replace(cal, cores=None).toml(100.0, 2.0)
    with pytest.raises(ConfigError, match="database_cpu_s"):
        calibration(database_cpu_s=float("nan"))


def test_the_database_is_paid_per_transaction_and_the_generator_only_on_shared_cores(
    tmp_path: Path,
) -> None:
    """A run pinned apart (server on core 0, generator on core 1) and one that was not:
    the generator's CPU is spent beside the loops only in the second."""
    assert generator_apart({"cpus": {"server": [0], "generator": [1]}})
    assert not generator_apart({"cpus": {"server": [0, 1], "generator": [1]}})
    assert not generator_apart({"cpus": None}) and not generator_apart({})
    work = pd.DataFrame({"stage": ["writer", "command", "projection", "projection", "query"]})
    assert transactions(work) == 3


def test_the_flag_says_what_is_wrong_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not processes_report("1,two", calibration(), tmp_path)
    assert not processes_report("1,2", object(), tmp_path)
    assert not processes_report("0,2", calibration(), tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("cqrs-lab twin: --predict-processes") for e in err)
    assert "--model loop" in err[1] and ">= 1" in err[2]
