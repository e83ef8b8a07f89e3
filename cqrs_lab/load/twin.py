"""The twin's calibration: fit the simulation from light load tests and write a scenario file.

The served deployment is one process and one event loop: HTTP parsing, reads, projections
and commands share one core under the GIL. :func:`calibrate` reads one run (best: a light
open-model run, well below saturation) and fits:

- the command server: ``handlers = 1`` with an empirical service time whose *shape* is the
  server-side time of the command requests and whose *mean* is the server's CPU seconds per
  answered command (all its work folded in; the server's idle CPU, measured for a second
  before the load, is taken off), so the simulated utilisation follows the measured CPU
  utilisation and the knee falls where the CPU runs out;
- projection per event: step seconds / events, per view of the domain that the instrumented
  server timed; a view it did not time (a saga that no command of the run woke) costs the
  mean of the timed ones;
- the mix: the command kinds sent (request names mapped back to the workload's kinds), with
  the keys and workload parameters the run used, all under the domain the run served
  (:attr:`~cqrs_lab.load.results.LoadResult.domain`);
- the unloaded latency: the client-side command latencies of the calibration run, and the
  unloaded append-to-apply lag of the compared view (by default the domain's primary view,
  :func:`~cqrs_lab.load.calibration_inputs.primary_view`: the bank's ``balances``, the inventory's
  ``stock``). The simulation predicts what *load* adds
  (time waiting for the server or the consumer); a prediction is that simulated wait added
  to a draw from the unloaded distribution (see :mod:`cqrs_lab.load.compare`). Locust,
  gevent and the loopback are measured, not simulated.

Neither the CPU per command nor the unloaded latency is a constant of the server: both fall
as the load grows (commits batched; an event loop that is already running when a request
arrives instead of waking from sleep; warm caches). :func:`calibrate_levels` therefore
calibrates from the lightest level and fits, over two or more light levels, how busy CPU,
unloaded latency and unloaded lag scale with the command rate (power laws); the twin's
service time and unloaded draws at any other rate follow those curves.

>>> cal = Calibration(command_samples=(0.001, 0.002), base_latency_s=(0.001, 0.002),
...                   base_lag_s=(0.0002,), per_event={"balances": 1e-5}, mix={"deposit": 1.0},
...                   keys=10)
>>> cal.scenario(rate=50.0, duration=2.0).commands.handlers
1
>>> round(cal.capacity)
667
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.core import Domain, Workload, load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.calibration import Calibration, pool
from cqrs_lab.load.calibration_inputs import (
    cpu_utilisation,
    domain_workload,
    lags,
    primary_view,
    quantiles,
    window,
)
from cqrs_lab.load.measure import check_calibration
from cqrs_lab.load.prediction import fit_unloaded
from cqrs_lab.load.results import LoadResult, commands
from cqrs_lab.load.traffic import parse_params

__all__ = [
    "Calibration",
    "calibrate",
    "calibrate_levels",
    "cpu_utilisation",
    "kind_names",
    "lags",
    "per_event_costs",
    "pool",
    "primary_view",
    "run_keys",
    "run_params",
    "window",
]

#: server-side request stages of commands: the generic route, and the bank's resource routes
#: that runs recorded before the generic route existed sent commands to
COMMAND_ROUTES = r"POST /(commands/|accounts/\{account_id\}/|transfers )"


def kind_names(workload: Workload) -> dict[str, str]:
    """Names a command request may carry -> the workload's kind name: the kind's own name
    (what the Locust users record), its command class's name and the generic route
    (``POST /commands/{CommandClass}``).

    >>> from cqrs_lab.domains.inventory import domain
    >>> names = kind_names(domain.workload)
    >>> names["reserve"], names["Reserve"], names["POST /commands/Reserve"]
    ('reserve', 'reserve', 'reserve')
    """
    out: dict[str, str] = {}
    for k in workload.kinds:
        cls = k.command.__name__
        for alias in (k.name, cls, f"/commands/{cls}", f"POST /commands/{cls}"):
            out.setdefault(alias, k.name)
    return out


def run_keys(result: LoadResult, workload: Workload) -> int:
    """The number of keys the run loaded: recorded by the runner, else its options (older
    folders: ``keys`` or ``accounts``), else the workload's default population."""
    opts = result.run.get("options") or {}
    for value in (result.run.get("keys"), opts.get("keys"), opts.get(workload.population),
                  opts.get("accounts")):  # fmt: skip
        if value is not None:
            return int(value)
    return workload.default_population


