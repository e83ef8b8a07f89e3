"""How much a scenario asks the simulation to do, refused past :data:`MAX_WORK` before it runs.

Every simulated happening costs real time: an arrival (a command or a read), a time bucket
of the results, a checkpoint tick, a consumer's crash and repair, an autoscaler's look, a
CPU-limit period of the served loop, a drifted event, a key created before the run. The
engine runs some 40,000 simulated commands per second of CPU on a 2-core machine, so a
scenario asking for 10**9 of them (a rate of 10**9 for a second, a duration of 10**308, a
crash every 0 s) would run for hours or forever, or take the machine's memory first. Such a
scenario is refused, naming the key that asks for the most and what it asks.

>>> from cqrs_lab.sim import builtin_scenario
>>> work(builtin_scenario())[0]  # the largest part: ("key", happenings)
('workload.arrivals.rate', 15000.0)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cqrs_lab.core.workload import Workload
    from cqrs_lab.sim.scenario import Scenario

__all__ = ["MAX_WORK", "work"]

#: the most simulated happenings one run may ask for (about 20 minutes of CPU here)
MAX_WORK = 5e7


def _every(duration: float, seconds: float) -> float:
    """How many times something every ``seconds`` happens in ``duration`` (inf for 0)."""
    return duration / seconds if seconds > 0 else math.inf


def work(s: Scenario, workload: Workload | None = None) -> list[tuple[str, float]]:
    """The scenario's happenings by the key that asks for them, the largest first."""
    duration = s.duration
    arrivals = s.workload.arrivals
    trace = arrivals.process == "trace"  # its rows, each at most once
    parts: list[tuple[str, float]] = [
        ("workload.arrivals.path" if trace else "workload.arrivals.rate",
         float(len(arrivals.trace)) if trace else duration * arrivals.peak_rate),
        ("scenario.bucket", _every(duration, s.bucket)),
    ]  # fmt: skip
    if arrivals.process == "onoff":
        parts.append(("workload.arrivals.on", _every(duration, min(arrivals.on, arrivals.off))))
    if s.reads is not None:
        parts.append(("reads.rate", duration * s.reads.rate))
    if workload is not None and workload.setup is not None:
        parts.append((f"workload.{workload.population}", float(s.workload.population)))
    for p in s.projections:
        key = f"projections.{p.name}"
        if p.checkpoint_interval is not None:
            parts.append((f"{key}.checkpoint_interval", _every(duration, p.checkpoint_interval)))
        if p.crash is not None:
            cycle = p.crash.ttf.mean + p.crash.ttr.mean
            parts.append((f"{key}.crash.ttf", p.consumers * _every(duration, cycle)))
        if p.autoscale is not None:
            parts.append((f"{key}.autoscale.interval", _every(duration, p.autoscale.interval)))
    if s.server is not None:
        parts.append(("server.period", _every(duration, s.server.period)))
    if s.drift is not None:
        parts.append(("faults.drift.rate", duration * s.drift.rate))
    return sorted(parts, key=lambda kv: -kv[1])
