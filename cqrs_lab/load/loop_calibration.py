"""Calibrating the event-loop twin (:mod:`cqrs_lab.load.loop_twin`) stage by stage from the
runs of one light level; no curve of latency against load is fitted.

:func:`calibrate_loop` measures:

- the engine's service-time *distributions* from the server's per-stage timings (``serve
  --stage-timings``): a command's decide and append (``command`` stage) and a query
  (``query``), each taken from the calls that came right after other timed work (warm); per
  view, a projection pump's cost per step and per event (least squares of each warm step's
  seconds on its events), plus each step's share of the pump tick's CPU outside its steps
  (:func:`~cqrs_lab.load.loop_stages.tick_overhead`: the tick's transaction, the polls that
  found nothing; on PostgreSQL a round trip each, about 0.45 ms of CPU per step measured
  here, which counted per request would have put the light level's CPU per command on
  every request at any load); the writer's cost per batch beyond its commands (``writer``
  stage, less the commands' own ``command`` time);
- the slow-down after idling: each engine call's time against the idle gap before it (the
  time since the server's previous timed work ended), as the loop's ``cold`` and
  ``cold_time`` (:func:`~cqrs_lab.load.loop_stages.cold_fit`): a call right after other
  work is warm, one after 5 ms idle takes two to three times as long;
- how much cheaper a transport's read, a request and a command are right after one of
  their kind (:func:`~cqrs_lab.load.loop_repeats.repeat_factors`): under load the loop
  works in runs of like work, and those runs, not a colder CPU alone, are what makes the
  server's CPU per command fall by half from a tenth of the knee to the knee. Each kind's
  own samples are its calls after other work; the simulated loop charges the factors to
  the runs it produces;
- the machine's wandering speed (:func:`~cqrs_lab.load.loop_speed_fit.speed_fit`): how
  much the calls that came right after other work cost more or less together in one 50 ms
  stretch than in another, beyond their own scatter, and how long a stretch lasts (on this
  machine an sd of 18 to 25% in the log, a time constant of 45 to 390 ms), simulated as a
  factor of mean one on all the loop's work (:mod:`cqrs_lab.sim.loop_speed`). Near the
  CPU limit a slow stretch overloads the server for its length and builds the queue the
  tails come from; without it the twin's p95 at 72% of the knee was 85% under the
  measured one, with it 32% under (one saved run);
- the HTTP protocol's read of each request (the ``transport`` stage: httptools parsing its
  bytes and starting its task), a turn of the loop of its own, warm: each read divided by
  the slow-down its idle gap implies (:func:`~cqrs_lab.load.loop_stages.
  transport_samples`), which the simulation applies again. The read's slow-down is its
  own (in memory; on PostgreSQL the engine's), fitted on its own timings when twenty or
  more came right after other work (after
  10 ms idle a read took about 4.4 times a warm one where an engine call took 2 to 2.6;
  with the engine's fit its warm cost stayed half again too high, and the twin's capacity
  14 to 24% low on four runs, 6 to 15% with its own); a server that did not time it
  (older runs) leaves it in the next item;
- the CPU of each request outside the engine and that read (routing, JSON, the socket),
  which no stage times: the one number solved for, so that the simulated loop at the
  level's rate is as busy as the server's measured CPU (its idle CPU taken off);
- the reads per command, the mix, the keys and the run's CPU limit (``--server-cpus``);
- the client's side, not simulated: the measured percentiles minus the simulated ones at
  the level, each the median of the level's runs (:func:`client_offsets`);
- for a run of several server processes (``--workers N`` on PostgreSQL): N, from the run's
  options; the stage samples of every worker (merged into one file, each worker's in turn:
  a worker's part begins where the time goes back) taken per worker for the idle gaps; on
  PostgreSQL, the wait of each writer batch for the database's commit (the ``commit``
  stage: the batch's wall time less the loop thread's CPU) and of each pump step for its
  read (``pump-wait``), simulated as time the loop is blocked without CPU (a batch's commit
  wait growing by :func:`~cqrs_lab.load.loop_waits.commit_growth` per command beyond its
  first: a batch of ten waited about 3 ms where one of one waited 1.3) and taken off the
  ``command`` and ``projection`` stages' times, which hold them
  (:mod:`cqrs_lab.load.loop_waits`); a pump step's wait and CPU growing with the events it
  carries, read from the ticks (:mod:`cqrs_lab.load.loop_pump`); the idle poll of the
  served code for the other workers' appends; the CPU of every worker (``cpu.csv`` sums
  them), spread by the simulation over N loops that each pump every event; the machine's
  cores, which the loops share;
- on PostgreSQL, the rest of the machine's CPU on those cores, over the steady window
  (``cpu.csv``; :func:`~cqrs_lab.load.loop_waits.other_cpu`): the local database server's
  CPU seconds per transaction it served (``database_cpu_s``: per writer batch and per
  projection pump step, :func:`~cqrs_lab.load.loop_waits.transactions`; its idle polls
  taken off). Per transaction, not per command: on this 2-core machine its CPU per command
  fell from 2.0 ms at 37 commands/s to 0.85 ms at 294/s while its CPU per transaction held
  at about 0.4 ms, batches and steps carrying more commands as the load grows; counted per
  command at the light level, the twin had the database take a core at 300 commands/s
  and predicted a collapse (132 commands/s finished) where the server kept up. The load
  generator's CPU per command that arrived (``other_cpu_s``), only when it ran on the
  server's cores (not pinned apart: :func:`~cqrs_lab.load.loop_waits.generator_apart`):
  per command, not per request, since the twin's reads are a fixed number per command, and
  warming up at higher rates as the server's work does
  (:func:`~cqrs_lab.load.loop_scenario.client_cold`: with two processes on two cores
  the twin's knee went from 449 to 479 commands/s against 548 measured). A
  database on another host is not measured and costs 0 here. With the in-memory store
  both stay 0: the load test pins the one server process apart from the generator, and
  there is no database.

"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.core import load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.calibration_inputs import cpu_utilisation, domain_workload, primary_view, window
from cqrs_lab.load.generator import per_task
from cqrs_lab.load.loop_pump import pump_growth, spread_growth, tick_steps
from cqrs_lab.load.loop_repeats import repeat_factors, repeats
from cqrs_lab.load.loop_speed_fit import speed_fit
from cqrs_lab.load.loop_stages import (
    idle_gaps,
    pump_costs,
    slow_down,
    stage_calls,
    tick_overhead,
    transport_samples,
    warm_samples,
    writer_cost,
)
from cqrs_lab.load.loop_twin import LoopCalibration, simulate_twin, simulated_figures
from cqrs_lab.load.loop_waits import (
    IDLE_POLL,
    NOT_WORK,
    Waits,
    generator_apart,
    other_cpu,
    shared_cores,
    stage_waits,
    transactions,
)
from cqrs_lab.load.measure import check_calibration, measure
from cqrs_lab.load.results import LoadResult, commands
from cqrs_lab.load.twin import _mix, run_keys, run_params

__all__ = ["calibrate_loop", "client_offsets", "sim_cpu"]


def calibrate_loop(
    runs: LoadResult | Sequence[LoadResult],
    warmup: float = 2.0,
    view: str | None = None,
    force: bool = False,
    seed: int = 1,
    max_samples: int = 1000,
) -> LoopCalibration:
    """The loop twin from the runs of one light level (repeats pooled): see the module
    docstring. A generator-bound level raises :class:`ConfigError` unless ``force``."""
    runs = [runs] if isinstance(runs, LoadResult) else list(runs)
    if not runs:
        raise ConfigError("calibrate_loop: give at least one load test result")
    first = runs[0]
    domain = load_domain(first.domain)
    workload = domain_workload(domain)
    view = view or primary_view(domain)
    check_calibration(runs, warmup, view, force)
    parts, names, n_cmd, n_req, span, busy, waited = [], [], 0, 0, 0.0, 0.0, []
    ticks: list[pd.DataFrame] = []
    opts = first.run.get("options") or {}
    on_postgres = str(opts.get("store", "")).startswith("postgres")
    other = {"generator": 0.0, "database": 0.0}  # CPU seconds of the rest of the machine
    for r in runs:
        if not len(r.stages):
            raise ConfigError(f"{r.path}: no server/stages.csv; calibrate from a run whose "
                              "server `cqrs-lab loadtest` started")  # fmt: skip
        lo, hi = window(r, warmup)
        st = idle_gaps(r.stages)
        at = st["at"].to_numpy(dtype=float) - r.t0
        parts.append(st[(at >= lo) & (at < hi)])
        if on_postgres:  # each pump tick's steps, events and wait (loop_pump)
            tick = tick_steps(r.stages)
            at = tick["at"].to_numpy(dtype=float) - r.t0
            ticks.append(tick[(at >= lo) & (at < hi)])
        raw = r.stages[r.stages["stage"].isin(NOT_WORK[1:])]
        at = raw["at"].to_numpy(dtype=float) - r.t0
        waited.append(raw[(at >= lo) & (at < hi)])
        req = r.requests[(r.requests["t"] >= lo) & (r.requests["t"] < hi)]
        cmd = commands(req)
        names.append(cmd["name"])
        n_cmd, n_req, span = n_cmd + len(cmd), n_req + len(req), span + hi - lo
        idle = float(r.run.get("server_idle_cpu") or 0.0)
        used = cpu_utilisation(r, lo, hi)
        if math.isnan(used):
            raise ConfigError(
                f"{r.path / 'cpu.csv'}: the server's CPU was not measured between {lo:g} and "
                f"{hi:g} s of the run (the file is missing, or holds under two samples there); "
                "the twin solves a request's CPU from it: run the load test again"
            )
        busy += max(used - idle, 0.0) * (hi - lo)
        if on_postgres:
            for name, seconds in other_cpu(r, lo, hi).items():
                other[name] += seconds
    st = pd.concat(parts, ignore_index=True)
    repeat = repeat_factors(st)
    st = st[~repeats(st)]  # each kind's own cost; the simulated loop makes its repeats
    command_s, query_s = (
        warm_samples(st, "command", max_samples),
        warm_samples(st, "query", max_samples),
    )
    processes = int(opts.get("server_workers") or 1)
    # (with several workers the sagas run in a worker of their own, untimed: they get the
    # views' mean cost, for a prediction with one process, where the server runs them)
    per_event, per_batch = pump_costs(st, domain.view_names)
    wait, pump_wait_per_event = Waits(), 0.0
    if on_postgres:  # the loop waits on the database
        wait = stage_waits(pd.concat(waited, ignore_index=True), st, max_samples)
        command_s = np.asarray(command_s) * wait.command_cpu
        per_event = {n: v * wait.projection_cpu for n, v in per_event.items()}
        per_batch = {n: v * wait.projection_cpu for n, v in per_batch.items()}
        timed_ticks = pd.concat(ticks, ignore_index=True)
        if len(timed_ticks):  # (else the mean wait per step, as stage_waits gave it)
            growth = pump_growth(timed_ticks)
            steps = st[st["stage"] == "projection"]
            per_event, per_batch = spread_growth(
                steps, per_event, per_batch, growth, domain.view_names
            )
            wait = replace(wait, pump_wait_s=growth.wait_s)
            pump_wait_per_event = growth.wait_per_event_s
    mix, _ = _mix(pd.concat(names, ignore_index=True), workload, first.path)
    limit = first.run.get("server_cpu_limit") or {}
    cold, cold_time = slow_down(st)
    overhead = tick_overhead(st, pd.concat(waited, ignore_index=True), wait.projection_cpu,
                             cold, cold_time)  # fmt: skip
    per_batch = {n: v + overhead for n, v in per_batch.items()}
    notes = {"tick_overhead_s": overhead, "commit_per_command_s": wait.commit_per_command_s}
    t_cold, t_time = cold, cold_time  # the transport's own slow-down, when measured
    # (not on PostgreSQL, where the loop also idles blocked on the database: with two
    # workers the reads' own fit once left no CPU for the rest of a request; not validated)
    if not on_postgres and len(stage_calls(st, "transport")[2]) >= 20:
        t_cold, t_time = slow_down(st, ("transport",))
    transport_s = transport_samples(st, t_cold, t_time, max_samples)
    speed = speed_fit(parts)
    cal = LoopCalibration(
        tuple(float(x) for x in command_s),
        tuple(float(x) for x in query_s),
        per_event, per_batch, request_s=0.0,
        reads_per_command=max(n_req - n_cmd, 0) / max(n_cmd, 1), mix=mix,
        keys=run_keys(first, workload), zipf_s=float(opts.get("zipf_s", 1.1)), cold=cold,
        cold_time=cold_time, batch_s=writer_cost(st, wait),
        anchor_requests_per_s=n_req / span, processes=processes, commit_s=wait.commit_s,
        commit_per_command_s=wait.commit_per_command_s,
        pump_wait_s=wait.pump_wait_s, pump_wait_per_event_s=pump_wait_per_event,
        poll=IDLE_POLL if processes > 1 else 0.0,
        cores=shared_cores(first.run),
        other_cpu_s=0.0 if generator_apart(first.run) else other["generator"] / max(n_cmd, 1),
        database_cpu_s=other["database"] / max(transactions(st), 1),
        transport_s=transport_s, transport_cold=t_cold, transport_cold_time=t_time,
        speed_sd=speed[0], speed_time=speed[1], repeats=repeat,
        cpus=float(limit.get("cores") or 1.0), period=float(limit.get("period_s") or 0.01),
        users=int(opts.get("users") or 0), commands_per_task=commands_per_task(opts),
        anchor_rate=n_cmd / span, domain=first.domain, params=run_params(first, workload),
        view=view, source=", ".join(str(r.path) for r in runs),
        notes={"busy_cpu": busy / span, "stage_parts": int(st["worker"].max()) + 1, **notes,
               **{f"{k}_cpu": v / span for k, v in other.items()}},
    )  # fmt: skip
    cal = replace(cal, request_s=_solve_request(cal, busy / span, cal.anchor_rate, seed))
    if cal.request_s == 0.0 and (cal.cold > 0.0 or (cal.transport_cold or 0.0) > 0.0):
        # the slow-down fitted over the idle gaps leaves the requests no CPU: the measured
        # CPU rules it out (on PostgreSQL the gaps also hold untimed waits on the database,
        # and the fit came out anywhere from 1.1 to 2.4 times over runs of one setting)
        rejected = {"cold_rejected": cal.cold, "transport_cold_rejected": cal.transport_cold}
        cal = replace(cal, cold=0.0, transport_cold=0.0, notes={**cal.notes, **rejected})
        cal = replace(cal, request_s=_solve_request(cal, busy / span, cal.anchor_rate, seed))
    return client_offsets(cal, [measure([r], warmup, view) for r in runs], cal.anchor_rate, seed)


#: simulated seconds of each run that solves the request CPU
SOLVE_SECONDS = 60.0


def commands_per_task(opts: dict[str, Any]) -> float:
    """Commands per user task of a run's user classes (its ``options``), which size the
    open model's pool of users; 0 when not known (a locustfile of its own, no classes)."""
    classes = opts.get("classes")
    if opts.get("locustfile") or not isinstance(classes, list) or not classes:
        return 0.0
    per = per_task(tuple(str(c) for c in classes))[0]
    return float(per) if per > 0 else 0.0  # NaN (no known class) is not > 0


