"""The twin's comparison: predicted versus measured, per load level, with relative errors.

Repeats of a level are pooled (:func:`levels`, :func:`measure`). For each level,
:func:`predict` simulates the calibrated scenario at the level's measured command arrival
rate (for its steady window, at least 60 simulated seconds, so the twin's own sampling
noise stays small). A predicted command latency is the simulated time waiting for the
server plus a draw from the calibration's client-side latency (the unloaded latency:
service, HTTP, loopback, Locust), scaled to the level by the fitted curve; a predicted
projection lag (of one view: by default the primary view of the domain the runs served,
:func:`~cqrs_lab.load.calibration.primary_view`) is the simulated lag beyond one event's
handling, plus a draw from the
unloaded lag (scaled likewise), plus the wait for the server's one event loop
(:func:`~cqrs_lab.load.prediction._loop_wait`). Draws use a seeded generator, so a
comparison is reproducible. The predictions themselves live in :mod:`cqrs_lab.load.prediction`
(``predict`` and ``fit_unloaded`` are importable from here too).

The comparison table is data (seconds, ``_s``; commands/s, ``_per_s``): one row per level
and metric (:data:`METRICS`), ``offered_commands_per_s`` (what the level aimed at),
``sent_commands_per_s`` (what Locust sent), measured, predicted, the relative error, the
regime and a ``verdict`` (``pass``/``fail`` within :data:`BAND`; ``calibration``; ``not
judged`` for a generator-bound or closed-model level). :func:`format_table` shows it in ms.

>>> regime({"late_p95_s": 0.090, "offered": 100.0, "intended": 100.0, "throughput": 100.0,
...         "server_cpu": 0.1}, twin_cpu=0.1)
'generator-bound'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.core import load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.calibration import Calibration, cpu_utilisation, lags, primary_view, window
from cqrs_lab.load.generator import generator_bound, per_task
from cqrs_lab.load.prediction import fit_unloaded, predict
from cqrs_lab.load.results import LoadResult, commands, percentiles
from cqrs_lab.load.summary import generator_cores
from cqrs_lab.load.twin import calibrate_levels
from cqrs_lab.load.twin_display import BAND, METRIC_NAMES, format_table, plot_comparison

__all__ = [
    "BAND",
    "METRICS",
    "check_calibration",
    "compare",
    "fit_unloaded",
    "format_table",
    "levels",
    "measure",
    "plot_comparison",
    "predict",
    "regime",
    "undisturbed",
    "why_generator_bound",
]

#: compared figures, as :func:`measure` and :func:`predict` name them (commands/s and ms);
#: the table names them by the lab's convention (``METRIC_NAMES``: ``throughput_per_s``,
#: ``command_latency_p50_s``, ``lag_p95_s``, ...) in commands/s and seconds
METRICS = ("throughput", "cmd_p50", "cmd_p95", "cmd_p99", "lag_p50", "lag_p95")


def measure(
    results: LoadResult | Sequence[LoadResult], warmup: float = 2.0, view: str | None = None
) -> dict[str, float]:
    """Measured figures of one run, or of repeats of one level pooled, in their steady
    windows (commands/s and ms): percentiles over every repeat's raw samples together. The
    lag figures are of ``view`` (default: the primary view of the domain the runs served).
    ``offered`` is the commands/s sent, ``intended`` those aimed at (``--rate``, user tasks/s,
    times the commands per task of the user classes), ``late_p95_s`` the p95 of the sends'
    lateness (s)."""
    runs = [results] if isinstance(results, LoadResult) else list(results)
    if not runs:
        raise ConfigError("measure: give at least one load test result")
    domain = _one_domain(runs, "measure")
    view = view or primary_view(load_domain(domain))
    span = n_cmd = n_ok = 0.0
    latency, lag, late, cpu, gen = [], [], [], [], []
    for result in runs:
        lo, hi = window(result, warmup)
        r = result.requests
        r = r[(r["t"] >= lo) & (r["t"] < hi)]
        cmd = commands(r)
        span += hi - lo
        n_cmd += len(cmd)
        n_ok += float(cmd["ok"].sum())
        latency.append(cmd[cmd["ok"]]["latency_ms"].to_numpy(dtype=float))
        lag.append(lags(result, lo, hi, view) * 1e3)
        late.append(r["lateness_ms"].to_numpy(dtype=float))
        cpu.append(cpu_utilisation(result, lo, hi) * (hi - lo))
        gen.append(generator_cores(result, lo, hi))
    opts = runs[0].run.get("options", {}) or {}
    rate = opts.get("rate")
    share = per_task(opts.get("classes") or ("WriterUser", "ReaderUser", "SessionUser"))[0]
    p = percentiles(np.concatenate(latency))
    lp = percentiles(np.concatenate(lag))
    return {
        "offered": n_cmd / span, "throughput": n_ok / span,
        "cmd_p50": p["p50"], "cmd_p95": p["p95"], "cmd_p99": p["p99"],
        "lag_p50": lp["p50"], "lag_p95": lp["p95"],
        "server_cpu": sum(cpu) / span, "window": span,
        "intended": float(rate) * share if rate else float("nan"),
        "late_p95_s": percentiles(np.concatenate(late))["p95"] / 1e3,
        "generator_cpu": float(np.mean(gen)), "processes": float(opts.get("processes") or 1),
    }  # fmt: skip


def _one_domain(runs: Sequence[LoadResult], what: str) -> str:
    """The domain every run served (ConfigError naming two runs that differ)."""
    first = runs[0]
    for r in runs[1:]:
        if r.domain != first.domain:
            raise ConfigError(
                f"{what}: {first.path.name} served {first.domain!r} but {r.path.name} served "
                f"{r.domain!r}; give runs of one domain"
            )
    return first.domain


def levels(results: Sequence[LoadResult]) -> list[list[LoadResult]]:
    """Runs grouped by load level: open-model runs at the same intended rate and shape are
    repeats of one level; any other run is a level of its own. In the order given."""
    groups: dict[tuple[Any, ...], list[LoadResult]] = {}
    for r in results:
        opts = r.run.get("options", {})
        if r.run.get("model") == "open" and opts.get("rate"):
            key: tuple[Any, ...] = ("open", float(opts["rate"]), opts.get("shape"))
        else:
            key = ("run", str(r.path))
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def why_generator_bound(measured: dict[str, float]) -> str:
    """Why the generator limited this level ('' when it did not): the one rule of
    :func:`cqrs_lab.load.generator.generator_bound`, on :func:`measure`'s figures."""
    m = measured
    return generator_bound(
        m["late_p95_s"],
        m["offered"],
        m["intended"],
        m.get("generator_cpu", float("nan")),
        int(m.get("processes", 1)),
    )


