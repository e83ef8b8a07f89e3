"""The loop twin at other process counts: when adding a server process stops helping.

Every process of ``serve --workers N`` parses and decides its share of the requests but
pumps *every* event into its own replicas of the views, and its writer's batches and pump
steps hold its loop while they wait for the database. :func:`predict_processes` simulates
the calibrated deployment (:class:`~cqrs_lab.load.loop_twin.LoopCalibration`) with 1, 2,
3... processes and gives each count's capacity as the knee is measured: the commands/s at
which the simulated deployment stops following the offered load
(:func:`~cqrs_lab.load.loop_twin.predicted_knee`, which bisects between the calibration
rate and twice the loops' warm CPU bound), its replicas included: loops busy with requests
can starve their pumps and still answer the commands, which no deployment sustains. The
waits are per batch and per pump step, and both grow with the load, so they cost less per
command near the knee than at a light load: the search simulates them at each rate instead
of scaling a light level's figures. A process count whose capacity gains under
:data:`HELPS` (10%) over the count before it does not help.

>>> from cqrs_lab.load.loop_twin import LoopCalibration
>>> cal = LoopCalibration(command_s=(2e-4,), query_s=(1e-4,), per_event={"balances": 2e-4},
...     per_batch={"balances": 0.0}, request_s=3e-4, reads_per_command=0.0,
...     mix={"deposit": 1.0}, keys=100)
>>> t = predict_processes(cal, [1, 2], duration=1.0)
>>> list(t.columns)
['processes', 'capacity_per_s', 'per_process_per_s', 'gain', 'helps']
>>> bool(t["capacity_per_s"].iloc[1] > t["capacity_per_s"].iloc[0])
True
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.loop_twin import LoopCalibration, predicted_knee

__all__ = ["HELPS", "format_processes", "predict_processes", "processes_report"]

#: the least relative gain in capacity for which one more process is said to help
HELPS = 0.10


def predict_processes(
    cal: LoopCalibration,
    processes: Sequence[int] = (1, 2, 3, 4),
    seed: int = 1,
    duration: float = 10.0,
) -> pd.DataFrame:
    """The predicted capacity (commands/s) of the calibrated deployment with each of
    ``processes`` server processes, per process, its gain over the count before and
    whether that gain reaches :data:`HELPS` (module docstring)."""
    counts = sorted(set(processes))
    if not counts or counts[0] < 1:
        raise ConfigError(f"processes={list(processes)}: whole numbers >= 1, e.g. 1,2,3,4")
    rows = []
    for n in counts:
        capacity = predicted_knee(replace(cal, processes=n), seed, duration, keep_up=True)
        rows.append((n, capacity, capacity / n))
    out = pd.DataFrame(rows, columns=["processes", "capacity_per_s", "per_process_per_s"])
    gain = out["capacity_per_s"].pct_change()
    out["gain"] = gain
    out["helps"] = (gain >= HELPS) | gain.isna()
    return out


def format_processes(table: pd.DataFrame) -> str:
    """The table in commands/s, and the first process count that stops helping."""
    lines = [
        f"{'processes':>9}  {'capacity (commands/s)':>21}  {'per process (commands/s)':>24}"
        f"  {'gain':>6}"
    ]
    cols = ("processes", "capacity_per_s", "per_process_per_s", "gain", "helps")
    for n, cap, per, g, helps in zip(*(table[c].tolist() for c in cols), strict=True):
        gain = "" if g != g else f"{g:+.0%}"  # NaN: the first count
        mark = "" if helps else "  <- adding a process stops helping (gain under 10%)"
        lines.append(f"{n:>9}  {cap:>21,.0f}  {per:>24,.0f}  {gain:>6}{mark}")
    return "\n".join(lines)


def processes_report(spec: str, cal: Any, out: Path) -> bool:
    """``cqrs-lab twin --predict-processes SPEC``: the calibrated loop twin's capacity per
    process count (printed, and written to ``out/twin-processes.csv``); False (said on
    stderr) if it cannot."""
    try:
        counts = [int(x) for x in spec.split(",") if x.strip()]
        if not isinstance(cal, LoopCalibration):
            raise ConfigError("it needs the loop twin (--model loop)")
        table = predict_processes(cal, counts)
    except (ConfigError, ValueError) as exc:
        print(f"cqrs-lab twin: --predict-processes {spec}: {exc}", file=sys.stderr)
        return False
    table.to_csv(out / "twin-processes.csv", index=False)
    print(f"predicted capacity per server process count (calibrated with {cal.processes}):")
    print(format_processes(table))
    return True
