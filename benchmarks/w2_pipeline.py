"""W2, full pipeline: commands, events and a projection through the real engine in SimPy time.

Workload (fixed, so runs compare): the bank ledger with 1,000 accounts opened before t=0;
Poisson arrivals at 5,000 commands per simulated second for 20 simulated seconds (about
100,000 commands), half deposits and half withdrawals on uniformly drawn accounts, seed 42;
16 command handlers with exponential service of mean 2 ms (utilisation 0.625), each
command decided on a private copy of its aggregate and appended after its service time
(optimistic-concurrency conflicts retried); the ``balances`` projection effectively-once
over 8 partitions and 4 consumers, batches of up to 256 events costing 2 ms + 0.1 ms per
event. Figure: simulated commands per wall second for the whole ``simulate()`` call
(building the engine, the run, and the result tables), median of 5 runs. A second figure
runs the shipped baseline scenario (two projections, reads, SLOs) the same way.

Each run is wrapped in the collector setting (``cqrs_lab.sim.cli.fewer_collections``) the
``cqrs-lab simulate`` command runs with (a plain library call leaves the collector alone).

Target (../shared/bench/README.md): at least 30,000 simulated commands per wall second.
There is no peer system that runs a CQRS engine in simulated time, so no ratio is given.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

from cqrs_lab.sim import Dist, Scenario, builtin_scenario, simulate
from cqrs_lab.sim.cli import fewer_collections

RUNS = 5
TARGET = 30_000.0


def pipeline_scenario() -> Scenario:
    """The W2 pipeline workload described in the module docstring."""
    s = builtin_scenario("baseline").with_(duration=20.0, seed=42, reads=None, slos=())
    s = s.with_(
        workload=s.workload.__class__(
            arrivals=s.workload.arrivals,
            population=1000,
            mix=(("deposit", 0.5), ("withdraw", 0.5)),
        )
    )
    s = s.with_(projections=(s.projection("balances"),)).with_rate(5000.0)
    s = s.with_commands(handlers=16, service=Dist("exponential", 0.002), queue_limit=None)
    return s.with_projection(
        "balances",
        delivery="effectively-once",
        partitions=8,
        consumers=4,
        batch_size=256,
        per_event=Dist.fixed(0.0001),
        per_batch=Dist.fixed(0.002),
    )


def _measure(scenario: Scenario) -> tuple[float, float, int]:
    """Median simulated commands per wall second and per CPU second of this process."""
    wall_rates, cpu_rates = [], []
    commands = 0
    for _ in range(RUNS):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with fewer_collections():  # as `cqrs-lab simulate` runs
            result = simulate(scenario)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        commands = len(result.commands)
        wall_rates.append(commands / wall)
        cpu_rates.append(commands / cpu)
    return statistics.median(wall_rates), statistics.median(cpu_rates), commands


def run() -> Iterator[dict[str, Any]]:
    """Per workload: simulated commands per wall second and per CPU second (median of 5).

    The CPU-second figure is what the wall figure would be on an otherwise idle core; it is
    given because the benchmark machine is often shared.
    """
    for name, scenario in (
        ("pipeline", pipeline_scenario()),
        ("baseline scenario", builtin_scenario("baseline")),
    ):
        wall, cpu, commands = _measure(scenario)
        for clock, rate in (("wall", wall), ("CPU", cpu)):
            yield {
                "workload": f"W2 full pipeline ({name}, {commands} commands)",
                "implementation": "cqrs_lab.sim (real engine in SimPy time)",
                "metric": f"simulated commands per {clock} second (median of {RUNS})",
                "value": round(rate),
                "unit": "commands/s",
                "peer": "target (shared/bench/README.md); no peer runs CQRS in simulated time",
                "peer_value": TARGET,
                "ratio": round(rate / TARGET, 3),
            }


if __name__ == "__main__":
    import json

    for figure in run():
        print(json.dumps(figure))
