"""A measured latency split where the server timed it: before its app, its app, and after.

Locust measures a request from its user's send until the user has the answer. The server
times the same request (``serve --stage-timings``: the ``request`` stage, one row per
request, whose ``ref`` is the ``X-Request-Id`` the load generator sent and recorded in its
``request_id`` column) from its app's start until the answer is written to the socket
(:mod:`cqrs_lab.http.router`). Both are on the machine's monotonic clock, so each request's
latency is three parts (:func:`latency_parts`):

- ``to_app_s``: the send, the loopback, the server's read and parse of the bytes and the
  request's wait for its turn of the loop;
- ``app_s``: the app: the engine, the writer's batch and its commit, the answer;
- ``answer_delay_s``: from the answer written until the user has it: the loopback and the
  load generator's own turn to take it (one process for all its users: while it sends and
  takes other users' requests, an answer waits in the socket). The server takes the time
  just after its write returns, so a generator on another core may have the answer a few
  microseconds before: such a delay reads slightly negative.

The twin simulates the server, not the generator: the calibration level's answer delay is
in its offsets (:func:`~cqrs_lab.load.loop_calibration.client_offsets`), and a level whose
answer delays grew far past that one measured the generator as well as the server
(:func:`answer_delay_line`). Runs recorded before the id was sent have no parts (the
requests of a loaded server overlap too much to be paired by time alone).

>>> import pandas as pd
>>> req = pd.DataFrame({"method": ["POST", "POST"], "start": [10.0, 10.001],
...                     "end": [10.004, 10.006], "request_id": ["7-1", "7-2"]})
>>> st = pd.DataFrame({"stage": ["request", "request"], "name": ["POST /a 200"] * 2,
...                    "at": [10.0045, 10.0035], "seconds": [0.001, 0.001],
...                    "ref": ["7-2", "7-1"]})  # paired by id, not by order
>>> parts = latency_parts(req, st)
>>> [round(x * 1e3, 3) for x in parts.loc[0, ["to_app_s", "app_s", "answer_delay_s"]]]
[2.5, 1.0, 0.5]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "PART_COLUMNS",
    "SPLIT_KEYS",
    "answer_delay_line",
    "latency_parts",
    "level_delays",
    "pooled_parts",
    "split_line",
]

#: the columns :func:`latency_parts` adds to each paired request
PART_COLUMNS = ("to_app_s", "app_s", "answer_delay_s")
#: a level's figures of them (:func:`pooled_parts`): the server's two parts (which the twin
#: simulates too) first
SPLIT_KEYS = ("to_app_p50_s", "to_app_p95_s", "app_p50_s", "app_p95_s",
              "answer_delay_p50_s", "answer_delay_p95_s")  # fmt: skip


def latency_parts(requests: pd.DataFrame, stages: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``requests`` (``start``, ``end``, ``request_id``) whose id a ``request``
    row of ``stages`` (``at``: its end, ``seconds``, ``ref``) carries, with
    :data:`PART_COLUMNS` (seconds); empty when either side has no ids."""
    if "request_id" not in requests.columns or "ref" not in stages.columns:
        return requests.iloc[0:0].assign(**{c: pd.Series(dtype=float) for c in PART_COLUMNS})
    served = stages[(stages["stage"] == "request")]
    served = served[served["ref"].notna() & (served["ref"].astype(str) != "")]
    ids = requests["request_id"].astype(str)
    mine = requests[requests["request_id"].notna() & (ids != "")]
    ends = pd.Series(served["at"].to_numpy(dtype=float), index=served["ref"].astype(str))
    spans = pd.Series(served["seconds"].to_numpy(dtype=float), index=ends.index)
    ends, spans = ends[~ends.index.duplicated()], spans[~spans.index.duplicated()]
    key = mine["request_id"].astype(str)
    paired = mine[key.isin(ends.index)]
    key = key[key.isin(ends.index)]
    end = ends.loc[key].to_numpy()
    app = spans.loc[key].to_numpy()
    return paired.assign(
        to_app_s=end - app - paired["start"].to_numpy(dtype=float),
        app_s=app,
        answer_delay_s=paired["end"].to_numpy(dtype=float) - end,
    )


