"""What a domain's workload does, found by running it once on a throwaway engine.

The scenario checks need two facts the declaration does not state: which event types each
command kind produces, and which sagas are the only readers of one of them (a bank transfer
is carried out by its saga alone, so a mix with transfers needs the saga). The probe
installs the domain on a fresh engine, runs the workload's setup for a few keys and
dispatches one sample of every kind, in declared order; the answer is cached per domain.

>>> from cqrs_lab.domains.inventory import domain
>>> facts = probe(domain)
>>> facts.events["reserve"], facts.needs_saga["reserve"]
(('StockReserved',), ())
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cqrs_lab.core import Draw, Engine, install
from cqrs_lab.core.domain import Domain
from cqrs_lab.errors import CqrsLabError

__all__ = ["DomainFacts", "probe"]


@dataclass(frozen=True)
class DomainFacts:
    """Per command kind: the event types one sample produced and the sagas it needs."""

    events: dict[str, tuple[str, ...]]
    needs_saga: dict[str, tuple[str, ...]]
    handled_by: dict[str, tuple[str, ...]]  # event type -> the views that handle it


_CACHE: dict[int, tuple[Domain, DomainFacts]] = {}


def probe(domain: Domain) -> DomainFacts:
    """The facts of ``domain``'s workload (computed once per domain object)."""
    hit = _CACHE.get(id(domain))
    if hit is not None and hit[0] is domain:
        return hit[1]
    facts = _probe(domain)
    _CACHE[id(domain)] = (domain, facts)
    return facts


def _probe(domain: Domain) -> DomainFacts:
    handled: dict[str, list[str]] = {}
    sagas: set[str] = set()
    for view in domain.views:
        proj = view.factory()
        if view.is_saga:
            sagas.add(view.name)
        for event_type in proj.handlers:
            handled.setdefault(event_type.event_type(), []).append(view.name)
    events: dict[str, tuple[str, ...]] = {}
    needs: dict[str, tuple[str, ...]] = {}
    w = domain.workload
    if w is not None:
        engine = Engine(seed=0)
        install(engine, domain, views=())
        draw = Draw(random.Random(0), w, keys=max(2, w.min_population), params=w.defaults())
        if w.setup is not None:
            for i in range(draw.keys):
                draw.index = i
                _dispatch(engine, w.setup(draw))
        for n, kind in enumerate(w.kinds, start=1):
            draw.index, draw.seq = 0, n
            produced = _dispatch(engine, kind.sample(draw))
            events[kind.name] = produced
            needs[kind.name] = tuple(
                sorted(
                    {
                        v
                        for t in produced
                        if (readers := handled.get(t)) and set(readers) <= sagas
                        for v in readers
                    }
                )
            )
    return DomainFacts(events, needs, {t: tuple(v) for t, v in handled.items()})


def _dispatch(engine: Engine, command: object) -> tuple[str, ...]:
    try:
        result = engine.dispatch(command)  # type: ignore[arg-type]
    except CqrsLabError:  # refused in this tiny world: the kind produced nothing here
        return ()
    return tuple(type(e.payload).event_type() for e in result.events)
