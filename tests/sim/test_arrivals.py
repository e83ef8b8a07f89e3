"""Arrival profiles, the command mix and hot keys."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest

from cqrs_lab.sim import ArrivalSpec, WorkloadSpec
from cqrs_lab.sim.arrivals import KeyChooser, MixChooser, arrival_times, rate_at


def _count(spec: ArrivalSpec, until: float, seed: int = 3) -> int:
    return sum(1 for _ in arrival_times(spec, random.Random(seed), until))


def _within_poisson(n: int, mean: float) -> bool:
    return abs(n - mean) <= 4 * math.sqrt(mean)  # 4 sigma of a Poisson count


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (ArrivalSpec("poisson", rate=200.0), 200.0 * 50),
        (ArrivalSpec("step", rate=100.0, to_rate=300.0, at=20.0), 100 * 20 + 300 * 30),
        (ArrivalSpec("spike", rate=100.0, to_rate=1000.0, at=10.0, length=5.0), 100 * 45 + 5000),
        (ArrivalSpec("onoff", rate=400.0, off_rate=0.0, on=2.0, off=3.0), 400 * 2 * 10),
        # the sine integrates to 0 over whole periods
        (ArrivalSpec("diurnal", rate=200.0, amplitude=0.9, period=25.0), 200.0 * 50),
    ],
    ids=["poisson", "step", "spike", "onoff", "diurnal"],
)
def test_counts_match_the_integral_of_the_rate(spec: ArrivalSpec, expected: float) -> None:
    assert _within_poisson(_count(spec, 50.0), expected)


def test_onoff_sends_nothing_while_off() -> None:
    spec = ArrivalSpec("onoff", rate=400.0, off_rate=0.0, on=2.0, off=3.0)
    times = list(arrival_times(spec, random.Random(1), 20.0))
    assert times and all((t % 5.0) < 2.0 for t in times)


def test_spike_rate_only_inside_the_spike() -> None:
    spec = ArrivalSpec("spike", rate=10.0, to_rate=1000.0, at=5.0, length=2.0)
    times = list(arrival_times(spec, random.Random(2), 10.0))
    inside = sum(1 for t in times if 5.0 <= t < 7.0)
    assert _within_poisson(inside, 2000) and rate_at(spec, 6.0) == 1000.0


def test_times_increase_and_stay_inside_the_run() -> None:
    times = list(arrival_times(ArrivalSpec("diurnal", rate=50.0), random.Random(4), 30.0))
    assert all(a < b for a, b in itertools.pairwise(times))
    assert times[0] > 0 and times[-1] < 30.0


def test_mix_follows_the_weights() -> None:
    mix = MixChooser((("deposit", 3.0), ("withdraw", 1.0)), random.Random(5))
    counts = Counter(mix() for _ in range(20_000))
    assert abs(counts["deposit"] / 20_000 - 0.75) < 0.02


def test_zipf_keys_make_low_indexes_hot_and_uniform_keys_do_not() -> None:
    zipf = KeyChooser(WorkloadSpec(population=100, keys="zipf", zipf_s=1.2), random.Random(6))
    counts = Counter(zipf() for _ in range(20_000))
    h = sum(1 / k**1.2 for k in range(1, 101))
    assert abs(counts[0] / 20_000 - 1 / h) < 0.02  # P(rank 1) = 1 / H(100, 1.2)
    assert counts[0] > counts[1] > counts[10]
    uniform = KeyChooser(WorkloadSpec(population=100), random.Random(6))
    ucounts = Counter(uniform() for _ in range(20_000))
    assert max(ucounts.values()) < 2 * 200 and set(ucounts) <= set(range(100))
