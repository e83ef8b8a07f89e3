"""The twin judged up to the knee: levels at shares of the measured capacity, the loop twin
calibrated from the lightest, every figure compared, the trends and the knee itself.

``cqrs-lab twin DIR --measure-knee`` measures the knee (:mod:`cqrs_lab.load.knee`), then
:func:`validate_to_knee` runs open-model load tests at :data:`CALIBRATION_SHARE` of the
measured capacity (the calibration level) and at each of :data:`SHARES` (25, 50, 75 and 90%),
:data:`REPEATS` times each (repeats pooled), calibrates the event-loop twin
(:mod:`cqrs_lab.load.loop_twin`) from the calibration level alone and compares:

- per level, command latency p50/p95/p99 and lag p50/p95 (within 20%, p99 within 30%);
- the trend between adjacent levels, metric by metric: the twin's change must not go the
  other way from the measured one. A change smaller than :data:`FLAT` (5%) of the lower
  level's value is flat and agrees with either sign (noise decides such signs);
- the knee: the twin's capacity (the commands/s its simulated server finishes once
  saturated, :func:`~cqrs_lab.load.loop_twin.predicted_capacity`) within :data:`KNEE_BAND`
  (15%) of the measured capacity.

>>> trend_sign(100.0, 104.0), trend_sign(100.0, 90.0), trend_sign(0.0, 1.0)
(0, -1, 1)
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from cqrs_lab.load.answer_delay import answer_delay_line, split_line
from cqrs_lab.load.knee import KneeResult
from cqrs_lab.load.knee_cpu_matched import busy_cpu, cpu_matched, cpu_matched_line
from cqrs_lab.load.knee_plot import plot_to_knee, predicted_curve
from cqrs_lab.load.knee_rule import find_knee
from cqrs_lab.load.loop_processes import processes_report
from cqrs_lab.load.loop_twin import LoopCalibration, predicted_capacity
from cqrs_lab.load.twin_display import METRICS, band, metric_label, repeats_line

__all__ = [
    "CALIBRATION_SHARE",
    "FLAT",
    "KNEE_BAND",
    "REPEATS",
    "SHARES",
    "cpu_lines",
    "format_closing",
    "knee_row",
    "level_rates",
    "plot_to_knee",
    "predicted_curve",
    "trend_sign",
    "trends",
    "validate_and_report",
    "validate_to_knee",
]

#: validation levels, as shares of the measured capacity
SHARES = (0.25, 0.5, 0.75, 0.9)
#: the calibration level's share of the measured capacity (a light level)
CALIBRATION_SHARE = 0.1
#: runs per level (pooled)
REPEATS = 3
#: the predicted capacity must be this close to the measured one
KNEE_BAND = 0.15
#: a change under this share of the lower level's value is flat
FLAT = 0.05
#: the figures whose trends are judged (the throughput follows the offered load by design)
TREND_METRICS = METRICS[1:]


def level_rates(capacity_per_s: float, repeats: int = REPEATS) -> list[float]:
    """The offered commands/s of every run, in the order they run: the calibration level
    and each share once, lightest first, then again, ``repeats`` rounds in all (rounded to
    whole commands/s, so folder names stay short).

    Rounds, not each level's repeats in a row: this machine's speed drifts over minutes
    (a neighbour on the host; measured: the same light level cost 0.99, 1.28 and 1.34 ms
    of server CPU per command in three runs in a row), and a level run three times in a
    row takes the drift of its minute as its own. In rounds every level, the calibration
    level included, samples the whole measurement's spell, so the drift widens each level's
    repeats (shown beside its figures) instead of shifting one level against the others.

    >>> level_rates(1000.0, 2)
    [100.0, 250.0, 500.0, 750.0, 900.0, 100.0, 250.0, 500.0, 750.0, 900.0]
    """
    shares = (CALIBRATION_SHARE, *SHARES)
    return [float(round(capacity_per_s * s)) for _ in range(repeats) for s in shares]


def trend_sign(lower: float, upper: float) -> int:
    """+1 rising, -1 falling, 0 flat (a change under :data:`FLAT` of ``lower``)."""
    change = upper - lower
    if abs(change) <= FLAT * abs(lower):
        return 0
    return 1 if change > 0 else -1


def trends(table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric and pair of adjacent judged levels: the measured and predicted
    signs and whether they agree (opposite signs disagree; flat agrees with any)."""
    judged = table[table["verdict"].isin(["pass", "fail"])]
    rows = []
    for metric in TREND_METRICS:
        m = judged[judged["metric"] == metric].sort_values("sent_commands_per_s")
        recs = m.to_dict("records")
        for a, b in itertools.pairwise(recs):
            ms, ps = (
                trend_sign(a["measured"], b["measured"]),
                trend_sign(a["predicted"], b["predicted"]),
            )
            rows.append({"metric": metric, "from_per_s": a["sent_commands_per_s"],
                         "to_per_s": b["sent_commands_per_s"], "measured_sign": ms,
                         "predicted_sign": ps, "agrees": ms * ps >= 0})  # fmt: skip
    return pd.DataFrame(rows)


