"""The bank's routes: commands answer with the stream version and the global position (the
consistency token); queries read the read models and may wait for a token first.

Hot routes take the raw :class:`Request` and parse it themselves (one pydantic-core pass),
and declare their parameters and bodies to OpenAPI with ``openapi_extra``. Every command
route takes JSON only (415 otherwise); every identifier, in a path or a body, follows the
one :data:`~cqrs_lab.http.schemas.Id` rule. ``POST /commands/{name}`` offers the public
commands only: an ``internal`` one (a saga's step, a refund) answers 404 like an unknown name.

>>> # routes = bank_routes(engine, driver, gateway, 65536, 10.0); document(api, routes)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from pydantic import BaseModel
from starlette.responses import Response

from cqrs_lab.core import Command, Engine
from cqrs_lab.domains import bank
from cqrs_lab.http.commands import CommandGateway
from cqrs_lab.http.driver import Driver
from cqrs_lab.http.lane import FastRoute
from cqrs_lab.http.problems import Problem
from cqrs_lab.http.reads import Reads, etag_at, int_param, json_response, query_parameters
from cqrs_lab.http.schemas import (
    AccountOut,
    AmountBody,
    CommandOut,
    OpenAccountBody,
    PathId,
    StatementOut,
    TransferBody,
    body_schema,
    command_model,
    parse_body,
    read_json_body,
)

__all__ = ["bank_routes", "document"]

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed JSON or header", **_PROBLEM},
    404: {"description": "no such account", **_PROBLEM},
    409: {"description": "command rejected, or the same key still running", **_PROBLEM},
    412: {"description": "If-Match does not match the stream version", **_PROBLEM},
    413: {"description": "body too large", **_PROBLEM},
    415: {"description": "not JSON: send Content-Type: application/json", **_PROBLEM},
    422: {"description": "invalid body or id, or an idempotency key reused", **_PROBLEM},
    429: {"description": "command queue full; see Retry-After", **_PROBLEM},
}
_QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad consistency token, or one beyond the log", **_PROBLEM},
    404: {"description": "not found (see X-Stale)", **_PROBLEM},
    422: {"description": "bad query or path parameter", **_PROBLEM},
    503: {"description": "not caught up within the wait budget", **_PROBLEM},
}
_HEADER_PARAMS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,200}$"},
    },
    {"name": "traceparent", "in": "header", "required": False, "schema": {"type": "string"}},
]
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": r'^(\*|(W/)?"\d{1,15}")$'},
}
_ANY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "the fields of the command named in the path",
                }
            }
        },
    }
}


def bank_routes(
    engine: Engine, driver: Driver, gateway: CommandGateway, max_body: int, max_wait: float
) -> list[FastRoute]:
    """The bank's routes on ``engine``: served by the fast lane, documented by FastAPI."""
    reads = Reads(engine, driver, max_wait)
    commands = {cls.__name__: cls for cls in engine.bus.handlers if not cls.internal}
    models = {n: command_model(c) for n, c in commands.items()}
    known = sorted(commands)
    acct = bank.account_stream
    query_params = query_parameters(max_wait)

    def doc(
        model: type[BaseModel] | None,
        status: int,
        out: Any,
        if_match: bool = False,
        params: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        if model is None:  # a query
            extra: dict[str, Any] = {"parameters": params or query_params}
            responses = _QUERY_RESPONSES
        else:
            headers = [*_HEADER_PARAMS, _IF_MATCH] if if_match else list(_HEADER_PARAMS)
            body = _ANY_BODY if model is BaseModel else body_schema(model)
            extra, responses = {**body, "parameters": headers}, _COMMAND_RESPONSES
        return {
            "status_code": status,
            "response_model": out,
            "responses": responses,
            "openapi_extra": extra,
            "tags": ["bank"],
        }

    async def open_account(request: Request) -> Response:
        """Open an account (201); the body names the account and its opening balance."""
        body = await read_json_body(request, max_body)
        b = parse_body(OpenAccountBody, body)
        cmd = bank.OpenAccount(b.account_id, b.owner, b.opening_balance)
        resp = await gateway.run(request, cmd, body, created=201)
        if resp.status_code == 201:
            resp.headers["Location"] = f"/accounts/{b.account_id}"
        return resp

    async def deposit(request: Request) -> Response:
        """Deposit into an account; ``If-Match`` makes it conditional on the stream version."""
        account_id = request.path_params["account_id"]
        body = await read_json_body(request, max_body)
        b = parse_body(AmountBody, body)
        stream = acct(account_id)
        return await gateway.run(
            request, bank.Deposit(account_id, b.amount), body, stream=stream, must_exist=stream
        )

    async def withdraw(request: Request) -> Response:
        """Withdraw from an account; refused (409) beyond the balance."""
        account_id = request.path_params["account_id"]
        body = await read_json_body(request, max_body)
        b = parse_body(AmountBody, body)
        stream = acct(account_id)
        return await gateway.run(
            request, bank.Withdraw(account_id, b.amount), body, stream=stream, must_exist=stream
        )

    async def transfer(request: Request) -> Response:
        """Request a transfer (202): the saga debits, credits or refunds in the background."""
        body = await read_json_body(request, max_body)
        b = parse_body(TransferBody, body)
        cmd = bank.RequestTransfer(b.transfer_id, b.source, b.target, b.amount)
        resp = await gateway.run(request, cmd, body, created=202)
        if resp.status_code == 202:
            resp.headers["Location"] = f"/transfers/{b.transfer_id}"
        return resp

    async def command(request: Request) -> Response:
        """Any public command, by class name; the body holds its fields."""
        name = request.path_params["name"]
        cls = commands.get(name)
        if cls is None:  # internal commands are not in the table: the same answer, no hint
            raise Problem(404, "unknown command", f"no command {name[:100]!r}; send one of {known}")
        body = await read_json_body(request, max_body)
        fields = parse_body(models[name], body).model_dump()
        cmd: Command = cls(**fields)
        return await gateway.run(request, cmd, body)

    async def get_account(request: Request) -> Response:
        """The account from the balances read model, with an ``ETag`` for If-Match."""
        account_id = request.path_params["account_id"]
        value, headers = await reads.ask(request, bank.GetAccount(account_id), "balances")
        if value is None:
            raise Problem(404, "not found", f"no account {account_id!r}", headers=headers)
        etag = etag_at(engine, acct(account_id), int(headers["X-Read-Position"]))
        if etag is not None:
            headers["ETag"] = etag
        return json_response(value, headers=headers)

    async def get_statement(request: Request) -> Response:
        """The account's statement lines, oldest first (the last ``limit``)."""
        account_id = request.path_params["account_id"]
        limit = int_param("query parameter limit", request.query_params.get("limit"), 1, 1000)
        query = bank.GetStatement(account_id, limit)
        value, headers = await reads.ask(request, query, "statements")
        if value is None:
            raise Problem(
                404, "not found", f"no statement for account {account_id!r}", headers=headers
            )
        return json_response({"account_id": account_id, "lines": value}, headers=headers)

    async def get_transfer(request: Request) -> Response:
        """A transfer's progress as the saga sees it."""
        transfer_id = request.path_params["transfer_id"]
        value, headers = await reads.ask(request, bank.GetTransfer(transfer_id), "transfer-saga")
        if value is None:
            raise Problem(404, "not found", f"no transfer {transfer_id!r}", headers=headers)
        return json_response(value, headers=headers)

    limit_param = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    }
    path_types = {
        "account_id": PathId,
        "transfer_id": PathId,
        "name": Annotated[
            str, Path(description="a public command", json_schema_extra={"enum": [*known]})
        ],
    }

    def typed(route: FastRoute) -> FastRoute:  # every path parameter gets its one rule
        return replace(route, path_types={p: path_types[p] for p in route.params})

    routes = [
        FastRoute("POST", "/accounts", open_account, doc(OpenAccountBody, 201, CommandOut)),
        FastRoute(
            "POST",
            "/accounts/{account_id}/deposits",
            deposit,
            doc(AmountBody, 200, CommandOut, if_match=True),
        ),
        FastRoute(
            "POST",
            "/accounts/{account_id}/withdrawals",
            withdraw,
            doc(AmountBody, 200, CommandOut, if_match=True),
        ),
        FastRoute("POST", "/transfers", transfer, doc(TransferBody, 202, CommandOut)),
        FastRoute("POST", "/commands/{name}", command, doc(BaseModel, 200, CommandOut)),
        FastRoute("GET", "/accounts/{account_id}", get_account, doc(None, 200, AccountOut)),
        FastRoute(
            "GET",
            "/accounts/{account_id}/statement",
            get_statement,
            doc(None, 200, StatementOut, params=[*query_params, limit_param]),
        ),
        FastRoute("GET", "/transfers/{transfer_id}", get_transfer, doc(None, 200, None)),
    ]
    return [typed(r) for r in routes]


def document(api: FastAPI, routes: list[FastRoute]) -> None:
    """Declare ``routes`` in the FastAPI app (OpenAPI, docs; and served if reached there)."""
    for route in routes:
        api.add_api_route(
            route.path,
            _wrap(route),
            methods=[route.method],
            name=route.endpoint.__name__,
            summary=(route.endpoint.__doc__ or "").split("\n")[0],
            **route.openapi,
        )


def _wrap(route: FastRoute) -> Callable[..., Awaitable[Response]]:
    endpoint = route.endpoint

    async def call(**kwargs: Any) -> Response:
        return await endpoint(kwargs["request"])

    params = [
        inspect.Parameter(
            p, inspect.Parameter.KEYWORD_ONLY, annotation=route.path_types.get(p, str)
        )
        for p in route.params
    ]
    params.append(inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request))
    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    call.__doc__ = endpoint.__doc__
    return call
