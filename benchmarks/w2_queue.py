"""W2 (../shared/bench/README.md): the pure M/M/c queue in simulated time.

FIFO, unbounded, empty at t=0, 200,000 customers, seed 42; ``mmc`` (c=4, lambda=3.2,
mu=1.0) and ``mm1`` (c=1, lambda=0.8, mu=1.0). The lab's :func:`simulate_mmc`, bare SimPy
(``Resource``, a process per customer) and Ciw run the same workload in the same process,
interleaved, ``REPEATS`` times each; each figure is the median over the repetitions. A
timed call covers building the model, running it to the end and computing the mean wait.

Figures per workload: lab customers per wall second against bare SimPy and against Ciw
(ratio = lab / peer), and the lab's Wq against Erlang C with a 95% batch-means interval
(20 batches of the seed-42 run).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

from benchmarks.peers import ciw_mmc, simpy_mmc
from cqrs_lab.sim.queueing import simulate_mmc
from cqrs_lab.sim.queueing.oracles import mmc

CUSTOMERS = 200_000
SEED = 42
REPEATS = 5
BATCHES = 20
WORKLOADS = {"mmc": (3.2, 1.0, 4), "mm1": (0.8, 1.0, 1)}
SIMPY = f"bare SimPy {version('simpy')} (Resource, a process per customer)"
CIW = f"Ciw {version('ciw')}"
LAB = "cqrs_lab.sim.queueing.simulate_mmc"


def _lab(lam: float, mu: float, c: int) -> float:
    return simulate_mmc(lam, mu, c, CUSTOMERS, SEED).summary().wq


def _timed(fn: Callable[[float, float, int], float], args: tuple[float, float, int]) -> float:
    begin = time.perf_counter()
    fn(*args)
    return CUSTOMERS / (time.perf_counter() - begin)


def run() -> Iterator[dict[str, Any]]:
    """One dict per figure: throughputs with ratios, then Wq against Erlang C."""
    for name, (lam, mu, c) in WORKLOADS.items():
        args = (lam, mu, c)
        peers: dict[str, Callable[[float, float, int], float]] = {
            SIMPY: lambda a, b, k: simpy_mmc.run_mmc(a, b, k, CUSTOMERS, SEED),
            CIW: lambda a, b, k: ciw_mmc.run_mmc(a, b, k, CUSTOMERS, SEED),
        }
        samples: dict[str, list[float]] = {LAB: [], SIMPY: [], CIW: []}
        for _ in range(REPEATS):
            samples[LAB].append(_timed(_lab, args))
            for peer, fn in peers.items():
                samples[peer].append(_timed(fn, args))
        lab = statistics.median(samples[LAB])
        for peer in (SIMPY, CIW):
            peer_value = statistics.median(samples[peer])
            yield {
                "workload": f"W2 {name}",
                "implementation": LAB,
                "metric": "simulated customers per wall second",
                "value": round(lab),
                "unit": "customers/s",
                "peer": peer,
                "peer_value": round(peer_value),
                "ratio": round(lab / peer_value, 3),
                "repeats": REPEATS,
                "statistic": "median",
                "samples": [round(s) for s in samples[LAB]],
                "peer_samples": [round(s) for s in samples[peer]],
            }
        run_ = simulate_mmc(lam, mu, c, CUSTOMERS, SEED)
        ci = run_.wq_ci(batches=BATCHES)
        exact = mmc(lam, mu, c).wq
        yield {
            "workload": f"W2 {name}",
            "implementation": LAB,
            "metric": "Wq, mean wait in queue (seed 42, 200,000 customers)",
            "value": round(ci.mean, 5),
            "unit": "time units",
            "peer": "Erlang C (cqrs_lab.sim.queueing.oracles.mmc)",
            "peer_value": round(exact, 5),
            "ratio": round(ci.mean / exact, 4),
            "ci95_low": round(ci.low, 5),
            "ci95_high": round(ci.high, 5),
            "ci_method": f"batch means, {BATCHES} batches, t with {BATCHES - 1} df",
            "erlang_c_within_ci": ci.contains(exact),
            "peer_wq": {
                SIMPY: round(simpy_mmc.run_mmc(lam, mu, c, CUSTOMERS, SEED), 5),
                CIW: round(ciw_mmc.run_mmc(lam, mu, c, CUSTOMERS, SEED), 5),
            },
        }
