"""Arrival times and command content: rate profiles, the command mix, hot keys.

:func:`arrival_times` yields the times of arrivals for an :class:`ArrivalSpec`, exactly:
piecewise-constant profiles (poisson, onoff, step, spike) draw exponential gaps and restart at
each change of rate (the exponential is memoryless); the diurnal profile uses thinning
(Lewis and Shedler) against its peak rate.

>>> import random
>>> from cqrs_lab.sim.scenario_parts import ArrivalSpec
>>> times = list(arrival_times(ArrivalSpec("constant", rate=2.0), random.Random(1), 2.0))
>>> times
[0.5, 1.0, 1.5]
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator

from cqrs_lab.sim.scenario_parts import ArrivalSpec, WorkloadSpec

__all__ = ["KeyChooser", "MixChooser", "arrival_times", "rate_at"]


def rate_at(spec: ArrivalSpec, t: float) -> float:
    """The profile's arrival rate at time ``t`` (commands per second)."""
    p = spec.process
    if p == "onoff":
        cycle = spec.on + spec.off
        return spec.rate if (t % cycle) < spec.on else spec.off_rate
    if p == "diurnal":
        return spec.rate * (1 + spec.amplitude * math.sin(2 * math.pi * t / spec.period))
    if p == "step":
        return spec.to_rate if t >= spec.at else spec.rate
    if p == "spike":
        return spec.to_rate if spec.at <= t < spec.at + spec.length else spec.rate
    return spec.rate


def _segment(spec: ArrivalSpec, t: float) -> tuple[float, float]:
    """(rate, end) of the constant-rate piece containing ``t``."""
    p = spec.process
    if p == "onoff":
        cycle = spec.on + spec.off
        start = t - (t % cycle)
        if t - start < spec.on:
            return spec.rate, start + spec.on
        return spec.off_rate, start + cycle
    if p == "step":
        return (spec.rate, spec.at) if t < spec.at else (spec.to_rate, math.inf)
    if p == "spike":
        if t < spec.at:
            return spec.rate, spec.at
        if t < spec.at + spec.length:
            return spec.to_rate, spec.at + spec.length
        return spec.rate, math.inf
    return spec.rate, math.inf


def arrival_times(spec: ArrivalSpec, rng: random.Random, until: float) -> Iterator[float]:
    """Arrival times in ``(0, until)``, increasing, drawn from ``rng``."""
    p = spec.process
    if p == "trace":
        for t, _ in spec.trace:
            at = t / spec.speed
            if at >= until:
                return
            yield at
        return
    if p == "constant":
        gap = 1.0 / spec.rate
        for i in itertools.count(1):
            t = i * gap
            if t >= until:
                return
            yield t
    expo, rnd = rng.expovariate, rng.random
    t = 0.0
    if p == "diurnal":
        peak = spec.peak_rate
        while True:
            t += expo(peak)
            if t >= until:
                return
            if rnd() * peak <= rate_at(spec, t):
                yield t
    if p == "poisson" and spec.rate > 0:
        # one constant rate: the loop below without its per-arrival _segment call (the same
        # draws and sums, so the same times)
        rate = spec.rate
        while t < until:
            nxt = t + expo(rate)
            if nxt >= until:
                return
            t = nxt
            yield t
        return
    while t < until:
        rate, end = _segment(spec, t)
        if rate <= 0:
            t = end
            continue
        nxt = t + expo(rate)
        if nxt >= end:
            t = end  # memoryless: restart the draw at the change of rate
            continue
        if nxt >= until:
            return
        t = nxt
        yield t


class MixChooser:
    """Draws command kinds by weight (the names of the domain workload's kinds).

    >>> MixChooser((("deposit", 1.0),), random.Random(0))()
    'deposit'
    """

    def __init__(self, mix: tuple[tuple[str, float], ...], rng: random.Random) -> None:
        kinds = [k for k, w in mix if w > 0]
        total = sum(w for _, w in mix if w > 0)
        acc, self.cum = 0.0, []
        for _, w in ((k, w) for k, w in mix if w > 0):
            acc += w / total
            self.cum.append(acc)
        self.cum[-1] = 1.0
        self.kinds = kinds
        self.rnd = rng.random

    def __call__(self) -> str:
        if len(self.kinds) == 1:
            return self.kinds[0]
        return self.kinds[bisect.bisect_right(self.cum, self.rnd())]


class KeyChooser:
    """Draws key indexes uniformly or with Zipf skew (index 0 is the hottest).

    >>> keys = KeyChooser(WorkloadSpec(population=10, keys="zipf", zipf_s=2.0), random.Random(3))
    >>> 0 <= keys() < 10
    True
    """

    def __init__(self, spec: WorkloadSpec, rng: random.Random) -> None:
        self.n = spec.population
        self.rnd = rng.random
        self.cum: list[float] | None = None
        if spec.keys == "zipf":
            weights = [1.0 / (k**spec.zipf_s) for k in range(1, self.n + 1)]
            total = math.fsum(weights)
            acc, cum = 0.0, []
            for w in weights:
                acc += w / total
                cum.append(acc)
            cum[-1] = 1.0
            self.cum = cum

    def __call__(self) -> int:
        if self.cum is None:
            return int(self.rnd() * self.n)
        return bisect.bisect_right(self.cum, self.rnd())