def answer_delay_line(levels: Sequence[tuple[str, float, float]]) -> list[str]:
    """The closing table's line: per level (its label, the pooled answer delay's p50 and
    p95 in seconds) in order; nothing when no level has them (runs without request ids)."""
    shown = [(label, p50, p95) for label, p50, p95 in levels if not math.isnan(p95)]
    if not shown:
        return []
    parts = ", ".join(f"{label} {p50 * 1e3:.2f}/{p95 * 1e3:.2f}" for label, p50, p95 in shown)
    return [
        "the load generator's own delay taking an answer the server had written (ms, "
        f"p50/p95; not simulated: the calibration level's is in the twin's offsets): {parts}"
    ]


def pooled_parts(parts: Sequence[pd.DataFrame]) -> dict[str, float]:
    """The p50 and p95 (seconds) of each of :data:`PART_COLUMNS` over several runs' paired
    commands pooled (``to_app_p50_s``, ..., ``answer_delay_p95_s``); NaN without any."""
    out = {}
    for column in PART_COLUMNS:
        values = [p[column].to_numpy(dtype=float) for p in parts if len(p)]
        pooled = np.concatenate(values) if values else np.array([])
        for q in (50, 95):
            key = f"{column[:-2]}_p{q}_s"
            out[key] = float(np.percentile(pooled, q)) if len(pooled) else math.nan
    return out


def level_delays(table: pd.DataFrame, capacity_per_s: float) -> list[tuple[str, float, float]]:
    """Per level of a comparison table (:func:`~cqrs_lab.load.compare.compare`'s, with
    its ``answer_delay_p50_s`` and ``answer_delay_p95_s``), in order of load: its label
    (the share of ``capacity_per_s`` it sent, ``*`` for the calibration level) and its
    answer delays; nothing from a table without them."""
    if "answer_delay_p95_s" not in table.columns or not len(table):
        return []
    out = []
    for sent in sorted(float(x) for x in table["sent_commands_per_s"].unique()):
        row = table[table["sent_commands_per_s"] == sent].iloc[0]
        mark = "*" if bool(row.get("calibration", False)) else ""
        label = f"{sent / capacity_per_s:.0%}{mark}" if capacity_per_s > 0 else f"{sent:.0f}"
        out.append((label, float(row["answer_delay_p50_s"]), float(row["answer_delay_p95_s"])))
    return out


def split_line(table: pd.DataFrame, capacity_per_s: float) -> list[str]:
    """The closing table's line comparing the server's two parts of a command's latency,
    measured and simulated, per judged level (p50/p95 ms); nothing without them. The
    measured time to the app also holds the generator's send and the loopback, which the
    twin does not simulate: the calibration level shows how much that is."""
    keys = ("to_app_p50_s", "to_app_p95_s", "app_p50_s", "app_p95_s")
    if not set(keys) | {f"twin_{k}" for k in keys} <= set(table.columns) or not len(table):
        return []
    parts: dict[str, list[str]] = {"to_app": [], "app": []}
    for sent in sorted(float(x) for x in table["sent_commands_per_s"].unique()):
        row = table[table["sent_commands_per_s"] == sent].iloc[0]
        if any(math.isnan(float(row[k])) or math.isnan(float(row[f"twin_{k}"])) for k in keys):
            continue
        mark = "*" if bool(row.get("calibration", False)) else ""
        label = f"{sent / capacity_per_s:.0%}{mark}" if capacity_per_s > 0 else f"{sent:.0f}"
        for part in parts:
            m50, m95 = (float(row[f"{part}_p{q}_s"]) * 1e3 for q in (50, 95))
            t50, t95 = (float(row[f"twin_{part}_p{q}_s"]) * 1e3 for q in (50, 95))
            parts[part].append(f"{label} {m50:.2f}/{m95:.2f} -> {t50:.2f}/{t95:.2f}")
    if not parts["app"]:
        return []
    return [
        "where a command's latency goes, measured -> twin (ms, p50/p95; the measured time to "
        "the app also holds the generator's send and the loopback): to the server's app "
        + ", ".join(parts["to_app"])
        + "; in it "
        + ", ".join(parts["app"])
    ]
