"""The ASGI front: request timing, the body limit, and a fast lane for the bank's routes.

Measured on this machine (FastAPI 0.165, Starlette 1.10, in-process, one trivial GET
route): FastAPI 14,000 requests/s, Starlette 70,000. Over uvicorn and ``wrk`` the lab's
query reached 15% of the bare Starlette peer when every request went through FastAPI, far
from the 70% target. So the bank's routes, which are declared in the FastAPI app (OpenAPI,
docs, and a fallback), are dispatched here directly by a table of compiled path patterns to
the same endpoint functions; everything else (operations, docs, 404s, 405s) goes to FastAPI.

>>> # app = LabApp(fastapi_app, routes, metrics, max_body_bytes=65536)
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from cqrs_lab.http.metrics import HttpMetrics
from cqrs_lab.http.problems import (
    PROBLEM_JSON,
    Problem,
    invalid_request,
    problem_response,
    response_for,
)

__all__ = ["FastRoute", "LabApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Endpoint = Callable[[Request], Awaitable[Response]]
_Checks = tuple[tuple[str, TypeAdapter[Any]], ...]  # a route's path parameters, validated
log = logging.getLogger("cqrs_lab.http.errors")
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class FastRoute:
    """``method`` and ``path`` (a template such as ``/accounts/{account_id}``) to ``endpoint``.

    ``openapi`` holds the keyword arguments for FastAPI's ``add_api_route`` (documentation).
    ``path_types`` gives a path parameter its annotation (default ``str``), one source for
    both sides: the lane validates the value against it before the endpoint runs (a bad one
    is a 422 naming the parameter), and FastAPI documents it and validates it the same way.
    """

    method: str
    path: str
    endpoint: Endpoint
    openapi: dict[str, Any]
    path_types: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)

    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", self.path) + "$")


class LabApp:
    """The served ASGI app: ``api`` (FastAPI) behind a timing edge and a fast lane."""

    def __init__(
        self, api: Any, routes: Sequence[FastRoute], metrics: HttpMetrics, max_body_bytes: int
    ) -> None:
        self.api = api
        self.state = api.state
        self.metrics = metrics
        self.limit = max_body_bytes
        self._table: dict[str, list[tuple[re.Pattern[str], FastRoute, _Checks]]] = {}
        for r in routes:
            checks = tuple((name, TypeAdapter(tp)) for name, tp in r.path_types.items())
            self._table.setdefault(r.method, []).append((r.pattern(), r, checks))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        start = time.perf_counter()
        method = scope["method"]
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await _too_large(send, self.limit)
                    self.metrics.observe(method, "<refused>", 413, time.perf_counter() - start)
                    return
                break
        path = scope["path"]
        for pattern, route, checks in self._table.get(method, ()):
            m = pattern.match(path)
            if m is not None:
                scope["path_params"] = m.groupdict()
                status = await self._serve(route, checks, scope, receive, send)
                self.metrics.observe(method, route.path, status, time.perf_counter() - start)
                return
        status = 500

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.api(scope, receive, tracked)
        finally:
            template = getattr(scope.get("route"), "path", None) or "<unmatched>"
            self.metrics.observe(method, template, status, time.perf_counter() - start)

    async def _serve(
        self, route: FastRoute, checks: _Checks, scope: Scope, receive: Receive, send: Send
    ) -> int:
        request = Request(scope, receive)
        try:
            for name, adapter in checks:
                _check(name, adapter, scope["path_params"][name])
            response = await route.endpoint(request)
        except Problem as p:
            response = response_for(p)
        except Exception as exc:
            log.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            response = problem_response(500, "internal error", "the server failed; see its log")
        await response(scope, receive, send)
        return response.status_code


def _check(name: str, adapter: TypeAdapter[Any], value: str) -> None:
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": ("path", name, *e["loc"])} for e in exc.errors()]
        raise invalid_request(errors) from None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "request body too large",
            "status": 413,
            "detail": f"the request body exceeds {limit} bytes; send a smaller body",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
