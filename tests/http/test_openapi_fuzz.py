"""Schemathesis against the app's own OpenAPI document, over real HTTP on 127.0.0.1:
no 5xx, and every response matches the documented status codes, content types and schemas,
for requests that fit the schema and for requests that break it (negative mode)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.http.conftest import Server

pytestmark = pytest.mark.slow  # a real uvicorn subprocess

EXAMPLES = 12  # per operation: bounded so the whole run stays within seconds


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server("--max-wait", "0.05")
    try:
        for account in ("a1", "b1"):  # something for the generated requests to find
            httpx.post(s.url + "/accounts", json={"account_id": account, "opening_balance": 100})
        yield s
    finally:
        s.kill()


def test_every_operation_answers_as_documented(server: Server) -> None:
    document = httpx.get(server.url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    tested = []
    for result, mode in itertools.product(schema.get_all_operations(), GenerationMode):
        operation = result.ok()

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=server.url, checks=checks, timeout=10)

        try:
            check()
        except Unsatisfiable:  # no input of this operation can be made invalid (no body, and
            assert mode is GenerationMode.NEGATIVE  # only free-form strings in the path)
            continue
        tested.append((operation.label, mode))
    assert len({label for label, _ in tested}) >= 15, tested
    assert sum(mode is GenerationMode.NEGATIVE for _, mode in tested) >= 10, tested
    assert httpx.get(server.url + "/livez").status_code == 200  # it survived the fuzzing
