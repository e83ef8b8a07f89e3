"""The command path of the served processes on their event loops, and the replicas of the
read models that every process keeps (``serve --workers N``; see :mod:`cqrs_lab.sim.
event_loop` for one loop).

:class:`LoopCommandSide` runs, on the loop of the process a command reaches: the transport's
read of the request (``[server] transport``, a turn of the loop of its own when > 0), the
request's parsing (the ``request`` cost, less its ``answer_share``), the bounded writer queue (full:
shed), the writer's batch (``batch`` plus each command's ``[commands] service``, the
engine's decide and append, committed together at the batch's end), then each command's
answer (the rest of the ``request`` cost); the latency ends with the answer. With a
``[server] commit`` wait (the database's commit round trips of a batch) the batch then
blocks its loop that long, spending no CPU, before its events commit and its answers go.

With ``[commands] processes`` = N > 1 there are N loops, each with its own writer, and each
command goes to one process drawn uniformly at random (a seeded stream, drawn only then, so
one process keeps the tables of a single-process run). The kernel hands each *connection*
to a process and a load generator's user keeps its connection, so a client's reading back
of its own write goes to the process that took the write; other reads are spread per
request like the commands, which is what many users' connections amount to.

Every process keeps its own replica of every read model and pumps every event into it
(:func:`replicate`): the projection CPU is paid once per process, which is why adding a
process stops helping once the pumping dominates. Sagas run once, in a worker of their own
with its own CPU (``cqrs-lab project``, as ``serve --workers`` leaves them), not on a loop.
A writer batch's wait for the database's commit (``[server] commit``) and a pump step's
wait for its read (``[server] pump_wait``) block the process's loop without CPU. Process
0's replicas are the scenario's views (``balances``); process ``k``'s are named
``balances@k`` in the tables, each measured (lag, reads) on its own. A process learns at
once of its own appends; of the others' only at its pump's next idle poll (``[server]
poll`` seconds; 0: at once).

When the loops share the machine's cores (``[server] cores``), the rest of the machine
competes for them too: each arriving command costs ``[server] other_cpu`` seconds of CPU
(the load generator sending it and its reads, a local database's backends serving them)
spent on those cores (:class:`~cqrs_lab.sim.event_loop.Background`) as it arrives, while
the loops' items wait for a free core; a local database also spends ``[server]
database_cpu`` seconds there per transaction it serves: each writer batch (as the batch
starts) and each projection pump step (its read of the log). Per transaction, not per
command: a batch or a step that carries more commands costs the database no more, as its
measured CPU per command falls with the load. Without ``cores`` nothing is shared and it
costs nothing.
"""

from __future__ import annotations

import functools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import simpy

from cqrs_lab.core import Domain, Draw, Engine, Projection, Saga, Workload
from cqrs_lab.errors import CommandRefused, ConcurrencyError, CqrsLabError
from cqrs_lab.sim.clients import ClientPool
from cqrs_lab.sim.commands import CommandSide
from cqrs_lab.sim.consumers import GroupDriver, Incident
from cqrs_lab.sim.event_loop import Background, EventLoop
from cqrs_lab.sim.scenario_parts import CommandSpec, ProjectionSpec, ServerSpec
from cqrs_lab.sim.sim_store import SimStore

__all__ = ["LoopCommandSide", "Replica", "replicate"]

_START, _END, _OUTCOME, _POSITION = 4, 5, 6, 8


class _Writer:
    """One process's writer: its loop and the commands waiting for the next batch."""

    __slots__ = ("index", "loop", "pending", "queued")

    def __init__(self, index: int, loop: EventLoop) -> None:
        self.index, self.loop = index, loop
        self.pending: deque[list[Any]] = deque()
        self.queued = False  # a batch item is on the loop


