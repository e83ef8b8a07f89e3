"""How a projection pump's cost grows with the events a step carries, on a database that
the served loop waits for (:mod:`cqrs_lab.load.loop_calibration`, PostgreSQL).

On PostgreSQL a pump step reads the log's new events and writes what the views and the
sagas make of them in the tick's transaction, all in round trips the loop waits for, so
both the loop's CPU and its wait per step grow with the events a step carries. Measured
on this 2-core machine, per step and per event, about 0.03 ms of CPU and 0.03 to 0.05 ms
of wait at every load from a tenth of the knee to the knee (a step of 40 events holds the
loop about five times as long as a step of one). Fitted per view over the light level's
warm steps only, as the memory store's costs are, the slope was a fifth of that: the
first step of a tick, which carries the tick's read of the log, is rarely warm, and the
sagas' costs per event (an append per reaction) ran into the steps' waits.

So on PostgreSQL the twin takes the growth from the ticks, where the server measured both
(``pump`` is a tick's wall time, ``pump-wait`` what of it was not the loop thread's CPU):
:func:`tick_steps` gives each tick's steps, events, wait and CPU per step, and
:func:`pump_growth` the least-squares lines of a step's wait and CPU on its events.
:func:`spread_growth` shares the CPU slope over the views in proportion to how their
steps' times grow (a saga's more than a view's) and keeps each view's CPU at the light
level's mean step as it was; the wait's slope becomes ``[server] pump_wait_per_event``.

>>> def tick(at, n):  # two steps of n events each: 1 ms CPU + 1 ms wait per event
...     return pd.DataFrame({"stage": ["projection", "projection", "pump", "pump-wait"],
...         "name": ["a", "b", "tick", "tick"], "at": [at, at + 0.1, at + 0.2, at + 0.2],
...         "seconds": [2e-3 * n, 2e-3 * n, 4e-3 * n + 1e-3, 2e-3 * n], "events": [n, n, 1, 1]})
>>> st = pd.concat([tick(float(k), 1 + k % 3) for k in range(60)], ignore_index=True)
>>> t = tick_steps(st)
>>> len(t), list(t["steps"][:3]), list(t["events"][:3])
(60, [2, 2, 2], [1.0, 2.0, 3.0])
>>> g = pump_growth(t)
>>> [round(x * 1e3, 3) for x in (g.wait_s, g.wait_per_event_s, g.cpu_per_event_s)]
[0.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cqrs_lab.load.loop_waits import commit_growth, workers

__all__ = ["PumpGrowth", "pump_growth", "spread_growth", "tick_steps"]

#: ticks of one number of events per step needed for it to count in a fit
MIN_TICKS = 20


@dataclass(frozen=True)
class PumpGrowth:
    """A pump step's wait and CPU (seconds) as lines of the events it carries."""

    #: the wait of a step at no events (the line's intercept, >= 0)
    wait_s: float = 0.0
    #: how much longer a step waits per event it carries (>= 0)
    wait_per_event_s: float = 0.0
    #: how much more CPU a step takes per event it carries (>= 0)
    cpu_per_event_s: float = 0.0


