"""The measured knee for people: a table in milliseconds and a two-panel plot.

>>> import pandas as pd
>>> from cqrs_lab.load.knee import find_knee
>>> steps = pd.DataFrame({"offered_per_s": [100.0, 400.0], "finished_per_s": [100.0, 210.0],
...     "finished_sd_per_s": [4.0, 6.0], "seconds": [10, 10], "throughput_per_s": [90.0, 190.0],
...     "sent_per_s": [100.0, 400.0], "latency_p50_s": [0.001, 0.2],
...     "latency_p99_s": [0.002, 0.9], "server_cpu": [0.1, 1.0], "generator_cpu": [0.1, 0.3],
...     "lateness_p95_s": [0.001, 0.001], "shed": [0, 0], "errors": [0, 0],
...     "generator_bound": [False, False], "generator_bound_why": ["", ""]})
>>> print(format_knee(find_knee(steps)).splitlines()[-1])  # doctest: +ELLIPSIS
capacity: 210 commands/s (95% interval 206 to 214); the knee: ...
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from cqrs_lab.load.knee import KneeResult, measure_knee
from cqrs_lab.load.options import LoadTestOptions

__all__ = ["DISPLAY", "format_knee", "knee_report", "plot_knee", "verdict"]

#: step-table columns as shown: (column, header with its unit, scale)
DISPLAY = (
    ("offered_per_s", "offered (commands/s)", 1.0),
    ("sent_per_s", "sent (commands/s)", 1.0),
    ("finished_per_s", "finished (commands/s)", 1.0),
    ("throughput_per_s", "throughput (commands/s)", 1.0),
    ("latency_p50_s", "latency p50 (ms)", 1e3),
    ("latency_p99_s", "latency p99 (ms)", 1e3),
    ("server_cpu", "server CPU (cores)", 1.0),
    ("generator_cpu", "generator CPU (cores)", 1.0),
    ("lateness_p95_s", "lateness p95 (ms)", 1e3),
    ("shed", "shed", 1.0),
)


def format_knee(result: KneeResult) -> str:
    """The step table (times in ms, every header with its unit) and the verdict line."""
    steps = result.steps
    cols = [(c, h, k) for c, h, k in DISPLAY if c in steps.columns]
    shown = pd.DataFrame({h: steps[c].astype(float) * k for c, h, k in cols})
    shown = shown.round(2)
    if "role" in steps.columns:
        shown["step"] = steps["role"]
    if "generator_bound_why" in steps.columns:
        shown["generator-bound why"] = steps["generator_bound_why"]
    lines = [shown.to_string(index=False)]
    if "load_avg_1m" in steps.columns:
        lines.append(
            f"the machine during the ramp: load average {steps['load_avg_1m'].max():.1f} "
            f"(1 min) on {os.cpu_count()} CPUs, CPU pressure up to "
            f"{steps['cpu_pressure'].max():.0%} (the share of time some task waited for a CPU)"
        )
    return "\n".join([*lines, verdict(result)])


def verdict(result: KneeResult) -> str:
    """One line: the capacity and its interval, or the lower bound and why."""
    if result.reached:
        return (
            f"capacity: {result.capacity_per_s:.0f} commands/s (95% interval "
            f"{result.ci_low:.0f} to {result.ci_high:.0f}); {result.why}"
        )
    return f"capacity not measured: {result.why}"


def plot_knee(result: KneeResult, axes: Any = None) -> Any:
    """Offered against finished and accepted commands/s (top) and command latency p50/p99
    in ms (bottom, log scale), the generator-bound steps crossed out; returns the axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    top, bottom = axes
    s = result.steps.sort_values("offered_per_s")
    x = s["offered_per_s"]
    top.plot(x, x, ":", color="grey", label="offered (y = x)")
    top.plot(x, s["finished_per_s"], "o-", label="finished (decided)")
    if "throughput_per_s" in s.columns:
        top.plot(x, s["throughput_per_s"], "s--", ms=4, label="throughput (accepted)")
    bound = s[s["generator_bound"].astype(bool)]
    if len(bound):
        top.plot(bound["offered_per_s"], bound["finished_per_s"], "x", color="red", ms=10,
                 mew=2, label="generator-bound (not used)")  # fmt: skip
    if result.reached:
        band = f"capacity {result.capacity_per_s:.0f} commands/s (95% interval)"
        top.axhspan(result.ci_low, result.ci_high, color="C2", alpha=0.25, label=band)
    elif result.ci_low > 0:
        top.axhline(result.ci_low, color="C3", ls="--", label="capacity above")
    top.set_ylabel("commands/s")
    top.set_title("the knee: offered vs finished commands/s")
    top.legend(loc="upper left", fontsize="small", framealpha=0.6)
    for col, style in (("latency_p50_s", "o-"), ("latency_p99_s", "^-")):
        ms = s[col].astype(float) * 1e3
        bottom.plot(x, ms, style, label=col.split("_")[1] + " command latency")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    bottom.set_yscale("log")
    bottom.set_xscale("log")
    for axis in (bottom.xaxis, bottom.yaxis):  # 200, not 2 x 10^2
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    bottom.set_xlabel("offered load (commands/s)")
    bottom.set_ylabel("latency (ms)")
    bottom.legend(loc="upper left", fontsize="small", framealpha=0.6)
    if not math.isnan(result.capacity_per_s):
        for ax in axes:
            ax.axvline(result.capacity_per_s, color="C2", lw=0.8)
    return axes


def knee_report(
    opts: LoadTestOptions,
    base: Path,
    start_per_s: float = 200.0,
    step_s: float = 5.0,
    plots: bool = True,
) -> KneeResult:
    """Measure the knee (:func:`~cqrs_lab.load.knee.measure_knee`) into ``base/knee/``,
    write ``base/knee.csv`` (the step table, seconds and commands/s) and ``base/knee.png``,
    and print the table and the capacity with its interval."""
    result = measure_knee(opts, base / "knee", start_per_s=start_per_s, step_s=step_s)
    result.steps.to_csv(base / "knee.csv", index=False)
    print(format_knee(result))
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        axes = plot_knee(result)
        fig = axes[0].figure
        fig.tight_layout()
        fig.savefig(base / "knee.png", dpi=90)
        plt.close(fig)
    print(f"knee table: {base / 'knee.csv'}" + (f"; plot: {base / 'knee.png'}" if plots else ""))
    return result
