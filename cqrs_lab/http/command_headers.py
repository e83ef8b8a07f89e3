"""A command request's headers: its trace context (W3C ``traceparent`` or
``X-Correlation-Id``) and its ``If-Match``, each read or answered with a 400 Problem.

>>> parse_if_match('"3"'), parse_if_match("*"), parse_if_match('W/"12"')
(3, '*', 12)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from cqrs_lab.errors import Problem

__all__ = ["TOKEN", "TraceContext", "parse_if_match", "trace_context"]

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
#: a correlation id or an idempotency key: 1 to 200 visible ASCII characters
TOKEN = re.compile(r"^[\x21-\x7e]{1,200}$")
_ETAG = re.compile(r'^(?:W/)?"([0-9]{1,15})"$')  # ASCII digits: \d takes "²", int() not


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The correlation id a command's events carry, and the metadata it came with."""

    correlation_id: str | None
    metadata: Mapping[str, Any] | None


def trace_context(request: Request) -> TraceContext:
    """W3C ``traceparent`` (its trace id is the correlation id), else ``X-Correlation-Id``.

    With neither, the engine uses the command id as the correlation id. A malformed
    ``traceparent`` is ignored, as the W3C recommendation says; a bad correlation id is 400.
    """
    headers = request.headers
    tp = headers.get("traceparent")
    if tp is not None:
        m = _TRACEPARENT.match(tp.strip().lower())
        if m and m.group(1) != "0" * 32 and m.group(2) != "0" * 16:
            return TraceContext(m.group(1), {"traceparent": m.group(0)})
    corr = headers.get("x-correlation-id")
    if corr is not None:
        if not TOKEN.match(corr):
            raise Problem(
                400, "bad header", "header X-Correlation-Id: 1 to 200 visible ASCII characters"
            )
        return TraceContext(corr, {"correlation_id": corr})
    return TraceContext(None, None)


def parse_if_match(value: str | None) -> int | str | None:
    """``"N"`` (or ``W/"N"``) -> N, ``*`` -> ``"*"``, absent -> None; else a 400 Problem."""
    if value is None:
        return None
    value = value.strip()
    if value == "*":
        return "*"
    m = _ETAG.match(value)
    if m is None:
        raise Problem(
            400,
            "bad header",
            f"header If-Match: {value!r} is not an entity tag; send the ETag of a read, "
            f'such as "3", or *',
        )
    return int(m.group(1))
