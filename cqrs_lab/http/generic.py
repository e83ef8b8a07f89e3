"""The routes every served domain gets: ``POST /commands/{name}`` and ``GET /queries/{name}``.

``POST /commands/{name}`` takes a public command by class name, its body the command's
fields (JSON only, validated by :func:`~cqrs_lab.http.schemas.command_model`); an
``internal`` command (a saga's step, a refund) answers 404 like an unknown name. It answers
as every command route does (:class:`~cqrs_lab.http.commands.CommandGateway`): the stream
version and the global ``position``, the consistency token.

``GET /queries/{name}?<field>=<value>`` asks a query of the domain, its fields as
query-string parameters (:mod:`cqrs_lab.http.queries`), with the read-your-writes
parameters (``min_position``, ``wait``, ``stale``, ``X-Consistency-Token``); 200 with the
answer as the body, 404 when the answer is None.

:func:`command_doc` and :func:`query_doc` document a route of either kind, for a domain's
own routes too.

>>> doc = command_doc({"type": "object"}, 202, if_match=True)
>>> doc["status_code"], [p["name"] for p in doc["openapi_extra"]["parameters"]]
(202, ['Idempotency-Key', 'traceparent', 'If-Match'])
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Path
from starlette.requests import Request
from starlette.responses import Response

from cqrs_lab.core import Command
from cqrs_lab.errors import Problem
from cqrs_lab.http.openapi import PROBLEM
from cqrs_lab.http.queries import QueryModel, query_model
from cqrs_lab.http.reads import JsonResponse, query_parameters
from cqrs_lab.http.router import Route, RouteContext
from cqrs_lab.http.schemas import CommandOut, command_model, parse_body, read_json_body

__all__ = ["COMMAND_RESPONSES", "QUERY_RESPONSES", "command_doc", "domain_routes", "query_doc"]

COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed JSON or header", **PROBLEM},
    404: {"description": "no such command, or nothing to apply it to", **PROBLEM},
    409: {"description": "command refused, or the same key still running", **PROBLEM},
    412: {"description": "If-Match does not match the stream version", **PROBLEM},
    413: {"description": "body too large", **PROBLEM},
    415: {"description": "not JSON: send Content-Type: application/json", **PROBLEM},
    422: {"description": "invalid body or id, or an idempotency key reused", **PROBLEM},
    429: {"description": "command queue full; see Retry-After", **PROBLEM},
}
QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad consistency token, or one beyond the log", **PROBLEM},
    404: {"description": "not found (see X-Stale)", **PROBLEM},
    422: {"description": "bad query or path parameter", **PROBLEM},
    503: {"description": "not caught up within the wait budget", **PROBLEM},
}
_HEADERS = [
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


def command_doc(
    body: dict[str, Any], status: int = 200, *, if_match: bool = False, tag: str = "commands"
) -> dict[str, Any]:
    """The OpenAPI of a command route whose JSON body has the schema ``body``."""
    request_body = {"required": True, "content": {"application/json": {"schema": body}}}
    headers = [*_HEADERS, _IF_MATCH] if if_match else list(_HEADERS)
    return {
        "status_code": status,
        "response_model": CommandOut,
        "responses": COMMAND_RESPONSES,
        "openapi_extra": {"requestBody": request_body, "parameters": headers},
        "tags": [tag],
    }


def query_doc(parameters: list[dict[str, Any]], out: Any = None, tag: str = "queries") -> dict:
    """The OpenAPI of a query route with these ``parameters`` (the read-your-writes ones are
    added by the caller: :func:`~cqrs_lab.http.reads.query_parameters`)."""
    return {
        "status_code": 200,
        "response_model": out,
        "responses": QUERY_RESPONSES,
        "openapi_extra": {"parameters": parameters},
        "tags": [tag],
    }


def domain_routes(ctx: RouteContext) -> list[Route]:
    """``/commands/{name}`` and ``/queries/{name}`` for ``ctx.domain``."""
    domain, gateway, reads = ctx.domain, ctx.gateway, ctx.reads
    commands = {c.__name__: c for c in domain.public_commands}
    bodies = {name: command_model(cls) for name, cls in commands.items()}
    known = sorted(commands)
    installed = set(ctx.engine.subscriptions)
    queries = {q.name: q for q in domain.queries if q.view in installed}
    models = {name: query_model(q.type) for name, q in queries.items()}
    names = sorted(queries)

    async def command(request: Request) -> Response:
        """Any public command, by class name; the body holds its fields."""
        name = request.path_params["name"]
        cls = commands.get(name)
        if cls is None:  # internal commands are not in the table: the same answer, no hint
            raise Problem(404, "unknown command", f"no command {name[:100]!r}; send one of {known}")
        body = await read_json_body(request, ctx.max_body)
        fields = parse_body(bodies[name], body).model_dump()
        cmd: Command = cls(**fields)
        return await gateway.run(request, cmd, body)

    async def query(request: Request) -> Response:
        """Any query of the domain, by class name; its fields are query parameters."""
        name = request.path_params["name"]
        q = queries.get(name)
        if q is None:
            raise Problem(404, "unknown query", f"no query {name[:100]!r}; ask one of {names}")
        asked = models[name].parse(request.query_params)
        value, headers = await reads.ask(request, asked, q.view)
        if value is None:
            raise Problem(404, "not found", f"{asked!r} found nothing", headers=headers)
        return JsonResponse(json.dumps(value, default=_plain).encode(), 200, headers)

    command_name = Annotated[
        str, Path(description="a public command of the domain", json_schema_extra={"enum": known})
    ]
    query_name = Annotated[
        str, Path(description="a query of the domain", json_schema_extra={"enum": names})
    ]
    any_body = {
        "description": "the fields of the command named in the path",
        "anyOf": [{**m.model_json_schema(), "title": n} for n, m in sorted(bodies.items())],
    }
    params = [*_query_fields(models), *query_parameters(ctx.max_wait)]
    return [
        Route(
            "POST",
            "/commands/{name}",
            command,
            command_doc(any_body, 200, if_match=True),
            {"name": command_name},
        ),
        Route("GET", "/queries/{name}", query, query_doc(params), {"name": query_name}),
    ]


def _query_fields(models: dict[str, QueryModel]) -> list[dict[str, Any]]:
    """Every query's fields as optional parameters, each saying which queries take it."""
    users: dict[str, list[str]] = {}
    schemas: dict[str, dict[str, Any]] = {}
    for name, model in sorted(models.items()):
        for f in model.fields:
            users.setdefault(f.name, []).append(name + (" (required)" if f.required else ""))
            schemas.setdefault(f.name, f.schema)
    return [
        {
            "name": field,
            "in": "query",
            "required": False,
            "description": "a field of " + ", ".join(users[field]),
            "schema": schemas[field],
        }
        for field in sorted(users)
    ]


def _plain(value: Any) -> Any:
    """JSON for what a read model may hold besides JSON types: dataclasses and sets."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"a query answer holds a {type(value).__name__}, which is not JSON")
