"""The ``requests`` table of a load test: every request's row read from ``requests-*.csv``.

Columns: :data:`~cqrs_lab.load.records.REQUEST_COLUMNS` (times in seconds: ``latency_s``,
``lateness_s``), plus ``t`` (seconds since the first send), ``ok`` (answered 2xx),
``error_kind`` (``connection``, ``5xx``, ``429`` or ``""``) and ``outcome`` (the lab's
word for what became of the request, :func:`outcome`). Folders written before the unit
convention (``latency_ms``, ``lateness_ms``) are read into the same seconds columns.

>>> outcome("POST", 409, "command refused"), outcome("POST", 409, "concurrent write")
('refused', 'conflict')
>>> outcome("POST", 412), outcome("GET", 503), outcome("GET", 404), outcome("POST", 0)
('conflict', 'shed', 'client error', 'error')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cqrs_lab.load.records import REQUEST_COLUMNS

__all__ = ["OUTCOMES", "commands", "outcome", "percentiles", "read_requests", "reads"]

#: what a request's status (and problem title) says became of it, in the lab's vocabulary:
#: ``accepted`` (a 2xx command), ``answered`` (a 2xx read), ``refused`` (409 ``command
#: refused``: the domain's own decision said no), ``conflict`` (412, or 409 ``concurrent
#: write``: lost an optimistic-concurrency race), ``shed`` (429/503: turned away before
#: deciding), ``client error`` (any other 4xx: a malformed or unknown request, a key still
#: in flight), ``error`` (any other 5xx, or no answer at all). Records written before the
#: ``problem`` column count every 409 as refused.
OUTCOMES = ("accepted", "answered", "refused", "conflict", "shed", "client error", "error")


def outcome(method: str, status: int, problem: str = "") -> str:
    """The lab's word for a request answered ``status`` with a problem titled ``problem``
    (see :data:`OUTCOMES`)."""
    if 200 <= status < 300:
        return "accepted" if method == "POST" else "answered"
    if status == 409 and problem in ("", "command refused"):
        return "refused"
    if status == 412 or (status == 409 and problem == "concurrent write"):
        return "conflict"
    if status in (429, 503):
        return "shed"
    if 400 <= status < 500:
        return "client error"
    return "error"


def commands(requests: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``requests`` that are commands (``POST``), of any domain."""
    return requests[requests["method"] == "POST"]


def reads(requests: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``requests`` that are reads (``GET``)."""
    return requests[requests["method"] == "GET"]


def percentiles(values: Any, prefix: str = "", suffix: str = "") -> dict[str, float]:
    """p50, p90, p95, p99, max and mean of raw values (NaN when there are none), each key
    between ``prefix`` and ``suffix``.

    >>> percentiles([1.0, 2.0, 3.0, 4.0])["p50"]
    2.5
    >>> percentiles([0.001], "latency_", "_s")["latency_max_s"]
    0.001
    """
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    keys = ("p50", "p90", "p95", "p99", "max", "mean")
    if not len(arr):
        return {prefix + k + suffix: float("nan") for k in keys}
    p = np.percentile(arr, [50, 90, 95, 99])
    vals = (*p, arr.max(), arr.mean())
    return {prefix + k + suffix: float(v) for k, v in zip(keys, vals, strict=True)}


def _error_kind(status: int) -> str:
    if status == 0:
        return "connection"
    if status >= 500:
        return "5xx"
    if status == 429:
        return "429"
    return ""


def read_requests(records: Path) -> pd.DataFrame:
    """Every ``requests-*.csv`` of a ``records`` folder as one table (see the module
    docstring), sorted by send time."""
    frames = [
        pd.read_csv(
            p,
            keep_default_na=False,
            dtype={"error": str, "kind": str, "problem": str, "request_id": str},
        )
        for p in sorted(records.glob("requests-*.csv"))
    ]
    frames = [_seconds_columns(f) for f in frames if len(f)]
    if not frames:
        df = pd.DataFrame({c: pd.Series(dtype=float) for c in REQUEST_COLUMNS})
    else:
        df = pd.concat(frames, ignore_index=True)
    for col in ("start", "end", "latency_s", "lateness_s"):
        df[col] = pd.to_numeric(df[col].replace("", np.nan)).astype(float)
    df["status"] = pd.to_numeric(df["status"]).astype(int)
    df = df.sort_values(["start", "end"], kind="stable").reset_index(drop=True)
    df["t"] = df["start"] - (float(df["start"].min()) if len(df) else 0.0)
    df["ok"] = (df["status"] >= 200) & (df["status"] < 300)
    df["error_kind"] = [_error_kind(int(s)) for s in df["status"]]
    if "problem" not in df.columns:
        df["problem"] = ""
    df["outcome"] = [
        outcome(str(m), int(s), str(p))
        for m, s, p in zip(df["method"], df["status"], df["problem"], strict=True)
    ]
    return df


def _seconds_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A file of a folder recorded before the unit convention: ``*_ms`` -> ``*_s``."""
    for old in ("latency_ms", "lateness_ms"):
        if old in frame.columns:
            ms = pd.to_numeric(frame[old].replace("", np.nan)).astype(float)
            frame = frame.drop(columns=[old]).assign(**{old[:-3] + "_s": ms / 1e3})
    return frame
