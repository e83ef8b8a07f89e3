"""The unit convention in what ``simulate --out`` writes and in what ``sweep`` prints.

Data are SI seconds: a time column ends in ``_s``, a rate in ``_per_s``; counts and fractions
have no suffix. A float column without a suffix must be a count or a fraction named below.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from cqrs_lab.cli import main
from cqrs_lab.sim.results import FAILURE_COLUMNS, TABLES

#: float columns that are no time and no rate, with what they hold
UNITLESS = {
    "handler_utilisation": "fraction of handler time busy",
    r"consumer_utilisation_\w+": "fraction of consumer time busy",
    r"backlog_\w+": "events (a mean over the bucket can be fractional)",
    r"consumers_\w+": "consumers alive (a count)",
    "queue": "commands waiting (a count)",
    "threshold": "an SLO threshold, in the unit its threshold_unit column names",
    "objective": "fraction of good events required",
    "compliance": "fraction of good events",
    "budget_consumed": "fraction of the error budget",
    "burn_rate": "a multiple of the budget's spending rate",
    "peak_burn": "a multiple of the budget's spending rate",
    "position": "a log position (NaN when none)",
}


def _allowed(column: str) -> bool:
    return column.endswith(("_s", "_per_s")) or any(re.fullmatch(p, column) for p in UNITLESS)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[pd.DataFrame]]:
    """Two runs between them fill every table but ``failures``: crashes that fire a burn-rate
    alert, and a read-heavy run (reads with their staleness)."""
    tables: dict[str, list[pd.DataFrame]] = {}
    for name, duration in (("crashes_at_least_once", "30"), ("read_heavy_catalogue", "3")):
        out = tmp_path_factory.mktemp(name)
        args = ["simulate", name, "--duration", duration, "--no-plots", "--out", str(out)]
        assert main(args) == 0
        for table in TABLES:
            tables.setdefault(table, []).append(pd.read_csv(out / f"{table}.csv"))
    return tables


def test_every_float_column_written_is_a_time_a_rate_or_a_named_count_or_fraction(
    written: dict[str, list[pd.DataFrame]],
) -> None:
    checked = 0
    for table, frames in written.items():
        if table != "failures":  # no built-in scenario has a handler failing for real
            assert any(len(f) for f in frames), f"{table}: no rows, the check would prove nothing"
        for frame in frames:
            for column in frame.columns:
                values = frame[column]
                if pd.api.types.is_float_dtype(values) and values.notna().any():  # not all empty
                    assert _allowed(column), f"{table}.csv: {column} has no unit suffix"
                    checked += 1
                if column.endswith("_s"):
                    assert pd.api.types.is_numeric_dtype(frame[column]) or not len(frame)
    assert checked > 40
    assert list(written["failures"][0].columns) == list(FAILURE_COLUMNS)
    assert "first_at_s" in FAILURE_COLUMNS


def test_the_tables_name_their_times(written: dict[str, list[pd.DataFrame]]) -> None:
    cols = {t: set(frames[0].columns) | set(frames[1].columns) for t, frames in written.items()}
    assert {"arrival_s", "start_s", "end_s", "wait_s", "latency_s"} <= cols["commands"]
    assert {"committed_s", "applied_s", "lag_s"} <= cols["applications"]
    assert {"latency_s", "staleness_s"} <= cols["reads"]
    assert {"t_s", "arrival_rate_per_s", "throughput_per_s"} <= cols["timeseries"]
    assert "lag_balances_s" in cols["timeseries"]
    assert "time_s" in cols["incidents"]
    assert {"fired_at_s", "resolved_at_s", "long_window_s"} <= cols["alerts"]
    assert {"shed", "refused", "throughput_per_s", "lag_p99_s"} <= cols["summary"]
    assert not {"rejected", "throughput", "lag_p99", "duration"} & cols["summary"]


def test_sweep_prints_milliseconds_with_units_and_writes_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sweep", "baseline", "--duration", "2", "-r", "2", "-j", "1", "--out", str(tmp_path)]
    assert main([*args, "--param", "commands.handlers=2", "--metrics", "latency_p99_s"]) == 0
    out = capsys.readouterr().out
    assert "latency p99 (ms): mean [CI]" in out and "latency_p99_s" not in out
    csv = pd.read_csv(tmp_path / "sweep.csv")
    seconds = float(csv["latency_p99_s_mean"].iloc[0])
    assert 0 < seconds < 1  # seconds in the file
    shown = re.search(r"\s(\d+(?:\.\d+)?) \[", out.splitlines()[1])
    assert shown is not None and float(shown.group(1)) == pytest.approx(seconds * 1000, rel=0.01)


def test_the_summary_prints_rates_per_second_and_times_in_milliseconds() -> None:
    """``throughput_per_s`` ends in ``_s`` too: it is a rate, never read as a time."""
    from cqrs_lab.sim.cli import _with_unit

    assert _with_unit("throughput_per_s", 505.4) == "505.4 commands/s"
    assert _with_unit("offered_per_s", 12.0) == "12.0 /s"
    assert _with_unit("latency_p99_s", 0.0123) == "12.30 ms"
