"""The twin's curve up to and past the knee and the picture that holds it against the
measurement (``twin-knee.png`` of ``cqrs-lab twin DIR --measure-knee``): the measured knee
ramp's throughput and the levels' command latency p50 and p99, on the twin's curves with
their bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cqrs_lab.load.knee import KneeResult
from cqrs_lab.load.loop_twin import LoopCalibration, predict_loop
from cqrs_lab.load.twin_display import band, metric_label

__all__ = ["plot_to_knee", "predicted_curve"]


def predicted_curve(
    cal: LoopCalibration,
    capacity_per_s: float,
    points: int = 10,
    seed: int = 1,
    upto: float = 0.0,
) -> pd.DataFrame:
    """The twin's figures from the calibration level to 1.5 times ``capacity_per_s``
    (offered commands/s; ``points`` simulated rates, 20 s each), and on to ``upto`` (the
    most the knee ramp offered) in three more, geometrically spaced."""
    rates = list(np.linspace(0.1, 1.5, points) * capacity_per_s)
    if upto > rates[-1] * 1.1:
        rates += list(np.geomspace(rates[-1], upto, 4)[1:])
    return pd.DataFrame([predict_loop(cal, float(r), 20.0, seed) for r in rates])


def plot_to_knee(table: pd.DataFrame, knee: KneeResult, curve: pd.DataFrame, path: Path) -> Path:
    """Measured and predicted throughput and command latency p50/p99 against the offered
    commands/s, up to and past the knee, the predictions with their band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    x = curve["offered_commands_per_s"]
    steps = knee.steps[knee.steps["role"] != "generator-bound"]
    ax = axes[0]
    ax.plot(steps["offered_per_s"], steps["finished_per_s"], "o", label="measured (knee ramp)")
    ax.plot(x, curve["throughput_per_s"], "-", label="twin")
    ax.axhline(knee.capacity_per_s, ls=":", c="0.4", label="measured capacity")
    ax.set_xlabel("offered (commands/s)")
    ax.set_ylabel("finished (commands/s)")
    for ax, metric in zip(
        axes[1:], ("command_latency_p50_s", "command_latency_p99_s"), strict=True
    ):
        m = table[(table["metric"] == metric)]
        pred = curve[metric] * 1e3
        b = band(metric)
        ax.fill_between(x, pred * (1 - b), pred * (1 + b), color="0.9", label=f"twin ±{b:.0%}")
        ax.plot(x, pred, "-", label="twin")
        ax.plot(m["sent_commands_per_s"], m["measured"] * 1e3, "o", label="measured")
        ax.axvline(knee.capacity_per_s, ls=":", c="0.4")
        ax.set_yscale("log")
        ax.set_xlabel("offered (commands/s)")
        ax.set_ylabel(metric_label(metric))
    for ax in axes:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
