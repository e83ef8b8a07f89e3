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
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "PART_COLUMNS",
    "SERVER_KEYS",
    "SPLIT_KEYS",
    "answer_delay_line",
    "latency_parts",
    "pooled_parts",
    "split_line",
]

#: the columns :func:`latency_parts` adds to each paired request
PART_COLUMNS = ("to_app_s", "app_s", "answer_delay_s")
#: a level's figures of the server's two parts (which the twin simulates too)
SERVER_KEYS = ("to_app_p50_s", "to_app_p95_s", "app_p50_s", "app_p95_s")
#: a level's figures of every part (:func:`pooled_parts`)
SPLIT_KEYS = (*SERVER_KEYS, "answer_delay_p50_s", "answer_delay_p95_s")


def latency_parts(requests: pd.DataFrame, stages: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``requests`` (``start``, ``end``, ``request_id``) whose id a ``request``
    row of ``stages`` (``at``: its end, ``seconds``, ``ref``) carries, with
    :data:`PART_COLUMNS` (seconds); empty when either side has no ids."""
    if "request_id" not in requests.columns or "ref" not in stages.columns:
        return requests.iloc[0:0].assign(**{c: pd.Series(dtype=float) for c in PART_COLUMNS})
    served = stages[(stages["stage"] == "request") & (stages["ref"].fillna("") != "")]
    served = served.drop_duplicates("ref").set_index(served["ref"].astype(str).to_numpy())
    key = requests["request_id"].fillna("").astype(str)
    known = key.isin(served.index)
    paired, timed = requests[known], served.reindex(key[known].to_numpy())
    end, app = timed["at"].to_numpy(dtype=float), timed["seconds"].to_numpy(dtype=float)
    return paired.assign(
        to_app_s=end - app - paired["start"].to_numpy(dtype=float),
        app_s=app,
        answer_delay_s=paired["end"].to_numpy(dtype=float) - end,
    )


def pooled_parts(parts: Sequence[pd.DataFrame]) -> dict[str, float]:
    """The p50 and p95 (seconds) of each of :data:`PART_COLUMNS` over several runs' paired
    commands pooled (the :data:`SPLIT_KEYS`); NaN without any."""
    out = {}
    for column in PART_COLUMNS:
        values = [p[column].to_numpy(dtype=float) for p in parts if len(p)]
        pooled = np.concatenate(values) if values else np.array([])
        for q in (50, 95):
            key = f"{column[:-2]}_p{q}_s"
            out[key] = float(np.percentile(pooled, q)) if len(pooled) else math.nan
    return out


def _levels(
    table: pd.DataFrame, capacity_per_s: float, keys: Sequence[str]
) -> Iterator[tuple[str, pd.Series]]:
    """Each level of a comparison table (:func:`~cqrs_lab.load.compare.compare`'s) whose
    ``keys`` are all known, in order of load: its label (the share of ``capacity_per_s`` it
    sent, ``*`` for the calibration level) and its first row."""
    if not len(table) or not set(keys) <= set(table.columns):
        return
    for sent in sorted(float(x) for x in table["sent_commands_per_s"].unique()):
        row = table[table["sent_commands_per_s"] == sent].iloc[0]
        if any(math.isnan(float(row[k])) for k in keys):
            continue
        mark = "*" if bool(row.get("calibration", False)) else ""
        yield (f"{sent / capacity_per_s:.0%}{mark}" if capacity_per_s > 0 else f"{sent:.0f}"), row


def _ms(row: pd.Series, key: str) -> str:
    """A part's p50/p95 in ms (``key`` with ``{q}`` for the percentile)."""
    return "/".join(f"{float(row[key.format(q=q)]) * 1e3:.2f}" for q in (50, 95))


def answer_delay_line(table: pd.DataFrame, capacity_per_s: float) -> list[str]:
    """The closing table's line of the generator's answer delays per level (p50/p95 ms);
    nothing when no level has them (runs without request ids)."""
    keys = ("answer_delay_p50_s", "answer_delay_p95_s")
    shown = [f"{label} {_ms(row, 'answer_delay_p{q}_s')}"
             for label, row in _levels(table, capacity_per_s, keys)]  # fmt: skip
    if not shown:
        return []
    return [
        "the load generator's own delay taking an answer the server had written (ms, "
        "p50/p95; not simulated: the calibration level's is in the twin's offsets): "
        + ", ".join(shown)
    ]


def split_line(table: pd.DataFrame, capacity_per_s: float) -> list[str]:
    """The closing table's line comparing the server's two parts of a command's latency,
    measured and simulated, per level (p50/p95 ms); nothing without them. The measured time
    to the app also holds the generator's send and the loopback, which the twin does not
    simulate: the calibration level shows how much that is."""
    keys = (*SERVER_KEYS, *(f"twin_{k}" for k in SERVER_KEYS))
    parts: dict[str, list[str]] = {"to_app": [], "app": []}
    for label, row in _levels(table, capacity_per_s, keys):
        for part, shown in parts.items():
            measured, twin = _ms(row, part + "_p{q}_s"), _ms(row, "twin_" + part + "_p{q}_s")
            shown.append(f"{label} {measured} -> {twin}")
    if not parts["app"]:
        return []
    return [
        "where a command's latency goes, measured -> twin (ms, p50/p95; the measured time to "
        "the app also holds the generator's send and the loopback): to the server's app "
        + ", ".join(parts["to_app"])
        + "; in it "
        + ", ".join(parts["app"])
    ]
