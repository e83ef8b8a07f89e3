"""A domain whose projection takes 0.1 ms per event, for the HTTP tests: replaying its log
after a restart lasts long enough (6,000 events: about a second, in ticks of one batch
between which the server answers) to read during the replay."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cqrs_lab.core import (
    Aggregate,
    Command,
    Domain,
    Envelope,
    Event,
    Projection,
    Query,
    UnitOfWork,
    View,
    on,
)

#: seconds the projection spends on each event
DELAY = 0.0001


@dataclass(frozen=True, slots=True)
class Tick(Command):
    counter_id: str


@dataclass(frozen=True, slots=True)
class Ticked(Event):
    counter_id: str


@dataclass(frozen=True, slots=True)
class GetCount:
    counter_id: str


class Counter(Aggregate):
    def tick(self, counter_id: str) -> None:
        self.record(Ticked(counter_id))

    @on(Ticked)
    def _ticked(self, e: Ticked) -> None:
        pass


class Counts(Projection):
    name = "counts"

    def __init__(self) -> None:
        super().__init__()
        self.counts = self.table("counts")

    @on(Ticked)
    def _ticked(self, e: Ticked, env: Envelope) -> None:
        time.sleep(DELAY)  # the test's stand-in for an expensive read model
        self.counts.put(e.counter_id, self.counts.get(e.counter_id, 0) + 1)


def _tick(command: Tick, uow: UnitOfWork) -> None:
    uow.load(Counter, f"counter-{command.counter_id}").tick(command.counter_id)


domain = Domain(
    name="slow",
    description="a projection that takes 0.1 ms per event",
    events=(Ticked,),
    handlers={Tick: _tick},
    aggregates=(Counter,),
    views=(View("counts", Counts),),
    queries=(Query(GetCount, "counts", lambda v, q: v.counts.get(q.counter_id)),),
)
