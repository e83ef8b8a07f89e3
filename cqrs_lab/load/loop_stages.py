"""What a load test's stage timings say about the served loop's work, for the loop twin's
calibration (:mod:`cqrs_lab.load.loop_calibration`): each timed piece of work with the idle
gap before it (:func:`idle_gaps`), the warm calls among them, the engine's and the
projections' costs, the slow-down after idling (:func:`cold_fit`), the transport's warm
read of a request and the writer's cost per batch.

>>> st = pd.DataFrame({"stage": ["command", "command", "lag"], "name": ["a", "a", "v"],
...                    "at": [1.000, 1.0101, 1.02], "seconds": [0.0001, 0.0001, 0.0]})
>>> [round(g * 1e3, 2) for g in idle_gaps(st)["gap"].dropna()]
[10.0]
>>> two = pd.DataFrame({"stage": ["command"] * 4, "name": ["a"] * 4, "seconds": [1e-4] * 4,
...                     "at": [1.0, 1.01, 1.0051, 1.0152]})  # two workers' parts, merged
>>> [round(g * 1e3, 2) for g in idle_gaps(two)["gap"].dropna()], list(idle_gaps(two)["worker"])
([9.9, 10.0], [0, 1, 0, 1])
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.calibration_inputs import quantiles
from cqrs_lab.load.loop_waits import NOT_WORK, Waits, workers

__all__ = [
    "GAP_BINS",
    "WARM_GAP",
    "cold_fit",
    "idle_gaps",
    "pump_costs",
    "slow_down",
    "stage_calls",
    "tick_overhead",
    "transport_samples",
    "warm_samples",
    "writer_cost",
]

#: an engine call this soon (seconds) after the previous timed work ended is warm
WARM_GAP = 1e-4
#: idle-gap bins (seconds) for the slow-down fit
GAP_BINS = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1)


def idle_gaps(stages: pd.DataFrame) -> pd.DataFrame:
    """Timed work (not lags nor waits) with ``worker``, ``start`` and ``gap``: seconds since
    that worker's previous timed work ended (NaN for its first). A request's own
    ``transport`` read, just before it, does not count as previous work for the others
    (the slow-down after idling is fitted on the gap before the request arrived); for a
    ``transport`` sample every timed work does."""
    st = stages.assign(worker=workers(stages))
    st = st[~st["stage"].isin(NOT_WORK)].sort_values(["worker", "at"], kind="stable")
    st = st.assign(start=st["at"] - st["seconds"]).reset_index(drop=True)
    gap = np.full(len(st), np.nan)
    is_transport = (st["stage"] == "transport").to_numpy()
    for _, rows in st.groupby("worker").indices.items():
        for mine, ref in ((~is_transport[rows], ~is_transport[rows]), (is_transport[rows], None)):
            ref_rows = rows if ref is None else rows[ref]
            ends = st["at"].to_numpy(dtype=float)[ref_rows]
            starts = st["start"].to_numpy(dtype=float)[rows[mine]]
            idx = np.searchsorted(ends, starts) - 1
            prev = np.where(idx >= 0, ends[np.maximum(idx, 0)], np.nan)
            gap[rows[mine]] = np.maximum(starts - prev, 0.0)
    return st.assign(gap=gap).sort_values("at", kind="stable").reset_index(drop=True)


def stage_calls(st: pd.DataFrame, stage: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stage's seconds, the gap before each, and the warm ones among them."""
    g = st[st["stage"] == stage]
    secs, gaps = g["seconds"].to_numpy(dtype=float), g["gap"].to_numpy(dtype=float)
    return secs, gaps, secs[gaps <= WARM_GAP]


def warm_samples(st: pd.DataFrame, stage: str, max_samples: int) -> np.ndarray:
    """A stage's warm samples, as quantiles (all of them when under 20 are warm)."""
    secs, _, warm = stage_calls(st, stage)
    if len(warm) < 20:
        warm = secs
    if not len(warm):
        raise ConfigError(
            f"server/stages.csv: no {stage!r} timings in the steady window; the loop twin "
            "needs a run of a server that timed its stages (cqrs-lab loadtest starts it so)"
        )
    return np.asarray(quantiles(warm, min(max_samples, len(warm))))


