"""Any domain over HTTP: the inventory served in-process through the generic routes, the
server building each domain as ``install`` does, and a broken projection made loud."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from cqrs_lab.core import Domain, Engine, install, load_domain
from cqrs_lab.errors import ConfigError
from cqrs_lab.http import ServerConfig, build_engine
from tests.http.conftest import Live, MakeLive

PROBLEM = "application/problem+json"
INVENTORY = "cqrs_lab.domains.inventory"


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.fixture
def shop(make_live: MakeLive) -> Live:
    return make_live(domain=INVENTORY, restart_after=None)


def test_inventory_commands_and_a_query_that_waits_for_the_token(shop: Live) -> None:
    added = shop.post(
        "/commands/AddProduct", json={"sku": "sku-1", "name": "pen", "initial_stock": 5}
    )
    assert added.status_code == 200, added.text
    held = shop.post("/commands/Reserve", json={"sku": "sku-1", "order_id": "o-1", "quantity": 3})
    assert held.status_code == 200, held.text
    token = held.json()["position"]
    assert held.headers["x-consistency-token"] == str(token) == "2"
    r = shop.get("/queries/GetStock", params={"sku": "sku-1", "min_position": token, "wait": 5})
    assert r.status_code == 200, r.text
    assert r.json() == {"sku": "sku-1", "name": "pen", "on_hand": 5, "reserved": 3, "available": 2}
    assert r.headers["x-read-position"] == "2" and r.headers["x-stale"] == "false"
    reservation = shop.get("/queries/GetReservation", params={"order_id": "o-1", "sku": "sku-1"})
    assert reservation.json()["status"] == "held"
    refused = shop.post(
        "/commands/Reserve", json={"sku": "sku-1", "order_id": "o-2", "quantity": 9}
    )
    assert "not enough" in _problem(refused, 409)["detail"]
    missing = shop.get("/queries/GetStock", params={"sku": "sku-404"})
    assert "sku-404" in _problem(missing, 404)["detail"]
    assert missing.headers["x-read-position"] == "2"


def test_unknown_names_are_404_and_bad_fields_422_naming_them(shop: Live) -> None:
    assert "AddProduct" in _problem(shop.post("/commands/Deposit", json={}), 404)["detail"]
    assert "GetStock" in _problem(shop.get("/queries/GetBalance"), 404)["detail"]
    cases = [
        ({"sku": "sku-1", "colour": "red"}, "query parameter colour"),  # unknown parameter
        ({}, "query parameter sku"),  # missing
        ({"sku": "../x"}, "query parameter sku"),  # not an id
    ]
    for params, field in cases:
        body = _problem(shop.get("/queries/GetStock", params=params), 422)
        assert body["errors"][0]["field"] == field, body
        assert field in body["detail"]
    bad = shop.post("/commands/Reserve", json={"sku": "sku-1", "order_id": "o", "quantity": "3"})
    assert _problem(bad, 422)["errors"][0]["field"] == "quantity"


@pytest.mark.parametrize("limit", ["\u00b2", "1_0", " 1", "1.0", "+1", "\u0661"])
def test_int_query_fields_take_ascii_digits_only(live: Live, limit: str) -> None:
    live.post("/accounts", json={"account_id": "a1", "opening_balance": 1})
    live.settle()
    ok = live.get("/queries/GetStatement", params={"account_id": "a1", "limit": "1"})
    assert ok.status_code == 200 and [line["kind"] for line in ok.json()] == ["opened"]
    body = _problem(
        live.get("/queries/GetStatement", params={"account_id": "a1", "limit": limit}), 422
    )
    assert body["errors"][0]["field"] == "query parameter limit"
    assert live.get("/queries/GetTotals").json() == {"accounts": 1, "total": 1}


@pytest.mark.parametrize(
    "params",
    [
        {"sku": "sku-1", "min_position": "\u00b2"},  # isdigit() says yes, int() says no
        {"sku": "sku-1", "min_position": "\u0661"},  # an Arabic-Indic one
        {"sku": "sku-1", "min_position": "9" * 5000},  # beyond int()'s 4,300 digits
        {"sku": "sku-1", "wait": "nan", "min_position": "1"},
    ],
)
def test_read_parameters_that_once_were_500s_are_422s(shop: Live, params: dict[str, str]) -> None:
    shop.post("/commands/AddProduct", json={"sku": "sku-1", "name": "pen"})
    body = _problem(shop.get("/queries/GetStock", params=params), 422)
    assert "query parameter" in body["detail"]
    huge = shop.get(
        "/queries/GetStock", params={"sku": "sku-1"}, headers={"X-Consistency-Token": "9" * 5000}
    )
    assert "X-Consistency-Token" in _problem(huge, 400)["detail"]


def test_a_query_parameter_given_twice_is_refused(shop: Live) -> None:
    r = shop.get("/queries/GetStock?sku=sku-1&sku=sku-2")
    body = _problem(r, 422)
    assert body["errors"][0]["field"] == "query parameter sku"
    assert "twice" in body["detail"]


def test_openapi_is_the_served_domains(shop: Live) -> None:
    spec = shop.get("/openapi.json").json()
    assert spec["info"]["title"] == "cqrs-lab: inventory"
    assert "inventory" in spec["info"]["description"]
    commands = spec["paths"]["/commands/{name}"]["post"]
    (name,) = [p for p in commands["parameters"] if p["in"] == "path"]
    assert name["schema"]["enum"] == ["AddProduct", "Release", "Reserve", "Restock", "Ship"]
    bodies = commands["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert sorted(b["title"] for b in bodies) == name["schema"]["enum"]
    queries = spec["paths"]["/queries/{name}"]["get"]
    params = {p["name"]: p for p in queries["parameters"]}
    assert params["name"]["schema"]["enum"] == ["GetReservation", "GetStock"]
    assert {"sku", "order_id", "min_position", "wait", "stale"} <= set(params)
    assert not any(path.startswith(("/accounts", "/transfers")) for path in spec["paths"])
    assert "Deposit" not in str(spec)


def _shape(engine: Engine) -> dict[str, Any]:
    return {
        "handlers": dict(engine.bus.handlers),
        "events": sorted(engine.registry._classes),
        "views": {n: type(s.consumer) for n, s in engine.subscriptions.items()},
        "queries": sorted(q.__name__ for q in engine.queries._routes),
    }


@pytest.mark.parametrize("ref", ["cqrs_lab.domains.bank", INVENTORY])
def test_the_server_builds_what_install_builds(ref: str) -> None:
    domain: Domain = load_domain(ref)
    served = build_engine(ServerConfig(domain=ref)).engine
    in_process = Engine()
    install(in_process, domain)
    assert _shape(served) == _shape(in_process)
    assert set(_shape(served)["views"]) == set(domain.view_names)
    assert [done.domain for done in served.installed] == [domain]


def test_a_domain_not_on_the_engine_is_refused() -> None:
    from cqrs_lab.http import create_app

    engine = build_engine(ServerConfig()).engine  # the bank
    with pytest.raises(ConfigError, match="not installed"):
        create_app(engine, ServerConfig(domain=INVENTORY))


def test_a_projection_that_raises_on_every_event_is_loud(make_live: MakeLive) -> None:
    live = make_live(domain="tests.http.broken_domain", restart_after=None)
    assert live.get("/readyz").status_code == 200
    for i in range(3):
        assert live.post("/commands/Ping", json={"ping_id": f"p{i}"}).status_code == 200
    deadline = time.monotonic() + 5
    while live.get("/readyz").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    body = _problem(live.get("/readyz"), 503)
    (reason,) = body["reasons"]
    assert reason.startswith("projection pings is failing: TypeError") and "_pinged" in reason
    text = live.get("/metrics").text
    assert 'cqrs_projection_failing{projection="pings"} 1.0' in text
    errors = [line for line in text.splitlines() if line.startswith("cqrs_projection_errors_total")]
    assert errors and float(errors[0].split()[-1]) >= 1
    missing = live.get("/queries/GetPing", params={"ping_id": "p0"})
    assert missing.status_code == 404  # the read model never got the event


def test_domain_reference_errors_say_how_to_name_one() -> None:
    with pytest.raises(ConfigError, match=r"domain='nowhere\.at\.all'"):
        ServerConfig(domain="nowhere.at.all")
