"""The real server (uvicorn subprocess on 127.0.0.1) with the SQLite store, killed with
SIGKILL under load and started again: no acknowledged command is lost, and retrying the
unanswered ones with their Idempotency-Keys applies every command exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import Server

pytestmark = pytest.mark.slow  # a real uvicorn subprocess

ACCOUNTS = ("a", "b", "c", "d")
OPENING = 1000
WRITERS = 6


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("restarted server never became ready")


def _writer(url: str, n: int, stop: threading.Event, log: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        for i in range(10_000):
            if stop.is_set():
                return
            op = {
                "key": f"w{n}-{i}",
                "account": ACCOUNTS[(n + i) % len(ACCOUNTS)],
                "amount": i % 7 + 1,
            }
            log.append(op)  # recorded before sending: in doubt until answered
            try:
                r = client.post(
                    f"/accounts/{op['account']}/deposits",
                    json={"amount": op["amount"]},
                    headers={"Idempotency-Key": str(op["key"])},
                )
            except httpx.TransportError:
                return  # the server died under us: this one stays in doubt
            op["status"] = r.status_code
            op["body"] = r.json()


def test_sigkill_under_load_loses_no_acknowledged_command(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'bank.db'}"
    first = Server("--store", store)
    try:
        for account in ACCOUNTS:
            r = httpx.post(
                first.url + "/accounts", json={"account_id": account, "opening_balance": OPENING}
            )
            assert r.status_code == 201
        stop = threading.Event()
        logs: list[list[dict[str, Any]]] = [[] for _ in range(WRITERS)]
        threads = [
            threading.Thread(target=_writer, args=(first.url, n, stop, logs[n]))
            for n in range(WRITERS)
        ]
        for t in threads:
            t.start()
        time.sleep(1.5)
        first.kill()  # SIGKILL, mid-load
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        first.kill()
    ops = [op for log in logs for op in log]
    acked = [op for op in ops if op.get("status") == 200]
    in_doubt = [op for op in ops if "status" not in op]
    assert len(acked) > 50, "the load did not get going before the kill"
    assert all(op.get("status") in (200, None) for op in ops)

    second = Server("--store", store)
    try:
        _wait_ready(second)
        with httpx.Client(base_url=second.url, timeout=10) as client:
            lines = {a: client.get(f"/accounts/{a}/statement").json()["lines"] for a in ACCOUNTS}
            recorded = {
                (line["position"], line["version"], line["amount"])
                for a in ACCOUNTS
                for line in lines[a]
            }
            for op in acked:  # every acknowledged deposit is in the log, where it was acknowledged
                b = op["body"]
                assert (b["position"], b["stream_version"], op["amount"]) in recorded, op
            for a in ACCOUNTS:  # the read model agrees with the log it was rebuilt from
                balance = client.get(f"/accounts/{a}").json()["balance"]
                assert balance == sum(line["amount"] for line in lines[a])
            replay = client.post(
                f"/accounts/{acked[0]['account']}/deposits",
                json={"amount": acked[0]["amount"]},
                headers={"Idempotency-Key": acked[0]["key"]},
            )
            assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
            assert replay.json() == acked[0]["body"]
            last = 0
            for op in in_doubt:  # retried with the same key: done once, whether or not it had been
                r = client.post(
                    f"/accounts/{op['account']}/deposits",
                    json={"amount": op["amount"]},
                    headers={"Idempotency-Key": op["key"]},
                )
                assert r.status_code == 200
                last = max(last, int(r.headers["x-consistency-token"]))
            for a in ACCOUNTS:
                expected = OPENING + sum(op["amount"] for op in ops if op["account"] == a)
                got = client.get(
                    f"/accounts/{a}", params={"min_position": last, "wait": 5, "stale": "refuse"}
                )
                assert got.json()["balance"] == expected, a
            projections = client.get("/projections").json()["projections"]
            assert all(p["resumed_from"] > 0 for p in projections if p["name"] != "transfer-saga")
    finally:
        code, log = second.terminate()
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit -15) as it has since 0.29
    assert code in (0, -15)
    assert "driver stopped: 0 commands left unhandled" in log
