"""The twin's comparison: predicted versus measured, per load level, with relative errors.

For each measured run (a load level), :func:`predict` simulates the calibrated scenario at
the run's measured command arrival rate (for its steady window, at least 60 simulated
seconds, so the twin's own sampling noise stays small). A predicted command
latency is the simulated time waiting for the server plus a draw from the calibration run's
client-side latency (the unloaded latency: service, HTTP, loopback, Locust); a predicted
projection lag is the simulated lag beyond one event's handling plus a draw from the
unloaded lag. Draws use a seeded generator, so a comparison is reproducible.

>>> # table = compare([load_results(p) for p in runs]); print(format_table(table))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.results import COMMANDS, LoadResult, percentiles
from cqrs_lab.load.twin import Calibration, calibrate, cpu_utilisation, lags, pool, window
from cqrs_lab.sim import simulate

__all__ = ["METRICS", "compare", "format_table", "measure", "plot_comparison", "predict", "regime"]

#: compared figures: throughput (commands/s), command latency and balances lag (ms)
METRICS = ("throughput", "cmd_p50", "cmd_p95", "cmd_p99", "lag_p50", "lag_p95")


def measure(result: LoadResult, warmup: float = 2.0) -> dict[str, float]:
    """Measured figures of one run in its steady window (commands/s and ms)."""
    lo, hi = window(result, warmup)
    r = result.requests
    r = r[(r["t"] >= lo) & (r["t"] < hi)]
    cmd = r[r["name"].isin(COMMANDS)]
    p = percentiles(cmd[cmd["ok"]]["latency_ms"])
    lag = percentiles(lags(result, lo, hi, "balances") * 1e3)
    rate = result.run.get("options", {}).get("rate")
    share = len(cmd) / len(r) if len(r) else 0.0
    return {
        "offered": len(cmd) / (hi - lo), "throughput": float(cmd["ok"].sum()) / (hi - lo),
        "cmd_p50": p["p50"], "cmd_p95": p["p95"], "cmd_p99": p["p99"],
        "lag_p50": lag["p50"], "lag_p95": lag["p95"],
        "server_cpu": cpu_utilisation(result, lo, hi), "window": hi - lo,
        "intended": float(rate) * share if rate else float("nan"),
        "late_p95": percentiles(r["lateness_ms"])["p95"],
        "generator_cpu": _generator_cpu(result),
    }  # fmt: skip


def _generator_cpu(result: LoadResult) -> float:
    """Cores the Locust processes used on average (CPU seconds over the run's span)."""
    cpu = result.run.get("generator_cpu_s")
    span = float(result.requests["t"].max()) if len(result.requests) else 0.0
    return float(cpu) / span if cpu is not None and span > 0 else float("nan")


def regime(measured: dict[str, float], twin_cpu: float, late_ms: float = 25.0) -> str:
    """``generator-bound`` when the open model could not keep to its schedule (p95 of the
    sends' lateness over ``late_ms``: not one stall but a generator short of CPU, or
    under 90% of the intended rate sent); ``saturated`` when the server
    answered under 95% of what was sent or a CPU (measured or the twin's) passed 80%;
    otherwise ``below knee``.

    >>> regime({"late_p95": 1.0, "offered": 100.0, "intended": 100.0, "throughput": 100.0,
    ...         "server_cpu": 0.1}, twin_cpu=0.1)
    'below knee'
    """
    m = measured
    if m["late_p95"] > late_ms or m["offered"] < 0.9 * m["intended"]:
        return "generator-bound"
    if m["throughput"] < 0.95 * m["offered"] or max(m["server_cpu"], twin_cpu) > 0.8:
        return "saturated"
    return "below knee"


def _draw(base: tuple[float, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(base, dtype=float)[rng.integers(0, len(base), n)]


def predict(
    cal: Calibration, rate: float, duration: float = 60.0, seed: int = 1
) -> dict[str, float]:
    """The twin's figures for ``rate`` commands/s, simulated for ``duration`` seconds.

    Throughput is ``rate`` times the simulated fraction of commands accepted (so the
    simulation's own arrival noise does not count as an error).
    """
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate={rate!r}: commands per second > 0")
    res = simulate(cal.scenario(rate, duration, seed))
    rng = np.random.default_rng(seed)
    c = res.commands
    served = c[c["outcome"] == "accepted"]
    wait = served["wait"].to_numpy(dtype=float) * 1e3
    lat = percentiles(wait + _draw(cal.base_latency_ms, len(wait), rng))
    apps = res.applications
    mine = apps[(apps["projection"] == "balances") & ~apps["duplicate"] & ~apps["replay"]]
    mine = mine[mine["event_type"] != "AccountOpened"]
    extra = np.maximum(mine["lag"].to_numpy(dtype=float) - cal.per_event["balances"], 0.0)
    lp = percentiles(extra * 1e3 + _draw(cal.base_lag_ms, len(extra), rng))
    return {
        "offered": rate, "throughput": rate * len(served) / max(len(c), 1),
        "cmd_p50": lat["p50"], "cmd_p95": lat["p95"], "cmd_p99": lat["p99"],
        "lag_p50": lp["p50"], "lag_p95": lp["p95"],
        "server_cpu": min(1.0, rate * cal.command_mean),
    }  # fmt: skip


def compare(
    results: Sequence[LoadResult],
    cal: Calibration | None = None,
    warmup: float = 2.0,
    seed: int = 1,
) -> pd.DataFrame:
    """One row per (run, metric): measured, predicted, relative error, below the knee.

    Without ``cal`` the twin is calibrated from the lightest level (its repeated runs
    pooled, see :func:`~cqrs_lab.load.twin.pool`). Each level's
    :func:`regime` says whether it is below the knee, saturated or generator-bound; a
    closed-model run is marked ``closed model``: the simulation's arrivals are open, while a
    closed run's arrivals slow down with the answers, so the two are not comparable.
    """
    if not results:
        raise ConfigError("compare: give at least one load test result")
    measured = sorted(((measure(r, warmup), r) for r in results), key=lambda x: _level(x[0]))
    if cal is None:  # the lightest level, its repeats pooled
        lightest = _level(measured[0][0])
        cal = pool([calibrate(r, warmup) for m, r in measured if _level(m) <= 1.05 * lightest])
    rows = []
    for m, res in measured:
        p = predict(cal, m["offered"], max(m["window"], 60.0), seed)
        kind = regime(m, p["server_cpu"])
        if res.run.get("model") == "closed":
            kind = "closed model"  # its arrivals depend on the answers: not the twin's input
        for metric in METRICS:
            meas, pred = m[metric], p[metric]
            err = (pred - meas) / meas if meas and not math.isnan(meas) else float("nan")
            rows.append({
                "run": res.path.name, "offered": m["offered"], "cpu": m["server_cpu"],
                "generator_cpu": m["generator_cpu"],
                "twin_cpu": p["server_cpu"], "metric": metric, "measured": meas,
                "predicted": pred, "rel_error": err, "regime": kind,
                "below_knee": kind == "below knee", "late_p95": m["late_p95"],
                "calibration": str(res.path) in cal.source.split(", "),
            })  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["calibration"] = cal
    return table


def _level(m: dict[str, float]) -> float:
    """A run's load level: the intended command rate (open model), else what was sent."""
    return m["intended"] if not math.isnan(m["intended"]) else m["offered"]


def format_table(table: pd.DataFrame) -> str:
    """The comparison as text: one line per run and metric (``*``: the calibration run;
    ``cpu``, ``twin``, ``gen``: cores used by the server, by the twin's server, by Locust)."""
    lines = [
        f"{'run':<15}{'offered/s':>10}{'cpu':>6}{'twin':>6}{'gen':>6}  {'metric':<11}"
        f"{'measured':>10}{'twin':>10}{'error':>8}  regime"
    ]
    for r in table.to_dict("records"):
        e = float(r["rel_error"])
        err = "" if math.isnan(e) else f"{e:+.0%}"
        name = f"{r['run']}{'*' if r['calibration'] else ''}"
        lines.append(
            f"{name:<15}{r['offered']:>10.1f}{r['cpu']:>6.2f}{r['twin_cpu']:>6.2f}"
            f"{r['generator_cpu']:>6.2f}  "
            f"{r['metric']:<11}{r['measured']:>10.2f}{r['predicted']:>10.2f}{err:>8}  "
            f"{r['regime']}"
        )
    return "\n".join(lines)


def plot_comparison(table: pd.DataFrame, ax: Any = None) -> Any:
    """Measured (solid) and predicted (dashed) per metric against offered load (top row),
    and the relative errors with the 20% band (bottom row). Returns the 2 x n axes."""
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if m in set(table["metric"])]
    if ax is None:
        _, ax = plt.subplots(2, len(metrics), figsize=(3.2 * len(metrics), 6), squeeze=False)
    for i, metric in enumerate(metrics):
        t = table[table["metric"] == metric]
        top, bottom = ax[0][i], ax[1][i]
        top.plot(t["offered"], t["measured"], "o-", label="measured")
        top.plot(t["offered"], t["predicted"], "s--", label="twin")
        top.set_title(metric + (" (ms)" if metric != "throughput" else " (commands/s)"))
        if metric != "throughput":
            top.set_yscale("log")
        bottom.axhspan(-0.2, 0.2, color="0.9")
        bottom.axhline(0.0, color="0.5", lw=0.8)
        bottom.plot(t["offered"], t["rel_error"], "o-")
        bottom.set_xlabel("offered commands/s")
    ax[0][0].legend()
    ax[1][0].set_ylabel("relative error")
    return ax