def tick_steps(stages: pd.DataFrame) -> pd.DataFrame:
    """One row per pump tick of a run's raw stage samples (each worker's apart): ``at``,
    ``steps`` (its ``projection`` samples), ``events`` (their events per step), ``wait_s``
    and ``cpu_s`` (its ``pump-wait`` and the rest of its ``pump`` time, per step). A tick's
    steps are the ``projection`` samples since the one before it."""
    cols = ["at", "steps", "events", "wait_s", "cpu_s"]
    out = []
    st = stages[stages["stage"].isin(("projection", "pump", "pump-wait"))]
    if not len(st):
        return pd.DataFrame(columns=cols)
    for _, part in st.groupby(workers(st), sort=False):
        pumps, waits = part[part["stage"] == "pump"], part[part["stage"] == "pump-wait"]
        steps = part[part["stage"] == "projection"]
        if not len(waits) or len(pumps) != len(waits):
            continue
        at = waits["at"].to_numpy(dtype=float)
        tick = np.searchsorted(at, steps["at"].to_numpy(dtype=float), side="left")
        inside = tick < len(at)
        n = np.bincount(tick[inside], minlength=len(at))
        ev = np.bincount(
            tick[inside], weights=steps["events"].to_numpy(dtype=float)[inside], minlength=len(at)
        )
        wait = waits["seconds"].to_numpy(dtype=float)
        cpu = np.maximum(pumps["seconds"].to_numpy(dtype=float) - wait, 0.0)
        ok = n > 0
        k = n[ok].astype(float)
        out.append(pd.DataFrame({"at": at[ok], "steps": n[ok], "events": ev[ok] / k,
                                 "wait_s": wait[ok] / k, "cpu_s": cpu[ok] / k}))  # fmt: skip
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def pump_growth(ticks: pd.DataFrame) -> PumpGrowth:
    """Lines of a step's wait and CPU on its events over ``ticks`` (rows of
    :func:`tick_steps`): the fit of a batch's commit growth
    (:func:`~cqrs_lab.load.loop_waits.commit_growth`: least squares over the mean of each
    number of events per step seen :data:`MIN_TICKS` times or more, weighted by how often;
    a light level holds mostly steps of one event and a few of two or three, and a handful
    of larger ones would otherwise set the slope; never below 0), the wait's line through
    those ticks' mean. Fewer than two such numbers: the mean wait and no growth."""
    if not len(ticks):
        return PumpGrowth()
    size = pd.Series(np.rint(ticks["events"].to_numpy(dtype=float)), index=ticks.index)
    rows = pd.DataFrame({"events": size, "seconds": ticks["wait_s"]})
    w = commit_growth(rows, MIN_TICKS)
    c = commit_growth(rows.assign(seconds=ticks["cpu_s"]), MIN_TICKS)
    counted = size.map(size.value_counts()) >= MIN_TICKS
    if size[counted].nunique() < 2:  # no line: every tick's mean
        counted[:] = True
    base = float(ticks.loc[counted, "wait_s"].mean()) - w * float(size[counted].mean())
    return PumpGrowth(max(base, 0.0), w, c)


def spread_growth(
    steps: pd.DataFrame,
    per_event: Mapping[str, float],
    per_batch: Mapping[str, float],
    growth: PumpGrowth,
    views: Sequence[str],
) -> tuple[dict[str, float], dict[str, float]]:
    """Each view's CPU per event and per step with the ticks' CPU growth: the growth
    (``cpu_per_event_s`` per step, so that times the views pumped per tick) shared over the
    views pumped as their ``projection`` samples' times grow with their events (least
    squares, each slope at least 0; equal shares when none grows), and each view's cost per
    step moved so that its step of the light level's mean events costs what it did (never
    below 0). A view with under :data:`MIN_TICKS` steps (the sagas, when a worker of their
    own ran them) keeps its costs."""
    slopes = {}
    for name in views:
        g = steps[steps["name"] == name]
        if len(g) < MIN_TICKS:
            continue
        x = g["events"].to_numpy(dtype=float)
        fit = np.polyfit(x, g["seconds"].to_numpy(dtype=float), 1)[0] if np.ptp(x) > 0 else 0.0
        slopes[name] = max(float(fit), 0.0)
    total = sum(slopes.values())
    growth_per_tick = growth.cpu_per_event_s * len(slopes)
    new_event, new_batch = dict(per_event), dict(per_batch)
    for name, slope in slopes.items():
        share = slope / total if total > 0 else 1.0 / len(slopes)
        mean = float(steps.loc[steps["name"] == name, "events"].mean())
        new_event[name] = growth_per_tick * share
        moved = (per_event.get(name, 0.0) - new_event[name]) * mean
        new_batch[name] = max(per_batch.get(name, 0.0) + moved, 0.0)
    return new_event, new_batch
