"""Tables for people: the unit convention applied to a result's columns when it is printed.

Data keep SI seconds: a time column ends in ``_s``, a rate in ``_per_s``; counts and
fractions have no suffix (the README's "Vocabulary and units"). What a person reads shows
durations (latency, lag, wait, staleness) in milliseconds and says so in the header; the
run's clock (when something happened: ``t_s``, ``time_s``, ``arrival_s``...) and window
lengths stay in seconds, also with the unit in the header.

>>> label("latency_p99_s"), label("t_s"), label("throughput_per_s"), label("shed")
(('latency p99 (ms)', 1000.0), ('t (s)', 1.0), ('throughput (commands/s)', 1.0), ('shed', 1.0))
>>> import pandas as pd
>>> df = pd.DataFrame({"runs": [3], "lag_p99_s_mean": [0.0125], "lag_p99_s_ci_low": [0.01],
...                    "lag_p99_s_ci_high": [0.015]})
>>> for_display(df).to_dict("records")
[{'runs': 3, 'lag p99 (ms): mean [CI]': '12.5 [10, 15]'}]
"""

from __future__ import annotations

import pandas as pd

__all__ = ["CLOCK_COLUMNS", "for_display", "label"]

#: time columns that are points on the run's clock or window lengths: shown in seconds
CLOCK_COLUMNS = frozenset(
    {
        "t_s",
        "time_s",
        "arrival_s",
        "start_s",
        "end_s",
        "committed_s",
        "applied_s",
        "fired_at_s",
        "resolved_at_s",
        "first_at_s",
        "duration_s",
        "long_window_s",
        "short_window_s",
    }
)

#: what a rate counts, by its column's stem (anything else: "per s")
_RATE_UNITS = {
    "throughput": "commands/s",
    "arrival_rate": "commands/s",
    "offered": "commands/s",
}


def label(column: str) -> tuple[str, float]:
    """The header a person reads for ``column`` and the factor its values are scaled by."""
    if column.endswith("_per_s"):
        stem = column.removesuffix("_per_s")
        return f"{stem.replace('_', ' ')} ({_RATE_UNITS.get(stem, 'per s')})", 1.0
    if column.endswith("_s"):
        stem = column.removesuffix("_s").replace("_", " ")
        if column in CLOCK_COLUMNS:
            return f"{stem} (s)", 1.0
        return f"{stem} (ms)", 1000.0
    return column, 1.0


def _num(x: float) -> str:
    return "-" if pd.isna(x) else f"{x:.3g}"


def for_display(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with times in ms (clock times in s) and units in the headers.

    A sweep's ``M_mean``, ``M_ci_low`` and ``M_ci_high`` become one column ``"M: mean [CI]"``.
    """
    out: dict[str, object] = {}
    cols = list(df.columns)
    for col in cols:
        if col.endswith(("_ci_low", "_ci_high")):
            continue
        if col.endswith("_mean") and f"{col[:-5]}_ci_low" in cols:
            metric = col.removesuffix("_mean")
            name, k = label(metric)
            lo, hi = df[f"{metric}_ci_low"] * k, df[f"{metric}_ci_high"] * k
            out[f"{name}: mean [CI]"] = [
                f"{_num(m)} [{_num(a)}, {_num(b)}]"
                for m, a, b in zip(df[col] * k, lo, hi, strict=True)
            ]
            continue
        name, k = label(col)
        out[name] = df[col] * k if k != 1.0 else df[col]
    return pd.DataFrame(out, index=df.index)
