"""The floor: W1 in plain Python (dict of balances, list log, a version check per append)."""

from __future__ import annotations

import time

from benchmarks.workload_w1 import ACCOUNTS, OPENING_BALANCE


def run(cmds: list[tuple[int, str, int]]) -> dict[str, float]:
    log: list[tuple[int, int, str, int]] = []
    versions: dict[int, int] = {}
    balances: dict[int, int] = {}
    for idx in range(ACCOUNTS):
        log.append((idx, 1, "opened", OPENING_BALANCE))
        versions[idx] = 1
        balances[idx] = OPENING_BALANCE
    accepted = 0
    start = time.perf_counter()
    for idx, kind, amount in cmds:
        expected = versions[idx]
        balance = balances[idx]
        if kind == "withdraw":
            if amount > balance:
                continue
            balance -= amount
        else:
            balance += amount
        if versions[idx] != expected:  # the optimistic check an append makes
            raise RuntimeError("concurrency conflict")
        versions[idx] = expected + 1
        log.append((idx, expected + 1, kind, amount))
        balances[idx] = balance
        accepted += 1
    write = time.perf_counter() - start
    start = time.perf_counter()
    view: dict[int, int] = {}
    for idx, _, kind, amount in log:
        if kind == "withdraw":
            view[idx] -= amount
        elif kind == "deposit":
            view[idx] += amount
        else:
            view[idx] = amount
    catch_up = time.perf_counter() - start
    return {
        "write_per_s": len(cmds) / write,
        "catch_up_per_s": len(log) / catch_up,
        "accepted": accepted,
        "events": len(log),
        "total": sum(view.values()),
    }
