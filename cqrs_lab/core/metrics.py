"""Plain counters and histograms that the core keeps and the drivers export.

Kept deliberately simple (no labels parsing, no locks): the engine is single-threaded and a
driver (Prometheus, the simulation's tables) reads :meth:`Metrics.snapshot`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from cqrs_lab.errors import ConfigError

__all__ = ["DEFAULT_SECONDS_BUCKETS", "Counter", "Histogram", "Metrics", "MetricsMark"]

#: log-spaced upper bounds from 10 microseconds to about 2 minutes
DEFAULT_SECONDS_BUCKETS: tuple[float, ...] = tuple(
    round(1e-5 * 10 ** (i / 4), 12) for i in range(28)
)


class Counter:
    """A monotonically increasing number."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class Histogram:
    """Counts observations into fixed buckets; keeps count, sum, min and max exactly.

    >>> h = Histogram((1.0, 2.0, 4.0))
    >>> for v in (0.5, 1.5, 3.0, 3.5): h.observe(v)
    >>> h.count, h.quantile(0.5) <= 2.0
    (4, True)
    """

    __slots__ = ("bounds", "count", "counts", "max", "min", "sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_SECONDS_BUCKETS) -> None:
        if list(bounds) != sorted(bounds) or not bounds:
            raise ConfigError("Histogram(bounds=...): pass a non-empty increasing sequence")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # last: +Inf
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile ``q`` (``max`` for the last bucket)."""
        if not 0.0 <= q <= 1.0:
            raise ConfigError(f"quantile(q={q}): pass a number between 0 and 1")
        if self.count == 0:
            return math.nan
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank and n:
                return min(self.bounds[i], self.max) if i < len(self.bounds) else self.max
        return self.max

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan


#: what :meth:`Metrics.mark` saved: each counter's value and each histogram's state
MetricsMark = tuple[dict[Counter, int], dict[Histogram, tuple[list[int], int, float, float, float]]]


class Metrics:
    """A registry of named counters and histograms, keyed by name and a label tuple.

    :meth:`mark` and :meth:`rewind` undo what work that was rolled back counted (a driver
    that runs commands again after their transaction was rolled back must not count them
    twice):

    >>> m = Metrics()
    >>> accepted = m.counter("commands_total", outcome="accepted")
    >>> accepted.inc()
    >>> saved = m.mark()
    >>> accepted.inc(); m.histogram("latency").observe(0.5)
    >>> m.rewind(saved)
    >>> accepted.value, m.histogram("latency").count
    (1, 0)
    """

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], Counter] = {}
        self.histograms: dict[tuple[str, tuple[tuple[str, str], ...]], Histogram] = {}

    def counter(self, name: str, **labels: str) -> Counter:
        key = (name, tuple(sorted(labels.items())))
        found = self.counters.get(key)
        if found is None:
            found = self.counters[key] = Counter()
        return found

    def histogram(
        self, name: str, bounds: Sequence[float] = DEFAULT_SECONDS_BUCKETS, **labels: str
    ) -> Histogram:
        key = (name, tuple(sorted(labels.items())))
        found = self.histograms.get(key)
        if found is None:
            found = self.histograms[key] = Histogram(bounds)
        return found

    def mark(self) -> MetricsMark:
        """Every counter's and histogram's state now (for :meth:`rewind`)."""
        counters = {c: c.value for c in self.counters.values()}
        histograms = {
            h: (list(h.counts), h.count, h.sum, h.min, h.max) for h in self.histograms.values()
        }
        return counters, histograms

    def rewind(self, mark: MetricsMark) -> None:
        """Put every counter and histogram back to ``mark`` (those made since, to zero)."""
        counters, histograms = mark
        for c in self.counters.values():
            c.value = counters.get(c, 0)
        for h in self.histograms.values():
            counts, h.count, h.sum, h.min, h.max = histograms.get(
                h, ([0] * len(h.counts), 0, 0.0, math.inf, -math.inf)
            )
            h.counts = list(counts)

    def snapshot(self) -> dict[str, float]:
        """Flat ``name{label=value}`` -> number view (counters; histogram count/sum/p50/p99)."""
        out: dict[str, float] = {}
        for (name, labels), c in sorted(self.counters.items()):
            out[_key(name, labels)] = c.value
        for (name, labels), h in sorted(self.histograms.items()):
            base = _key(name, labels)
            out[base + ".count"] = h.count
            out[base + ".sum"] = h.sum
            out[base + ".p50"] = h.quantile(0.5)
            out[base + ".p99"] = h.quantile(0.99)
        return out


def _key(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"
