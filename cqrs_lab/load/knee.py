"""The knee, measured: an open-model staircase past saturation, and the capacity it shows.

:func:`measure_knee` drives the server (pinned to its own CPU, Locust to the other) with the
``knee`` profile of :mod:`cqrs_lab.load.shapes`: steps of offered commands/s, each 1.5 times
the one before, in segments of five (a fresh server each), until the server stops following
or the generator runs out of headroom, or the time budget is spent. :func:`step_table` turns
one segment's request records into a row per step; :func:`find_knee` applies the rule:

- a step is **generator-bound** when the one rule of :func:`~cqrs_lab.load.generator.
  generator_bound` says so, except that sends late (or short) while the users were held
  by the server are the server's doing: a Locust user whose request is still in flight
  cannot send on time. Held: at least :data:`BUSY_SHARE` of the users waiting for an
  answer on average (Little's law: requests/s times their mean latency, over the users),
  or the sends' lateness p95 no longer than the median answer. A step the generator sent
  short of the offered load, whose commands the server finished in full while the users
  were not held, is the generator's. Locust over 0.9 core always is. Such steps are left
  out of what follows;
- a step **follows** when the commands the server finished (answered 2xx, refused or
  conflict, counted by completion time) reach :data:`FOLLOW` (95%) of the offered
  commands/s, within Poisson noise (:data:`POISSON_SIGMAS`);
- the **knee** is the first usable step that does not follow, after which no usable step
  follows again (one dip is noise, not a knee). The measured **capacity** is the plateau:
  the mean of the finished commands/s over the per-second samples of that step and the
  ones after it, with a Student t 95% interval; where throughput fell past the knee (the
  last step that followed finished more than that interval), that step's finished
  commands/s and their interval are the capacity instead. A plateau whose last step
  finished over
  :data:`RISING` times its first and above that interval is still rising: no knee yet;
- no knee among the usable steps while some step was generator-bound, or a generator-bound
  step past the knee finishing more than the plateau: the result says ``generator-bound:
  capacity above X`` (X: the most commands/s the server finished in any step), never a
  knee. The ramp stops once its top step is generator-bound.

>>> import pandas as pd
>>> steps = pd.DataFrame({"offered_per_s": [100.0, 150.0, 225.0, 338.0],
...     "finished_per_s": [100.0, 149.0, 200.0, 201.0], "finished_sd_per_s": [5.0] * 4,
...     "seconds": [10] * 4, "generator_bound": [False] * 4, "generator_bound_why": [""] * 4})
>>> k = find_knee(steps)
>>> round(k.capacity_per_s), k.generator_bound, k.ci_low < 200.5 < k.ci_high
(200, False, True)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.generator import CPU_BOUND, POISSON_SIGMAS, generator_bound, per_task
from cqrs_lab.load.options import LoadTestOptions
from cqrs_lab.load.results import LoadResult, load_results
from cqrs_lab.load.shapes import Profile, knee_steps
from cqrs_lab.load.summary import cpu_rate
from cqrs_lab.sim.queueing.tdist import t_quantile

__all__ = ["FOLLOW", "KneeResult", "find_knee", "knee_of_run", "measure_knee", "step_table"]

#: share of the offered commands/s a step must finish to follow the load
FOLLOW = 0.95
#: steps per segment, and the first step's share of the segment's peak (ratio 5 ** 0.25)
STEPS, BASE = 5, 0.2
#: what a finished command's outcome may be (decided: its answer came from the domain)
FINISHED = ("accepted", "refused", "conflict")
#: share of the users busy waiting for answers from which late sends are the server's doing
BUSY_SHARE = 0.1
#: a plateau whose last step finished this much more than its first is still rising
RISING = 1.1
#: cores under which a saturated server was not limited by its own CPU time
SERVER_BUSY = 0.8


@dataclass
class KneeResult:
    """The measured knee: ``capacity_per_s`` (finished commands/s on the plateau, NaN when
    no knee was reached) with its 95% interval ``ci_low``..``ci_high``; ``steps`` (one row
    per step, :func:`step_table`'s columns plus ``segment`` and ``role``); whether the
    generator ran out of headroom first, and ``why`` in one sentence."""

    capacity_per_s: float
    ci_low: float
    ci_high: float
    steps: pd.DataFrame = field(repr=False)
    generator_bound: bool
    why: str

    @property
    def reached(self) -> bool:
        """Whether a knee was measured (not only a lower bound)."""
        return not math.isnan(self.capacity_per_s)


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
            "busy_share": len(all_sent) / width * float(all_sent["latency_s"].mean()) / users
            if len(all_sent)
            else 0.0,
        }
        row["generator_bound_why"] = _step_bound(row, processes, width)
        row["generator_bound"] = bool(row["generator_bound_why"])
        rows.append(row)
    return pd.DataFrame(rows)


def _step_bound(row: dict[str, Any], processes: int, width: float) -> str:
    """Why the generator limited this step ('' if it did not, or if the server did)."""
    why = generator_bound(
        float(row["lateness_p95_s"]),
        float(row["sent_per_s"]),
        float(row["offered_per_s"]),
        float(row["generator_cpu"]),
        processes,
        width,
    )
    cpu = float(row["generator_cpu"]) / max(1, processes)
    if not math.isnan(cpu) and cpu > CPU_BOUND:  # whatever else was true of the step
        return f"generator CPU {cpu:.2f} cores per Locust process (> {CPU_BOUND:g})"
    late, typical = float(row["lateness_p95_s"]), float(row.get("latency_p50_s", math.nan))
    busy = row["busy_share"] >= BUSY_SHARE or late <= typical
    if why and busy:
        return ""  # the users were waiting for answers: the server's doing
    sent, offered, done = row["sent_per_s"], row["offered_per_s"], row["finished_per_s"]
    short = not _follows(pd.Series(row)) and done >= FOLLOW * sent
    if not why and short and not busy:
        return (
            f"sent {sent:.1f} of the {offered:.1f} commands/s aimed at and the server "
            "finished them all: the generator fell short"
        )
    return why


def _follows(row: pd.Series) -> bool:
    offered, done = float(row["offered_per_s"]), float(row["finished_per_s"])
    if done >= FOLLOW * offered:
        return True
    window = float(row.get("window_s", row["seconds"]))
    n = offered * window  # the Poisson noise of the count over the window
    return bool(n > 0 and (offered - done) * window <= POISSON_SIGMAS * n**0.5)


def find_knee(steps: pd.DataFrame) -> KneeResult:
    """The knee of a step table (rows in order of offered load; the columns of
    :func:`step_table`): see the module docstring for the rule. The returned ``steps``
    gain a ``role``: ``follows``, ``dip`` (fell short, then followed again: noise),
    ``saturated`` (the knee and the plateau after it), ``generator-bound``, or ``after``
    (past a generator-bound step: not judged)."""
    steps = steps.sort_values("offered_per_s", kind="stable").reset_index(drop=True)
    usable = ~steps["generator_bound"].astype(bool).to_numpy()
    follows = np.array([_follows(row) for _, row in steps.iterrows()], dtype=bool)
    roles = np.where(follows, "follows", "dip").astype(object)  # saturated: set below
    roles[~usable] = "generator-bound"
    idx = np.flatnonzero(usable)
    knee = next(
        (int(i) for k, i in enumerate(idx) if not follows[idx[k:]].any()), None
    )  # the first usable step short of the load after which no usable step follows
    # whatever held the generator back, the server did finish this many commands/s
    floor = float(steps["finished_per_s"].max()) if len(steps) else 0.0
    bound = bool((~usable).any())
    first = int(np.flatnonzero(~usable)[0]) if bound else 0
    lower = (
        f"capacity above {floor:.0f} commands/s (the generator bound from "
        f"{steps['offered_per_s'][first]:.0f} offered: {steps['generator_bound_why'][first]})"
        if bound
        else f"capacity above {floor:.0f} commands/s"
    )
    if knee is None:
        out = steps.assign(role=roles)
        if bound:
            return KneeResult(math.nan, floor, math.inf, out, True, f"generator-bound: {lower}")
        return KneeResult(
            math.nan, floor, math.inf, out, False,
            f"no knee: every step followed; {lower} (ramp higher)",
        )  # fmt: skip
    sat = np.zeros(len(steps), dtype=bool)
    sat[idx[idx >= knee]] = True
    roles[sat] = "saturated"
    plateau = steps[sat]
    n = plateau["seconds"].to_numpy(dtype=float)
    mean_i = plateau["finished_per_s"].to_numpy(dtype=float)
    sd_i = plateau["finished_sd_per_s"].to_numpy(dtype=float)
    total = n.sum()
    mean = float((n * mean_i).sum() / total)
    ss = ((n - 1) * sd_i**2).sum() + (n * (mean_i - mean) ** 2).sum()
    sd = math.sqrt(ss / (total - 1)) if total > 1 else 0.0
    half = t_quantile(0.975, max(1, int(total) - 1)) * sd / math.sqrt(max(total, 1.0))
    beyond = steps["finished_per_s"][(steps.index > knee) & ~usable]
    if len(beyond) and float(beyond.max()) > mean + half:  # a bound step finished more
        out = steps.assign(role=np.where(sat, "dip", roles))
        return KneeResult(
            math.nan, floor, math.inf, out, True,
            f"generator-bound: {lower}; a generator-bound step finished more than the "
            f"would-be plateau ({mean:.0f} commands/s): not a knee",
        )  # fmt: skip
    top = float(mean_i[-1])
    if len(mean_i) > 1 and top > mean + half and top > RISING * float(mean_i[0]):
        out = steps.assign(role=np.where(sat, "dip", roles))
        return KneeResult(
            math.nan, floor, math.inf, out, bound,
            f"no knee yet: finished commands/s still rising with the offered load ("
            f"{mean_i[0]:.0f} to {top:.0f}); capacity above {floor:.0f} commands/s",
        )  # fmt: skip
    below = steps.iloc[:knee][follows[:knee]]
    last = float(below["offered_per_s"].max()) if len(below) else math.nan
    why = (
        f"the knee: finished commands/s stop following the offered load between "
        f"{last:.0f} and {steps['offered_per_s'][knee]:.0f} offered; the plateau of "
        f"{len(plateau)} step(s), {int(total)} one-second samples"
    )
    capacity, lo, hi = mean, mean - half, mean + half
    if len(below) and float(below["finished_per_s"].iloc[-1]) > hi:  # it fell past the knee
        step = below.iloc[-1]
        m, k = float(step["finished_per_s"]), max(2, int(step["seconds"]))
        h = t_quantile(0.975, k - 1) * float(step["finished_sd_per_s"]) / math.sqrt(k)
        capacity, lo, hi = m, m - h, m + h
        why += (
            f": {mean:.0f} commands/s on average, under the {m:.0f} the last step that "
            f"followed finished (throughput falls under overload); the capacity is that step's"
        )
    cpu = float(plateau["server_cpu"].mean()) if "server_cpu" in plateau else math.nan
    limit = float(plateau["server_cpu_limit"].max()) if "server_cpu_limit" in plateau else math.nan
    cores = 1.0 if math.isnan(limit) else limit  # --server-cpus: its limit is all it has
    if cpu < SERVER_BUSY * cores:
        of = "its core" if math.isnan(limit) else f"the {limit:g} core(s) it was limited to"
        why += (
            f"; the server used {cpu:.2f} of {of} on the plateau: it waited for something "
            "else (on a shared machine: its CPU, taken by other processes)"
        )
    return KneeResult(capacity, lo, hi, steps.assign(role=roles), False, why)


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
