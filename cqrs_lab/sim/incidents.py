"""Scripted incidents: poison events, a schema drift and its fix, a projection rebuild.

* **Poison**: at each given time a command drawn from the workload (its first kind that is
  accepted, on key 0) is dispatched with ``{"poison": True}`` in its envelopes' metadata;
  every projection handler fails on it, the engine retries it with backoff (a retry storm
  holding up its partition) and parks it as a dead letter.
* **Schema drift**: a newer producer appends copies of real earlier events of one type
  (``[faults.drift] event``; for the bank ``Deposited``) at schema version 2, with an extra
  field, to its own streams; the readers know version 1 only, so each such event fails to
  decode and is dead-lettered. At ``fix_at`` the fix is deployed: the registry learns a
  generated version-2 class, every projection that handles the version-1 class gets a
  handler for it (dropping the extra field), and the parked events are replayed.
* **Rebuild**: at ``at`` the projection is rebuilt from position 0, in place (readers see an
  emptied model refilling) or, with one partition, in a shadow copy swapped in when caught up.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Shipped(Event):
...     order_id: str
...     quantity: int = 1
>>> V2 = version_2(Shipped)
>>> V2.event_type(), V2.schema_version, V2("o1").producer, V2("o1").quantity
('Shipped', 2, 'v2', 1)
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Generator, Sequence
from typing import Any

import simpy

from cqrs_lab.core import CommandKind, Draw, Engine, Envelope, Event, RawEvent
from cqrs_lab.core.domain import Domain
from cqrs_lab.errors import CqrsLabError, InjectedFault
from cqrs_lab.sim.application_rows import ApplicationRecorder
from cqrs_lab.sim.consumers import GroupDriver
from cqrs_lab.sim.domain_probe import probe
from cqrs_lab.sim.scenario import DriftSpec, RebuildSpec, Scenario, workload_of

__all__ = ["drift", "drifted_event", "poison", "poison_guard", "rebuild", "version_2"]

Incident = Callable[[str, str, str], None]

#: the field the newer producer adds to the drifted event (and its value)
EXTRA_FIELD, EXTRA_VALUE = "producer", "v2"


def version_2(v1: type[Event]) -> type[Event]:
    """A generated class for ``v1`` as the newer producer writes it (schema version 2, with
    one more field, :data:`EXTRA_FIELD`)."""
    fields: list[Any] = [
        (f.name, f.type, _same_default(f))
        for f in dataclasses.fields(v1)  # type: ignore[arg-type]
    ]
    fields.append((EXTRA_FIELD, str, dataclasses.field(default=EXTRA_VALUE)))
    return dataclasses.make_dataclass(
        f"{v1.__name__}V2",
        fields,
        bases=(Event,),
        namespace={"type_name": v1.event_type(), "schema_version": 2},
        frozen=True,
        slots=True,
    )


def _same_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return dataclasses.field(default=f.default)
    if f.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=f.default_factory)
    return dataclasses.field()


def drifted_event(s: Scenario, domain: Domain) -> type[Event]:
    """The event class the scenario drifts: ``[faults.drift] event``, or else the first
    event type produced by the workload's first kind that a view of the scenario handles."""
    by_name = {e.event_type(): e for e in domain.events}
    if s.drift is not None and s.drift.event is not None:
        return by_name[s.drift.event]
    facts = probe(domain)
    running = {p.name for p in s.projections}
    for kind in workload_of(domain, s.source).kinds:
        for name in facts.events.get(kind.name, ()):
            if running & set(facts.handled_by.get(name, ())):
                return by_name[name]
    return domain.events[0]


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
    env: simpy.Environment,
    engine: Engine,
    times: tuple[float, ...],
    kinds: Sequence[CommandKind],
    draw: Draw,
    incident: Incident,
) -> Generator[simpy.Event, Any, None]:
    """At each of ``times``, dispatch a command of the workload on key 0, marked poison
    (the first of ``kinds`` the domain accepts there; its ``seq`` is minus the count)."""
    for n, t in enumerate(times, start=1):
        yield env.timeout(max(0.0, t - env.now))
        draw.index, draw.seq = 0, -n
        for kind in kinds:
            try:
                result = engine.bus.dispatch(kind.sample(draw), metadata={"poison": True})
            except CqrsLabError:
                continue  # refused here (nothing to ship, say): try the next kind
            incident("poison", "log", f"poison event at position {result.position}")
            break
        else:
            incident("poison", "log", "no command of the workload was accepted on key 0")


def drift(
    env: simpy.Environment,
    engine: Engine,
    spec: DriftSpec,
    v1: type[Event],
    drivers: list[GroupDriver],
    rng: random.Random,
    incident: Incident,
) -> Generator[simpy.Event, Any, None]:
    """The newer producer's process, and the fix at ``spec.fix_at``."""
    name = v1.event_type()
    if spec.fix_at is not None:
        env.process(_fix(env, engine, spec.fix_at, v1, drivers, incident))
    yield env.timeout(spec.start)
    incident("drift", "producer", f"a producer starts writing {name} v2")
    n = 0
    while True:
        yield env.timeout(rng.expovariate(spec.rate))
        if spec.stop is not None and env.now >= spec.stop:
            return
        earlier = _earlier(engine, v1, rng)
        if earlier is None:
            continue  # none written yet: nothing to copy
        n += 1
        data = {f.name: getattr(earlier, f.name) for f in dataclasses.fields(earlier)}
        data[EXTRA_FIELD] = EXTRA_VALUE
        engine.store.append(f"producer-v2-{n}", [RawEvent(name, 2, data)], 0)


def _earlier(engine: Engine, v1: type[Event], rng: random.Random) -> Any:
    """A real event of class ``v1`` from the log: the last one at or before a random point."""
    head = engine.store.head_position
    if head == 0:
        return None
    upto = rng.randrange(head) + 1
    while upto > 0:
        start = max(0, upto - 256)
        for e in reversed(engine.store.read_all(after=start, limit=upto - start)):
            if type(e.payload) is v1:
                return e.payload
        upto = start
    return None


def _fix(
    env: simpy.Environment,
    engine: Engine,
    at: float,
    v1: type[Event],
    drivers: list[GroupDriver],
    incident: Incident,
) -> Generator[simpy.Event, Any, None]:
    yield env.timeout(at)
    v2 = version_2(v1)
    engine.registry.register(v2)
    names = [f.name for f in dataclasses.fields(v1)]  # type: ignore[arg-type]
    for d in drivers:
        handlers = d.projection.handlers
        base = handlers.get(v1)
        if base is None:
            continue

        def upgraded(e: Any, envl: Envelope, _h: Callable[[Any, Any], None] = base) -> None:
            old = v1(*(getattr(e, n) for n in names))
            _h(old, envl._replace(payload=old))

        handlers[v2] = upgraded
    replayed = 0
    for letter in engine.dead_letters.list():
        if letter.envelope.schema_version == 2:
            engine.subscriptions[letter.subscription].replay_dead_letter(letter.id)
            replayed += 1
    incident("fix", "readers", f"{v1.event_type()} v2 handled; {replayed} dead letters replayed")
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
