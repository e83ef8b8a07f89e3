"""The twin's queueing judged apart from its CPU model: every level predicted again with the
twin's costs scaled to the server's measured CPU per command at that level.

Near the knee a few percent of CPU per command decide whether a queue drains: a twin whose
cost model is 4% high there runs its loop at 99.7% of its quota where the server ran at 96%,
and its latencies miss by far more than the 4%. The closing table's verdicts judge the twin
as a whole (its CPU model and its queueing together); :func:`cpu_matched` asks the other
question a reader of that table has: *given* the CPU per command the server spent at a level,
does the simulated loop (its scheduling, batching, quota, wandering speed and clients) queue
as the server did? Each level's every cost (engine calls, transport reads, the rest of a
request, projection steps, writer batches) is multiplied by the measured over the twin's
CPU per command there, and the level simulated again. This is a diagnostic that uses the
level's own measurement, never a prediction, and is shown apart from the verdicts.

>>> cal = LoopCalibration(command_s=(3e-5,), query_s=(1e-5,), per_event={"balances": 2e-5},
...                       per_batch={"balances": 1e-5}, request_s=2.5e-4, reads_per_command=1.0,
...                       mix={"deposit": 1.0}, transport_s=(4e-5,))
>>> half = scaled_costs(cal, 0.5)
>>> half.command_s, half.per_event, half.request_s, half.transport_s
((1.5e-05,), {'balances': 1e-05}, 0.000125, (2e-05,))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.loop_twin import LoopCalibration, predict_loop
from cqrs_lab.load.twin_display import band

__all__ = ["COLUMNS", "busy_cpu", "cpu_matched", "cpu_matched_line", "scaled_costs"]


#: the columns of :func:`cpu_matched` (and of ``validation-cpu-matched.csv``)
COLUMNS = ["sent_commands_per_s", "metric", "factor", "measured", "predicted", "rel_error",
           "within"]  # fmt: skip


def busy_cpu(row: Mapping[Any, Any] | pd.Series) -> float:
    """A level's measured server CPU (cores) beyond its idle CPU (a row of the comparison)."""
    return float(row["server_cpu"]) - float(row["server_idle_cpu"])


def scaled_costs(cal: LoopCalibration, factor: float) -> LoopCalibration:
    """The twin with every CPU cost of the served process multiplied by ``factor`` (> 0);
    the rest of the machine's (``other_cpu_s``, ``database_cpu_s``) and the waits kept."""
    if not (math.isfinite(factor) and factor > 0):
        raise ConfigError(f"factor={factor!r}: a multiplier of the twin's CPU costs, > 0")
    return replace(
        cal,
        command_s=tuple(x * factor for x in cal.command_s),
        query_s=tuple(x * factor for x in cal.query_s),
        per_event={k: v * factor for k, v in cal.per_event.items()},
        per_batch={k: v * factor for k, v in cal.per_batch.items()},
        request_s=cal.request_s * factor,
        batch_s=cal.batch_s * factor,
        transport_s=tuple(x * factor for x in cal.transport_s),
    )


def cpu_matched(
    table: pd.DataFrame, cal: LoopCalibration, seed: int = 1, duration: float = 60.0
) -> pd.DataFrame:
    """Per judged level (not the calibration, not one without a measured or simulated CPU)
    and figure: the twin's prediction with its costs scaled to the level's measured CPU per
    command (``factor``), its relative error and whether it lies within the figure's band."""
    rows = []
    judged = table[~table["calibration"].astype(bool)]
    for sent in sorted(float(x) for x in judged["sent_commands_per_s"].unique()):
        level = judged[judged["sent_commands_per_s"] == sent]
        measured_cpu, twin_cpu = busy_cpu(level.iloc[0]), float(level["twin_cpu"].iloc[0])
        if not (sent > 0 and measured_cpu > 0 and twin_cpu > 0):
            continue
        factor = measured_cpu / twin_cpu
        p = predict_loop(scaled_costs(cal, factor), sent, duration, seed)
        for r in level.to_dict("records"):
            metric = str(r["metric"])
            if metric == "throughput_per_s":  # follows the offered load by design
                continue
            meas, pred = float(r["measured"]), float(p[metric])
            err = pred / meas - 1 if meas > 0 else math.nan
            rows.append({
                "sent_commands_per_s": sent, "metric": metric, "factor": factor,
                "measured": meas, "predicted": pred, "rel_error": err,
                "within": bool(abs(err) <= band(metric)),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def cpu_matched_line(matched: pd.DataFrame, capacity_per_s: float) -> list[str]:
    """The closing table's line for :func:`cpu_matched`: per level the cost factor and the
    figures within band; nothing when no level could be matched."""
    if not len(matched):
        return []
    parts = []
    for sent in sorted(float(x) for x in matched["sent_commands_per_s"].unique()):
        level = matched[matched["sent_commands_per_s"] == sent]
        parts.append(
            f"{sent / capacity_per_s:.0%} x{float(level['factor'].iloc[0]):.2f} "
            f"{int(level['within'].sum())}/{len(level)}"
        )
    return [
        "with the server's measured CPU per command (the twin's costs scaled to it; a "
        f"diagnostic, not a verdict): {int(matched['within'].sum())} of {len(matched)} "
        "within band (" + ", ".join(parts) + ")"
    ]
