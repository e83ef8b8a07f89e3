"""The loop twin of several server processes, without a server: the waits read from the
stage timings, the scenario it writes and its capacity per process count."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from cqrs_lab.load.loop_processes import format_processes, predict_processes
from cqrs_lab.load.loop_twin import LoopCalibration, predicted_knee
from cqrs_lab.load.loop_waits import shared_cores, stage_waits, workers
from cqrs_lab.load.twin_cli import _processes_table


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
    assert 1 / 0.0016 * 1.5 < held <= free * 1.02


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


def test_the_flag_says_what_is_wrong_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not _processes_table("1,two", calibration(), tmp_path)
    assert not _processes_table("1,2", object(), tmp_path)
    assert not _processes_table("0,2", calibration(), tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("cqrs-lab twin: --predict-processes") for e in err)
    assert "--model loop" in err[1] and ">= 1" in err[2]
