"""Clients contending across server processes (``serve --workers 2`` on PostgreSQL).

One Idempotency-Key sent to several processes at once: applied once. Each answer is the one
first given (200, the same command id, ``Idempotent-Replayed`` on the copies) or 409 "request
in progress" with Retry-After while another process runs it; never a second deposit. Before
the key was taken in the command's transaction (an advisory lock), 30 keys sent 8 times at
once deposited 40.

One account deposited to by eight clients at once, through both processes: every deposit is
acknowledged and counted once. The processes' batches lose races for the stream (run again
one command per transaction) and, now and then, deadlock in the database (a snapshot row
against the stream's lock; the database aborts one transaction, which runs again); before,
that deadlock reached the client as a 500."""

from __future__ import annotations

import threading
from collections import defaultdict

import httpx
import pytest

from tests.http.conftest import Server

pytestmark = pytest.mark.slow  # a uvicorn parent and two workers

KEYS, COPIES = 24, 8
HOT_CLIENTS, HOT_DEPOSITS = 8, 100


def test_a_key_sent_to_two_processes_at_once_is_applied_once(db_url: str) -> None:
    server = Server("--store", db_url, "--workers", "2")
    answers: dict[str, list[httpx.Response]] = defaultdict(list)
    try:
        opened = httpx.post(f"{server.url}/accounts", json={"account_id": "a"}, timeout=10)
        assert opened.status_code == 201, opened.text

        def send(key: str, go: threading.Barrier) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                go.wait()
                answers[key].append(
                    http.post(
                        "/accounts/a/deposits",
                        json={"amount": 1},
                        headers={"Idempotency-Key": key},
                    )
                )

        for k in range(KEYS):
            go = threading.Barrier(COPIES)
            sends = [threading.Thread(target=send, args=(f"k{k}", go)) for _ in range(COPIES)]
            for t in sends:
                t.start()
            for t in sends:
                t.join(20)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            tokens = []
            for key, got in answers.items():
                ok = [r for r in got if r.status_code == 200]
                busy = [r for r in got if r.status_code == 409]
                assert len(ok) + len(busy) == COPIES, [r.text for r in got]
                assert len({r.json()["command_id"] for r in ok}) <= 1, key  # one command
                assert sum(r.headers.get("idempotent-replayed") != "true" for r in ok) <= 1
                for r in busy:
                    assert r.json()["title"] == "request in progress"
                    assert r.headers["retry-after"] == "1"
                final = http.post(  # a retry after the rush: the one answer
                    "/accounts/a/deposits", json={"amount": 1}, headers={"Idempotency-Key": key}
                )
                assert final.status_code == 200 and final.headers["idempotent-replayed"] == "true"
                tokens.append(int(final.headers["x-consistency-token"]))
            got = http.get(
                "/accounts/a", headers={"X-Consistency-Token": str(max(tokens))}, params={"wait": 5}
            )
            assert got.status_code == 200 and got.json()["balance"] == KEYS
    finally:
        server.kill()


def test_one_hot_account_through_two_processes(db_url: str) -> None:
    server = Server("--store", db_url, "--workers", "2")
    statuses: list[int] = []
    tokens: list[int] = []
    try:
        opened = httpx.post(f"{server.url}/accounts", json={"account_id": "a"}, timeout=10)
        assert opened.status_code == 201, opened.text

        def deposits() -> None:
            with httpx.Client(base_url=server.url, timeout=20) as http:
                for _ in range(HOT_DEPOSITS):
                    r = http.post("/accounts/a/deposits", json={"amount": 1})
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        tokens.append(int(r.headers["x-consistency-token"]))

        clients = [threading.Thread(target=deposits) for _ in range(HOT_CLIENTS)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(60)
        assert statuses == [200] * (HOT_CLIENTS * HOT_DEPOSITS)
        got = httpx.get(
            f"{server.url}/accounts/a",
            headers={"X-Consistency-Token": str(max(tokens))},
            params={"wait": 5},
            timeout=10,
        )
        assert got.status_code == 200 and got.json()["balance"] == len(statuses)
    finally:
        server.kill()
