"""The OpenAPI document of a served domain, generated from the route table and the
FastAPI app's own routes; every 4xx/5xx answer is documented as problem+json.

The table's routes are turned into FastAPI ``APIRoute`` objects for the document only (they
are never added to the app's router, so nothing is served twice).

>>> from cqrs_lab.http import ServerConfig, build_engine, create_app
>>> config = ServerConfig(domain="cqrs_lab.domains.inventory")
>>> spec = create_app(build_engine(config).engine, config).api.openapi()
>>> spec["info"]["title"], "/queries/{name}" in spec["paths"]
('cqrs-lab: inventory', True)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response

from cqrs_lab.http.problems import PROBLEM_JSON
from cqrs_lab.http.router import Route

__all__ = ["PROBLEM", "PROBLEM_SCHEMA", "document"]

#: a response documented as problem+json (for ``responses={...}`` of a route)
PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; errors name the field at fault",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def document(api: FastAPI, routes: Sequence[Route], models: Sequence[type[BaseModel]] = ()) -> None:
    """Make ``api.openapi()`` describe ``routes`` (the table) and the app's own routes;
    ``models`` (bodies that routes parse themselves) join the document's components."""
    declared = [_declaration(r) for r in routes]

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = get_openapi(
            title=api.title,
            version=api.version,
            openapi_version=api.openapi_version,
            description=api.description,
            routes=[*declared, *api.routes],
            tags=api.openapi_tags,
            servers=api.servers,
            separate_input_output_schemas=api.separate_input_output_schemas,
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            one = model.model_json_schema(ref_template="#/components/schemas/{model}")
            comps.update(one.pop("$defs", {}))
            comps[model.__name__] = one
        api.openapi_schema = _problems(_standard(schema))
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def _problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Document every 4xx/5xx answer as application/problem+json (what the app sends)."""
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    comps.pop("HTTPValidationError", None)
    comps.pop("ValidationError", None)
    comps["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path in schema["paths"].values():
        for op in path.values():
            responses = op.setdefault("responses", {})
            if op.get("requestBody") or op.get("parameters"):
                responses.setdefault("422", {"description": "invalid request"})
            if op.get("requestBody"):
                responses.setdefault("400", {"description": "malformed JSON"})
                responses.setdefault("413", {"description": "body too large"})
            for code, resp in responses.items():
                if code[0] in "45":
                    resp["content"] = {PROBLEM_JSON: {"schema": ref}}
    return schema


#: pydantic writes a bound it cannot place on a union (``StrictFloat | StrictInt`` with
#: ``Field(ge=0, le=1)``) under its own names, which JSON Schema (and every OpenAPI client)
#: ignores; next to the union's ``anyOf`` the standard keywords mean the same bound
_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}
#: keywords whose values are data, not schemas: never rewritten
_DATA = frozenset({"default", "example", "examples", "enum", "const"})


def _standard(node: Any) -> Any:
    """``node`` with pydantic's ``ge``/``le``/``gt``/``lt`` written as JSON Schema bounds.

    >>> _standard({"anyOf": [{"type": "number"}, {"type": "integer"}], "ge": 0, "le": 1})
    {'anyOf': [{'type': 'number'}, {'type': 'integer'}], 'minimum': 0, 'maximum': 1}
    >>> _standard({"properties": {"ge": {"type": "string", "default": {"le": 2}}}})
    {'properties': {'ge': {'type': 'string', 'default': {'le': 2}}}}
    """
    if isinstance(node, list):
        return [_standard(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _BOUNDS and isinstance(value, int | float) and not isinstance(value, bool):
            out[_BOUNDS[key]] = value
        else:
            out[key] = value if key in _DATA else _standard(value)
    return out


def _declaration(route: Route) -> APIRoute:
    """``route`` as FastAPI would declare it: its path parameters typed, for the document."""
    return APIRoute(
        route.path,
        _signature(route),
        methods=[route.method],
        name=route.endpoint.__name__,
        summary=(route.endpoint.__doc__ or "").split("\n")[0],
        **route.openapi,
    )


def _signature(route: Route) -> Callable[..., Awaitable[Response]]:
    endpoint = route.endpoint

    async def declared(**kwargs: Any) -> Response:  # documents; the table serves the route
        return await endpoint(kwargs["request"])

    params = [
        inspect.Parameter(
            p, inspect.Parameter.KEYWORD_ONLY, annotation=route.path_types.get(p, str)
        )
        for p in route.params
    ]
    params.append(inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request))
    declared.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    declared.__doc__ = endpoint.__doc__
    return declared
