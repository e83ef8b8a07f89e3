"""A measured latency split at the server's own timing of the request, paired by the id the
load generator sent (``X-Request-Id``), never by time alone."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cqrs_lab.load.answer_delay import (
    answer_delay_line,
    latency_parts,
    level_delays,
    pooled_delays,
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
    a = pd.DataFrame({"answer_delay_s": [0.001] * 20})
    b = pd.DataFrame({"answer_delay_s": [0.002] * 19 + [0.020]})  # pooled: one in 40 slow
    p50, p95 = pooled_delays([a, b])
    assert (p50, p95) == (pytest.approx(0.0015), pytest.approx(0.002))
    assert all(math.isnan(x) for x in pooled_delays([a.iloc[0:0]]))
    table = pd.DataFrame({
        "sent_commands_per_s": [100.0, 100.0, 500.0], "calibration": [True, True, False],
        "answer_delay_p50_s": [0.0001, 0.0001, 0.0004],
        "answer_delay_p95_s": [0.0003, 0.0003, 0.0050],
    })  # fmt: skip
    levels = level_delays(table, 1000.0)
    assert levels == [("10%*", 0.0001, 0.0003), ("50%", 0.0004, 0.005)]
    (line,) = answer_delay_line(levels)
    assert line.endswith("10%* 0.10/0.30, 50% 0.40/5.00")
    # runs without ids: NaN delays, no line
    assert answer_delay_line([("10%", math.nan, math.nan)]) == []
    assert level_delays(table.drop(columns=["answer_delay_p95_s"]), 1000.0) == []
