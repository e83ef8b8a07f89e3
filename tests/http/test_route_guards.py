"""What a client may not do over HTTP: run an internal command, name a thing with an id the
routes refuse elsewhere, or post a command that is not JSON (a cross-origin simple request)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import TypeAdapter, ValidationError

from cqrs_lab.core import Command
from cqrs_lab.errors import ConfigError
from cqrs_lab.http.schemas import ID_PATTERN, Id, command_model, is_json
from tests.http.conftest import Live

PROBLEM = "application/problem+json"


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def _names(live: Live, internal: bool) -> list[str]:
    return sorted(c.__name__ for c in live.engine.bus.handlers if c.internal is internal)


def _head(live: Live) -> int:
    return int(live.call(lambda: live.engine.store.head_position))


def _open(live: Live, account: str, balance: int = 10) -> None:
    r = live.post("/accounts", json={"account_id": account, "opening_balance": balance})
    assert r.status_code == 201, r.text


# -- 1. internal commands are not reachable --------------------------------------------------
ATTACKS = [
    ("Refund", {"account_id": "a1", "amount": 10**9, "transfer_id": "t-forged"}),
    ("FailTransfer", {"transfer_id": "t1", "reason": "forged"}),
    ("CloseAccount", {"account_id": "a1"}),
]


@pytest.mark.parametrize(("name", "fields"), ATTACKS)
def test_internal_commands_answer_404_and_change_nothing(
    live: Live, name: str, fields: dict[str, Any]
) -> None:
    _open(live, "a1", 10)
    head = _head(live)
    body = _problem(live.post(f"/commands/{name}", json=fields), 404)
    assert _head(live) == head  # nothing appended: no money minted, no account closed
    for public in _names(live, internal=False):
        assert public in body["detail"]
    for internal in _names(live, internal=True):
        assert internal not in body["detail"].replace(repr(name), "")
    live.settle()
    account = live.get("/accounts/a1").json()
    assert account["balance"] == 10 and account["open"] is True


def test_an_internal_name_is_answered_like_an_unknown_one(live: Live) -> None:
    internal = _names(live, internal=True)
    assert {"Refund", "FailTransfer", "CloseAccount"} <= set(internal)
    unknown = _problem(live.post("/commands/Launch", json={}), 404)
    for name in internal:
        hidden = _problem(live.post(f"/commands/{name}", json={}), 404)
        assert hidden["title"] == unknown["title"]
        assert hidden["detail"].replace(repr(name), "") == unknown["detail"].replace("'Launch'", "")


def test_openapi_offers_only_public_commands(live: Live) -> None:
    spec = live.get("/openapi.json").json()
    op = spec["paths"]["/commands/{name}"]["post"]
    (param,) = [p for p in op["parameters"] if p["in"] == "path"]
    assert param["name"] == "name"
    assert sorted(param["schema"]["enum"]) == _names(live, internal=False)
    text = json.dumps(spec)
    for name in _names(live, internal=True):
        assert name not in text, name


# -- 2. one id rule on every route ------------------------------------------------------------
BAD_IDS = ["", ".", "..", "...", "../..", "a/b", "a\x00b", "has space", "x" * 65, "a\n", "é"]


@pytest.mark.parametrize("value", BAD_IDS)
def test_the_id_rule_refuses(value: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Id).validate_python(value)


@pytest.mark.parametrize("value", ["a", "A-1_b.c:d", ".a", "a..b", "x" * 64, "0"])
def test_the_id_rule_accepts(value: str) -> None:
    assert TypeAdapter(Id).validate_python(value) == value


@pytest.mark.parametrize("value", BAD_IDS)
def test_command_routes_refuse_bad_ids_in_bodies(live: Live, value: str) -> None:
    _open(live, "a", 50)
    _open(live, "b", 0)
    head = _head(live)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/accounts", {"account_id": value}, "account_id"),
        ("/commands/OpenAccount", {"account_id": value}, "account_id"),
        ("/commands/Deposit", {"account_id": value, "amount": 1}, "account_id"),
        ("/transfers", {"transfer_id": "t", "source": value, "target": "b", "amount": 1}, "source"),
    ]
    for field in ("transfer_id", "source", "target"):
        fields = {"transfer_id": "t", "source": "a", "target": "b", "amount": 1, field: value}
        cases.append(("/commands/RequestTransfer", fields, field))
    for url, fields, field in cases:
        body = _problem(live.post(url, json=fields), 422)
        assert body["errors"][0]["field"] == field, (url, body)
    assert _head(live) == head


PATH_IDS = ["%2E%2E", "%2E", "...", "%00", "a%20b", "x" * 65, "%C3%A9"]


@pytest.mark.parametrize("raw", PATH_IDS)
def test_bad_ids_in_paths_are_422_naming_the_parameter(live: Live, raw: str) -> None:
    _open(live, "a1")
    for method, url, param in (
        ("GET", f"/accounts/{raw}", "account_id"),
        ("GET", f"/accounts/{raw}/statement", "account_id"),
        ("GET", f"/transfers/{raw}", "transfer_id"),
        ("POST", f"/accounts/{raw}/deposits", "account_id"),
        ("POST", f"/accounts/{raw}/withdrawals", "account_id"),
    ):
        r = live.request(method, url, json={"amount": 1})
        body = _problem(r, 422)
        assert body["errors"][0]["field"] == f"path parameter {param}", (url, body)
        assert f"path parameter {param}" in body["detail"]


def test_openapi_documents_the_id_rule_on_path_parameters(live: Live) -> None:
    spec = live.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["in"] == "path" and p["name"] in ("account_id", "transfer_id"):
                    assert p["schema"]["pattern"] == ID_PATTERN, path
                    assert (p["schema"]["minLength"], p["schema"]["maxLength"]) == (1, 64)


@dataclass(frozen=True)
class _Move(Command):
    id_fields: ClassVar[tuple[str, ...]] = ("source",)
    move_id: str
    source: str
    note: str
    parent_id: str | None = None


def test_command_model_marks_id_fields_by_name_and_declaration() -> None:
    props = command_model(_Move).model_json_schema()["properties"]
    assert props["move_id"]["pattern"] == ID_PATTERN
    assert props["source"]["pattern"] == ID_PATTERN  # declared in id_fields
    assert "pattern" not in props["note"]  # free text
    assert ID_PATTERN in json.dumps(props["parent_id"])  # optional, but an id when given
    extra = command_model(_Move, id_fields=("note",)).model_json_schema()["properties"]
    assert extra["note"]["pattern"] == ID_PATTERN
    with pytest.raises(ConfigError, match="amount"):
        command_model(_Move, id_fields=("amount",))


# -- 3. commands take JSON only ---------------------------------------------------------------
COMMAND_ROUTES = [
    ("/accounts", {"account_id": "n1"}),
    ("/accounts/a1/deposits", {"amount": 1}),
    ("/accounts/a1/withdrawals", {"amount": 1}),
    ("/transfers", {"transfer_id": "t1", "source": "a1", "target": "b1", "amount": 1}),
    ("/commands/Deposit", {"account_id": "a1", "amount": 1}),
]
NOT_JSON = [
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "text/json",
    "",
    None,  # no Content-Type at all, with a body
    "application/json; charset=utf-16",  # read as UTF-8 all the same, it was accepted
    'application/json; charset="latin-1"',
]


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_command_routes_refuse_bodies_that_are_not_json(
    live: Live, content_type: str | None
) -> None:
    _open(live, "a1", 10)
    _open(live, "b1", 0)
    head = _head(live)
    headers = {} if content_type is None else {"content-type": content_type}
    for url, fields in COMMAND_ROUTES:
        r = live.post(url, content=json.dumps(fields).encode(), headers=headers)
        assert r.request.headers.get("content-type") == content_type
        body = _problem(r, 415)
        assert "application/json" in body["detail"], url
    assert _head(live) == head


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        'application/json; Charset="UTF-8"',
        "Application/JSON",
        "application/x+json",
    ],
)
def test_json_content_types_are_accepted(live: Live, content_type: str) -> None:
    _open(live, "a1", 10)
    r = live.post(
        "/accounts/a1/deposits", content=b'{"amount": 1}', headers={"content-type": content_type}
    )
    assert r.status_code == 200, r.text


def test_an_empty_body_without_content_type_is_still_a_missing_body(live: Live) -> None:
    _open(live, "a1", 10)
    assert "JSON" in _problem(live.post("/accounts/a1/deposits"), 400)["detail"]


def test_is_json() -> None:
    assert is_json("application/problem+json") and not is_json("application/+json")


def test_openapi_documents_415_on_every_command_route(live: Live) -> None:
    paths = live.get("/openapi.json").json()["paths"]
    for path in (
        "/accounts",
        "/accounts/{account_id}/deposits",
        "/accounts/{account_id}/withdrawals",
        "/transfers",
        "/commands/{name}",
    ):
        answer = paths[path]["post"]["responses"]["415"]
        assert PROBLEM in answer["content"], path
