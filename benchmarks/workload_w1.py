"""Workload W1 exactly as ../shared/bench/README.md defines it (shared by the lab and its peers)."""

from __future__ import annotations

import random

ACCOUNTS = 1000
OPENING_BALANCE = 1000
COMMANDS = 100_000
SEED = 42
EXPECTED = {"accepted": 94_291, "refused": 5_709, "events": 95_291, "total": 4_618_070}


def commands(n: int = COMMANDS, seed: int = SEED) -> list[tuple[int, str, int]]:
    """``(account index, "deposit"|"withdraw", amount)`` drawn in the spec's order."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        idx = rng.randrange(ACCOUNTS)
        kind = "deposit" if rng.random() < 0.5 else "withdraw"
        amount = rng.randint(1, 1000)
        out.append((idx, kind, amount))
    return out


def expected_balances(cmds: list[tuple[int, str, int]]) -> dict[int, int]:
    """The independent answer: balances after the commands, withdrawals refused when short."""
    balances = dict.fromkeys(range(ACCOUNTS), OPENING_BALANCE)
    for idx, kind, amount in cmds:
        if kind == "deposit":
            balances[idx] += amount
        elif amount <= balances[idx]:
            balances[idx] -= amount
    return balances
