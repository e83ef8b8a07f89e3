"""A deliberately broken domain for the HTTP tests: its projection's handler raises on every
event (a wrong signature, the kind of bug that used to fail silently)."""

from __future__ import annotations

from dataclasses import dataclass

from cqrs_lab.core import Aggregate, Command, Domain, Event, Projection, Query, UnitOfWork, View, on


@dataclass(frozen=True, slots=True)
class Ping(Command):
    ping_id: str


@dataclass(frozen=True, slots=True)
class Pinged(Event):
    ping_id: str


@dataclass(frozen=True, slots=True)
class GetPing:
    ping_id: str


class Pinger(Aggregate):
    def ping(self, ping_id: str) -> None:
        self.record(Pinged(ping_id))

    @on(Pinged)
    def _pinged(self, e: Pinged) -> None:
        pass


class Pings(Projection):
    name = "pings"

    def __init__(self) -> None:
        super().__init__()
        self.pings = self.table("pings")

    @on(Pinged)
    def _pinged(self, e: Pinged) -> None:  # the bug: a projection handler also takes the env
        self.pings.put(e.ping_id, {"ping_id": e.ping_id})


def _ping(command: Ping, uow: UnitOfWork) -> None:
    uow.load(Pinger, f"ping-{command.ping_id}").ping(command.ping_id)


domain = Domain(
    name="broken",
    description="a projection whose handler raises on every event",
    events=(Pinged,),
    handlers={Ping: _ping},
    aggregates=(Pinger,),
    views=(View("pings", Pings),),
    queries=(Query(GetPing, "pings", lambda v, q: v.pings.get(q.ping_id)),),
)
