"""Hostile clients at the socket level, against a real ``cqrs-lab serve`` on 127.0.0.1.

One server with short timeouts and a small connection limit (``--header-timeout 1
--body-timeout 1 --max-connections 16``) takes: trickling headers (slowloris), a stalled
body, a body trickled a byte at a time, a connection over the limit, a client that hangs up
mid-body, a too-large body sent in chunks (and the rest trickled), headers over 64 KiB, a
client that pipelines requests and reads no answer, a WebSocket upgrade, a malformed request
line. Each test takes a few seconds at most.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.http.conftest import TOKEN, Server

pytestmark = pytest.mark.slow  # a real uvicorn subprocess

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
LIMIT = 16
SLACK = 2.0


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server(
        "--header-timeout",
        str(HEADER_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
        "--max-connections",
        str(LIMIT),
        "--admin-token",
        TOKEN,
    )
    yield srv
    srv.kill()


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or ``timeout``); a reset is an error."""
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return out
        if not data:
            return out
        out += data


def _status(raw: bytes) -> int:
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
    assert m, raw[:200]
    return int(m.group(1))


def _problem(raw: bytes) -> dict[str, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    parsed: dict[str, object] = json.loads(body)
    return parsed


def _count(server: Server, route: str, status: int) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    pattern = (
        rf'http_request_duration_seconds_count{{method="POST",route="{re.escape(route)}",'
        rf'status="{status}"}} ([0-9.]+)'
    )
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def test_trickling_headers_are_closed_while_a_legitimate_request_succeeds(
    server: Server,
) -> None:
    n = 6
    closed_after: list[float] = []
    answers: list[bytes] = []
    lock = threading.Lock()

    def trickle() -> None:
        sock = _connect(server)
        start = time.monotonic()
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        got = b""
        try:
            for byte in b"X-Slow: " + b"a" * 40:  # one byte every 0.2 s: never complete
                sock.sendall(bytes([byte]))
                sock.settimeout(0.2)
                try:
                    got = sock.recv(65536)
                except TimeoutError:
                    continue
                break  # an answer, or the close
        except OSError:
            pass  # closed under us: the test measures when
        got += _read_all(sock, 1.0)
        with lock:
            closed_after.append(time.monotonic() - start)
            answers.append(got)
        sock.close()

    threads = [threading.Thread(target=trickle) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    r = httpx.get(server.url + "/livez", timeout=5)  # the slow ones do not block it
    assert r.status_code == 200
    for t in threads:
        t.join(HEADER_TIMEOUT + SLACK + 2)
    assert len(closed_after) == n
    assert max(closed_after) < HEADER_TIMEOUT + SLACK, closed_after
    for raw in answers:
        assert _status(raw) == 408
        assert "headers" in str(_problem(raw)["detail"])


def test_a_stalled_body_gets_408_and_nothing_is_applied(server: Server) -> None:
    before = _count(server, "/accounts", 408)
    sock = _connect(server)
    start = time.monotonic()
    sock.sendall(
        b"POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
        b'{"account_id": "stalled", '
    )
    raw = _read_all(sock, BODY_TIMEOUT + SLACK + 2)
    took = time.monotonic() - start
    sock.close()
    assert _status(raw) == 408 and took < BODY_TIMEOUT + SLACK
    assert "body" in str(_problem(raw)["detail"])
    assert _count(server, "/accounts", 408) == before + 1
    r = httpx.get(server.url + "/accounts/stalled", timeout=5)
    assert r.status_code == 404


def test_connections_over_the_limit_get_503_and_are_closed(server: Server) -> None:
    socks = [_connect(server) for _ in range(LIMIT + 4)]
    try:
        time.sleep(0.3)  # well within the header timeout: only the refused ones are answered
        answered, _, _ = select.select(socks, [], [], 0)
        refused = [_read_all(sock, 1.0) for sock in answered]
        assert len(refused) >= 4, len(refused)
        for raw in refused:
            assert _status(raw) == 503
            assert b"retry-after: 1" in raw.lower()
            assert "connections" in str(_problem(raw)["detail"])
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.5)  # the closes reach the server: the limit is free again
    assert httpx.get(server.url + "/livez", timeout=5).status_code == 200


def test_a_client_that_hangs_up_mid_body_is_499_not_500(server: Server) -> None:
    before = _count(server, "/accounts", 499), _count(server, "/faults", 499)
    for path in (b"/accounts", b"/faults"):
        sock = _connect(server)
        sock.sendall(
            b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Content-Length: 1000\r\n\r\n"
            b'{"account_'
        )
        time.sleep(0.2)
        sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        after = _count(server, "/accounts", 499), _count(server, "/faults", 499)
        if after == (before[0] + 1, before[1] + 1):
            break
        time.sleep(0.05)
    assert after == (before[0] + 1, before[1] + 1)
    assert _count(server, "/accounts", 500) == 0 and _count(server, "/faults", 500) == 0
    assert httpx.get(server.url + "/faults", timeout=5).json()["plan"] is None


def test_a_too_large_body_sent_in_chunks_reads_the_413_not_a_reset(server: Server) -> None:
    """The client keeps sending 3 MB after the 413: the server drains (bounded), then stops
    writing and closes gracefully. No reset on either side, the answer is read whole, and
    the connection ends with a clean close (kept alive, it would hold the client)."""
    for close in (b"", b"Connection: close\r\n"):
        with _connect(server) as sock:
            head = (
                b"POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + close
                + b"Content-Length: 3000000\r\n\r\n"
            )
            sent_error = None
            try:
                sock.sendall(head + b"x" * 200_000)
                for _ in range(40):
                    sock.sendall(b"x" * 65536)
            except OSError as exc:
                sent_error = exc
            sock.settimeout(5)
            raw = b""
            while data := sock.recv(65536):  # a reset raises ConnectionResetError; a hang, timeout
                raw += data
        assert sent_error is None, (close, sent_error)
        assert _status(raw) == 413, close
        assert _problem(raw)["status"] == 413


def test_a_body_trickled_a_byte_at_a_time_gets_408_within_the_body_timeout(
    server: Server,
) -> None:
    """Never a stall as long as the timeout, but the whole body not in within it."""
    sock = _connect(server)
    start = time.monotonic()
    sock.sendall(
        b"POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    raw = b""
    sock.settimeout(0.2)
    try:
        for _ in range(int((BODY_TIMEOUT + SLACK) / 0.2) + 5):
            sock.sendall(b" ")
            try:
                raw = sock.recv(65536)
            except TimeoutError:
                continue
            break
    except OSError:
        pass
    raw += _read_all(sock, 1.0)
    took = time.monotonic() - start
    sock.close()
    assert _status(raw) == 408 and took < BODY_TIMEOUT + SLACK, (took, raw[:200])
    assert "within" in str(_problem(raw)["detail"])


def test_draining_after_a_413_ends_within_the_body_timeout(server: Server) -> None:
    """A body over the limit is answered 413; the client then trickles the rest: the drain
    stops at the body's time and the connection closes (not days later)."""
    sock = _connect(server)
    start = time.monotonic()
    sock.sendall(
        b"POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000\r\n\r\n" + b"x" * 70_000
    )
    raw = b""
    sock.settimeout(0.2)
    closed = False
    try:
        for _ in range(int((BODY_TIMEOUT + 2.0 + SLACK) / 0.2) + 10):
            sock.sendall(b"x")
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                closed = True
                break
            raw += data
    except OSError:
        closed = True
    took = time.monotonic() - start
    sock.close()
    assert _status(raw) == 413
    assert closed and took < BODY_TIMEOUT + 2.0 + SLACK, took  # 2.0: the lingering close


@pytest.mark.parametrize("headers", [b"X-Big: " + b"a" * 200_000 + b"\r\n",
                                     b"X-Small: abcdefghijkl\r\n" * 20_000])  # fmt: skip
def test_headers_over_64_kib_get_431(server: Server, headers: bytes) -> None:
    sock = _connect(server)
    with contextlib.suppress(OSError):  # the server closed while the rest was being sent
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    raw = _read_all(sock)
    sock.close()
    assert _status(raw) == 431 and _problem(raw)["status"] == 431
    assert httpx.get(server.url + "/livez", timeout=5).status_code == 200


def test_a_client_that_reads_no_answers_is_disconnected(server: Server) -> None:
    """Requests pipelined into a full socket buffer, never read: the server stops waiting
    for the client after the body timeout and drops the connection."""
    sock = _connect(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
    start = time.monotonic()
    ended = False
    sock.settimeout(0.2)
    try:
        while time.monotonic() - start < BODY_TIMEOUT + SLACK + 3:
            sock.sendall(request * 50)  # fills the server's side until it stops reading
    except OSError:  # reset by the server, or our send timed out (the server stopped reading)
        pass
    while time.monotonic() - start < BODY_TIMEOUT + SLACK + 3 and not ended:
        time.sleep(0.2)
        try:
            sock.sendall(request)
        except OSError:
            ended = True  # the server dropped the connection
    took = time.monotonic() - start
    sock.close()
    assert ended and took < BODY_TIMEOUT + SLACK + 3, took


def test_a_websocket_upgrade_is_answered_as_plain_http(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(
        b"GET /accounts/nobody HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    raw = _read_all(sock)
    sock.close()
    assert _status(raw) == 404 and _problem(raw)["status"] == 404


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /x\x01y HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Length: ²\r\n\r\n".encode(),
        "POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Length: ١٢\r\n\r\n".encode(),
        b"POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    ],
    ids=["control-char", "content-length-sup2", "content-length-arabic", "content-length-huge"],
)
def test_a_malformed_request_is_answered_with_problem_json(
    server: Server, request_bytes: bytes
) -> None:
    sock = _connect(server)
    sock.sendall(request_bytes)
    raw = _read_all(sock)
    sock.close()
    assert _status(raw) in (400, 413)
    assert _problem(raw)["status"] in (400, 413)


@pytest.mark.parametrize("length", [b"0000000000000028", b"28 ", b" 28"])
def test_a_valid_content_length_with_zeros_or_white_space_is_read(
    server: Server, length: bytes
) -> None:
    body = b'{"account_id": "cl", "x": 1}'  # 28 bytes: refused 422 for "x", not 413
    sock = _connect(server)
    sock.sendall(
        b"POST /accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + length + b"\r\n\r\n" + body
    )
    raw = _read_all(sock)
    sock.close()
    assert _status(raw) == 422, raw[:300]
    assert _problem(raw)["errors"][0]["field"] == "x"  # type: ignore[index]


def test_a_consistency_token_with_white_space_around_it_is_read(server: Server) -> None:
    sock = _connect(server)
    sock.sendall(  # (httpx will not send a value with white space after it; a client may)
        b"GET /accounts/nobody HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Consistency-Token: 0 \t\r\n\r\n"
    )
    raw = _read_all(sock)
    sock.close()
    assert _status(raw) == 404, raw[:300]  # read as position 0: the account is not there


def test_the_log_has_no_traceback(server: Server) -> None:
    """Last in this module: the server stops, and its log holds no error and no traceback
    from all of the above."""
    code, log = server.terminate()
    assert code in (0, -15)  # uvicorn hands SIGTERM back once it has shut down
    assert "Traceback" not in log and "ERROR" not in log and "unhandled error" not in log, log[
        -3000:
    ]
