"""SLOs over a run: compliance, error budget consumed, and multi-window burn-rate alerts.

An SLO says that a fraction ``objective`` of events must be good (an SLI at most its
``threshold``). The error budget is ``1 - objective``; the burn rate over a window is the
bad fraction in that window divided by the budget (burn rate 1 spends exactly the budget
over the SLO period). Alerts follow the Google SRE workbook (chapter 5, "Alerting on SLOs"):
an alert fires while both its long and its short window burn at or above its rate. The
default rules, for an SLO period P, are the workbook's for 30 days scaled to P:

======== ============ ============= ==========
severity long window  short window  burn rate
======== ============ ============= ==========
page     P / 720      P / 8640      14.4
page     P / 120      P / 1440      6
ticket   P / 10       P / 120       1
======== ============ ============= ==========

>>> [r.burn_rate for r in default_rules(30 * 86400.0)]
[14.4, 6.0, 1.0]
>>> default_rules(30 * 86400.0)[0].long_window / 3600
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cqrs_lab.sim.scenario_parts import AlertRule, SloSpec

__all__ = ["SLO_COLUMNS", "alerts_for", "compliance", "default_rules", "sli_events"]

SLO_COLUMNS = (
    "slo",
    "sli",
    "projection",
    "threshold",
    "threshold_unit",
    "objective",
    "events",
    "bad",
    "compliance",
    "met",
    "budget_consumed",
)
ALERT_COLUMNS = (
    "slo",
    "severity",
    "fired_at_s",
    "resolved_at_s",
    "long_window_s",
    "short_window_s",
    "burn_rate",
    "peak_burn",
)


#: the unit of an SLO's ``threshold`` (the SLO table says it in ``threshold_unit``)
_UNIT = {"backlog": "events", "error_rate": "-"}


def default_rules(period: float) -> tuple[AlertRule, ...]:
    """The SRE workbook's multi-window, multi-burn-rate rules for an SLO period (seconds)."""
    return (
        AlertRule("page", period / 720, period / 8640, 14.4),
        AlertRule("page", period / 120, period / 1440, 6.0),
        AlertRule("ticket", period / 10, period / 120, 1.0),
    )


def sli_events(
    slo: SloSpec,
    commands: pd.DataFrame,
    applications: pd.DataFrame,
    reads: pd.DataFrame,
    timeseries: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray]:
    """(times, good) of every event the SLO counts, sorted by time."""
    thr = slo.threshold
    if slo.sli in ("command_latency", "error_rate"):
        done = commands[commands["end_s"].notna()]
        if slo.sli == "command_latency":
            done = done[done["outcome"].isin(("accepted", "refused"))]
            good = (done["latency_s"] <= thr).to_numpy()
        else:
            good = done["outcome"].isin(("accepted", "refused")).to_numpy()
        times = done["end_s"].to_numpy(dtype=float)
    elif slo.sli in ("query_latency", "read_staleness"):
        col = "latency_s" if slo.sli == "query_latency" else "staleness_s"
        times = reads["end_s"].to_numpy(dtype=float)
        good = (reads[col] <= thr).to_numpy()
    elif slo.sli == "projection_lag":
        a = applications[
            (applications["projection"] == slo.projection)
            & ~applications["replay"]
            & ~applications["duplicate"]
        ]
        times = a["applied_s"].to_numpy(dtype=float)
        good = (a["lag_s"] <= thr).to_numpy()
    else:  # backlog, one sample per bucket
        times = timeseries["t_s"].to_numpy(dtype=float)
        good = (timeseries[f"backlog_{slo.projection}"] <= thr).to_numpy()
    order = np.argsort(times, kind="stable")
    return times[order], good[order].astype(bool)


def compliance(
    slo: SloSpec, times: np.ndarray, good: np.ndarray, duration: float
) -> dict[str, object]:
    """One row of the SLO table: compliance, whether met, fraction of the budget consumed."""
    n = len(good)
    bad = int(n - good.sum())
    frac_good = (n - bad) / n if n else 1.0
    budget = 1.0 - slo.objective
    period = slo.period or duration
    consumed = (bad / n) / budget * (duration / period) if n else 0.0
    return {
        "slo": slo.name,
        "sli": slo.sli,
        "projection": slo.projection,
        "threshold": slo.threshold,
        "threshold_unit": _UNIT.get(slo.sli, "s"),
        "objective": slo.objective,
        "events": n,
        "bad": bad,
        "compliance": frac_good,
        "met": frac_good >= slo.objective,
        "budget_consumed": consumed,
    }


def alerts_for(
    slo: SloSpec,
    times: np.ndarray,
    good: np.ndarray,
    rules: Sequence[AlertRule],
    grid: np.ndarray,
) -> list[dict[str, object]]:
    """Alert episodes (``fired_at_s``, ``resolved_at_s``) per rule, evaluated at ``grid`` times."""
    budget = 1.0 - slo.objective
    bad_cum = np.concatenate(([0], np.cumsum(~good)))
    out: list[dict[str, object]] = []

    def burn(window: float) -> np.ndarray:
        hi = np.searchsorted(times, grid, side="right")
        lo = np.searchsorted(times, grid - window, side="right")
        total = hi - lo
        bad = bad_cum[hi] - bad_cum[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(total > 0, bad / np.maximum(total, 1) / budget, 0.0)
        return rate

    for rule in rules:
        long_b, short_b = burn(rule.long_window), burn(rule.short_window)
        firing = (long_b >= rule.burn_rate) & (short_b >= rule.burn_rate)
        start: int | None = None
        for i, on in enumerate([*firing.tolist(), False]):
            if on and start is None:
                start = i
            elif not on and start is not None:
                out.append(
                    {
                        "slo": slo.name,
                        "severity": rule.severity,
                        "fired_at_s": float(grid[start]),
                        "resolved_at_s": float(grid[i]) if i < len(grid) else float("nan"),
                        "long_window_s": rule.long_window,
                        "short_window_s": rule.short_window,
                        "burn_rate": rule.burn_rate,
                        "peak_burn": float(long_b[start:i].max()),
                    }
                )
                start = None
    return out
