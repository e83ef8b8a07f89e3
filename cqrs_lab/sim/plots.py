"""Plots of a run, drawn with matplotlib on a given ``ax`` (one is made if none is given).

Every axis carries its unit: durations (lag, latency) in milliseconds, the run's clock in
simulated seconds; legends sit outside the axes, so they never hide a line. ``save_all``
writes the four standard figures as PNG using the non-interactive Agg canvas (no display
needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cqrs_lab.sim.results import SimResult

__all__ = ["backlog", "lag", "latency", "legend_outside", "save_all", "utilisation"]


def _ax(ax: Any) -> Any:
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 3.5))
    return ax


def legend_outside(ax: Any) -> None:
    """A legend to the right of the axes, where it hides no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _names(r: SimResult) -> list[str]:
    return [p.name for p in r.scenario.projections]


def lag(r: SimResult, ax: Any = None) -> Any:
    ax = _ax(ax)
    ts = r.timeseries
    for name in _names(r):
        ax.plot(ts["t_s"], ts[f"lag_{name}_s"] * 1000, label=name)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("projection lag (ms)")
    ax.set_title(f"{r.scenario.name}: projection lag")
    legend_outside(ax)
    return ax


def backlog(r: SimResult, ax: Any = None) -> Any:
    ax = _ax(ax)
    ts = r.timeseries
    for name in _names(r):
        ax.plot(ts["t_s"], ts[f"backlog_{name}"], label=f"{name} (events)")
    ax.plot(ts["t_s"], ts["queue"], label="command queue (commands)", linestyle="--")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("backlog (events / commands)")
    ax.set_title(f"{r.scenario.name}: backlog")
    legend_outside(ax)
    return ax


def latency(r: SimResult, ax: Any = None) -> Any:
    ax = _ax(ax)
    c = r.commands
    ms = c[c["outcome"].isin(("accepted", "refused"))]["latency_s"].to_numpy(dtype=float) * 1000
    if len(ms):
        ax.hist(ms, bins=60, color="tab:blue", alpha=0.8)
        for q, style in ((50, "-"), (99, "--")):
            v = float(np.percentile(ms, q))
            ax.axvline(v, color="black", linestyle=style, label=f"p{q} = {v:.2f} ms")
        legend_outside(ax)
    ax.set_xlabel("command latency (ms)")
    ax.set_ylabel("commands (count)")
    ax.set_title(f"{r.scenario.name}: command latency")
    return ax


def utilisation(r: SimResult, ax: Any = None) -> Any:
    ax = _ax(ax)
    ts = r.timeseries
    ax.plot(ts["t_s"], ts["handler_utilisation"] * 100, label="command handlers")
    for name in _names(r):
        ax.plot(ts["t_s"], ts[f"consumer_utilisation_{name}"] * 100, label=f"{name} consumers")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("utilisation (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"{r.scenario.name}: utilisation")
    legend_outside(ax)
    return ax


#: the PNGs :func:`save_all` writes (``NAME.png``)
PLOT_NAMES = ("lag", "backlog", "latency", "utilisation")


def save_all(r: SimResult, directory: Path) -> list[Path]:
    """Write lag, backlog, latency and utilisation PNGs into ``directory``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written = []
    for name, fn in (
        ("lag", lag),
        ("backlog", backlog),
        ("latency", latency),
        ("utilisation", utilisation),
    ):
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        FigureCanvasAgg(fig)
        fn(r, fig.add_subplot())
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written