def knee_row(
    knee: KneeResult, cal: LoopCalibration, seed: int = 1, duration: float = 20.0
) -> dict[str, Any]:
    """The measured capacity (with its interval) against the twin's (simulated for
    ``duration`` seconds per rate tried)."""
    predicted = predicted_capacity(cal, seed, duration)
    err = (predicted - knee.capacity_per_s) / knee.capacity_per_s
    return {"measured_per_s": knee.capacity_per_s, "ci_low_per_s": knee.ci_low,
            "ci_high_per_s": knee.ci_high, "predicted_per_s": predicted, "rel_error": err,
            "verdict": "pass" if abs(err) <= KNEE_BAND else "fail"}  # fmt: skip


def cpu_lines(table: pd.DataFrame, capacity_per_s: float) -> list[str]:
    """The server's busy CPU per command at each level (its idle CPU taken off), measured
    and the twin's, in ms: what the tails near the knee turn on. Under a CPU limit a few per
    cent more CPU per command is the difference between a short queue and a growing one
    (at 74% of one knee the twin's CPU was 5% over the server's, 0.567 against 0.542 ms,
    and its p50 47 ms against 6). None without the columns (an older table).

    >>> t = pd.DataFrame({"sent_commands_per_s": [400.0], "server_cpu": [0.33],
    ...                   "server_idle_cpu": [0.01], "twin_cpu": [0.336]})
    >>> cpu_lines(t, 800.0)
    ['server CPU per command (ms), measured -> twin: 50% 0.800 -> 0.840 (+5%)']
    """
    if not {"server_cpu", "twin_cpu", "server_idle_cpu"} <= set(table.columns):
        return []
    parts = []
    levels = table.drop_duplicates("sent_commands_per_s").sort_values("sent_commands_per_s")
    for r in levels.to_dict("records"):
        sent = float(r["sent_commands_per_s"])
        if not sent > 0:  # nothing sent (NaN or 0): no CPU per command
            continue
        measured = busy_cpu(r) / sent
        twin = float(r["twin_cpu"]) / sent
        err = f"{twin / measured - 1:+.0%}" if measured > 0 else "n/a"
        parts.append(
            f"{sent / capacity_per_s:.0%} {measured * 1e3:.3f} -> {twin * 1e3:.3f} ({err})"
        )
    return ["server CPU per command (ms), measured -> twin: " + ", ".join(parts)]


def format_closing(table: pd.DataFrame, trend: pd.DataFrame, knee: dict[str, Any]) -> str:
    """The closing table: per level (share of the measured capacity) each figure measured
    and predicted (ms) with its error and verdict; the trends; the knee."""
    cap = knee["measured_per_s"]
    lines = [f"{'level':<14}{'sent':>8}  {'figure':<26}{'measured':>9}{'repeats':>19}"
             f"{'twin':>11}{'error':>8}  verdict", f"{'(% of knee)':<14}{'(cmd/s)':>8}  "
             f"{'':<26}{'(ms)':>9}{'(ms, least..most)':>19}{'(ms)':>11}"]  # fmt: skip
    for r in table[table["metric"] != "throughput_per_s"].to_dict("records"):
        share = f"{r['sent_commands_per_s'] / cap:.0%}" + ("*" if r["calibration"] else "")
        e = float(r["rel_error"])
        low, high = r.get("measured_low", r["measured"]), r.get("measured_high", r["measured"])
        inside = r["verdict"] == "fail" and low <= r["predicted"] <= high
        lines.append(
            f"{share:<14}{r['sent_commands_per_s']:>8.0f}  "
            f"{metric_label(str(r['metric']), r.get('view', '')):<26}"
            f"{r['measured'] * 1e3:>9.3f}{f'{low * 1e3:.2f}..{high * 1e3:.2f}':>19}"
            f"{r['predicted'] * 1e3:>11.3f}"
            f"{'' if math.isnan(e) else f'{e:+.0%}':>8}  {r['verdict']}"
            + (f" (band {band(str(r['metric'])):.0%})" if r["verdict"] == "fail" else "")
            + (", inside the repeats' range" if inside else "")
        )
    lines += cpu_lines(table, cap) + repeats_line(table, cap)
    bad = trend[~trend["agrees"]] if len(trend) else trend
    lines.append(
        f"trends: {len(trend) - len(bad)} of {len(trend)} adjacent-level changes agree in sign"
        + "".join(
            f"\n  disagrees: {r['metric']} from {r['from_per_s']:.0f} to {r['to_per_s']:.0f}"
            f" commands/s: measured {r['measured_sign']:+d}, twin {r['predicted_sign']:+d}"
            for r in bad.to_dict("records")
        )
    )
    lines.append(
        f"knee: measured {cap:.0f} commands/s (95% CI {knee['ci_low_per_s']:.0f}.."
        f"{knee['ci_high_per_s']:.0f}), twin {knee['predicted_per_s']:.0f} commands/s, "
        f"error {knee['rel_error']:+.0%} (band {KNEE_BAND:.0%}): {knee['verdict']}"
    )
    return "\n".join(lines)


