"""What the twin reads to fit a :class:`~cqrs_lab.load.calibration.Calibration`: from the
domain, its workload (:func:`domain_workload`) and the view whose lag is compared by default
(:func:`primary_view`); from a run, its steady window, the server's append-to-apply lags and
CPU utilisation, and compact empirical distributions of what was measured
(:func:`quantiles`). The head of a twin scenario (:func:`scenario_head`: the domain served,
its population, parameters and mix) is written from the same domain.

>>> quantiles(np.array([4.0, 1.0, 3.0, 2.0]), 2)
(1.0, 3.0)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from cqrs_lab.core import Domain, Workload, load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.results import LoadResult
from cqrs_lab.load.summary import cpu_rate

__all__ = [
    "cpu_utilisation",
    "domain_workload",
    "lags",
    "primary_view",
    "quantiles",
    "scenario_head",
    "window",
]


def domain_workload(domain: Domain) -> Workload:
    """The domain's workload; the twin needs its command kinds (ConfigError without one)."""
    if domain.workload is None:
        raise ConfigError(
            f"domain {domain.name!r} declares no workload; the twin needs its command kinds "
            "and key population (Domain(workload=Workload(...)))"
        )
    return domain.workload


def primary_view(domain: Domain) -> str:
    """The view whose lag the twin compares by default: the first view the workload reads,
    else the domain's first view.

    >>> from cqrs_lab.domains import bank, inventory
    >>> primary_view(bank.domain), primary_view(inventory.domain)
    ('balances', 'stock')
    """
    w = domain.workload
    if w is not None and w.reads:
        return w.reads[0].view
    if not domain.views:
        raise ConfigError(f"domain {domain.name!r} declares no views: no lag to compare")
    return domain.views[0].name


def scenario_head(
    domain: str,
    params: dict[str, Any],
    keys: int,
    zipf_s: float,
    mix: dict[str, float],
    rate: float,
    duration: float,
    seed: int,
) -> str:
    """A twin scenario's ``[scenario]``, ``[workload]``, ``[workload.arrivals]`` (Poisson at
    ``rate`` commands/s) and ``[workload.mix]`` tables, for the domain the run served."""
    workload = domain_workload(load_domain(domain))
    values = "".join(f"{k} = {v!r}\n" for k, v in workload.resolve(params).items())
    kinds = "\n".join(f"{k} = {v!r}" for k, v in sorted(mix.items()) if v > 0)
    return (
        f'[scenario]\nname = "twin"\ndomain = {json.dumps(domain)}\n'
        f"duration = {float(duration)!r}\nseed = {seed}\n"
        f"bucket = {min(1.0, float(duration))!r}\n\n"
        f"[workload]\n{workload.population} = {keys}\n{values}"
        f'keys = "zipf"\nzipf_s = {zipf_s!r}\n\n'
        f'[workload.arrivals]\nprocess = "poisson"\nrate = {float(rate)!r}\n\n'
        f"[workload.mix]\n{kinds}\n\n"
    )


def window(result: LoadResult, warmup: float, cooldown: float = 1.0) -> tuple[float, float]:
    """The steady part of a run: seconds after the first request, minus warm-up/cool-down."""
    r = result.requests
    end = float(r["t"].max()) if len(r) else 0.0
    lo, hi = warmup, max(warmup, end - cooldown)
    if hi - lo < 1.0:
        raise ConfigError(f"{result.path}: less than 1 s of load after a {warmup:g} s warm-up")
    return lo, hi


def lags(result: LoadResult, lo: float, hi: float, view: str) -> np.ndarray:
    """Append-to-apply lags (seconds) of ``view`` applied between ``lo`` and ``hi`` (the
    server's ``lag`` stage samples, named by subscription, which is the view's name)."""
    st = result.stages
    if not len(st):
        return np.array([])
    lag = st[(st["stage"] == "lag") & (st["name"] == view)]
    at = lag["at"].to_numpy(dtype=float) - result.t0
    return np.asarray(lag["seconds"].to_numpy(dtype=float)[(at >= lo) & (at < hi)])


def cpu_utilisation(
    result: LoadResult, lo: float, hi: float, column: str = "server_cpu_s"
) -> float:
    """The server's (or, with ``column="generator_cpu_s"``, Locust's) CPU seconds per second
    between ``lo`` and ``hi`` (``cpu.csv``)."""
    return cpu_rate(result.path, result.t0, lo, hi, column)


def quantiles(values: np.ndarray, n: int) -> tuple[float, ...]:
    """``n`` evenly spaced quantiles (measured values, not interpolated): a compact
    empirical distribution."""
    probs = (np.arange(n) + 0.5) / n
    return tuple(float(x) for x in np.quantile(values, probs, method="inverted_cdf"))
