"""The SimPy queue: exact trajectories, invariants, determinism and input errors.

The reference trajectory is recomputed here by the FIFO multi-server recursion (a heap of
server free times, Kiefer-Wolfowitz), independent of the SimPy processes under test.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.queueing import simulate_mmc, simulate_queue
from cqrs_lab.sim.queueing.samplers import Deterministic, Empirical, Exponential, Gamma, Lognormal


def fifo_reference(
    gaps: np.ndarray, services: np.ndarray, c: int, capacity: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrivals = np.cumsum(gaps)
    free = [0.0] * c
    ends_in_system: list[float] = []  # departure times of admitted customers
    start = np.full(len(gaps), np.nan)
    end = np.full(len(gaps), np.nan)
    for i, a in enumerate(arrivals):
        present = sum(1 for e in ends_in_system if e > a)
        if capacity is not None and present >= capacity:
            continue
        f = heapq.heappop(free)
        start[i] = max(a, f)
        end[i] = start[i] + services[i]
        heapq.heappush(free, end[i])
        ends_in_system.append(end[i])
    return arrivals, start, end


@pytest.mark.parametrize(("c", "capacity"), [(1, None), (3, None), (2, 4), (1, 1)])
def test_trajectory_matches_fifo_recursion(c: int, capacity: int | None) -> None:
    n, seed = 3_000, 11
    run = simulate_mmc(0.9 * c, 1.0, c, n, seed, capacity)
    rng = np.random.default_rng(seed)  # documented draw order: all gaps, then all services
    gaps = rng.exponential(1 / (0.9 * c), n)
    services = rng.exponential(1.0, n)
    arrivals, start, end = fifo_reference(gaps, services, c, capacity)
    np.testing.assert_allclose(run.arrival, arrivals, rtol=1e-12)
    np.testing.assert_allclose(run.start, start, rtol=1e-12)
    np.testing.assert_allclose(run.end, end, rtol=1e-12)
    assert np.array_equal(run.blocked, np.isnan(start))
    if capacity is not None:
        assert run.blocked.any()
    assert np.array_equal(run.server == -1, run.blocked)


def test_each_server_serves_one_customer_at_a_time() -> None:
    run = simulate_mmc(3.6, 1.0, 4, 5_000, 3)
    frame = run.customers()
    assert set(frame["server"]) == {0, 1, 2, 3}
    for _, jobs in frame.groupby("server"):
        jobs = jobs.sort_values("start")
        assert (jobs["start"].to_numpy()[1:] >= jobs["end"].to_numpy()[:-1]).all()
    assert (np.diff(run.start) >= 0).all()  # FIFO: service starts in arrival order


def test_deterministic_queue_exact() -> None:
    run = simulate_queue(Deterministic(1.0), Deterministic(1.5), 1, 4, rng=0)
    assert run.arrival.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert run.start.tolist() == [1.0, 2.5, 4.0, 5.5]
    assert run.end.tolist() == [2.5, 4.0, 5.5, 7.0]
    s = run.summary()
    assert s.wq == pytest.approx(0.75)
    assert s.horizon == 7.0
    # two servers: nobody waits
    assert simulate_queue(Deterministic(1.0), Deterministic(1.5), 2, 4, rng=0).summary().wq == 0


def test_same_seed_identical_other_seed_different() -> None:
    a = simulate_mmc(3.2, 1.0, 4, 4_000, 42, capacity=8).customers()
    b = simulate_mmc(3.2, 1.0, 4, 4_000, np.random.default_rng(42), capacity=8).customers()
    c = simulate_mmc(3.2, 1.0, 4, 4_000, 43, capacity=8).customers()
    assert a.equals(b)
    assert not a.equals(c)


def test_littles_law_holds_on_the_simulated_queue() -> None:
    for run in (
        simulate_mmc(3.2, 1.0, 4, 20_000, 5),
        simulate_mmc(3.0, 1.0, 2, 20_000, 6, capacity=5),
        simulate_queue(Gamma(0.5, 1.5), Lognormal(0.8, 2.0), 2, 20_000, 7),
    ):
        report = run.little(rel_tol=1e-9)
        assert report.ok, report.describe()
        s = run.summary()
        assert s.l == pytest.approx(s.lq + s.busy)


def test_samplers_moments() -> None:
    rng = np.random.default_rng(2024)
    for sampler in (Exponential(2.0), Gamma(1.5, 0.6), Lognormal(2.0, 0.7), Empirical([1, 2, 6])):
        x = sampler.sample(rng, 400_000)
        assert x.mean() == pytest.approx(sampler.mean, rel=0.01)
        assert x.var() / x.mean() ** 2 == pytest.approx(sampler.scv, rel=0.05)


class Negative:
    mean = 1.0
    scv = 1.0

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return -np.ones(size)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: simulate_mmc(1.0, 1.0, 0, 10, 1), "servers must be an integer >= 1"),
        (lambda: simulate_mmc(1.0, 1.0, 1, 0, 1), "customers"),
        (lambda: simulate_mmc(1.0, 1.0, 3, 10, 1, capacity=2), "capacity must be an integer >= 3"),
        (lambda: simulate_mmc(0.0, 1.0, 1, 10, 1), "arrival_rate"),
        (lambda: simulate_mmc(1.0, -2.0, 1, 10, 1), "service_rate"),
        (lambda: simulate_mmc(1.0, 1.0, 1, 10, "x"), "rng"),  # type: ignore[arg-type]
        (lambda: simulate_queue(Exponential(1.0), Negative(), 1, 10, 1), "service sampler"),
        (
            lambda: simulate_queue(1.0, Exponential(1.0), 1, 10, 1),  # type: ignore[arg-type]
            "interarrival must be a BatchSampler",
        ),
        (lambda: simulate_mmc(1.0, 2.0, 1, 10, 1).summary(warmup=10), "warmup"),
        (lambda: Empirical([]), "values"),
        (lambda: Gamma(1.0, 0.0), "cv"),
    ],
)
def test_bad_input_raises_config_error(call: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        call()  # type: ignore[operator]


def test_summary_warmup_leaves_out_the_first_customers() -> None:
    run = simulate_mmc(3.0, 1.0, 2, 3_000, 9, capacity=4)
    frame = run.customers()
    later = frame.iloc[500:]
    admitted = later[~later["blocked"]]
    s = run.summary(warmup=500)
    assert s.wq == pytest.approx(float((admitted["start"] - admitted["arrival"]).mean()))
    assert s.w == pytest.approx(float((admitted["end"] - admitted["arrival"]).mean()))
    assert s.p_block == pytest.approx(float(later["blocked"].mean()))
    assert s.blocked == int(frame["blocked"].sum()) and s.served == 3_000 - s.blocked