def validate_to_knee(
    args: argparse.Namespace, base: Path, knee: KneeResult, repeats: int = REPEATS
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Run the levels into ``base`` (``commands-R``, ``-2``, ...), compare them with the
    loop twin calibrated from the lightest, and write ``validation.csv`` (the comparison),
    ``trends.csv`` and ``knee-prediction.csv``. Returns the three."""
    from cqrs_lab.load.cli_options import run_levels

    outs = run_levels(args, level_rates(knee.capacity_per_s, repeats), base)
    return judge_to_knee(outs, base, knee, args.warmup, args.force)


def judge_to_knee(
    outs: list[Path], base: Path, knee: KneeResult, warmup: float = 2.0, force: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The judging of :func:`validate_to_knee` on levels already run (``outs``)."""
    from cqrs_lab.load.compare import compare
    from cqrs_lab.load.results import load_results

    table = compare([load_results(p) for p in outs], None, warmup, force=force)
    cal = table.attrs["calibration"]
    trend = trends(table)
    row = knee_row(knee, as_ramp(cal, base))
    table.to_csv(base / "validation.csv", index=False)
    trend.to_csv(base / "trends.csv", index=False)
    pd.DataFrame([row]).to_csv(base / "knee-prediction.csv", index=False)
    return table, trend, row


def as_ramp(cal: LoopCalibration, base: Path) -> LoopCalibration:
    """The twin with the knee ramp's load generator: as many users as its segments ran
    (``base/knee/segment-N/run.json``; they are fixed per segment, not sized per step as
    the levels' are), for its capacity and its curve against the ramp's."""
    users = 0
    for run in sorted((base / "knee").glob("segment-*/run.json")):
        try:
            users = max(users, int(json.loads(run.read_text(encoding="utf-8")).get("users") or 0))
        except (ValueError, TypeError, AttributeError):  # damaged: the rule's pool instead
            continue
    return replace(cal, users=users) if users > 0 else cal


def saved_knee(base: Path) -> KneeResult | None:
    """The knee that ``--measure-knee`` measured into ``base``, found again from its
    ``knee.csv`` by the same rule (None without one)."""
    path = base / "knee.csv"
    if not path.is_file():
        return None
    return find_knee(pd.read_csv(path).drop(columns=["role"], errors="ignore"))


def validate_and_report(
    args: argparse.Namespace, base: Path, knee: KneeResult, outs: list[Path] | None = None
) -> int:
    """``cqrs-lab twin DIR --measure-knee`` once the knee is measured: the levels (or the
    levels ``outs`` already run: ``cqrs-lab twin DIR`` on such a folder judges them again
    with the twin as it is now), the closing table, ``twin-scenario.toml`` (the twin at 90%
    of the capacity) and, unless ``--no-plots``, ``twin-knee.png`` (:func:`plot_to_knee`).
    Exit 0 once it ran (the verdicts are in the table)."""
    if outs is None:
        level_args = copy.copy(args)
        level_args.duration = args.level_seconds
        table, trend, row = validate_to_knee(level_args, base, knee)
    else:
        table, trend, row = judge_to_knee(outs, base, knee, args.warmup, args.force)
    cal = table.attrs["calibration"]
    print(cal.describe())
    print(format_closing(table, trend, row))
    matched = cpu_matched(table, cal)  # the queueing alone, at the measured CPU
    matched.to_csv(base / "validation-cpu-matched.csv", index=False)
    for line in cpu_matched_line(matched, knee.capacity_per_s):
        print(line)
    for line in answer_delay_line(table, knee.capacity_per_s):
        print(line)
    for line in split_line(table, knee.capacity_per_s):
        print(line)
    for name, why in table.attrs["disturbed"].items():
        print(f"set aside {name}: {why}")
    scenario = cal.write(base / "twin-scenario.toml", 0.9 * knee.capacity_per_s, 30.0)
    if not args.no_plots:
        upto = float(knee.steps["offered_per_s"].max()) if len(knee.steps) else 0.0
        curve = predicted_curve(as_ramp(cal, base), knee.capacity_per_s, upto=upto)
        curve.to_csv(base / "twin-curve.csv", index=False)
        plot_to_knee(table, knee, curve, base / "twin-knee.png")
    print(f"tables: {base / 'validation.csv'}, {base / 'trends.csv'}, "
          f"{base / 'knee-prediction.csv'}, {base / 'validation-cpu-matched.csv'}; "
          f"scenario: {scenario}")  # fmt: skip
    spec = getattr(args, "predict_processes", None)
    if spec and not processes_report(spec, cal, base):
        return 2
    return 0
