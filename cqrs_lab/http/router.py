"""One route table: the ASGI front serves it, the OpenAPI document is generated from it.

Measured on this machine (FastAPI 0.165, Starlette 1.10, in-process, one trivial GET
route): FastAPI 14,000 requests/s, Starlette 70,000; over uvicorn and ``wrk`` the lab's
query reached 15% of the bare Starlette peer when every request went through FastAPI's
routing and validation. So the domain's routes (``/commands/{name}``, ``/queries/{name}``
and any hand-designed ones) are a table of :class:`Route` entries that :class:`LabApp`
dispatches itself, compiling each path with Starlette's own ``compile_path`` (literal text
escaped, parameters converted as Starlette does); the same entries are declared to OpenAPI
by :func:`cqrs_lab.http.openapi.document`, never served a second time. Everything else
(operations, docs, unknown paths) goes to the FastAPI app. Both entries answer errors with
:mod:`cqrs_lab.http.problems`, and a bug in either with its one 500 path.

>>> from starlette.responses import PlainTextResponse
>>> async def hello(request):
...     return PlainTextResponse("hi " + request.path_params["who"])
>>> route = Route("GET", "/hello.v1/{who}", hello)
>>> route.params, route.compiled.match("/hello.v1/ann") is not None
(['who'], True)
>>> route.compiled.match("/helloXv1/ann") is None
True
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from re import Pattern
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError
from starlette.convertors import Convertor, StringConvertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, compile_path
from starlette.routing import Route as StarletteRoute

from cqrs_lab.core import Domain, Engine
from cqrs_lab.errors import ConfigError, Problem, StoreFailure, TransactionAborted
from cqrs_lab.http.metrics import HttpMetrics
from cqrs_lab.http.problems import (
    client_closed,
    invalid_request,
    methods_on,
    problem_response,
    response_for,
    server_error,
    store_failed,
    with_head,
)
from cqrs_lab.http.stages import StageTimings

if TYPE_CHECKING:
    from cqrs_lab.http.commands import CommandGateway
    from cqrs_lab.http.driver import Driver
    from cqrs_lab.http.reads import Reads

__all__ = ["Endpoint", "LabApp", "Route", "RouteContext"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    """``method`` and ``path`` (a template such as ``/accounts/{account_id}``) to ``endpoint``.

    ``openapi`` holds the keyword arguments of FastAPI's ``APIRoute`` that document it
    (status code, response model, responses, ``openapi_extra``, tags). ``path_types`` gives
    a path parameter its annotation (default ``str``), one source for both sides: the table
    validates the value against it before the endpoint runs (a bad one is a 422 naming the
    parameter) and the OpenAPI document declares it.
    """

    method: str
    path: str
    endpoint: Endpoint
    openapi: dict[str, Any] = field(default_factory=dict)
    path_types: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def _compiled(self) -> tuple[Pattern[str], dict[str, Convertor[Any]]]:
        regex, _, convertors = compile_path(self.path)
        return regex, convertors

    @property
    def compiled(self) -> Pattern[str]:
        """The path's regular expression, as Starlette compiles it."""
        return self._compiled[0]

    @property
    def params(self) -> list[str]:
        return list(self._compiled[1])


@dataclass(frozen=True)
class RouteContext:
    """What a routes function (``Domain.http_routes``) builds its routes over."""

    engine: Engine
    domain: Domain
    driver: Driver
    gateway: CommandGateway
    reads: Reads
    max_body: int
    max_wait: float


@dataclass(frozen=True)
class _Entry:
    route: Route
    regex: Pattern[str]
    convertors: dict[str, Convertor[Any]] | None  # None: every parameter is a plain str
    checks: tuple[tuple[str, TypeAdapter[Any]], ...]


