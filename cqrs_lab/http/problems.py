"""RFC 9457 problem details: every error the app answers is ``application/problem+json``.

Client mistakes get a 4xx naming the field or header at fault; a bug in the server gets a
500 with no stack trace (:func:`server_error`, the one 500 path of the app); the event store
failing (:class:`~cqrs_lab.errors.StoreFailure`: its database unreachable) a 503 with
``Retry-After`` (:func:`store_failed`). A
:class:`~cqrs_lab.errors.Problem` is raised anywhere in a route and turned into the response
by :func:`response_for`. :func:`problem_body` is the one place a problem body is built.

>>> problem_body(404, "not found", "no account 'a9'")
b'{"type": "about:blank", "title": "not found", "status": 404, "detail": "no account \\'a9\\'"}'
>>> response_for(Problem(404, "not found", "no account 'a9'")).media_type
'application/problem+json'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from cqrs_lab.errors import Problem, StoreFailure, TransactionAborted

__all__ = [
    "BODY_TIMED_OUT",
    "PROBLEM_JSON",
    "Problem",
    "client_closed",
    "field_errors",
    "install_handlers",
    "invalid_request",
    "methods_on",
    "problem_body",
    "problem_bytes",
    "problem_response",
    "response_for",
    "server_error",
    "store_failed",
    "with_head",
]

PROBLEM_JSON = "application/problem+json"
#: the scope key set on a request whose body stalled past the body timeout (a 408)
BODY_TIMED_OUT = "cqrs_lab.body_timed_out"
log = logging.getLogger("cqrs_lab.http.errors")


def problem_body(status: int, title: str, detail: str, **extra: Any) -> bytes:
    """The JSON body of a problem answer (also what an idempotency record keeps)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return json.dumps(body).encode()


def problem_bytes(
    status: int, title: str, detail: str, headers: Mapping[str, str] | None = None
) -> bytes:
    """A whole HTTP/1.1 problem+json answer with ``Connection: close``, for what the server
    writes to the socket itself, outside any route (a header or body timeout, a malformed
    request, a connection over the limit).

    >>> problem_bytes(408, "request timeout", "send faster").split(b"\\r\\n")[:2]
    [b'HTTP/1.1 408 Request Timeout', b'content-type: application/problem+json']
    """
    body = problem_body(status, title, detail)
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"content-type: {PROBLEM_JSON}",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def problem_response(
    status: int,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response; every error answer of the app is built here."""
    body = problem_body(status, title, detail, **extra)
    return Response(body, status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def response_for(p: Problem) -> Response:
    """The problem+json response that answers ``p``."""
    return problem_response(p.status, p.title, p.detail, p.headers, **p.extra)


def server_error(method: str, path: str, exc: BaseException) -> Response:
    """The one answer to a bug: logged once (with the traceback), 500 problem+json without it.

    Both entries of the app use it: a route of the table (:class:`~cqrs_lab.http.router.
    LabApp`) and a FastAPI route (through the handler :func:`install_handlers` registers).
    The request histogram of ``/metrics`` counts it under ``status="500"``.
    """
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return problem_response(500, "internal error", "the server failed; the error is in its log")


def store_failed(exc: StoreFailure | TransactionAborted) -> Response:
    """503 for a request the store could not serve, with ``Retry-After``: not the client's
    mistake and not a bug (a store failure stops the server, its supervisor restarts it; a
    transaction the database aborted is worth a retry at once)."""
    headers = {"Retry-After": str(exc.retry_after)}
    return problem_response(503, "store unavailable", str(exc), headers=headers)


def client_closed(scope: Mapping[str, Any]) -> Response:
    """The answer recorded for a request whose client went away before its body arrived
    (never sent: nobody is there to read it). ``/metrics`` counts it under ``status="499"``
    (nginx's "client closed request"), or ``status="408"`` when the server closed it because
    the body stalled (:mod:`cqrs_lab.http.protocol`); it is no error of the server, so
    nothing is logged and nothing was applied (the command was never parsed)."""
    status = 408 if scope.get(BODY_TIMED_OUT) else 499
    return problem_response(status, "client closed request", "the request body did not arrive")


def _loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) if parts else "body"


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": "amount", "message": "..."}]``.

    >>> field_errors([{"loc": ("query", "sku"), "msg": "Field required"}])
    [{'field': 'query parameter sku', 'message': 'Field required'}]
    """
    out = []
    for e in errors:
        loc = e.get("loc", ())
        where = loc[0] if loc else ""
        field = _loc(loc[1:] if where in ("query", "path", "header") else loc)
        if where in ("query", "path", "header"):
            field = f"{where} parameter {field}"
        message = str(e.get("msg", "invalid"))
        if e.get("type") == "extra_forbidden":
            message = "unknown field; remove it"
        out.append({"field": field, "message": message})
    return out


def invalid_request(errors: Sequence[Mapping[str, Any]]) -> Problem:
    """The :class:`Problem` for pydantic ``errors``: 400 for malformed JSON, else 422."""
    if any(e.get("type") == "json_invalid" for e in errors):
        msg = next(str(e.get("msg")) for e in errors if e.get("type") == "json_invalid")
        return Problem(
            400,
            "malformed JSON",
            f"the request body is not valid JSON: {msg}",
            errors=[{"field": "body", "message": msg}],
        )
    fields = field_errors(errors)
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    return Problem(422, "invalid request", f"{first['field']}: {first['message']}", errors=fields)


def install_handlers(app: FastAPI) -> None:
    """Turn every exception of a FastAPI route into problem+json; never leak a stack trace."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        return response_for(cast(Problem, exc))  # registered for Problem only

    async def on_validation(request: Request, exc: Exception) -> Response:
        errors = cast(RequestValidationError | ValidationError, exc).errors()
        return response_for(invalid_request(errors))

    async def on_http(request: Request, exc: Exception) -> Response:
        exc = cast(StarletteHTTPException, exc)
        titles = {404: "not found", 405: "method not allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}; see /docs"
        if exc.status_code == 405:
            allow = next((v for k, v in headers.items() if k.lower() == "allow"), "")
            methods = {m.strip() for m in allow.split(",") if m.strip()}
            # Starlette names one route's methods; the app's routes, flat, name them all
            flat = getattr(request.app.state, "routes", None) or request.app.router.routes
            methods |= methods_on(flat, request.scope)
            if methods:
                allow = ", ".join(with_head(methods))
                headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
                headers["Allow"] = allow
                detail = f"{request.method} is not allowed on {request.url.path}; use {allow}"
        return problem_response(
            exc.status_code, titles.get(exc.status_code, "error"), detail, headers or None
        )

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        return client_closed(request.scope)

    async def on_store(request: Request, exc: Exception) -> Response:
        return store_failed(cast(StoreFailure | TransactionAborted, exc))

    async def on_error(request: Request, exc: Exception) -> Response:
        return server_error(request.method, request.url.path, exc)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(StoreFailure, on_store)
    app.add_exception_handler(TransactionAborted, on_store)
    app.add_exception_handler(Exception, on_error)


def methods_on(routes: Iterable[Any], scope: MutableMapping[str, Any]) -> set[str]:
    """The methods that Starlette ``routes`` serve on the path of ``scope`` (any method)."""
    out: set[str] = set()
    for route in routes:
        if route.matches(scope)[0] is not Match.NONE:
            out.update(getattr(route, "methods", None) or ())
    return out


def with_head(methods: Iterable[str]) -> list[str]:
    """``methods`` sorted, with HEAD wherever GET is (the app answers HEAD as GET)."""
    named = set(methods)
    return sorted(named | {"HEAD"} if "GET" in named else named)
