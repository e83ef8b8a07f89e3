"""What a load test's stage timings say about the database waits and the processes of a
served deployment, for the loop twin's calibration (:mod:`cqrs_lab.load.loop_calibration`).

On PostgreSQL the served loop calls the database synchronously: a writer batch's commit
round trips and a pump step's read of the log hold the loop without using its CPU. The
server times them (``serve --stage-timings``: the ``commit`` and ``pump-wait`` stages, a
batch's or a tick's wall time less the loop thread's CPU); :func:`stage_waits` turns them into
the twin's blocked times (a batch's commit wait growing with its commands:
:func:`commit_growth`) and the CPU shares of the ``command`` and ``projection`` stages.
With ``--workers N`` every worker's samples are merged into one file, one worker's after
the other's (:func:`workers` tells them apart), and the workers share the machine's cores
(:func:`shared_cores`) with the rest of the machine: the load generator (unless it was
pinned apart: :func:`generator_apart`) and a local database, whose CPU :func:`other_cpu`
reads and the twin spends per transaction (:func:`transactions`).

>>> st = pd.DataFrame({"stage": ["command"] * 4, "at": [1.0, 1.01, 1.005, 1.015]})
>>> list(workers(st))
[0, 0, 1, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.load.calibration_inputs import quantiles
from cqrs_lab.load.results import LoadResult
from cqrs_lab.load.summary import cpu_rate

__all__ = [
    "IDLE_POLL",
    "NOT_WORK",
    "Waits",
    "commit_growth",
    "generator_apart",
    "other_cpu",
    "shared_cores",
    "stage_waits",
    "transactions",
    "workers",
]

#: ``cqrs-lab serve``'s idle poll (its ``idle_poll`` default): how soon a worker's pump
#: looks for the other workers' appends when it has nothing to do
IDLE_POLL = 0.05
#: stages that are not work of their own: lags, and the waits inside writer batches and pumps
NOT_WORK = ("lag", "commit", "pump-wait")


def workers(stages: pd.DataFrame) -> pd.Series:
    """Which worker wrote each sample: the merged file holds each worker's samples in
    turn, each part in time order, so a part begins where the time goes back."""
    at = stages["at"].to_numpy(dtype=float)
    back = np.concatenate(([0], (np.diff(at) < 0).astype(int)))
    return pd.Series(np.cumsum(back), index=stages.index)


@dataclass(frozen=True)
class Waits:
    """What of the timed stages was waiting for the database, not the loop's CPU."""

    #: each writer batch's wait for its commit (quantiles; none: ``()``)
    commit_s: tuple[float, ...] = ()
    #: the mean wait per projection pump step
    pump_wait_s: float = 0.0
    #: the share of the ``command`` stage's time that was CPU
    command_cpu: float = 1.0
    #: the share of the ``projection`` stage's time that was CPU
    projection_cpu: float = 1.0
    #: how much longer a batch waits for its commit per command beyond its first
    commit_per_command_s: float = 0.0


def commit_growth(commit: pd.DataFrame, min_count: int = 20) -> float:
    """Seconds of commit wait per command a batch holds beyond its first: the slope of the
    mean wait over the batch sizes seen ``min_count`` times or more, weighted by how often
    (at least two sizes; else 0), never below 0. A light level holds mostly batches of one
    and a few of two or three, so the slope is the rough part of the calibration.

    >>> rows = pd.DataFrame({"seconds": [1e-3] * 40 + [1.3e-3] * 20, "events": [1] * 40 + [2] * 20})
    >>> round(commit_growth(rows) * 1e3, 6)
    0.3
    """
    if "events" not in commit.columns:
        return 0.0
    g = commit.groupby("events")["seconds"].agg(["count", "mean"])
    g = g[g["count"] >= min_count]
    if len(g) < 2:
        return 0.0
    n = g.index.to_numpy(dtype=float)
    slope = np.polyfit(n, g["mean"].to_numpy(dtype=float), 1, w=np.sqrt(g["count"].to_numpy()))[0]
    return max(0.0, float(slope))


