"""Query routes (read-your-writes, stale marking, ETag) and operations routes in-process."""

from __future__ import annotations

import time
from typing import Any

import httpx

from cqrs_lab.core import RawEvent
from tests.http.conftest import TOKEN, Live, MakeLive

PROBLEM = "application/problem+json"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def _setup(live: Live) -> int:
    live.post("/accounts", json={"account_id": "a1", "opening_balance": 10})
    r = live.post("/accounts/a1/deposits", json={"amount": 5})
    live.settle()
    return int(r.headers["x-consistency-token"])


def _crash_balances(live: Live) -> None:
    r = live.post("/faults", json={"crash": ["balances"]}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["crashed"] == ["balances"]


def test_reads_carry_position_staleness_and_etag(live: Live) -> None:
    token = _setup(live)
    r = live.get("/accounts/a1")
    assert r.json() == {"account_id": "a1", "owner": "", "open": True, "balance": 15}
    assert r.headers["x-read-position"] == str(token) and r.headers["x-stale"] == "false"
    assert r.headers["etag"] == '"2"'
    s = live.get("/accounts/a1/statement", params={"limit": 1})
    assert [line["amount"] for line in s.json()["lines"]] == [5]
    assert [line["kind"] for line in live.get("/accounts/a1/statement").json()["lines"]] == [
        "opened",
        "deposit",
    ]
    assert live.get("/accounts/nope").status_code == 404
    assert live.get("/accounts/nope/statement").status_code == 404
    assert live.get("/transfers/nope").status_code == 404
    for params in (
        {"limit": 0},
        {"limit": "x"},
        {"min_position": -1},
        {"wait": 99},
        {"wait": "soon"},
        {"stale": "maybe"},
    ):
        r = live.get("/accounts/a1/statement", params=params)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        assert next(iter(params)) in r.json()["detail"]
    bad = live.get("/accounts/a1", headers={"X-Consistency-Token": "abc"})
    assert bad.status_code == 400 and "X-Consistency-Token" in bad.json()["detail"]


def test_read_your_writes_waits_or_answers_stale_never_silently(live: Live) -> None:
    _setup(live)
    _crash_balances(live)
    r = live.post("/accounts/a1/deposits", json={"amount": 100})
    token = r.headers["x-consistency-token"]
    stale = live.get("/accounts/a1", params={"min_position": token})
    assert stale.status_code == 200 and stale.headers["x-stale"] == "true"
    assert stale.json()["balance"] == 15 and int(stale.headers["x-read-position"]) < int(token)
    assert stale.headers["etag"] == '"2"'  # the version the stale read reflects, not the head's
    started = time.monotonic()
    refused = live.get(
        "/accounts/a1",
        params={"wait": 0.3, "stale": "refuse"},
        headers={"X-Consistency-Token": token},
    )
    assert time.monotonic() - started >= 0.3
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["min_position"] == int(token)
    assert live.get("/accounts/a1").headers["x-stale"] == "false"  # no token asked: not stale
    assert (
        live.post("/faults", json={"restart": ["balances"]}, headers=ADMIN).json()["crashed"] == []
    )
    fresh = live.get("/accounts/a1", params={"min_position": token, "wait": 5, "stale": "refuse"})
    assert fresh.status_code == 200 and fresh.headers["x-stale"] == "false"
    assert fresh.json()["balance"] == 115 and fresh.headers["etag"] == '"3"'


def test_admin_routes_are_off_without_a_token(make_live: MakeLive) -> None:
    live = make_live()
    for url, body in (
        ("/projections/balances/rebuild", None),
        ("/faults", {}),
        ("/dead-letters/dl-1/replay", None),
    ):
        r = live.post(url, json=body, headers=ADMIN)
        assert r.status_code == 403 and "--admin-token" in r.json()["detail"]


def test_admin_routes_need_the_bearer_token(live: Live) -> None:
    _setup(live)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
        r = live.post("/projections/balances/rebuild", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert live.post("/projections/nope/rebuild", headers=ADMIN).status_code == 404
    before = live.get("/accounts/a1").json()
    for shadow in ("false", "true"):
        r = live.post("/projections/balances/rebuild", params={"shadow": shadow}, headers=ADMIN)
        assert r.status_code == 202
        live.settle()
        assert live.get("/accounts/a1").json() == before
    stats = {p["name"]: p for p in live.get("/projections").json()["projections"]}
    assert stats["balances"]["rebuilding"] is False and stats["balances"]["position"] == 2


def test_projections_report_lag_backlog_semantics(live: Live) -> None:
    _setup(live)
    _crash_balances(live)
    live.post("/accounts/a1/deposits", json={"amount": 1})
    time.sleep(0.05)
    body = live.get("/projections").json()
    assert body["head"] == 3
    stats = {p["name"]: p for p in body["projections"]}
    assert set(stats) == {"balances", "statements", "transfer-saga"}
    b = stats["balances"]
    assert (b["position"], b["backlog"], b["lag_positions"], b["crashed"]) == (2, 1, 1, True)
    assert b["delivery"] == "effectively-once" and b["lag_seconds"] >= 0.04
    assert stats["statements"]["backlog"] == 0


def test_dead_letters_list_and_replay(live: Live) -> None:
    _setup(live)
    broken = RawEvent("Deposited", 1, {"account_id": "a1"})  # no amount: cannot be decoded
    live.call(lambda: live.engine.store.append("account-a1", [broken], 2))
    live.driver.notify()
    deadline = time.monotonic() + 10  # 5 attempts with backoff (base 0.1 s) before parking
    letters: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(letters) < 2:
        letters = live.get("/dead-letters").json()["dead_letters"]
        time.sleep(0.05)
    assert {d["projection"] for d in letters} == {"balances", "statements"}
    assert all(d["position"] == 3 and "UpcastError" in d["error"] for d in letters)
    r = live.post(f"/dead-letters/{letters[0]['id']}/replay", headers=ADMIN)
    assert r.status_code == 409 and "stays parked" in r.json()["detail"]
    assert live.post("/dead-letters/dl-999/replay", headers=ADMIN).status_code == 404
    assert live.get("/accounts/a1").json()["balance"] == 15  # the read model moved past it


def test_faults_switch_on_and_off_at_run_time(live: Live) -> None:
    _setup(live)
    on = live.post("/faults", json={"plan": {"duplicate": 1.0, "reorder": 0.5}}, headers=ADMIN)
    assert on.status_code == 200 and "duplicate p=1" in on.json()["plan"]
    assert "duplicate" in live.get("/faults").json()["plan"]
    for amount in (1, 2, 3):
        live.post("/accounts/a1/deposits", json={"amount": amount})
    live.settle()
    assert live.get("/accounts/a1").json()["balance"] == 21  # effectively-once: no double count
    dup = {p["name"]: p for p in live.get("/projections").json()["projections"]}["balances"]
    assert dup["duplicates_skipped"] >= 3
    off = live.post("/faults", json={"plan": None}, headers=ADMIN)
    assert off.json()["plan"] is None and live.get("/faults").json()["plan"] is None
    bad = live.post("/faults", json={"plan": {"drop": 1.5}}, headers=ADMIN)
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert "plan.drop" in bad.json()["detail"]
    assert live.post("/faults", json={"crash": ["nope"]}, headers=ADMIN).status_code == 404
    assert live.post("/faults", json={"plan": {}, "extra": 1}, headers=ADMIN).status_code == 422


def test_crashed_consumers_are_restarted_by_the_driver(make_live: MakeLive) -> None:
    live = make_live(admin_token=TOKEN, restart_after=0.1)
    _setup(live)
    _crash_balances(live)
    token = live.post("/accounts/a1/deposits", json={"amount": 1}).headers["x-consistency-token"]
    r = live.get("/accounts/a1", params={"min_position": token, "wait": 5, "stale": "refuse"})
    assert r.status_code == 200 and r.json()["balance"] == 16


def test_metrics_health_and_docs(make_live: MakeLive) -> None:
    live = make_live(admin_token=TOKEN, restart_after=None, ready_max_lag=0)
    _setup(live)
    live.get("/accounts/a1")
    live.post("/accounts/a1/withdrawals", json={"amount": 10_000})
    live.settle()
    assert live.get("/livez").status_code == 200
    assert live.get("/readyz").json() == {"status": "ready"}
    text = live.get("/metrics").text
    route = 'method="GET",route="/accounts/{account_id}",status="200"'
    assert "http_request_duration_seconds_count{" + route + "} 1.0" in text
    assert 'http_commands_total{command="Deposit",outcome="accepted"} 1.0' in text
    assert 'http_commands_total{command="Withdraw",outcome="refused"} 1.0' in text
    assert "rejected" not in text  # one word for a business refusal: refused
    assert 'cqrs_projection_backlog{projection="balances"} 0.0' in text
    assert 'cqrs_dead_letters{projection="balances"} 0.0' in text
    assert "cqrs_projection_lag_seconds" in text
    _crash_balances(live)
    live.post("/accounts/a1/deposits", json={"amount": 1})
    not_ready = live.get("/readyz")
    assert not_ready.status_code == 503 and "balances is down" in not_ready.json()["detail"]
    assert 'cqrs_projection_backlog{projection="balances"} 1.0' in live.get("/metrics").text
    spec = live.get("/openapi.json").json()
    for path in (
        "/accounts",
        "/accounts/{account_id}/deposits",
        "/accounts/{account_id}/withdrawals",
        "/transfers",
        "/accounts/{account_id}",
        "/accounts/{account_id}/statement",
        "/commands/{name}",
        "/projections",
        "/projections/{name}/rebuild",
        "/dead-letters",
        "/dead-letters/{letter_id}/replay",
        "/faults",
        "/metrics",
        "/livez",
        "/readyz",
    ):
        assert path in spec["paths"], path
    assert "text/html" in live.get("/docs").headers["content-type"]
    unknown = live.get("/nowhere")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM
    wrong = live.request("DELETE", "/accounts/a1")
    assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM


def test_lag_bound_makes_readyz_503(make_live: MakeLive) -> None:
    live = make_live(ready_max_lag=1, restart_after=None, admin_token=TOKEN)
    _setup(live)
    assert live.get("/readyz").status_code == 200
    slow = {"plan": {"delay": 1.0, "delay_seconds": [30, 30]}}  # every delivery held 30 s
    assert live.post("/faults", json=slow, headers=ADMIN).status_code == 200
    for _ in range(2):
        live.post("/accounts/a1/deposits", json={"amount": 1})
    time.sleep(0.1)
    r = live.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "projection balances lags 2 positions (bound 1)" in r.json()["detail"]
    live.post("/faults", json={"plan": None}, headers=ADMIN)  # held deliveries come through
    live.settle()
    assert live.get("/readyz").status_code == 200


def test_graceful_shutdown_drains_queue_and_projections(make_live: MakeLive) -> None:
    live = make_live()
    _setup(live)

    async def queue_then_stop() -> list[httpx.Response]:
        import asyncio

        tasks = [
            asyncio.ensure_future(live.client.post("/accounts/a1/deposits", json={"amount": 1}))
            for _ in range(30)
        ]
        await asyncio.sleep(0)
        await live.driver.stop()
        return list(await asyncio.gather(*tasks))

    answers = live.run(queue_then_stop())
    ok = sum(r.status_code == 200 for r in answers)
    assert ok + sum(r.status_code == 429 for r in answers) == 30 and ok > 0
    balances = live.engine.subscriptions["balances"]
    assert balances.position == live.engine.store.head_position
    assert balances.consumer.balances.get("a1") == 15 + ok


def test_at_most_once_losses_show_in_reads_and_metrics(make_live: MakeLive) -> None:
    live = make_live(admin_token=TOKEN, restart_after=None, delivery="at-most-once")
    assert (
        live.post("/accounts", json={"account_id": "a1", "opening_balance": 5}).status_code == 201
    )
    live.settle()
    _crash_balances(live)
    live.post("/accounts/a1/deposits", json={"amount": 7})

    def take_then_crash() -> int:
        sub = live.engine.subscription("balances")
        sub.restart()
        sub.poll()  # the deposit is taken (checkpointed) ...
        sub.crash()  # ... and the consumer dies before applying it
        sub.restart()
        return sub.lost

    assert live.call(take_then_crash) == 1
    live.settle()
    r = live.get("/accounts/a1")
    assert r.json()["balance"] == 5  # the deposit will never be applied, and the read says so
    assert r.headers["x-stale"] == "false" and r.headers["x-lost-events"] == "1"
    text = live.get("/metrics").text
    assert 'cqrs_projection_lost_events_total{projection="balances"} 1.0' in text
    assert 'cqrs_saga_open_instances{projection="transfer-saga"} 0.0' in text
