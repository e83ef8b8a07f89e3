"""Honest positions: a consumer's position counts only events it has dealt with.

A subscription's :attr:`~cqrs_lab.core.Subscription.position` is the consistency token a
read is judged by (``ask(min_position=...)``, ``caught_up``, ``X-Stale``). It may count an
event only once the event was applied, parked as a dead letter or declared lost, never
because it was fetched, held by the transport or sitting in an inbox: else a read is marked
fresh without the write. Unlike the quiescent checks, this one holds at every moment, so the
property tests assert it after every step.

>>> from cqrs_lab.core import Engine, ManualClock
>>> from cqrs_lab.domains import bank
>>> from cqrs_lab.checks.application_log import ApplicationLog
>>> log = ApplicationLog()
>>> engine = Engine(clock=ManualClock(), seed=3, recorder=log)
>>> log.attach(engine)
>>> _ = bank.install(engine, delivery="at-most-once")
>>> _ = engine.dispatch(bank.OpenAccount("a1", "ann", 10))
>>> _ = engine.subscription("balances").poll()  # fetched, not applied
>>> check_positions(engine, log).ok
True
"""

from __future__ import annotations

from cqrs_lab.checks.application_log import ApplicationLog
from cqrs_lab.checks.base import decode, env_dict
from cqrs_lab.checks.report import CheckReport, Violation, verdict
from cqrs_lab.core import Engine
from cqrs_lab.core.partitions import partition_of

__all__ = ["check_positions"]


def check_positions(engine: Engine, log: ApplicationLog) -> CheckReport:
    """Every event a subscription handles, up to its position, was applied (and not rolled
    back), dead-lettered or declared lost: a position never runs ahead of the read model."""
    report = CheckReport("honest positions")
    envs = engine.store.read_all()
    for sub in engine.subscriptions.values():
        title = f"honest position: {sub.name}"
        if not log.verifiable(sub.name):
            continue
        handles = sub.consumer.handles
        done = set(log.net_applications(sub.name))
        done |= log.dead_lettered(sub.name) | log.lost_positions(sub.name)
        part = sub.partition
        found = []
        for env in envs[: sub.position]:
            if env.position in done or not handles(type(decode(engine, env))):
                continue
            if part is not None and partition_of(env.stream_id, part[1]) != part[0]:
                continue
            found.append(
                Violation(
                    f"{sub.name}: position {sub.position} counts event {env.position}, "
                    f"which was neither applied, parked nor declared lost",
                    (env_dict(env, subscription_position=sub.position),),
                )
            )
        report.add(
            verdict(
                title, found, ok=f"every handled event up to {sub.position} dealt with",
                bad="{n} events counted but never dealt with",
            )
        )  # fmt: skip
    return report
