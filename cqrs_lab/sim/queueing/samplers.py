"""Time distributions for the pure-queue simulation: vectorised draws from numpy.

A :class:`BatchSampler` draws ``size`` non-negative times at once from a
:class:`numpy.random.Generator` and knows its mean and squared coefficient of variation
(``scv``), which is what Kingman's and Allen-Cunneen's approximations need.

>>> import numpy as np
>>> Exponential(2.0).sample(np.random.default_rng(0), 3).shape
(3,)
>>> (Deterministic(0.5).mean, Deterministic(0.5).scv)
(0.5, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cqrs_lab.errors import ConfigError

__all__ = [
    "BatchSampler",
    "Deterministic",
    "Empirical",
    "Exponential",
    "Gamma",
    "Lognormal",
    "draw",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@runtime_checkable
class BatchSampler(Protocol):
    """Draws non-negative times; ``mean`` and ``scv`` describe the distribution."""

    @property
    def mean(self) -> float:
        """Mean time."""
        ...

    @property
    def scv(self) -> float:
        """Squared coefficient of variation, variance / mean**2."""
        ...

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` independent draws."""
        ...


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential times with ``rate`` (mean ``1 / rate``), e.g. Poisson arrivals.

    >>> Exponential(4.0).mean
    0.25
    """

    rate: float
    name: str = field(default="rate", compare=False)

    def __post_init__(self) -> None:
        _positive(self.name, self.rate)

    @property
    def mean(self) -> float:
        """``1 / rate``."""
        return 1.0 / self.rate

    @property
    def scv(self) -> float:
        """Always 1."""
        return 1.0

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` exponential draws."""
        return rng.exponential(1.0 / self.rate, size)


@dataclass(frozen=True, slots=True)
class Deterministic:
    """Always ``value``.

    >>> Deterministic(2.0).scv
    0.0
    """

    value: float

    def __post_init__(self) -> None:
        _positive("value", self.value)

    @property
    def mean(self) -> float:
        """The value."""
        return float(self.value)

    @property
    def scv(self) -> float:
        """Always 0."""
        return 0.0

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` copies of the value (the generator is not advanced)."""
        return np.full(size, float(self.value))


@dataclass(frozen=True, slots=True)
class Gamma:
    """Gamma times given by their ``mean`` and coefficient of variation ``cv``
    (shape ``1 / cv**2``; ``cv = 1`` is exponential).

    >>> Gamma(mean=2.0, cv=0.5).scv
    0.25
    """

    mean: float
    cv: float

    def __post_init__(self) -> None:
        _positive("mean", self.mean)
        _positive("cv", self.cv)

    @property
    def scv(self) -> float:
        """``cv ** 2``."""
        return float(self.cv) ** 2

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` gamma draws."""
        shape = 1.0 / self.scv
        return rng.gamma(shape, self.mean / shape, size)


@dataclass(frozen=True, slots=True)
class Lognormal:
    """Lognormal times given by their own ``mean`` and coefficient of variation ``cv``.

    >>> round(Lognormal(mean=1.0, cv=0.5).scv, 12)
    0.25
    """

    mean: float
    cv: float

    def __post_init__(self) -> None:
        _positive("mean", self.mean)
        _positive("cv", self.cv)

    @property
    def scv(self) -> float:
        """``cv ** 2``."""
        return float(self.cv) ** 2

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` lognormal draws."""
        sigma2 = math.log1p(self.scv)
        mu = math.log(self.mean) - sigma2 / 2.0
        return rng.lognormal(mu, math.sqrt(sigma2), size)


@dataclass(frozen=True, slots=True, init=False)
class Empirical:
    """Resamples measured times uniformly with replacement.

    >>> Empirical([1.0, 3.0]).mean
    2.0
    """

    values: tuple[float, ...]

    def __init__(self, values: Sequence[float]) -> None:
        vals = tuple(float(v) for v in values)
        if not vals:
            raise ConfigError("values must hold at least one measured time, got none")
        if not all(math.isfinite(v) and v >= 0 for v in vals):
            raise ConfigError("values must all be finite times >= 0")
        if sum(vals) <= 0:
            raise ConfigError("values must not all be 0: the mean time must be positive")
        object.__setattr__(self, "values", vals)

    @property
    def mean(self) -> float:
        """Mean of the values."""
        return math.fsum(self.values) / len(self.values)

    @property
    def scv(self) -> float:
        """Population variance over mean squared."""
        m = self.mean
        return math.fsum((v - m) ** 2 for v in self.values) / len(self.values) / (m * m)

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """``size`` draws with replacement."""
        return np.asarray(self.values, dtype=np.float64)[rng.integers(0, len(self.values), size)]


def draw(sampler: BatchSampler, rng: np.random.Generator, size: int, role: str) -> FloatArray:
    """Draw ``size`` times and check they are finite and non-negative; ``role`` names the
    parameter in the error (e.g. ``"service"``)."""
    if not isinstance(sampler, BatchSampler):
        raise ConfigError(
            f"{role} must be a BatchSampler (Exponential, Deterministic, Gamma, Lognormal, "
            f"Empirical or any object with mean, scv and sample(rng, size)), got {sampler!r}"
        )
    values = np.asarray(sampler.sample(rng, size), dtype=np.float64)
    if values.shape != (size,):
        raise ConfigError(
            f"{role} sampler returned shape {values.shape}; sample(rng, size) must return ({size},)"
        )
    if not bool(np.all(np.isfinite(values) & (values >= 0))):
        raise ConfigError(f"{role} sampler returned negative or non-finite times")
    return values
