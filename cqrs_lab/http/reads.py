"""The query side over HTTP: read-your-writes waits, stale marking, ETags, JSON answers.

A query may name a position (``X-Consistency-Token`` header or ``?min_position=``) and a
wait budget (``?wait=`` seconds); the route waits until the projection reaches it, then
answers ``X-Stale: false``, or after the budget answers the data it has with ``X-Stale:
true`` (``?stale=allow``, the default) or 503 with ``Retry-After`` (``?stale=refuse``).
Every answer carries ``X-Read-Position`` and ``X-Head-Position`` (the last event of the
log): never silently stale. After a restart, while a read model replays the log up to where
it stood (``catch_up``: the head at start-up, or the position reached before the restart),
a read without a token is ``X-Stale: true`` too. Under at-most-once, once the read model's
consumer has declared events lost, ``X-Lost-Events`` says how many.

>>> query_parameters(2.0)[1]["schema"]["maximum"]
2.0
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cqrs_lab.core import Engine
from cqrs_lab.errors import CqrsLabError, Problem
from cqrs_lab.http.driver import Driver
from cqrs_lab.http.stages import StageTimings

__all__ = ["JsonResponse", "Reads", "etag_at", "int_param", "json_response", "query_parameters"]


def query_parameters(max_wait: float) -> list[dict[str, Any]]:
    """The read-your-writes parameters every query takes (documented in OpenAPI)."""
    return [
        {
            "name": "min_position",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": 10**15},
        },
        {
            "name": "wait",
            "in": "query",
            "required": False,
            "schema": {"type": "number", "minimum": 0, "maximum": max_wait},
        },
        {
            "name": "stale",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["allow", "refuse"], "default": "allow"},
        },
        {
            "name": "X-Consistency-Token",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": r"^\d{1,15}$"},
        },
    ]


_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?")  # what a float prints


def ascii_digits(raw: str, max_len: int = 15) -> bool:
    """Only ASCII digits, 1 to ``max_len`` of them (``str.isdigit`` also accepts ``²``, which
    ``int`` refuses, and ``int`` refuses more than 4,300 digits).

    >>> ascii_digits("42"), ascii_digits("²"), ascii_digits("٣"), ascii_digits("9" * 16)
    (True, False, False, False)
    """
    return 0 < len(raw) <= max_len and raw.isascii() and raw.isdigit()


def int_param(name: str, raw: str | None, lo: int, hi: int) -> int | None:
    if raw is None:
        return None
    if not ascii_digits(raw, len(str(hi))) or not lo <= int(raw) <= hi:
        raise Problem(422, "invalid request", f"{name}: a whole number from {lo} to {hi}")
    return int(raw)


class Reads:
    """Read-your-writes for the query routes: ``await reads.ask(request, query, projection)``
    returns the answer and the headers (``X-Read-Position``, ``X-Stale``) to send with it.
    With ``stages`` (``--stage-timings``), the engine's answer is timed as stage ``query``."""

    def __init__(
        self,
        engine: Engine,
        driver: Driver,
        max_wait: float,
        stages: StageTimings | None = None,
        catch_up: dict[str, int] | None = None,
    ) -> None:
        self.engine = engine
        self.driver = driver
        self.max_wait = max_wait
        self.stages = stages
        #: projection -> the position it must reach after a restart before a read without a
        #: token is fresh; an entry goes once reached (then the check costs nothing)
        self.catch_up = {k: v for k, v in (catch_up or {}).items() if v > 0}

    async def ask(
        self, request: Request, query: Any, projection: str
    ) -> tuple[Any, dict[str, str]]:
        if request.scope["query_string"]:
            q: Any = request.query_params
            if len(q.multi_items()) != len(q):  # which one was meant is not ours to guess
                twice = sorted({k for k, _ in q.multi_items() if len(q.getlist(k)) > 1})
                raise Problem(422, "invalid request", f"query parameter {twice[0]}: given twice")
        else:
            q = _NO_PARAMS
        target = int_param("query parameter min_position", q.get("min_position"), 0, 10**15)
        token = request.headers.get("x-consistency-token")
        if token is not None:
            if len(request.headers.getlist("x-consistency-token")) > 1:
                raise Problem(400, "bad header", "header X-Consistency-Token: given twice")
            token = token.strip(" \t")  # a field's value has no surrounding white space
            if not ascii_digits(token):
                raise Problem(400, "bad header", "header X-Consistency-Token: a position, digits")
            target = max(target or 0, int(token))
        wait = 0.0
        if (raw := q.get("wait")) is not None:
            # float() also reads Arabic-Indic digits, "1_0", " 1" and "nan": ASCII digits only
            wait = float(raw) if _SECONDS.fullmatch(raw) else -1.0
            if not 0 <= wait <= self.max_wait:
                raise Problem(
                    422,
                    "invalid request",
                    f"query parameter wait: seconds from 0 to {self.max_wait:g}",
                )
        mode = q.get("stale", "allow")
        if mode not in ("allow", "refuse"):
            raise Problem(422, "invalid request", "query parameter stale: 'allow' or 'refuse'")
        if target and target > self.engine.store.head_position:
            raise Problem(
                400,
                "position beyond the log",
                f"min_position {target} is beyond the last event "
                f"({self.engine.store.head_position}); send a token this server gave you",
            )
        if target and wait > 0:
            await self.driver.wait_for(projection, target, wait)
        if self.stages is None:
            result = self.engine.ask(query, min_position=target or 0)
        else:
            t0 = time.perf_counter()
            try:
                result = self.engine.ask(query, min_position=target or 0)
            finally:
                self.stages.add("query", type(query).__name__, time.perf_counter() - t0)
        stale = result.stale
        if self.catch_up and not stale and projection in self.catch_up:
            if result.position < self.catch_up[projection]:
                stale = True  # replaying after a restart: behind what it had already shown
                target = max(target or 0, self.catch_up[projection])
            else:
                del self.catch_up[projection]
        headers = {
            "X-Read-Position": str(result.position),
            "X-Head-Position": str(self.engine.store.head_position),
            "X-Stale": "true" if stale else "false",
        }
        if result.lost:  # at-most-once: events this read model will never reflect
            headers["X-Lost-Events"] = str(result.lost)
        if stale and mode == "refuse":
            raise Problem(
                503,
                "not caught up",
                f"projection {projection} is at position {result.position}, not yet at "
                f"{target}; retry, wait longer (?wait=) or accept stale data (?stale=allow)",
                headers={**headers, "Retry-After": "1"},
                read_position=result.position,
                min_position=target,
            )
        return result.value, headers


def etag_at(engine: Engine, stream: str, position: int) -> str | None:
    """The stream version as of ``position`` of the read model (what a read reflects).

    None when the stream cannot be read back (an event its registry cannot decode): the
    read still answers, without an ETag to make a conditional write on.
    """
    store = engine.store
    tail = getattr(store, "stream_tail", None)  # a store whose reads cost a round trip each
    try:
        if tail is not None:
            version, last_position = tail(stream)
            if version == 0:
                return None
            if last_position <= position:
                return f'"{version}"'
        else:
            version = store.stream_version(stream)
            if version == 0:
                return None
            last = store.read_stream(stream, version - 1)
            if last and last[0].position <= position:
                return f'"{version}"'
        seen = [e.stream_version for e in store.read_stream(stream) if e.position <= position]
    except CqrsLabError:
        return None
    return f'"{seen[-1]}"' if seen else None


_NO_PARAMS: dict[str, str] = {}


class JsonResponse(Response):
    """A JSON response built without Starlette's header normalisation (the hot path)."""

    media_type = "application/json"

    def __init__(
        self, body: bytes, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        if headers:
            raw.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
        self.raw_headers = raw


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JsonResponse(json.dumps(data).encode(), status, headers)
