"""The loop twin calibrated from a real light load test against ``serve --store
postgresql://... --workers 2``: it learns the two processes, the writer's wait for the
commit, a CPU balance and the rest of the machine's CPU (the generator, the database), and
predicts the capacity at other process counts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from cqrs_lab.load import load_results
from cqrs_lab.load.calibration_inputs import window
from cqrs_lab.load.loop_calibration import IDLE_POLL, calibrate_loop, sim_cpu
from cqrs_lab.load.loop_processes import predict_processes
from cqrs_lab.load.loop_pump import pump_growth, tick_steps
from cqrs_lab.load.loop_twin import predicted_knee
from cqrs_lab.load.loop_waits import generator_apart

pytestmark = pytest.mark.slow  # a real two-worker server, a saga worker and Locust


def test_the_idle_poll_is_the_servers() -> None:
    from cqrs_lab.http.config import ServerConfig

    assert ServerConfig.idle_poll == IDLE_POLL


def test_the_loop_twin_calibrates_from_two_workers_and_predicts_other_counts(
    two_workers_run: tuple[Path, int],
) -> None:
    path, code = two_workers_run  # the session's run (tests/postgres/workers_run.py)
    assert code == 0, (path / "server.log").read_text()[-2000:]
    run = json.loads((path / "run.json").read_text())
    # the parent and its two workers, each with its CPU; the workers do the work
    per_process = run["server_process_cpu_s"]
    assert len(per_process) == 3
    worker_cpu = sorted(per_process.values())[1:]
    assert min(worker_cpu) > 0.1 and sum(worker_cpu) <= run["server_cpu_s"] + 1e-6
    # the local PostgreSQL server's CPU, over the run and second by second in cpu.csv
    assert run["database_cpu_s"] > 0.05, run["database_cpu_s"]
    db = pd.read_csv(path / "cpu.csv")["database_cpu_s"].dropna()
    assert len(db) > 10 and db.is_monotonic_increasing
    assert db.iloc[-1] - db.iloc[0] == pytest.approx(run["database_cpu_s"], abs=0.1)

    cal = calibrate_loop([load_results(path)], warmup=1.0)
    assert cal.processes == 2 and cal.notes["stage_parts"] == 2
    assert cal.poll == IDLE_POLL
    # each writer batch waited for PostgreSQL's commit round trips (over 50 µs on loopback)
    assert len(cal.commit_s) > 20 and float(sum(cal.commit_s) / len(cal.commit_s)) > 5e-5, cal
    # a pump step's wait, as a line of its events read from the ticks of the window (both
    # workers'): what the twin waits per step and per event
    result = load_results(path)
    lo, hi = window(result, 1.0)
    ticks = tick_steps(result.stages)
    ticks = ticks[(ticks["at"] - result.t0 >= lo) & (ticks["at"] - result.t0 < hi)]
    growth = pump_growth(ticks)
    assert len(ticks) > 20, ticks.describe()
    assert cal.pump_wait_s == pytest.approx(growth.wait_s)
    assert cal.pump_wait_per_event_s == pytest.approx(growth.wait_per_event_s)
    # a step waits for the database (a round trip or more): its mean wait is not 0, whether
    # the line puts it in its base or in its growth per event
    mean_events = float(ticks["events"].mean())
    assert cal.pump_wait_s + cal.pump_wait_per_event_s * mean_events > 5e-5, cal
    # each pump tick spends CPU outside its timed steps (its transaction, the polls that
    # found nothing: a round trip each), spread over the steps
    assert cal.notes["tick_overhead_s"] > 0, cal.notes
    # the CPU balance: what is left for the requests once the engine's stages are CPU only
    # is positive, and the two simulated loops spend the workers' measured CPU (within 5%)
    busy = cal.notes["busy_cpu"]
    assert cal.request_s > 0, cal.describe()
    assert sim_cpu(cal, cal.anchor_rate) == pytest.approx(busy, rel=0.05), cal.describe()
    # the rest of the machine, spent beside the loops on the machine's cores: two workers on
    # two cores leave no core for the generator alone, so its CPU in the window counts, per
    # command; the database's counts per transaction (each writer batch, each pump step:
    # more than one per command here, so less than its CPU per command)
    notes = cal.notes
    assert notes["generator_cpu"] > 0 and notes["database_cpu"] > 0, notes
    assert not generator_apart(run)
    assert cal.other_cpu_s == pytest.approx(notes["generator_cpu"] / cal.anchor_rate, rel=1e-6)
    assert 0 < cal.database_cpu_s < notes["database_cpu"] / cal.anchor_rate, cal.describe()
    assert cal.cores == run["machine_cpus"] and cal.shares_cores
    server = cal.scenario(cal.anchor_rate, 1.0).server
    assert server is not None and server.other_cpu == pytest.approx(cal.other_cpu_s, rel=1e-6)
    assert server.database_cpu == pytest.approx(cal.database_cpu_s, rel=1e-6)

    table = predict_processes(cal, [1, 2, 3, 4], duration=1.5)
    assert list(table["processes"]) == [1, 2, 3, 4]
    assert (table["capacity_per_s"] > cal.anchor_rate).all(), table
    # every process pumps every event: from two processes on, a process's share of the
    # capacity does not grow; the knee search's resolution is about 3% of a capacity
    per = table["per_process_per_s"].to_list()
    assert per[2] <= 1.03 * per[1] and per[3] <= 1.03 * per[2], table
    # the two processes share the machine's two cores with the generator and the database:
    # the second does not double the capacity, and without the rest of the machine's CPU
    # the twin would have predicted more for it
    cap = table["capacity_per_s"].to_list()
    assert cap[1] < 2 * cap[0], table
    alone = replace(cal, processes=2, other_cpu_s=0.0, database_cpu_s=0.0)
    alone_knee = predicted_knee(alone, duration=1.5, keep_up=True)
    assert alone_knee > 1.1 * cap[1], (alone_knee, table)
