"""Schemathesis against ``cqrs-lab serve`` for the bank and for the inventory, over real HTTP
on 127.0.0.1, admin routes included (the server has an admin token and every request
carries it): no 5xx, and every answer has a documented status code, content type, headers
and a body that matches its documented schema, for requests that fit the schema (positive)
and requests that break it (negative: they must be refused). A request that fits the
document must never be refused as invalid (the document and the validators agree). The
document itself uses only JSON Schema's keywords, so that clients read the bounds it states.
Examples are bounded and derandomized: one run is the same run every time, within seconds.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from cqrs_lab.http import ServerConfig, build_engine, create_app
from tests.http.conftest import TOKEN, Server

pytestmark = pytest.mark.slow  # real uvicorn subprocesses

EXAMPLES = 25  # per operation and generation mode


#: what ``/queries/{name}`` says of a field that another query takes, or that it needs
_NOT_THIS_QUERY = ("Field required", "unknown field; remove it")


@schemathesis.check
def fitting_input_is_not_refused(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A request generated to fit the document is not refused as an invalid request (422
    naming fields). It may be refused for what the document cannot say (no such account,
    insufficient funds, a token beyond the log, an idempotency key reused: other statuses or
    titles), and the generic routes take what the path names, which one document cannot tie
    to the name: a command's body is judged against the named command's schema, and a
    query's missing or unknown field is the named query's own requirement (each parameter's
    description says which queries take it)."""
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return None
    if response.status_code != 422:
        return None
    problem = json.loads(response.content)
    if problem.get("title") != "invalid request":
        return None
    errors = problem.get("errors", [])
    path = case.operation.path
    if path == "/queries/{name}" and all(
        e["field"].startswith("query parameter ") and e["message"] in _NOT_THIS_QUERY
        for e in errors
    ):
        return None
    if path == "/faults" and "lo <= hi" in problem["detail"]:
        return None  # delay_seconds [lo, hi] out of order: JSON Schema cannot compare items
    if path == "/commands/{name}":
        branches = case.operation.definition.raw["requestBody"]["content"]["application/json"]
        named = [
            b for b in branches["schema"]["anyOf"] if b["title"] == case.path_parameters["name"]
        ]
        if not named or not jsonschema_rs.is_valid(named[0], case.body):
            return None  # fits another command's body, not the one named in the path
    raise AssertionError(f"a request that fits the document was refused: {problem['detail']}")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
    fitting_input_is_not_refused,
]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: per domain: its module, something for the generated requests to find, and how many
#: operations its document must have (so a route that drops out of the document is noticed)
DOMAINS = {
    "bank": (
        "cqrs_lab.domains.bank",
        [("/accounts", {"account_id": a, "opening_balance": 100}) for a in ("a1", "b1")],
        18,
    ),
    "inventory": (
        "cqrs_lab.domains.inventory",
        [
            ("/commands/AddProduct", {"sku": s, "name": s, "initial_stock": 10})
            for s in ("sku-1", "sku-2")
        ],
        11,
    ),
}


@pytest.fixture(scope="module", params=sorted(DOMAINS))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, Server]]:
    module, seeds, _ = DOMAINS[request.param]
    # short read-your-writes waits keep each example fast; a consumer that POST /faults
    # crashes comes back at once, so later examples meet a whole server again
    server = Server(
        "--domain", module, "--admin-token", TOKEN, "--max-wait", "0.05", "--restart-after", "0"
    )
    try:
        for path, body in seeds:
            httpx.post(server.url + path, json=body, timeout=10).raise_for_status()
        yield request.param, server
    finally:
        server.kill()


def test_every_operation_answers_as_documented(served: tuple[str, Server]) -> None:
    name, server = served
    document = httpx.get(server.url + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == DOMAINS[name][2], [op.label for op in operations]
    tested = []
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=server.url, headers=AUTH, checks=CHECKS, timeout=10)

        try:
            check()
        except Unsatisfiable:  # nothing about this operation can be made invalid (no body,
            assert mode is GenerationMode.NEGATIVE  # only free-form strings in the path)
            continue
        tested.append((operation.label, mode))
    assert {label for label, _ in tested} == {op.label for op in operations}
    assert httpx.get(server.url + "/livez", timeout=10).status_code == 200  # it survived


#: the keywords of JSON Schema 2020-12 (and OpenAPI's additions) that a document here uses;
#: any other key in a schema is ignored by clients, so a bound written under it is lost
KEYWORDS = frozenset(
    [
        "$ref",
        "$defs",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "enum",
        "const",
        "default",
        "title",
        "description",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "examples",
        "example",
        "readOnly",
        "writeOnly",
        "deprecated",
        "discriminator",
        "contentMediaType",
    ]
)


def _schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object of the document, with where it is."""

    def walk(where: str, schema: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        if not isinstance(schema, dict):
            return
        yield where, schema
        for key in ("items", "not", "additionalProperties"):
            yield from walk(f"{where}/{key}", schema.get(key))
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for i, sub in enumerate(schema.get(key, [])):
                yield from walk(f"{where}/{key}/{i}", sub)
        for key in ("properties", "$defs"):
            for name, sub in schema.get(key, {}).items():
                yield from walk(f"{where}/{key}/{name}", sub)

    for name, schema in document["components"]["schemas"].items():
        yield from walk(f"components/{name}", schema)
    for path, item in document["paths"].items():
        for method, op in item.items():
            at = f"{method.upper()} {path}"
            for p in op.get("parameters", []):
                yield from walk(f"{at} parameter {p['name']}", p["schema"])
            bodies = [("body", op.get("requestBody", {}))]
            bodies += [(f"response {code}", r) for code, r in op["responses"].items()]
            for what, part in bodies:
                for media, content in part.get("content", {}).items():
                    yield from walk(f"{at} {what} {media}", content.get("schema"))


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_the_document_uses_only_json_schema_keywords(name: str) -> None:
    config = ServerConfig(domain=DOMAINS[name][0], admin_token=TOKEN)
    document = create_app(build_engine(config).engine, config).api.openapi()
    unknown = {
        f"{where}: {sorted(set(schema) - KEYWORDS)}"
        for where, schema in _schemas(document)
        if set(schema) - KEYWORDS
    }
    assert not unknown, sorted(unknown)
    assert sum(1 for _ in _schemas(document)) > 50  # the walk reaches into the document
