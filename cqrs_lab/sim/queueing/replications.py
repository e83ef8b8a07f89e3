"""Independent replications of the pure-queue simulation, with t confidence intervals.

Replication ``r`` runs on its own stream ``numpy.random.SeedSequence(seed).spawn(n)[r]``,
so the streams are statistically independent and the whole set is reproducible from one
seed.

>>> reps = replicate_mmc(0.8, 1.0, 1, customers=2_000, replications=5, seed=1)
>>> len(reps.table)
5
>>> ci = reps.ci("wq")
>>> ci.low < ci.mean < ci.high
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.queueing.samplers import BatchSampler, Exponential
from cqrs_lab.sim.queueing.simpy_queue import simulate_queue
from cqrs_lab.sim.queueing.tdist import ConfidenceInterval, mean_ci

__all__ = ["Replications", "replicate_mmc", "replicate_queue"]


@dataclass(frozen=True, slots=True, eq=False)
class Replications:
    """One row per replication (the fields of :class:`QueueSummary`) in ``table``.

    >>> reps = replicate_mmc(0.5, 1.0, 2, customers=500, replications=3, seed=0)
    >>> reps.table.columns[:3].tolist()
    ['replication', 'customers', 'served']
    """

    table: pd.DataFrame

    def ci(self, metric: str, confidence: float = 0.95) -> ConfidenceInterval:
        """t confidence interval for the mean of ``metric`` across replications."""
        if metric not in self.table.columns or metric == "replication":
            allowed = ", ".join(c for c in self.table.columns if c != "replication")
            raise ConfigError(f"metric {metric!r} is not a summary field; use one of {allowed}")
        return mean_ci(self.table[metric].astype(float).tolist(), confidence)


def replicate_queue(
    interarrival: BatchSampler,
    service: BatchSampler,
    servers: int,
    customers: int,
    replications: int,
    seed: int,
    capacity: int | None = None,
    warmup: int = 0,
) -> Replications:
    """Run ``replications`` independent G/G/c(/K) runs; each row is one run's summary, whose
    customer means leave out the first ``warmup`` customers (the empty-start transient).

    >>> from cqrs_lab.sim.queueing.samplers import Deterministic
    >>> r = replicate_queue(Deterministic(1.0), Deterministic(0.5), 1, 10, 2, seed=0)
    >>> r.table["wq"].tolist()
    [0.0, 0.0]
    """
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 2:
        raise ConfigError(f"replications must be an integer >= 2, got {replications!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    rows = []
    for r, child in enumerate(np.random.SeedSequence(seed).spawn(replications)):
        run = simulate_queue(
            interarrival, service, servers, customers, np.random.default_rng(child), capacity
        )
        rows.append({"replication": r, **asdict(run.summary(warmup))})
    return Replications(pd.DataFrame(rows))


def replicate_mmc(
    arrival_rate: float,
    service_rate: float,
    servers: int,
    customers: int,
    replications: int,
    seed: int,
    capacity: int | None = None,
    warmup: int = 0,
) -> Replications:
    """Replications of M/M/c (M/M/c/K with ``capacity``); see :func:`replicate_queue`.

    >>> replicate_mmc(3.2, 1.0, 4, 200, 2, seed=5).table["customers"].tolist()
    [200, 200]
    """
    return replicate_queue(
        Exponential(arrival_rate, name="arrival_rate"),
        Exponential(service_rate, name="service_rate"),
        servers,
        customers,
        replications,
        seed,
        capacity,
        warmup,
    )
