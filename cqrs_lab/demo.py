"""``cqrs-lab demo``: the bank ledger (workload W1's shape) through the engine, summarised."""

from __future__ import annotations

import argparse
import random
from typing import Any

from cqrs_lab.core import Engine, ManualClock
from cqrs_lab.domains import bank
from cqrs_lab.errors import CommandRejected


def run_ledger(
    accounts: int = 1000, commands: int = 20_000, seed: int = 42, delivery: str = "effectively-once"
) -> dict[str, Any]:
    """Open ``accounts``, run a seeded deposit/withdraw mix, catch the read models up."""
    engine = Engine(clock=ManualClock(), seed=seed)
    app = bank.install(engine, delivery=delivery)
    for i in range(accounts):
        engine.dispatch(bank.OpenAccount(str(i), f"owner-{i}", 1000))
    rng = random.Random(seed)
    accepted = refused = 0
    for _ in range(commands):
        idx = rng.randrange(accounts)
        kind = "deposit" if rng.random() < 0.5 else "withdraw"
        amount = rng.randint(1, 1000)
        cmd: Any = (
            bank.Deposit(str(idx), amount) if kind == "deposit" else bank.Withdraw(str(idx), amount)
        )
        try:
            engine.dispatch(cmd)
            accepted += 1
        except CommandRejected:
            refused += 1
    applied = engine.pump()
    return {
        "accounts": accounts,
        "commands": commands,
        "accepted": accepted,
        "refused": refused,
        "events": engine.store.head_position,
        "applied": applied,
        "total_balance": app.balances.totals.get("total"),
        "balances_position": app.subscriptions["balances"].position,
    }


def _run(args: argparse.Namespace) -> int:
    summary = run_ledger(commands=args.commands, seed=args.seed)
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("ledger", help="run the bank ledger through the engine and summarise it")
    p.add_argument("--commands", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(run=_run)
