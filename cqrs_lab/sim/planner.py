"""Capacity planning: the smallest number of consumers (or handlers) that meets a target.

"How many balances consumers keep p99 projection lag under 500 ms at 2,000 commands/s when
consumers crash?" is ``plan(scenario.with_rate(2000), knob="projections.balances.consumers",
metric="lag_p99", limit=0.5)``. Each candidate value is simulated ``replications`` times; a
value *meets* the target when the upper end of the metric's t confidence interval is below
the limit (so "meets" is claimed with that confidence). The search assumes the metric does
not get worse as the knob grows and bisects between a lower bound (the stability bound
``ceil(load)`` from the mean service demand, as in Erlang C) and the upper bound.

>>> from cqrs_lab.sim import builtin_scenario
>>> s = builtin_scenario().with_(duration=1.0, reads=None, slos=())
>>> p = plan(s, knob="commands.handlers", metric="latency_p99", limit=0.05, replications=2,
...          n_jobs=1, high=4)
>>> p.value is not None and 1 <= p.value <= 4
True
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cqrs_lab.display import frame_html, section_html
from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.sweep import summarise, sweep_runs

__all__ = ["Plan", "knobs", "plan", "stability_bound"]


@dataclass(frozen=True)
class Plan:
    """The answer: ``value`` (None if even ``high`` misses), with the evidence per probe."""

    knob: str
    metric: str
    limit: float
    confidence: float
    replications: int
    value: int | None
    mean: float
    ci_low: float
    ci_high: float
    lower_bound: int
    probes: pd.DataFrame

    def _repr_html_(self) -> str:
        """The answer and every probe, the ones that meet the target in green."""
        return section_html("plan", html.escape(self.describe())) + frame_html(
            self.probes, "probes", bad="meets" if "meets" in self.probes else None
        )

    def describe(self) -> str:
        if self.value is None:
            return (
                f"no value of {self.knob} up to {int(self.probes[self.knob].max())} keeps "
                f"{self.metric} < {self.limit:g} with {self.confidence:.0%} confidence"
            )
        return (
            f"{self.knob} = {self.value}: {self.metric} = {self.mean:.4g} "
            f"(CI {self.ci_low:.4g}..{self.ci_high:.4g}, {self.confidence:.0%}, "
            f"{self.replications} replications) < {self.limit:g}"
        )


def knobs(scenario: Scenario) -> tuple[str, ...]:
    """What :func:`plan` can raise in ``scenario``: whole-number counts of servers.

    >>> from cqrs_lab.sim import builtin_scenario
    >>> knobs(builtin_scenario())[:2]
    ('commands.handlers', 'projections.balances.consumers')
    """
    views = tuple(f"projections.{p.name}.consumers" for p in scenario.projections)
    reads = ("reads.readers",) if scenario.reads is not None else ()
    return ("commands.handlers", *views, *reads)


def stability_bound(scenario: Scenario, knob: str) -> int:
    """The fewest servers whose utilisation stays below 1 at the peak rate (>= 1)."""
    rate = scenario.workload.arrivals.peak_rate
    if knob == "commands.handlers":
        load = rate * scenario.commands.service.mean
    elif knob.startswith("projections.") and knob.endswith(".consumers"):
        p = scenario.projection(knob.split(".")[1])
        load = rate * (p.per_event.mean + p.per_batch.mean / p.batch_size)
    else:
        return 1
    return max(1, math.floor(load) + 1)


def plan(
    scenario: Scenario,
    *,
    knob: str = "projections.balances.consumers",
    metric: str = "lag_p99",
    limit: float = 0.5,
    low: int | None = None,
    high: int | None = None,
    replications: int = 5,
    confidence: float = 0.95,
    n_jobs: int = -1,
    backend: str = "loky",
    progress: bool | None = None,
) -> Plan:
    """Bisect ``knob`` for the smallest value whose ``metric`` CI lies below ``limit``."""
    if knob not in knobs(scenario):
        raise ConfigError(
            f"knob {knob!r}: the planner raises a whole number of servers; choose one of "
            f"{', '.join(knobs(scenario))}"
        )
    if replications < 2:
        raise ConfigError(f"replications={replications}: pass >= 2 to give a confidence interval")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence={confidence!r}: a fraction between 0 and 1, e.g. 0.95")
    if high is not None and high < 1:
        raise ConfigError(f"high={high} (--max): the largest value to try, a whole number >= 1")
    bound = stability_bound(scenario, knob)
    if high is None:
        if knob.startswith("projections."):
            high = scenario.projection(knob.split(".")[1]).partitions
        else:
            high = max(2 * bound, 16)
    lo = max(1, bound if low is None else low)
    hi = high
    if lo > hi:
        lo = hi
    probes: dict[int, dict[str, Any]] = {}

    def probe(v: int) -> bool:
        if v not in probes:
            runs = sweep_runs(
                scenario,
                {knob: [v]},
                replications=replications,
                metrics=(metric,),
                n_jobs=n_jobs,
                backend=backend,
                progress=progress,
            )
            first = summarise(runs, [knob], (metric,), confidence).iloc[0].to_dict()
            row = {str(k): v for k, v in first.items()}
            row["meets"] = bool(row[f"{metric}_ci_high"] < limit)
            probes[v] = row
        return bool(probes[v]["meets"])

    answer: int | None = None
    if probe(hi):
        answer = hi
        while lo < answer:
            mid = (lo + answer) // 2
            if probe(mid):
                answer = mid
            else:
                lo = mid + 1
    table = pd.DataFrame([probes[v] for v in sorted(probes)])
    best = probes[answer] if answer is not None else probes[hi]
    return Plan(
        knob,
        metric,
        limit,
        confidence,
        replications,
        answer,
        float(best[f"{metric}_mean"]),
        float(best[f"{metric}_ci_low"]),
        float(best[f"{metric}_ci_high"]),
        bound,
        table,
    )
