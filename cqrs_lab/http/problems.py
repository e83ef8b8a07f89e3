"""RFC 9457 problem details: every error the app answers is ``application/problem+json``.

Client mistakes get a 4xx naming the field or header at fault; a bug in the server gets a
500 with no stack trace. ``Problem`` is raised anywhere in a route and turned into the
response by the handlers :func:`install_handlers` registers.

>>> Problem(404, "not found", "no account 'a9'").status
404
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

__all__ = [
    "PROBLEM_JSON",
    "Problem",
    "field_errors",
    "install_handlers",
    "invalid_request",
    "problem_response",
    "response_for",
]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("cqrs_lab.http.errors")


class Problem(Exception):
    """An error answer: HTTP ``status``, a short ``title``, a ``detail`` sentence, extras."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(
    status: int,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body), status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def _loc(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) if parts else "body"


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": "amount", "message": "..."}]``."""
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


def validation_problem(errors: Sequence[Mapping[str, Any]]) -> Response:
    return response_for(invalid_request(errors))


def response_for(p: Problem) -> Response:
    """The problem+json response that answers ``p``."""
    return problem_response(p.status, p.title, p.detail, p.headers, **p.extra)


def install_handlers(app: FastAPI) -> None:
    """Turn every exception into problem+json; never leak a stack trace."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        return response_for(cast(Problem, exc))  # registered for Problem only

    async def on_validation(request: Request, exc: Exception) -> Response:
        errors = cast(RequestValidationError | ValidationError, exc).errors()
        return validation_problem(errors)

    async def on_http(request: Request, exc: Exception) -> Response:
        exc = cast(StarletteHTTPException, exc)
        titles = {404: "not found", 405: "method not allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}; see /docs"
        return problem_response(
            exc.status_code, titles.get(exc.status_code, "error"), detail, exc.headers
        )

    async def on_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "internal error", "the server failed; the error is in its log")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_error)
