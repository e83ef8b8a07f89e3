"""The twin's comparison shown: a text table (ms, commands/s, units in the headers) and
plots whose log axes read plain numbers.

>>> METRICS[3], metric_label(METRICS[3]), metric_label("lag_p95_s", "balances")
('command_latency_p99_s', 'command latency p99 (ms)', 'lag p95 of balances (ms)')
>>> plain_number(0.7, 0), plain_number(20.0, 0), plain_number(1500.0, 0)
('0.7', '20', '1500')
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = [
    "BAND",
    "METRICS",
    "P99_BAND",
    "band",
    "format_table",
    "metric_label",
    "plain_log_axis",
    "plot_comparison",
    "repeats_line",
]

#: a validation level passes a metric when the twin is within this relative error
BAND = 0.2
#: the band of the p99 latency (a tail is noisier)
P99_BAND = 0.3


def band(metric: str) -> float:
    """The relative error a prediction of ``metric`` may have and pass."""
    return P99_BAND if metric.endswith("p99_s") else BAND


#: the compared figures, as :func:`~cqrs_lab.load.compare.measure` and
#: :func:`~cqrs_lab.load.prediction.predict` name them (commands/s and seconds)
METRICS = (
    "throughput_per_s",
    "command_latency_p50_s",
    "command_latency_p95_s",
    "command_latency_p99_s",
    "lag_p50_s",
    "lag_p95_s",
)


def repeats_line(table: pd.DataFrame, capacity_per_s: float) -> list[str]:
    """How well the measurement holds itself, per level: the figures (latencies and lags)
    whose every repeat lies within the figure's band of the level's pooled value. Where the
    repeats of a level do not, the same load measured again moves by more than the band,
    and a twin's miss there is no sharper a verdict than the measurement itself.

    >>> t = pd.DataFrame({"sent_commands_per_s": [500.0, 500.0], "repeats": [3, 3],
    ...                   "metric": ["command_latency_p50_s", "command_latency_p99_s"],
    ...                   "measured": [1.0, 1.0], "measured_low": [0.9, 0.5],
    ...                   "measured_high": [1.1, 1.2]})
    >>> repeats_line(t, 1000.0)
    ['repeats within their band of the pooled figure: 50% 1/2']
    """
    if not {"repeats", "measured_low", "measured_high"} <= set(table.columns):
        return []  # a comparison of single runs
    t = table[table["metric"] != "throughput_per_s"]
    if not (t["repeats"] > 1).any():
        return []
    parts = []
    for sent in sorted(float(x) for x in t["sent_commands_per_s"].unique()):
        level, held = t[t["sent_commands_per_s"] == sent], 0
        for r in level.to_dict("records"):
            meas, low, high = (float(r[k]) for k in ("measured", "measured_low", "measured_high"))
            if meas > 0:  # (nothing measured, or a NaN: not held)
                held += int(max(abs(low / meas - 1), abs(high / meas - 1)) <= band(r["metric"]))
        parts.append(f"{sent / capacity_per_s:.0%} {held}/{len(level)}")
    return ["repeats within their band of the pooled figure: " + ", ".join(parts)]


def metric_label(metric: str, view: Any = "") -> str:
    """A table metric for display: ``throughput (commands/s)``, ``command latency p50 (ms)``,
    ``lag p95 of VIEW (ms)``."""
    if metric == "throughput_per_s":
        return "throughput (commands/s)"
    base = metric[:-2] if metric.endswith("_s") else metric
    words = base.replace("_", " ")
    if base.startswith("lag") and view:
        words = f"{words} of {view}"
    return f"{words} (ms)"


def _display(metric: str, value: float) -> float:
    """A table value in display units: seconds -> ms, rates as they are."""
    return value if metric.endswith("_per_s") else value * 1e3


def format_table(table: pd.DataFrame) -> str:
    """The comparison as text: one line per level and metric. ``offered``: the commands/s the
    level aimed at; ``sent``: those Locust sent; ``cpu``, ``twin``, ``gen``: cores used by
    the server, by the twin's server, by Locust; ``*``: a calibration level; ``verdict``:
    within the band (pass), outside (fail), or not judged (a generator-bound or closed
    level, with the regime saying which)."""
    width = max([15, *(len(str(n)) + 3 for n in table["run"])])
    records = table.to_dict("records")
    labels = [metric_label(str(r["metric"]), r.get("view", "")) for r in records]
    mw = max([11, *(len(x) + 1 for x in labels)])
    lines = [
        f"{'run':<{width}}{'offered':>9}{'sent':>9}{'cpu':>6}{'twin':>6}{'gen':>6}  "
        f"{'metric':<{mw}}{'measured':>10}{'twin':>10}{'error':>8}  {'verdict':<12}regime",
        f"{'':<{width}}{'(cmd/s)':>9}{'(cmd/s)':>9}{'(cores)':>18}  {'':<{mw}}"
        f"{'(unit of the metric)':>28}",
    ]
    for r, label in zip(records, labels, strict=True):
        e = float(r["rel_error"])
        err = "" if math.isnan(e) else f"{e:+.0%}"
        name = f"{r['run']}{'*' if r['calibration'] else ''}"
        offered = float(r["offered_commands_per_s"])
        off = "n/a" if math.isnan(offered) else f"{offered:.1f}"
        metric = str(r["metric"])
        lines.append(
            f"{name:<{width}}{off:>9}{r['sent_commands_per_s']:>9.1f}{r['server_cpu']:>6.2f}"
            f"{r['twin_cpu']:>6.2f}{r['generator_cpu']:>6.2f}  {label:<{mw}}"
            f"{_display(metric, r['measured']):>10.2f}{_display(metric, r['predicted']):>10.2f}"
            f"{err:>8}  {r['verdict']:<12}{r['regime']}"
        )
    return "\n".join(lines)


def plain_number(value: float, _pos: Any = None) -> str:
    """A tick label without powers of ten: ``0.7``, ``20``, ``1500``."""
    if value == 0 or not math.isfinite(value):
        return "0"
    return f"{value:g}" if abs(value) < 1e6 else f"{value:,.0f}"


def plain_log_axis(axis: Any) -> None:
    """Ticks of a log axis at 1, 2, 5 x 10^k labelled as plain numbers (0.7, not 7e-1)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(plain_number))
    axis.set_minor_formatter(NullFormatter())


