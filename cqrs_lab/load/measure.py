"""What a load test measured, in the twin's terms, and whether a level may calibrate it.

:func:`measure` reduces one run, or the repeats of one level pooled, to the figures the
twin predicts (:data:`~cqrs_lab.load.twin_display.METRICS`, seconds and commands/s) and
what says how the level went: commands sent and aimed at, the generator's lateness and
CPU, the server's CPU. :func:`why_generator_bound` applies the one rule of
:func:`cqrs_lab.load.generator.generator_bound` to those figures, and
:func:`check_calibration` refuses a generator-bound level as a calibration (a twin
calibrated from it learns Locust, not the server); :func:`~cqrs_lab.load.twin.calibrate`
and :func:`~cqrs_lab.load.compare.compare` call it unless forced, as ``cqrs-lab twin`` does
unless ``--force``.

>>> why_generator_bound({"generator_lateness_p95_s": 0.001, "sent_commands_per_s": 60.0,
...                      "offered_commands_per_s": 100.0})
'sent 60.0 of the 100.0 commands/s aimed at (< 90%)'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cqrs_lab.core import load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.load.answer_delay import latency_parts, pooled_parts
from cqrs_lab.load.calibration_inputs import cpu_utilisation, lags, primary_view, window
from cqrs_lab.load.generator import generator_bound, per_task
from cqrs_lab.load.results import LoadResult, commands, percentiles
from cqrs_lab.load.summary import generator_cores
from cqrs_lab.load.twin_display import METRICS

__all__ = ["check_calibration", "measure", "one_domain", "server_cores", "why_generator_bound"]


def measure(
    results: LoadResult | Sequence[LoadResult], warmup: float = 2.0, view: str | None = None
) -> dict[str, float]:
    """Measured figures of one run, or of repeats of one level pooled, in their steady
    windows (seconds, ``_s``; rates ``_per_s``): the :data:`METRICS` (percentiles over every
    repeat's raw samples together; the lag figures of ``view``, by default the primary view
    of the domain the runs served), ``sent_commands_per_s`` (what Locust sent),
    ``offered_commands_per_s`` (what was aimed at: ``--rate``, user tasks/s, times the
    commands per task of the user classes), ``generator_lateness_p95_s`` (the p95 of the
    sends' lateness), ``server_cpu`` and ``generator_cpu`` (cores), ``server_idle_cpu``
    (cores the server used while idle before the load, each run's weighted by its window:
    what the twin's loop, busy only, leaves out), ``window_s``,
    ``busy_share`` (the share of the users waiting for an answer on average: requests/s
    times their mean latency, over the users, :func:`~cqrs_lab.load.generator.
    waiting_share`), ``server_cores`` (the cores the server may use: its ``--server-cpus``
    limit, else one per server process), and the p50 and p95 of the parts of the
    commands' latencies (``to_app_p50_s``, ``app_p50_s``, ``answer_delay_p50_s``, ...: the
    time to the server's app, in it, and the load generator's delay taking the answer,
    :mod:`cqrs_lab.load.answer_delay`; NaN for runs without request ids)."""
    runs = [results] if isinstance(results, LoadResult) else list(results)
    if not runs:
        raise ConfigError("measure: give at least one load test result")
    domain = one_domain(runs, "measure")
    view = view or primary_view(load_domain(domain))
    span = n_cmd = n_ok = waited = idle = 0.0
    latency, lag, late, cpu, gen, parts = [], [], [], [], [], []
    for result in runs:
        lo, hi = window(result, warmup)
        r = result.requests
        r = r[(r["t"] >= lo) & (r["t"] < hi)]
        cmd = commands(r)
        span += hi - lo
        n_cmd += len(cmd)
        n_ok += float(cmd["ok"].sum())
        latency.append(cmd[cmd["ok"]]["latency_s"].to_numpy(dtype=float))
        lag.append(lags(result, lo, hi, view))
        late.append(r["lateness_s"].to_numpy(dtype=float))
        waited += float(r["latency_s"].sum()) / max(1, int(result.run.get("users") or 1))
        cpu.append(cpu_utilisation(result, lo, hi) * (hi - lo))
        idle += float(result.run.get("server_idle_cpu") or 0.0) * (hi - lo)
        gen.append(generator_cores(result, lo, hi))
        parts.append(latency_parts(cmd, result.stages))
    opts = runs[0].run.get("options", {}) or {}
    rate = opts.get("rate")
    share = per_task(opts.get("classes") or ("WriterUser", "ReaderUser", "SessionUser"))[0]
    p = percentiles(np.concatenate(latency), "command_latency_", "_s")
    lp = percentiles(np.concatenate(lag), "lag_", "_s")
    return {
        "sent_commands_per_s": n_cmd / span, "throughput_per_s": n_ok / span,
        **{k: p[k] for k in METRICS[1:4]}, **{k: lp[k] for k in METRICS[4:]},
        "server_cpu": sum(cpu) / span, "server_idle_cpu": idle / span, "window_s": span,
        "offered_commands_per_s": float(rate) * share if rate else float("nan"),
        "generator_lateness_p95_s": percentiles(np.concatenate(late))["p95"],
        "generator_cpu": float(np.mean(gen)), "processes": float(opts.get("processes") or 1),
        "busy_share": waited / span,
        "server_cores": server_cores(runs[0]),
        **pooled_parts(parts),
    }  # fmt: skip


def server_cores(result: LoadResult) -> float:
    """The cores the served processes may use: the run's CPU limit, else one per process
    (an event loop uses one core at most)."""
    limit = (result.run.get("server_cpu_limit") or {}).get("cores")
    if limit:
        return float(limit)
    return float((result.run.get("options") or {}).get("server_workers") or 1)


def one_domain(runs: Sequence[LoadResult], what: str) -> str:
    """The domain every run served (ConfigError naming two runs that differ)."""
    first = runs[0]
    for r in runs[1:]:
        if r.domain != first.domain:
            raise ConfigError(
                f"{what}: {first.path.name} served {first.domain!r} but {r.path.name} served "
                f"{r.domain!r}; give runs of one domain"
            )
    return first.domain


def why_generator_bound(measured: dict[str, float]) -> str:
    """Why the generator limited this level ('' when it did not): the one rule of
    :func:`cqrs_lab.load.generator.generator_bound`, on :func:`measure`'s figures (a level
    whose users the server held is the server's, judged as saturated)."""
    m = measured
    return generator_bound(
        m["generator_lateness_p95_s"],
        m["sent_commands_per_s"],
        m["offered_commands_per_s"],
        m.get("generator_cpu", float("nan")),
        int(m.get("processes", 1)),
        m.get("window_s", float("nan")),
        busy_share=m.get("busy_share", float("nan")),
        latency_p50_s=m.get("command_latency_p50_s", float("nan")),
    )


def check_calibration(
    runs: LoadResult | Sequence[LoadResult],
    warmup: float = 2.0,
    view: str | None = None,
    force: bool = False,
) -> None:
    """Raise :class:`ConfigError` naming the level and why if the generator limited these
    runs (one calibration level: a run, or repeats pooled): a twin calibrated from them
    learns Locust, not the server. With ``force`` nothing is checked."""
    if force:
        return
    group = [runs] if isinstance(runs, LoadResult) else list(runs)
    why = why_generator_bound(measure(group, warmup, view))
    if why:
        name = "+".join(r.path.name for r in group)
        raise ConfigError(
            f"calibration level {name} is generator-bound ({why}); measure it again with a "
            "lower rate or more --processes, calibrate from another level (--calibrate-from), "
            "or calibrate from it anyway (--force; force=True from Python)"
        )
