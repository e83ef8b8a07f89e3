"""The asyncio driver: one writer task for commands, one pump task for the subscriptions.

The engine is single-threaded and never sleeps; this driver is what brings it to life in
real time, on the event loop's thread only:

- commands wait in a bounded queue (full: :class:`Overloaded`, which the app turns into
  429 with ``Retry-After``); the writer takes them in batches and runs each batch in one
  store transaction (group commit), resolving each command's future only after the commit;
  with ``group_commit`` (a store whose appends in a batch are sent together on exit, such as
  PostgreSQL's), a batch whose commit finds a stream moved by another process is run again
  one command per transaction, so only the command that lost the race is answered 409;
- the pump steps every subscription when there is news, sleeps until the next due retry or
  held delivery otherwise, restarts crashed consumers after ``restart_after`` seconds and
  wakes everyone waiting for a position (read-your-writes);
- :meth:`Driver.stop` drains both: queued commands are handled, projections catch up;
- the store failing (:class:`~cqrs_lab.errors.StoreFailure`: a database that cannot be
  reached, a SQLite file that failed a write) stops the driver (:meth:`Driver.fail`): the
  batch in flight is rolled back and answered 503 with the queued commands, later ones are
  refused 503, and ``on_failure`` is called (``serve`` exits 75 then, for its supervisor to
  restart it). It does not go on: a tick that applied events before the failure has moved
  the in-memory views and sagas past what its rolled-back transaction committed (a saga's
  commands gone, the saga sure it sent them), and only a restart, which starts from what
  was committed, puts the two back together (the kill -9 drills prove that path).

>>> import asyncio
>>> from cqrs_lab.http import ServerConfig, build_engine
>>> from cqrs_lab.domains.inventory import AddProduct
>>> config = ServerConfig(domain="cqrs_lab.domains.inventory")
>>> engine = build_engine(config).engine
>>> async def add_one() -> int:
...     driver = Driver(engine, config)
...     await driver.start()
...     result = await driver.submit(lambda: engine.dispatch(AddProduct("sku-1", "pen", 3)))
...     await driver.stop()
...     return engine.subscription("stock").position - result.position
>>> asyncio.run(add_one())
0
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from cqrs_lab.core import Engine, FaultPlan, Repository
from cqrs_lab.errors import (
    ConcurrencyError,
    Overloaded,
    StoreFailure,
    StoreUnavailable,
    TransactionAborted,
)
from cqrs_lab.http.config import ServerConfig
from cqrs_lab.http.projection_log import ProjectionLogger
from cqrs_lab.http.pump import TICK_BUDGET, ProjectionPump
from cqrs_lab.http.stages import StageTimings
from cqrs_lab.http.waiters import PositionWaiters

__all__ = ["TICK_BUDGET", "Driver", "Overloaded", "ProjectionLogger"]

T = TypeVar("T")
log = logging.getLogger("cqrs_lab.http.driver")
#: tries of a command whose transaction the database aborts (deadlock) before it is 503
ABORTED_TRIES = 3


class Driver(ProjectionPump):
    """Runs ``engine`` on the current event loop; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        config: ServerConfig,
        *,
        group: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
        group_commit: Callable[[int], contextlib.AbstractContextManager[Any]] | None = None,
        after_batch: Callable[[], None] | None = None,
        stages: StageTimings | None = None,
    ) -> None:
        self.engine = engine
        self.stages = stages
        self.config = config
        self.group = group if group is not None else contextlib.nullcontext
        self.group_commit = group_commit
        self.regrouped = 0  # group commits that lost a race and ran again one per transaction
        self.after_batch = after_batch
        self.queue: deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = deque()
        self.faults: FaultPlan | None = None
        self.crashed_at: dict[str, float] = {}
        self.running = False
        self.ticks = 0
        self.shed = 0
        self._news = asyncio.Event()  # bound to the loop that first waits on it
        self._work = asyncio.Event()
        self._waiters = PositionWaiters()  # readers waiting for a projection's position
        self._tasks: list[asyncio.Task[None]] = []
        #: the store's failure that stopped the driver (see the module), and who to tell
        self.failed: StoreFailure | None = None
        self.on_failure: Callable[[StoreFailure], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.running = True
        self._tasks = [
            asyncio.create_task(self._writer(), name="cqrs-writer"),
            asyncio.create_task(self._pump(), name="cqrs-pump"),
        ]

    async def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown: handle the queued commands, let projections catch up, stop."""
        self.running = False
        self._work.set()
        self._news.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks), timeout)
        for task in self._tasks:
            task.cancel()
        left = len(self.queue)
        if self.failed is not None:  # nothing more goes to a failed store
            log.info("driver stopped after the store failed: %d commands refused", left)
            return
        self._drain_pump(rounds=10_000)
        log.info(
            "driver stopped: %d commands left unhandled; projections at %s of head %d",
            left,
            self.engine.positions(),
            self.engine.store.head_position,
        )

    def fail(self, exc: StoreFailure) -> None:
        """The store failed: stop, refuse what is queued and what comes (see the module)."""
        if self.failed is not None:
            return
        self.failed = exc
        self.running = False
        log.error("the event store failed: %s; stopping: a restart recovers what committed", exc)
        refused = self._refusal()
        while self.queue:
            _, fut = self.queue.popleft()
            if not fut.done():
                fut.set_exception(refused)
        self._work.set()
        self._news.set()
        if self.on_failure is not None:
            self.on_failure(exc)

    def _refusal(self) -> StoreUnavailable:
        return StoreUnavailable(f"the server is stopping: the event store failed ({self.failed})")

    @property
    def alive(self) -> bool:
        return self.running and all(not t.done() for t in self._tasks)

    # -- commands ----------------------------------------------------------------------------
    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn`` (which calls the engine); the future resolves after its commit."""
        if self.failed is not None:
            raise self._refusal()
        if len(self.queue) >= self.config.queue_size or not self.running:
            self.shed += 1
            raise Overloaded(1)
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.queue.append((fn, fut))
        self._work.set()
        return fut

    async def _writer(self) -> None:
        work = self._work
        queue = self.queue
        limit = self.config.batch_size
        while True:
            if not queue:
                if not self.running:
                    return
                work.clear()
                await work.wait()
                continue
            t0 = time.perf_counter() if self.stages is not None else 0.0
            c0 = time.thread_time() if self.stages is not None else 0.0
            items = [queue.popleft() for _ in range(min(limit, len(queue)))]
            speculative = self.group_commit is not None and len(items) > 1
            counted = self.engine.metrics.mark() if speculative else None
            try:
                if speculative:
                    assert self.group_commit is not None
                    done = self._run(items, self.group_commit(len(items)))
                else:
                    done = self._run(items, self.group())
            except StoreFailure as exc:  # rolled back: nothing in the batch is acknowledged
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(exc)
                self.fail(exc)
                return
            except Exception as exc:
                if isinstance(exc, TransactionAborted) or (
                    counted is not None and isinstance(exc, ConcurrencyError)
                ):
                    # rolled back: what the commands counted did not happen; they run again
                    if counted is not None:
                        self.engine.metrics.rewind(counted)
                    done = self._one_by_one(items, exc)
                else:  # the commit failed: nothing in the batch is acknowledged
                    log.exception("commit failed")
                    done = [(fut, False, exc) for _, fut in items]
                    self._forget_aggregates()
            for fut, ok, value in done:
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
            self.notify()
            if self.stages is not None:  # --stage-timings: the batch, commit and answers
                wall = time.perf_counter() - t0
                self.stages.add("writer", "batch", wall, len(items))
                # what of it the loop waited (the database's round trips), not its CPU
                wait = max(0.0, wall - (time.thread_time() - c0))
                self.stages.add("commit", "batch", wait, len(items))
            await asyncio.sleep(0)  # let the pump and the readers in between batches

    def _run(
        self,
        items: list[tuple[Callable[[], Any], asyncio.Future[Any]]],
        group: contextlib.AbstractContextManager[Any],
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """Call each command in ``group`` (one transaction); each one's outcome."""
        done: list[tuple[asyncio.Future[Any], bool, Any]] = []
        with group:
            for fn, fut in items:
                try:
                    done.append((fut, True, fn()))
                except (StoreFailure, TransactionAborted):  # the whole batch fails with it
                    raise
                except Exception as exc:  # the route turns it into a response
                    done.append((fut, False, exc))
            if self.after_batch is not None:
                self.after_batch()
        return done

    def _one_by_one(
        self,
        items: list[tuple[Callable[[], Any], asyncio.Future[Any]]],
        exc: ConcurrencyError | TransactionAborted,
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """A group commit found a stream moved by another process, or the database aborted
        the batch's transaction (``exc``), and it rolled back: run its commands again one per
        transaction, where the one that lost the race is answered by its own append's
        conflict and one aborted again is tried :data:`ABORTED_TRIES` times in all."""
        log.info("batch of %d commands rolled back (%s): one by one", len(items), exc)
        self.regrouped += 1
        self._forget_aggregates()
        done: list[tuple[asyncio.Future[Any], bool, Any]] = []
        for i, item in enumerate(items):
            for attempt in range(1, ABORTED_TRIES + 1):
                counted = self.engine.metrics.mark()
                try:
                    done.extend(self._run([item], self.group()))
                except TransactionAborted as aborted:
                    self.engine.metrics.rewind(counted)
                    self._forget_aggregates()
                    if attempt < ABORTED_TRIES:
                        continue
                    done.append((item[1], False, aborted))  # 503, Retry-After 1
                except StoreFailure as lost:  # this one and the rest: not acknowledged
                    done.extend((fut, False, lost) for _, fut in items[i:])
                    self.fail(lost)
                    return done
                except Exception as failed:
                    log.exception("commit failed")
                    done.append((item[1], False, failed))
                    self._forget_aggregates()
                break
        return done

    def _forget_aggregates(self) -> None:
        # cached aggregates may hold rolled-back events: with a shared store, another
        # process can bring a stream back to their version, so drop them all
        engine = self.engine
        fresh = Repository(engine.store, cache_size=engine.repository.cache_size)
        engine.repository = engine.bus.repository = fresh
