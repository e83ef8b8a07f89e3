"""The twin's predictions: the calibrated scenario simulated at a command rate, plus seeded
draws from the measured unloaded latency and lag.

For each level, :func:`predict` simulates the calibrated scenario at the level's measured
command arrival rate. A predicted command latency is the simulated time waiting for the
server plus a draw from the calibration's client-side latency (the unloaded latency:
service, HTTP, loopback, Locust), scaled to the level by the fitted curve; a predicted
projection lag (of the calibration's ``view``, the domain's primary view unless chosen) is
the simulated lag beyond one event's handling, plus a draw from the
unloaded lag (scaled likewise), plus the wait for the server's one event loop
(:func:`_loop_wait`). Draws use a seeded generator, so a prediction is reproducible.

>>> from cqrs_lab.load.calibration import Calibration
>>> cal = Calibration(command_samples=(0.001,), base_latency_s=(0.001,), base_lag_s=(0.0002,),
...                   per_event={"balances": 1e-5}, mix={"deposit": 1.0}, keys=10)
>>> p = predict(cal, rate=20.0, duration=5.0)
>>> p["offered_commands_per_s"], 0.0 < p["server_cpu"] < 0.1, p["command_latency_p50_s"] >= 0.001
(20.0, True, True)
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.calibration import Calibration
from cqrs_lab.load.results import percentiles
from cqrs_lab.sim import simulate

__all__ = ["fit_unloaded", "predict"]


def _draw(base: tuple[float, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(base, dtype=float)[rng.integers(0, len(base), n)]


def _loop_wait(
    cal: Calibration, rate: float, n: int, rng: np.random.Generator, waits_s: np.ndarray
) -> np.ndarray:
    """Seconds an appended event waits for the server's one event loop before its
    projection runs, beyond what the unloaded lag (measured at the anchor rate) holds.

    The loop serves requests one at a time, so the event waits like a request in a queue
    of requests: the twin's simulated wait for the command server (``waits_s``) rescaled
    from a command's folded CPU to one request's CPU (a queue's waits scale with its service
    times at a given utilisation). Only the utilisation above the anchor's is new, so a
    draw counts with probability (busy - anchor busy) / busy.
    """
    if not n or not len(waits_s):
        return np.zeros(n)
    mean = cal.service_mean(rate)
    busy = min(1.0, rate * mean)
    if busy <= 0:
        return np.zeros(n)
    new = max(0.0, busy - cal.anchor_rate * cal.command_mean) / busy
    per_request = (cal.request_cpu or cal.command_mean) / cal.command_mean
    draws = waits_s[rng.integers(0, len(waits_s), n)] * per_request
    return np.where(rng.random(n) < new, draws, 0.0)


def _simulated(cal: Calibration, rate: float, duration: float, seed: int) -> dict[str, Any]:
    """One simulation of the twin at ``rate`` and the seeded draws a prediction adds to it
    (seconds; the unloaded draws not yet scaled to the rate)."""
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate={rate!r}: commands per second > 0")
    res = simulate(cal.scenario(rate, duration, seed))
    rng = np.random.default_rng(seed)
    c = res.commands
    served = c[c["outcome"] == "accepted"]
    wait = served["wait_s"].to_numpy(dtype=float)
    unloaded = _draw(cal.base_latency_s, len(wait), rng)
    apps = res.applications  # the run's events (the setup's are applied before t = 0)
    mine = apps[(apps["projection"] == cal.view) & ~apps["duplicate"] & ~apps["replay"]]
    extra = np.maximum(mine["lag_s"].to_numpy(dtype=float) - cal.per_event[cal.view], 0.0)
    base_lag = _draw(cal.base_lag_s, len(extra), rng)
    loop = _loop_wait(cal, rate, len(extra), rng, wait)
    return {
        "wait": wait, "unloaded": unloaded, "lag_added": extra + loop,
        "base_lag": base_lag, "accepted": len(served) / max(len(c), 1),
    }  # fmt: skip


def predict(
    cal: Calibration,
    rate: float,
    duration: float = 60.0,
    seed: int = 1,
    view: str | None = None,
) -> dict[str, float]:
    """The twin's figures for ``rate`` commands/s, simulated for ``duration`` seconds:
    ``offered_commands_per_s`` (``rate``), the :data:`~cqrs_lab.load.twin_display.METRICS`
    (seconds; the lag figures of ``view``, which must be the one calibrated, by default
    ``cal.view``) and ``server_cpu`` (the twin's server's busy fraction).

    Throughput is ``rate`` times the simulated fraction of commands accepted (so the
    simulation's own arrival noise does not count as an error).
    """
    if view is not None and view != cal.view:
        raise ConfigError(
            f"view={view!r}: this twin was calibrated on the lag of {cal.view!r}; "
            f"calibrate(result, view={view!r}) to predict that view's lag"
        )
    sim = _simulated(cal, rate, duration, seed)
    lat = percentiles(sim["wait"] + sim["unloaded"] * cal.unloaded_scale(rate))
    lp = percentiles(sim["lag_added"] + sim["base_lag"] * cal.unloaded_scale(rate, lag=True))
    return {
        "offered_commands_per_s": rate, "throughput_per_s": rate * sim["accepted"],
        "command_latency_p50_s": lat["p50"], "command_latency_p95_s": lat["p95"],
        "command_latency_p99_s": lat["p99"], "lag_p50_s": lp["p50"], "lag_p95_s": lp["p95"],
        "server_cpu": min(1.0, rate * cal.service_mean(rate)),
    }  # fmt: skip


def fit_unloaded(
    cal: Calibration,
    rate: float,
    command_latency_p50_s: float,
    lag_p50_s: float,
    duration: float = 60.0,
    seed: int = 1,
) -> Calibration:
    """Fit how the unloaded latency and lag scale with the rate so that the twin reproduces
    the medians (seconds) measured at ``rate`` (a second calibration level, above the
    anchor).

    Fitting the measured medians alone would count the load twice: they already hold the
    waits for the server that the twin adds by simulation. So the exponents are solved
    (bisection) for ``median(simulated wait + unloaded draw * (rate / anchor) ** k)`` to
    equal the measured median, with the draws :func:`predict` makes.
    """
    if cal.anchor_rate <= 0 or rate <= 1.05 * cal.anchor_rate:
        return cal
    sim = _simulated(cal, rate, duration, seed)
    ratio = rate / cal.anchor_rate

    def solve(added: np.ndarray, draws: np.ndarray, target: float, old: float) -> float:
        if not len(draws) or not math.isfinite(target):
            return old

        def median(k: float) -> float:  # increasing in k, since ratio > 1
            return float(np.median(added + draws * ratio**k))

        lo, hi = -0.5, 0.5
        if median(lo) >= target:
            return lo
        if median(hi) <= target:
            return hi
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if median(mid) < target else (lo, mid)
        return (lo + hi) / 2

    k_latency = solve(sim["wait"], sim["unloaded"], command_latency_p50_s, cal.latency_exponent)
    k_lag = solve(sim["lag_added"], sim["base_lag"], lag_p50_s, cal.lag_exponent)
    return replace(cal, latency_exponent=k_latency, lag_exponent=k_lag)
