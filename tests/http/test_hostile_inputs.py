"""Hostile values through every parser of the app, in-process: numbers written with
non-ASCII digits or 5,000 digits, admin calls without a token, integer-valued floats,
OPTIONS, the OpenAPI bounds, If-Match on any command, and honest reads after a restart."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from cqrs_lab.errors import ConfigError
from cqrs_lab.http import ServerConfig, build_engine, create_app_from_config
from cqrs_lab.http.queries import query_model
from tests.http.conftest import TOKEN, Live, Server

PROBLEM = "application/problem+json"
EVENTS = 6_000  # in the log before the restart (tests/http/slow_domain.py)
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
#: superscripts (str.isdigit() says yes, int() says no), Arabic-Indic digits (int() and
#: float() read them), and a number longer than int() parses
HOSTILE = ["²", "¹", "³", "٣", "١٢", "9" * 5000]


def _problem(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == r.status_code and body["detail"]
    return body


@pytest.fixture
def bank(live: Live) -> Live:
    for account in ("a1", "b1"):
        r = live.post("/accounts", json={"account_id": account, "opening_balance": 10})
        assert r.status_code == 201
    assert (
        live.post(
            "/transfers", json={"transfer_id": "t1", "source": "a1", "target": "b1", "amount": 1}
        ).status_code
        == 202
    )
    return live


def _header(value: str) -> bytes:
    return value.encode()  # UTF-8 on the wire; the server decodes headers as latin-1


#: (method, url with {x} where the hostile number goes, headers, body) for every route and
#: every number the app parses from a path, a query, a header or a body
PLACES: list[tuple[str, str, dict[str, str], Any]] = [
    ("GET", "/accounts/a1?min_position={x}", {}, None),
    ("GET", "/accounts/a1?wait={x}", {}, None),
    ("GET", "/accounts/a1", {"X-Consistency-Token": "{x}"}, None),
    ("GET", "/accounts/a1/statement?limit={x}", {}, None),
    ("GET", "/accounts/a1/statement?min_position={x}", {}, None),
    ("GET", "/transfers/t1", {"X-Consistency-Token": "{x}"}, None),
    ("GET", "/transfers/t1?wait={x}", {}, None),
    ("GET", "/queries/GetStatement?account_id=a1&limit={x}", {}, None),
    ("GET", "/queries/GetAccount?account_id=a1&min_position={x}", {}, None),
    ("GET", "/queries/GetAccount?account_id=a1", {"X-Consistency-Token": "{x}"}, None),
    ("POST", "/accounts/a1/deposits", {"If-Match": '"{x}"'}, {"amount": 1}),
    ("POST", "/accounts/a1/withdrawals", {"If-Match": 'W/"{x}"'}, {"amount": 1}),
    ("POST", "/accounts", {"If-Match": '"{x}"'}, {"account_id": "a2"}),
    (
        "POST",
        "/transfers",
        {"If-Match": '"{x}"'},
        {"transfer_id": "t2", "source": "a1", "target": "b1", "amount": 1},
    ),
    ("POST", "/commands/Deposit", {"If-Match": '"{x}"'}, {"account_id": "a1", "amount": 1}),
    ("POST", "/accounts/a1/deposits", {}, '{"amount": "{x}"}'),
    ("POST", "/commands/Deposit", {}, '{"account_id": "a1", "amount": "{x}"}'),
    ("POST", "/projections/balances/rebuild?shadow={x}", ADMIN, None),
    ("POST", "/faults", ADMIN, '{"plan": {"reorder_window": "{x}"}}'),
    ("POST", "/faults", ADMIN, '{"plan": {"drop": "{x}"}}'),
    ("POST", "/dead-letters/{x}/replay", ADMIN, None),
    ("GET", "/accounts/{x}", {}, None),
    ("GET", "/accounts/{x}/statement", {}, None),
]


@pytest.mark.parametrize("x", HOSTILE, ids=["sup2", "sup1", "sup3", "ar3", "ar12", "5000-digits"])
@pytest.mark.parametrize("place", PLACES, ids=[f"{m} {u} {sorted(h)}" for m, u, h, _ in PLACES])
def test_non_ascii_and_huge_numbers_are_4xx_never_500(
    bank: Live, place: tuple[str, str, dict[str, str], Any], x: str
) -> None:
    method, url, headers, body = place
    sent = {k: _header(v.replace("{x}", x)) for k, v in headers.items()}
    kwargs: dict[str, Any] = {"headers": sent}
    if isinstance(body, str):
        kwargs["content"] = body.replace("{x}", x).encode()
        sent["Content-Type"] = b"application/json"
    elif body is not None:
        kwargs["json"] = body
    r = bank.request(method, url.replace("{x}", x), **kwargs)
    _problem(r, 400, 404, 422)


def test_admin_routes_check_the_token_before_the_body(live: Live) -> None:
    for url, body in (
        ("/faults", b'{"plan": {"drop": 7}, "unknown": 1}'),
        ("/faults", b"{not json"),
        ("/projections/balances/rebuild?shadow=maybe", b""),
        ("/dead-letters/nope/replay", b""),
    ):
        r = live.post(url, content=body, headers={"Content-Type": "application/json"})
        assert _problem(r, 401)["title"] == "unauthorized", url
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = live.post("/faults", json={"plan": {"drop": 7}}, headers=ADMIN)
    assert _problem(r, 422)["errors"][0]["field"] == "plan.drop"
    r = live.post("/projections/balances/rebuild?shadow=maybe", headers=ADMIN)
    assert "shadow" in _problem(r, 422)["detail"]


def test_integer_valued_floats_are_whole_numbers_and_fractions_are_refused(live: Live) -> None:
    r = live.post("/accounts", json={"account_id": "f1", "opening_balance": 10.0})
    assert r.status_code == 201, r.text
    assert live.post("/accounts/f1/deposits", json={"amount": 5.0}).status_code == 200
    r = live.post("/commands/Deposit", json={"account_id": "f1", "amount": 2.0})
    assert r.status_code == 200, r.text
    r = live.post("/faults", json={"plan": {"reorder_window": 4.0, "drop": 1}}, headers=ADMIN)
    assert r.status_code == 200, r.text
    for url, body, field in (
        ("/accounts/f1/deposits", {"amount": 1.5}, "amount"),
        ("/commands/Deposit", {"account_id": "f1", "amount": 2.5}, "amount"),
        ("/accounts", {"account_id": "f2", "opening_balance": 0.5}, "opening_balance"),
        ("/faults", {"plan": {"reorder_window": 4.5}}, "plan.reorder_window"),
    ):
        r = live.post(url, json=body, headers=ADMIN if url == "/faults" else {})
        problem = _problem(r, 422)
        assert problem["errors"][0]["field"] == field, problem
    # fractions a float cannot hold are read as whole numbers by JSON parsers: refused too
    json_type = {"Content-Type": "application/json"}
    for url, raw, field in (
        ("/accounts/f1/deposits", b'{"amount": 0.99999999999999999}', "amount"),
        ("/accounts/f1/deposits", b'{"amount": 2.00000000000000001}', "amount"),
        ("/accounts", b'{"account_id": "f3", "opening_balance": 1e-400}', "opening_balance"),
        ("/commands/Deposit", b'{"account_id": "f1", "amount": 1.0000000000000001E1}', "amount"),
        ("/accounts", b'{"account_id": "f3", "opening_balance": 0.99999999999999999}',
         "opening_balance"),
    ):  # fmt: skip
        problem = _problem(live.post(url, content=raw, headers=json_type), 422)
        assert problem["errors"][0]["field"] == field, (raw, problem)
        assert "fraction" in problem["detail"]
    r = live.post("/accounts/f1/deposits", content=b'{"amount": 1.0E0}', headers=json_type)
    assert r.status_code == 200, r.text  # exactly one: taken
    live.settle()
    assert live.get("/accounts/f1").json()["balance"] == 18
    _problem(live.get("/accounts/f3"), 404)


def test_options_names_every_method_served_on_the_path(live: Live) -> None:
    for url, methods in (
        ("/faults", {"GET", "POST"}),
        ("/accounts", {"POST"}),
        ("/accounts/a1", {"GET"}),
        ("/accounts/a1/deposits", {"POST"}),
        ("/commands/Deposit", {"POST"}),
        ("/queries/GetAccount", {"GET"}),
        ("/projections/balances/rebuild", {"POST"}),
        ("/metrics", {"GET"}),
    ):
        r = live.request("OPTIONS", url)
        assert r.status_code == 204, (url, r.text)
        allow = {m.strip() for m in r.headers["allow"].split(",")} - {"HEAD", "OPTIONS"}
        assert allow == methods, (url, r.headers["allow"])
    _problem(live.request("OPTIONS", "/no/such/path"), 404)


def test_head_answers_what_get_would_without_the_body(bank: Live) -> None:
    """RFC 9110: a general-purpose server supports HEAD wherever it supports GET."""
    before = bank.get("/accounts/a1").json()
    for url in ("/accounts/a1", "/accounts/nobody", "/queries/GetBalance?account_id=a1"):
        got, head = bank.get(url), bank.request("HEAD", url)
        assert head.status_code == got.status_code, (url, head.status_code, got.status_code)
        assert head.content == b"" and got.content, url
        assert head.headers["content-type"] == got.headers["content-type"], url
        assert head.headers["content-length"] == got.headers["content-length"], url
    r = bank.request("HEAD", "/accounts")  # POST only: not a GET route, so not HEAD either
    assert r.status_code == 405 and r.headers["allow"] == "POST", r.headers
    for url in ("/faults", "/livez"):  # FastAPI's routes: every method of the path, HEAD too
        r = bank.request("PUT", url)
        expected = "GET, HEAD, POST" if url == "/faults" else "GET, HEAD"
        assert r.status_code == 405 and r.headers["allow"] == expected, (url, r.headers)
        assert _problem(r, 405)["detail"].endswith(f"use {expected}"), r.text
        assert bank.request("HEAD", url).status_code == bank.get(url).status_code, url
    allow = bank.request("OPTIONS", "/accounts/a1").headers["allow"]
    assert {m.strip() for m in allow.split(",")} == {"GET", "HEAD", "OPTIONS"}, allow
    assert bank.get("/accounts/a1").json() == before  # the HEADs changed nothing


def test_a_statement_limit_is_1_to_1000_on_both_routes_given_once(bank: Live) -> None:
    """The generic route took limit=0 (every line), -1 (every line but the first) and 99999
    while the bank's own route refused them; the bank's route took limit=5&limit=6."""
    for bad in ("0", "-1", "1001", "99999"):
        for url in (f"/queries/GetStatement?account_id=a1&limit={bad}",
                    f"/accounts/a1/statement?limit={bad}"):  # fmt: skip
            assert "limit" in _problem(bank.get(url), 422)["detail"], url
    for url in ("/queries/GetStatement?account_id=a1&limit=1&limit=2",
                "/accounts/a1/statement?limit=1&limit=2"):  # fmt: skip
        assert "twice" in _problem(bank.get(url), 422)["detail"], url
    lines = bank.get("/accounts/a1/statement").json()["lines"]
    assert len(lines) == 2  # opened, then t1's debit
    assert bank.get("/queries/GetStatement?account_id=a1&limit=1").json() == lines[-1:]
    spec = bank.get("/openapi.json").json()["paths"]["/queries/{name}"]["get"]
    (limit,) = (p for p in spec["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000), limit


def test_a_read_parameter_or_token_given_twice_is_refused(bank: Live) -> None:
    """Two X-Consistency-Token headers (1 and 99999): the first was used, the second
    ignored; min_position twice on a bank route likewise."""
    tokens = [("X-Consistency-Token", "1"), ("X-Consistency-Token", "99999")]
    r = bank.get("/accounts/a1", headers=httpx.Headers(tokens))
    assert "given twice" in _problem(r, 400)["detail"]
    r = bank.get("/accounts/a1?min_position=1&min_position=2")
    assert "min_position: given twice" in _problem(r, 422)["detail"]
    assert bank.get("/accounts/a1?min_position=1", headers={"X-Consistency-Token": "1"}).is_success


def test_an_idempotency_key_or_if_match_given_twice_is_refused(bank: Live) -> None:
    """Two Idempotency-Key headers: the first was used and the second ignored silently."""
    head = bank.get("/accounts/a1").json()["balance"]
    for name, values in (("Idempotency-Key", ("k1", "k2")), ("If-Match", ('"1"', '"2"'))):
        headers = httpx.Headers([(name, v) for v in values])
        r = bank.post("/accounts/a1/deposits", json={"amount": 1}, headers=headers)
        assert "given twice" in _problem(r, 400)["detail"], name
    assert bank.get("/accounts/a1").json()["balance"] == head  # nothing applied


def test_openapi_uses_standard_bounds_for_the_fault_plan(live: Live) -> None:
    spec = live.get("/openapi.json").json()
    text = json.dumps(spec)
    assert '"ge":' not in text and '"le":' not in text
    plan = spec["components"]["schemas"]["TransportFaults"]["properties"]
    assert plan["drop"]["minimum"] == 0 and plan["drop"]["maximum"] == 1
    assert plan["reorder_window"]["minimum"] == 1 and plan["reorder_window"]["maximum"] == 1000
    faults = spec["paths"]["/faults"]["post"]
    ref = faults["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/FaultsBody"
    shadow = spec["paths"]["/projections/{name}/rebuild"]["post"]["parameters"]
    assert any(p["name"] == "shadow" for p in shadow)


def test_if_match_covers_every_command(live: Live) -> None:
    for account in ("m1", "b1"):
        assert live.post("/accounts", json={"account_id": account}).status_code == 201
    # the generic route: the stream is the one the command writes (account-m1, version 1)
    r = live.post(
        "/commands/Deposit", json={"account_id": "m1", "amount": 3}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200 and r.headers["etag"] == '"2"', r.text
    r = live.post(
        "/commands/Deposit", json={"account_id": "m1", "amount": 3}, headers={"If-Match": '"1"'}
    )
    assert _problem(r, 412)["actual_version"] == 2
    # "*": the stream must exist; a new account's does not yet
    r = live.post(
        "/commands/OpenAccount",
        json={"account_id": "m2", "owner": "", "opening_balance": 0},
        headers={"If-Match": "*"},
    )
    assert _problem(r, 412)["actual_version"] == 0
    r = live.post(
        "/transfers",
        json={"transfer_id": "tm", "source": "m1", "target": "b1", "amount": 1},
        headers={"If-Match": '"0"'},
    )
    assert r.status_code == 202, r.text
    # a command the handler refuses is refused (409), whatever If-Match says
    r = live.post(
        "/commands/Withdraw", json={"account_id": "m1", "amount": 999}, headers={"If-Match": '"2"'}
    )
    assert _problem(r, 409)["title"] == "command refused"


def test_a_read_while_the_views_replay_after_a_restart_is_marked_stale(tmp_path: Path) -> None:
    """Deterministic: the restarted app is asked before its driver has replayed anything."""
    store = f"sqlite:{tmp_path / 'bank.db'}"
    first = build_engine(ServerConfig(store=store))
    from cqrs_lab.domains.bank import Deposit, OpenAccount

    first.engine.dispatch(OpenAccount("a1", "ann", 0))
    for _ in range(20):
        first.engine.dispatch(Deposit("a1", 1))
    first.store.close()

    app = create_app_from_config(ServerConfig(store=store))  # its driver not started

    async def ask() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lab") as client:
            return (
                await client.get("/accounts/a1"),
                await client.get("/queries/GetAccount?account_id=a1"),
                await client.get("/readyz"),
            )

    resource, generic, ready = asyncio.run(ask())
    app.state.engine.store.close()
    for r in (resource, generic):
        assert r.status_code == 404  # the view has not seen the account yet: and says so
        assert r.headers["x-stale"] == "true"
        assert r.headers["x-read-position"] == "0" and r.headers["x-head-position"] == "21"
    assert ready.status_code == 503
    assert "catching up" in ready.json()["detail"]


@pytest.mark.slow
def test_reads_during_replay_on_a_restarted_server_say_how_far_behind(tmp_path: Path) -> None:
    """A real server restarted on a SQLite log of 6,000 events, each 0.1 ms to project
    (tests/http/slow_domain.py): reads during the replay are stale and say so."""
    from tests.http.slow_domain import Tick

    domain = "tests.http.slow_domain"
    store = f"sqlite:{tmp_path / 'slow.db'}"
    built = build_engine(ServerConfig(domain=domain, store=store))
    with built.store.batch():
        for _ in range(EVENTS):
            built.engine.dispatch(Tick("c1"))
    built.store.close()

    server = Server("--domain", domain, "--store", store)
    try:
        seen = []
        while True:
            r = httpx.get(server.url + "/queries/GetCount?counter_id=c1", timeout=5)
            read, head = int(r.headers["x-read-position"]), int(r.headers["x-head-position"])
            seen.append((read, r.headers["x-stale"]))
            assert head == EVENTS
            assert r.headers["x-stale"] == ("true" if read < head else "false"), seen[-1]
            if read < head and len(seen) == 1:
                ready = httpx.get(server.url + "/readyz", timeout=5)
                assert ready.status_code == 503 and "catching up" in ready.json()["detail"]
            if read == head:
                assert r.json() == EVENTS
                break
        assert seen[0][1] == "true", seen[:3]  # the first read came during the replay
        assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
    finally:
        server.kill()


@dataclass(frozen=True)
class _Typo:
    key: str
    bounds: ClassVar[dict[str, tuple[int, int]]] = {"limt": (1, 10)}


@dataclass(frozen=True)
class _OnText:
    key: str
    bounds: ClassVar[dict[str, tuple[int, int]]] = {"key": (1, 10)}


def test_query_bounds_that_name_no_field_or_no_number_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"bounds name no field: \['limt'\]"):
        query_model(_Typo)
    with pytest.raises(ConfigError, match=r"bounds\['key'\]"):
        query_model(_OnText)


@dataclass(frozen=True)
class _FieldNamedBounds:
    bounds: str
    limit: int | None = None


def test_a_query_field_named_bounds_is_a_field() -> None:
    model = query_model(_FieldNamedBounds)
    assert [f.name for f in model.fields] == ["bounds", "limit"]
    assert model.parse({"bounds": "a-b", "limit": "0"}) == _FieldNamedBounds("a-b", 0)


def test_a_body_compressed_or_typed_twice_is_refused_and_a_flag_given_twice_too(
    live: Live,
) -> None:
    body = json.dumps({"account_id": "z1", "opening_balance": 5}).encode()
    for headers in (
        [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        [("Content-Type", "application/json"), ("Content-Type", "text/plain")],
    ):
        problem = _problem(live.post("/accounts", content=body, headers=headers), 415)
        assert "Content-" in problem["detail"]
    _problem(live.get("/accounts/z1"), 404)  # nothing was applied
    ok = [("Content-Type", "application/json"), ("Content-Encoding", "identity")]
    assert live.post("/accounts", content=body, headers=ok).status_code == 201
    r = live.post("/projections/balances/rebuild?shadow=true&shadow=false", headers=ADMIN)
    assert "given twice" in _problem(r, 422)["detail"]
