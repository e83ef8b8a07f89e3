"""The app on the SQLite store, closed and opened again in-process: the log, the projections'
checkpoints, the dead letters and the Idempotency-Key answers all come back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cqrs_lab.core import RawEvent
from tests.http.conftest import TOKEN, Live


def test_reopened_store_resumes_projections_and_keeps_records(
    make_live: Callable[..., Live], tmp_path: Path
) -> None:
    store = f"sqlite:{tmp_path / 'lab.db'}"
    first = make_live(store=store, admin_token=TOKEN)
    first.post("/accounts", json={"account_id": "a", "opening_balance": 10})
    first.post("/accounts", json={"account_id": "b", "opening_balance": 0})
    dep = first.post("/accounts/a/deposits", json={"amount": 5}, headers={"Idempotency-Key": "k1"})
    assert dep.status_code == 200
    first.post("/transfers", json={"transfer_id": "t", "source": "a", "target": "b", "amount": 7})
    first.settle()
    assert first.get("/transfers/t").json()["status"] == "completed"
    broken = RawEvent("Deposited", 1, {"account_id": "b"})  # cannot be decoded: parked
    first.call(lambda: first.engine.store.append("account-b", [broken], 2))
    first.driver.notify()
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and len(first.get("/dead-letters").json()["dead_letters"]) < 2
    ):
        time.sleep(0.05)
    head = first.call(lambda: first.engine.store.head_position)
    first.close()

    again = make_live(store=store, admin_token=TOKEN)
    again.settle()
    stats = {p["name"]: p for p in again.get("/projections").json()["projections"]}
    assert all(stats[n]["resumed_from"] == head for n in ("balances", "statements"))
    assert again.get("/readyz").status_code == 200
    assert again.get("/accounts/a").json()["balance"] == 8  # 10 + 5 - 7
    assert again.get("/accounts/b").json()["balance"] == 7  # the saga did not move money twice
    replay = again.post(
        "/accounts/a/deposits", json={"amount": 5}, headers={"Idempotency-Key": "k1"}
    )
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == dep.content
    history = again.get("/dead-letters").json()["history"]
    assert {(h["subscription"], h["position"]) for h in history} >= {
        ("balances", head),
        ("statements", head),
    }
    assert {h["boot"] for h in history} == {1, 2}  # parked before the restart, and again after it
    nxt = again.post("/accounts/a/deposits", json={"amount": 1})
    assert nxt.json()["command_id"].startswith("b2-")  # ids stay unique across restarts
