"""Command routes in-process: status codes, consistency tokens, ETags, If-Match,
Idempotency-Key, backpressure, validation and trace context."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cqrs_lab.domains import bank
from tests.http.conftest import Live, MakeLive

PROBLEM = "application/problem+json"


def _open(live: Live, account: str, balance: int = 100) -> httpx.Response:
    r = live.post(
        "/accounts", json={"account_id": account, "owner": "ann", "opening_balance": balance}
    )
    assert r.status_code == 201, r.text
    return r


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in r.text
    return body


def test_open_answers_201_with_version_position_token_and_location(live: Live) -> None:
    r = _open(live, "a1")
    body = r.json()
    assert body["stream_id"] == "account-a1" and body["stream_version"] == 1
    assert body["events"] == ["AccountOpened"]
    assert r.headers["x-consistency-token"] == str(body["position"])
    assert r.headers["location"] == "/accounts/a1" and r.headers["etag"] == '"1"'
    # the token is the global position: the store's head after this one append
    assert body["position"] == live.call(lambda: live.engine.store.head_position)
    _problem(live.post("/accounts", json={"account_id": "a1"}), 409)  # already open


def test_deposits_and_withdrawals_move_versions_and_positions(live: Live) -> None:
    _open(live, "a1", 100)
    _open(live, "b1", 0)
    d = live.post("/accounts/a1/deposits", json={"amount": 30})
    w = live.post("/accounts/a1/withdrawals", json={"amount": 50})
    assert (d.status_code, w.status_code) == (200, 200)
    assert (d.json()["stream_version"], w.json()["stream_version"]) == (2, 3)
    assert (d.json()["position"], w.json()["position"]) == (3, 4)  # b1 opened at 2
    assert w.headers["etag"] == '"3"' and w.headers["x-consistency-token"] == "4"
    too_much = _problem(live.post("/accounts/a1/withdrawals", json={"amount": 81}), 409)
    assert "insufficient funds" in too_much["detail"] and "balance 80" in too_much["detail"]
    missing = _problem(live.post("/accounts/zz/deposits", json={"amount": 1}), 404)
    assert "zz" in missing["detail"]
    r = live.get("/accounts/a1", params={"min_position": 4, "wait": 2})
    assert r.json()["balance"] == 80


def test_transfers_run_through_the_saga(live: Live) -> None:
    _open(live, "a", 100)
    _open(live, "b", 5)
    r = live.post(
        "/transfers", json={"transfer_id": "t1", "source": "a", "target": "b", "amount": 40}
    )
    assert r.status_code == 202 and r.headers["location"] == "/transfers/t1"
    live.settle()
    assert live.get("/transfers/t1").json()["status"] == "completed"
    assert live.get("/accounts/a").json()["balance"] == 60
    assert live.get("/accounts/b").json()["balance"] == 45
    _problem(
        live.post(
            "/transfers", json={"transfer_id": "t2", "source": "a", "target": "a", "amount": 1}
        ),
        409,
    )


def test_generic_commands_by_name(live: Live) -> None:
    _open(live, "a1", 10)
    r = live.post("/commands/Deposit", json={"account_id": "a1", "amount": 5})
    assert r.status_code == 200 and r.json()["events"] == ["Deposited"]
    # CloseAccount is internal (an operator's action): not reachable over HTTP
    hidden = _problem(live.post("/commands/CloseAccount", json={"account_id": "a1"}), 404)
    assert "Deposit" in hidden["detail"] and "Refund" not in hidden["detail"]
    live.call(lambda: live.engine.dispatch(bank.CloseAccount("a1")))  # the engine still runs it
    closed = _problem(live.post("/commands/Deposit", json={"account_id": "a1", "amount": 5}), 409)
    assert "closed" in closed["detail"]
    unknown = _problem(live.post("/commands/Launch", json={}), 404)
    assert "Deposit" in unknown["detail"]  # lists the public commands
    bad = _problem(live.post("/commands/Deposit", json={"account_id": "a1", "amount": "5"}), 422)
    assert bad["errors"][0]["field"] == "amount"


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"", 400, None),
        (b"[1, 2]", 422, "body"),
        (json.dumps({"amount": "10"}).encode(), 422, "amount"),
        (json.dumps({"amount": 0}).encode(), 422, "amount"),
        (json.dumps({"amount": 1.5}).encode(), 422, "amount"),
        (json.dumps({"amount": 5, "currency": "EUR"}).encode(), 422, "currency"),
        (json.dumps({}).encode(), 422, "amount"),
    ],
)
def test_client_mistakes_are_4xx_problems_naming_the_field(
    live: Live, content: bytes, status: int, field: str | None
) -> None:
    _open(live, "a1")
    r = live.post(
        "/accounts/a1/deposits", content=content, headers={"content-type": "application/json"}
    )
    body = _problem(r, status)
    if field is not None:
        assert field in [e["field"] for e in body["errors"]]
        assert field in body["detail"]


def test_bad_account_ids_and_headers_are_refused(live: Live) -> None:
    body = _problem(live.post("/accounts", json={"account_id": "has space"}), 422)
    assert body["errors"][0]["field"] == "account_id"
    _open(live, "a1")
    for header, value in (
        ("If-Match", "3"),
        ("Idempotency-Key", "bad key"),
        ("X-Correlation-Id", "x" * 300),
    ):
        r = live.post("/accounts/a1/deposits", json={"amount": 1}, headers={header: value})
        assert header in _problem(r, 400)["detail"]
    # If-Match covers every command: opening an account writes its stream, at version 0
    r = live.post("/accounts", json={"account_id": "c"}, headers={"If-Match": '"1"'})
    assert _problem(r, 412)["actual_version"] == 0


def test_body_size_limit_is_413_with_or_without_content_length(make_live: MakeLive) -> None:
    live = make_live(max_body_bytes=100)
    _open(live, "a1")
    big = json.dumps({"amount": 1, "pad": "x" * 200}).encode()
    _problem(live.post("/accounts/a1/deposits", content=big), 413)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * 60

    _problem(live.post("/accounts/a1/deposits", content=chunks()), 413)


def test_if_match_guards_against_lost_updates(live: Live) -> None:
    _open(live, "a1", 10)
    live.settle()
    etag = live.get("/accounts/a1").headers["etag"]
    assert etag == '"1"'
    first = live.post("/accounts/a1/deposits", json={"amount": 5}, headers={"If-Match": etag})
    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    stale = live.post("/accounts/a1/deposits", json={"amount": 7}, headers={"If-Match": etag})
    body = _problem(stale, 412)
    assert (body["expected_version"], body["actual_version"]) == (1, 2)
    assert stale.headers["etag"] == '"2"'
    assert (
        live.post(
            "/accounts/a1/withdrawals", json={"amount": 1}, headers={"If-Match": "*"}
        ).status_code
        == 200
    )
    live.settle()
    assert live.get("/accounts/a1").json()["balance"] == 14  # the stale write did nothing


def test_if_match_holds_when_another_process_appends_between_check_and_decision(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several server processes share a store: another one appends to the stream after this
    one checked If-Match against the stream's version and before it loads the aggregate. The
    decision must not rest on the version the client never saw: 412, nothing appended (two
    withdrawals had both been answered 200 under one If-Match)."""
    _open(live, "a1", 10)
    live.settle()
    store = live.engine.store
    real = store.stream_version
    asked: list[str] = []
    raced: list[int] = []

    def racing(stream_id: str) -> int:
        seen = real(stream_id)
        asked.append(stream_id)
        # the route asks twice: does the account exist, then If-Match; the other process
        # appends right after the second answer (the aggregate is loaded after it)
        if asked.count("account-a1") == 2 and not raced:
            raced.append(seen)
            store.append("account-a1", [bank.Withdrawn("a1", 1)], seen)
        return seen

    monkeypatch.setattr(store, "stream_version", racing)
    r = live.post("/accounts/a1/withdrawals", json={"amount": 2}, headers={"If-Match": '"1"'})
    monkeypatch.undo()
    body = _problem(r, 412)
    assert raced == [1] and (body["expected_version"], body["actual_version"]) == (1, 2)
    assert live.call(lambda: store.stream_version("account-a1")) == 2  # only the other's
    live.settle()
    assert live.get("/accounts/a1").json()["balance"] == 9


