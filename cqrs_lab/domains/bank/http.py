"""The bank's hand-designed HTTP API: resources over the same engine as the generic routes.

Every served domain gets ``POST /commands/{name}`` and ``GET /queries/{name}``; the bank
also declares ``Domain.http_routes = "cqrs_lab.domains.bank.http:routes"``, and the HTTP
driver imports this module (only then, so declaring the bank needs no web framework) and
adds these routes to its one route table:

- ``POST /accounts`` (201, ``Location``), ``POST /accounts/{id}/deposits`` and
  ``/withdrawals``, ``POST /transfers`` (202); each takes ``If-Match`` on the version of the
  stream it writes (the account's, or the transfer's);
- ``GET /accounts/{id}`` (with an ``ETag``), ``GET /accounts/{id}/statement?limit=``,
  ``GET /transfers/{id}``.

Bodies are strict models parsed in one pydantic-core pass; path identifiers follow the one
:data:`~cqrs_lab.http.schemas.Id` rule; answers, errors, tokens and waits are the HTTP
layer's own (:class:`~cqrs_lab.http.commands.CommandGateway`,
:class:`~cqrs_lab.http.reads.Reads`).

>>> from cqrs_lab.http import ServerConfig, build_engine, create_app
>>> config = ServerConfig(domain="cqrs_lab.domains.bank")
>>> app = create_app(build_engine(config).engine, config)
>>> mine = [f"{r.method} {r.path}" for r in app.routes if r.endpoint.__module__ == __name__]
>>> sorted(mine)[:2]
['GET /accounts/{account_id}', 'GET /accounts/{account_id}/statement']
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from cqrs_lab.domains.bank.aggregates import account_stream
from cqrs_lab.domains.bank.messages import Deposit, OpenAccount, RequestTransfer, Withdraw
from cqrs_lab.domains.bank.views import GetAccount, GetStatement, GetTransfer
from cqrs_lab.errors import Problem
from cqrs_lab.http import Route, RouteContext
from cqrs_lab.http.generic import command_doc, query_doc
from cqrs_lab.http.reads import etag_at, int_param, json_response, query_parameters
from cqrs_lab.http.schemas import (
    INTEGRAL,
    Id,
    PathId,
    StrictBody,
    parse_body,
    read_json_body,
)

__all__ = [
    "AccountOut",
    "AmountBody",
    "OpenAccountBody",
    "StatementOut",
    "TransferBody",
    "routes",
]

Amount = Annotated[StrictInt, Field(gt=0, le=10**12), INTEGRAL]


class OpenAccountBody(StrictBody):
    account_id: Id
    owner: Annotated[StrictStr, Field(max_length=200)] = ""
    opening_balance: Annotated[StrictInt, Field(ge=0, le=10**12), INTEGRAL] = 0


class AmountBody(StrictBody):
    amount: Amount


class TransferBody(StrictBody):
    transfer_id: Id
    source: Id
    target: Id
    amount: Amount


class AccountOut(BaseModel):
    account_id: str
    owner: str
    open: bool
    balance: int


class StatementLine(BaseModel):
    version: int
    position: int
    kind: str
    amount: int
    transfer_id: str | None
    at: float


class StatementOut(BaseModel):
    account_id: str
    lines: list[StatementLine]


_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
}


def routes(ctx: RouteContext) -> list[Route]:
    """The bank's resource routes over ``ctx.engine`` (see the module docstring)."""
    gateway, reads, engine, max_body = ctx.gateway, ctx.reads, ctx.engine, ctx.max_body
    read_params = query_parameters(ctx.max_wait)

    async def open_account(request: Request) -> Response:
        """Open an account (201); the body names the account and its opening balance."""
        body = await read_json_body(request, max_body)
        b = parse_body(OpenAccountBody, body)
        cmd = OpenAccount(b.account_id, b.owner, b.opening_balance)
        resp = await gateway.run(request, cmd, body, created=201)
        if resp.status_code == 201:
            resp.headers["Location"] = f"/accounts/{b.account_id}"
        return resp

    async def deposit(request: Request) -> Response:
        """Deposit into an account; ``If-Match`` makes it conditional on the stream version."""
        account_id = request.path_params["account_id"]
        body = await read_json_body(request, max_body)
        b = parse_body(AmountBody, body)
        stream = account_stream(account_id)
        return await gateway.run(
            request, Deposit(account_id, b.amount), body, stream=stream, must_exist=stream
        )

    async def withdraw(request: Request) -> Response:
        """Withdraw from an account; refused (409) beyond the balance."""
        account_id = request.path_params["account_id"]
        body = await read_json_body(request, max_body)
        b = parse_body(AmountBody, body)
        stream = account_stream(account_id)
        return await gateway.run(
            request, Withdraw(account_id, b.amount), body, stream=stream, must_exist=stream
        )

    async def transfer(request: Request) -> Response:
        """Request a transfer (202): the saga debits, credits or refunds in the background."""
        body = await read_json_body(request, max_body)
        b = parse_body(TransferBody, body)
        cmd = RequestTransfer(b.transfer_id, b.source, b.target, b.amount)
        resp = await gateway.run(request, cmd, body, created=202)
        if resp.status_code == 202:
            resp.headers["Location"] = f"/transfers/{b.transfer_id}"
        return resp

    async def get_account(request: Request) -> Response:
        """The account from the balances read model, with an ``ETag`` for If-Match."""
        account_id = request.path_params["account_id"]
        value, headers = await reads.ask(request, GetAccount(account_id), "balances")
        if value is None:
            raise Problem(404, "not found", f"no account {account_id!r}", headers=headers)
        etag = etag_at(engine, account_stream(account_id), int(headers["X-Read-Position"]))
        if etag is not None:
            headers["ETag"] = etag
        return json_response(value, headers=headers)

    async def get_statement(request: Request) -> Response:
        """The account's statement lines, oldest first (the last ``limit``)."""
        account_id = request.path_params["account_id"]
        # a parameter given twice is refused by reads.ask, for every read route
        limit = int_param("query parameter limit", request.query_params.get("limit"), 1, 1000)
        value, headers = await reads.ask(request, GetStatement(account_id, limit), "statements")
        if value is None:
            raise Problem(
                404, "not found", f"no statement for account {account_id!r}", headers=headers
            )
        return json_response({"account_id": account_id, "lines": value}, headers=headers)

    async def get_transfer(request: Request) -> Response:
        """A transfer's progress as the saga sees it."""
        transfer_id = request.path_params["transfer_id"]
        value, headers = await reads.ask(request, GetTransfer(transfer_id), "transfer-saga")
        if value is None:
            raise Problem(404, "not found", f"no transfer {transfer_id!r}", headers=headers)
        return json_response(value, headers=headers)

    def post(body: type[BaseModel], status: int = 200, if_match: bool = False) -> dict[str, Any]:
        return command_doc(body.model_json_schema(), status, if_match=if_match, tag="bank")

    account = {"account_id": PathId}
    return [
        Route("POST", "/accounts", open_account, post(OpenAccountBody, 201, if_match=True)),
        Route(
            "POST",
            "/accounts/{account_id}/deposits",
            deposit,
            post(AmountBody, if_match=True),
            account,
        ),
        Route(
            "POST",
            "/accounts/{account_id}/withdrawals",
            withdraw,
            post(AmountBody, if_match=True),
            account,
        ),
        Route("POST", "/transfers", transfer, post(TransferBody, 202, if_match=True)),
        Route(
            "GET",
            "/accounts/{account_id}",
            get_account,
            query_doc(read_params, AccountOut, tag="bank"),
            account,
        ),
        Route(
            "GET",
            "/accounts/{account_id}/statement",
            get_statement,
            query_doc([*read_params, _LIMIT], StatementOut, tag="bank"),
            account,
        ),
        Route(
            "GET",
            "/transfers/{transfer_id}",
            get_transfer,
            query_doc(read_params, tag="bank"),
            {"transfer_id": PathId},
        ),
    ]
