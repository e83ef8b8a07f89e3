"""The knee, measured: an open-model staircase past saturation, and the capacity it shows.

:func:`measure_knee` drives the server (pinned to its own CPU, Locust to the other) with the
``knee`` profile of :mod:`cqrs_lab.load.shapes`: steps of offered commands/s, each 1.5 times
the one before, in segments of five (a fresh server each), until the server stops following
or the generator runs out of headroom, or the time budget is spent. :func:`step_table` turns
one segment's request records into a row per step; :func:`find_knee` applies the rule
(:mod:`cqrs_lab.load.knee_rule`: when a step follows, where the knee is, the capacity) to
the steps the generator did not bound.

A step is **generator-bound** when the one rule of :func:`~cqrs_lab.load.generator.
generator_bound` says so (sends late or short while the users were held by the server are
the server's doing, :func:`~cqrs_lab.load.generator.held_by_server`). A step the generator
sent short of the offered load, whose commands the server finished in full while the users
were not held, is the generator's too. The ramp stops once its top step is
generator-bound.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.generator import (
    generator_bound,
    held_by_server,
    per_task,
    waiting_share,
)
from cqrs_lab.load.knee_rule import FOLLOW, KneeResult, find_knee, step_follows
from cqrs_lab.load.options import LoadTestOptions
from cqrs_lab.load.results import LoadResult, load_results
from cqrs_lab.load.shapes import Profile, knee_steps
from cqrs_lab.load.summary import cpu_rate

__all__ = ["KneeResult", "find_knee", "knee_of_run", "measure_knee", "step_table"]

#: steps per segment, and the first step's share of the segment's peak (ratio 5 ** 0.25)
STEPS, BASE = 5, 0.2
#: what a finished command's outcome may be (decided: its answer came from the domain)
FINISHED = ("accepted", "refused", "conflict")
#: share of the users busy waiting for answers from which late sends are the server's doing


def step_table(
    result: LoadResult, profile: Profile, per_task_commands: float, settle_s: float = 1.0
) -> pd.DataFrame:
    """One row per step of ``profile`` (the knee staircase ``result`` ran, its peak in user
    tasks/s): offered, sent, finished and accepted commands/s, shed and error counts,
    command latency p50/p99 (s), server and generator CPU (cores), the sends' lateness p95
    (s), and whether the generator was bound there. The first ``settle_s`` seconds of each
    step are left out (the queue of the step before drains or fills)."""
    r = result.requests
    cmd = r[r["method"] == "POST"]
    end = (cmd["end"] - result.t0).to_numpy(dtype=float)
    users = int(result.run.get("users") or 1)
    processes = int((result.run.get("options") or {}).get("processes") or 1)
    limit = float((result.run.get("server_cpu_limit") or {}).get("cores") or math.nan)
    rows = []
    for i, (start, stop, level) in enumerate(knee_steps(profile)):
        lo, hi = start + settle_s, stop
        width = hi - lo
        sent = cmd[(cmd["t"] >= lo) & (cmd["t"] < hi)]
        done = (end >= lo) & (end < hi)
        fin = cmd[done & cmd["outcome"].isin(FINISHED).to_numpy()]
        buckets = np.floor((fin["end"] - result.t0).to_numpy(dtype=float) - lo).astype(int)
        per_second = np.bincount(buckets, minlength=int(width))[: int(width)].astype(float)
        lat = fin["latency_s"].to_numpy(dtype=float)
        all_sent = r[(r["t"] >= lo) & (r["t"] < hi)]
        late = all_sent["lateness_s"].dropna().to_numpy(dtype=float)
        row: dict[str, Any] = {
            "step": i,
            "offered_per_s": level * per_task_commands,
            "sent_per_s": len(sent) / width,
            "finished_per_s": len(fin) / width,
            "finished_sd_per_s": float(per_second.std(ddof=1)) if len(per_second) > 1 else 0.0,
            "seconds": len(per_second),
            "window_s": width,
            "throughput_per_s": float((fin["outcome"] == "accepted").sum()) / width,
            "shed": int((sent["outcome"] == "shed").sum()),
            "errors": int((sent["outcome"] == "error").sum()),
            "latency_p50_s": float(np.percentile(lat, 50)) if len(lat) else math.nan,
            "latency_p99_s": float(np.percentile(lat, 99)) if len(lat) else math.nan,
            "server_cpu": cpu_rate(result.path, result.t0, lo, hi, "server_cpu_s"),
            "server_cpu_limit": limit,
            "generator_cpu": cpu_rate(result.path, result.t0, lo, hi, "generator_cpu_s"),
            "lateness_p95_s": float(np.percentile(late, 95)) if len(late) else math.nan,
            "busy_share": waiting_share(
                len(all_sent) / width, float(all_sent["latency_s"].mean()), users
            )
            if len(all_sent)
            else 0.0,
        }
        row["generator_bound_why"] = _step_bound(row, processes, width)
        row["generator_bound"] = bool(row["generator_bound_why"])
        rows.append(row)
    return pd.DataFrame(rows)


def _step_bound(row: dict[str, Any], processes: int, width: float) -> str:
    """Why the generator limited this step ('' if it did not, or if the server did)."""
    late, typical = float(row["lateness_p95_s"]), float(row.get("latency_p50_s", math.nan))
    why = generator_bound(
        late,
        float(row["sent_per_s"]),
        float(row["offered_per_s"]),
        float(row["generator_cpu"]),
        processes,
        width,
        busy_share=float(row["busy_share"]),
        latency_p50_s=typical,
    )
    sent, offered, done = row["sent_per_s"], row["offered_per_s"], row["finished_per_s"]
    short = not step_follows(pd.Series(row)) and done >= FOLLOW * sent
    if not why and short and not held_by_server(float(row["busy_share"]), late, typical):
        return (
            f"sent {sent:.1f} of the {offered:.1f} commands/s aimed at and the server "
            "finished them all: the generator fell short"
        )
    return why


def machine_load() -> dict[str, float]:
    """How busy the whole machine was: the 1-minute load average and the share of the last
    10 s some task waited for a CPU (Linux pressure stall information; NaN elsewhere). On a
    shared machine a pinned server still waits while other processes run on its CPU."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        pressure = float(dict(f.split("=") for f in some[1:])["avg10"]) / 100
    except (OSError, IndexError, KeyError, ValueError):
        pressure = math.nan
    return {"load_avg_1m": load, "cpu_pressure": pressure}