def run_params(result: LoadResult, workload: Workload) -> dict[str, Any]:
    """The workload parameters the run used (recorded, or its ``--params``), over the
    workload's defaults; a name the workload does not declare raises ConfigError."""
    given = result.run.get("params")
    if not isinstance(given, dict):
        given = parse_params(str((result.run.get("options") or {}).get("params") or ""))
    try:
        return workload.resolve(given)
    except ConfigError as exc:
        raise ConfigError(f"{result.path}: run.json params: {exc}") from None


def per_event_costs(stages: pd.DataFrame, domain: Domain) -> dict[str, float]:
    """Seconds per event of every view of ``domain``: its ``projection`` stage samples'
    seconds over their events; a view without samples gets the mean of the measured ones."""
    timed = stages[stages["stage"] == "projection"]
    measured: dict[str, float] = {}
    for name in domain.view_names:
        g = timed[timed["name"] == name]
        events = float(g["events"].sum())
        if events > 0:
            measured[name] = float(g["seconds"].sum()) / events
    if not measured:
        raise ConfigError(
            f"server/stages.csv: no projection timings for any view of domain "
            f"{domain.name!r} ({', '.join(domain.view_names)}); calibrate from a run whose "
            "server `cqrs-lab loadtest` started with the domain it loaded"
        )
    mean = float(np.mean(list(measured.values())))
    return {name: measured.get(name, mean) for name in domain.view_names}


def _mix(names: pd.Series, workload: Workload, where: Any) -> tuple[dict[str, float], list[str]]:
    """The measured mix over the workload's kinds, and the request names that are no kind."""
    known = kind_names(workload)
    kinds = names.map(known)
    counts = kinds.dropna().value_counts()
    if not len(counts):
        raise ConfigError(
            f"{where}: no command request names one of the workload's kinds "
            f"({', '.join(k.name for k in workload.kinds)}); found {sorted(set(names))}"
        )
    total = float(counts.sum())
    mix = {str(k): float(n) / total for k, n in counts.items() if n}
    return mix, sorted(str(n) for n in set(names[kinds.isna()]))


def calibrate(
    result: LoadResult,
    warmup: float = 2.0,
    max_samples: int = 2000,
    view: str | None = None,
    force: bool = False,
) -> Calibration:
    """Fit the twin from one run (see the module docstring); ``view``: the view whose lag
    is compared (default: the primary view of the domain the run served). A run that was
    generator-bound raises :class:`ConfigError` saying why, unless ``force``
    (:func:`~cqrs_lab.load.measure.check_calibration`, as ``cqrs-lab twin`` does)."""
    domain = load_domain(result.domain)
    workload = domain_workload(domain)
    view = view or primary_view(domain)
    domain.view(view)  # an unknown name fails here, naming the declared ones
    st = result.stages
    if not len(st):
        raise ConfigError(
            f"{result.path}: no server/stages.csv; calibrate from a run whose "
            "server `cqrs-lab loadtest` started (not --host)"
        )
    lo, hi = window(result, warmup)
    check_calibration(result, warmup, view, force)
    r = result.requests
    r = r[(r["t"] >= lo) & (r["t"] < hi)]
    cmd = commands(r)
    ok = cmd[cmd["ok"]]
    util = cpu_utilisation(result, lo, hi)
    if math.isnan(util) or not len(ok):
        raise ConfigError(f"{result.path}: needs the server's CPU (cpu.csv) and answered commands")
    at = st["at"].to_numpy(dtype=float) - result.t0
    command_route = st["name"].str.match(COMMAND_ROUTES)
    req = st[(st["stage"] == "request") & command_route & (at >= lo) & (at < hi)]
    shape = req["seconds"].to_numpy(dtype=float)
    lag = lags(result, lo, hi, view)
    if not len(shape) or not len(lag):
        raise ConfigError(
            f"{result.path}: no server-side command timings or lags of view {view!r} "
            "in its steady window"
        )
    idle = float(result.run.get("server_idle_cpu") or 0.0)
    mean = max(util - idle, 0.0) * (hi - lo) / len(ok) or util * (hi - lo) / len(ok)
    qs = np.asarray(quantiles(shape, max_samples))
    samples = tuple(float(x) for x in qs * (mean / float(qs.mean())))
    mix, unmapped = _mix(cmd["name"], workload, result.path)
    opts = result.run.get("options") or {}
    return Calibration(
        samples,
        quantiles(ok["latency_s"].to_numpy(dtype=float), max_samples),
        quantiles(lag, max_samples),
        per_event_costs(st, domain),
        mix,
        run_keys(result, workload),
        float(opts.get("zipf_s", 1.1)),
        source=str(result.path),
        notes={
            **({"unmapped_commands": unmapped} if unmapped else {}),
            "cpu_per_command_s": mean,
            "cpu_utilisation": util,
            "busy_cpu": mean * len(ok) / (hi - lo),
            "command_rate": len(ok) / (hi - lo),
            # one request's share of the busy CPU: the size of a turn of the event loop
            "cpu_per_request_s": mean * len(ok) / max(len(r), 1),
            "server_request_p50_s": float(np.median(shape)),
        },
        anchor_rate=len(ok) / (hi - lo),
        request_cpu=mean * len(ok) / max(len(r), 1),
        domain=result.domain,
        params=run_params(result, workload),
        view=view,
    )


