"""The mechanistic twin: the served process as one event loop, whose queueing the
simulation produces (:mod:`cqrs_lab.sim.event_loop`), calibrated stage by stage from one
light load test (:mod:`cqrs_lab.load.loop_calibration`).

:class:`LoopCalibration` holds what was measured and writes the scenario (a ``[server]``
table); :func:`predict_loop` simulates it at a rate. At a higher rate the loop sleeps less
(fewer wake-ups), batches grow (the writer takes what waited), requests queue behind each
other and, under a CPU limit, behind the quota, all by simulation. What is *not* simulated
is the client's side (Locust, gevent, the loopback): each predicted latency percentile is
the simulated one plus the calibration level's measured-minus-simulated difference
(``latency_offset_s``), the same at every rate: no correction is modelled. (It was once
scaled down as the generator's own work would warm up when it sends faster; on seven runs
that flattened a rising p50 into a falling one between 24% and 48% of the knee, where the
simulated p50 was flat, and without it 102 of 105 trends agreed instead of 100, 58 of 140
figures were within band instead of 59.) The lag, all inside the server, gets its
difference too (``lag_offset_s``). Of the client, the twin keeps one thing: its pool of
users (``[server] clients``, :mod:`cqrs_lab.sim.clients`), sized as ``cqrs-lab loadtest``
sizes it at each rate (``users``, or the open model's pool from ``commands_per_task``).
Below the knee it never binds; past it the users all wait for answers, sends fall behind
and the server holds at most their requests, as a measured ramp does (without it the
simulated server would take every arrival, shed at its queue's limit and finish less).

A deployment of several server processes (``serve --workers N`` on PostgreSQL) is
``processes`` event loops, each with its writer and its replicas of the views, whose
writer batches wait ``commit_s`` for the database's commit and whose pump steps wait
``pump_wait_s`` for its read, the loop blocked (:mod:`cqrs_lab.sim.event_loops`);
:func:`cqrs_lab.load.loop_processes.predict_processes` predicts it at other process counts.
The rest of the machine takes its share of the same cores: a local database
``database_cpu_s`` seconds per transaction it serves (each writer batch and each pump step:
``[server] database_cpu``), and the load generator, when it shares the server's cores,
``other_cpu_s`` seconds per command (``[server] other_cpu``), both measured at the
calibration level and spent on the machine's ``cores`` beside the loops; at 0, as when
they were not measured, the scenario is the one without them.

>>> cal = LoopCalibration(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
...     per_batch={"balances": 1e-5}, request_s=2.5e-4, reads_per_command=1.0,
...     mix={"deposit": 1.0}, keys=100)
>>> s = cal.scenario(rate=200.0, duration=5.0)
>>> s.server.request.mean, s.reads.rate, s.commands.handlers
(0.00025, 200.0, 1)
>>> 1500 < cal.capacity_bound < 2000
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.core import load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.calibration_inputs import primary_view
from cqrs_lab.load.loop_scenario import client_cold, describe_calibration, twin_toml
from cqrs_lab.load.options import open_pool
from cqrs_lab.load.results import DEFAULT_DOMAIN, percentiles
from cqrs_lab.sim import Scenario, load_scenario
from cqrs_lab.sim.loop_speed import CONSTANT_TIME
from cqrs_lab.sim.scenario_load import parse_scenario

__all__ = [
    "LoopCalibration",
    "client_cold",
    "predict_loop",
    "predicted_capacity",
    "predicted_knee",
    "simulate_twin",
    "simulated_figures",
]


@dataclass(frozen=True)
class LoopCalibration:
    """The loop twin's parameters, every time in seconds (module docstring)."""

    command_s: tuple[float, ...]
    query_s: tuple[float, ...]
    per_event: dict[str, float]
    per_batch: dict[str, float]
    request_s: float
    reads_per_command: float
    mix: dict[str, float]
    keys: int = 1000
    zipf_s: float = 1.1
    cold: float = 0.0
    cold_time: float = 0.001
    #: the writer's CPU per batch beyond its commands (a transaction and its answers)
    batch_s: float = 0.0
    #: the generator's requests/s at the calibration level (for its own cold start)
    anchor_requests_per_s: float = 0.0
    cpus: float = 1.0
    period: float = 0.01
    queue_limit: int = 1024
    batch_limit: int = 256
    #: server processes (``--workers``), each an event loop with replicas of the views
    processes: int = 1
    #: seconds a writer batch waits for the database's commit round trips (samples)
    commit_s: tuple[float, ...] = ()
    #: seconds more a writer batch waits for its commit per command beyond its first
    commit_per_command_s: float = 0.0
    #: seconds a projection pump step waits for the database's read
    pump_wait_s: float = 0.0
    #: seconds more a pump step waits per event it carries (:mod:`cqrs_lab.load.loop_pump`)
    pump_wait_per_event_s: float = 0.0
    #: a process's idle poll for the other processes' appends (seconds)
    poll: float = 0.0
    #: the machine's cores the processes share (None: one each; binds only when fewer,
    #: or when ``other_cpu_s`` is spent on them)
    cores: int | None = None
    #: CPU seconds per command the load generator spends on those cores at the
    #: calibration level (0: pinned apart from the server, or not measured)
    other_cpu_s: float = 0.0
    #: CPU seconds a local database spends on those cores per transaction it serves: each
    #: writer batch and each projection pump step (0: none, or not measured)
    database_cpu_s: float = 0.0
    #: warm CPU seconds of the transport's read of a request, a turn of the loop of its
    #: own before the request's task (samples; none: ``()``, no turn of its own)
    transport_s: tuple[float, ...] = ()
    #: the transport's reads' own slow-down after idling (None: ``cold``, ``cold_time``)
    transport_cold: float | None = None
    transport_cold_time: float = 0.001
    #: the machine's wandering speed: the sd of the log of the cost factor (0: constant)
    #: and its time constant (:mod:`cqrs_lab.sim.loop_speed`)
    speed_sd: float = 0.0
    speed_time: float = CONSTANT_TIME
    #: the cost factor of a piece of work right after one of its kind, per kind
    #: (``transport``, ``request``, ``command``; absent: 1; :mod:`cqrs_lab.load.loop_repeats`)
    repeats: dict[str, float] = field(default_factory=dict)
    #: the load generator's users (``[server] clients``): its fixed pool (``--users``), or
    #: 0 and its open model's pool at each rate from the commands per user task (0: none)
    users: int = 0
    commands_per_task: float = 0.0
    latency_offset_s: dict[str, float] = field(default_factory=dict)
    lag_offset_s: dict[str, float] = field(default_factory=dict)
    anchor_rate: float = 0.0
    domain: str = DEFAULT_DOMAIN
    params: dict[str, Any] = field(default_factory=dict)
    view: str = ""
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.command_s or min(self.command_s) < 0:
            raise ConfigError("command_s: the engine's seconds per command (>= 0)")
        if not self.view:
            object.__setattr__(self, "view", primary_view(load_domain(self.domain)))
        if self.view not in self.per_event:
            raise ConfigError(f"view={self.view!r}: no cost per event for it in per_event")
        if not 1 <= self.processes <= 1024:
            raise ConfigError(f"processes={self.processes!r}: server processes, 1 to 1024")
        if self.cores is not None and self.cores < 1:
            raise ConfigError(f"cores={self.cores!r}: the machine's cores, >= 1 (or None)")
        if not (math.isfinite(self.other_cpu_s) and self.other_cpu_s >= 0):
            raise ConfigError(
                f"other_cpu_s={self.other_cpu_s!r}: CPU seconds per command of the rest of "
                "the machine, >= 0 (0: not measured)"
            )
        if not (math.isfinite(self.database_cpu_s) and self.database_cpu_s >= 0):
            raise ConfigError(
                f"database_cpu_s={self.database_cpu_s!r}: CPU seconds of a local database per "
                "transaction (writer batch or pump step), >= 0 (0: none or not measured)"
            )

    @property
    def capacity_bound(self) -> float:
        """Commands/s at which the loops' warm CPU (batches of one) is used up: a bound
        for a first guess, not the prediction (:func:`predicted_knee`). Each of the
        ``processes`` loops carries its share of the requests and every event; on shared
        cores the loops' CPU and the rest of the machine's (``other_cpu_s``, and the
        database's per transaction: a batch and a pump step per view per process for each
        command) fill them."""
        per_req = self.request_s + (float(np.mean(self.transport_s)) if self.transport_s else 0.0)
        per_cmd = float(np.mean(self.command_s)) + per_req
        per_cmd += self.reads_per_command * (per_req + float(np.mean(self.query_s)))
        per_loop = per_cmd / self.processes + sum(self.per_event.values())
        bound = self.cpus / per_loop
        if self.cores is not None and self.shares_cores:
            steps = 1 + self.processes * len(self.per_event)  # transactions per command
            other = self.other_cpu_s + self.database_cpu_s * steps
            bound = min(bound, self.cores / (self.processes * per_loop + other))
        return bound

    @property
    def shares_cores(self) -> bool:
        """Whether the scenario has ``[server] cores``: fewer than the loops, or the rest of
        the machine's CPU to share them with."""
        others = self.other_cpu_s > 0 or self.database_cpu_s > 0
        return self.cores is not None and (self.cores < self.processes or others)

    def clients_at(self, rate: float) -> int:
        """The load generator's users at ``rate`` commands/s, as ``cqrs-lab loadtest`` sizes
        its pool (0: not known, arrivals without a bound)."""
        if self.users > 0:
            return self.users
        if self.commands_per_task > 0:
            return open_pool(rate / self.commands_per_task)
        return 0

    def toml(self, rate: float, duration: float, seed: int = 1) -> str:
        """A scenario file of the twin at ``rate`` commands/s for ``duration`` seconds."""
        return twin_toml(self, rate, duration, seed)

    def scenario(self, rate: float, duration: float, seed: int = 1) -> Scenario:
        return parse_scenario(self.toml(rate, duration, seed), source="<loop twin>")

    def write(self, path: str | Path, rate: float, duration: float) -> Path:
        """Write the scenario file (it loads back with :func:`cqrs_lab.sim.load_scenario`)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.toml(rate, duration), encoding="utf-8")
        load_scenario(p)
        return p

    def describe(self) -> str:
        """One paragraph: what was calibrated, in ms and commands/s."""
        return describe_calibration(self)


def simulate_twin(cal: LoopCalibration, rate: float, duration: float, seed: int) -> pd.DataFrame:
    """The simulated command latencies and lags at ``rate`` (attrs: the loop's CPU, the
    finished commands/s and the lag samples), each latency split where the served app's
    timing of it starts (``to_app_s`` and ``app_s``: :mod:`cqrs_lab.load.answer_delay`)."""
    from cqrs_lab.sim.event_loops import LoopCommandSide
    from cqrs_lab.sim.simulation import Simulation

    sim = Simulation(cal.scenario(rate, duration, seed))
    starts: dict[int, float] = {}
    if isinstance(sim.commands, LoopCommandSide):
        sim.commands.app_starts = starts
    res = sim.run()
    c = res.commands
    done = c[c["outcome"].isin(["accepted", "refused", "conflict"])]
    lat = (done["end_s"] - done["arrival_s"]).to_numpy(dtype=float)
    app0 = done["command"].map(starts).to_numpy(dtype=float)  # NaN: not on a loop
    apps = res.applications
    view = apps["projection"].str.split("@").str[0]  # every process's replica of the view
    mine = apps[(view == cal.view) & ~apps["duplicate"] & ~apps["replay"]]
    out = pd.DataFrame({
        "latency_s": lat,
        "to_app_s": app0 - done["arrival_s"].to_numpy(dtype=float),
        "app_s": done["end_s"].to_numpy(dtype=float) - app0,
    })  # fmt: skip
    out.attrs["lag_s"] = mine["lag_s"].to_numpy(dtype=float)
    out.attrs["loop_cpu_s"] = sum(lp.cpu_s for lp in sim.loops) if sim.loops else math.nan
    out.attrs["loop_cpu_each_s"] = [lp.cpu_s for lp in sim.loops]
    out.attrs["loop_blocked_each_s"] = [lp.blocked_s for lp in sim.loops]
    other = getattr(sim.commands, "other", None)  # the rest of the machine's CPU, if any
    out.attrs["other_cpu_s"] = other.cpu_s if other is not None else 0.0
    # due, sent or not: past the knee the load generator's users hold the sends back
    offered = int(getattr(sim.commands, "offered", len(c)))
    out.attrs["finished_per_s"] = len(done) / duration
    out.attrs["arrived_per_s"] = offered / duration
    out.attrs["accepted"] = len(done) / max(offered, 1)
    return out


def simulated_figures(
    cal: LoopCalibration, rate: float, duration: float, seed: int
) -> dict[str, float]:
    """The simulated percentiles (seconds), the loop's CPU (cores), the finished
    commands/s and the accepted share at ``rate``, before any client-side offset."""
    sim = simulate_twin(cal, rate, duration, seed)
    lat = percentiles(sim["latency_s"].to_numpy(), "command_latency_", "_s")
    split = {}
    for part in ("to_app", "app"):
        values = sim[f"{part}_s"].to_numpy(dtype=float)
        known = np.isfinite(values).any()
        for p in (50, 95):
            split[f"{part}_p{p}_s"] = float(np.nanpercentile(values, p)) if known else math.nan
    lag = percentiles(sim.attrs["lag_s"], "lag_", "_s")
    a = sim.attrs
    return {**lat, **lag, **split, "server_cpu": a["loop_cpu_s"] / duration,
            "finished_per_s": a["finished_per_s"], "arrived_per_s": a["arrived_per_s"],
            "accepted": a["accepted"]}  # fmt: skip


def predict_loop(
    cal: LoopCalibration, rate: float, duration: float = 60.0, seed: int = 1
) -> dict[str, float]:
    """The twin's figures at ``rate`` commands/s (as :func:`~cqrs_lab.load.prediction.
    predict` gives them): simulated, plus the calibration level's client offsets."""
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate={rate!r}: commands per second > 0")
    raw = simulated_figures(cal, rate, duration, seed)
    out = {"offered_commands_per_s": rate, "throughput_per_s": rate * raw["accepted"],
           "server_cpu": min(1.0, raw["server_cpu"])}  # fmt: skip
    for p in (50, 95, 99):
        key = f"command_latency_p{p}_s"
        out[key] = max(raw[key] + cal.latency_offset_s.get(f"p{p}", 0.0), 0.0)
    for p in (50, 95):
        key = f"lag_p{p}_s"
        out[key] = max(raw[key] + cal.lag_offset_s.get(f"p{p}", 0.0), 0.0)
        for part in ("to_app", "app"):  # the server's parts alone: no client offset
            out[f"{part}_p{p}_s"] = raw[f"{part}_p{p}_s"]
    return out


def predicted_capacity(cal: LoopCalibration, seed: int = 1, duration: float = 20.0) -> float:
    """The twin's capacity, as the knee's is measured: the most commands/s its simulated
    server finishes, over offered rates from :func:`predicted_knee` to 1.5 times it (past
    the knee the load generator's users hold the sends back, ``[server] clients``, and the
    server finishes about as much; without them it would pay for what it sheds)."""
    knee = predicted_knee(cal, seed, duration)
    rates = np.linspace(knee, 1.5 * knee, 4)
    return max(
        float(simulated_figures(cal, float(r), duration, seed)["finished_per_s"]) for r in rates
    )


def predicted_knee(
    cal: LoopCalibration, seed: int = 1, duration: float = 20.0, keep_up: bool = False
) -> float:
    """The commands/s at which the simulated server stops following the offered load
    (finishes under 95% of what arrived: a short run's Poisson arrivals may fall short of
    the rate), by bisection between the calibration rate and the loop's warm bound times
    two. ``keep_up``: the views must follow too (lag p95 under a tenth of the run: a
    replica pumping a tenth slower than the log grows ends the run about that far behind),
    as a loop busy with requests may starve its pumps and still answer the commands."""

    def follows(rate: float) -> bool:
        f = simulated_figures(cal, rate, duration, seed)
        if keep_up and not f["lag_p95_s"] <= 0.1 * duration:
            return False
        return bool(f["finished_per_s"] >= 0.95 * f["arrived_per_s"])

    lo, hi = max(cal.anchor_rate, 1.0), 2.0 * cal.capacity_bound
    if follows(hi):
        return hi
    for _ in range(7):  # to within 1% of twice the bound
        mid = (lo + hi) / 2
        if follows(mid):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
