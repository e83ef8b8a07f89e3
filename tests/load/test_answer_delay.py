"""A measured latency split at the server's own timing of the request, paired by the id the
load generator sent (``X-Request-Id``), never by time alone."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cqrs_lab.load.answer_delay import (
    answer_delay_line,
    latency_parts,
    pooled_parts,
    split_line,
)


def _requests(*rows: tuple[str, float, float]) -> pd.DataFrame:
    ids, starts, ends = zip(*rows, strict=True)
    return pd.DataFrame(
        {"method": "POST", "request_id": list(ids), "start": list(starts), "end": list(ends)}
    )


def _stages(*rows: tuple[str, float, float]) -> pd.DataFrame:
    refs, ends, secs = zip(*rows, strict=True)
    columns = {"at": list(ends), "seconds": list(secs), "events": 1, "ref": list(refs)}
    return pd.DataFrame({"stage": "request", "name": "POST /x 200", **columns})


def test_the_parts_of_each_latency_add_up_and_are_paired_by_id() -> None:
    # two requests in flight at once, answered in the other order: a pairing by time (the
    # first span after each send) would swap them
    req = _requests(("9-1", 100.000, 100.010), ("9-2", 100.001, 100.006))
    st = _stages(("9-2", 100.004, 0.002), ("9-1", 100.008, 0.003))
    parts = latency_parts(req, st).set_index("request_id")
    assert parts.loc["9-1", "to_app_s"] == pytest.approx(0.005)
    assert parts.loc["9-1", "app_s"] == pytest.approx(0.003)
    assert parts.loc["9-1", "answer_delay_s"] == pytest.approx(0.002)
    assert parts.loc["9-2", "to_app_s"] == pytest.approx(0.001)
    assert parts.loc["9-2", "answer_delay_s"] == pytest.approx(0.002)
    total = parts[["to_app_s", "app_s", "answer_delay_s"]].sum(axis=1)
    assert total.to_numpy() == pytest.approx((parts["end"] - parts["start"]).to_numpy())


def test_requests_the_server_did_not_time_or_runs_without_ids_have_no_parts() -> None:
    req = _requests(("9-1", 100.0, 100.01), ("9-3", 100.02, 100.03))
    st = _stages(("9-1", 100.008, 0.003), ("", 100.025, 0.001))  # a request with no id
    assert list(latency_parts(req, st)["request_id"]) == ["9-1"]
    # a run recorded before the id was sent: no column on either side, no parts at all
    assert latency_parts(req.drop(columns=["request_id"]), st).empty
    assert latency_parts(req, st.drop(columns=["ref"])).empty


def test_a_levels_delays_are_pooled_and_shown_per_level() -> None:
    a = pd.DataFrame({"answer_delay_s": [0.001] * 20, "to_app_s": 0.003, "app_s": 0.004})
    b = pd.DataFrame({"answer_delay_s": [0.002] * 19 + [0.020], "to_app_s": 0.003, "app_s": 0.004})
    pooled = pooled_parts([a, b])  # one in 40 slow: not the p95
    assert (pooled["answer_delay_p50_s"], pooled["answer_delay_p95_s"]) == (
        pytest.approx(0.0015), pytest.approx(0.002))  # fmt: skip
    assert pooled["to_app_p95_s"] == pytest.approx(0.003)
    assert pooled["app_p50_s"] == pytest.approx(0.004)
    assert all(math.isnan(x) for x in pooled_parts([a.iloc[0:0]]).values())
    table = pd.DataFrame({
        "sent_commands_per_s": [100.0, 100.0, 500.0], "calibration": [True, True, False],
        "answer_delay_p50_s": [0.0001, 0.0001, 0.0004],
        "answer_delay_p95_s": [0.0003, 0.0003, 0.0050],
    })  # fmt: skip
    (line,) = answer_delay_line(table, 1000.0)
    assert line.endswith("10%* 0.10/0.30, 50% 0.40/5.00")
    # runs without ids: NaN delays, no line; a table without the columns, none either
    nan = table.assign(answer_delay_p50_s=math.nan, answer_delay_p95_s=math.nan)
    assert answer_delay_line(nan, 1000.0) == []
    assert answer_delay_line(table.drop(columns=["answer_delay_p95_s"]), 1000.0) == []


def test_the_servers_parts_are_shown_measured_against_the_twin_per_level() -> None:
    table = pd.DataFrame({
        "sent_commands_per_s": [100.0, 750.0], "calibration": [True, False],
        "to_app_p50_s": [0.0003, 0.002], "to_app_p95_s": [0.0006, 0.007],
        "app_p50_s": [0.0003, 0.001], "app_p95_s": [0.0005, 0.009],
        "twin_to_app_p50_s": [0.0001, 0.002], "twin_to_app_p95_s": [0.0003, 0.0072],
        "twin_app_p50_s": [0.0002, 0.0009], "twin_app_p95_s": [0.0004, 0.0077],
    })  # fmt: skip
    (line,) = split_line(table, 1000.0)
    assert "to the server's app 10%* 0.30/0.60 -> 0.10/0.30, 75% 2.00/7.00 -> 2.00/7.20" in line
    assert line.endswith("in it 10%* 0.30/0.50 -> 0.20/0.40, 75% 1.00/9.00 -> 0.90/7.70")
    # a level without ids (NaN) is left out; a table without the columns shows nothing
    table.loc[1, "app_p95_s"] = math.nan
    assert "75%" not in split_line(table, 1000.0)[0]
    assert split_line(table.drop(columns=["twin_app_p50_s"]), 1000.0) == []
