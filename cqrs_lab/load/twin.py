"""The twin's calibration: fit the simulation from light load tests and write a scenario file.

The served deployment is one process and one event loop: HTTP parsing, reads, projections
and commands share one core under the GIL. :func:`calibrate` reads one run (best: a light
open-model run, well below saturation) and fits:

- the command server: ``handlers = 1`` with an empirical service time whose *shape* is the
  server-side time of the command requests and whose *mean* is the server's CPU seconds per
  answered command (all its work folded in; the server's idle CPU, measured for a second
  before the load, is taken off), so the simulated utilisation follows the measured CPU
  utilisation and the knee falls where the CPU runs out;
- projection per event: step seconds / events, per projection (the instrumented server);
- the unloaded latency: the client-side command latencies of the calibration run, and the
  unloaded append-to-apply lag of ``balances``. The simulation predicts what *load* adds
  (time waiting for the server or the consumer); a prediction is that simulated wait added
  to a draw from the unloaded distribution (see :mod:`cqrs_lab.load.compare`). Locust,
  gevent and the loopback are measured, not simulated.

Neither the CPU per command nor the unloaded latency is a constant of the server: both fall
as the load grows (commits batched; an event loop that is already running when a request
arrives instead of waking from sleep; warm caches). :func:`calibrate_levels` therefore
calibrates from the lightest level and fits, over two or more light levels, how busy CPU,
unloaded latency and unloaded lag scale with the command rate (power laws); the twin's
service time and unloaded draws at any other rate follow those curves.

>>> cal = Calibration(command_samples=(0.001, 0.002), base_latency_ms=(1.0, 2.0),
...                   base_lag_ms=(0.2,), per_event={"balances": 1e-5}, mix={"deposit": 1.0},
...                   accounts=10)
>>> cal.scenario(rate=50.0, duration=2.0).commands.handlers
1
>>> round(cal.capacity)
667
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.results import COMMANDS, LoadResult
from cqrs_lab.sim import Scenario, load_scenario
from cqrs_lab.sim.scenario_load import parse_scenario

__all__ = [
    "Calibration",
    "calibrate",
    "calibrate_levels",
    "cpu_utilisation",
    "lags",
    "pool",
    "window",
]


@dataclass(frozen=True)
class Calibration:
    """Fitted parameters of the twin (seconds unless named ``_ms``)."""

    command_samples: tuple[float, ...]
    base_latency_ms: tuple[float, ...]
    base_lag_ms: tuple[float, ...]
    per_event: dict[str, float]
    mix: dict[str, float]
    accounts: int = 200
    zipf_s: float = 1.1
    queue_limit: int = 1024
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    #: how the server's busy CPU grows with the command rate (``busy ~ rate ** cpu_exponent``;
    #: 1: a constant CPU per command) and how the unloaded latency and lag change with it
    #: (``~ rate ** latency_exponent``, ``lag_exponent``; 0: not at all), fitted over the
    #: calibration levels; ``anchor_rate`` is the command rate of the first level, where
    #: the samples above were measured
    cpu_exponent: float = 1.0
    #: the server's CPU seconds per request of any kind at ``anchor_rate`` (0: unknown)
    request_cpu: float = 0.0
    latency_exponent: float = 0.0
    lag_exponent: float = 0.0
    anchor_rate: float = 0.0

    def __post_init__(self) -> None:
        if not self.command_samples or min(self.command_samples) < 0:
            raise ConfigError("command_samples: measured service times in seconds (>= 0)")
        if not self.base_latency_ms or not self.base_lag_ms:
            raise ConfigError("base_latency_ms, base_lag_ms: unloaded measurements (ms)")
        if not self.per_event:
            raise ConfigError("per_event: give at least one projection's cost per event")

    @property
    def command_mean(self) -> float:
        return float(np.mean(self.command_samples))

    def service_mean(self, rate: float) -> float:
        """The server's CPU seconds per command at ``rate`` commands/s (the fitted curve).

        The served engine's CPU per command falls as the load grows (commits batched,
        event-loop work shared by more requests per turn): ``busy(rate) / rate`` with busy
        CPU a power of the rate through the calibration levels.
        """
        if self.cpu_exponent == 1.0 or self.anchor_rate <= 0 or rate <= 0:
            return self.command_mean
        return float(self.command_mean * (rate / self.anchor_rate) ** (self.cpu_exponent - 1.0))

    def unloaded_scale(self, rate: float, lag: bool = False) -> float:
        """Factor on the unloaded latency (or lag) at ``rate``: an idle server and client
        wake up for each request, a busy one is already running (caches warm, no sleep in
        the event loop), so the part of latency that is not queueing shrinks with load."""
        k = self.lag_exponent if lag else self.latency_exponent
        if k == 0.0 or self.anchor_rate <= 0 or rate <= 0:
            return 1.0
        return float((rate / self.anchor_rate) ** k)

    @property
    def capacity(self) -> float:
        """Commands per second at which the one folded server's CPU is used up."""
        mean = self.command_mean
        if mean <= 0:
            return math.inf
        if self.cpu_exponent == 1.0 or self.anchor_rate <= 0:
            return 1.0 / mean
        # busy(rate) = mean * anchor_rate * (rate / anchor_rate) ** k = 1
        return float(self.anchor_rate * (mean * self.anchor_rate) ** (-1.0 / self.cpu_exponent))

    def toml(self, rate: float, duration: float, seed: int = 1) -> str:
        """A scenario file for load ``rate`` (commands/s) over ``duration`` seconds."""
        mix = "\n".join(f"{k} = {v!r}" for k, v in sorted(self.mix.items()) if v > 0)
        scale = self.service_mean(rate) / self.command_mean if self.command_mean > 0 else 1.0
        samples = ", ".join(f"{s * scale:.7g}" for s in self.command_samples)
        projections = []
        for name in sorted(self.per_event):
            projections.append(
                f'[projections.{name}]\ndelivery = "effectively-once"\npartitions = 1\n'
                f"consumers = 1\nbatch_size = 256\nper_event = {self.per_event[name]:.7g}\n"
                f"per_batch = 0.0\n"
            )
        return (
            f"# Calibrated by cqrs-lab twin from {self.source or 'a load test'}.\n"
            f"# Command service: mean {self.service_mean(rate) * 1e3:.4f} ms at {rate:g}"
            f" commands/s (server CPU per command, all work folded;\n"
            f"# busy CPU ~ rate ** {self.cpu_exponent:.3f} through the calibration levels);\n"
            f"# unloaded command latency p50 {np.median(self.base_latency_ms):.3f} ms"
            f" (added to the simulated wait).\n\n"
            f'[scenario]\nname = "twin"\nduration = {float(duration)!r}\nseed = {seed}\n'
            f"bucket = {min(1.0, float(duration))!r}\n\n"
            f"[workload]\naccounts = {self.accounts}\nopening_balance = 10000\n"
            f'max_amount = 100\nkeys = "zipf"\nzipf_s = {self.zipf_s!r}\n\n'
            f'[workload.arrivals]\nprocess = "poisson"\nrate = {float(rate)!r}\n\n'
            f"[workload.mix]\n{mix}\n\n"
            f"[commands]\nhandlers = 1\nqueue_limit = {self.queue_limit}\n"
            f'admission = "reject"\nservice = {{ dist = "empirical", samples = [{samples}] }}\n\n'
            + "\n".join(projections)
        )

    def scenario(self, rate: float, duration: float, seed: int = 1) -> Scenario:
        return parse_scenario(self.toml(rate, duration, seed), source="<twin>")

    def write(self, path: str | Path, rate: float, duration: float) -> Path:
        """Write the scenario file (it loads back with :func:`cqrs_lab.sim.load_scenario`)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.toml(rate, duration), encoding="utf-8")
        load_scenario(p)
        return p


def window(result: LoadResult, warmup: float, cooldown: float = 1.0) -> tuple[float, float]:
    """The steady part of a run: seconds after the first request, minus warm-up/cool-down."""
    r = result.requests
    end = float(r["t"].max()) if len(r) else 0.0
    lo, hi = warmup, max(warmup, end - cooldown)
    if hi - lo < 1.0:
        raise ConfigError(f"{result.path}: less than 1 s of load after a {warmup:g} s warm-up")
    return lo, hi


def lags(result: LoadResult, lo: float, hi: float, projection: str) -> np.ndarray:
    """Append-to-apply lags (seconds) of ``projection`` applied between ``lo`` and ``hi``."""
    st = result.stages
    if not len(st):
        return np.array([])
    lag = st[(st["stage"] == "lag") & (st["name"] == projection)]
    at = lag["at"].to_numpy(dtype=float) - result.t0
    return np.asarray(lag["seconds"].to_numpy(dtype=float)[(at >= lo) & (at < hi)])


def cpu_utilisation(result: LoadResult, lo: float, hi: float) -> float:
    """The server's CPU seconds per second between ``lo`` and ``hi`` (``cpu.csv``)."""
    path = result.path / "cpu.csv"
    if not path.exists():
        return float("nan")
    cpu = pd.read_csv(path).dropna()
    t = cpu["t"].to_numpy(dtype=float) - result.t0
    c = cpu["server_cpu_s"].to_numpy(dtype=float)
    inside = (t >= lo) & (t <= hi)
    if inside.sum() < 2:
        return float("nan")
    tt, cc = t[inside], c[inside]
    return float((cc[-1] - cc[0]) / (tt[-1] - tt[0]))


