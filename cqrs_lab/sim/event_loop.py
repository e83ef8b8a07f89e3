"""The served deployment's event loops in SimPy time: each a CPU that runs every piece of work.

``cqrs-lab serve`` is one process with one asyncio loop: it parses each HTTP request,
runs the writer's batches of commands (one transaction each), pumps the projections and
answers the reads, one piece at a time in the order they became ready. ``serve --workers N``
is N such processes, each with its own loop. A scenario with a ``[server]`` table is
simulated that way (the twin writes one, calibrated from a load test's per-stage timings):

- :class:`EventLoop` runs work items first in, first out. An item's CPU cost is drawn when
  it starts (a writer batch takes every command waiting at that moment, so batches grow
  with the load). A CPU that slept runs slower until it warms up again (caches, clock
  speed; measured: an engine call after 5 ms idle takes 2.7 times one right after
  another): an item that starts ``b`` seconds into a busy spell that followed ``g``
  seconds idle costs ``1 + cold * (1 - exp(-g / cold_time)) * exp(-b / cold_time)`` times
  its warm cost; a kind of work may slow down by its own ``(cold, cold_time)`` instead
  (the transport's read of a request slows down more than the engine's calls). An item
  of a kind (``call(..., kind=)``) that starts right after one of its kind, the loop busy
  in between, costs its ``repeat`` factor of that (a run of like work finds the caches warm
  for it: :mod:`cqrs_lab.load.loop_repeats`); an idle or a blocked loop ends the run. Under a
  CPU limit (``cpus`` < 1, a container's quota) the loop may run
  ``cpus * period`` seconds per ``period`` and waits for the next period once that is
  spent, as the kernel's CFS bandwidth control does; what it left unused in a period, up
  to ``carry`` seconds, it may still run in the next (Linux keeps 1 ms: measured here
  under a 0.4-core limit, Poisson arrivals of 0.5 ms jobs at 90% of the quota took p50
  1.1 ms, p95 16 ms; a strict quota per period gives 2.7 and 22 ms, a 1 ms carry 1.0 and
  19 ms: ``python -m benchmarks w2_quota``). An item may also :meth:`~EventLoop.
  block` its loop after its CPU (a synchronous call waiting on the database: the loop
  runs nothing else, spends no CPU and no quota). A loop given a
  :class:`~cqrs_lab.sim.loop_speed.LoopSpeed` runs every item that many times slower or
  faster as the machine's speed wanders;
- :class:`Cores` are the machine's CPUs that several loops share (``[server] cores``): an
  item starts only on a free core, otherwise its loop waits for one (first come, first
  served); a blocked loop holds no core;
- :class:`Background` is the rest of the machine on those cores (the load generator, a
  local database's processes: ``[server] other_cpu`` seconds per command): each piece of
  its work takes a core of its own as a loop's item does, in the same first-come queue,
  and any number of pieces may run at once (many processes, not one loop);
- :class:`~cqrs_lab.sim.event_loops.LoopCommandSide` is the command path on the loops.

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
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

import simpy

from cqrs_lab.errors import ConfigError
from cqrs_lab.sim.commands import Level
from cqrs_lab.sim.loop_speed import LoopSpeed
from cqrs_lab.sim.scenario_parts import QUOTA_CARRY

__all__ = ["Background", "Cores", "EventLoop"]

#: a work item: called when it starts, returns its CPU seconds and what to do once done
Item = Callable[[], tuple[float, Callable[[], None] | None]]
#: a kind of work's own slow-down after idling: ``(cold, cold_time)``
Chill = tuple[float, float]


class _Starts(Protocol):
    """What waits for a core: started once one is free."""

    def _start(self) -> None: ...


class Cores:
    """``count`` CPUs shared by event loops: a loop whose next item finds every core busy
    waits for the first one freed (loops served in the order they asked).

    >>> import simpy
    >>> env = simpy.Environment()
    >>> cores = Cores(1)
    >>> a, b = (EventLoop(env, 0.0, 0.001, 1.0, 0.01, cores=cores) for _ in range(2))
    >>> ends = []
    >>> for loop in (a, b):
    ...     loop.run(0.002).callbacks.append(lambda e: ends.append(round(env.now, 6)))
    >>> env.run()
    >>> ends  # one core: the second loop's item starts when the first one's ends
    [0.002, 0.004]
    """

    def __init__(self, count: int) -> None:
        self.free = count
        self.waiting: deque[_Starts] = deque()

    def take(self, loop: _Starts) -> bool:
        """A core for ``loop`` now (True), or ``loop`` waits and is started later."""
        if self.free > 0:
            self.free -= 1
            return True
        self.waiting.append(loop)
        return False

    def give(self) -> None:
        """A core is free: to the longest-waiting loop, if any."""
        if self.waiting:
            self.waiting.popleft()._start()
        else:
            self.free += 1


class Background:
    """The machine's other work on the shared :class:`Cores`: :meth:`spend` asks for a
    core as a loop's item does (first come, first served with the loops) and holds it for
    the piece's CPU seconds; pieces run side by side, one per free core. ``cpu_s`` is the
    CPU spent.

    >>> import simpy
    >>> env = simpy.Environment()
    >>> cores = Cores(2)
    >>> loop, other = EventLoop(env, 0.0, 0.001, 1.0, 0.01, cores=cores), Background(env, cores)
    >>> other.spend(0.003); other.spend(0.003)
    >>> ends = []
    >>> loop.run(0.001).callbacks.append(lambda e: ends.append(round(env.now, 6)))
    >>> env.run()
    >>> ends, other.cpu_s  # both cores taken by the other work: the loop waits 3 ms
    ([0.004], 0.006)
    """

    def __init__(self, env: simpy.Environment, cores: Cores) -> None:
        self.env, self.cores = env, cores
        self.pending: deque[float] = deque()
        self.cpu_s = 0.0

    def spend(self, seconds: float) -> None:
        """``seconds`` of CPU on a core as soon as one is free."""
        self.pending.append(seconds)
        if self.cores.take(self):
            self._start()

    def _start(self) -> None:
        cost = self.pending.popleft()
        self.cpu_s += cost
        self.env.timeout(cost).callbacks.append(lambda _: self.cores.give())


class EventLoop:
    """One CPU running work items in arrival order (see the module docstring).

    ``cpu_s`` is the CPU spent (cold factors included), ``blocked_s`` the time held by
    :meth:`block`, ``busy`` is 1 while an item runs, waits for a core or blocks."""

    def __init__(
        self,
        env: simpy.Environment,
        cold: float,
        cold_time: float,
        cpus: float,
        period: float,
        cores: Cores | None = None,
        speed: LoopSpeed | None = None,
        carry: float = QUOTA_CARRY,
        repeat: Mapping[str, float] | None = None,
    ) -> None:
        if not (math.isfinite(carry) and carry >= 0.0):
            raise ConfigError(
                f"carry={carry!r}: the seconds of a period's unused quota kept for the next, "
                ">= 0 (0: a strict quota per period)"
            )
        self.env = env
        self.speed = speed
        self.queue: deque[tuple[Item, Chill | None, str | None]] = deque()
        self.repeat = dict(repeat or {})  # kind -> cost factor right after one of its kind
        self.last_kind: str | None = None  # the kind of the item that ran last, in this spell
        self.running = False
        self.idle_since = 0.0
        self.cold, self.cold_time = cold, cold_time
        self.spell_start, self.chill = 0.0, 0.0  # the busy spell: its start, its coldness
        self.spell_gap = 0.0  # the idle seconds before it
        self.quota = cpus * period if cpus < 1.0 else None
        self.period, self.carry = period, carry
        self.window, self.used = -1, 0.0  # the period and the CPU run in it (< 0: carried)
        self.cores = cores
        self.busy = Level(env)  # 1 while an item runs (its time integral: busy seconds)
        self.cpu_s = 0.0
        self.blocked_s = 0.0
        self.hold = 0.0  # set by block() while an item starts

    def call(self, item: Item, chill: Chill | None = None, kind: str | None = None) -> None:
        """Queue ``item``; it starts once every item queued before it has run. ``chill``:
        its own ``(cold, cold_time)`` instead of the loop's (a kind of work that slows
        down more after idling); ``kind``: what work it is, whose ``repeat`` factor its
        cost takes when it runs right after an item of the same kind."""
        self.queue.append((item, chill, kind))
        if not self.running:
            self._next()

    def run(
        self, cost: float, hold: float = 0.0, chill: Chill | None = None, kind: str | None = None
    ) -> simpy.Event:
        """An event that succeeds once ``cost`` CPU seconds have run on the loop (and then
        ``hold`` seconds blocked, as :meth:`block`; ``chill`` as :meth:`call`)."""
        ev = self.env.event()

        def succeed() -> None:
            ev.succeed()

        def item() -> tuple[float, Callable[[], None]]:
            if hold > 0.0:
                self.block(hold)
            return cost, succeed

        self.call(item, chill, kind)
        return ev

    def block(self, seconds: float) -> None:
        """Called by an item as it starts: once its CPU has run, the loop waits ``seconds``
        more before its ``then`` and the next item (no CPU, no quota, no core spent)."""
        self.hold += seconds

    def _next(self) -> None:
        now = self.env.now
        if not self.queue:
            self.running = False
            self.last_kind = None
            self.idle_since = now
            self.busy.add(-1)
            return
        if not self.running:  # a busy spell begins: how cold the idle gap left the CPU
            self.running = True
            self.spell_start, self.spell_gap = now, now - self.idle_since
            self.chill = self.cold * (1.0 - math.exp(-self.spell_gap / self.cold_time))
            self.busy.add(1)
        if self.cores is None or self.cores.take(self):
            self._start()

    def _start(self) -> None:
        """The next item starts (on a core, when the loops share some)."""
        env = self.env
        now = env.now
        item, own, kind = self.queue.popleft()
        cost, then = item()
        hold, self.hold = self.hold, 0.0
        if kind is not None and kind == self.last_kind:  # a run of like work: cheaper
            cost *= self.repeat.get(kind, 1.0)
        self.last_kind = kind if hold == 0.0 else None  # a blocked loop's run ends
        chill, tau = self.chill, self.cold_time
        if own is not None:  # its own slow-down, from the same idle gap
            chill, tau = own[0] * (1.0 - math.exp(-self.spell_gap / own[1])), own[1]
        if self.speed is not None:  # the machine's speed at this moment
            cost *= self.speed.factor(now)
        if chill > 0.0:  # warming up again as the spell goes on
            cost *= 1.0 + chill * math.exp(-(now - self.spell_start) / tau)
        self.cpu_s += cost
        self.blocked_s += hold
        end = self._finish(now, cost)
        if self.cores is None:
            env.timeout(end + hold - now).callbacks.append(lambda _: self._done(then))
        else:
            env.timeout(end - now).callbacks.append(lambda _: self._ran(then, hold))

    def _ran(self, then: Callable[[], None] | None, hold: float) -> None:
        """The item's CPU has run: its core goes back, then the block if any."""
        assert self.cores is not None  # only scheduled with cores
        self.cores.give()
        if hold > 0.0:
            self.env.timeout(hold).callbacks.append(lambda _: self._done(then))
        else:
            self._done(then)

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
            if k != self.window:  # each period past gives a quota; unused, up to carry stays
                used = self.used - quota * (k - self.window) if self.window >= 0 else 0.0
                self.window, self.used = k, max(used, -self.carry)
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
