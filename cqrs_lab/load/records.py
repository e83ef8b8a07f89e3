"""Raw measurements of a load test: one row per request, one history record per operation.

Locust's own statistics round response times into buckets; the lab keeps every request's
exact latency instead. :class:`RunRecorder` is attached to Locust's ``request`` event by the
locustfile and writes, per Locust process, two files into the run's ``records`` folder:

- ``requests-<pid>.csv``: columns :data:`REQUEST_COLUMNS`, every time in seconds (``start``
  and ``end`` on the machine's monotonic clock; ``latency_s`` exactly as Locust measured it;
  ``lateness_s``, for a send the open model scheduled, how late it went out), and for an
  answer that is a problem, its ``problem`` title (:func:`problem_title`), and its
  ``request_id``, the ``X-Request-Id`` it was sent with (the server's stage timings name
  it: :mod:`cqrs_lab.load.answer_delay`);
- ``history-<pid>.jsonl``: the history format of :mod:`cqrs_lab.checks.history`.

It imports nothing from Locust, so it can be tested and used without gevent.

>>> import tempfile
>>> rec = RunRecorder(tempfile.mkdtemp(), process="t")
>>> rec.on_request("POST", "reserve", 1.25, 10, None, {"kind": "writer"}, None)
>>> rec.close()
>>> header, row = rec.requests_path.read_text().splitlines()
>>> dict(zip(header.split(","), row.split(",")))["latency_s"]
'0.0012500'
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import IO, Any, Literal

from cqrs_lab.checks.history import Operation

__all__ = [
    "READ_VALUE_BYTES",
    "REQUEST_COLUMNS",
    "RunRecorder",
    "history_record",
    "problem_title",
    "status_of",
]

#: a read's answer is kept in its history record up to this many bytes of JSON
READ_VALUE_BYTES = 512

#: columns of ``requests-*.csv``
REQUEST_COLUMNS = (
    "start",
    "end",
    "kind",
    "name",
    "method",
    "status",
    "latency_s",
    "lateness_s",
    "bytes",
    "error",
    "problem",
    "token",
    "read_position",
    "stale",
    "process",
    "request_id",
)


def status_of(response: Any) -> int:
    """The HTTP status of a Locust response object (0 when no response arrived)."""
    code = getattr(response, "status_code", 0)
    return int(code) if isinstance(code, int) else 0


def problem_title(status: int, response: Any) -> str:
    """The ``title`` of a 4xx/5xx problem+json answer (``""`` for any other): it tells a
    refusal (``command refused``) from a lost race (``concurrent write``), both 409.

    >>> class Answer:
    ...     def json(self): return {"title": "command refused", "status": 409}
    >>> problem_title(409, Answer()), problem_title(200, Answer())
    ('command refused', '')
    """
    if status < 400:
        return ""
    body = _json(response)
    title = body.get("title") if isinstance(body, dict) else None
    return str(title)[:80] if title else ""


def history_record(
    ctx: dict[str, Any], start: float, end: float, status: int, position: Any, response: Any
) -> Operation:
    """The history record of one request: ``ctx`` names ``session``, ``op``, ``key`` (the
    domain's key the operation touched) and the written ``value`` (the command kind); a 2xx
    with its position is ``ok``, a 4xx ``failed`` (it did not happen), anything else (5xx,
    no answer) ``unknown``. An ok write's value is ``{"kind": ..., "stream": ...}`` (the
    stream its events went to, from the answer); an ok read's value is the answer itself
    when it is small (at most :data:`READ_VALUE_BYTES`), else None.

    >>> history_record({"session": "s", "op": "write", "key": "a", "value": "deposit"},
    ...                0.0, 0.1, 200, "7", None).position
    7
    """
    pos = int(position) if position is not None and str(position).isdigit() else None
    outcome: Literal["ok", "failed", "unknown"] = "unknown"
    if 200 <= status < 300 and pos is not None:
        outcome = "ok"
    elif 400 <= status < 500:
        outcome = "failed"
    op: Literal["read", "write"] = "read" if ctx["op"] == "read" else "write"
    value = ctx.get("value")
    if outcome == "ok" and response is not None:
        body = _json(response)
        if op == "read":
            small = len(getattr(response, "content", b"") or b"") <= READ_VALUE_BYTES
            value = body if small else None
        elif isinstance(body, dict) and "stream_id" in body:
            value = {"kind": value, "stream": body["stream_id"]}
    position_ok = pos if outcome == "ok" else None
    return Operation(
        str(ctx["session"]), op, ctx.get("key"), start, max(end, start), outcome, value, position_ok
    )


def _json(response: Any) -> Any:
    try:
        return response.json()
    except (AttributeError, ValueError, TypeError):
        return None


class RunRecorder:
    """Appends exact request rows and history operations to this process's files.

    ``context`` (Locust's per-request context dict) may carry ``kind`` (user kind),
    ``scheduled`` (monotonic time the open model meant to send at), ``token``, and, for a
    history record, ``session``, ``op`` (read or write), ``key`` and ``value``.
    """

    def __init__(self, directory: str | Path, *, process: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        tag = process if process is not None else str(os.getpid())
        self.requests_path = self.directory / f"requests-{tag}.csv"
        self.history_path = self.directory / f"history-{tag}.jsonl"
        self._req: IO[str] = open(self.requests_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._hist: IO[str] = open(self.history_path, "w", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._req)
        self._csv.writerow(REQUEST_COLUMNS)
        self.tag = tag
        self.rows = 0
        self.closed = False

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        """Locust ``request`` event listener: one CSV row with the exact latency."""
        if self.closed:
            return
        end = time.monotonic()
        ctx = context or {}
        latency = float(response_time or 0.0) / 1e3  # Locust measures milliseconds
        start = end - latency
        scheduled = ctx.get("scheduled")
        late = "" if scheduled is None else f"{max(start - float(scheduled), 0.0):.7f}"
        headers = getattr(response, "headers", None) or {}
        read_pos = headers.get("X-Read-Position") if request_type == "GET" else None
        stale = headers.get("X-Stale") if request_type == "GET" else None
        token = headers.get("X-Consistency-Token") if request_type != "GET" else ctx.get("token")
        error = "" if exception is None else f"{type(exception).__name__}: {exception}"[:200]
        status = status_of(response)
        self._csv.writerow(
            (
                f"{start:.6f}",
                f"{end:.6f}",
                ctx.get("kind", ""),
                name,
                request_type,
                status,
                f"{latency:.7f}",
                late,
                int(response_length or 0),
                error,
                problem_title(status, response),
                token or "",
                read_pos or "",
                stale or "",
                self.tag,
                ctx.get("request_id", ""),
            )
        )
        self.rows += 1
        if "op" in ctx:
            pos = headers.get("X-Read-Position" if ctx["op"] == "read" else "X-Consistency-Token")
            self.operation(history_record(ctx, start, end, status, pos, response))

    def operation(self, op: Operation) -> None:
        """Append one history record (validated by :class:`Operation`)."""
        if not self.closed:
            self._hist.write(json.dumps(op.to_dict(), default=str) + "\n")

    def flush(self) -> None:
        if not self.closed:
            self._req.flush()
            self._hist.flush()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._req.close()
            self._hist.close()