def plot_comparison(table: pd.DataFrame, ax: Any = None) -> Any:
    """Measured (solid) and predicted (dashed) per metric against the commands/s sent (top
    row), and the relative errors with the band (bottom row). Returns the 2 x n axes."""
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if m in set(table["metric"])]
    if ax is None:
        _, ax = plt.subplots(2, len(metrics), figsize=(3.2 * len(metrics), 6), squeeze=False)
    for i, metric in enumerate(metrics):
        t = table[table["metric"] == metric]
        top, bottom = ax[0][i], ax[1][i]
        x = t["sent_commands_per_s"]
        top.plot(x, [_display(metric, v) for v in t["measured"]], "o-", label="measured")
        top.plot(x, [_display(metric, v) for v in t["predicted"]], "s--", label="twin")
        views = [str(v) for v in t["view"].unique()] if "view" in t else []
        top.set_title(metric_label(metric, views[0] if views else ""), fontsize="medium")
        if metric != "throughput_per_s":
            top.set_yscale("log")
            plain_log_axis(top.yaxis)
        bottom.axhspan(-BAND, BAND, color="0.9")
        bottom.axhline(0.0, color="0.5", lw=0.8)
        bottom.plot(x, t["rel_error"], "o-")
        bottom.set_xlabel("commands sent (commands/s)")
    ax[0][0].legend(loc="best", fontsize="small")
    ax[1][0].set_ylabel("relative error (twin - measured) / measured")
    return ax
