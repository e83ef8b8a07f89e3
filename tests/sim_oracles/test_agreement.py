"""The simulated queue agrees with the analytic oracles, statistically.

Each test runs independent replications from one fixed seed (so the verdict is the same on
every run) and computes a 95% t interval from the replications themselves, never widened.
The first ``WARMUP`` customers of each replication are left out of the means (the queue
starts empty). To keep the tests from passing on a uselessly wide interval, each one also
requires the interval to be narrow relative to the value checked.
"""

from __future__ import annotations

import pytest

from cqrs_lab.sim.queueing.oracles import kingman, mmc, mmck
from cqrs_lab.sim.queueing.replications import replicate_mmc, replicate_queue
from cqrs_lab.sim.queueing.samplers import Deterministic, Exponential

SEED = 20261127
REPLICATIONS = 20
CUSTOMERS = 20_000
WARMUP = 2_000


@pytest.mark.parametrize(
    ("lam", "mu", "c"),
    [
        (1.0, 2.0, 1),  # utilisation 0.5
        (3.0, 1.0, 6),  # 0.5
        (3.2, 1.0, 4),  # 0.8
        (0.8, 0.5, 2),  # 0.8
        (0.9, 1.0, 1),  # 0.9
        (9.0, 1.0, 10),  # 0.9
    ],
)
def test_mean_wait_within_ci_of_erlang_c(lam: float, mu: float, c: int) -> None:
    exact = mmc(lam, mu, c)
    reps = replicate_mmc(lam, mu, c, CUSTOMERS, REPLICATIONS, SEED, warmup=WARMUP)
    wq = reps.ci("wq")
    assert wq.contains(exact.wq), (wq, exact.wq)
    assert wq.half_width < 0.15 * exact.wq
    # the simulation's own time averages (over the whole run, empty start included)
    lq = reps.ci("lq")
    assert lq.contains(exact.lq), (lq, exact.lq)
    util = reps.ci("utilisation")
    assert util.contains(exact.utilisation), (util, exact.utilisation)


def test_blocking_probability_of_bounded_queue_matches_mmck() -> None:
    lam, mu, c, k = 3.0, 1.0, 2, 5
    exact = mmck(lam, mu, c, k)
    reps = replicate_mmc(lam, mu, c, CUSTOMERS, REPLICATIONS, SEED, capacity=k, warmup=WARMUP)
    p_block = reps.ci("p_block")
    assert p_block.contains(exact.p_block), (p_block, exact.p_block)
    assert p_block.half_width < 0.05 * exact.p_block
    wq = reps.ci("wq")
    assert wq.contains(exact.wq), (wq, exact.wq)


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    # M/D/1 is exact under Kingman's formula (Poisson arrivals, cs2 = 0).
    lam, service = 0.8, 1.0
    reps = replicate_queue(
        Exponential(lam), Deterministic(service), 1, CUSTOMERS, REPLICATIONS, SEED, warmup=WARMUP
    )
    exact = kingman(lam, 1 / service, ca2=1.0, cs2=0.0)
    wq = reps.ci("wq")
    assert wq.contains(exact), (wq, exact)
    assert wq.half_width < 0.15 * exact


def test_littles_law_across_replications() -> None:
    # L (time average kept by the simulation) against lambda * W from customer records,
    # and both against the M/M/c oracle.
    lam, mu, c = 3.2, 1.0, 4
    reps = replicate_mmc(lam, mu, c, CUSTOMERS, 10, SEED + 1)
    t = reps.table
    assert ((t["l"] - t["throughput"] * t["w"]).abs() < 1e-9 * t["l"]).all()
    assert reps.ci("l").contains(mmc(lam, mu, c).l)
