"""The scenario embedded in the package (``cqrs-lab simulate`` with no file runs it).

It is the same text as ``scenarios/baseline.toml`` (a test keeps the two equal), so the demo
depends on nothing outside the package.

>>> builtin_scenario("baseline").workload.arrivals.rate
500.0
"""

from __future__ import annotations

from cqrs_lab.errors import ScenarioError
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.scenario_load import parse_scenario

__all__ = ["BUILTIN", "builtin_scenario"]

BASELINE_TOML = """
# The baseline: steady Poisson load on the bank ledger, no faults.
# Run it: cqrs-lab simulate scenarios/baseline.toml   (or just: cqrs-lab simulate)

[scenario]
name = "baseline"
description = "Steady Poisson load; balances, statements and the transfer saga; no faults"
duration = 30.0
seed = 42
bucket = 1.0

[workload]
accounts = 1000
opening_balance = 1000
max_amount = 100
keys = "uniform"

[workload.arrivals]
process = "poisson"
rate = 500.0

[workload.mix]
deposit = 0.55
withdraw = 0.4
transfer = 0.05

[commands]
handlers = 4
service = { dist = "lognormal", mean = 0.002, cv = 0.5 }
queue_limit = 2000
admission = "reject"

[projections.balances]
delivery = "effectively-once"
partitions = 8
consumers = 2
batch_size = 64
per_event = 0.0002
per_batch = 0.002

[projections.statements]
delivery = "effectively-once"
partitions = 8
consumers = 2
batch_size = 64
per_event = 0.0003
per_batch = 0.002

[projections.transfer-saga]
delivery = "effectively-once"
partitions = 4
consumers = 1
batch_size = 64
per_event = 0.0002
per_batch = 0.002

[reads]
rate = 200.0
readers = 2
service = { dist = "exponential", mean = 0.001 }
projection = "balances"
follow_writes = 0.1
think = 0.02

[[slo]]
name = "commands under 20 ms"
sli = "command_latency"
threshold = 0.020
objective = 0.99

[[slo]]
name = "balances lag under 500 ms"
sli = "projection_lag"
projection = "balances"
threshold = 0.5
objective = 0.99

[[slo]]
name = "reads no staler than 1 s"
sli = "read_staleness"
threshold = 1.0
objective = 0.999
"""

#: built-in scenario name -> TOML text
BUILTIN = {"baseline": BASELINE_TOML.lstrip("\n")}


def builtin_scenario(name: str = "baseline") -> Scenario:
    """A scenario shipped inside the package, by name."""
    text = BUILTIN.get(name)
    if text is None:
        raise ScenarioError(
            f"no built-in scenario {name!r}; built in: {', '.join(BUILTIN)} "
            "(or pass the path of a scenario file)"
        )
    return parse_scenario(text, source=f"<built-in {name}>")
