"""Scripted incidents: poison events, a schema drift and its fix, a projection rebuild.

* **Poison**: at each given time a deposit is appended whose envelope carries
  ``{"poison": True}``; every projection handler fails on it, the engine retries it with
  backoff (a retry storm holding up its partition) and parks it as a dead letter.
* **Schema drift**: a newer producer appends ``Deposited`` at schema version 2 (a
  ``currency`` field) to its own streams; the readers know version 1 only, so each such
  event fails to decode and is dead-lettered. At ``fix_at`` the fix is deployed: the
  registry learns :class:`DepositedV2`, every projection that handles ``Deposited`` gets a
  handler for it, and the parked events are replayed from the dead-letter store.
* **Rebuild**: at ``at`` the projection is rebuilt from position 0, in place (readers see an
  emptied model refilling) or, with one partition, in a shadow copy swapped in when caught up.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ClassVar

import simpy

from cqrs_lab.core import Engine, Envelope, Event, RawEvent
from cqrs_lab.domains import bank
from cqrs_lab.sim.consumers import GroupDriver, InjectedFault
from cqrs_lab.sim.recorder import ApplicationRecorder
from cqrs_lab.sim.scenario import DriftSpec, RebuildSpec

__all__ = ["DepositedV2", "drift", "poison", "poison_guard", "rebuild"]

Incident = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class DepositedV2(Event):
    """``Deposited`` as the newer producer writes it (schema version 2, with a currency)."""

    type_name: ClassVar[str | None] = "Deposited"
    schema_version: ClassVar[int] = 2
    account_id: str
    amount: int
    currency: str = "EUR"


def poison_guard(driver: GroupDriver) -> None:
    """Make every handler of the driver's projection fail on envelopes marked poison."""
    handlers = driver.projection.handlers
    for event_type, handler in list(handlers.items()):

        def guarded(e: Any, env: Envelope, _h: Callable[[Any, Any], None] = handler) -> None:
            if env.metadata.get("poison"):
                raise InjectedFault(f"poison event at position {env.position}")
            _h(e, env)

        handlers[event_type] = guarded


def poison(
    env: simpy.Environment, engine: Engine, times: tuple[float, ...], incident: Incident
) -> Generator[simpy.Event, Any, None]:
    """Append one poison deposit (to account 0) at each of ``times``."""
    for t in times:
        yield env.timeout(max(0.0, t - env.now))
        result = engine.bus.dispatch(bank.Deposit("0", 1), metadata={"poison": True})
        incident("poison", "log", f"poison event at position {result.position}")


def drift(
    env: simpy.Environment,
    engine: Engine,
    spec: DriftSpec,
    drivers: list[GroupDriver],
    accounts: int,
    rng: random.Random,
    incident: Incident,
) -> Generator[simpy.Event, Any, None]:
    """The newer producer's process, and the fix at ``spec.fix_at``."""
    if spec.fix_at is not None:
        env.process(_fix(env, engine, spec.fix_at, drivers, incident))
    yield env.timeout(spec.start)
    incident("drift", "producer", "a producer starts writing Deposited v2")
    n = 0
    while True:
        yield env.timeout(rng.expovariate(spec.rate))
        if spec.stop is not None and env.now >= spec.stop:
            return
        n += 1
        acct = str(rng.randrange(accounts))
        data = {"account_id": acct, "amount": rng.randint(1, 100), "currency": "EUR"}
        engine.store.append(f"producer-v2-{n}", [RawEvent("Deposited", 2, data)], 0)


def _fix(
    env: simpy.Environment,
    engine: Engine,
    at: float,
    drivers: list[GroupDriver],
    incident: Incident,
) -> Generator[simpy.Event, Any, None]:
    yield env.timeout(at)
    engine.registry.register(DepositedV2)
    for d in drivers:
        handlers = d.projection.handlers
        base = handlers.get(bank.Deposited)
        if base is None:
            continue

        def v2(e: DepositedV2, envl: Envelope, _h: Callable[[Any, Any], None] = base) -> None:
            old = bank.Deposited(e.account_id, e.amount)
            _h(old, envl._replace(payload=old))

        handlers[DepositedV2] = v2
    replayed = 0
    for letter in engine.dead_letters.list():
        if letter.envelope.schema_version == 2:
            engine.subscriptions[letter.subscription].replay_dead_letter(letter.id)
            replayed += 1
    incident("fix", "readers", f"Deposited v2 handled; {replayed} dead letters replayed")
    for d in drivers:
        d.rebalance()


def rebuild(
    env: simpy.Environment,
    engine: Engine,
    spec: RebuildSpec,
    driver: GroupDriver,
    recorder: ApplicationRecorder,
    incident: Incident,
) -> Generator[simpy.Event, Any, None]:
    """Rebuild at ``spec.at``; logs when the rebuilt model has caught up with the log."""
    yield env.timeout(spec.at)
    group = driver.group
    target = engine.store.head_position
    started = env.now
    incident("rebuild", spec.projection, f"{spec.mode} rebuild of {target} events starts")
    if spec.mode == "shadow":
        sub = group.members[0]
        sub.rebuild(shadow=True)
        per_event, per_batch = driver.spec.per_event.mean, driver.spec.per_batch.mean
        while sub.shadow_rebuilding:  # the shadow copy advances one batch per step
            yield env.timeout(per_batch + per_event * sub.batch_size)
            sub.advance_rebuild()
    else:
        recorder.begin_rebuild(spec.projection, target)
        group.rebuild()
        driver.rebalance()
        while group.position < target:
            yield env.timeout(min(0.05, driver.spec.per_batch.mean + 0.001))
    incident("rebuilt", spec.projection, f"caught up after {env.now - started:.3f} s")
