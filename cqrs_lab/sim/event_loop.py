"""The served deployment's event loop in SimPy time: one CPU that runs every piece of work.

``cqrs-lab serve`` is one process with one asyncio loop: it parses each HTTP request,
runs the writer's batches of commands (one transaction each), pumps the projections and
answers the reads, one piece at a time in the order they became ready. A scenario with a
``[server]`` table is simulated that way (the twin writes one, calibrated from a load
test's per-stage timings):

- :class:`EventLoop` runs work items first in, first out. An item's CPU cost is drawn when
  it starts (a writer batch takes every command waiting at that moment, so batches grow
  with the load). A CPU that slept runs slower until it warms up again (caches, clock
  speed; measured: an engine call after 5 ms idle takes 2.7 times one right after
  another): an item that starts ``b`` seconds into a busy spell that followed ``g``
  seconds idle costs ``1 + cold * (1 - exp(-g / cold_time)) * exp(-b / cold_time)`` times
  its warm cost. Under a CPU limit (``cpus`` < 1, a container's quota) the loop may run
  ``cpus * period`` seconds per ``period`` and waits for the next period once that is
  spent, as the kernel's CFS bandwidth control does;
- :class:`LoopCommandSide` is the command path on that loop: a request's parsing (the
  ``request`` cost, less its ``answer_share``), the bounded writer queue (full: shed), the
  writer's batch (``batch`` plus each command's ``[commands] service``, the engine's decide
  and append, committed together at the batch's end), then each command's answer (the
  rest of the ``request`` cost); the latency ends with the answer. Projections pump their
  batches on the same loop (:class:`~cqrs_lab.sim.consumers.GroupDriver`) and so do reads.

>>> import simpy
>>> env = simpy.Environment()
>>> loop = EventLoop(env, cold=0.0, cold_time=0.001, cpus=0.5, period=0.01)
>>> done = []
>>> for _ in range(3):
...     loop.run(0.004).callbacks.append(lambda e: done.append(round(env.now, 6)))
>>> env.run()
>>> done  # 5 ms of CPU per 10 ms: the second and third wait for the next periods
[0.004, 0.013, 0.022]
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from cqrs_lab.core import Draw, Engine, Workload
from cqrs_lab.errors import CommandRefused, ConcurrencyError, CqrsLabError
from cqrs_lab.sim.commands import CommandSide, Level
from cqrs_lab.sim.scenario_parts import CommandSpec, ServerSpec

__all__ = ["EventLoop", "LoopCommandSide"]

#: a work item: called when it starts, returns its CPU seconds and what to do once done
Item = Callable[[], tuple[float, Callable[[], None] | None]]
_START, _END, _OUTCOME, _POSITION = 4, 5, 6, 8


class EventLoop:
    """One CPU running work items in arrival order (see the module docstring)."""

    def __init__(
        self, env: simpy.Environment, cold: float, cold_time: float, cpus: float, period: float
    ) -> None:
        self.env = env
        self.queue: deque[Item] = deque()
        self.running = False
        self.idle_since = 0.0
        self.cold, self.cold_time = cold, cold_time
        self.spell_start, self.chill = 0.0, 0.0  # the busy spell: its start, its coldness
        self.quota = cpus * period if cpus < 1.0 else None
        self.period = period
        self.window, self.used = -1, 0.0
        self.busy = Level(env)  # 1 while an item runs (its time integral: busy seconds)
        self.cpu_s = 0.0  # CPU seconds spent (cold factors included)

    def call(self, item: Item) -> None:
        """Queue ``item``; it starts once every item queued before it has run."""
        self.queue.append(item)
        if not self.running:
            self._next()

    def run(self, cost: float) -> simpy.Event:
        """An event that succeeds once ``cost`` CPU seconds have run on the loop."""
        ev = self.env.event()

        def succeed() -> None:
            ev.succeed()

        self.call(lambda: (cost, succeed))
        return ev

    def _next(self) -> None:
        env = self.env
        now = env.now
        if not self.queue:
            self.running = False
            self.idle_since = now
            self.busy.add(-1)
            return
        if not self.running:  # a busy spell begins: how cold the idle gap left the CPU
            self.running = True
            self.spell_start = now
            self.chill = self.cold * (1.0 - math.exp(-(now - self.idle_since) / self.cold_time))
            self.busy.add(1)
        cost, then = self.queue.popleft()()
        if self.chill > 0.0:  # warming up again as the spell goes on
            cost *= 1.0 + self.chill * math.exp(-(now - self.spell_start) / self.cold_time)
        self.cpu_s += cost
        end = self._finish(now, cost)
        env.timeout(end - now).callbacks.append(lambda _: self._done(then))

    def _done(self, then: Callable[[], None] | None) -> None:
        if then is not None:
            then()
        self._next()

    def _finish(self, t: float, work: float) -> float:
        """When ``work`` CPU seconds started at ``t`` end, under the quota if any."""
        if self.quota is None:
            return t + work
        period, quota = self.period, self.quota
        while work > 1e-12:
            k = math.floor(t / period + 1e-9)
            if k != self.window:
                self.window, self.used = k, 0.0
            edge = (k + 1) * period
            left = min(quota - self.used, edge - t)
            if left <= 1e-12:
                t = edge
                continue
            run = min(work, left)
            t += run
            work -= run
            self.used += run
        return t


class LoopCommandSide(CommandSide):
    """The command path of one served process on its :class:`EventLoop` (module docstring):
    parse, the writer's bounded queue and batches, the answer. One row per command."""

    def __init__(
        self,
        env: simpy.Environment,
        engine: Engine,
        spec: CommandSpec,
        server: ServerSpec,
        loop: EventLoop,
        workload: Workload,
        draw: Draw,
        rng: random.Random,
        on_accepted: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__(env, engine, spec, workload, draw, rng, on_accepted)
        self.loop = loop
        self.server = server
        self.request = server.request.sampler(random.Random(rng.getrandbits(64)))
        self.batch_cost = server.batch.sampler(random.Random(rng.getrandbits(64)))
        self.pending: deque[list[Any]] = deque()
        self.writer_queued = False
        self.batches = 0

    @property
    def waiting(self) -> int:
        return len(self.pending)

    def arrive(self, kind: str, key: int) -> None:
        job: list[Any] = [len(self.rows) + 1, kind, key, self.env.now, None, None, None, 0, None]
        self.rows.append(job)
        share = 1.0 - self.server.answer_share
        self.loop.call(lambda: (self.request() * share, lambda: self._enqueue(job)))

    def _enqueue(self, job: list[Any]) -> None:
        """Parsed: into the writer's queue, or shed when it is full (429)."""
        limit = self.spec.queue_limit
        if limit is not None and len(self.pending) >= limit:
            job[_OUTCOME] = "queue_full"
            self._answer(job)
            return
        self.pending.append(job)
        self.queued.add(1)
        if not self.writer_queued:
            self.writer_queued = True
            self.loop.call(self._batch)

    def _batch(self) -> tuple[float, Callable[[], None]]:
        """The writer takes what waits (up to ``batch_limit``): one transaction."""
        n = min(len(self.pending), self.server.batch_limit)
        jobs = [self.pending.popleft() for _ in range(n)]
        now = self.env.now
        self.queued.add(-n)
        self.busy.add(n)
        for job in jobs:
            job[_START] = now
        cost = self.batch_cost() + sum(self.service() for _ in jobs)
        return cost, lambda: self._commit_batch(jobs)

    def _commit_batch(self, jobs: list[list[Any]]) -> None:
        self.batches += 1
        self.busy.add(-len(jobs))
        draw, samplers, bus = self.draw, self.samplers, self.engine.bus
        for job in jobs:
            draw.index, draw.seq = job[2], job[0]
            try:
                result = bus.dispatch(samplers[job[1]](draw))
            except CommandRefused:
                job[_OUTCOME] = "refused"
            except ConcurrencyError:
                job[_OUTCOME] = "conflict"
            except CqrsLabError:
                job[_OUTCOME] = "error"
            else:
                job[_OUTCOME], job[_POSITION] = "accepted", result.position
                if self.on_accepted is not None:
                    self.on_accepted(job[2], result.position)
            self._answer(job)
        self.writer_queued = bool(self.pending)
        if self.pending:
            self.loop.call(self._batch)

    def _answer(self, job: list[Any]) -> None:
        share = self.server.answer_share

        def finish() -> None:
            job[_END] = self.env.now

        self.loop.call(lambda: (self.request() * share, finish))
