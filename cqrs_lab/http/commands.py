"""Running one command over HTTP: trace context, If-Match, Idempotency-Key, the queue (the
headers read by :mod:`cqrs_lab.http.command_headers`).

:class:`CommandGateway` is what every command route calls. The part that touches the engine
(:meth:`CommandGateway._execute`) runs on the driver's writer, inside the batch's store
transaction, so the If-Match check, the append and the idempotency record are one unit.

>>> parse_if_match('"3"'), parse_if_match("*")
(3, '*')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cqrs_lab.core import Command, CommandResult, Engine
from cqrs_lab.errors import (
    CommandRefused,
    ConcurrencyError,
    Overloaded,
    PreconditionFailed,
    Problem,
)
from cqrs_lab.http.command_headers import (
    TOKEN,
    TraceContext,
    parse_if_match,
    trace_context,
)
from cqrs_lab.http.driver import Driver
from cqrs_lab.http.metrics import HttpMetrics
from cqrs_lab.http.problems import PROBLEM_JSON, problem_body
from cqrs_lab.http.stages import StageTimings
from cqrs_lab.stores.durable_records import ResponseStore, StoredResponse

__all__ = ["CommandGateway", "TraceContext", "parse_if_match", "trace_context"]


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    media_type: str
    record: bool  # keep as the answer to the idempotency key


class CommandGateway:
    """Turns an HTTP request carrying a command into one queued engine dispatch.

    With ``stages`` (``--stage-timings``), the engine's handling is timed as stage ``command``.
    """

    def __init__(
        self,
        engine: Engine,
        driver: Driver,
        metrics: HttpMetrics,
        responses: ResponseStore,
        stages: StageTimings | None = None,
    ) -> None:
        self.engine = engine
        self.driver = driver
        self.metrics = metrics
        self.responses = responses
        self.stages = stages
        self.in_flight: set[str] = set()

    async def run(
        self,
        request: Request,
        command: Command,
        body: bytes,
        *,
        created: int = 200,
        stream: str | None = None,
        must_exist: str | None = None,
    ) -> Response:
        """Queue ``command``; ``must_exist`` (a stream) gives 404 when it has no events.

        ``If-Match`` is checked against ``stream`` (default: the stream the command writes,
        :meth:`stream_of`), in the same store transaction as the append."""
        name = type(command).__name__
        key = request.headers.get("idempotency-key")
        fingerprint = ""
        if key is not None:
            if len(request.headers.getlist("idempotency-key")) > 1:  # which one? not ours
                raise Problem(400, "bad header", "header Idempotency-Key: given twice")
            if not TOKEN.match(key):
                raise Problem(400, "bad header", "header Idempotency-Key: 1 to 200 visible ASCII")
            digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + body)
            fingerprint = digest.hexdigest()
            stored = self.responses.get(key)
            if stored is not None:
                return self._replay(key, stored, fingerprint, name)
            if key in self.in_flight:
                self.metrics.outcome(name, "in-flight")
                raise Problem(409, "request in progress", _IN_PROGRESS.format(key=key),
                              headers={"Retry-After": "1"})  # fmt: skip
        if_match = parse_if_match(request.headers.get("if-match"))
        if if_match is not None and len(request.headers.getlist("if-match")) > 1:
            raise Problem(400, "bad header", "header If-Match: given twice; send one ETag")
        trace = trace_context(request)

        def execute() -> _Outcome:
            return self._execute(
                command, trace, stream, if_match, must_exist, created, key, fingerprint
            )

        if key is not None:
            self.in_flight.add(key)
        try:
            outcome: _Outcome = await self.driver.submit(execute)
        except Overloaded as exc:
            self.metrics.outcome(name, "shed")
            raise Problem(
                429, "too many requests", str(exc), headers={"Retry-After": str(exc.retry_after)}
            ) from None
        finally:
            if key is not None:
                self.in_flight.discard(key)
        return Response(outcome.body, outcome.status, dict(outcome.headers), outcome.media_type)

    def _replay(self, key: str, stored: StoredResponse, fingerprint: str, name: str) -> Response:
        out = self._replayed(key, stored, fingerprint, name)
        return Response(out.body, out.status, dict(out.headers), out.media_type)

    def _replayed(self, key: str, stored: StoredResponse, fingerprint: str, name: str) -> _Outcome:
        """The stored answer to ``key`` again (422 if it answered another request)."""
        if stored.fingerprint != fingerprint:
            self.metrics.outcome(name, "key-reused")
            return _problem(422, "idempotency key reused", _REUSED.format(key=key), False)
        self.metrics.outcome(name, "replayed")
        headers = (*stored.headers, ("Idempotent-Replayed", "true"))
        media = PROBLEM_JSON if stored.status >= 400 else "application/json"
        return _Outcome(stored.status, stored.body, headers, media, False)

    def _execute(
        self,
        command: Command,
        trace: TraceContext,
        stream: str | None,
        if_match: int | str | None,
        must_exist: str | None,
        created: int,
        key: str | None,
        fingerprint: str,
    ) -> _Outcome:
        name = type(command).__name__
        store = self.engine.store
        held = self.responses.hold(key) if key is not None else None
        if key is not None and held is not None:  # a store other server processes share
            if not held:
                self.metrics.outcome(name, "in-flight")
                return _in_progress(key)
            stored = self.responses.get(key)  # another process answered while this queued
            if stored is not None:
                return self._replayed(key, stored, fingerprint, name)
        if must_exist is not None and store.stream_version(must_exist) == 0:
            self.metrics.outcome(name, "not-found")
            return _problem(404, "not found", f"no {must_exist.replace('-', ' ', 1)}", False)
        if if_match is not None and stream is None:
            stream = self.stream_of(command)
            if stream is None:
                return _problem(
                    400,
                    "bad header",
                    f"header If-Match: {name} writes no event stream here, so there is no "
                    "version to match; send it without If-Match",
                    False,
                )
        if if_match is not None and stream:
            actual = store.stream_version(stream)
            if (if_match == "*" and actual == 0) or (if_match != "*" and if_match != actual):
                return self._precondition_failed(name, stream, if_match, actual)
        try:
            # without If-Match a conflict is a race between the server's own writers (worker
            # processes sharing a store), not the client's: decide again on the stream as it
            # is now (the losing append holds the stream's lock, so the next try sees it)
            if isinstance(if_match, int) and stream:
                r = self._dispatch_matched(command, trace, stream, if_match)
            else:
                r = self._dispatch(command, trace, retries=2 if if_match is None else 0)
        except CommandRefused as exc:
            self.metrics.outcome(name, "refused")
            out = _problem(409, "command refused", exc.reason, True)
        except ConcurrencyError as exc:
            out = self._conflict(name, exc, if_match, stream)
        else:
            self.metrics.outcome(name, "accepted")
            corr = r.events[0].correlation_id if r.events else trace.correlation_id
            payload = {
                "command_id": r.command_id,
                "stream_id": r.stream_id,
                "stream_version": r.stream_version,
                "position": r.position,
                "events": [e.event_type for e in r.events],
                "correlation_id": corr or r.command_id,
            }
            headers = [
                ("X-Consistency-Token", str(r.position)),
                ("X-Correlation-Id", str(payload["correlation_id"])),
            ]
            if r.stream_id:
                headers.append(("ETag", f'"{r.stream_version}"'))
            out = _Outcome(
                created, json.dumps(payload).encode(), tuple(headers), "application/json", True
            )
        if key is not None and out.record:
            self.responses.put(key, StoredResponse(fingerprint, out.status, out.body, out.headers))
        return out

    def _conflict(
        self, name: str, exc: ConcurrencyError, if_match: int | str | None, stream: str | None
    ) -> _Outcome:
        """A stream that moved: 412 when it had moved past the version If-Match named before
        the decision (nothing decided on it), else 409 (a race at the append)."""
        if isinstance(exc, PreconditionFailed) and if_match is not None and stream:
            return self._precondition_failed(name, stream, if_match, exc.actual)
        self.metrics.outcome(name, "conflict")
        return _problem(
            409,
            "concurrent write",
            str(exc),
            False,
            expected_version=str(exc.expected),
            actual_version=exc.actual,
        )

    def _precondition_failed(
        self, name: str, stream: str, if_match: int | str, actual: int
    ) -> _Outcome:
        """412: the stream is not at the version If-Match named (``"*"``: any existing)."""
        self.metrics.outcome(name, "precondition-failed")
        expected = if_match if if_match != "*" else "any existing version"
        return _problem(
            412,
            "precondition failed",
            f"If-Match expected version {expected} of {stream}, but it is at version "
            f"{actual}; read it again and retry with the new ETag",
            False,
            expected_version=if_match,
            actual_version=actual,
            headers=(("ETag", f'"{actual}"'),),
        )

    def stream_of(self, command: Command) -> str | None:
        """The event stream ``command`` writes, which ``If-Match`` is checked against.

        A command class may declare it (``stream_of``, a function of the command); else the
        command is decided without being appended (``engine.bus.decide``, on private copies
        of the aggregates: nothing changes) and its stream is the aggregate it changed. A
        command its handler refuses gives ``""``: no check, the dispatch answers 409; one
        that changes no aggregate gives None.
        """
        declared = getattr(type(command), "stream_of", None)
        if callable(declared):
            return str(declared(command))
        try:
            decision = self.engine.bus.decide(command)
        except CommandRefused:
            return ""
        changed = decision.uow.changed()
        return None if changed is None else changed.id

    def _dispatch(self, command: Command, trace: TraceContext, retries: int) -> CommandResult:
        for _ in range(retries):  # lost a race for its stream: decide again
            with contextlib.suppress(ConcurrencyError):
                return self._dispatch_once(command, trace)
        return self._dispatch_once(command, trace)

    def _dispatch_matched(
        self, command: Command, trace: TraceContext, stream: str, version: int
    ) -> CommandResult:
        """The command decided, then appended only if it was decided on ``version`` of
        ``stream`` (If-Match): with several server processes on one store, another may
        append between the check of the stream's version and the loading of its aggregate,
        and the decision would then rest on a version the client never saw
        (:class:`~cqrs_lab.errors.PreconditionFailed`, 412). A move after the decision fails
        the append as usual (``ConcurrencyError``, 409)."""
        t0 = time.perf_counter()
        try:
            decision = self.engine.bus.decide(
                command, correlation_id=trace.correlation_id, metadata=trace.metadata
            )
            changed = decision.uow.changed()
            if changed is not None and changed.id == stream and changed.version != version:
                raise PreconditionFailed(stream, version, changed.version)
            return decision.commit()
        finally:
            if self.stages is not None:
                self.stages.add("command", type(command).__name__, time.perf_counter() - t0)

    def _dispatch_once(self, command: Command, trace: TraceContext) -> CommandResult:
        stages = self.stages
        if stages is None:
            return self.engine.dispatch(
                command, correlation_id=trace.correlation_id, metadata=trace.metadata
            )
        t0 = time.perf_counter()
        try:
            return self.engine.dispatch(
                command, correlation_id=trace.correlation_id, metadata=trace.metadata
            )
        finally:
            stages.add("command", type(command).__name__, time.perf_counter() - t0)


_REUSED = (
    "Idempotency-Key {key!r} was first used with another request body or route; use a new key "
    "for a different command"
)
_IN_PROGRESS = "a request with Idempotency-Key {key!r} is still running; retry later"


def _in_progress(key: str) -> _Outcome:
    """409 for a key another server process is running a request with right now."""
    detail = _IN_PROGRESS.format(key=key)
    return _problem(409, "request in progress", detail, False, (("Retry-After", "1"),))


def _problem(
    status: int,
    title: str,
    detail: str,
    record: bool,
    headers: tuple[tuple[str, str], ...] = (),
    **extra: Any,
) -> _Outcome:
    return _Outcome(
        status, problem_body(status, title, detail, **extra), headers, PROBLEM_JSON, record
    )