def calibrate_levels(
    levels: Sequence[Sequence[LoadResult]],
    warmup: float = 2.0,
    max_samples: int = 2000,
    seed: int = 1,
    view: str | None = None,
    force: bool = False,
) -> Calibration:
    """Calibrate from the first level (its repeats pooled) and fit the curves over the rest.
    A generator-bound level (its repeats pooled) raises :class:`ConfigError` unless
    ``force`` (:func:`~cqrs_lab.load.measure.check_calibration`).

    - How the server's busy CPU grows with the command rate, over all the given levels (a
      power law, least squares in log-log; the exponent kept in [0.3, 1.5]).
    - How the unloaded latency and lag scale with the rate, from the second level's medians
      net of the waits the twin simulates there (:func:`~cqrs_lab.load.compare.fit_unloaded`).

    With one level the CPU per command and the unloaded figures are constant. The levels
    should be light ones (below the knee): the curves are extrapolated to the others.
    """
    if not levels or not all(levels):
        raise ConfigError("calibrate_levels: give at least one level with at least one run")
    for runs in levels:
        check_calibration(runs, warmup, view, force)
    pooled = [
        pool([calibrate(r, warmup, max_samples, view, force=True) for r in runs], max_samples)
        for runs in levels
    ]
    base = pooled[0]
    points = [(c.notes["command_rate"], c.notes["busy_cpu"]) for c in pooled]
    notes = {
        **base.notes,
        "levels": points,
        "fitted_from": [str(r.path) for runs in levels for r in runs],
    }
    # the lightest level's samples (pooled) stay the anchor of the curves
    cal = replace(base, cpu_exponent=_power(points, 1.0, (0.3, 1.5)), notes=notes)
    if len(pooled) < 2:
        return cal
    second = pooled[1]
    return fit_unloaded(
        cal,
        second.anchor_rate,
        float(np.median(second.base_latency_s)),
        float(np.median(second.base_lag_s)),
        seed=seed,
    )


def _power(
    points: Sequence[tuple[float, float]], default: float, bounds: tuple[float, float]
) -> float:
    """The exponent k of ``y ~ x ** k`` through ``(x, y)`` points by least squares in log-log
    (kept within ``bounds``); ``default`` unless two distinct positive x have positive y."""
    pairs = [(x, y) for x, y in points if x > 0 and y > 0]
    if len({round(x, 6) for x, _ in pairs}) < 2:
        return default
    slope = np.polyfit(np.log([x for x, _ in pairs]), np.log([y for _, y in pairs]), 1)[0]
    return float(np.clip(slope, *bounds))
