"""The planner's runs: rare crashes, crash windows weighted by the crash rate, and workers.

**Rare events.** A crash every ~600 s per consumer in a 60 s run happens in a run or it
does not; a replication's p99 lag then jumps between "no crash" and "one crash", and a
handful of replications says little about the long run. The long-run lag distribution is a
mixture: while crash episodes are short next to the time between them, each crash adds its
own slow events to the crash-free distribution, so the distribution at crash rate ``λ`` is
``F_λ = F_0 + λ g`` (linear in ``λ``) for some ``g``. A run at an *accelerated* rate ``λ' = aλ``
(``a`` > 1, chosen so about :data:`TARGET_CRASHES` crashes fall in each run) measures
``F_λ'``; then ``F_λ = (1 - 1/a) F_0 + (1/a) F_λ'``: the crash-free run and the crash run
mixed with weight ``w = 1/a`` on the crash run. The planner takes the p99 of that mixture per
replication (the two runs share their seed). Overlapping episodes in the accelerated run
(two consumers down at once) make it a little pessimistic, never optimistic.

>>> from cqrs_lab.sim.builtin import resolve_scenario
>>> from cqrs_lab.sim.scenario_parts import CrashSpec
>>> s = resolve_scenario("crashes_effectively_once").with_(duration=300.0)
>>> s = s.with_projection("balances", crash=CrashSpec(Dist("exponential", 600.0), Dist.fixed(2.0)))
>>> print(rare_event_notes(s)[0])
a crash every ~600 s in a 300 s run: 1.5 expected crashes per run (balances, 3 consumers); \
the p99 may miss them
>>> round(acceleration(s, "balances", 3), 2)
2.01
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cqrs_lab.display import show_progress
from cqrs_lab.sim.distributions import Dist
from cqrs_lab.sim.plan_intervals import weighted_quantile
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.simulation import simulate

__all__ = [
    "TARGET_CRASHES",
    "Executor",
    "Job",
    "accelerated",
    "acceleration",
    "crash_free",
    "estimate_runs",
    "expected_crashes",
    "lag_quantile",
    "mean_crashes",
    "per_replication",
    "rare_event_notes",
    "run_job",
]

#: fewer expected crashes per run than this is "undersampled"; crash runs aim at this many
TARGET_CRASHES = 3.0


def expected_crashes(scenario: Scenario, projection: str, consumers: int | None = None) -> float:
    """Crashes one run of ``scenario`` expects in ``projection``: duration / ttf x consumers."""
    p = scenario.projection(projection)
    if p.crash is None:
        return 0.0
    c = p.consumers if consumers is None else consumers
    return scenario.duration * c / p.crash.ttf.mean if p.crash.ttf.mean > 0 else math.inf


def rare_event_notes(scenario: Scenario, consumers: dict[str, int] | None = None) -> list[str]:
    """One line per projection whose crashes a run of ``scenario`` undersamples."""
    notes = []
    for p in scenario.projections:
        if p.crash is None:
            continue
        c = (consumers or {}).get(p.name, p.consumers)
        x = expected_crashes(scenario, p.name, c)
        if x < TARGET_CRASHES:
            notes.append(
                f"a crash every ~{p.crash.ttf.mean:g} s in a {scenario.duration:g} s run: "
                f"{x:.2g} expected crashes per run ({p.name}, {c} consumer{'s' * (c != 1)}); "
                "the p99 may miss them"
            )
    return notes


def acceleration(scenario: Scenario, projection: str, consumers: int) -> float:
    """How much faster crashes run in a crash run so ~TARGET_CRASHES fall in it (>= 1)."""
    p = scenario.projection(projection)
    if p.crash is None:
        return 1.0
    cycle = p.crash.ttf.mean + p.crash.ttr.mean  # a consumer crashes once per up+down cycle
    wanted = max(1.0, TARGET_CRASHES * cycle / (consumers * scenario.duration))
    # a consumer stays up at least as long as its repair takes (so episodes rarely overlap)
    return max(1.0, min(wanted, cycle / (2 * p.crash.ttr.mean) if p.crash.ttr.mean else wanted))


def accelerated(scenario: Scenario, a: float) -> Scenario:
    """``scenario`` with every projection's crashes ``a`` times as frequent (same repairs;
    ``a`` no more than :func:`acceleration` allows each of them)."""
    for p in scenario.projections:
        if p.crash is None or a == 1.0:
            continue
        cycle = p.crash.ttf.mean + p.crash.ttr.mean
        ttf = _scaled(p.crash.ttf, cycle / a - p.crash.ttr.mean)
        scenario = scenario.with_projection(p.name, crash=dataclasses.replace(p.crash, ttf=ttf))
    return scenario


def crash_free(scenario: Scenario) -> Scenario:
    """``scenario`` without consumer crashes."""
    for p in scenario.projections:
        if p.crash is not None:
            scenario = scenario.with_projection(p.name, crash=None)
    return scenario


def _scaled(d: Dist, mean: float) -> Dist:
    scale = mean / d.mean if d.mean > 0 else 1.0
    return dataclasses.replace(d, mean=mean, samples=tuple(x * scale for x in d.samples))


def lag_quantile(metric: str) -> float | None:
    """The quantile a ``lag_pNN_s`` metric names (None for any other metric).

    >>> lag_quantile("lag_p99_s"), lag_quantile("latency_p99_s")
    (0.99, None)
    """
    if metric.startswith("lag_p") and metric.endswith("_s"):
        digits = metric[len("lag_p") : -2]
        if digits.isdigit():
            return int(digits) / float(10 ** len(digits))
    return None


@dataclass(frozen=True)
class Job:
    """One simulation the planner asks for: a variant, its seed, and what to bring back."""

    value: int
    replication: int
    kind: str  # "run" (the summary metric), "crash-free" or "crashes" (per-event lags)
    scenario: Scenario
    metric: str
    horizon: float = math.inf  # lags of events committed by then (duration - the limit)


def run_job(job: Job) -> dict[str, Any]:
    """Simulate ``job`` (in a worker); the metric, the crashes and, for windows, the lags."""
    result = simulate(job.scenario)
    summary = result.summary_dict()
    out: dict[str, Any] = {
        "value": job.value,
        "replication": job.replication,
        "kind": job.kind,
        "seed": job.scenario.seed,
        "consumer_crashes": int(summary["consumer_crashes"]),
        "metric": summary.get(job.metric),
    }
    if job.kind != "run":
        out["lags"] = _lags(result, job.horizon)
    return out


def _lags(result: Any, horizon: float) -> Any:
    """First-application lags of the events committed by ``horizon`` (as the summary's lag
    takes them); one committed by then and still not applied at the end has waited at least
    ``duration - horizon`` (the limit): it counts as ``inf``, above any limit, so a crash
    late in a run makes the quantile pessimistic, never optimistic."""
    apps = result.applications
    first = apps[~apps["duplicate"] & ~apps["replay"] & ~apps["rolled_back"]]
    lags = first["lag_s"].to_numpy(dtype=float)[first["committed_s"].to_numpy(float) <= horizon]
    waiting = 0
    envs = [e for e in result.engine.store.read_all() if e.recorded_at <= horizon]
    for _, g in first.groupby("projection", sort=False):
        handled, applied = set(g["event_type"]), set(g["position"])
        waiting += sum(1 for e in envs if e.event_type in handled and e.position not in applied)
    return np.concatenate((lags[~np.isnan(lags)], np.full(waiting, np.inf)))


Runner = Callable[[list[Job]], list[dict[str, Any]]]


def per_replication(
    results: list[dict[str, Any]], weight: float, q: float | None, only: str | None = None
) -> list[float]:
    """One value per replication: the summary metric, or the weighted mixture's quantile
    (``only``: the quantile of that kind of run alone)."""
    if q is None:
        return [float(r["metric"]) for r in results]
    by_rep: dict[int, dict[str, Any]] = {}
    for r in results:
        by_rep.setdefault(int(r["replication"]), {})[r["kind"]] = r["lags"]
    out = []
    for rep in sorted(by_rep):
        parts = by_rep[rep]
        if only is not None:
            out.append(weighted_quantile([(parts[only], 1.0)], q))
            continue
        mix = [(parts["crashes"], weight)]
        if "crash-free" in parts:
            mix.append((parts["crash-free"], 1.0 - weight))
        out.append(weighted_quantile(mix, q))
    return out


def mean_crashes(results: list[dict[str, Any]]) -> float:
    """Consumer crashes per run, over the runs that have crashes enabled."""
    xs = [int(r["consumer_crashes"]) for r in results if r["kind"] != "crash-free"]
    return sum(xs) / len(xs) if xs else 0.0


def estimate_runs(lo: int, high: int, replications: int, windows: bool) -> int:
    """Runs the plan expects (the progress bar's total, raised if more are needed)."""
    probes = 2 + math.ceil(math.log2(max(1, high - lo + 1)))
    return probes * replications * (2 if windows else 1)


class Executor:
    """A context giving a runner over the plan's whole life: one worker pool, one bar."""

    def __init__(self, n_jobs: int, backend: str, progress: bool | None, total: int) -> None:
        self.n_jobs, self.backend, self.total = n_jobs, backend, total
        self.show = show_progress() if progress is None else progress
        self._stack: list[Any] = []

    def __enter__(self) -> Runner:
        from tqdm.auto import tqdm

        bar = tqdm(total=self.total, disable=not self.show, unit="run", desc="planning")
        self._stack.append(bar)
        parallel = None
        if self.n_jobs != 1:
            import joblib

            parallel = joblib.Parallel(n_jobs=self.n_jobs, backend=self.backend)
            parallel.__enter__()
            self._stack.append(parallel)

        def run(jobs: list[Job]) -> list[dict[str, Any]]:
            if bar.n + len(jobs) > (bar.total or 0):
                bar.total = bar.n + len(jobs)
                bar.refresh()
            out = []
            for res in self._each(parallel, jobs):
                out.append(res)
                bar.update()
            return out

        return run

    @staticmethod
    def _each(parallel: Any, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        if parallel is None:
            yield from map(run_job, jobs)
            return
        import joblib

        yield from parallel(joblib.delayed(run_job)(j) for j in jobs)

    def __exit__(self, *exc: object) -> None:
        while self._stack:
            obj = self._stack.pop()
            if hasattr(obj, "__exit__"):
                obj.__exit__(None, None, None)
            else:
                obj.close()
