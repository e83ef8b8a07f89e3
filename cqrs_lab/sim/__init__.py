"""SimPy simulation of the CQRS engine, queueing oracles and planning tools.

The simulation drives the real engine (store, command bus, projections, delivery
semantics, sagas, transport faults) with its clock on SimPy's ``env.now``: SimPy models how
long work takes and when things fail; the engine decides what happens.

>>> from cqrs_lab.sim import builtin_scenario, simulate
>>> result = simulate(builtin_scenario("baseline"), duration=2.0, seed=1)
>>> sorted(result.tables())[:3]
['alerts', 'applications', 'commands']
"""

from cqrs_lab.sim.builtin import BUILTIN, builtin_scenario, resolve_scenario
from cqrs_lab.sim.distributions import Dist
from cqrs_lab.sim.planner import Plan, plan
from cqrs_lab.sim.results import TABLES, SimResult
from cqrs_lab.sim.scenario import (
    AlertRule,
    ArrivalSpec,
    AutoscaleSpec,
    CommandSpec,
    CrashSpec,
    DriftSpec,
    ProjectionSpec,
    ReadSpec,
    RebuildSpec,
    RetrySpec,
    Scenario,
    SloSpec,
    TransportSpec,
    WorkloadSpec,
)
from cqrs_lab.sim.scenario_load import load_scenario, parse_scenario
from cqrs_lab.sim.simulation import Simulation, simulate
from cqrs_lab.sim.sweep import sweep, sweep_runs

__all__ = [
    "BUILTIN",
    "TABLES",
    "AlertRule",
    "ArrivalSpec",
    "AutoscaleSpec",
    "CommandSpec",
    "CrashSpec",
    "Dist",
    "DriftSpec",
    "Plan",
    "ProjectionSpec",
    "ReadSpec",
    "RebuildSpec",
    "RetrySpec",
    "Scenario",
    "SimResult",
    "Simulation",
    "SloSpec",
    "TransportSpec",
    "WorkloadSpec",
    "builtin_scenario",
    "load_scenario",
    "parse_scenario",
    "plan",
    "resolve_scenario",
    "simulate",
    "sweep",
    "sweep_runs",
]
