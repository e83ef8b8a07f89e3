"""Many clients write to one account with If-Match and retry on 412: the final balance is
the opening balance plus exactly the operations that were acknowledged."""

from __future__ import annotations

import asyncio
import random

import httpx

from tests.http.conftest import Live

CLIENTS = 8
OPS_PER_CLIENT = 12
OPENING = 50


async def _client(live: Live, seed: int, acked: list[int], conflicts: list[int]) -> None:
    rng = random.Random(seed)
    token = "0"
    c: httpx.AsyncClient = live.client
    for _ in range(OPS_PER_CLIENT):
        amount = rng.randint(1, 40)
        kind = "deposits" if rng.random() < 0.6 else "withdrawals"
        for _attempt in range(500):
            read = await c.get(
                "/accounts/acc", params={"wait": 1}, headers={"X-Consistency-Token": token}
            )
            assert read.status_code == 200
            r = await c.post(
                f"/accounts/acc/{kind}",
                json={"amount": amount},
                headers={"If-Match": read.headers["etag"]},
            )
            if r.status_code == 412:
                conflicts.append(1)
                token = str(max(int(token), int(read.headers["x-read-position"]) + 1))
                continue
            if r.status_code == 200:
                acked.append(amount if kind == "deposits" else -amount)
                token = r.headers["x-consistency-token"]
            else:  # a withdrawal beyond the balance: refused, nothing appended
                assert r.status_code == 409 and "insufficient funds" in r.json()["detail"]
            break
        else:
            raise AssertionError("a client never got its write in")


def test_if_match_retries_keep_every_acknowledged_operation(live: Live) -> None:
    assert (
        live.post("/accounts", json={"account_id": "acc", "opening_balance": OPENING}).status_code
        == 201
    )
    acked: list[int] = []
    conflicts: list[int] = []

    async def everyone() -> None:
        await asyncio.gather(*(_client(live, seed, acked, conflicts) for seed in range(CLIENTS)))

    live.run(everyone(), timeout=60)
    live.settle()
    assert conflicts, "the clients never raced; the test proves nothing"
    final = live.get("/accounts/acc").json()["balance"]
    assert final == OPENING + sum(acked)
    lines = live.get("/accounts/acc/statement").json()["lines"]
    assert sorted(line["amount"] for line in lines[1:]) == sorted(acked)  # one event per ack
    assert [line["version"] for line in lines] == list(range(1, len(acked) + 2))
