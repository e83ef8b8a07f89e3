"""The loader on small hand-written results folders: every expected figure is derived here
from the rows written, not copied from the code's output."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from cqrs_lab.checks import check_history, read_jsonl
from cqrs_lab.errors import ConfigError
from cqrs_lab.load import RunRecorder, acknowledged_writes, load_results
from cqrs_lab.load.results import percentiles
from tests.load.helpers import op, request, write_run


def test_percentiles_from_raw_values_use_linear_interpolation() -> None:
    # 1..100: the p-th percentile by linear interpolation is 1 + 99 * p / 100
    p = percentiles(np.arange(1, 101, dtype=float))
    assert p["p50"] == pytest.approx(50.5)
    assert p["p95"] == pytest.approx(95.05)
    assert p["p99"] == pytest.approx(99.01)
    assert p["max"] == 100.0
    assert np.isnan(percentiles([])["p50"])


def test_requests_latencies_throughput_and_errors(tmp_path: Path) -> None:
    rows = [request(0.1 * i, "deposit", latency_s=(i + 1) / 1e3) for i in range(10)]  # t 0..0.9
    rows += [
        request(1.2, "read", latency_s=0.00025),
        request(1.5, "deposit", status=503),
        request(1.7, "withdraw", status=0, error="ConnectionRefusedError"),
        request(2.1, "withdraw", status=409, problem="command refused"),
        request(2.2, "transfer", status=429),
    ]
    res = load_results(write_run(tmp_path / "r", rows))
    assert len(res.requests) == 15
    dep = res.latencies.set_index("name").loc["deposit"]
    # the 10 successful deposits took 1..10 ms; the 503 is not a latency sample
    assert dep["count"] == 11 and dep["ok"] == 10
    assert dep["latency_p50_s"] == pytest.approx(0.0055)
    # shown in ms, every column labelled with its unit
    shown = res.latencies_ms.set_index("name").loc["deposit"]
    assert shown["latency p50 (ms)"] == pytest.approx(5.5)
    tp = res.throughput.set_index("t")
    assert list(tp.index) == [0, 1, 2]
    assert tp.loc[0, "sent"] == 10 and tp.loc[0, "commands_ok"] == 10
    assert tp.loc[1, "ok"] == 1 and tp.loc[1, "errors"] == 2  # the 503 and the refused connection
    assert tp.loc[2, "errors"] == 1  # 429 counts as an error; the 409 refusal does not
    kinds = dict(zip(res.errors["error_kind"], res.errors["count"], strict=True))
    assert kinds == {"5xx": 1, "connection": 1, "429": 1}
    s = res.summary.iloc[0]
    assert (s["status_5xx"], s["conn_errors"]) == (1, 1)
    # turned down, in the lab's words: the 409 refused, the 429 and the 503 shed
    assert (s["refused"], s["conflict"], s["shed"], s["client_errors"]) == (1, 0, 2, 0)
    assert s["commands_ok"] == 10
    # rates are over the span of the sends (0 to 2.2 s), not the 10 s run.json asked for
    assert (s["duration_s"], s["load_span_s"]) == (10.0, pytest.approx(2.2))
    assert s["throughput_per_s"] == pytest.approx(10 / 2.2)
    assert s["requests_per_s"] == pytest.approx(15 / 2.2)
    # latencies are data in seconds: the deposits' 1..10 ms
    assert s["command_latency_max_s"] == pytest.approx(0.010)


def test_staleness_and_read_your_writes_from_the_history(tmp_path: Path) -> None:
    hist = [
        op("session-1", "write", "acct-1", 0.0, 0.1, "ok", 5, 7),
        op("session-1", "read", "acct-1", 0.2, 0.3, "ok", 105, 7),  # token read: saw it
        op("session-1/plain", "read", "acct-1", 0.4, 0.5, "ok", 100, 6),  # plain: one behind
        op("session-2", "write", "acct-2", 1.0, 1.1, "ok", 5, 9),
        op("session-2", "read", "acct-2", 1.2, 1.3, "ok", 0, 8),  # token read that missed it
    ]
    res = load_results(write_run(tmp_path / "r", [request(0, "deposit")], hist))
    st = res.staleness.sort_values(["session", "token"]).reset_index(drop=True)
    assert list(st["token"]) == [False, True, True]
    assert list(st["saw_write"]) == [False, True, False]
    assert list(st["behind"]) == [1, 0, 1]
    ryw = res.check["read-your-writes"]
    assert ryw.status == "fail" and len(ryw.violations) == 1
    assert "session-2" in ryw.violations[0].message
    assert res.summary.iloc[0]["plain_missed_own_write"] == 1


def test_the_audit_finds_lost_and_doubled_writes(tmp_path: Path) -> None:
    hist = [
        op("w-1", "write", "acct-1", 0.0, 0.1, "ok", 5, 3),
        op("w-1", "write", "acct-1", 0.2, 0.3, "ok", 5, 4),
        op("w-1", "write", "acct-2", 0.4, 0.5, "ok", 5, 5),
        op("w-1", "write", "acct-2", 0.6, 0.7, "failed", 5, None),  # not acknowledged
        op("w-1", "write", "transfer:t1", 0.8, 0.9, "ok", 5, 6),  # not on an account
    ]
    audit = [
        {"account": "acct-1", "statement": {"lines": [{"position": 1}, {"position": 3}]}},
        {"account": "acct-2", "statement": {"lines": [{"position": 5}, {"position": 5}]}},
    ]
    path = write_run(tmp_path / "r", [request(0, "deposit")], hist, audit=audit)
    assert acknowledged_writes(path / "records") == [("acct-1", 3), ("acct-1", 4), ("acct-2", 5)]
    result = load_results(path)
    assert result.lost == {"acknowledged": 3, "verified": 3, "lost": 1, "duplicated": 1,
                           "unverified": 0, "unaudited": 0, "expired": 0}  # fmt: skip
    assert result.check["no lost writes"].status == "fail"
    assert not result.check.ok


def test_the_audit_of_any_domain_judges_writes_where_a_view_lists_positions(
    tmp_path: Path,
) -> None:
    def w(key: str, pos: int, stream: str) -> dict[str, object]:
        value = {"kind": "k", "stream": stream}
        return op("w-1", "write", key, pos, pos + 0.1, "ok", value, pos)

    hist = [
        w("acct-1", 3, "account-acct-1"),
        w("acct-1", 4, "transfer-t9"),  # a transfer from acct-1: on the transfer's stream
        w("acct-11", 5, "account-acct-11"),  # a key that ends like another must not match it
        w("sku-1", 6, "product-sku-1"),  # the inventory's stock view lists no positions
        w("sku-2", 7, "product-sku-2"),  # its read did not answer
    ]
    audit = [
        {"key": "acct-1", "view": "balances", "status": 200, "read_position": "7", "answer": 95},
        {"key": "acct-1", "view": "statements", "status": 200, "read_position": "7",
         "answer": [{"position": 1}, {"position": 3}]},
        {"key": "acct-11", "view": "statements", "status": 200, "read_position": "7",
         "answer": [{"position": 2}]},
        {"key": "sku-1", "view": "stock", "status": 200, "read_position": "7",
         "answer": {"available": 3}},
        {"key": "sku-2", "view": "stock", "status": 0, "read_position": None, "answer": None},
    ]  # fmt: skip
    path = write_run(tmp_path / "r", [request(0, "reserve")], hist, audit=audit)
    assert acknowledged_writes(path / "records") == [
        ("acct-1", 3), ("acct-11", 5), ("sku-1", 6), ("sku-2", 7)
    ]  # fmt: skip
    result = load_results(path)
    assert result.lost == {"acknowledged": 4, "verified": 2, "lost": 1, "duplicated": 0,
                           "unverified": 1, "unaudited": 1, "expired": 0}  # fmt: skip
    assert result.check["no lost writes"].status == "fail"  # acct-11's write at 5 is missing


def test_a_run_without_a_client_history_does_not_pass_its_guarantees(tmp_path: Path) -> None:
    """A locustfile of its own records no history: the session guarantees are not judged
    (said so), neither passed on nothing nor failed (the requests are what they are)."""
    res = load_results(write_run(tmp_path / "r", [request(0.1 * i, "deposit") for i in range(5)]))
    assert not res.history
    names = {x.name for x in res.check.results}
    assert "read-your-writes" not in names
    verdict = res.check["session guarantees"]
    assert verdict.status == "info" and verdict.summary.startswith("not judged"), verdict
    assert res.check.ok and res.summary.iloc[0]["ryw_violations"] == 0


def test_no_write_looked_up_is_not_judged_rather_than_passed(tmp_path: Path) -> None:
    """A domain whose views list no positions (the inventory's stock): no acknowledged write
    can be found or missed, so the check says it did not judge, not that none was lost."""
    hist = [op("w-1", "write", "sku-1", 1, 1.1, "ok", {"kind": "k", "stream": "product-sku-1"}, 1)]
    audit = [{"key": "sku-1", "view": "stock", "status": 200, "read_position": "1",
              "answer": {"available": 3}}]  # fmt: skip
    result = load_results(write_run(tmp_path / "r", [request(0, "reserve")], hist, audit=audit))
    assert result.lost["acknowledged"] == 1 and result.lost["verified"] == 0
    verdict = result.check["no lost writes"]
    assert verdict.status == "info" and verdict.summary.startswith("not judged"), verdict


def test_a_write_older_than_a_trimmed_statement_is_expired_not_lost(tmp_path: Path) -> None:
    """The bank's statement keeps an account's newest lines: a write older than the oldest
    line kept cannot be judged (expired); a newer one missing from it is still lost."""

    def w(pos: int) -> dict[str, object]:
        return op("w-1", "write", "acct-1", pos, pos + 0.1, "ok",
                  {"kind": "deposit", "stream": "account-acct-1"}, pos)  # fmt: skip

    hist = [w(10), w(20), w(50), w(55), w(60)]
    audit = [{"key": "acct-1", "view": "statements", "status": 200, "read_position": "60",
              "answer": [{"position": 50}, {"position": 60}]}]  # fmt: skip
    result = load_results(write_run(tmp_path / "r", [request(0, "deposit")], hist, audit=audit))
    assert result.lost == {"acknowledged": 5, "verified": 3, "lost": 1, "duplicated": 0,
                           "unverified": 0, "unaudited": 0, "expired": 2}  # fmt: skip
    assert result.check["no lost writes"].status == "fail"  # 55 is newer than 50: lost


def test_a_run_without_requests_or_with_a_refused_fault_is_no_pass(tmp_path: Path) -> None:
    empty = load_results(write_run(tmp_path / "empty", []))
    assert empty.check["requests"].status == "fail" and not empty.check.ok
    assert "FAIL" in empty.check.to_text() and "PASS" not in empty.check.to_text()
    path = write_run(tmp_path / "r", [request(0, "deposit")])
    (path / "faults.jsonl").write_text('{"at": 1.0, "body": {"crash": ["x"]}, "status": 404}\n')
    refused = load_results(path).check["requests"]
    assert refused.status == "fail" and "HTTP 404" in refused.violations[0].message


def test_not_a_results_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no records/"):
        load_results(tmp_path)


def test_a_damaged_results_folder_names_the_damaged_file(tmp_path: Path) -> None:
    rows = [request(0.1 * i, "deposit", latency_s=1e-3) for i in range(10)]
    run = write_run(tmp_path / "r", rows)
    assert len(load_results(run).requests) == 10
    damage = [
        (run / "run.json", b"\xff\xfe", r"run\.json: damaged \(UnicodeDecodeError"),
        (run / "run.json", b"{cut sho", r"run\.json: damaged \(JSONDecodeError"),
        (run / "run.json", b"[1, 2]", r"run\.json: not a JSON object"),
        (run / "run.json", b'{"server_cpu_s": "lots"}', r"run\.json: server_cpu_s='lots' is not"),
        (run / "run.json", b'{"t0_monotonic": -1}', r"run\.json: t0_monotonic=-1 is not"),
        (run / "run.json", b'{"options": {"rate": -5}}', r"run\.json: options\.rate=-5 is not"),
        (run / "run.json", b'{"options": [1]}', r"run\.json: options=\[1\] is not a JSON"),
        (run / "server" / "stages.csv", b"a,b\n1,2\n", r"stages\.csv: damaged.*no column stage"),
        (run / "server" / "stages.csv", b"\x00\xff\xfe", r"stages\.csv: damaged"),
    ]
    for path, data, message in damage:
        path.parent.mkdir(exist_ok=True)
        before = path.read_bytes() if path.exists() else None
        path.write_bytes(data)
        with pytest.raises(ConfigError, match=message):
            load_results(run)
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)
    for csv_file in (run / "records").glob("requests-*.csv"):
        csv_file.write_text("start,end\nnot,a number\n")
    with pytest.raises(ConfigError, match=r"records: damaged \(ValueError"):
        load_results(run)


class _Response:
    status_code = 200
    headers = {"X-Consistency-Token": "42"}


class _Read:
    status_code = 200
    headers = {"X-Read-Position": "40", "X-Stale": "true"}

    def json(self) -> dict[str, int]:
        return {"balance": 77}


class _Written:
    status_code = 200
    headers = {"X-Consistency-Token": "44"}

    def json(self) -> dict[str, object]:
        return {"stream_id": "account-acct-1", "position": 44}


def test_the_recorder_writes_exact_latency_and_lateness(tmp_path: Path) -> None:
    rec = RunRecorder(tmp_path, process="p")
    rec.on_request("POST", "deposit", 1.23456, 10, _Response(), {"kind": "writer"}, None)
    rec.on_request(
        "GET",
        "read",
        2.5,
        0,
        None,
        {"kind": "reader", "scheduled": 0.0},
        ConnectionRefusedError("no"),
    )
    rec.close()
    lines = rec.requests_path.read_text().splitlines()
    assert len(lines) == 3
    first = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    # Locust's 1.23456 ms, recorded in seconds
    assert first["latency_s"] == "0.0012346" and first["status"] == "200"
    assert first["token"] == "42" and first["problem"] == ""
    second = dict(zip(lines[0].split(","), lines[2].split(","), strict=True))
    assert second["status"] == "0" and second["error"].startswith("ConnectionRefusedError")
    # scheduled at monotonic 0.0 (long ago): the lateness is large and positive
    assert float(second["lateness_s"]) > 1.0


def test_server_stage_means_come_from_its_metrics(tmp_path: Path) -> None:
    path = write_run(tmp_path / "r", [request(0, "deposit")])
    (path / "metrics-end.txt").write_text(
        "# TYPE cqrs_lab_stage_seconds counter\n"
        'cqrs_lab_stage_seconds_total{stage="command"} 0.3\n'
        'cqrs_lab_stage_seconds_total{stage="projection"} 0.02\n'
        "# TYPE cqrs_lab_stage_items counter\n"
        'cqrs_lab_stage_items_total{stage="command"} 600.0\n'
        'cqrs_lab_stage_items_total{stage="projection"} 1000.0\n'
    )
    s = load_results(path).summary.iloc[0]
    assert s["server_command_s"] == pytest.approx(0.0005)  # 0.3 s over 600 commands
    assert s["server_event_s"] == pytest.approx(0.00002)  # 0.02 s over 1000 events


def test_a_plain_server_gives_means_per_route_from_its_histogram() -> None:
    from cqrs_lab.load.metrics import parse_metrics, stage_means

    labels = 'method="GET",route="/livez",status="200"'
    text = (
        "# TYPE http_request_duration_seconds histogram\n"
        f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} 4.0\n'
        f"http_request_duration_seconds_count{{{labels}}} 4.0\n"
        f"http_request_duration_seconds_sum{{{labels}}} 0.002\n"
    )
    assert stage_means(parse_metrics(text)) == {"GET /livez": pytest.approx(0.0005)}


def test_history_records_are_written_from_the_request_event(tmp_path: Path) -> None:
    rec = RunRecorder(tmp_path, process="h")
    ctx = {"kind": "session", "session": "s1", "op": "write", "key": "acct-1", "value": 5}
    rec.on_request("POST", "deposit", 2.0, 10, _Response(), ctx, None)
    read = {"kind": "session", "session": "s1", "op": "read", "key": "acct-1", "token": 42}
    time.sleep(0.01)  # the read (3 ms long) is sent after the write was answered
    rec.on_request("GET", "read-token", 3.0, 10, _Read(), read, None)

    class _Gone:
        status_code = 503
        headers: dict[str, str] = {}

    rec.on_request("GET", "read-token", 9.0, 0, _Gone(), read, None)
    rec.on_request(
        "POST",
        "withdraw",
        1.0,
        0,
        type("R", (), {"status_code": 409, "headers": {}})(),
        {**ctx, "value": "withdraw"},
        None,
    )
    rec.on_request("POST", "deposit", 1.0, 10, _Written(), {**ctx, "value": "deposit"}, None)
    rec.close()
    ops = read_jsonl(rec.history_path)
    assert [(o.op, o.outcome, o.position, o.value) for o in ops] == [
        ("write", "ok", 42, 5),  # an answer without a body: the value the context gave
        ("read", "ok", 40, {"balance": 77}),  # the read model's position and its answer
        ("read", "unknown", None, None),  # 503: no trustworthy answer
        ("write", "failed", None, "withdraw"),  # 409: the withdrawal did not happen
        ("write", "ok", 44, {"kind": "deposit", "stream": "account-acct-1"}),
    ]
    # invoke and complete bracket the exact latency
    assert ops[1].complete - ops[1].invoke == pytest.approx(0.003, abs=1e-6)
    # position 40 < the session's own write at 42, read after it completed: a violation
    assert check_history(ops[:4])["read-your-writes"].status == "fail"


def test_result_plots_draw_what_was_recorded(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [request(0.5 * i, "deposit", latency_s=(1.0 + i) / 1e3) for i in range(6)]
    res = load_results(write_run(tmp_path / "r", rows))
    ax = res.plot_throughput()
    assert [line.get_label() for line in ax.get_lines()] == ["sent", "ok", "errors"]
    ax2 = res.plot_latency()
    assert len(ax2.collections[0].get_offsets()) == 6  # one point per command
    plt.close("all")


def test_turned_down_requests_are_named_by_the_vocabulary(tmp_path: Path) -> None:
    rows = [
        request(0.0, "deposit"),
        request(0.1, "read"),
        request(0.2, "withdraw", status=409, problem="command refused"),
        request(0.3, "withdraw", status=409, problem="concurrent write"),
        request(0.4, "deposit", status=412, problem="precondition failed"),
        request(0.5, "deposit", status=429, problem="too many requests"),
        request(0.6, "read", status=503, problem="not caught up"),
        request(0.7, "deposit", status=422, problem="invalid request"),
        request(0.8, "deposit", status=409, problem="request in progress"),
        request(0.9, "deposit", status=500),
        request(1.0, "deposit", status=0, error="ConnectionRefusedError"),
    ]
    res = load_results(write_run(tmp_path / "r", rows))
    assert res.requests["outcome"].tolist() == [
        "accepted", "answered", "refused", "conflict", "conflict", "shed", "shed",
        "client error", "client error", "error", "error",
    ]  # fmt: skip
    s = res.summary.iloc[0]
    assert (s["refused"], s["conflict"], s["shed"], s["client_errors"]) == (1, 2, 2, 2)
    by_name = res.outcomes.set_index("name")
    assert by_name.loc["withdraw", "refused"] == 1 and by_name.loc["withdraw", "conflict"] == 1
    assert by_name.loc["deposit", "accepted"] == 1
    from cqrs_lab.load.summary import format_summary

    text = format_summary(res.summary)
    assert "refused by the domain (requests)" in text and "shed, 429/503 (requests)" in text


def test_a_folder_recorded_in_milliseconds_reads_in_seconds(tmp_path: Path) -> None:
    """Results folders written before the unit convention keep loading, converted."""
    path = write_run(tmp_path / "old", [request(0.0, "deposit", latency_s=0.004)])
    csv = path / "records" / "requests-t.csv"
    header, row = csv.read_text().splitlines()
    names = header.split(",")
    values = dict(zip(names, row.split(","), strict=True))
    values["latency_s"], values["lateness_s"] = "4.0", "1.5"  # as milliseconds
    old = [n.replace("latency_s", "latency_ms").replace("lateness_s", "lateness_ms") for n in names]
    old_names = [n for n in old if n != "problem"]
    csv.write_text(
        ",".join(old_names) + "\n" + ",".join(values[n] for n in names if n != "problem") + "\n"
    )
    r = load_results(path).requests.iloc[0]
    assert r["latency_s"] == pytest.approx(0.004) and r["lateness_s"] == pytest.approx(0.0015)
    assert r["outcome"] == "accepted"


def test_damaged_cpu_samples_are_named_by_their_file(tmp_path: Path) -> None:
    from cqrs_lab.load.summary import cpu_rate

    (tmp_path / "cpu.csv").write_bytes(b"\xc5\x00garbage\xff")
    with pytest.raises(ConfigError, match=r"cpu\.csv: not the CPU samples a load test writes"):
        cpu_rate(tmp_path, 0.0, 0.0, 10.0, "server_cpu_s")
    assert math.isnan(cpu_rate(tmp_path / "none", 0.0, 0.0, 10.0, "server_cpu_s"))  # not measured
