"""SLO compliance, error budget and burn-rate alerts on hand-made event streams."""

from __future__ import annotations

import numpy as np

from cqrs_lab.sim import AlertRule, SloSpec
from cqrs_lab.sim.slo import alerts_for, compliance, default_rules

SLO = SloSpec("lag", "projection_lag", 0.5, objective=0.99, projection="balances")


def test_budget_consumed_is_the_bad_fraction_over_the_budget() -> None:
    times = np.arange(1000) * 0.1
    good = np.ones(1000, dtype=bool)
    good[:5] = False  # 0.5% bad against a 1% budget
    row = compliance(SLO, times, good, duration=100.0)
    assert row["bad"] == 5 and row["met"] is True
    assert abs(float(row["budget_consumed"]) - 0.5) < 1e-12  # type: ignore[arg-type]
    # the same run against a period ten times longer uses a tenth of the budget
    longer = SloSpec("lag", "projection_lag", 0.5, 0.99, "balances", period=1000.0)
    assert abs(float(compliance(longer, times, good, 100.0)["budget_consumed"]) - 0.05) < 1e-12  # type: ignore[arg-type]


def test_no_alert_when_everything_is_good() -> None:
    times = np.arange(600) * 0.1
    good = np.ones(600, dtype=bool)
    assert alerts_for(SLO, times, good, default_rules(60.0), np.arange(1, 61, dtype=float)) == []


def test_a_bad_burst_pages_while_both_windows_burn_and_resolves_after() -> None:
    times = np.arange(1000) * 0.1  # 10 events per second for 100 s
    good = np.ones(1000, dtype=bool)
    good[(times >= 40) & (times < 50)] = False  # 10 s of everything bad
    rule = AlertRule("page", long_window=10.0, short_window=1.0, burn_rate=14.4)
    grid = np.arange(1, 101, dtype=float)
    episodes = alerts_for(SLO, times, good, [rule], grid)
    assert len(episodes) == 1
    ep = episodes[0]
    # at t=42 the long window holds 2.1 s of bad of 10 s: burn 21 >= 14.4; at t=41 it holds
    # 1.1 s of bad: burn 11 < 14.4. After the burst the short window is clean at t=51.
    assert ep["fired_at_s"] == 42.0 and ep["resolved_at_s"] == 51.0
    # at t=50 the long window (40, 50] holds 99 bad events of 100 (50.0 itself is good)
    assert ep["severity"] == "page" and abs(float(ep["peak_burn"]) - 99.0) < 1e-9  # type: ignore[arg-type]


def test_default_rules_are_the_workbook_table_for_thirty_days() -> None:
    rules = default_rules(30 * 86400.0)
    assert [
        (r.severity, r.long_window / 3600, r.short_window / 60, r.burn_rate) for r in rules
    ] == [("page", 1.0, 5.0, 14.4), ("page", 6.0, 30.0, 6.0), ("ticket", 72.0, 360.0, 1.0)]
