"""A projection's consumer group in SimPy time: partitions, consumers, crashes, checkpoints.

The engine's :class:`~cqrs_lab.core.SubscriptionGroup` holds P partition subscriptions; this
driver runs M consumer processes and assigns partition ``p`` to the ``p % M``-th live
consumer. A consumer polls its partitions in turn, takes one batch (``sub.poll()``, at most
``batch_size`` log events in flight), spends ``per_batch + per_event * n`` seconds, then
``sub.process()``. A crash (time to failure drawn per consumer) crashes its partitions, which
lose their in-flight batch as the delivery semantics dictate; after the repair time the
consumer comes back. With ``session_timeout`` set, a dead consumer's partitions move to the
live ones after that long (a rebalance), otherwise they wait for the repair. Under
at-least-once with ``checkpoint_interval`` the checkpoint commits every that many seconds,
so a crash redelivers (and re-applies) what was applied since.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from cqrs_lab.core import (
    Engine,
    Envelope,
    FaultPlan,
    Projection,
    RawEvent,
    RetryPolicy,
    Subscription,
)
from cqrs_lab.errors import InjectedFault
from cqrs_lab.sim.commands import Level
from cqrs_lab.sim.event_loop import EventLoop
from cqrs_lab.sim.scenario_parts import ProjectionSpec

__all__ = ["Consumer", "GroupDriver", "InjectedFault"]

Incident = Callable[[str, str, str], None]


@dataclass(eq=False)
class Consumer:
    """One consumer process of a group."""

    index: int
    subs: list[Subscription] = field(default_factory=list)
    alive: bool = False
    retired: bool = False
    proc: simpy.Process | None = None
    wake: simpy.Event | None = None

    def gone(self) -> bool:
        """Retired by the autoscaler (read afresh after each wait)."""
        return self.retired


class GroupDriver:
    """Runs one projection's consumers on the engine's partitioned subscription group."""

    def __init__(
        self,
        env: simpy.Environment,
        engine: Engine,
        projection: Projection,
        spec: ProjectionSpec,
        rng: random.Random,
        incident: Incident,
    ) -> None:
        self.env, self.engine, self.spec, self.incident = env, engine, spec, incident
        self.name = spec.name
        self.projection = projection
        plan = None
        if spec.transport is not None:
            t = spec.transport
            plan = FaultPlan(
                drop=t.drop,
                duplicate=t.duplicate,
                reorder=t.reorder,
                delay=t.delay,
                delay_seconds=t.delay_seconds,
                redelivery_timeout=t.redelivery_timeout,
            )
            plan = None if plan.empty else plan
        r = spec.retry
        timed_checkpoints = (
            spec.delivery == "at-least-once" and spec.checkpoint_interval is not None
        )
        self.group = engine.subscribe_partitioned(
            projection,
            spec.delivery,
            partitions=spec.partitions,
            batch_size=spec.batch_size,
            retry=RetryPolicy(r.max_attempts, r.base, r.factor, r.max_delay, r.jitter),
            faults=plan,
            auto_commit=not timed_checkpoints,
        )
        self.rng = rng
        self.per_event = spec.per_event.sampler(random.Random(rng.getrandbits(64)))
        self.per_event_fixed = spec.per_event.kind == "deterministic"
        self.per_batch = spec.per_batch.sampler(random.Random(rng.getrandbits(64)))
        self.failures = random.Random(rng.getrandbits(64))
        self.consumers: list[Consumer] = []
        self.busy_subs: set[str] = set()
        self.busy = Level(env)
        # events of types this projection handles, appended and not yet applied once, parked
        # or lost (the number in the projection stage, for Little's law)
        self.outstanding = Level(env)
        self.owner: list[Consumer | None] = [None] * spec.partitions
        self._part: dict[str, int] = {}
        self.consumer_crashes = 0
        self.batches = 0
        #: the server's event loop the batches run on ([server]; None: their own CPU)
        self.loop: EventLoop | None = None
        #: the served process this group's replica lives in, and its idle poll (seconds):
        #: with a poll, appends by other processes wake it only at the poll ([server])
        self.process, self.poll = 0, 0.0
        #: seconds a batch then blocks the loop (the database's read round trip; None: 0)
        self.pump_wait: Callable[[], float] | None = None
        #: and that many seconds more per event the batch carries (rows read and written)
        self.pump_wait_per_event = 0.0
        #: called as each batch starts on the loop: the database's CPU for its read (None: 0)
        self.database: Callable[[], None] | None = None
        if spec.transient_errors > 0:
            self._inject_errors(spec.transient_errors)
        if timed_checkpoints:
            env.process(self._checkpoints(float(spec.checkpoint_interval or 0)))
        start = spec.consumers
        if spec.autoscale is not None:
            start = min(max(start, spec.autoscale.min), spec.autoscale.max)
        for _ in range(start):
            self.add_consumer(delay=0.0, announce=False)

    # -- faults inside handlers -------------------------------------------------------------------
    def _inject_errors(self, rate: float) -> None:
        rnd = self.failures.random
        handlers = self.projection.handlers
        for event_type, handler in list(handlers.items()):

            def flaky(e: Any, env: Any, _h: Callable[[Any, Any], None] = handler) -> None:
                if rnd() < rate:
                    raise InjectedFault("transient handler error")
                _h(e, env)

            handlers[event_type] = flaky

    # -- membership -----------------------------------------------------------------------------
    @property
    def alive_count(self) -> int:
        return sum(1 for c in self.consumers if c.alive and not c.retired)

    @property
    def active_count(self) -> int:
        """Consumers alive or starting or being repaired (what the autoscaler counts)."""
        return sum(1 for c in self.consumers if not c.retired)

    def add_consumer(self, delay: float, announce: bool = True) -> Consumer:
        c = Consumer(len(self.consumers))
        self.consumers.append(c)
        if delay > 0:
            self.env.process(self._start_later(c, delay))
        else:
            self._start(c)
        if announce:
            self.incident("scale-out", self.name, f"consumer {c.index} (starts in {delay:g} s)")
        return c

    def _start_later(self, c: Consumer, delay: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(delay)
        if not c.retired:
            self._start(c)

    def _start(self, c: Consumer) -> None:
        c.alive = True
        c.proc = self.env.process(self._consume(c))
        if self.spec.crash is not None:
            self.env.process(self._fail(c))
        self.rebalance()

    def remove_consumer(self) -> Consumer | None:
        """Retire the newest consumer; it finishes its batch, its partitions move."""
        for c in reversed(self.consumers):
            if not c.retired:
                c.retired = True
                self.incident("scale-in", self.name, f"consumer {c.index}")
                self.rebalance()
                self._notify()
                return c
        return None

    def rebalance(self) -> None:
        """Assign partition p to the (p mod n)-th live consumer; restart orphaned partitions."""
        live = [c for c in self.consumers if c.alive and not c.retired]
        for c in self.consumers:
            c.subs = []
        self.owner = [None] * len(self.group.members)
        if not live:
            return
        for p, sub in enumerate(self.group.members):
            c = self.owner[p] = live[p % len(live)]
            c.subs.append(sub)
            if sub.crashed:
                sub.restart()
        self._notify()

    # -- the consumer loop -------------------------------------------------------------------------
    def _notify(self) -> None:
        """Wake every idle consumer (membership changed, a fix was deployed, ...)."""
        for c in self.consumers:
            ev, c.wake = c.wake, None
            if ev is not None:
                ev.succeed()

    def _consume(self, c: Consumer) -> Generator[simpy.Event, Any, None]:
        env, spec, busy_subs, busy = self.env, self.spec, self.busy_subs, self.busy
        per_batch, per_event, fixed = self.per_batch, self.per_event, self.per_event_fixed
        linger = spec.linger
        store = self.engine.store
        turn = 0
        try:
            while c.alive and not c.retired:
                subs = c.subs
                chosen = None
                now = env.now
                n = len(subs)
                for k in range(n):
                    sub = subs[(turn + k) % n]
                    if sub.name in busy_subs:
                        continue
                    if sub.fetched < store.head_position or sub.transport is not None:
                        sub.poll()  # (a caught-up partition has nothing to fetch)
                    if sub.inbox and (sub.retry_at is None or sub.retry_at <= now):
                        chosen = sub
                        turn = (turn + k + 1) % n
                        break
                if chosen is None:
                    yield from self._wait(c, linger)
                    continue
                size = len(chosen.inbox)
                cost = per_batch() + (
                    per_event() * size if fixed else sum(per_event() for _ in range(size))
                )
                busy_subs.add(chosen.name)
                # busy.add(1) and, after the batch, busy.add(-1), inlined (once per batch);
                # ``now`` is still the time: nothing above yielded
                busy.area += busy.value * (now - busy.last)
                busy.last = now
                busy.value += 1
                try:
                    if self.loop is None:
                        yield env.timeout(cost)
                    else:
                        if self.database is not None:
                            self.database()
                        hold = self.pump_wait() if self.pump_wait else 0.0
                        yield self.loop.run(cost, hold + self.pump_wait_per_event * size)
                finally:
                    busy_subs.discard(chosen.name)
                    t = env.now
                    busy.area += busy.value * (t - busy.last)
                    busy.last = t
                    busy.value -= 1
                if not chosen.crashed:
                    chosen.process()
                    self.batches += 1
        except simpy.Interrupt:
            return

    def _wait(self, c: Consumer, linger: float) -> Generator[simpy.Event, Any, None]:
        """Sleep until an event of one of ``c``'s partitions is appended (or a retry is due)."""
        env = self.env
        wake = c.wake = env.event()
        due = [t for s in c.subs if (t := s.next_due()) is not None]
        if self.poll > 0:  # the pump looks again after its idle poll
            due.append(env.now + self.poll)
        if due:
            yield wake | env.timeout(max(0.0, min(due) - env.now))
        else:
            yield wake
        c.wake = None
        if linger > 0:
            yield env.timeout(linger)

    def on_append(self, envs: list[Envelope], source: int = 0) -> None:
        """New events in the log, appended by served process ``source``: wake the idle
        consumers owning their partitions (with a poll, only when ``source`` is this
        group's process: the others' appends are seen at the next poll)."""
        part, owner, count = self._part, self.owner, len(self.owner)
        if self.poll > 0 and source != self.process:
            owner = [None] * count
        handles = self.projection.handlers
        mine = 0
        for e in envs:
            kind = type(e.payload)
            if kind in handles or kind is RawEvent:
                mine += 1
            sid = e.stream_id
            p = part.get(sid)
            if p is None:  # the engine's partitioning: a stable CRC32 of the stream id
                p = part[sid] = zlib.crc32(sid.encode()) % count
            c = owner[p]
            if c is not None and c.wake is not None:
                ev, c.wake = c.wake, None
                ev.succeed()
        if mine:  # self.outstanding.add(mine), inlined: this runs once per append
            level, now = self.outstanding, self.env.now
            level.area += level.value * (now - level.last)
            level.last = now
            level.value += mine

    # -- crashes and checkpoints -------------------------------------------------------------------
    def _fail(self, c: Consumer) -> Generator[simpy.Event, Any, None]:
        crash = self.spec.crash
        assert crash is not None  # only started when the scenario has crashes
        ttf = crash.ttf.sampler(random.Random(self.failures.getrandbits(64)))
        ttr = crash.ttr.sampler(random.Random(self.failures.getrandbits(64)))
        env = self.env
        while not c.gone():
            yield env.timeout(ttf())
            if c.gone() or not c.alive:
                return
            self.crash(c)
            repair = ttr()
            timeout = self.spec.session_timeout
            if timeout is not None and timeout < repair:
                yield env.timeout(timeout)
                self.rebalance()
                yield env.timeout(repair - timeout)
            else:
                yield env.timeout(repair)
            if c.gone():
                return
            c.alive = True
            c.proc = env.process(self._consume(c))
            self.incident("repaired", self.name, f"consumer {c.index}")
            self.rebalance()

    def crash(self, c: Consumer) -> None:
        """Crash consumer ``c`` now: its partitions lose their in-flight work."""
        c.alive = False
        self.consumer_crashes += 1
        lost_before = sum(s.lost for s in c.subs)
        for sub in c.subs:
            sub.crash()
        if c.proc is not None and c.proc.is_alive:
            c.proc.interrupt("crash")
        lost = sum(s.lost for s in c.subs) - lost_before
        self.incident(
            "crash", self.name, f"consumer {c.index} ({len(c.subs)} partitions, {lost} events lost)"
        )

    def _checkpoints(self, interval: float) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(interval)
            for sub in self.group.members:
                if not sub.crashed:
                    sub.commit()