def regime(measured: dict[str, float], twin_cpu: float) -> str:
    """``generator-bound`` when the generator could not keep to its schedule
    (:func:`why_generator_bound`); ``saturated`` when the server answered under 95% of
    what was sent or a CPU (measured or the twin's) passed 80%; otherwise ``below knee``.

    >>> regime({"late_p95_s": 0.001, "offered": 100.0, "intended": 100.0, "throughput": 100.0,
    ...         "server_cpu": 0.1}, twin_cpu=0.1)
    'below knee'
    """
    m = measured
    if why_generator_bound(m):
        return "generator-bound"
    if m["throughput"] < 0.95 * m["offered"] or max(m["server_cpu"], twin_cpu) > 0.8:
        return "saturated"
    return "below knee"


def check_calibration(
    runs: Sequence[LoadResult], warmup: float = 2.0, view: str | None = None
) -> None:
    """Raise :class:`ConfigError` naming the level and why if the generator limited these
    runs (one calibration level): a twin calibrated from them learns Locust, not the server."""
    why = why_generator_bound(measure(runs, warmup, view))
    if why:
        name = "+".join(r.path.name for r in runs)
        raise ConfigError(
            f"calibration level {name} is generator-bound ({why}); measure it again with a "
            "lower rate or more --processes, calibrate from another level (--calibrate-from), "
            "or pass --force to calibrate from it anyway"
        )


