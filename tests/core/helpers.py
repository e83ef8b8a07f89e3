"""Small domains for engine tests: a log of numbered events and a projection that counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cqrs_lab.core import ANY, Engine, Envelope, Event, ManualClock, Projection, on


@dataclass(frozen=True, slots=True)
class Ticked(Event):
    n: int


class Tally(Projection):
    """Counts applications per position: not idempotent, so a double effect shows."""

    name = "tally"

    def __init__(self) -> None:
        super().__init__()
        self.count = self.table("count")

    @on(Ticked)
    def _ticked(self, e: Ticked, env: Envelope) -> None:
        self.count.put(env.position, self.count.get(env.position, 0) + 1)


class Recorder:
    """A SubscriptionRecorder that keeps what happened, for assertions."""

    def __init__(self) -> None:
        self.deliveries: list[int] = []
        self.applications: list[int] = []
        self.appliers: dict[str, set[str]] = {}  # stream id -> subscriptions that applied it
        self.skips: list[tuple[int, str]] = []
        self.undone: list[int] = []
        self.lost: list[int] = []
        self.crashes = 0

    def delivered(self, sub: str, env: Envelope, now: float) -> None:
        self.deliveries.append(env.position)

    def applied(self, sub: str, env: Envelope, now: float) -> None:
        self.applications.append(env.position)
        self.appliers.setdefault(env.stream_id, set()).add(sub)

    def skipped(self, sub: str, env: Envelope, now: float, reason: str) -> None:
        self.skips.append((env.position, reason))

    def rolled_back(self, sub: str, envs: list[Envelope], now: float) -> None:
        self.undone.extend(e.position for e in envs)

    def crashed(self, sub: str, now: float, lost: list[Envelope]) -> None:
        self.crashes += 1
        self.lost.extend(e.position for e in lost)


def tally_engine(n_events: int, seed: int = 0, **subscribe: Any) -> tuple[Engine, Tally, Recorder]:
    """An engine with ``n_events`` Ticked events over three streams and a Tally subscribed."""
    recorder = Recorder()
    engine = Engine(clock=ManualClock(), seed=seed, recorder=recorder)
    engine.registry.register(Ticked)
    tally = Tally()
    engine.subscribe(tally, **subscribe)
    for i in range(n_events):
        engine.store.append(f"s{i % 3}", [Ticked(i)], ANY)
    return engine, tally, recorder
