"""The driver's pump (a part of its class, :class:`ProjectionPump`; the driver is
:class:`~cqrs_lab.http.driver.Driver`): one task that steps every subscription when there is
news, sleeps until the next due retry or held delivery otherwise, restarts crashed consumers
after ``restart_after`` seconds and wakes the readers waiting for a position
(read-your-writes).

A tick is bounded (:data:`TICK_BUDGET`): replaying a long log after a restart leaves the loop
every few milliseconds, so requests are answered during the replay, not after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from cqrs_lab.core import Engine, FaultPlan
from cqrs_lab.errors import StoreFailure
from cqrs_lab.http.config import ServerConfig
from cqrs_lab.http.stages import StageTimings
from cqrs_lab.http.waiters import PositionWaiters

__all__ = ["TICK_BUDGET", "ProjectionPump"]

log = logging.getLogger("cqrs_lab.http.driver")
#: seconds of projection work after which a tick yields the loop (each subscription still
#: takes at least one step per tick, so none starves)
TICK_BUDGET = 0.005


class ProjectionPump:
    """The pump of a :class:`~cqrs_lab.http.driver.Driver` (which sets the attributes below
    and defines ``fail``, called when the store fails under a tick)."""

    engine: Engine
    config: ServerConfig
    stages: StageTimings | None
    group: Callable[[], contextlib.AbstractContextManager[Any]]
    after_batch: Callable[[], None] | None
    faults: FaultPlan | None
    crashed_at: dict[str, float]
    running: bool
    ticks: int
    _news: asyncio.Event
    _waiters: PositionWaiters
    _tasks: list[asyncio.Task[None]]
    fail: Callable[[StoreFailure], None]  # the driver's: stop, answer 503, tell on_failure

    def notify(self) -> None:
        """New events were appended: wake the pump."""
        self._news.set()

    def _tick(self, max_steps: int = 8) -> bool:
        """Pump every subscription a few steps (bounded, so requests are not starved).

        Each subscription takes one step (a batch), then more while there is work, up to
        ``max_steps`` and while the tick is within :data:`TICK_BUDGET` seconds: replaying a
        long log after a restart then leaves the loop every few milliseconds, and requests
        (reads that say they are stale, ``/readyz`` that says it is catching up) are
        answered during the replay instead of after it.

        Returns whether there is more to do now: events were dealt with, or a subscription
        that is up and not waiting for a retry still has fetched or unfetched events.
        """
        subs = list(self.engine.subscriptions.values())
        done = 0
        stages = self.stages
        clock = time.perf_counter
        deadline = clock() + TICK_BUDGET
        with self.group():
            for sub in subs:
                t0 = clock()
                n = 0
                for _ in range(max_steps):
                    step = sub.step()
                    n += step
                    if (step == 0 and sub.polled == 0) or clock() > deadline:
                        break
                if n and stages is not None:  # --stage-timings: a pump that did work
                    stages.add("projection", sub.name, clock() - t0, n)
                done += n
            if self.after_batch is not None:
                self.after_batch()
        self.ticks += 1
        head = self.engine.store.head_position
        return done > 0 or any(
            not s.crashed and s.retry_at is None and (s.inbox or s.fetched < head or s.rebuilding)
            for s in subs
        )

    def _drain_pump(self, rounds: int) -> None:
        for _ in range(rounds):
            if not self._tick():
                break

    def _supervise(self, now: float) -> float | None:
        """Restart consumers down for ``restart_after`` s; returns when the next one is due."""
        after = self.config.restart_after
        due: float | None = None
        for name, sub in self.engine.subscriptions.items():
            if not sub.crashed:
                self.crashed_at.pop(name, None)
                continue
            since = self.crashed_at.setdefault(name, now)
            if after is None:
                continue
            if now - since >= after:
                sub.restart()
                self.crashed_at.pop(name, None)
                log.info("restarted crashed consumer %s", name)
            else:
                due = since + after if due is None else min(due, since + after)
        return due

    async def _pump(self) -> None:
        news = self._news
        clock = self.engine.clock
        stages = self.stages
        while self.running:
            news.clear()
            t0 = time.perf_counter() if stages is not None else 0.0
            c0 = time.thread_time() if stages is not None else 0.0
            try:
                moved = self._tick()
            except StoreFailure as exc:
                self.fail(exc)
                return
            self._wake_readers()
            if stages is not None and moved:  # --stage-timings: a tick that did work
                wall = time.perf_counter() - t0
                stages.add("pump", "tick", wall)
                stages.add("pump-wait", "tick", max(0.0, wall - (time.thread_time() - c0)))
            if moved:
                await asyncio.sleep(0)
                continue
            now = clock.now()
            due = [t for t in (self.engine.next_due(), self._supervise(now)) if t is not None]
            wait = self.config.idle_poll
            if due:
                wait = max(0.0, min(wait, min(due) - now))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(news.wait(), wait)

    def _wake_readers(self) -> None:
        subs = self.engine.subscriptions
        self._waiters.wake(lambda name: subs[name].position if name in subs else 0)

    async def wait_for(self, projection: str, position: int, budget: float) -> bool:
        """Wait up to ``budget`` seconds until ``projection`` has dealt with ``position``
        (woken once it has, not on every tick: :mod:`cqrs_lab.http.waiters`)."""
        sub = self.engine.subscription(projection)
        if sub.position >= position:
            return True
        if not self._tasks or budget <= 0:  # not started: nothing will move it
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(sub.name, position, fut)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(fut, budget)
        return self.engine.subscription(projection).position >= position  # a rebuild swaps it

    def set_faults(self, plan: FaultPlan | None) -> None:
        self.faults = plan if plan is not None and not plan.empty else None
        self.engine.set_faults(self.faults)
        self.notify()

    def pending(self) -> Iterator[str]:
        for name, sub in self.engine.subscriptions.items():
            if sub.crashed:
                yield name