def _quantiles(values: np.ndarray, n: int) -> tuple[float, ...]:
    """``n`` evenly spaced quantiles (measured values, not interpolated): a compact
    empirical distribution."""
    probs = (np.arange(n) + 0.5) / n
    return tuple(float(x) for x in np.quantile(values, probs, method="inverted_cdf"))


def calibrate(result: LoadResult, warmup: float = 2.0, max_samples: int = 2000) -> Calibration:
    """Fit the twin from one run (see the module docstring)."""
    st = result.stages
    if not len(st):
        raise ConfigError(
            f"{result.path}: no server/stages.csv; calibrate from a run whose "
            "server `cqrs-lab loadtest` started (not --host)"
        )
    lo, hi = window(result, warmup)
    r = result.requests
    r = r[(r["t"] >= lo) & (r["t"] < hi)]
    cmd = r[r["name"].isin(COMMANDS)]
    ok = cmd[cmd["ok"]]
    util = cpu_utilisation(result, lo, hi)
    if math.isnan(util) or not len(ok):
        raise ConfigError(f"{result.path}: needs the server's CPU (cpu.csv) and answered commands")
    at = st["at"].to_numpy(dtype=float) - result.t0
    command_route = st["name"].str.match(r"POST /(accounts/\{account_id\}/|transfers )")
    req = st[(st["stage"] == "request") & command_route & (at >= lo) & (at < hi)]
    shape = req["seconds"].to_numpy(dtype=float)
    lag = lags(result, lo, hi, "balances")
    if not len(shape) or not len(lag):
        raise ConfigError(f"{result.path}: no server-side command timings or balances lags")
    idle = float(result.run.get("server_idle_cpu") or 0.0)
    mean = max(util - idle, 0.0) * (hi - lo) / len(ok) or util * (hi - lo) / len(ok)
    qs = np.asarray(_quantiles(shape, max_samples))
    samples = tuple(float(x) for x in qs * (mean / float(qs.mean())))
    per_event = {}
    for name, g in st[st["stage"] == "projection"].groupby("name"):
        events = float(g["events"].sum())
        per_event[str(name)] = float(g["seconds"].sum()) / events if events else 0.0
    counts = cmd["name"].value_counts()
    mix = {k: float(counts.get(k, 0)) / len(cmd) for k in COMMANDS if counts.get(k, 0)}
    if "transfer" in mix and "transfer-saga" not in per_event:
        per_event["transfer-saga"] = per_event.get("balances", 0.0)
    opts = result.run.get("options", {})
    return Calibration(
        samples,
        _quantiles(ok["latency_ms"].to_numpy(dtype=float), max_samples),
        _quantiles(lag * 1e3, max_samples),
        per_event,
        mix,
        int(opts.get("accounts", 200)),
        float(opts.get("zipf_s", 1.1)),
        source=str(result.path),
        notes={
            "cpu_per_command_ms": mean * 1e3,
            "cpu_utilisation": util,
            "busy_cpu": mean * len(ok) / (hi - lo),
            "command_rate": len(ok) / (hi - lo),
            # one request's share of the busy CPU: the size of a turn of the event loop
            "cpu_per_request_ms": mean * len(ok) / max(len(r), 1) * 1e3,
            "server_request_p50_ms": float(np.median(shape)) * 1e3,
        },
        anchor_rate=len(ok) / (hi - lo),
        request_cpu=mean * len(ok) / max(len(r), 1),
    )


