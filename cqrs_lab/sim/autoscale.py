"""Autoscaling of a projection's consumers on backlog (events) or lag (seconds).

Every ``interval`` seconds the autoscaler reads the metric; above ``scale_out_above`` it adds
a consumer (which starts ``startup_delay`` seconds later), below ``scale_in_below`` it
retires one, never leaving ``[min, max]`` and never acting twice within ``cooldown``. This is
the shape of a Kubernetes HPA or KEDA scaler on consumer lag.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from cqrs_lab.sim.consumers import GroupDriver
from cqrs_lab.sim.scenario_parts import AutoscaleSpec

__all__ = ["autoscaler"]


def autoscaler(
    env: simpy.Environment, driver: GroupDriver, spec: AutoscaleSpec
) -> Generator[simpy.Event, Any, None]:
    """The SimPy process scaling ``driver``'s consumers by ``spec``."""
    last_action = -float("inf")
    group = driver.group
    while True:
        yield env.timeout(spec.interval)
        metric = float(group.backlog()) if spec.metric == "backlog" else group.lag_seconds()
        if env.now - last_action < spec.cooldown:
            continue
        active = driver.active_count
        if metric > spec.scale_out_above and active < spec.max:
            driver.add_consumer(delay=spec.startup_delay)
            last_action = env.now
        elif metric < spec.scale_in_below and active > spec.min:
            driver.remove_consumer()
            last_action = env.now
