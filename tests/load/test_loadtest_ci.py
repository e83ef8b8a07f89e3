"""The CI load test: real Locust (headless, open model) against a real uvicorn subprocess on
127.0.0.1, with the projection consumers crashed midway under effectively-once.

One bounded run (about 20 s wall time: 10 s of load) serves every assertion below.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cqrs_lab.load import LoadResult, LoadTestOptions, load_results, parse_fault, run_loadtest
from cqrs_lab.load.answer_delay import PART_COLUMNS, latency_parts

pytestmark = pytest.mark.slow

DURATION = 10.0
CRASH_AT = 5.0  # seconds into the load: midway


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadResult, int]:
    out = tmp_path_factory.mktemp("ci-load") / "run"
    opts = LoadTestOptions(
        rate=120.0,
        duration=DURATION,
        out=str(out),
        accounts=50,
        delivery="effectively-once",
        faults=(parse_fault(f"{CRASH_AT:g}:crash=balances+statements"),),
    )
    path, code = run_loadtest(opts)
    return load_results(path), code


def test_the_run_completed_with_real_load(run: tuple[LoadResult, int]) -> None:
    result, code = run
    assert code == 0
    s = result.summary.iloc[0]
    # an open model at 120 tasks/s for 10 s (about 1200 tasks): far more than a handful,
    # from every user kind (a third of the expected count is a generous lower bound)
    assert s["requests"] > 400
    assert set(result.requests["name"]) >= {"deposit", "withdraw", "read", "read-token"}
    assert s["model"] == "open"


def test_no_5xx_and_no_connection_errors(run: tuple[LoadResult, int]) -> None:
    s = run[0].summary.iloc[0]
    assert s["status_5xx"] == 0, run[0].errors
    assert s["conn_errors"] == 0, run[0].errors


def test_the_crash_happened_midway_and_was_felt(run: tuple[LoadResult, int]) -> None:
    result = run[0]
    faults = [json.loads(x) for x in (result.path / "faults.jsonl").read_text().splitlines()]
    assert [f["status"] for f in faults] == [200]
    assert faults[0]["body"] == {"crash": ["balances", "statements"]}
    # the server restarts a crashed consumer after 1 s (its --restart-after default): events
    # appended while it was down waited for it, so the worst lag is of that order
    lag = result.stages[(result.stages["stage"] == "lag") & (result.stages["name"] == "balances")]
    assert float(lag["seconds"].max()) > 0.5
    # and token-carrying reads issued during the outage waited (stale answers are refused)
    tok = result.requests[result.requests["name"] == "read-token"]
    assert float(tok["latency_s"].max()) > 0.300


def test_token_reads_never_violate_read_your_writes(run: tuple[LoadResult, int]) -> None:
    result = run[0]
    ryw = result.check["read-your-writes"]
    assert ryw.status == "pass", ryw.violations[:3]
    assert ryw.measures["judged"] > 50  # the check judged real reads, not an empty history
    st = result.staleness
    token_reads = st[st["token"]]
    assert len(token_reads) > 20
    assert bool(token_reads[token_reads["outcome"] == "ok"]["saw_write"].all())


def test_nothing_acknowledged_is_lost_or_doubled(run: tuple[LoadResult, int]) -> None:
    lost = run[0].lost
    assert lost["acknowledged"] > 100
    assert lost["unverified"] == 0
    assert lost["verified"] == lost["acknowledged"]
    assert lost["lost"] == 0
    assert lost["duplicated"] == 0


def test_exact_latencies_were_recorded_not_buckets(run: tuple[LoadResult, int]) -> None:
    lat = run[0].requests["latency_s"].to_numpy(dtype=float) * 1e3  # in ms, as Locust rounds
    # Locust's statistics round to whole milliseconds (and coarser above 100 ms); the raw
    # values keep sub-millisecond precision
    assert np.mean(lat != np.round(lat)) > 0.9
    assert Path(run[0].path / "server" / "stages.csv").exists()


def test_distributed_open_model_paces_across_workers(tmp_path: Path) -> None:
    # Locust's own master and 2 workers: each worker paces its users at their share of the
    # total rate (the master forwards the pool size; Locust does not forward -u itself)
    opts = LoadTestOptions(
        rate=60.0,
        duration=5.0,
        processes=2,
        out=str(tmp_path / "run"),
        accounts=20,
        audit=False,
        classes=("WriterUser", "SessionUser"),
    )
    path, code = run_loadtest(opts)
    result = load_results(path)
    assert code == 0
    per_worker = result.requests.groupby("process").size()
    assert len(per_worker) == 2 and bool((per_worker > 20).all())
    s = result.summary.iloc[0]
    # 60 tasks/s for about 5 s; a SessionUser task is 3 requests: well over 150 requests
    assert s["requests"] > 150
    assert s["status_5xx"] == 0
    assert result.check["read-your-writes"].status == "pass"
    # every Locust process wrote its own history, and the one check read all of them
    per_file = result.histories
    lines = {
        f.name: sum(1 for line in f.read_text().splitlines() if line.strip())
        for f in (path / "records").glob("history-*.jsonl")
    }
    assert per_file == lines  # each file's operations, all counted
    for tag in per_worker.index:  # both workers recorded operations
        assert per_file[f"history-{tag}.jsonl"] > 10
    assert sum(per_file.values()) == len(result.history)
    assert result.run["histories"] == per_file
    ran = result.check["requests"]
    assert ran.measures["histories"] == len(per_file) >= 2
    assert f"from {len(per_file)} histories" in ran.summary


def test_the_server_timed_every_command_under_the_id_it_was_sent_with(
    run: tuple[LoadResult, int],
) -> None:
    # the generator sends X-Request-Id and records it; the server's request timings carry it:
    # each answered command's latency splits at the server's app exactly (one clock)
    result = run[0]
    cmds = result.requests[(result.requests["method"] == "POST") & result.requests["ok"]]
    assert cmds["request_id"].astype(str).str.fullmatch(r"\d+-\d+").all()
    assert cmds["request_id"].is_unique
    parts = latency_parts(cmds, result.stages)
    assert len(parts) == len(cmds) > 100
    assert (parts["app_s"] > 0).all()
    # the server times the answer's end just after writing it: a client on the other core
    # may have it a few microseconds before; a pairing by time would miss by milliseconds
    assert parts["to_app_s"].min() > 0 and parts["answer_delay_s"].min() > -2e-4
    assert (parts["answer_delay_s"] > 0).mean() > 0.99
    total = parts[list(PART_COLUMNS)].sum(axis=1).to_numpy()
    assert total == pytest.approx(parts["latency_s"].to_numpy(), abs=5e-6)
