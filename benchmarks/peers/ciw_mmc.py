"""Peer for W2: the M/M/c queue in Ciw (one node, FIFO, unbounded, exponential times).

``ciw.seed(seed)`` seeds Ciw's global generators (Ciw's own way); the run stops when
``customers`` customers have finished service. Returns the mean wait in queue from Ciw's
records.

Run alone: ``python -m benchmarks.peers.ciw_mmc``.
"""

from __future__ import annotations

import ciw


def run_mmc(
    arrival_rate: float, service_rate: float, servers: int, customers: int, seed: int
) -> float:
    """Simulate until ``customers`` have finished; return their mean wait in queue."""
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=arrival_rate)],
        service_distributions=[ciw.dists.Exponential(rate=service_rate)],
        number_of_servers=[servers],
    )
    ciw.seed(seed)
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_customers(customers, method="Finish")
    records = simulation.get_all_records()
    return float(sum(r.waiting_time for r in records) / len(records))


if __name__ == "__main__":
    print(run_mmc(3.2, 1.0, 4, 200_000, 42))
