"""What a run returns: pandas tables, the final engine and read models, and plots.

Tables: ``commands`` (one row per command), ``applications`` (one row per event
application), ``reads``, ``timeseries`` (one row per bucket), ``summary`` (one row),
``slo`` (one row per objective), ``alerts`` (burn-rate alert episodes), ``incidents``
(crashes, repairs, scaling, poison, drift, fix, rebuild, failing consumers) and ``failures``
(one row per projection whose handlers failed for real: events parked as dead letters for
an error the scenario did not inject, e.g. a handler with a wrong signature). Times are
simulated seconds, in columns ending in ``_s``; rates end in ``_per_s``; counts and
fractions have no suffix (the README's "Vocabulary and units").
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cqrs_lab.core import Engine
from cqrs_lab.display import frame_html
from cqrs_lab.errors import ConfigError
from cqrs_lab.sim import plots
from cqrs_lab.sim.application_rows import APPLICATION_COLUMNS, ApplicationRecorder
from cqrs_lab.sim.commands import COMMAND_COLUMNS
from cqrs_lab.sim.readers import READ_COLUMNS
from cqrs_lab.sim.scenario import Scenario
from cqrs_lab.sim.slo import (
    ALERT_COLUMNS,
    SLO_COLUMNS,
    alerts_for,
    compliance,
    default_rules,
    sli_events,
)

if TYPE_CHECKING:
    from cqrs_lab.sim.simulation import Simulation

__all__ = ["FAILURE_COLUMNS", "TABLES", "SimResult", "build_result", "consumer_failures"]

TABLES = (
    "summary",
    "commands",
    "applications",
    "reads",
    "timeseries",
    "slo",
    "alerts",
    "incidents",
    "failures",
)

FAILURE_COLUMNS = ("projection", "dead_letters", "first_at_s", "error")

#: the command outcomes of load shedding (admission control), counted together as ``shed``
SHED_OUTCOMES = ("rate_limited", "queue_full", "dropped_oldest")


@dataclass(eq=False)
class SimResult:
    """The tables of one run, the engine it ran and the final read models.

    >>> from cqrs_lab.sim import builtin_scenario, simulate
    >>> result = simulate(builtin_scenario(), duration=1.0)
    >>> list(result.failures.columns), int(result.summary["failing_consumers"].iloc[0])
    (['projection', 'dead_letters', 'first_at_s', 'error'], 0)
    """

    scenario: Scenario
    summary: pd.DataFrame
    commands: pd.DataFrame
    applications: pd.DataFrame
    reads: pd.DataFrame
    timeseries: pd.DataFrame
    slo: pd.DataFrame
    alerts: pd.DataFrame
    incidents: pd.DataFrame
    failures: pd.DataFrame
    engine: Engine
    recorder: ApplicationRecorder
    read_models: dict[str, dict[str, dict[Any, Any]]] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}

    def __repr__(self) -> str:
        s = self.summary_dict()
        return (
            f"SimResult(scenario={self.scenario.name!r}, commands={s.get('commands')}, "
            f"events={s.get('events')}, lost={s.get('lost')}, "
            f"duplicated_applied={s.get('duplicated_applied')}, slo_met={s.get('slo_met')})"
        )

    def _repr_html_(self) -> str:
        """The summary, the SLOs (unmet in red), fired alerts and incidents, for notebooks."""
        summary = self.summary.T.reset_index()
        summary.columns = ["figure", "value"]
        return (
            f"<div><b>{html.escape(self.scenario.name)}</b>: "
            f"{html.escape(self.scenario.description)}</div>"
            + frame_html(summary, "summary", limit=60)
            + frame_html(self.slo, "SLOs", bad="met")
            + frame_html(self.alerts, "burn-rate alerts that fired")
            + frame_html(self.failures, "failing consumers (events dead-lettered)")
            + frame_html(self.incidents, "incidents", limit=20)
        )

    def summary_dict(self) -> dict[str, Any]:
        """The summary row as plain Python values (NaN becomes None), for JSON."""
        row = self.summary.iloc[0].to_dict()
        return {str(k): _plain(v) for k, v in row.items()}

    # -- plots ----------------------------------------------------------------------------------
    def plot_lag(self, ax: Any = None) -> Any:
        """Projection lag (ms) over simulated time (s), one line per projection."""
        return plots.lag(self, ax)

    def plot_backlog(self, ax: Any = None) -> Any:
        """Unprocessed events per projection and commands waiting, over time."""
        return plots.backlog(self, ax)

    def plot_latency(self, ax: Any = None) -> Any:
        """Distribution of command latency (ms), with p50/p99 marked."""
        return plots.latency(self, ax)

    def plot_utilisation(self, ax: Any = None) -> Any:
        """Busy fraction of the command handlers and of each consumer group, over time."""
        return plots.utilisation(self, ax)

    def save(self, directory: str | Path, *, figures: bool = True) -> list[Path]:
        """Write every table as CSV and (with ``figures``) the four plots as PNG."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in self.tables().items():
            path = out / f"{name}.csv"
            table.to_csv(path, index=False)
            written.append(path)
        if figures:
            written += plots.save_all(self, out)
        else:  # an earlier run's plots would sit beside this run's tables as if its own
            for name in plots.PLOT_NAMES:
                (out / f"{name}.png").unlink(missing_ok=True)
        return written