def test_idempotency_key_replays_the_first_response(live: Live) -> None:
    _open(live, "a1", 0)
    key = {"Idempotency-Key": "dep-1"}
    first = live.post("/accounts/a1/deposits", json={"amount": 5}, headers=key)
    again = live.post("/accounts/a1/deposits", json={"amount": 5}, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    other = _problem(live.post("/accounts/a1/deposits", json={"amount": 6}, headers=key), 422)
    assert "dep-1" in other["detail"]
    refused = live.post(
        "/accounts/a1/withdrawals", json={"amount": 99}, headers={"Idempotency-Key": "w"}
    )
    assert refused.status_code == 409
    live.post("/accounts/a1/deposits", json={"amount": 500})
    # the rejection is the recorded answer even though the withdrawal would now succeed
    assert (
        live.post(
            "/accounts/a1/withdrawals", json={"amount": 99}, headers={"Idempotency-Key": "w"}
        ).status_code
        == 409
    )
    live.settle()
    assert live.get("/accounts/a1").json()["balance"] == 505


def test_same_key_while_the_first_is_running_is_409(live: Live) -> None:
    _open(live, "a1", 0)

    async def both() -> list[int]:
        send = [
            live.client.post(
                "/accounts/a1/deposits", json={"amount": 5}, headers={"Idempotency-Key": "k"}
            )
            for _ in range(2)
        ]
        return sorted(r.status_code for r in await asyncio.gather(*send))

    assert live.run(both()) == [200, 409]


def test_a_full_queue_sheds_load_with_429_and_retry_after(make_live: MakeLive) -> None:
    live = make_live(queue_size=2)
    _open(live, "a1", 0)

    async def burst() -> list[httpx.Response]:
        send = [live.client.post("/accounts/a1/deposits", json={"amount": i}) for i in range(1, 21)]
        return list(await asyncio.gather(*send))

    answers = live.run(burst())
    shed = [r for r in answers if r.status_code == 429]
    ok = [r for r in answers if r.status_code == 200]
    assert shed and ok and len(shed) + len(ok) == 20
    assert all(r.headers["retry-after"] == "1" for r in shed)
    assert len(live.driver.queue) == 0
    live.settle()
    acknowledged = sum(json.loads(r.request.content)["amount"] for r in ok)
    assert live.get("/accounts/a1").json()["balance"] == acknowledged


def test_traceparent_follows_the_command_to_its_projection(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    _open(live, "a1", 0)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    tp = f"00-{trace}-00f067aa0ba902b7-01"
    caplog.set_level(logging.DEBUG, logger="cqrs_lab.http.projections")
    r = live.post("/accounts/a1/deposits", json={"amount": 3}, headers={"traceparent": tp})
    assert r.json()["correlation_id"] == trace and r.headers["x-correlation-id"] == trace
    live.settle()
    env = live.call(lambda: live.engine.store.read_all(r.json()["position"] - 1, 1)[0])
    assert env.correlation_id == trace and env.metadata["traceparent"] == tp
    lines = [m for m in caplog.messages if trace in m]
    assert any("projection balances applied Deposited" in m for m in lines)
    assert any("projection statements applied Deposited" in m for m in lines)
    own = live.post(
        "/accounts/a1/deposits", json={"amount": 1}, headers={"X-Correlation-Id": "req-42"}
    )
    assert own.json()["correlation_id"] == "req-42"
    none = live.post("/accounts/a1/deposits", json={"amount": 1})
    assert none.json()["correlation_id"] == none.json()["command_id"]  # generated
