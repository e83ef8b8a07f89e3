"""The planner's search over the knob's values (:func:`cqrs_lab.sim.planner.plan` sets it up):
gallop up from the stability bound to the first value that meets the target, then bisect the
gap; each value judged by sequential stopping on common random numbers, crash-free runs
first where rare crashes are reweighted (see :mod:`cqrs_lab.sim.planner`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cqrs_lab.sim.plan_intervals import positive_interval
from cqrs_lab.sim.plan_search import (
    Job,
    accelerated,
    acceleration,
    crash_free,
    mean_crashes,
    per_replication,
)
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.sweep_params import apply_param

__all__ = ["Candidates"]


@dataclass
class Candidates:
    """The values of ``knob`` judged against ``metric`` < ``limit``, their runs made by
    ``run`` (an :class:`~cqrs_lab.sim.plan_search.Executor`); ``probes`` (per value: its
    verdict and interval) and ``rows`` (per run) fill as values are judged."""

    scenario: Scenario
    knob: str
    view: str | None  # the projection whose consumers the knob counts (None: handlers)
    metric: str
    limit: float
    quantile: float | None  # the lag quantile the metric is (None: not a lag quantile)
    windows: bool  # rare crashes: crash-free runs mixed with accelerated crash runs
    horizon: float  # lags judged on events committed before it
    width: int  # processes running at once
    replications: int
    max_replications: int
    confidence: float
    run: Callable[[list[Job]], list[dict[str, Any]]]
    probes: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def search(self, lo: int, high: int) -> int | None:
        """The smallest value in ``lo..high`` shown to meet the target (None: none)."""
        answer: int | None = None
        below, v, step = lo - 1, lo, 1
        while True:  # gallop up from the bound
            if self.decide(v):
                answer = v
                break
            below = v
            if v >= high:
                break
            v, step = min(high, v + step), step * 2
        if answer is not None:  # bisect between the last miss and the first meet
            while answer - below > 1:
                mid = (below + answer) // 2
                if self.decide(mid):
                    answer = mid
                else:
                    below = mid
        return answer

    def variant_jobs(self, v: int, reps: range, kinds: tuple[str, ...]) -> list[Job]:
        scenario, view, windows = self.scenario, self.view, self.windows
        s = apply_param(scenario, self.knob, v)
        a = acceleration(s, view, v) if windows and view else 1.0
        if windows and not view:
            a = min(acceleration(s, p.name, p.consumers) for p in s.projections if p.crash)
        jobs = []
        for r in reps:
            seeded = s.with_(seed=scenario.seed + r)  # common random numbers
            if not windows:
                jobs.append(Job(v, r, "run", seeded, self.metric))
                continue
            if a > 1.0 and "crash-free" in kinds:
                jobs.append(Job(v, r, "crash-free", crash_free(seeded), self.metric, self.horizon))
            if "crashes" in kinds:
                jobs.append(Job(v, r, "crashes", accelerated(seeded, a), self.metric, self.horizon))
        self.probes.setdefault(v, {})["crash_weight"] = 1.0 / a
        return jobs

    def _made(self, results: list[dict[str, Any]]) -> None:
        self.rows.extend({k: x for k, x in res.items() if k != "lags"} for res in results)

    def screen(self, v: int) -> dict[str, Any] | None:
        """Crash-free runs first: crashes only add lag, so a miss there is a miss."""
        reps = range(min(self.replications, max(2, self.width)))
        results = self.run(self.variant_jobs(v, reps, ("crash-free",)))
        if not results:  # crashes are frequent enough: no crash-free part
            return None
        self._made(results)
        iv = positive_interval(
            per_replication(results, 0.0, self.quantile, "crash-free"), self.confidence
        )
        if iv.low < self.limit:
            return {"results": results}
        metric = self.metric
        return {
            self.knob: v,
            "runs": len(results),
            f"{metric}_mean": iv.center,
            f"{metric}_ci_low": iv.low,
            f"{metric}_ci_high": iv.high,
            "meets": False,
            "verdict": "misses without crashes",
            "consumer_crashes": 0.0,
            "interval": iv.method,
        }

    def decide(self, v: int) -> bool:
        """Whether ``v`` is shown to meet the target (judged once, remembered in probes)."""
        probes, windows, limit = self.probes, self.windows, self.limit
        if v in probes and "verdict" in probes[v]:
            return bool(probes[v]["verdict"] == "meets")
        done: list[dict[str, Any]] = []
        if windows:
            screened = self.screen(v)
            if screened is not None and "verdict" in screened:
                probes[v] |= screened
                return False
            done = screened["results"] if screened is not None else []
        n, n_free = 0, len(done)  # replications made, crash-free runs made (screen)
        while True:
            batch = range(n, self.replications if n == 0 else min(n + 2, self.max_replications))
            free = range(max(n, n_free), batch.stop)
            jobs = self.variant_jobs(v, free, ("crash-free",)) if windows else []
            results = self.run(jobs + self.variant_jobs(v, batch, ("crashes",)))
            self._made(results)
            done += results
            n = batch.stop
            quantile = self.quantile if windows else None
            values = per_replication(done, probes[v]["crash_weight"], quantile)
            iv = positive_interval(values, self.confidence)
            verdict = "meets" if iv.high < limit else "misses" if iv.low >= limit else "straddles"
            if verdict != "straddles" or n >= self.max_replications:
                break
        metric = self.metric
        probes[v] |= {
            self.knob: v,
            "runs": n,
            f"{metric}_mean": iv.center,
            f"{metric}_ci_low": iv.low,
            f"{metric}_ci_high": iv.high,
            "meets": verdict == "meets",
            "verdict": verdict if verdict != "straddles" else "not decisive",
            "consumer_crashes": mean_crashes(done),
            "interval": iv.method,
        }
        return verdict == "meets"
