"""Many writer processes and polling projection workers on one PostgreSQL log: the
"Many writers" demonstration (notebook 7) and the gap-safety proof test.

:func:`run` starts ``writers`` processes (spawn, one connection each) that append ``events``
events in all, in transactions of a random number of appends of random length (seeded), with
short pauses inside some transactions between taking positions and committing, so commits
reorder. Meanwhile projection workers (threads, one engine and one store connection each)
follow the global order with the lab's own subscription loop (at-least-once), some with the
safe reader and some with the naive one (see :mod:`cqrs_lab.stores.postgres_reader`),
recording every application in an ApplicationLog. When the writers are done every worker
catches up to the head; the engines and logs are returned for the lab's checks
(:func:`cqrs_lab.checks.invariants.check_no_loss`). :func:`close` closes the workers'
connections.

It reads the wall clock and sleeps (it drives real processes), so it lives with the stores,
never in the deterministic core.

>>> Ticks().count, Ticks().name
(0, 'ticks')
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from dataclasses import dataclass, field

from cqrs_lab.checks.application_log import ApplicationLog
from cqrs_lab.core import (
    ANY,
    Engine,
    Envelope,
    Event,
    EventRegistry,
    ManualClock,
    Projection,
    RawEvent,
    SequentialIds,
    on,
)
from cqrs_lab.stores.postgres import PostgresEventStore, Reader

__all__ = ["Run", "Ticked", "Ticks", "Worker", "close", "run", "write"]


@dataclass(frozen=True, slots=True)
class Ticked(Event):
    writer: int
    n: int


class Ticks(Projection):
    """Counts events, and how long after its append each was applied (seconds)."""

    name = "ticks"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.lags: list[float] = []

    @on(Ticked)
    def _ticked(self, event: Ticked, env: Envelope) -> None:
        self.count += 1
        self.lags.append(time.monotonic() - env.recorded_at)


class _SystemMonotonic:
    """time.monotonic itself: one clock for every process of this machine."""

    def now(self) -> float:
        return time.monotonic()


#: writer 0 holds every this-many-th transaction's commit back for a while (seconds, drawn)
STRAGGLE_EVERY, STRAGGLE_S = 64, (0.2, 0.4)


def write(dsn: str, schema: str, writer: int, events: int, seed: int, pause_p: float) -> float:
    """Append ``events`` events; returns the seconds it took (runs in a writer process).

    Writer 0 is also a straggler: every :data:`STRAGGLE_EVERY`-th transaction of its own it
    holds its commit back for 0.2-0.4 s after taking its positions, long enough for a
    follower that is behind the head (a busy machine) to read past the gap while it is
    open. The short pauses alone left the naive followers nothing to skip once in a test
    run whose followers lagged the writers."""
    rng = random.Random(seed)
    transactions = 0
    store = PostgresEventStore(
        dsn, _SystemMonotonic(), SequentialIds(f"w{writer}-"), schema=schema, pool_size=1
    )
    start = time.monotonic()
    written = 0
    try:
        while written < events:
            with store.batch():  # one transaction of 1-3 appends of 1-8 events
                transactions += 1
                straggle = writer == 0 and transactions % STRAGGLE_EVERY == 0
                for _ in range(rng.randint(1, 3)):
                    k = min(rng.randint(1, 8), events - written)
                    batch = [RawEvent("Ticked", 1, {"writer": writer, "n": written + i})
                             for i in range(k)]  # fmt: skip
                    store.append(f"w{writer}-s{rng.randrange(16)}", batch, ANY)
                    written += k
                    if rng.random() < pause_p:  # positions taken, commit held back
                        time.sleep(rng.uniform(0.0005, 0.004))
                    if written >= events:
                        break
                if straggle:
                    time.sleep(rng.uniform(*STRAGGLE_S))
    finally:
        store.close()
    return time.monotonic() - start


@dataclass
class Worker:
    """One projection worker: its reader, engine, log and thread."""

    reader: Reader
    engine: Engine
    log: ApplicationLog
    errors: list[BaseException] = field(default_factory=list)

    @property
    def projection(self) -> Ticks:
        found = self.engine.projection("ticks")
        assert isinstance(found, Ticks)
        return found

    def applied(self) -> list[int]:
        return [e.position for e in self.log.applied_sequence("ticks")]


def _follow(worker: Worker, writing: threading.Event, head: list[int]) -> None:
    try:
        sub = worker.engine.subscription("ticks")
        while writing.is_set():
            if sub.pump() == 0:
                time.sleep(0.002)
        # catch up: read to the head (a naive reader's position stays below the positions
        # it skipped, so compare what it has fetched)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sub.pump() == 0:
                if sub.fetched >= head[0]:
                    break
                time.sleep(0.005)
    except BaseException as exc:  # reported by the test
        worker.errors.append(exc)


@dataclass
class Run:
    """What :func:`run` returns: the workers, and what the writers committed."""

    workers: list[Worker]
    committed: list[int]  # every committed position, in order
    seconds: float  # wall time of the writing phase
    events: int
    writers: int


def run(
    dsn: str, schema: str, *, writers: int, events: int, readers: tuple[Reader, ...],
    seed: int = 13, pause_p: float = 0.1,
) -> Run:  # fmt: skip
    """Write with ``writers`` processes while one worker per entry of ``readers`` follows."""
    registry = EventRegistry([Ticked])
    setup = PostgresEventStore(dsn, ManualClock(), SequentialIds("x"), registry, schema=schema)
    workers = []
    for i, reader in enumerate(readers):
        store = PostgresEventStore(
            dsn, _SystemMonotonic(), SequentialIds(f"r{i}-"), registry,
            schema=schema, reader=reader, pool_size=1,
        )  # fmt: skip
        log = ApplicationLog()
        engine = Engine(clock=ManualClock(), store=store, registry=registry, recorder=log)
        log.attach(engine)
        engine.subscribe(Ticks(), "at-least-once", batch_size=500)
        workers.append(Worker(reader, engine, log))
    writing, head = threading.Event(), [0]
    writing.set()
    threads = [threading.Thread(target=_follow, args=(w, writing, head)) for w in workers]
    for t in threads:
        t.start()
    share = [events // writers + (i < events % writers) for i in range(writers)]
    ctx = multiprocessing.get_context("spawn")
    start = time.monotonic()
    try:
        with ctx.Pool(writers) as pool:
            jobs = [
                pool.apply_async(write, (dsn, schema, i, n, seed * 1000 + i, pause_p))
                for i, n in enumerate(share)
            ]
            for job in jobs:
                job.get(timeout=120)
        seconds = time.monotonic() - start
    finally:
        head[0] = setup.head_position
        writing.clear()
        for t in threads:
            t.join(90)
    committed = [int(r[0]) for r in setup.query("SELECT position FROM events ORDER BY position")]
    setup.close()
    return Run(workers, committed, seconds, events, writers)


def close(result: Run) -> None:
    """Close every worker's store connection."""
    for w in result.workers:
        store = w.engine.store
        assert isinstance(store, PostgresEventStore)
        store.close()
