"""``cqrs-lab demo``: any domain's workload through the in-process engine, summarised.

The domain is taken by reference (default: the bank ledger, workload W1's shape) and wired
with the one :func:`~cqrs_lab.core.install`; its workload's setup creates the keys, its
seeded samplers draw the command mix, its views catch up, and its declared invariants are
checked.

>>> summary = run_domain("cqrs_lab.domains.inventory", keys=5, commands=40, seed=1)
>>> summary["domain"], summary["products"], summary["accepted"] + summary["refused"]
('inventory', 5, 40)
>>> summary["stock position"] == summary["events"], summary["invariants"]
(True, 'pass')
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from typing import Any

from cqrs_lab.core import Domain, Draw, Engine, ManualClock, install, load_domain
from cqrs_lab.errors import CommandRefused, ConfigError

__all__ = ["DEFAULT_DOMAIN", "run_domain"]

DEFAULT_DOMAIN = "cqrs_lab.domains.bank"


#: the most commands a demo sends (its log is kept in memory, about 1 KB an event)
MAX_COMMANDS = 10_000_000


def run_domain(
    domain: str | Domain = DEFAULT_DOMAIN,
    *,
    keys: int | None = None,
    commands: int = 20_000,
    seed: int = 42,
    delivery: str = "effectively-once",
) -> dict[str, Any]:
    """Create ``keys`` keys (default: the workload's population), send ``commands`` drawn
    from the workload's mix (keys uniform), catch every view up, check the invariants."""
    d = load_domain(domain)
    w = d.workload
    if w is None:
        raise ConfigError(
            f"domain={d.name!r} declares no workload; the demo draws its commands from "
            "Domain(workload=Workload(...))"
        )
    n = w.default_population if keys is None else keys
    if n < w.min_population:
        raise ConfigError(f"keys={n}: domain {d.name!r} needs at least {w.min_population}")
    if not 0 <= commands <= MAX_COMMANDS:  # in memory, about 1 KB an event: bounded
        raise ConfigError(f"commands={commands}: pass 0 to {MAX_COMMANDS:,} (held in memory)")
    engine = Engine(clock=ManualClock(), seed=seed)
    installed = install(engine, d, delivery=delivery)
    rng = random.Random(seed)
    draw = Draw(rng, w, keys=n, params=w.defaults())
    if w.setup is not None:
        for i in range(n):
            draw.index = draw.seq = i
            engine.dispatch(w.setup(draw))
    sent: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    weights = [k.weight for k in w.kinds]
    for seq in range(commands):
        kind = rng.choices(w.kinds, weights)[0]
        draw.index, draw.seq = rng.randrange(n), n + seq
        sent[kind.name] += 1
        try:
            engine.dispatch(kind.sample(draw))
        except CommandRefused:
            refused[kind.name] += 1
    applied = engine.run_until_idle()
    summary: dict[str, Any] = {
        "domain": d.name,
        w.population: n,
        "commands": commands,
        "accepted": commands - sum(refused.values()),
        "refused": sum(refused.values()),
        "events": engine.store.head_position,
        "applied": applied,
    }
    for k in w.kinds:
        summary[f"kind {k.name}"] = f"{sent[k.name]} sent, {refused[k.name]} refused"
    for name, sub in installed.subscriptions.items():
        summary[f"{name} position"] = sub.position
    failed = [inv.name for inv in d.invariants if not inv.check(engine).ok]
    summary["invariants"] = f"FAIL: {', '.join(failed)}" if failed else "pass"
    return summary


def _run(args: argparse.Namespace) -> int:
    summary = run_domain(args.domain, keys=args.keys, commands=args.commands, seed=args.seed)
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return 0 if summary["invariants"] == "pass" else 1


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        aliases=["ledger"],
        help="run a domain's workload through the engine and summarise it (default: the bank)",
    )
    p.add_argument(
        "--domain",
        default=DEFAULT_DOMAIN,
        metavar="REF",
        help="a module with a 'domain' ('cqrs_lab.domains.inventory') or 'module:object' "
        f"(default: {DEFAULT_DOMAIN})",
    )
    p.add_argument("--keys", type=int, default=None, help="default: the workload's population")
    p.add_argument("--commands", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(run=_run)
