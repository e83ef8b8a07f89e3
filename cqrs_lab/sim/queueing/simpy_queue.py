"""The lab's simulation of a pure multi-server FIFO queue (G/G/c and G/G/c/K) on SimPy.

One arrival process and ``servers`` server processes share a FIFO deque: an arriving
customer goes straight to an idle server (waking it with an event) or joins the queue; a
server that finishes takes the next customer from the queue or goes idle. Interarrival and
service times are drawn up front from an injected :class:`numpy.random.Generator` (first all
interarrival times, then all service times), so one seed gives one result, bit for bit, and
two runs with the same seed see the same customers (common random numbers).

The simulation also keeps its own time-weighted counts of customers in queue, in service
and in system as SimPy's clock advances; :meth:`QueueRun.little` checks those against the
per-customer records with Little's law.

>>> run = simulate_mmc(3.2, 1.0, servers=4, customers=2_000, rng=7)
>>> run.summary().served
2000
>>> run.customers().columns.tolist()
['arrival', 'start', 'end', 'server', 'blocked', 'wait', 'sojourn']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import simpy

from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.queueing.oracles import LittleReport, check_littles_law
from cqrs_lab.sim.queueing.samplers import BatchSampler, Exponential, draw
from cqrs_lab.sim.queueing.tdist import ConfidenceInterval, batch_means_ci

__all__ = ["QueueRun", "QueueSummary", "simulate_mmc", "simulate_queue"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """Figures of one run. Per-customer figures (``wq``, ``w``, ``p_block``) skip the first
    ``warmup`` customers; counts (``customers``, ``served``, ``blocked``) and time averages
    (``lq``, ``l``, ``busy``, ``utilisation``, ``throughput``) cover the whole run, from 0
    to ``horizon``.

    ``throughput`` is admitted customers per unit time over the run; ``busy`` the mean
    number of busy servers and ``utilisation`` that divided by the number of servers.

    >>> s = simulate_mmc(0.5, 1.0, 1, 1_000, rng=2).summary(warmup=100)
    >>> (s.customers, s.warmup, s.blocked)
    (1000, 100, 0)
    """

    customers: int
    served: int
    blocked: int
    p_block: float
    wq: float
    w: float
    lq: float
    l: float  # noqa: E741 - the textbook name for the mean number in system
    busy: float
    utilisation: float
    throughput: float
    horizon: float
    warmup: int


@dataclass(frozen=True, slots=True, eq=False)
class QueueRun:
    """Per-customer records of one run plus the simulation's own time-weighted areas.

    Arrays are indexed by customer in arrival order. Blocked customers have ``start`` and
    ``end`` NaN and ``server`` -1.

    >>> run = simulate_mmc(0.5, 1.0, servers=1, customers=100, rng=1)
    >>> bool((run.start >= run.arrival).all())
    True
    """

    servers: int
    capacity: int | None
    arrival: FloatArray
    start: FloatArray
    end: FloatArray
    server: np.ndarray[Any, np.dtype[np.int64]]
    blocked: np.ndarray[Any, np.dtype[np.bool_]]
    area_queue: float
    area_service: float
    area_system: float
    horizon: float

    def customers(self) -> pd.DataFrame:
        """One row per customer: arrival, start, end, server, blocked, wait, sojourn."""
        return pd.DataFrame(
            {
                "arrival": self.arrival,
                "start": self.start,
                "end": self.end,
                "server": self.server,
                "blocked": self.blocked,
                "wait": self.start - self.arrival,
                "sojourn": self.end - self.arrival,
            }
        )

    def _served_after(self, warmup: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ConfigError(f"warmup must be an integer >= 0 customers, got {warmup!r}")
        if warmup >= len(self.arrival):
            raise ConfigError(
                f"warmup={warmup} must be smaller than the {len(self.arrival)} customers simulated"
            )
        keep = ~self.blocked
        keep[:warmup] = False
        return keep

    def summary(self, warmup: int = 0) -> QueueSummary:
        """The run's summary; ``warmup`` customers at the start are left out of the means."""
        keep = self._served_after(warmup)
        n = len(self.arrival)
        blocked = int(self.blocked.sum())
        served = n - blocked
        h = self.horizon
        kept = int(keep.sum())
        wq = float(np.mean(self.start[keep] - self.arrival[keep])) if kept else float("nan")
        w = float(np.mean(self.end[keep] - self.arrival[keep])) if kept else float("nan")
        return QueueSummary(
            customers=n,
            served=served,
            blocked=blocked,
            p_block=float(np.mean(self.blocked[warmup:])),
            wq=wq,
            w=w,
            lq=self.area_queue / h,
            l=self.area_system / h,
            busy=self.area_service / h,
            utilisation=self.area_service / h / self.servers,
            throughput=served / h,
            horizon=h,
            warmup=warmup,
        )

    def wq_ci(
        self, batches: int = 20, warmup: int = 0, confidence: float = 0.95
    ) -> ConfidenceInterval:
        """Batch-means confidence interval for the mean wait in queue of this one run."""
        keep = self._served_after(warmup)
        waits = (self.start[keep] - self.arrival[keep]).tolist()
        return batch_means_ci(waits, batches, confidence)

    def little(self, rel_tol: float = 1e-6) -> LittleReport:
        """Little's law per stage: the simulation's time-weighted counts against
        throughput times the mean time per stage from the per-customer records.

        The run starts and ends empty, so on a correct sample path the two sides agree up to
        rounding; a mismatch means the simulation's state and its records disagree.
        """
        keep = ~self.blocked
        served = int(keep.sum())
        lam = served / self.horizon
        a, s, e = self.arrival[keep], self.start[keep], self.end[keep]
        h = self.horizon
        return check_littles_law(
            {
                "queue": (self.area_queue / h, lam, float(np.mean(s - a))),
                "service": (self.area_service / h, lam, float(np.mean(e - s))),
                "system": (self.area_system / h, lam, float(np.mean(e - a))),
            },
            rel_tol,
        )


