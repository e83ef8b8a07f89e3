"""W1 — the bank ledger through the engine, beside eventsourcing and plain Python, one run.

Figures: write path through the command bus (commands/s) and catch-up of the balances
projection from position 0 under each delivery semantics (events/s). Medians of REPEATS runs;
every run is checked against the spec's expected totals and an independent fold.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.peers import es_ledger, plain_ledger
from benchmarks.workload_w1 import (
    ACCOUNTS,
    EXPECTED,
    OPENING_BALANCE,
    commands,
    expected_balances,
)
from cqrs_lab.core import DELIVERY_POLICIES, Engine, ManualClock
from cqrs_lab.domains import bank
from cqrs_lab.errors import CommandRefused

REPEATS = 5


def lab_write(cmds: list[tuple[int, str, int]]) -> tuple[float, Engine]:
    engine = Engine(clock=ManualClock(), seed=42)
    bank.install(engine, statements=False, saga=False)
    for idx in range(ACCOUNTS):
        engine.dispatch(bank.OpenAccount(str(idx), "", OPENING_BALANCE))
    messages: list[Any] = [
        bank.Deposit(str(i), a) if k == "deposit" else bank.Withdraw(str(i), a) for i, k, a in cmds
    ]
    dispatch = engine.bus.dispatch
    accepted = refused = 0
    start = time.perf_counter()
    for message in messages:
        try:
            dispatch(message)
            accepted += 1
        except CommandRefused:
            refused += 1
    elapsed = time.perf_counter() - start
    if (accepted, refused, engine.store.head_position) != (
        EXPECTED["accepted"], EXPECTED["refused"], EXPECTED["events"],
    ):  # fmt: skip
        raise RuntimeError(f"lab W1 wrong: {accepted} accepted, {refused} refused")
    return len(cmds) / elapsed, engine


def lab_catch_up(engine: Engine, delivery: str, truth: dict[int, int]) -> float:
    view = bank.Balances()
    view.name = f"balances-{delivery}"
    sub = engine.subscribe(view, delivery, batch_size=1024)
    start = time.perf_counter()
    applied = sub.pump()
    elapsed = time.perf_counter() - start
    if view.balances.to_dict() != {str(i): b for i, b in truth.items()}:
        raise RuntimeError(f"lab catch-up under {delivery}: balances differ from the fold")
    if view.totals.get("total") != EXPECTED["total"] or applied != EXPECTED["events"]:
        raise RuntimeError(f"lab catch-up under {delivery}: total or count wrong")
    return applied / elapsed


def median_of(fn: Callable[[], float]) -> float:
    values = []
    for _ in range(REPEATS):
        gc.collect()
        values.append(fn())
    return statistics.median(values)


def figure(metric: str, impl: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {"workload": "W1", "implementation": impl, "metric": metric,
            "value": round(value), "unit": unit, "repeats": REPEATS, **extra}  # fmt: skip


def run() -> Iterator[dict[str, Any]]:
    cmds = commands()
    truth = expected_balances(cmds)
    if sum(truth.values()) != EXPECTED["total"]:
        raise RuntimeError("the W1 generator disagrees with the spec")
    peers: dict[str, list[dict[str, float]]] = {"plain": [], "es-fastest": []}
    for _ in range(REPEATS):
        gc.collect()
        peers["plain"].append(plain_ledger.run(cmds))
        gc.collect()
        peers["es-fastest"].append(es_ledger.run(cmds, fastest=True))
    for runs in peers.values():
        for r in runs:
            if (r["accepted"], r["events"], r["total"]) != (
                EXPECTED["accepted"], EXPECTED["events"], EXPECTED["total"],
            ):  # fmt: skip
                raise RuntimeError(f"a peer computed W1 wrongly: {r}")
    peer = {
        name: {k: statistics.median(r[k] for r in runs) for k in ("write_per_s", "catch_up_per_s")}
        for name, runs in peers.items()
    }
    writes, engine = [], None
    for _ in range(REPEATS):
        engine = None
        gc.collect()
        rate, engine = lab_write(cmds)
        writes.append(rate)
    assert engine is not None
    lab_w = statistics.median(writes)
    es_w = peer["es-fastest"]["write_per_s"]
    yield figure(
        "write commands/s", "plain python (floor)", peer["plain"]["write_per_s"], "commands/s"
    )
    yield figure("write commands/s", "eventsourcing 9.5.6 fastest", es_w, "commands/s")
    yield figure("write commands/s", "cqrs_lab command bus", lab_w, "commands/s",
                 peer="eventsourcing 9.5.6 fastest", peer_value=round(es_w),
                 ratio=round(lab_w / es_w, 2), target_ratio=5.0)  # fmt: skip
    es_c = peer["es-fastest"]["catch_up_per_s"]
    yield figure(
        "catch-up events/s", "plain python (floor)", peer["plain"]["catch_up_per_s"], "events/s"
    )
    yield figure("catch-up events/s", "eventsourcing 9.5.6 fastest", es_c, "events/s")
    for delivery in DELIVERY_POLICIES:

        def one(d: str = delivery) -> float:
            assert engine is not None
            rate = lab_catch_up(engine, d, truth)
            engine.subscriptions.pop(f"balances-{d}")
            return rate

        rate = median_of(one)
        extra: dict[str, Any] = {"peer": "eventsourcing 9.5.6 fastest", "peer_value": round(es_c),
                                 "ratio": round(rate / es_c, 2)}  # fmt: skip
        if delivery == "effectively-once":
            extra["target"] = 1_000_000
        yield figure("catch-up events/s", f"cqrs_lab {delivery}", rate, "events/s", **extra)