def stage_waits(waits: pd.DataFrame, st: pd.DataFrame, max_samples: int) -> Waits:
    """From the ``commit`` and ``pump-wait`` samples (a batch's or a tick's wall time less
    the loop thread's CPU): the commit waits, the wait per pump step, and the CPU shares.
    The waits happen inside the timed calls (a command's first append opens the
    transaction; a pump step reads the log), so a writer batch's CPU (its time less its
    wait) is shared over its commands' time, and the pump ticks' waits come off their
    steps' time."""
    rows = waits[waits["stage"] == "commit"]
    commit = rows["seconds"].to_numpy(dtype=float)
    if not len(commit):
        return Waits()
    growth = commit_growth(rows)
    sizes = rows["events"].to_numpy(dtype=float) if "events" in rows.columns else 1.0
    alone = np.maximum(commit - growth * (sizes - 1.0), 0.0)  # as for a batch of one
    commit_s = quantiles(alone, min(max_samples, len(alone)))
    steps = st[st["stage"] == "projection"]["seconds"].to_numpy(dtype=float)
    pump = float(waits[waits["stage"] == "pump-wait"]["seconds"].sum())
    command_cpu = 1.0
    w, c = st[st["stage"] == "writer"], st[st["stage"] == "command"]["seconds"]
    if len(w) >= 10 and len(c):
        in_commands = float(w["events"].mean()) * float(c.mean())
        cpu = float(w["seconds"].mean()) - float(commit.mean())
        command_cpu = min(1.0, max(0.0, cpu / in_commands)) if in_commands > 0 else 1.0
    projection_cpu = max(0.0, 1.0 - pump / float(steps.sum())) if steps.sum() > 0 else 1.0
    per_step = pump / len(steps) if len(steps) else 0.0
    return Waits(commit_s, per_step, command_cpu, projection_cpu, growth)


def shared_cores(run: dict[str, Any]) -> int | None:
    """The cores a prediction's processes share: the machine's (None: not recorded, as
    in runs from before it was). Not the cores a run pinned the server to: the load test
    pins ``--workers N`` to N cores when the machine has one more for the generator, so
    the pinning follows the process count, and the machine is what bounds them all."""
    machine = run.get("machine_cpus")
    return int(machine) if machine else None


def generator_apart(run: dict[str, Any]) -> bool:
    """Whether the load test pinned its generator to cores none of the server's processes
    ran on (``run.json`` ``cpus``): then the generator's CPU takes nothing from the server's
    cores, and the twin does not spend it there.

    >>> generator_apart({"cpus": {"server": [0], "generator": [1]}})
    True
    >>> generator_apart({"cpus": None}), generator_apart({})
    (False, False)
    """
    cpus = run.get("cpus") or {}
    server, generator = set(cpus.get("server") or ()), set(cpus.get("generator") or ())
    return bool(server) and bool(generator) and not server & generator


def transactions(work: pd.DataFrame) -> int:
    """The database transactions among timed work: each writer batch (``writer``) and each
    projection pump step (``projection``), as the twin spends a database's CPU on them."""
    return int(work["stage"].isin(("writer", "projection")).sum())


def other_cpu(result: LoadResult, lo: float, hi: float) -> dict[str, float]:
    """CPU seconds the rest of the machine spent between ``lo`` and ``hi`` seconds after
    the first request (``cpu.csv``, so the generator's start-up is left out): the load
    generator's (``generator``) and the local database server's (``database``) less what it
    spent while the server idled (``database_idle_cpu``: the server's polls, which stop
    being idle ones under load). The database counts 0 when the run did not measure it
    (``database_cpu_s`` null or absent in ``run.json``: a database on another host, whose
    CPU the twin assumes costs this machine nothing, or an older run). A column with under
    two samples in the window counts 0."""
    file = result.path / "cpu.csv"
    header = file.read_text().split("\n", 1)[0].split(",") if file.exists() else []
    out = {}
    for name in ("generator", "database"):
        column = f"{name}_cpu_s"
        measured = column in header and (name == "generator" or result.run.get(column) is not None)
        rate = cpu_rate(result.path, result.t0, lo, hi, column) if measured else math.nan
        rate -= float(result.run.get(f"{name}_idle_cpu") or 0.0)
        out[name] = 0.0 if math.isnan(rate) else max(rate, 0.0) * (hi - lo)
    return out
