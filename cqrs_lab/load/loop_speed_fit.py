"""How much the machine's speed wanders, from the server's stage timings at one level
(``[server] speed_sd`` and ``speed_time``: :mod:`cqrs_lab.sim.loop_speed`).

:func:`speed_fit` takes the engine's calls and the transport's reads that came within
:data:`SPEED_GAP` of other work (warm or nearly: their slow-down after idling is small and
does not drift in time), each as the log of its seconds over the median of its kind
(clipped at ``±1``, so that one call the CPU limit paused weighs no more than a call
three times slower; isolated pauses then count as the calls' own scatter, though pauses
clustered in one window still read as a slow stretch), and
averages them over windows of :data:`WINDOW` seconds. The windows' means vary by two
things: the calls' own scatter, independent from call to call (a window's share of it is
the variance pooled within windows over the window's count), and the machine's speed,
which the calls of one stretch share. Half the mean squared difference of two windows
``k`` apart, less their shares of the scatter, is the speed's alone (its variogram, which
needs no run's mean taken off, so a short run does not shorten the time constant it
shows); the Ornstein-Uhlenbeck process whose windows' variogram is nearest to it (least
squares over lags up to two seconds, a time constant on a grid and the variance solved
for each) is the fit. A mean over ``W`` seconds of such a process of variance ``s²`` and
time constant ``t`` has variance ``s² * 2 (x - 1 + exp(-x)) / x²``, ``x = W / t``, and
two such means ``k >= 1`` windows apart covariance ``s² * (1 - exp(-x))² / x² *
exp(-(k - 1) x)``.

The speed's wander is not one time scale: on this machine the variogram jumps within the
first window and goes on rising for a second or two. One process fitted up to two seconds
is what judged best on five saved runs (45 of their 100 figures within band, against 35
with a constant speed, 42 fitted up to 0.8 s, 43 with a second, slower process); it gave
an sd of 0.18 to 0.23 and a time constant of 60 to 390 ms on them, and 0.25 over 45 ms and
0.19 over 98 ms on two fresh runs. A time constant of a second or more is not well seen in a
level's runs of ten seconds with lags up to two: the fit then lands at or near its bound
(:data:`TIME_BOUNDS`) and reads the sd low. The calls of several server processes are
pooled into the same windows: the speed is taken to be the machine's, shared by them.

No latency is fitted: the simulation at each rate produces what a slow stretch does to the
queue.

>>> import random, numpy as np, pandas as pd
>>> from cqrs_lab.sim.loop_speed import LoopSpeed
>>> speed = LoopSpeed(0.2, 0.3, random.Random(2), duration=30.0)  # what the twin simulates
>>> rng = np.random.default_rng(3)
>>> t = np.sort(rng.uniform(0.0, 30.0, 30_000))
>>> secs = [1e-4 * speed.factor(x) * np.exp(rng.normal(0.0, 0.35)) for x in t]
>>> st = pd.DataFrame({"stage": "command", "name": "A", "at": t, "seconds": secs, "gap": 0.0})
>>> sd, time = speed_fit([st])
>>> 0.15 < sd < 0.25, 0.15 < time < 0.6
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cqrs_lab.sim.loop_speed import CONSTANT_TIME

__all__ = ["NO_WANDER", "SPEED_GAP", "WINDOW", "speed_fit"]

#: calls this soon (seconds) after other timed work count
SPEED_GAP = 1e-3
#: the windows (seconds) over which calls are averaged
WINDOW = 0.05
#: the farthest lag (windows) of the fit: two seconds, a fifth of a level's run
MAX_LAG = 40
#: the most windows one run may span (a day)
MAX_WINDOWS = 86_400 / WINDOW
#: the fewest windows (of three calls or more) for a fit; fewer: a constant speed
MIN_WINDOWS = 40
#: the time constant's bounds (seconds)
TIME_BOUNDS = (0.02, MAX_LAG * WINDOW)

#: the fit when no wander is found: ``(sd, time)`` of a constant speed
NO_WANDER = (0.0, CONSTANT_TIME)

_KINDS = ("command", "query", "transport")


def speed_fit(parts: Sequence[pd.DataFrame]) -> tuple[float, float]:
    """``(sd, time)`` of the log speed from each run's timed work (``stage``, ``name``,
    ``at``, ``seconds``, ``gap``: :func:`~cqrs_lab.load.loop_stages.idle_gaps`); :data:`NO_WANDER`,
    a constant speed, when too few windows or no wander beyond the calls' own scatter were
    found."""
    half_sq, pairs = np.zeros(MAX_LAG + 1), np.zeros(MAX_LAG + 1)
    windows = 0
    for st in parts:
        found = _window_means(st)
        if found is None:
            continue
        means, noise = found
        windows += int(np.sum(~np.isnan(means)))
        for k in range(1, MAX_LAG + 1):
            d = means[k:] - means[:-k]
            n = noise[k:] + noise[:-k]
            both = ~np.isnan(d)
            half_sq[k] += float(np.sum(d[both] ** 2 - n[both])) / 2.0
            pairs[k] += int(both.sum())
    if windows < MIN_WINDOWS or not pairs[1:].all():
        return NO_WANDER
    lags = np.arange(1, MAX_LAG + 1, dtype=float)
    gamma, weight = half_sq[1:] / pairs[1:], pairs[1:]
    best = (math.inf, *NO_WANDER)  # (weighted squared error, variance, time)
    for time in np.geomspace(TIME_BOUNDS[0], TIME_BOUNDS[1], 120):
        shape = _variogram(lags, float(time))
        var = float(np.sum(weight * shape * gamma) / np.sum(weight * shape * shape))
        err = float(np.sum(weight * (gamma - var * shape) ** 2))
        if var > 0 and err < best[0]:
            best = (err, var, float(time))
    return (math.sqrt(best[1]), best[2]) if best[1] > 0 else NO_WANDER


def _variogram(lags: np.ndarray, time: float) -> np.ndarray:
    """Half the mean squared difference of two :data:`WINDOW`-second means of an
    Ornstein-Uhlenbeck process of variance one and time constant ``time``, ``lags``
    windows apart: the variance of one mean less their covariance."""
    x = WINDOW / time
    var = 2.0 * (x - 1.0 + math.exp(-x)) / (x * x)
    cov = (1.0 - math.exp(-x)) ** 2 / (x * x) * np.exp(-(lags - 1.0) * x)
    return var - cov


def _window_means(st: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """One run's windows: the mean log ratio of each and the variance the calls' own
    scatter gives it (NaN both: fewer than three calls); None: too few calls to fit on."""
    finite = np.isfinite(st["at"].to_numpy(dtype=float)) & np.isfinite(
        st["seconds"].to_numpy(dtype=float)
    )
    calls = st[finite & st["stage"].isin(_KINDS) & (st["gap"] <= SPEED_GAP) & (st["seconds"] > 0)]
    if len(calls) < 3 * MIN_WINDOWS:
        return None
    log = np.log(calls["seconds"].to_numpy(dtype=float))
    kinds = calls["stage"].astype(str) + "/" + calls["name"].astype(str)
    ratio = np.clip(log - pd.Series(log, index=calls.index).groupby(kinds).transform("median"),
                    -1.0, 1.0).to_numpy()  # fmt: skip
    at = calls["at"].to_numpy(dtype=float)
    if (at.max() - at.min()) / WINDOW > MAX_WINDOWS:
        return None  # not one level's run (a clock gone wrong): nothing to fit on
    win = ((at - at.min()) // WINDOW).astype(int)
    df = pd.DataFrame({"w": win, "r": ratio})
    g = df.groupby("w")["r"].agg(["mean", "count"])
    g = g[g["count"] >= 3]
    if len(g) < 2:
        return None
    inside = df[df["w"].isin(g.index)]
    dev = inside["r"] - inside["w"].map(g["mean"])
    within = float((dev**2).sum()) / max(len(inside) - len(g), 1)
    means, noise = np.full(int(win.max()) + 1, np.nan), np.full(int(win.max()) + 1, np.nan)
    means[g.index.to_numpy()] = g["mean"].to_numpy(dtype=float)
    noise[g.index.to_numpy()] = within / g["count"].to_numpy(dtype=float)
    return means, noise
