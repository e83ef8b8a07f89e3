"""The queueing toolkit: a pure SimPy queue, its samplers and replications, the analytic
oracles it is checked against, and Student-t confidence intervals.

A subject of its own, beside the CQRS simulation (which uses its oracles and intervals to
check itself): nothing here knows about commands, events or projections.

>>> from cqrs_lab.sim.queueing import mmc, simulate_mmc
>>> run = simulate_mmc(3.2, 1.0, servers=4, customers=2_000, rng=7)
>>> round(mmc(3.2, 1.0, 4).utilisation, 2), run.summary().served
(0.8, 2000)
"""

from cqrs_lab.sim.queueing.oracles import (
    LittleCheck,
    LittleReport,
    QueueMetrics,
    allen_cunneen,
    check_littles_law,
    erlang_b,
    erlang_c,
    kingman,
    mm1,
    mmc,
    mmck,
)
from cqrs_lab.sim.queueing.replications import Replications, replicate_mmc, replicate_queue
from cqrs_lab.sim.queueing.samplers import (
    BatchSampler,
    Deterministic,
    Empirical,
    Exponential,
    Gamma,
    Lognormal,
    draw,
)
from cqrs_lab.sim.queueing.simpy_queue import QueueRun, QueueSummary, simulate_mmc, simulate_queue
from cqrs_lab.sim.queueing.tdist import (
    ConfidenceInterval,
    batch_means_ci,
    mean_ci,
    t_cdf,
    t_quantile,
)

__all__ = [
    "BatchSampler",
    "ConfidenceInterval",
    "Deterministic",
    "Empirical",
    "Exponential",
    "Gamma",
    "LittleCheck",
    "LittleReport",
    "Lognormal",
    "QueueMetrics",
    "QueueRun",
    "QueueSummary",
    "Replications",
    "allen_cunneen",
    "batch_means_ci",
    "check_littles_law",
    "draw",
    "erlang_b",
    "erlang_c",
    "kingman",
    "mean_ci",
    "mm1",
    "mmc",
    "mmck",
    "replicate_mmc",
    "replicate_queue",
    "simulate_mmc",
    "simulate_queue",
    "t_cdf",
    "t_quantile",
]