class LabApp:
    """The served ASGI app: the route table, then ``api`` (FastAPI), behind one timing edge
    (request histogram, body limit, the 500 path)."""

    def __init__(
        self,
        api: Any,
        routes: Sequence[Route],
        metrics: HttpMetrics,
        max_body_bytes: int,
        stages: StageTimings | None = None,
        api_routes: Sequence[StarletteRoute] = (),
    ) -> None:
        self.api = api
        #: FastAPI's own routes, flat (for ``OPTIONS``; the app's router may nest them)
        self.api_routes = list(api_routes)
        self.state = api.state
        self.metrics = metrics
        self.limit = max_body_bytes
        self.routes = list(routes)
        self._table: dict[str, list[_Entry]] = {}
        for r in routes:
            regex, convertors = r._compiled
            plain = all(type(c) is StringConvertor for c in convertors.values())
            checks = tuple((name, TypeAdapter(tp)) for name, tp in r.path_types.items())
            entry = _Entry(r, regex, None if plain else convertors, checks)
            self._table.setdefault(r.method, []).append(entry)
        #: FastAPI's documentation pages (plain Starlette routes, which leave no ``route`` in
        #: the scope): counted under their own path, not ``<unmatched>``
        self._docs = {
            str(p)
            for p in (
                getattr(api, "docs_url", None),
                getattr(api, "openapi_url", None),
                getattr(api, "redoc_url", None),
                getattr(api, "swagger_ui_oauth2_redirect_url", None),
            )
            if p
        }
        self._observe = metrics.observe
        #: the observer of a timed server's requests, with the client's id of each
        self._timed: Callable[[str, str, int, float, str, float], None] | None = None
        if stages is not None:
            observe = metrics.observe

            def timed(
                method: str,
                route: str,
                status: int,
                seconds: float,
                ref: str = "",
                at: float | None = None,
            ) -> None:
                stages.add("request", f"{method} {route} {status}", seconds, ref=ref, at=at)
                observe(method, route, status, seconds)

            self._observe = timed
            self._timed = timed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        if scope["method"] == "HEAD":  # RFC 9110 9.3.2: GET's answer, headers only
            await self(dict(scope, method="GET"), receive, _headers_only(send))
            return
        start = time.perf_counter()
        method = scope["method"]
        for name, value in scope["headers"]:
            if name == b"content-length":
                # digits (bytes.isdigit: ASCII only), leading zeros and surrounding white
                # space allowed, as the parser reads them; a garbled one is the parser's 400
                digits = value.strip(b" \t").lstrip(b"0") or b"0"
                if not digits.isdigit() or len(digits) > 15 or int(digits) > self.limit:
                    detail = f"the request body exceeds {self.limit} bytes; send a smaller body"
                    response = problem_response(413, "request body too large", detail)
                    await response(scope, receive, send)
                    self._observe(method, "<refused>", 413, time.perf_counter() - start)
                    return
                break
        path = scope["path"]
        if method == "OPTIONS":
            await self._options(scope, receive, send, start)
            return
        for entry in self._table.get(method, ()):
            m = entry.regex.match(path)
            if m is not None:
                params = m.groupdict()
                if entry.convertors is not None:  # {name:int} and the like, as Starlette does
                    params = {k: entry.convertors[k].convert(v) for k, v in params.items()}
                scope["path_params"] = params
                status = await self._serve(entry, scope, receive, send)
                seconds = time.perf_counter() - start
                if self._timed is not None:  # with the client's id of it, if it sent one,
                    at = time.monotonic()  # and its end taken now, not after the bookkeeping
                    self._timed(method, entry.route.path, status, seconds, _request_id(scope), at)
                else:
                    self._observe(method, entry.route.path, status, seconds)
                return
        allowed = self._other_methods(scope)
        if allowed:
            response = problem_response(
                405,
                "method not allowed",
                f"{method} is not allowed on {path}; use {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
            await response(scope, receive, send)
            self._observe(method, "<unmatched>", 405, time.perf_counter() - start)
            return
        await self._forward(scope, receive, send, start)

    async def _serve(self, entry: _Entry, scope: Scope, receive: Receive, send: Send) -> int:
        request = Request(scope, receive)
        try:
            for name, adapter in entry.checks:
                _check(name, adapter, scope["path_params"][name])
            response = await entry.route.endpoint(request)
        except Problem as p:
            response = response_for(p)
        except ClientDisconnect:
            response = client_closed(scope)
        except (StoreFailure, TransactionAborted) as failed:
            response = store_failed(failed)
        except Exception as exc:
            response = server_error(scope["method"], scope["path"], exc)
        await response(scope, receive, send)
        return response.status_code

    async def _forward(self, scope: Scope, receive: Receive, send: Send, start: float) -> None:
        """Everything the table does not serve: FastAPI's routes, docs, 404 and 405."""
        status = 500
        started = False

        async def tracked(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.api(scope, receive, tracked)
        except Exception as exc:
            # FastAPI's handler answered (and logged) it, then re-raised it for the server;
            # answered once here, it does not reach the server's log a second time
            if not started:
                response = server_error(scope["method"], scope["path"], exc)
                await response(scope, receive, send)
        finally:
            template = getattr(scope.get("route"), "path", None)
            if template is None:
                template = scope["path"] if scope["path"] in self._docs else "<unmatched>"
            self._observe(scope["method"], template, status, time.perf_counter() - start)

    async def _options(self, scope: Scope, receive: Receive, send: Send, start: float) -> None:
        """``OPTIONS``: 204 with ``Allow`` naming every method served on the path, by the
        table and by FastAPI's routes together (404 problem+json when none is)."""
        path = scope["path"]
        allowed = {
            m for m, entries in self._table.items() if any(e.regex.match(path) for e in entries)
        }
        allowed |= methods_on(self.api_routes, scope)
        if not allowed:
            await self._forward(scope, receive, send, start)
            return
        methods = ", ".join(with_head(allowed | {"OPTIONS"}))
        await Response(status_code=204, headers={"Allow": methods})(scope, receive, send)
        self._observe("OPTIONS", "<options>", 204, time.perf_counter() - start)

    def _other_methods(self, scope: Scope) -> list[str]:
        """Methods the table serves on this path, when FastAPI has no route for it (405)."""
        path = scope["path"]
        allowed = [
            method
            for method, entries in self._table.items()
            if method != scope["method"] and any(e.regex.match(path) for e in entries)
        ]
        if allowed and any(r.matches(scope)[0] is Match.FULL for r in self.api.router.routes):
            return []
        return with_head(allowed)


def check_table(routes: Sequence[Route], api_paths: Sequence[tuple[str, str]]) -> None:
    """Refuse a table in which two entries, or an entry and a FastAPI route, would both
    answer the same request (``api_paths``: the FastAPI routes' (method, path) pairs)."""
    seen: dict[tuple[str, str], Route] = {}
    for r in routes:
        key = (r.method, r.path)
        if key in seen:
            raise ConfigError(f"route {r.method} {r.path} is declared twice; declare it once")
        seen[key] = r
        for method, path in api_paths:
            if method == r.method and r.compiled.match(path):
                raise ConfigError(
                    f"route {r.method} {r.path} would hide the operations route {method} "
                    f"{path}; choose another path"
                )


def _check(name: str, adapter: TypeAdapter[Any], value: str) -> None:
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": ("path", name, *e["loc"])} for e in exc.errors()]
        raise invalid_request(errors) from None


def _headers_only(send: Send) -> Send:
    """``send`` without the body (a ``HEAD``: its headers, ``Content-Length`` included,
    are what the ``GET`` would send; it is counted in ``/metrics`` as that ``GET``)."""

    async def headless(message: Message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            message = {**message, "body": b""}
        await send(message)

    return headless


def _request_id(scope: Scope) -> str:
    """The request's ``X-Request-Id`` (a load generator's id of it; cut to 64 characters),
    or ``""``."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return bytes(value[:64]).decode("latin-1")
    return ""