def sim_cpu(cal: LoopCalibration, rate: float, seed: int = 1, duration: float = 20.0) -> float:
    """The simulated loop's CPU (cores) at ``rate`` commands/s."""
    return float(simulate_twin(cal, rate, duration, seed).attrs["loop_cpu_s"]) / duration


def _solve_request(cal: LoopCalibration, busy: float, rate: float, seed: int) -> float:
    """The request CPU (s) with which the simulated loop at ``rate`` is as busy as the server
    measured (``busy`` cores). The loop's CPU is close to linear in it: two short runs give
    the slope (about the requests per second), then one run of :data:`SOLVE_SECONDS` at the
    secant's answer and a last step along that slope. The long run is for the machine's
    wandering speed: solved on 20 s runs alone, the request CPU of one calibration came 13%
    apart from one seed to the next, on 60 s runs 4%."""
    if busy <= 0:
        raise ConfigError("calibrate_loop: the server's CPU was not measured (cpu.csv)")

    def off(request_s: float, seconds: float) -> float:
        return sim_cpu(replace(cal, request_s=request_s), rate, seed, seconds) - busy

    x0, x1 = 0.0, busy / max(rate, 1e-9) / 2.0
    y0, y1 = off(x0, 20.0), off(x1, 20.0)
    if y1 == y0:
        return float(x1)
    slope = (y1 - y0) / (x1 - x0)
    x2 = max(0.0, x1 - y1 / slope)
    return float(max(0.0, x2 - off(x2, SOLVE_SECONDS) / slope))


def client_offsets(
    cal: LoopCalibration, runs: Sequence[dict[str, float]], rate: float, seed: int
) -> LoopCalibration:
    """The client's side (not simulated): measured minus simulated percentiles at the
    calibration level, per percentile, with each run's percentile the median over the
    level's runs (``runs``: :func:`~cqrs_lab.load.measure.measure` of each). The offset is
    the client's own steady share of a latency; pooled, one run the machine disturbed
    (one of three at p99 9.3 ms where the others had 2.2 and 2.5) had carried its stall
    into every level's prediction (p99 at 25% of the knee +95% against the measured)."""
    raw = simulated_figures(cal, rate, 60.0, seed)

    def offset(key: str) -> float:
        return float(np.median([m[key] for m in runs])) - raw[key]

    lat = {f"p{p}": offset(f"command_latency_p{p}_s") for p in (50, 95, 99)}
    lag = {f"p{p}": offset(f"lag_p{p}_s") for p in (50, 95)}
    return replace(cal, latency_offset_s=lat, lag_offset_s=lag)