def _positive_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    """A numpy Generator from a Generator (used as is) or an integer seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, int) or rng < 0:
        raise ConfigError(f"rng must be a numpy.random.Generator or an int seed >= 0, got {rng!r}")
    return np.random.default_rng(rng)


def simulate_queue(
    interarrival: BatchSampler,
    service: BatchSampler,
    servers: int,
    customers: int,
    rng: np.random.Generator | int,
    capacity: int | None = None,
) -> QueueRun:
    """Simulate a FIFO G/G/c queue (G/G/c/K with ``capacity``) for ``customers`` arrivals.

    The queue starts empty at time 0; the first customer arrives after one interarrival
    time; the run continues until every admitted customer has left. ``capacity`` bounds the
    number in the system (in service plus waiting); an arrival that finds it full is blocked.

    >>> from cqrs_lab.sim.queueing.samplers import Deterministic
    >>> run = simulate_queue(Deterministic(1.0), Deterministic(0.5), 1, 3, rng=0)
    >>> run.start.tolist(), run.end.tolist()
    ([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    """
    c = _positive_int("servers", servers, 1)
    n = _positive_int("customers", customers, 1)
    k = None if capacity is None else _positive_int("capacity", capacity, c)
    gen = _as_generator(rng)
    gaps = draw(interarrival, gen, n, "interarrival").tolist()
    services = draw(service, gen, n, "service").tolist()
    nan = float("nan")
    arrival = [0.0] * n
    start = [nan] * n
    end = [nan] * n
    server = [-1] * n
    blocked = [False] * n
    env = simpy.Environment()
    timeout, event = env.timeout, env.event
    waiting: deque[int] = deque()
    idle: deque[simpy.Event] = deque()
    limit = n + 1 if k is None else k
    # time-weighted areas kept by the simulation itself (Little's law checks them)
    in_queue = in_service = 0
    last = area_q = area_s = 0.0

    def serve(index: int) -> Generator[simpy.Event, Any, None]:
        nonlocal in_queue, in_service, last, area_q, area_s
        while True:
            if waiting:
                i = waiting.popleft()
                now = env.now
                area_q += in_queue * (now - last)
                area_s += in_service * (now - last)
                last = now
                in_queue -= 1
                in_service += 1
            else:
                wake = event()
                idle.append(wake)
                i = yield wake
                now = env.now
            start[i] = now
            server[i] = index
            yield timeout(services[i])
            now = env.now
            end[i] = now
            area_q += in_queue * (now - last)
            area_s += in_service * (now - last)
            last = now
            in_service -= 1

    def arrive() -> Generator[simpy.Event, Any, None]:
        nonlocal in_queue, in_service, last, area_q, area_s
        for i in range(n):
            yield timeout(gaps[i])
            now = env.now
            arrival[i] = now
            if in_queue + in_service >= limit:
                blocked[i] = True
                continue
            area_q += in_queue * (now - last)
            area_s += in_service * (now - last)
            last = now
            if idle:
                in_service += 1
                idle.popleft().succeed(i)
            else:
                in_queue += 1
                waiting.append(i)

    for index in range(c):
        env.process(serve(index))
    env.process(arrive())
    env.run()
    start_a = np.array(start)
    end_a = np.array(end)
    arrival_a = np.array(arrival)
    return QueueRun(
        servers=c,
        capacity=k,
        arrival=arrival_a,
        start=start_a,
        end=end_a,
        server=np.array(server, dtype=np.int64),
        blocked=np.array(blocked, dtype=np.bool_),
        area_queue=area_q,
        area_service=area_s,
        area_system=area_q + area_s,
        horizon=float(env.now),
    )


def simulate_mmc(
    arrival_rate: float,
    service_rate: float,
    servers: int,
    customers: int,
    rng: np.random.Generator | int,
    capacity: int | None = None,
) -> QueueRun:
    """Simulate M/M/c (or M/M/c/K with ``capacity``): Poisson arrivals, exponential service.

    >>> simulate_mmc(0.8, 1.0, 1, 500, rng=3).summary().customers
    500
    """
    return simulate_queue(
        Exponential(arrival_rate, name="arrival_rate"),
        Exponential(service_rate, name="service_rate"),
        servers,
        customers,
        rng,
        capacity,
    )