class LoopCommandSide(CommandSide):
    """The command path of the served processes on their :class:`EventLoop` s (module
    docstring): parse, each writer's bounded queue and batches, the answer. One row per
    command. :attr:`current` is the process whose batch is committing (what the store tells
    the pumps)."""

    def __init__(
        self,
        env: simpy.Environment,
        engine: Engine,
        spec: CommandSpec,
        server: ServerSpec,
        loops: list[EventLoop],
        workload: Workload,
        draw: Draw,
        rng: random.Random,
        on_accepted: Callable[[int, int], None] | None = None,
        store: SimStore | None = None,
    ) -> None:
        super().__init__(env, engine, spec, workload, draw, rng, on_accepted)
        self.loops = loops
        self.store = store
        self.server = server
        self.request = server.request.sampler(random.Random(rng.getrandbits(64)))
        self.batch_cost = server.batch.sampler(random.Random(rng.getrandbits(64)))
        self.commit_wait = server.commit.sampler(random.Random(rng.getrandbits(64)))
        self.blocking = server.commit.mean > 0 or server.commit_per_command > 0
        self.transport: Callable[[], float] | None = None  # drawn last: older streams keep
        if server.transport.mean > 0:
            self.transport = server.transport.sampler(random.Random(rng.getrandbits(64)))
        self.transport_chill = server.transport_chill  # its own slow-down (None: the loop's)
        self.writers = [_Writer(i, loop) for i, loop in enumerate(loops)]
        cores = loops[0].cores
        self.other: Background | None = None  # the rest of the machine, on the shared cores
        if cores is not None and (server.other_cpu > 0 or server.database_cpu > 0):
            self.other = Background(env, cores)
        # ``CommandSide`` drew its spread stream when processes > 1: commands go to a writer
        self.batches = 0
        self.current = 0
        self.offered = 0  # commands due, sent or still waiting for a user of ``clients``
        self.clients: ClientPool | None = None  # the load generator's users, if bounded
        #: when each command's task started on its loop (its parse: where the served app's
        #: timing of it starts), by command number; None: not kept
        self.app_starts: dict[int, float] | None = None

    @property
    def waiting(self) -> int:
        return sum(len(w.pending) for w in self.writers)

    def arrive(self, kind: str, key: int) -> None:
        """A command is due: sent now, or once the load generator has a user free."""
        self.offered += 1
        if self.clients is None:
            self._send(kind, key)
        else:
            self.clients.send(lambda: self._send(kind, key))

    def _send(self, kind: str, key: int) -> None:
        job: list[Any] = [len(self.rows) + 1, kind, key, self.env.now, None, None, None, 0, None]
        self.rows.append(job)
        if self.other is not None and self.server.other_cpu > 0:
            self.other.spend(self.server.other_cpu)
        writers = self.writers
        w = writers[0] if self.spread is None else writers[self.spread.randrange(len(writers))]
        share = 1.0 - self.server.answer_share

        def parse() -> tuple[float, Callable[[], None]]:
            if self.app_starts is not None:
                self.app_starts[job[0]] = self.env.now
            return self.request() * share, lambda: self._enqueue(w, job)

        transport = self.transport
        if transport is None:
            w.loop.call(parse, kind="request")
        else:  # the transport's read, then the request's task: two turns of the loop
            w.loop.call(
                lambda: (transport(), lambda: w.loop.call(parse, kind="request")),
                self.transport_chill,
                "transport",
            )

    def _enqueue(self, w: _Writer, job: list[Any]) -> None:
        """Parsed: into the writer's queue, or shed when it is full (429)."""
        limit = self.spec.queue_limit
        if limit is not None and len(w.pending) >= limit:
            job[_OUTCOME] = "queue_full"
            self._answer(w, job)
            return
        w.pending.append(job)
        self.queued.add(1)
        if not w.queued:
            w.queued = True
            w.loop.call(lambda: self._batch(w))

    def _batch(self, w: _Writer) -> tuple[float, Callable[[], None]]:
        """The writer takes what waits (up to ``batch_limit``): one transaction, whose
        commit round trips block the loop (``commit``) once its CPU has run."""
        n = min(len(w.pending), self.server.batch_limit)
        jobs = [w.pending.popleft() for _ in range(n)]
        now = self.env.now
        self.queued.add(-n)
        self.busy.add(n)
        for job in jobs:
            job[_START] = now
        repeat = self.server.command_repeat  # each command after the first follows one
        cost = self.batch_cost() + self.service() + repeat * sum(self.service() for _ in jobs[1:])
        if self.other is not None and self.server.database_cpu > 0:
            self.other.spend(self.server.database_cpu)  # the database serves the transaction
        if self.blocking:
            w.loop.block(self.commit_wait() + self.server.commit_per_command * (n - 1))
        return cost, lambda: self._commit_batch(w, jobs)

    def _commit_batch(self, w: _Writer, jobs: list[list[Any]]) -> None:
        self.batches += 1
        self.current = w.index
        if self.store is not None:
            self.store.source = w.index
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
            self._answer(w, job)
        self.current = 0
        if self.store is not None:
            self.store.source = 0
        w.queued = bool(w.pending)
        if w.pending:
            w.loop.call(lambda: self._batch(w))

    def _answer(self, w: _Writer, job: list[Any]) -> None:
        share = self.server.answer_share

        def finish() -> None:
            job[_END] = self.env.now
            if self.clients is not None:
                self.clients.done()

        w.loop.call(lambda: (self.request() * share, finish), kind="request")


class Replica:
    """Process ``index``'s read models: a consumer group per view and the view's queries
    answered on its own projection (process 0: the engine's, ``answer`` None)."""

    def __init__(
        self,
        index: int,
        drivers: dict[str, GroupDriver],
        answers: dict[type, Callable[[Any], Any]] | None,
    ) -> None:
        self.index, self.drivers, self.answers = index, drivers, answers


def replicate(
    env: simpy.Environment,
    engine: Engine,
    domain: Domain,
    specs: dict[str, ProjectionSpec],
    index: int,
    rng: random.Random,
    incident: Incident,
) -> Replica:
    """Process ``index``'s replica of every view (sagas left out: one process runs them) on
    ``engine``: fresh projections named ``NAME@index``, each fed by its own consumer group."""
    drivers: dict[str, GroupDriver] = {}
    answers: dict[type, Callable[[Any], Any]] = {}
    for name, spec in specs.items():
        proj: Projection = domain.view(name).factory()
        if isinstance(proj, Saga):
            continue
        proj.__dict__["name"] = f"{name}@{index}"  # the instance's own subscription name
        replica_spec = replace(spec, name=f"{name}@{index}")
        drivers[name] = GroupDriver(
            env, engine, proj, replica_spec, random.Random(rng.getrandbits(64)), incident
        )
        for q in domain.queries:
            if q.view == name:
                answers[q.type] = functools.partial(q.answer, proj)
    return Replica(index, drivers, answers)