def compare(
    results: Sequence[LoadResult],
    cal: Calibration | None = None,
    warmup: float = 2.0,
    seed: int = 1,
    view: str | None = None,
    force: bool = False,
) -> pd.DataFrame:
    """One row per (level, metric): measured, predicted, relative error, below the knee.

    The lag rows are of ``view`` (column ``view``, also ``table.attrs["view"]``): by
    default the calibration's, which is the primary view of the domain the runs served.

    Repeats of a level (see :func:`levels`) are pooled into one row. Without ``cal`` the
    twin is calibrated from the lightest level, and with three levels or more its curves
    (CPU per command, unloaded latency and lag) are fitted over the two lightest
    (:func:`~cqrs_lab.load.twin.calibrate_levels`), so the heavier levels are predicted out
    of sample. Each level's :func:`regime` says whether it is below the knee, saturated or
    generator-bound; a closed-model run is marked ``closed model``: the simulation's arrivals
    are open, while a closed run's arrivals slow down with the answers, so the two are not
    comparable. Neither is judged (``verdict``: ``not judged``). Calibrating from a
    generator-bound level raises :class:`ConfigError` unless ``force``
    (:func:`check_calibration`).
    """
    if not results:
        raise ConfigError("compare: give at least one load test result")
    domain = _one_domain(results, "compare")
    if cal is not None and cal.domain != domain:
        raise ConfigError(
            f"compare: the calibration is of domain {cal.domain!r}, the runs served "
            f"{domain!r}; calibrate from one of these runs"
        )
    view = view or (cal.view if cal is not None else primary_view(load_domain(domain)))
    if cal is not None and view != cal.view:
        raise ConfigError(
            f"view={view!r}: the calibration is of the lag of {cal.view!r}; pass no "
            f"calibration (compare calibrates one) or calibrate(result, view={view!r})"
        )
    kept, disturbed = undisturbed(levels(results), warmup, view)
    measured = sorted(((measure(g, warmup, view), g) for g in kept), key=lambda x: _level(x[0]))
    if cal is None:
        fit = [g for _, g in measured[:2]] if len(measured) >= 3 else [measured[0][1]]
        if not force:
            for group in fit:
                check_calibration(group, warmup, view)
        cal = calibrate_levels(fit, warmup, seed=seed, view=view)
    sources = set(cal.source.split(", "))
    rows = []
    for m, runs in measured:
        p = predict(cal, m["offered"], max(m["window"], 60.0), seed)
        kind = regime(m, p["server_cpu"])
        if any(r.run.get("model") == "closed" for r in runs):
            kind = "closed model"  # its arrivals depend on the answers: not the twin's input
        name = "+".join(r.path.name for r in runs)
        calibration = any(str(r.path) in sources for r in runs) or any(
            str(r.path) in cal.notes.get("fitted_from", ()) for r in runs
        )
        why = why_generator_bound(m)
        for metric in METRICS:
            meas, pred = m[metric], p[metric]
            err = (pred - meas) / meas if meas and not math.isnan(meas) else float("nan")
            scale = 1.0 if metric == "throughput" else 1e-3  # ms -> s
            if calibration:
                verdict = "calibration"
            elif kind in ("generator-bound", "closed model") or math.isnan(err):
                verdict = "not judged"
            else:
                verdict = "pass" if abs(err) <= BAND else "fail"
            rows.append({
                "run": name, "repeats": len(runs),
                "offered_commands_per_s": m["intended"], "sent_commands_per_s": m["offered"],
                "server_cpu": m["server_cpu"], "generator_cpu": m["generator_cpu"],
                "twin_cpu": p["server_cpu"], "metric": METRIC_NAMES[metric], "view": view,
                "measured": meas * scale, "predicted": pred * scale, "rel_error": err,
                "regime": kind, "below_knee": kind == "below knee", "verdict": verdict,
                "generator_lateness_p95_s": m["late_p95_s"], "generator_bound_why": why,
                "calibration": calibration,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["calibration"] = cal
    table.attrs["disturbed"] = disturbed
    table.attrs["view"] = view
    return table


#: a repeat using this much more server CPU per command than its level's least is disturbed
DISTURBED = 1.2


def undisturbed(
    groups: Sequence[Sequence[LoadResult]], warmup: float = 2.0, view: str | None = None
) -> tuple[list[list[LoadResult]], dict[str, str]]:
    """Repeats of a level measured while something else slowed the machine, set aside.

    The same load on the same server costs the same CPU per command; a repeat whose server
    CPU per command is over ``DISTURBED`` times the level's least ran on a slowed machine
    (another process, a noisy neighbour, a lower clock), and its latencies say more about
    that than about the server. Returns the levels without such repeats, and why each set
    aside run was (run name -> reason). A level keeps at least its least disturbed run.
    """
    kept: list[list[LoadResult]] = []
    disturbed: dict[str, str] = {}
    for runs in groups:
        cost = []
        for r in runs:
            m = measure(r, warmup, view)
            cost.append(m["server_cpu"] / m["throughput"] if m["throughput"] > 0 else math.nan)
        known = [c for c in cost if not math.isnan(c)]
        if len(known) < 2:
            kept.append(list(runs))
            continue
        least = min(known)
        keep = []
        for r, c in zip(runs, cost, strict=True):
            if not math.isnan(c) and c > DISTURBED * least:
                disturbed[r.path.name] = (
                    f"server CPU per command {c * 1e3:.3f} ms, {c / least - 1:.0%} above the "
                    f"level's least ({least * 1e3:.3f} ms)"
                )
            else:
                keep.append(r)
        kept.append(keep)
    return kept, disturbed


def _level(m: dict[str, float]) -> float:
    """A run's load level: the intended command rate (open model), else what was sent."""
    return m["intended"] if not math.isnan(m["intended"]) else m["offered"]
