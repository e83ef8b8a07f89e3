"""The twin's comparison: predicted versus measured, per load level, with relative errors.

Repeats of a level are pooled (:func:`levels`, :func:`measure`). For each level,
:func:`predict` simulates the calibrated scenario at the level's measured command arrival
rate (for its steady window, at least 60 simulated seconds, so the twin's own sampling
noise stays small). A predicted command latency is the simulated time waiting for the
server plus a draw from the calibration's client-side latency (the unloaded latency:
service, HTTP, loopback, Locust), scaled to the level by the fitted curve; a predicted
projection lag (of one view: by default the primary view of the domain the runs served,
:func:`~cqrs_lab.load.calibration_inputs.primary_view`) is the simulated lag beyond one event's
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

>>> regime({"generator_lateness_p95_s": 0.090, "sent_commands_per_s": 100.0,
...         "offered_commands_per_s": 100.0, "throughput_per_s": 100.0, "server_cpu": 0.1},
...        twin_cpu=0.1)
'generator-bound'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cqrs_lab.core import load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.answer_delay import SERVER_KEYS, SPLIT_KEYS
from cqrs_lab.load.calibration import Calibration
from cqrs_lab.load.calibration_inputs import primary_view
from cqrs_lab.load.loop_calibration import calibrate_loop
from cqrs_lab.load.loop_twin import LoopCalibration, predict_loop
from cqrs_lab.load.measure import check_calibration, measure, one_domain, why_generator_bound
from cqrs_lab.load.prediction import fit_unloaded, predict
from cqrs_lab.load.results import LoadResult
from cqrs_lab.load.twin import calibrate_levels
from cqrs_lab.load.twin_display import BAND, METRICS, band, format_table, plot_comparison

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


def regime(measured: dict[str, float], twin_cpu: float) -> str:
    """``generator-bound`` when the generator could not keep to its schedule
    (:func:`why_generator_bound`); ``saturated`` when the server answered under 95% of
    what was sent or a CPU (measured or the twin's) passed 80% of the cores the server may
    use (``server_cores``: its CPU limit, else one per process); otherwise ``below knee``.

    >>> regime({"generator_lateness_p95_s": 0.001, "sent_commands_per_s": 100.0,
    ...         "offered_commands_per_s": 100.0, "throughput_per_s": 100.0, "server_cpu": 0.1},
    ...        twin_cpu=0.1)
    'below knee'
    """
    m = measured
    if why_generator_bound(m):
        return "generator-bound"
    sent = m["sent_commands_per_s"]
    cores = m.get("server_cores", 1.0)
    if m["throughput_per_s"] < 0.95 * sent or max(m["server_cpu"], twin_cpu) > 0.8 * cores:
        return "saturated"
    return "below knee"


def compare(
    results: Sequence[LoadResult],
    cal: Calibration | LoopCalibration | None = None,
    warmup: float = 2.0,
    seed: int = 1,
    view: str | None = None,
    force: bool = False,
    model: str = "loop",
) -> pd.DataFrame:
    """One row per (level, metric): measured, predicted, relative error, below the knee.

    ``model``: without ``cal``, which twin is calibrated from the lightest level: ``loop``
    (:mod:`cqrs_lab.load.loop_twin`: the served process as one event loop, calibrated
    stage by stage; the default) or ``fitted`` (one folded service time, with power-law
    curves of the CPU and unloaded latency over the two lightest of three levels or more).

    The lag rows are of ``view`` (column ``view``, also ``table.attrs["view"]``): by
    default the calibration's, which is the primary view of the domain the runs served.

    Repeats of a level (see :func:`levels`) are pooled into one row (``measured``), with
    the least and the most any one of them measured beside it (``measured_low``,
    ``measured_high``: how far the measurement itself moves between repeats; the verdict
    is on the pooled figure). Without ``cal`` the
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
    domain = one_domain(results, "compare")
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
    if model not in ("loop", "fitted"):
        raise ConfigError(f"model={model!r}: 'loop' (the event-loop twin) or 'fitted'")
    if cal is None and model == "loop":
        cal = calibrate_loop(measured[0][1], warmup, view=view, force=force, seed=seed)
    elif cal is None:
        fit = [g for _, g in measured[:2]] if len(measured) >= 3 else [measured[0][1]]
        cal = calibrate_levels(fit, warmup, seed=seed, view=view, force=force)
    sources = set(cal.source.split(", "))
    rows = []
    for m, runs in measured:
        duration = max(m["window_s"], 60.0)
        if isinstance(cal, LoopCalibration):
            p = predict_loop(cal, m["sent_commands_per_s"], duration, seed)
        else:
            p = predict(cal, m["sent_commands_per_s"], duration, seed)
        kind = regime(m, p["server_cpu"])
        if any(r.run.get("model") == "closed" for r in runs):
            kind = "closed model"  # its arrivals depend on the answers: not the twin's input
        name = "+".join(r.path.name for r in runs)
        calibration = any(str(r.path) in sources for r in runs) or any(
            str(r.path) in cal.notes.get("fitted_from", ()) for r in runs
        )
        why = why_generator_bound(m)
        singles = [measure(r, warmup, view) for r in runs] if len(runs) > 1 else [m]
        for metric in METRICS:
            meas, pred = m[metric], p[metric]
            each = [x[metric] for x in singles if not math.isnan(x[metric])]
            err = (pred - meas) / meas if meas and not math.isnan(meas) else float("nan")
            if calibration:
                verdict = "calibration"
            elif kind in ("generator-bound", "closed model") or math.isnan(err):
                verdict = "not judged"
            else:
                verdict = "pass" if abs(err) <= band(metric) else "fail"
            rows.append({
                "run": name, "repeats": len(runs),
                "offered_commands_per_s": m["offered_commands_per_s"],
                "sent_commands_per_s": m["sent_commands_per_s"],
                "server_cpu": m["server_cpu"], "server_idle_cpu": m["server_idle_cpu"],
                "generator_cpu": m["generator_cpu"],
                "twin_cpu": p["server_cpu"], "metric": metric, "view": view,
                "measured": meas, "predicted": pred, "rel_error": err,
                "measured_low": min(each, default=meas), "measured_high": max(each, default=meas),
                "regime": kind, "below_knee": kind == "below knee", "verdict": verdict,
                "generator_lateness_p95_s": m["generator_lateness_p95_s"],
                **{k: m[k] for k in SPLIT_KEYS},
                **{f"twin_{k}": p.get(k, math.nan) for k in SERVER_KEYS},
                "generator_bound_why": why,
                "calibration": calibration,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    table.attrs["calibration"] = cal
    table.attrs["disturbed"] = disturbed
    table.attrs["view"] = view
    return table


#: a repeat whose server CPU per command is this many times its level's reference (or
#: the reference this many times it) is set aside (:func:`undisturbed`)
DISTURBED = 1.2


def undisturbed(
    groups: Sequence[Sequence[LoadResult]], warmup: float = 2.0, view: str | None = None
) -> tuple[list[list[LoadResult]], dict[str, str]]:
    """Repeats of a level measured while the machine was in another state, set aside.

    The same load on the same server costs the same CPU per command; a repeat whose server
    CPU per command is over ``DISTURBED`` times the level's reference ran on a slowed
    machine (another process, a noisy neighbour, a lower clock), and its latencies say more
    about that than about the server. With three repeats or more the reference is the
    level's median and a repeat ``DISTURBED`` times *under* it is set aside too: it ran on a
    machine still warm from heavier work, or faster than it stays (measured here: the first
    round of light levels, right after the knee ramp, cost 0.80 ms per command where the
    next two rounds cost 1.10 and 1.01, and a twin calibrated on that one repeat put the
    capacity 35% too high, 4% with the median's). With two, which is off cannot be told
    from them: the reference is the least, and only the costlier is set aside. Returns the
    levels without such repeats, and why each set aside run was (run name -> reason). A
    level keeps at least one run (its median, or its least).
    """
    kept: list[list[LoadResult]] = []
    disturbed: dict[str, str] = {}
    for runs in groups:
        cost = []
        for r in runs:
            m = measure(r, warmup, view)
            tp = m["throughput_per_s"]
            cost.append(m["server_cpu"] / tp if tp > 0 else math.nan)
        known = [c for c in cost if not math.isnan(c)]
        if len(known) < 2:
            kept.append(list(runs))
            continue
        ref, name = (
            (statistics.median(known), "median") if len(known) >= 3 else (min(known), "least")
        )
        keep = []
        for r, c in zip(runs, cost, strict=True):
            if not math.isnan(c) and (c > DISTURBED * ref or c * DISTURBED < ref):
                way, state = (
                    ("above", "the machine was slowed during that run")
                    if c > ref
                    else ("below", "the machine ran faster than during the level's other runs")
                )
                disturbed[r.path.name] = (
                    f"server CPU per command {c * 1e3:.3f} ms, {abs(c / ref - 1):.0%} {way} "
                    f"the level's {name} ({ref * 1e3:.3f} ms): {state}"
                )
            else:
                keep.append(r)
        kept.append(keep)
    return kept, disturbed


def _level(m: dict[str, float]) -> float:
    """A run's load level: the intended command rate (open model), else what was sent."""
    aimed = m["offered_commands_per_s"]
    return aimed if not math.isnan(aimed) else m["sent_commands_per_s"]