def pump_costs(st: pd.DataFrame, views: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Per view: seconds per event and per pump step (least squares over warm steps, both
    >= 0); a view not timed gets the mean of the timed ones."""
    per_event: dict[str, float] = {}
    per_batch: dict[str, float] = {}
    steps = st[(st["stage"] == "projection") & (st["gap"] <= WARM_GAP)]
    for name in views:
        g = steps[steps["name"] == name]
        if len(g) < 10:
            continue
        n, s = g["events"].to_numpy(dtype=float), g["seconds"].to_numpy(dtype=float)
        if np.ptp(n) > 0:
            slope, icept = np.polyfit(n, s, 1)
            slope, icept = max(float(slope), 0.0), max(float(icept), 0.0)
        else:
            slope, icept = float(s.sum() / n.sum()), 0.0
        per_event[name], per_batch[name] = slope, icept
    if not per_event:
        raise ConfigError(
            "server/stages.csv: no projection pump steps (ten or more right after other work) "
            "of any view to calibrate; calibrate from a longer run"
        )
    e, b = float(np.mean(list(per_event.values()))), float(np.mean(list(per_batch.values())))
    return ({n: per_event.get(n, e) for n in views}, {n: per_batch.get(n, b) for n in views})


def cold_fit(gap_s: np.ndarray, ratio: np.ndarray) -> tuple[float, float]:
    """``(cold, cold_time)`` of ``ratio ~ 1 + cold * (1 - exp(-gap / cold_time))`` by least
    squares over the medians of :data:`GAP_BINS` (bins of 20 samples or more).

    >>> g = np.array([5e-5] * 30 + [5e-4] * 30 + [5e-3] * 30)
    >>> r = 1 + 1.5 * (1 - np.exp(-g / 1e-3))
    >>> cold, tau = cold_fit(g, r)
    >>> round(cold, 1), round(tau * 1e3, 1)
    (1.5, 1.0)
    """
    x, y = [], []
    for lo, hi in itertools.pairwise(GAP_BINS):
        sel = (gap_s > lo) & (gap_s <= hi)
        if sel.sum() >= 20:
            x.append(float(np.median(gap_s[sel])))
            y.append(float(np.median(ratio[sel])) - 1.0)
    if len(x) < 2:
        return 0.0, 1e-3
    xs, ys = np.array(x), np.array(y)
    best = (np.inf, 0.0, 1e-3)
    for tau in np.geomspace(2e-5, 0.1, 200):
        f = 1.0 - np.exp(-xs / tau)
        a = max(0.0, float(f @ ys / (f @ f))) if f @ f > 0 else 0.0
        err = float(np.sum((ys - a * f) ** 2))
        if err < best[0]:
            best = (err, a, float(tau))
    return best[1], best[2]


def tick_overhead(
    st: pd.DataFrame, waited: pd.DataFrame, projection_cpu: float, cold: float, cold_time: float
) -> float:
    """The pump's warm CPU seconds per step outside the timed steps: each tick's CPU (its
    ``pump`` time less its ``pump-wait``) less its steps' CPU (``projection`` times their
    CPU share), spread over the steps of a tick, divided by the slow-down the ticks' idle
    gaps imply (the simulation applies it again). What it holds: the transaction around a
    tick, the polls of the subscriptions that found nothing (a round trip each on
    PostgreSQL), the head read after the tick. 0 without ten ticks timed.

    >>> st = pd.DataFrame({"stage": ["pump"] * 10 + ["projection"] * 20,
    ...                    "seconds": [0.004] * 10 + [0.001] * 20, "gap": [1.0] * 30})
    >>> waited = pd.DataFrame({"stage": ["pump-wait"] * 10, "seconds": [0.001] * 10})
    >>> round(tick_overhead(st, waited, 0.5, 0.0, 1e-3) * 1e3, 6)  # (4 - 1 - 2 * 0.5) / 2
    1.0
    """
    ticks = st[st["stage"] == "pump"]
    steps = st[st["stage"] == "projection"]
    if len(ticks) < 10 or not len(steps):
        return 0.0
    wait = float(waited.loc[waited["stage"] == "pump-wait", "seconds"].sum())
    cpu = float(ticks["seconds"].sum()) - wait - float(steps["seconds"].sum()) * projection_cpu
    gap = ticks["gap"].fillna(1.0).to_numpy(dtype=float)
    chill = float(np.mean(1.0 + cold * (1.0 - np.exp(-gap / cold_time))))
    return max(0.0, cpu / len(steps) / chill)


def slow_down(
    st: pd.DataFrame, stages: Sequence[str] = ("command", "query")
) -> tuple[float, float]:
    """The slow-down after idling, from the calls of ``stages`` (each over its warm
    median) against the gap before them; ``(0, 1 ms)`` (none) without twenty warm calls."""
    gaps, ratios = [], []
    for stage in stages:
        secs, gap, warm = stage_calls(st, stage)
        if len(warm) >= 20:
            gaps.append(gap)
            ratios.append(secs / float(np.median(warm)))
    if not gaps:
        return 0.0, 1e-3
    return cold_fit(np.concatenate(gaps), np.concatenate(ratios))


def transport_samples(
    st: pd.DataFrame, cold: float, cold_time: float, max_samples: int
) -> tuple[float, ...]:
    """The transport's warm CPU per read (quantiles): each ``transport`` sample divided by
    the slow-down the idle gap before it implies (:func:`cold_fit`'s model, which the
    simulated loop applies again); none timed (an older server): ``()``."""
    secs, gaps, _ = stage_calls(st, "transport")
    if not len(secs):
        return ()
    gaps = np.nan_to_num(gaps, nan=1.0)  # a worker's first work: after a long idle
    warm = secs / (1.0 + cold * (1.0 - np.exp(-gaps / cold_time)))
    return tuple(float(x) for x in quantiles(warm, min(max_samples, len(warm))))


def writer_cost(st: pd.DataFrame, wait: Waits | None = None) -> float:
    """The writer's CPU seconds per batch beyond its commands: the ``writer`` stage's mean
    less its commands' mean ``command`` CPU and its mean wait for the commit (older runs
    have no writer timings: 0)."""
    w = st[st["stage"] == "writer"]
    c = st[st["stage"] == "command"]["seconds"]
    if len(w) < 10 or not len(c):
        return 0.0
    wait = wait or Waits()
    commit = float(np.mean(wait.commit_s)) if wait.commit_s else 0.0
    n, s = w["events"].to_numpy(dtype=float), w["seconds"].to_numpy(dtype=float)
    return max(0.0, float(s.mean() - n.mean() * float(c.mean()) * wait.command_cpu) - commit)
