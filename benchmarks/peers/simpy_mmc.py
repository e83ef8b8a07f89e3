"""Peer for W2: the M/M/c queue in bare SimPy, the way its docs write it.

A ``simpy.Resource`` with ``servers`` slots, a source process, and one process per customer
that requests a slot, holds it for its service time and releases it. Randomness from
``random.Random(seed)``: per customer, its interarrival time then its service time.
Returns the mean wait in queue (arrival to start of service) over all customers.

Run alone: ``python -m benchmarks.peers.simpy_mmc``.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import simpy


def run_mmc(
    arrival_rate: float, service_rate: float, servers: int, customers: int, seed: int
) -> float:
    """Simulate ``customers`` arrivals until all have left; return the mean wait in queue."""
    rng = random.Random(seed)
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=servers)
    waits: list[float] = []

    def customer(service: float) -> Generator[simpy.Event, Any, None]:
        arrived = env.now
        with resource.request() as request:
            yield request
            waits.append(env.now - arrived)
            yield env.timeout(service)

    def source() -> Generator[simpy.Event, Any, None]:
        for _ in range(customers):
            yield env.timeout(rng.expovariate(arrival_rate))
            env.process(customer(rng.expovariate(service_rate)))

    env.process(source())
    env.run()
    return sum(waits) / len(waits)


if __name__ == "__main__":
    print(run_mmc(3.2, 1.0, 4, 200_000, 42))