def calibrate_levels(
    levels: Sequence[Sequence[LoadResult]],
    warmup: float = 2.0,
    max_samples: int = 2000,
    seed: int = 1,
) -> Calibration:
    """Calibrate from the first level (its repeats pooled) and fit the curves over the rest.

    - How the server's busy CPU grows with the command rate, over all the given levels (a
      power law, least squares in log-log; the exponent kept in [0.3, 1.5]).
    - How the unloaded latency and lag scale with the rate, from the second level's medians
      net of the waits the twin simulates there (:func:`~cqrs_lab.load.compare.fit_unloaded`).

    With one level the CPU per command and the unloaded figures are constant. The levels
    should be light ones (below the knee): the curves are extrapolated to the others.
    """
    from cqrs_lab.load.compare import fit_unloaded  # compare builds on this module

    if not levels or not all(levels):
        raise ConfigError("calibrate_levels: give at least one level with at least one run")
    pooled = [
        pool([calibrate(r, warmup, max_samples) for r in runs], max_samples) for runs in levels
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
        float(np.median(second.base_latency_ms)),
        float(np.median(second.base_lag_ms)),
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


def pool(cals: Sequence[Calibration], max_samples: int = 2000) -> Calibration:
    """One calibration from several runs at the same light load (repeats): samples pooled,
    per-event costs and the mix averaged. Pooling repeats averages out the noise of any one
    run (a machine shared with other work makes single runs' tails differ a lot).

    >>> a = Calibration((0.001,), (1.0,), (0.2,), {"balances": 1e-5}, {"deposit": 1.0})
    >>> b = Calibration((0.003,), (3.0,), (0.4,), {"balances": 3e-5}, {"deposit": 1.0})
    >>> p = pool([a, b], max_samples=2)
    >>> p.command_samples, p.base_latency_ms, p.per_event
    ((0.001, 0.003), (1.0, 3.0), {'balances': 2e-05})
    """
    if not cals:
        raise ConfigError("pool: give at least one calibration")
    if len(cals) == 1:
        return cals[0]

    def merged(field: str) -> tuple[float, ...]:
        values = np.concatenate([np.asarray(getattr(c, field), dtype=float) for c in cals])
        return _quantiles(values, min(max_samples, len(values)))

    def mean_note(key: str) -> float:
        return float(np.mean([c.notes.get(key, math.nan) for c in cals]))

    names = sorted(set().union(*(c.per_event for c in cals)))
    kinds = sorted(set().union(*(c.mix for c in cals)))
    first = cals[0]
    return Calibration(
        merged("command_samples"),
        merged("base_latency_ms"),
        merged("base_lag_ms"),
        {n: float(np.mean([c.per_event.get(n, 0.0) for c in cals])) for n in names},
        {k: float(np.mean([c.mix.get(k, 0.0) for c in cals])) for k in kinds},
        first.accounts,
        first.zipf_s,
        first.queue_limit,
        source=", ".join(c.source for c in cals),
        notes={
            "pooled": len(cals),
            "busy_cpu": mean_note("busy_cpu"),
            "command_rate": mean_note("command_rate"),
            "cpu_per_request_ms": mean_note("cpu_per_request_ms"),
        },
        anchor_rate=float(np.mean([c.anchor_rate for c in cals])),
        request_cpu=float(np.mean([c.request_cpu for c in cals])),
    )
