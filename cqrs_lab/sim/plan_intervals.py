"""Intervals the planner trusts: never below zero for a non-negative quantity.

A p99 lag or latency per run is positive and right-skewed: a few runs with a crash or a
burst sit far above the rest. The symmetric t interval of the mean then reaches below
zero (``-0.147..0.569 s`` for a lag) and its upper end is inflated by the skew. The
planner works on the log scale instead: the t interval of ``mean(log x)`` mapped back
with ``exp``. It is an interval for the median of the per-run value (equal to the
geometric mean when the per-run values are lognormal, which replicated tail quantiles are
close to), it is always positive, and it is asymmetric the way the data are. A run whose
value is exactly zero (nothing waited) has no logarithm; then the interval is a
percentile bootstrap of the mean, with a seeded generator, which stays within the range of
the data and so never goes negative either. A run whose value is unbounded (more events
still waiting at its end than the quantile allows) makes the interval unbounded above,
from the smallest value.

>>> iv = positive_interval([0.01, 0.012, 0.6], 0.95)
>>> iv.method, iv.low > 0, iv.low < iv.center < iv.high
('log-t', True, True)
>>> positive_interval([0.0, 0.0, 0.3], 0.95).method
'bootstrap'
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.queueing.tdist import t_quantile

__all__ = ["PositiveInterval", "positive_interval", "weighted_quantile"]

#: bootstrap resamples (enough for a 95% percentile interval's ends to settle)
_RESAMPLES = 2000


@dataclass(frozen=True, slots=True)
class PositiveInterval:
    """A centre and an interval for a non-negative quantity, and how it was made.

    >>> PositiveInterval(0.1, 0.05, 0.2, 3, "log-t").high
    0.2
    """

    center: float
    low: float
    high: float
    n: int
    method: str  # "log-t", "bootstrap" or "unbounded"


def positive_interval(values: Sequence[float], confidence: float) -> PositiveInterval:
    """The log-scale t interval of ``values`` (all > 0), else a percentile bootstrap.

    >>> iv = positive_interval([0.2, 0.2, 0.2], 0.95)
    >>> (iv.low, iv.center, iv.high) == (0.2, 0.2, 0.2)
    True
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence={confidence!r}: a fraction between 0 and 1, e.g. 0.95")
    xs = [float(v) for v in values]
    n = len(xs)
    if n < 2:
        raise ConfigError(f"values: {n} observation(s); an interval needs at least 2")
    if any(x < 0 or math.isnan(x) for x in xs):
        raise ConfigError(f"values {xs}: a non-negative quantity cannot be negative or NaN")
    if any(math.isinf(x) for x in xs):  # a run whose quantile did not finish by its end
        return PositiveInterval(math.inf, min(xs), math.inf, n, "unbounded")
    if all(x > 0 for x in xs):
        logs = [math.log(x) for x in xs]
        m = math.fsum(logs) / n
        var = math.fsum((y - m) ** 2 for y in logs) / (n - 1)
        half = t_quantile(0.5 + confidence / 2.0, n - 1) * math.sqrt(var / n)
        return PositiveInterval(math.exp(m), math.exp(m - half), math.exp(m + half), n, "log-t")
    rng = random.Random(n)  # deterministic: the same values give the same interval
    means = sorted(math.fsum(rng.choices(xs, k=n)) / n for _ in range(_RESAMPLES))
    tail = (1 - confidence) / 2
    lo = means[int(tail * (_RESAMPLES - 1))]
    hi = means[math.ceil((1 - tail) * (_RESAMPLES - 1))]
    return PositiveInterval(math.fsum(xs) / n, lo, hi, n, "bootstrap")


def weighted_quantile(parts: Sequence[tuple[Sequence[float], float]], q: float) -> float:
    """The ``q`` quantile of a mixture: each part a sample and its weight (weights sum to 1).

    Each value of a part carries ``weight / len(sample)``; the answer is the smallest value
    whose cumulative weight reaches ``q`` (``q=1``: the largest value with weight).

    >>> weighted_quantile([([1.0, 2.0, 3.0, 4.0], 0.5), ([10.0, 20.0], 0.5)], 0.7)
    10.0
    >>> weighted_quantile([([1.0, 2.0, 3.0, 4.0], 0.9), ([10.0, 20.0], 0.1)], 0.6)
    3.0
    """
    values, weights = [], []
    for sample, weight in parts:
        arr = np.asarray(sample, dtype=float)
        if weight > 0 and len(arr):
            values.append(arr)
            weights.append(np.full(len(arr), weight / len(arr)))
    if not values:
        return math.nan
    v = np.concatenate(values)
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(np.concatenate(weights)[order])
    i = int(np.searchsorted(cum, q * cum[-1] * (1 - 1e-12), side="left"))
    return float(v[order][min(i, len(v) - 1)])
