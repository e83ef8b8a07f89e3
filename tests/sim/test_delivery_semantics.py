"""Consumer crashes under each delivery semantics, judged from the log, not from counters.

The truth is derived independently of the projection code: balances from the events in the
store (opened + deposits - withdrawals). After the run every partition is restarted and
drained, then the applications recorded per log position tell what each semantics did.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from cqrs_lab.domains import bank
from cqrs_lab.sim import CrashSpec, Dist, SimResult, simulate
from tests.sim.helpers import plain

ACCOUNTS = 200


def _run(delivery: str) -> SimResult:
    s = plain(6.0, 300.0, balances_only=True)
    s = s.with_(workload=dataclasses.replace(s.workload, population=ACCOUNTS))
    extra = {"checkpoint_interval": 0.5} if delivery == "at-least-once" else {}
    return simulate(
        s.with_projection(
            "balances",
            delivery=delivery,
            partitions=4,
            consumers=2,
            batch_size=64,
            per_batch=Dist.fixed(0.01),
            per_event=Dist.fixed(0.0005),
            crash=CrashSpec(Dist("exponential", 0.7), Dist.fixed(0.1)),
            **extra,
        )
    )


def _drain(result: SimResult) -> None:
    for sub in result.engine.subscriptions.values():
        sub.restart()
    result.engine.pump()


def _truth(result: SimResult) -> dict[str, int]:
    balances: dict[str, int] = {}
    for env in result.engine.store.read_all(0):
        e = env.payload
        if isinstance(e, bank.AccountOpened):
            balances[e.account_id] = e.opening_balance
        elif isinstance(e, bank.Deposited):
            balances[e.account_id] += e.amount
        elif isinstance(e, bank.Withdrawn):
            balances[e.account_id] -= e.amount
    return balances


def _applications(result: SimResult) -> tuple[Counter[int], range]:
    run_positions = range(ACCOUNTS + 1, result.engine.store.head_position + 1)
    counts = Counter(r[2] for r in result.recorder.rows if r[0] == "balances" and not r[10])
    return counts, run_positions


def test_effectively_once_applies_every_event_exactly_once_despite_crashes() -> None:
    result = simulate_and_drain("effectively-once")
    counts, positions = _applications(result)
    assert result.summary_dict()["consumer_crashes"] >= 3
    assert all(counts[p] == 1 for p in positions)
    assert result.engine.projection("balances").balances.to_dict() == _truth(result)


def test_at_least_once_loses_nothing_but_applies_some_events_twice() -> None:
    result = simulate_and_drain("at-least-once")
    counts, positions = _applications(result)
    assert all(counts[p] >= 1 for p in positions)
    assert sum(1 for p in positions if counts[p] >= 2) > 0
    assert result.summary_dict()["lost"] == 0


def test_at_most_once_never_applies_twice_but_loses_events() -> None:
    result = simulate_and_drain("at-most-once")
    counts, positions = _applications(result)
    assert all(counts[p] <= 1 for p in positions)
    missing = [p for p in positions if counts[p] == 0]
    assert missing and len(missing) == result.summary_dict()["lost"]
    assert result.engine.projection("balances").balances.to_dict() != _truth(result)


def simulate_and_drain(delivery: str) -> SimResult:
    result = _run(delivery)
    _drain(result)
    return result
