"""Student's t quantiles and confidence intervals, without scipy.

The t distribution function is computed from the regularised incomplete beta function
(continued fraction, modified Lentz), and the quantile by bisection to full float precision.

>>> round(t_quantile(0.975, 9), 4)
2.2622
>>> ci = mean_ci([1.0, 2.0, 3.0, 4.0])
>>> (ci.mean, round(ci.half_width, 4), ci.contains(2.0))
(2.5, 2.0543, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cqrs_lab.errors import ConfigError

__all__ = ["ConfidenceInterval", "batch_means_ci", "mean_ci", "t_cdf", "t_quantile"]


def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _df(df: int) -> int:
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ConfigError(f"df (degrees of freedom) must be an integer >= 1, got {df!r}")
    return df


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom.

    >>> t_cdf(0.0, 5)
    0.5
    """
    nu = float(_df(df))
    tail = 0.5 * _betainc(nu / 2.0, 0.5, nu / (nu + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

    >>> round(t_quantile(0.975, 1), 3)
    12.706
    """
    _df(df)
    if not (isinstance(p, int | float) and 0.0 < p < 1.0):
        raise ConfigError(f"p must be a probability strictly between 0 and 1, got {p!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True, slots=True)
class ConfidenceInterval:
    """A two-sided t confidence interval for a mean from ``n`` independent observations.

    >>> ConfidenceInterval(1.0, 0.5, 10, 0.95).low
    0.5
    """

    mean: float
    half_width: float
    n: int
    confidence: float

    @property
    def low(self) -> float:
        """Lower end of the interval."""
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        """Upper end of the interval."""
        return self.mean + self.half_width

    def contains(self, value: float) -> bool:
        """True when ``value`` lies inside the closed interval."""
        return self.low <= value <= self.high


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> ConfidenceInterval:
    """t interval for the mean of independent observations (replications, batch means).

    >>> mean_ci([2.0, 2.0, 2.0]).half_width
    0.0
    """
    if not (isinstance(confidence, int | float) and 0.0 < confidence < 1.0):
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    xs = [float(v) for v in values]
    n = len(xs)
    if n < 2:
        raise ConfigError(f"values must hold at least 2 observations for an interval, got {n}")
    mean = math.fsum(xs) / n
    var = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * math.sqrt(var / n)
    return ConfidenceInterval(mean, half, n, float(confidence))


def batch_means_ci(
    series: Sequence[float], batches: int = 20, confidence: float = 0.95
) -> ConfidenceInterval:
    """Batch-means interval for the mean of one long, autocorrelated run.

    The series is cut into ``batches`` equal consecutive batches (a remainder at the end is
    dropped); the batch means are treated as independent observations.

    >>> batch_means_ci([1.0, 3.0] * 10, batches=5).half_width
    0.0
    """
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 2:
        raise ConfigError(f"batches must be an integer >= 2, got {batches!r}")
    size = len(series) // batches
    if size < 1:
        raise ConfigError(
            f"series has {len(series)} values, fewer than batches={batches}; use fewer batches"
        )
    xs = [float(v) for v in series]
    means = [math.fsum(xs[i * size : (i + 1) * size]) / size for i in range(batches)]
    return mean_ci(means, confidence)
