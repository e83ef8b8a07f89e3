"""Parameter sweeps: a grid of scenario variants times independent replications, in parallel.

Parameters are named by dotted keys: ``rate`` (the arrival profile's base rate),
``duration``, ``seed``, ``commands.handlers``, ``commands.queue_limit``,
``projections.balances.consumers``, ``projections.balances.batch_size``, ``workload.accounts``
... Replication ``r`` of every grid point uses seed ``base + r`` (common random numbers, so
points are compared on the same arrivals). Runs go to joblib (local processes by default;
``backend="dask"`` or ``"ray"`` where a cluster is set up); a tqdm progress bar shows on a
terminal and stays quiet in CI or when output is not a TTY.

>>> from cqrs_lab.sim import builtin_scenario
>>> s = builtin_scenario().with_(duration=1.0, reads=None, slos=())
>>> df = sweep(s, {"commands.handlers": [2, 4]}, replications=2, n_jobs=1,
...            metrics=("latency_p99_s",))
>>> list(df.columns)[:4]
['commands.handlers', 'runs', 'latency_p99_s_mean', 'latency_p99_s_ci_low']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from cqrs_lab.display import show_progress
from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.queueing.tdist import mean_ci
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.simulation import simulate
from cqrs_lab.sim.sweep_params import BACKENDS, apply_param, check_backend

__all__ = ["BACKENDS", "DEFAULT_METRICS", "apply_param", "check_backend", "sweep", "sweep_runs"]

DEFAULT_METRICS = (
    "throughput_per_s",
    "latency_p99_s",
    "lag_p99_s",
    "staleness_p99_s",
    "shed",
    "lost",
    "duplicated_applied",
    "dead_lettered",
)


def metrics_for(scenario: Scenario) -> tuple[str, ...]:
    """:data:`DEFAULT_METRICS` that the scenario reports: without ``[reads]`` there is no
    staleness to report (its figure is empty), so it is left out rather than refused."""
    if scenario.reads is not None:
        return DEFAULT_METRICS
    return tuple(m for m in DEFAULT_METRICS if not m.startswith("staleness_"))


def check_grid(grid: Mapping[str, Sequence[Any]], metrics: Sequence[str]) -> None:
    """A grid sweeps each key over distinct values; the seed is the replications' (the
    scenario's seed + r: a swept seed would be overwritten and its rows mislabelled), and
    a metric may not share a column with a key."""
    for key, values in grid.items():
        if key in ("seed", "scenario.seed"):
            raise ConfigError(
                f"{key}: the replications choose the seeds (the scenario's seed, + 1, + 2, ...); "
                "vary them with replications (-r) and the base with --seed, not as a parameter"
            )
        listed = list(values)
        twice = [v for i, v in enumerate(listed) if v in listed[:i]]
        if twice:
            raise ConfigError(
                f"{key}={','.join(map(str, listed))}: {twice[0]!r} is given twice; each value "
                "once (repeats would pool the same runs and narrow the interval for nothing)"
            )
    clash = [m for m in metrics if m in grid or m == "replication"]
    if clash:
        raise ConfigError(f"metrics {clash}: also a column of the grid; leave them out")


def _run_one(scenario: Scenario, metrics: Sequence[str]) -> dict[str, Any]:
    summary = simulate(scenario).summary_dict()
    is_number, is_bool = pd.api.types.is_number, pd.api.types.is_bool  # numpy's too
    numeric = {k for k, v in summary.items() if is_number(v) or is_bool(v)}  # a bool: a share
    missing = [m for m in metrics if m not in numeric]
    if missing:
        why = (
            "the scenario has no [reads], so no staleness; add a [reads] section or "
            if scenario.reads is None and any(m.startswith("staleness_") for m in missing)
            else ""
        )
        raise ConfigError(
            f"metrics {missing}: not a number of the summary; {why}choose from {sorted(numeric)}"
        )
    return {m: summary[m] for m in metrics}


def _quiet() -> bool:
    return not show_progress()


def sweep_runs(
    scenario: Scenario,
    grid: Mapping[str, Sequence[Any]],
    *,
    replications: int = 5,
    metrics: Sequence[str] | None = None,
    n_jobs: int = -1,
    backend: str = "loky",
    progress: bool | None = None,
) -> pd.DataFrame:
    """One row per (grid point, replication): the parameters, ``replication`` and metrics
    (None: :func:`metrics_for` the scenario)."""
    if metrics is None:
        metrics = metrics_for(scenario)
    if replications < 1:
        raise ConfigError(f"replications={replications}: pass a whole number >= 1")
    if n_jobs == 0:
        raise ConfigError("n_jobs=0 (--jobs): pass a number of processes >= 1, or -1 for all cores")
    check_backend(backend)
    check_grid(grid, metrics)
    keys = list(grid)
    points = list(itertools.product(*(grid[k] for k in keys))) if keys else [()]
    jobs: list[tuple[dict[str, Any], int, Scenario]] = []
    for point in points:
        variant = scenario
        params = dict(zip(keys, point, strict=True))
        for k, v in params.items():
            variant = apply_param(variant, k, v)
        for r in range(replications):
            jobs.append((params, r, variant.with_(seed=scenario.seed + r)))
    results = list(_execute([j[2] for j in jobs], metrics, n_jobs, backend, progress))
    rows = [
        {**params, "replication": r, **res}
        for (params, r, _), res in zip(jobs, results, strict=True)
    ]
    return pd.DataFrame(rows)


def _execute(
    scenarios: list[Scenario],
    metrics: Sequence[str],
    n_jobs: int,
    backend: str,
    progress: bool | None,
) -> Iterator[dict[str, Any]]:
    from tqdm.auto import tqdm

    show = (not _quiet()) if progress is None else progress
    bar = tqdm(total=len(scenarios), disable=not show, unit="run", desc="simulating")
    try:
        if n_jobs == 1:
            for s in scenarios:
                yield _run_one(s, metrics)
                bar.update()
            return
        import joblib

        if backend == "ray":  # pragma: no cover - needs a ray installation
            from ray.util.joblib import register_ray  # type: ignore[import-not-found]

            register_ray()
        with joblib.parallel_backend(backend, n_jobs=n_jobs):
            parallel = joblib.Parallel(return_as="generator")
            for res in parallel(joblib.delayed(_run_one)(s, metrics) for s in scenarios):
                yield res
                bar.update()
    finally:
        bar.close()


def summarise(
    runs: pd.DataFrame, params: Iterable[str], metrics: Sequence[str], confidence: float = 0.95
) -> pd.DataFrame:
    """Mean and t confidence interval of each metric per grid point. Every summary figure
    is a time, a count or a share: its interval is cut at 0 (the mean cannot be below it,
    and the part of an interval outside what the mean can be covers nothing)."""
    keys = list(params)
    groups = runs.groupby(keys, sort=False) if keys else [((), runs)]
    out = []
    for key, g in groups:
        values = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row["runs"] = len(g)
        for m in metrics:
            xs = [float(x) for x in g[m] if x is not None and not _nan(x)]
            if len(xs) >= 2:
                ci = mean_ci(xs, confidence)
                mean, lo, hi = ci.mean, ci.low, ci.high
                if min(xs) >= 0:
                    lo = max(lo, 0.0)
            else:
                mean = xs[0] if xs else math.nan
                lo = hi = math.nan
            row |= {f"{m}_mean": mean, f"{m}_ci_low": lo, f"{m}_ci_high": hi}
        out.append(row)
    return pd.DataFrame(out)


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def sweep(
    scenario: Scenario,
    grid: Mapping[str, Sequence[Any]],
    *,
    replications: int = 5,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_jobs: int = -1,
    backend: str = "loky",
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run the grid times ``replications``; one row per grid point with means and CIs
    (``metrics`` None: :func:`metrics_for` the scenario)."""
    if metrics is None:
        metrics = metrics_for(scenario)
    runs = sweep_runs(
        scenario,
        grid,
        replications=replications,
        metrics=metrics,
        n_jobs=n_jobs,
        backend=backend,
        progress=progress,
    )
    return summarise(runs, list(grid), metrics, confidence)
