"""The server's guard against slow and hostile clients, at the connection level.

uvicorn times out idle keep-alive connections, but not a client that sends its headers or
its body a few bytes at a time (slowloris): each such connection holds a file descriptor
forever. :func:`guarded_protocol` makes a subclass of uvicorn's httptools protocol (what
``cqrs-lab serve`` passes as ``http=``) that bounds every connection:

- ``header_timeout``: the request line and headers must be complete within this many
  seconds of the connection opening (or of the request's first byte on a kept-alive
  connection); otherwise the answer is 408 problem+json and the connection is closed;
- ``max_header_bytes`` (:data:`MAX_HEADER_BYTES`): request line and headers larger than this
  are answered 431 problem+json and the connection closed, before the parser has buffered
  them (a header of 64 MB sent slowly or fast holds 64 KiB of the server, not 64 MB);
- ``body_timeout``: the whole body must arrive within this many seconds of its headers
  (bodies are small: 64 KiB at most unless ``--max-body-bytes`` says more): a client
  trickling it a byte at a time gets a 408 problem+json and the connection closed, however
  often it sends; the route reading it
  sees the client gone, and the request is counted under ``status="408"`` in
  ``/metrics``. The clock stops while the server itself is not reading (a pipelined
  request waiting for the one before it);
- a client that stops reading its answers (the server's writes held back by a full socket
  buffer) for ``body_timeout`` seconds is disconnected: pipelining requests and never
  reading the answers cannot hold a connection;
- ``max_connections``: a connection beyond this many open ones is answered 503
  problem+json (``Retry-After: 1``) and closed at once, so the file descriptors stay
  bounded (uvicorn's ``limit_concurrency`` would still accept it and keep it);
- uvicorn's own 400 for a malformed request line or header is problem+json too;
- a route that answers before the whole body has arrived (a 413) lets the client finish
  sending, within the body's time: up to :data:`DRAIN_BYTES` more are read and dropped,
  beyond that (or past ``body_timeout``) the server stops writing, drains for at most
  :data:`LINGER_SECONDS` and closes, so the client reads the answer instead of a connection
  reset;
- a request to upgrade the connection (WebSocket) is answered as a plain HTTP request (the
  server speaks no WebSocket; ``serve`` runs uvicorn with ``ws="none"``) and the connection
  closed after it.

Each timer is one ``call_later`` per connection that arms it: a request that arrives whole
in one read (the common case) arms nothing.

With ``stages`` (``serve --stage-timings``), each read the loop hands the protocol is timed
as the ``transport`` stage: httptools parsing the bytes and starting the request's task,
one callback of the loop before the app runs (the loop twin's first hop of a request).

>>> cls = guarded_protocol(header_timeout=10, body_timeout=10, max_connections=1000)
>>> cls.header_timeout, cls.body_timeout, cls.max_connections, cls.__mro__[2].__name__
(10.0, 10.0, 1000, 'HttpToolsProtocol')
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cqrs_lab.http.problems import BODY_TIMED_OUT, problem_bytes
from cqrs_lab.http.stages import StageTimings

__all__ = [
    "BODY_TIMED_OUT",
    "DRAIN_BYTES",
    "LINGER_SECONDS",
    "MAX_HEADER_BYTES",
    "GuardedProtocol",
    "guarded_protocol",
]

#: body bytes read and dropped after the answer before the connection is closed
DRAIN_BYTES = 1 << 20
#: seconds a closing connection keeps reading (and dropping) what the client still sends
LINGER_SECONDS = 2.0
#: the most bytes of request line and headers a request may send (as nginx's 4 x 8 KiB
#: buffers, with room: a browser's cookies and a tracing header fit many times over)
MAX_HEADER_BYTES = 64 * 1024
log = logging.getLogger("cqrs_lab.http.protocol")


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body timeouts, a connection limit,
    problem+json for its own answers and a graceful close (see the module docstring)."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int | None = None
    max_header_bytes: int = MAX_HEADER_BYTES
    #: times each read as the ``transport`` stage (None: untimed)
    stages: StageTimings | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard: asyncio.TimerHandle | None = None
        self._guarding = ""  # "headers", "body" or "" (no timer)
        self._in_headers = False
        self._header_bytes = 0  # of the request whose headers are coming
        self._body_deadline = 0.0  # the body of the current request must be in by then
        self._write_guard: asyncio.TimerHandle | None = None
        self._drained = 0
        self._lingering = False

    # -- the connection ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._closer = _GracefulClose(self, transport)
        limit = self.max_connections
        if limit is not None and len(self.connections) > limit:
            self._refuse(
                503,
                "too many connections",
                f"the server holds {limit} connections at most; retry shortly",
                {"Retry-After": "1"},
            )
            return
        self._arm("headers", self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._write_guard is not None:
            self._write_guard.cancel()
            self._write_guard = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_guard is None:
            self._write_guard = self.loop.call_later(self.body_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_guard is not None:
            self._write_guard.cancel()
            self._write_guard = None

    def _write_timed_out(self) -> None:
        self._write_guard = None
        log.debug("closing a connection: the client read nothing for %gs", self.body_timeout)
        self.transport.abort()  # it does not read: there is no answer it would see

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # closing: what the client still sends is read and dropped
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and cycle.more_body:
            self._drained += len(data)  # the rest of a body the route answered without
            if self._drained > DRAIN_BYTES:
                self._close_gracefully()
                return
        elif self._in_headers or cycle is None or not cycle.more_body:  # headers are coming
            end = data.find(b"\r\n\r\n")  # (counted before the parser buffers them)
            self._header_bytes += len(data) if end < 0 else end + 4
            if self._header_bytes > self.max_header_bytes:
                self._refuse(
                    431,
                    "request header fields too large",
                    f"the request line and headers exceed {self.max_header_bytes} bytes; "
                    "send fewer or shorter headers",
                )
                return
        if self.stages is None:
            super().data_received(data)
        else:
            started = time.perf_counter()
            super().data_received(data)
            self.stages.add("transport", "read", time.perf_counter() - started)
        if self._closing():
            if not self._lingering:
                self._disarm()
            return
        cycle = self.cycle
        if self._in_headers:
            if self._guarding != "headers":
                self._arm("headers", self.header_timeout)
        elif cycle is not None and cycle.more_body:  # coming, or drained after the answer
            if self._guarding != "body":
                self._arm("body", max(self._body_deadline - self.loop.time(), 0.01))
        elif self._guard is not None:
            self._disarm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._drained = 0

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        self._body_deadline = self.loop.time() + self.body_timeout
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self._closer  # type: ignore[assignment]

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "malformed request", f"{msg} Send a well-formed HTTP/1.1 request.")

    def _unsupported_upgrade_warning(self) -> None:
        # an Upgrade (WebSocket) the server does not speak: the request is answered as plain
        # HTTP, and the connection closed after it (the parser stopped at the upgrade)
        log.debug("an upgrade request answered as plain HTTP, its connection then closed")
        if self.cycle is not None:
            self.cycle.keep_alive = False

    # -- timers ------------------------------------------------------------------------
    def _arm(self, what: str, seconds: float) -> None:
        if self._guard is not None:
            self._guard.cancel()
        self._guarding = what
        fire = self._headers_timed_out if what == "headers" else self._body_timed_out
        self._guard = self.loop.call_later(seconds, fire)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None
        self._guarding = ""

    def _headers_timed_out(self) -> None:
        self._guard, self._guarding = None, ""
        if self.transport.is_closing():
            return
        log.debug("closing a connection: headers not complete within %gs", self.header_timeout)
        self._refuse(
            408,
            "request timeout",
            f"the request headers did not arrive within {self.header_timeout:g} s",
        )

    def _body_timed_out(self) -> None:
        self._guard, self._guarding = None, ""
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        now = self.loop.time()
        if self.flow.read_paused or cycle.waiting_for_100_continue:
            # the server itself is not reading: the client's time starts again when it does
            self._body_deadline = now + self.body_timeout
        if now < self._body_deadline:
            self._arm("body", max(self._body_deadline - now, 0.01))
            return
        if cycle.response_complete:  # answered without the body (a 413): stop draining it
            self._close_gracefully()
            return
        log.debug("closing a connection: the body not in within %gs", self.body_timeout)
        cycle.scope[BODY_TIMED_OUT] = True  # type: ignore[literal-required]
        started = cycle.response_started
        cycle.disconnected = True  # the route's receive() now says the client is gone
        cycle.message_event.set()
        if started:
            self._close_gracefully()
        else:
            self._refuse(
                408,
                "request timeout",
                f"the request body did not arrive within {self.body_timeout:g} s of its headers",
            )

    # -- answering and closing ---------------------------------------------------------
    def _refuse(
        self, status: int, title: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        """Write a problem+json answer straight to the socket, then close gracefully."""
        self.transport.write(problem_bytes(status, title, detail, headers))
        self._close_gracefully()

    def _close_gracefully(self) -> None:
        """Stop writing, read and drop what the client still sends for a bounded time,
        then close: an unread request in the kernel's buffer would turn the close into a
        reset, and the client would lose the answer written just before."""
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        self._disarm()
        self.flow.resume_reading()
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
        except (OSError, RuntimeError):  # already half-closed by the peer
            self.transport.close()
            return
        self._guard = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _closing(self) -> bool:
        return self._lingering or self.transport.is_closing()

    def eof_received(self) -> None:
        # the client has finished sending: a lingering close can end now
        if self._lingering:
            self.transport.close()
        return None


class _GracefulClose:
    """The transport as a request's cycle sees it: the same, except that closing it while
    the client is still sending the body (an answer with ``Connection: close`` given before
    the body was read, a 413) closes gracefully instead of resetting the connection."""

    __slots__ = ("_protocol", "_transport", "get_extra_info", "is_closing")

    def __init__(self, protocol: GuardedProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info

    def write(self, data: bytes) -> None:
        """Write, unless the connection is already closing: a client that hung up (or was
        dropped for reading nothing) before its answer was written is no server error
        (uvloop's transport raises on a write after the close)."""
        transport = self._transport
        if not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        cycle = self._protocol.cycle
        if cycle is not None and cycle.more_body and not cycle.disconnected:
            self._protocol._close_gracefully()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_protocol(
    header_timeout: float,
    body_timeout: float,
    max_connections: int | None,
    stages: StageTimings | None = None,
    max_header_bytes: int = MAX_HEADER_BYTES,
) -> type[GuardedProtocol]:
    """A :class:`GuardedProtocol` subclass with these settings (what uvicorn's ``http=``
    takes: it builds one protocol object per connection); ``stages``: time each read."""
    attrs = {
        "header_timeout": float(header_timeout),
        "body_timeout": float(body_timeout),
        "max_connections": max_connections,
        "max_header_bytes": int(max_header_bytes),
        "stages": stages,
    }
    return type("GuardedProtocol", (GuardedProtocol,), attrs)
