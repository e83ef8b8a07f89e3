"""Service-time and repair-time distributions for the simulation, drawn one at a time.

A :class:`Dist` is plain data (what a scenario file says); :meth:`Dist.sampler` turns it into
a zero-argument function drawing from a seeded ``random.Random``. Lognormal and gamma are
given by their mean and coefficient of variation ``cv`` (standard deviation / mean), which
is how measurements are usually reported.

>>> import random
>>> d = Dist("deterministic", 0.25)
>>> d.sampler(random.Random(1))()
0.25
>>> round(Dist("lognormal", 2.0, cv=0.5).scv, 3)
0.25
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from cqrs_lab.errors import ConfigError

__all__ = [
    "DIST_KINDS",
    "MAX_CV",
    "Dist",
    "Sampler",
]

#: the widest spread a lognormal or gamma may have (a cv of 100: one sample in ten thousand
#: is some 400 times the mean); beyond it the parameters overflow a float
MAX_CV = 100.0

Sampler = Callable[[], float]
DIST_KINDS = ("exponential", "deterministic", "lognormal", "gamma", "empirical")


@dataclass(frozen=True, slots=True)
class Dist:
    """A non-negative time distribution: ``kind``, its ``mean`` (seconds) and shape.

    ``cv`` is used by lognormal and gamma; ``samples`` by empirical (drawn uniformly with
    replacement, e.g. measured service times from a load test).

    >>> Dist("exponential", 0.01).scv
    1.0
    """

    kind: str
    mean: float
    cv: float = 1.0
    samples: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in DIST_KINDS:
            raise ConfigError(f"dist={self.kind!r}: choose one of {', '.join(DIST_KINDS)}")
        if not (math.isfinite(self.mean) and self.mean >= 0):
            raise ConfigError(f"mean={self.mean!r}: a time in seconds >= 0")
        if not (math.isfinite(self.cv) and 0 <= self.cv <= MAX_CV):
            raise ConfigError(f"cv={self.cv!r}: a coefficient of variation from 0 to {MAX_CV:g}")
        if self.kind == "empirical" and not self.samples:
            raise ConfigError(
                "an empirical distribution needs samples = [seconds, ...] (or, in a scenario "
                'file, file = "times.csv")'
            )
        if any(not (math.isfinite(s) and s >= 0) for s in self.samples):
            raise ConfigError("empirical samples must be finite times >= 0")

    @classmethod
    def fixed(cls, seconds: float) -> Dist:
        """A deterministic time (also what a bare number in a scenario means)."""
        return cls("deterministic", float(seconds))

    @classmethod
    def empirical(cls, samples: list[float] | tuple[float, ...]) -> Dist:
        """Draw from measured ``samples`` (seconds) uniformly with replacement."""
        values = tuple(float(s) for s in samples)
        mean = math.fsum(values) / len(values) if values else 0.0
        return cls("empirical", mean, 0.0, values)

    @property
    def scv(self) -> float:
        """Squared coefficient of variation (variance / mean**2)."""
        if self.kind == "exponential":
            return 1.0
        if self.kind == "deterministic":
            return 0.0
        if self.kind == "empirical":
            if self.mean == 0:
                return 0.0
            var = math.fsum((s - self.mean) ** 2 for s in self.samples) / len(self.samples)
            return var / self.mean**2
        return self.cv**2

    def sampler(self, rng: random.Random) -> Sampler:
        """A function drawing one time per call from ``rng``."""
        mean = self.mean
        if self.kind == "deterministic" or mean == 0:
            return lambda: mean
        if self.kind == "exponential":
            rate = 1.0 / mean
            expo = rng.expovariate
            return lambda: expo(rate)
        if self.kind == "empirical":
            samples = self.samples
            n = len(samples)
            rnd = rng.random
            return lambda: samples[int(rnd() * n)]
        if self.cv == 0:
            return lambda: mean
        if self.kind == "lognormal":
            sigma2 = math.log1p(self.cv**2)
            mu, sigma = math.log(mean) - sigma2 / 2, math.sqrt(sigma2)
            logn = rng.lognormvariate
            return lambda: logn(mu, sigma)
        shape = 1.0 / self.cv**2  # gamma
        scale = mean / shape
        gamma = rng.gammavariate
        return lambda: gamma(shape, scale)

    def describe(self) -> str:
        """Short text, e.g. ``exponential(mean=0.002)``."""
        if self.kind in ("lognormal", "gamma"):
            return f"{self.kind}(mean={self.mean:g}, cv={self.cv:g})"
        if self.kind == "empirical":
            return f"empirical({len(self.samples)} samples, mean={self.mean:g})"
        return f"{self.kind}(mean={self.mean:g})"