def measure_knee(
    opts: LoadTestOptions,
    out: str | Path,
    start_per_s: float = 200.0,
    step_s: float = 5.0,
    settle_s: float = 1.0,
    budget_s: float = 110.0,
    max_segments: int = 4,
) -> KneeResult:
    """Run the knee staircase against the server ``opts`` describe (its shape, rate,
    duration and out are set here) into ``out/segment-N`` and return the knee: segments of
    :data:`STEPS` steps, the first from ``start_per_s`` offered commands/s up, each 1.5 times
    the one before, until a knee is confirmed with a plateau of two saturated steps or more,
    the generator is bound, ``max_segments`` ran or another would pass ``budget_s`` seconds
    (the default, about 30 s a segment: at most 3 segments, from 200 to 11,000 commands/s)."""
    if not (math.isfinite(start_per_s) and start_per_s > 0):
        raise ConfigError(f"start_per_s={start_per_s!r}: the first step's commands/s, > 0")
    if not step_s > settle_s + 1.0:
        raise ConfigError(f"step_s={step_s!r}: seconds per step, > settle_s + 1 ({settle_s})")
    per = per_task(opts.classes)[0]
    if not per > 0:
        raise ConfigError("classes: none of these user classes sends commands (WriterUser?)")
    if max_segments < 1:
        raise ConfigError(f"max_segments={max_segments!r}: at least 1 segment of the ramp")
    base = Path(out)
    t_start, peak = time.monotonic(), start_per_s / BASE
    tables: list[pd.DataFrame] = []
    result = None
    for seg in range(1, max_segments + 1):
        profile = Profile("knee", peak=peak / per, duration=STEPS * step_s, steps=STEPS, base=BASE)
        seg_opts = replace(
            opts, rate=peak / per, shape="knee", duration=STEPS * step_s,
            out=str(base / f"segment-{seg}"), audit=False,
        )  # fmt: skip
        from cqrs_lab.load.runner import run_loadtest

        t_seg = time.monotonic()
        folder, code = run_loadtest(seg_opts)
        if code != 0:
            raise ConfigError(f"the knee ramp's segment {seg} failed (exit {code}); see {folder}")
        table = step_table(load_results(folder), profile, per, settle_s)
        tables.append(table.assign(segment=seg, **machine_load()))
        result = find_knee(pd.concat(tables, ignore_index=True))
        spent = time.monotonic() - t_start
        saturated = int((result.steps["role"] == "saturated").sum())
        if (result.reached and saturated >= 2) or bool(table["generator_bound"].iloc[-1]):
            break  # a plateau of two steps or more, or no headroom left at the top
        if spent + (time.monotonic() - t_seg) > budget_s:
            result.why += f" (stopped: the {budget_s:.0f} s budget)"
            break
        peak = peak / BASE * BASE ** (-1 / (STEPS - 1))
    if result is None:  # unreachable: max_segments >= 1 ran a segment
        raise ConfigError("the knee ramp ran no segment")
    return result


def knee_of_run(result: LoadResult, settle_s: float = 1.0) -> KneeResult:
    """The knee of one ``cqrs-lab loadtest --shape knee --rate R`` run (open model: the
    staircase of :data:`STEPS` steps to R user tasks/s over the run's duration)."""
    o = result.run.get("options") or {}
    if o.get("shape") != "knee" or not o.get("rate"):
        raise ConfigError(f"{result.path}: not an open-model knee run (--shape knee --rate R)")
    duration = float(o["duration"])
    profile = Profile("knee", peak=float(o["rate"]), duration=duration, steps=STEPS, base=BASE)
    per = per_task(o.get("classes") or ("WriterUser", "ReaderUser", "SessionUser"))[0]
    settle = min(settle_s, duration / STEPS / 2)
    return find_knee(step_table(result, profile, per, settle))
