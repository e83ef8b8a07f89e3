"""Reads in SimPy time: queries against a read model, with the staleness each read saw.

Independent reads arrive as a Poisson stream on uniformly drawn keys, each asking the query
the domain's workload declares for the view read; with
``follow_writes`` a client whose command was accepted reads its own key back ``think``
seconds later, asking the real query bus with the command's position as ``min_position``, so
each such read records whether it saw its own write. ``staleness_s`` is the projection's lag
when the read ran: the age of the oldest event the read model has not dealt with yet.

On the served processes' event loops ([server]), a read runs on one process's loop and is
answered, with its staleness, by that process's replica of the view
(:mod:`cqrs_lab.sim.event_loops`): independent reads go to a process drawn at random, a
read-back to the process that took the write.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import simpy

from cqrs_lab.core import Draw, Engine, SubscriptionGroup
from cqrs_lab.sim.clients import ClientPool
from cqrs_lab.sim.event_loop import EventLoop
from cqrs_lab.sim.scenario_parts import ReadSpec

__all__ = ["READ_COLUMNS", "ReadSide"]

READ_COLUMNS = ("arrival_s", "start_s", "end_s", "key", "kind", "staleness_s", "own_write_seen")


class ReadSide:
    """Read arrivals, a pool of ``readers`` and one row per read in :attr:`rows`."""

    def __init__(
        self,
        env: simpy.Environment,
        engine: Engine,
        group: SubscriptionGroup,
        spec: ReadSpec,
        sample: Callable[[Draw], Any],
        draw: Draw,
        rng: random.Random,
        until: float,
    ) -> None:
        self.env, self.engine, self.group, self.spec = env, engine, group, spec
        self.keys_count = draw.keys
        self.rows: list[list[Any]] = []
        self.queue: deque[list[Any]] = deque()
        self.idle: list[simpy.Event] = []
        self.service = spec.service.sampler(random.Random(rng.getrandbits(64)))
        self.keys = random.Random(rng.getrandbits(64))
        self.follow = random.Random(rng.getrandbits(64))
        self.until = until
        #: the served processes' event loops ([server]) and the CPU per request; empty:
        #: the reads have their own readers. ``replicas[k]`` (k > 0): process k's group
        #: and its query answers; ``spread`` draws the process of an independent read
        self.loops: list[EventLoop] = []
        self.clients: ClientPool | None = None  # the load generator's users, if bounded
        self.replicas: list[tuple[SubscriptionGroup, dict[type, Callable[[Any], Any]]]] = []
        self.spread: random.Random | None = None
        self.request: Callable[[], float] = lambda: 0.0
        #: the transport's read of a request, a turn of the loop of its own (None: none)
        self.transport: Callable[[], float] | None = None
        #: its own slow-down after idling, ``(cold, cold_time)`` (None: the loop's)
        self.transport_chill: tuple[float, float] | None = None
        self.sample, self.draw = sample, draw
        draw.rng = random.Random(rng.getrandbits(64))  # the queries' own stream
        for _ in range(spec.readers):
            env.process(self._reader())
        if spec.rate > 0:
            env.process(self._arrivals(random.Random(rng.getrandbits(64))))

    def _arrivals(self, rng: random.Random) -> Generator[simpy.Event, Any, None]:
        env, rate = self.env, self.spec.rate
        while True:
            yield env.timeout(rng.expovariate(rate))
            if env.now >= self.until:
                return
            self._arrive(int(self.keys.random() * self.keys_count), "read", 0)

    def after_write(self, key: int, position: int, process: int = 0) -> None:
        """Called for each accepted command (taken by served ``process``): maybe schedule
        its client's read-back."""
        p = self.spec.follow_writes
        if p > 0 and self.follow.random() < p:
            self.env.process(self._read_back(key, position, process))

    def _read_back(
        self, key: int, position: int, process: int
    ) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.spec.think)
        if self.env.now < self.until:
            self._arrive(key, "read-own-write", position, process)

    def _arrive(self, key: int, kind: str, token: int, process: int | None = None) -> None:
        """A read is due: sent now, or once the load generator has a user free."""
        if self.clients is None:
            self._send(key, kind, token, process)
        else:
            self.clients.send(lambda: self._send(key, kind, token, process))

    def _send(self, key: int, kind: str, token: int, process: int | None) -> None:
        if process is None:
            process = 0 if self.spread is None else self.spread.randrange(len(self.loops))
        self.queue.append([self.env.now, None, None, key, kind, None, None, process, token])
        if self.idle:
            self.idle.pop().succeed()

    def _reader(self) -> Generator[simpy.Event, Any, None]:
        env, queue, group, engine = self.env, self.queue, self.group, self.engine
        sample, draw = self.sample, self.draw
        while True:
            while not queue:
                ev = env.event()
                self.idle.append(ev)
                yield ev
            job = queue.popleft()
            job[1] = env.now
            token = job.pop()
            process = job.pop()
            draw.index = job[3]
            if self.loops and self.transport is not None:  # the transport reads it first
                yield self.loops[process].run(
                    self.transport(), chill=self.transport_chill, kind="transport"
                )
            if process == 0:
                result = engine.ask(sample(draw), min_position=token)
                job[5] = group.lag_seconds()
                job[6] = (not result.stale) if token else None
            else:  # another process's replica answers
                replica, answers = self.replicas[process]
                query = sample(draw)
                answers[type(query)](query)
                job[5] = replica.lag_seconds()
                job[6] = (replica.position >= token) if token else None
            if not self.loops:
                yield env.timeout(self.service())
            else:  # the request's parsing and answer and the query, on the process's loop
                yield self.loops[process].run(self.request() + self.service(), kind="request")
            job[2] = env.now
            self.rows.append(job)
            if self.clients is not None:
                self.clients.done()
