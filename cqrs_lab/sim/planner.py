"""Capacity planning: the smallest number of consumers (or handlers) that meets a target.

"How many balances consumers keep p99 projection lag under 200 ms at 2,000 commands/s with
a consumer crash every ~10 minutes?" is ``plan(scenario, knob="projections.balances.consumers",
metric="lag_p99_s", limit=0.2)`` on the scenario at that rate and crash rate. How it answers
fast and soundly:

* **Bracket first.** Below the stability bound (mean service demand, as in Erlang C) the
  consumers are overloaded and cannot meet any lag target; the search starts there and
  gallops up (bound, +1, +2, +4, ...) to the first value that meets the target, then bisects
  the gap, assuming the metric does not get worse as the knob grows.
* **Common random numbers.** Replication ``r`` of every candidate runs with seed
  ``seed + r``: the same arrivals and crash draws, so candidates differ by the knob only.
* **Sequential stopping.** A candidate starts with ``replications`` runs (in parallel with
  joblib) and gets more, a few at a time up to ``max_replications``, only while its interval
  straddles the limit. It *meets* when the interval's upper end is below the limit, *misses*
  when its lower end is above; still straddling at the cap, it is *not decisive* and counts
  as not shown to meet.
* **Intervals that cannot go negative**: log-scale t intervals
  (:mod:`cqrs_lab.sim.plan_intervals`).
* **Rare crashes** (fewer than ~3 per run) are accounted for with crash runs weighted by
  the crash rate (:mod:`cqrs_lab.sim.plan_search`), and a note says so. Crash-free runs go
  first: crashes only add lag, so a candidate that misses without them misses (its crash
  runs are never made).

Measured (``time cqrs-lab plan crashes_effectively_once --rate 2000 --target
"lag_p99_s<0.2" --set projections.balances.crash.ttf=600``, 2 cores shared with other
work, load average ~4.5): 8 runs of 60 simulated seconds, 38 s of CPU, 47 s wall; answer 2
consumers, p99 lag 47.6 ms (95% CI 40.4..56.2 ms), 1 consumer misses even without crashes
(the plan before these changes: 829 s, answer 3, an interval reaching below zero). Two
1,200 s runs of 2 consumers at that crash rate (1 and 5 crashes) gave 45.5 and 47.6 ms.

>>> from cqrs_lab.sim import builtin_scenario
>>> s = builtin_scenario().with_(duration=1.0, reads=None, slos=())
>>> p = plan(s, knob="commands.handlers", metric="latency_p99_s", limit=0.05, replications=2,
...          n_jobs=1, high=4)
>>> p.value is not None and 1 <= p.value <= 4
True
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cqrs_lab.display import frame_html, section_html
from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.plan_candidates import Candidates
from cqrs_lab.sim.plan_search import (
    TARGET_CRASHES,
    Executor,
    estimate_runs,
    expected_crashes,
    lag_quantile,
    rare_event_notes,
)
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.sweep_params import apply_param, check_backend

__all__ = ["METRICS", "Plan", "knobs", "plan", "stability_bound"]


@dataclass(frozen=True)
class Plan:
    """The answer: ``value`` (None if no value up to ``high`` is shown to meet the target),
    its interval, the notes (rare events), the evidence per candidate (``probes``) and per
    run (``runs``)."""

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
    notes: tuple[str, ...] = ()
    runs: pd.DataFrame | None = None

    def _repr_html_(self) -> str:
        """The answer, the notes and every probe, the ones that meet the target in green."""
        return section_html("plan", html.escape(self.describe())) + frame_html(
            self.probes, "probes", bad="meets" if "meets" in self.probes else None
        )

    def __repr__(self) -> str:
        return f"{self.describe()}\n{self.probes.to_string(index=False)}"

    def describe(self) -> str:
        """The answer in words (times in ms), the candidate below it, and the notes.

        ``mean`` and the ``_mean`` columns are the interval's centre: the geometric mean of
        the per-replication values (see :mod:`cqrs_lab.sim.plan_intervals`).
        """
        lines = [f"note: {n}" for n in self.notes]
        what = self.metric.removesuffix("_s").replace("_", " ")
        if self.value is None:
            top = int(self.probes[self.knob].max()) if len(self.probes) else 0
            lines.insert(
                0,
                f"no value of {self.knob} up to {top} is shown to keep {what} under "
                f"{self._t(self.limit)} with {self.confidence:.0%} confidence",
            )
            return "\n".join(lines)
        head = (
            f"{self.knob} = {self.value}: {what} {self._t(self.mean)} "
            f"({self.confidence:.0%} CI {self._t(self.ci_low, unit=False)}.."
            f"{self._t(self.ci_high)}, {self.replications} replications) "
            f"< {self._t(self.limit)}"
        )
        below = self.probes[self.probes[self.knob] == self.value - 1]
        if len(below):
            b = below.iloc[0]
            word = str(b["verdict"])
            verdict = word if word.startswith("misses") else "is not decisive"
            head += (
                f"; {self.value - 1} {verdict} (CI {self._t(b[f'{self.metric}_ci_low'], False)}"
                f"..{self._t(b[f'{self.metric}_ci_high'])}, {int(b['runs'])} replications)"
            )
        elif self.value == self.lower_bound:
            head += f"; {self.value - 1} is below the stability bound"
        return "\n".join([head, *lines])

    def _t(self, x: float, unit: bool = True) -> str:
        """A value of the metric as shown: seconds as milliseconds."""
        if self.metric.endswith("_s"):
            return f"{x * 1000:.4g}" + (" ms" if unit else "")
        return f"{x:.4g}"


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
    if knob == "commands.handlers":  # handlers per process; arrivals split over processes
        load = rate * scenario.commands.service.mean / scenario.commands.processes
    elif knob.startswith("projections.") and knob.endswith(".consumers"):
        p = scenario.projection(knob.split(".")[1])
        load = rate * (p.per_event.mean + p.per_batch.mean / p.batch_size)
    else:
        return 1
    return max(1, math.floor(load) + 1)


#: what a plan can target: the summary's tail times, in seconds
METRICS = tuple(
    f"{what}_{q}_s"
    for what in ("lag", "latency", "staleness")
    for q in ("p50", "p95", "p99", "max")
)


def plan(
    scenario: Scenario,
    *,
    knob: str = "projections.balances.consumers",
    metric: str = "lag_p99_s",
    limit: float = 0.5,
    low: int | None = None,
    high: int | None = None,
    replications: int = 3,
    max_replications: int = 12,
    confidence: float = 0.95,
    n_jobs: int = -1,
    backend: str = "loky",
    progress: bool | None = None,
) -> Plan:
    """The smallest ``knob`` value whose ``metric`` interval lies below ``limit``."""
    if knob not in knobs(scenario):
        raise ConfigError(
            f"knob {knob!r}: the planner raises a whole number of servers; choose one of "
            f"{', '.join(knobs(scenario))}"
        )
    if replications < 2:
        raise ConfigError(f"replications={replications}: pass >= 2 to give a confidence interval")
    if max_replications < replications:
        raise ConfigError(
            f"max_replications={max_replications}: at least replications={replications}"
        )
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence={confidence!r}: a fraction between 0 and 1, e.g. 0.95")
    if high is not None and high < 1:
        raise ConfigError(f"high={high} (--max): the largest value to try, a whole number >= 1")
    if metric not in METRICS:
        raise ConfigError(
            f"metric {metric!r}: the planner needs a time in seconds; choose one of "
            f"{', '.join(METRICS)}"
        )
    if metric.startswith("staleness_") and scenario.reads is None:
        raise ConfigError(
            f"metric {metric!r}: the scenario has no [reads], so no staleness to plan for; "
            "add a [reads] section or target a latency or lag"
        )
    if not limit > 0:
        raise ConfigError(f"limit={limit!r}: the largest acceptable {metric}, seconds > 0")
    if n_jobs == 0:
        raise ConfigError("n_jobs=0 (--jobs): pass a number of processes >= 1, or -1 for all cores")
    check_backend(backend)
    bound = stability_bound(scenario, knob)
    try:
        apply_param(scenario, knob, bound)
    except ConfigError as exc:
        raise ConfigError(
            f"knob {knob!r}: the stability bound is {bound} (the arrivals times the mean "
            f"service demand: fewer serve less than arrives), beyond what it may be ({exc}); "
            "no allowed value keeps up: lower the rate or the service time"
        ) from None
    view = knob.split(".")[1] if knob.startswith("projections.") else None
    given = high is not None
    if high is None:
        high = scenario.projection(view).partitions if view else max(2 * bound, 16)
    if high < bound:  # none of the values allowed keeps up: its queue grows without end
        raise ConfigError(
            f"{'high=' + str(high) + ' (--max)' if given else f'{view} has {high} partitions'}: "
            f"below the stability bound, {bound} {knob} (fewer serve less than what arrives, "
            f"and a short run's figures would look fine); "
            + (f"allow --max {bound} or more" if given else "give the view more partitions")
        )
    lo = max(1, bound if low is None else low)
    lo = min(lo, high)
    q = lag_quantile(metric)
    windows = q is not None and any(
        p.crash is not None
        and expected_crashes(scenario, p.name, lo if p.name == view else None) < TARGET_CRASHES
        for p in scenario.projections
    )
    notes = rare_event_notes(scenario, {view: lo} if view else None)
    if notes and windows:
        notes.append(
            "accounted for: each replication mixes a crash-free run with a run of more "
            "frequent crashes, weighted by the real crash rate"
        )
    elif notes:
        notes.append(f"{metric} is not a lag quantile, so the runs are not reweighted")

    # lags are judged on events committed at least `limit` before the end: one of those
    # still waiting has certainly waited longer than the limit
    horizon = scenario.duration - limit if scenario.duration > limit else scenario.duration
    width = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    with Executor(n_jobs, backend, progress, estimate_runs(lo, high, replications, windows)) as run:
        found = Candidates(
            scenario, knob, view, metric, limit, q, windows, horizon, width, replications,
            max_replications, confidence, run,
        )  # fmt: skip
        answer = found.search(lo, high)
    return _result(
        scenario, knob, metric, limit, confidence, answer, bound, found.probes, found.rows, notes
    )


def _result(
    scenario: Scenario,
    knob: str,
    metric: str,
    limit: float,
    confidence: float,
    answer: int | None,
    bound: int,
    probes: dict[int, dict[str, Any]],
    rows: list[dict[str, Any]],
    notes: list[str],
) -> Plan:
    cols = [knob, "runs", f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high", "meets",
            "verdict", "consumer_crashes", "crash_weight", "interval"]  # fmt: skip
    table = pd.DataFrame([probes[v] for v in sorted(probes) if "verdict" in probes[v]])[cols]
    runs = pd.DataFrame(rows).rename(columns={"value": knob, "metric": metric})
    best = probes[answer] if answer is not None else probes[max(probes)]
    return Plan(
        knob,
        metric,
        limit,
        confidence,
        int(best["runs"]),
        answer,
        float(best[f"{metric}_mean"]),
        float(best[f"{metric}_ci_low"]),
        float(best[f"{metric}_ci_high"]),
        bound,
        table,
        tuple(notes),
        runs,
    )