def check_out_folder(out: Path) -> None:
    """``simulate --out``: a new or empty folder, or one holding only what a run writes
    there (its tables and plots, replaced); anything else is the user's, left alone."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file, not a folder; name a folder")
    if not out.is_dir():
        return
    ours = {f"{t}.csv" for t in TABLES} | {f"{n}.png" for n in plots.PLOT_NAMES}
    other = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if other:
        raise ConfigError(
            f"--out {out}: holds files a run does not write ({', '.join(other[:3])}"
            f"{', ...' if len(other) > 3 else ''}): left as they are; name a new folder"
        )


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _pct(values: pd.Series, prefix: str) -> dict[str, float]:
    arr = values.to_numpy(dtype=float)
    arr = arr[~np.isnan(arr)]
    if not len(arr):
        return {f"{prefix}_{k}_s": float("nan") for k in ("p50", "p95", "p99", "max")}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        f"{prefix}_p50_s": float(p50),
        f"{prefix}_p95_s": float(p95),
        f"{prefix}_p99_s": float(p99),
        f"{prefix}_max_s": float(arr.max()),
    }


def build_result(sim: Simulation) -> SimResult:
    """Turn a finished :class:`~cqrs_lab.sim.simulation.Simulation` into its tables."""
    s = sim.scenario
    commands = pd.DataFrame(sim.commands.rows, columns=list(COMMAND_COLUMNS))
    commands["outcome"] = commands["outcome"].fillna("in-flight")
    for col in ("start_s", "end_s", "position"):
        commands[col] = pd.to_numeric(commands[col]).astype(float)
    commands["wait_s"] = commands["start_s"] - commands["arrival_s"]
    commands["latency_s"] = commands["end_s"] - commands["arrival_s"]
    apps = pd.DataFrame(sim.recorder.rows, columns=list(APPLICATION_COLUMNS))
    for col in ("duplicate", "rolled_back", "replay"):
        apps[col] = apps[col].astype(bool)
    reads = pd.DataFrame(sim.reads.rows if sim.reads else [], columns=list(READ_COLUMNS))
    reads["latency_s"] = reads["end_s"].astype(float) - reads["arrival_s"].astype(float)
    reads["staleness_s"] = reads["staleness_s"].astype(float)
    reads["own_write_seen"] = reads["own_write_seen"].astype("boolean")
    ts = _timeseries(sim, commands)
    failures = consumer_failures(sim)
    failing: list[tuple[float, str, str, str]] = [
        (float(at), "consumer-failing", str(name), f"{n} events dead-lettered: {error}")
        for name, n, at, error in failures.itertuples(index=False)
    ]
    events = sorted(sim.incidents + sim.recorder.incidents + failing, key=lambda r: r[0])
    incidents = pd.DataFrame(events, columns=["time_s", "kind", "where", "detail"])
    slo_rows, alert_rows = [], []
    grid = ts["t_s"].to_numpy(dtype=float)
    for spec in s.slos:
        times, good = sli_events(spec, commands, apps, reads, ts)
        slo_rows.append(compliance(spec, times, good, s.duration))
        rules = s.alerts if s.alerts is not None else default_rules(spec.period or s.duration)
        alert_rows += alerts_for(spec, times, good, rules, grid)
    slo = pd.DataFrame(slo_rows, columns=list(SLO_COLUMNS))
    alerts = pd.DataFrame(alert_rows, columns=list(ALERT_COLUMNS))
    summary = _summary(sim, commands, apps, reads, slo)
    summary["failing_consumers"] = len(failures)
    models = {name: p.state() for name, p in sim.projections.items()}
    return SimResult(
        s,
        summary,
        commands,
        apps,
        reads,
        ts,
        slo,
        alerts,
        incidents,
        failures,
        sim.engine,
        sim.recorder,
        models,
    )


def consumer_failures(sim: Simulation) -> pd.DataFrame:
    """Projections with dead letters the scenario did not cause on purpose, with the error.

    Injected faults (transient errors, poison events) are the scenario's own; anything else
    still parked at the end (a handler that raises on every event, an event its reader
    cannot decode) means the read model is missing events.
    """
    owner = {sub.name: d.name for d in sim.drivers for sub in d.group.members}
    rows: dict[str, list[Any]] = {}
    for letter in sim.engine.dead_letters.list():
        if letter.error.startswith("InjectedFault"):
            continue
        name = owner.get(letter.subscription, letter.subscription)
        row = rows.setdefault(name, [name, 0, letter.parked_at, letter.error])
        row[1] += 1
    return pd.DataFrame(list(rows.values()), columns=list(FAILURE_COLUMNS))


def _timeseries(sim: Simulation, commands: pd.DataFrame) -> pd.DataFrame:
    s = sim.scenario
    cols = ["t_s", "queue", "handler_busy_area"]
    for d in sim.drivers:
        cols += [f"backlog_{d.name}", f"lag_{d.name}", f"consumers_{d.name}", f"_area_{d.name}"]
    ts = pd.DataFrame(sim.samples, columns=cols)
    edges = np.concatenate(([0.0], ts["t_s"].to_numpy(dtype=float)))
    width = np.diff(edges) if len(edges) > 1 else np.array([])
    arrivals = np.histogram(commands["arrival_s"].to_numpy(dtype=float), bins=edges)[0]
    done = commands[commands["outcome"] == "accepted"]["end_s"].to_numpy(dtype=float)
    out = pd.DataFrame(
        {
            "t_s": ts["t_s"],
            "arrival_rate_per_s": arrivals / width,
            "throughput_per_s": np.histogram(done, bins=edges)[0] / width,
            "queue": ts["queue"],
        }
    )
    busy = np.diff(np.concatenate(([0.0], ts["handler_busy_area"].to_numpy(dtype=float))))
    out["handler_utilisation"] = busy / (width * s.commands.handlers * s.commands.processes)
    for d in sim.drivers:
        n = d.name
        out[f"backlog_{n}"] = ts[f"backlog_{n}"]
        out[f"lag_{n}_s"] = ts[f"lag_{n}"]
        out[f"consumers_{n}"] = ts[f"consumers_{n}"]
        area = np.diff(np.concatenate(([0.0], ts[f"_area_{n}"].to_numpy(dtype=float))))
        alive = np.maximum(ts[f"consumers_{n}"].to_numpy(dtype=float), 1.0)
        out[f"consumer_utilisation_{n}"] = np.minimum(area / (width * alive), 1.0)
    return out


def _summary(
    sim: Simulation,
    commands: pd.DataFrame,
    apps: pd.DataFrame,
    reads: pd.DataFrame,
    slo: pd.DataFrame,
) -> pd.DataFrame:
    s = sim.scenario
    outcome = commands["outcome"].value_counts()
    served = commands[commands["outcome"].isin(("accepted", "refused"))]
    first = apps[~apps["duplicate"] & ~apps["replay"] & ~apps["rolled_back"]]
    row: dict[str, Any] = {
        "scenario": s.name,
        "seed": s.seed,
        "duration_s": s.duration,
        "commands": len(commands),
        "accepted": int(outcome.get("accepted", 0)),
        "refused": int(outcome.get("refused", 0)),
        "shed": int(sum(outcome.get(k, 0) for k in SHED_OUTCOMES)),
        "conflicts": int(outcome.get("conflict", 0)),
        "occ_retries": int(commands["retries"].sum()),
        "errors": int(outcome.get("error", 0)),
        "in_flight": int(outcome.get("in-flight", 0)),
        "throughput_per_s": int(outcome.get("accepted", 0)) / s.duration,
    }
    row |= _pct(served["latency_s"], "latency")
    row["events"] = sim.store.committed
    row["applications"] = len(apps)
    row |= _pct(first["lag_s"], "lag")
    row["reads"] = len(reads)
    row |= _pct(reads["staleness_s"], "staleness")
    seen = reads["own_write_seen"].dropna()
    row["own_write_missed"] = int((~seen.astype(bool)).sum())
    counts = sim.recorder.counts()
    row["lost"] = counts["lost"]
    row["duplicated_applied"] = int((apps["duplicate"] & ~apps["rolled_back"]).sum())
    row["dead_lettered"] = counts["dead_lettered"]
    row["dead_letters_open"] = len(sim.engine.dead_letters)
    row["consumer_crashes"] = sum(d.consumer_crashes for d in sim.drivers)
    row["slo_met"] = bool(slo["met"].all()) if len(slo) else True
    return pd.DataFrame([row])
