"""The command side in SimPy time: admission with backpressure, then a pool of handlers.

Admission (in this order): a token-bucket rate limit (``rate_limited``, a 429), then the
bounded queue: ``reject`` (``queue_full``, a 429), ``block`` (the caller waits for room), or
``shed-oldest`` (the oldest queued command is dropped: ``dropped_oldest``). All three are
load shed: the summary counts them together as ``shed``. A handler takes a
command, runs the real handler on a private copy of the aggregate (``bus.decide``), spends
its service time, then appends (``commit``); if another handler appended to that stream
meanwhile the append fails with an optimistic-concurrency conflict and the command is
decided again (``retries``), up to ``max_retries`` (then ``conflict``). A business refusal
(insufficient funds) is ``refused``; appended commands are ``accepted``.

With ``processes`` > 1 the command side is that many server processes (``serve --workers
N``): each arrival goes to one of them at random (a seeded stream, drawn only then, so one
process keeps the tables of a single-process run), and each has its own token bucket,
bounded queue and pool of ``handlers`` handlers; only the log is shared.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from cqrs_lab.core import Command, Decision, Draw, Engine, Workload
from cqrs_lab.errors import CommandRefused, ConcurrencyError, CqrsLabError
from cqrs_lab.sim.scenario_parts import CommandSpec

__all__ = ["COMMAND_COLUMNS", "CommandSide", "Level"]

COMMAND_COLUMNS = (
    "command",
    "kind",
    "key",
    "arrival_s",
    "start_s",
    "end_s",
    "outcome",
    "retries",
    "position",
)
_START, _END, _OUTCOME, _RETRIES, _POSITION = 4, 5, 6, 7, 8


class _Process:
    """One server process's admission state: its queue, blocked callers, idle handlers and
    token bucket."""

    __slots__ = ("blocked", "free", "queue", "token_time", "tokens")

    def __init__(self, spec: CommandSpec) -> None:
        self.queue: deque[list[Any]] = deque()
        self.blocked: deque[list[Any]] = deque()
        self.free = spec.handlers  # idle handlers
        self.tokens = float(spec.burst)
        self.token_time = 0.0


class Level:
    """A count that changes over time, with its time integral (for means and Little's law)."""

    __slots__ = ("area", "env", "last", "value")

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.value = 0
        self.area = 0.0
        self.last = 0.0

    def add(self, delta: int) -> None:
        now = self.env.now
        self.area += self.value * (now - self.last)
        self.last = now
        self.value += delta

    def area_at(self, now: float) -> float:
        return self.area + self.value * (now - self.last)


class CommandSide:
    """Admission control and the handler pool; one row per command in :attr:`rows`.

    Commands are drawn by the domain workload's samplers, through one reused ``draw``: its
    ``index`` is the key chosen for the job, its ``seq`` the job's number.
    """

    def __init__(
        self,
        env: simpy.Environment,
        engine: Engine,
        spec: CommandSpec,
        workload: Workload,
        draw: Draw,
        rng: random.Random,
        on_accepted: Callable[[int, int], None] | None = None,
    ) -> None:
        self.env, self.engine, self.spec = env, engine, spec
        self.rows: list[list[Any]] = []
        self.processes = [_Process(spec) for _ in range(spec.processes)]
        self.job_process: dict[int, _Process] = {}  # job number -> its process (if > 1)
        self.queued = Level(env)  # waiting (queue + blocked)
        self.busy = Level(env)
        self.service = spec.service.sampler(random.Random(rng.getrandbits(64)))
        draw.rng = random.Random(rng.getrandbits(64))  # the payloads' own stream
        self.draw = draw
        self.samplers = {k.name: k.sample for k in workload.kinds}
        self.on_accepted = on_accepted
        self.spread = random.Random(rng.getrandbits(64)) if spec.processes > 1 else None

    @property
    def waiting(self) -> int:
        """Commands queued or blocked, over every process."""
        return sum(len(p.queue) + len(p.blocked) for p in self.processes)

    # -- admission ------------------------------------------------------------------------------
    def arrive(self, kind: str, key: int) -> None:
        now = self.env.now
        job: list[Any] = [len(self.rows) + 1, kind, key, now, None, None, None, 0, None]
        self.rows.append(job)
        spec = self.spec
        if self.spread is None:
            proc = self.processes[0]
        else:
            proc = self.processes[self.spread.randrange(spec.processes)]
        if spec.rate_limit is not None:
            proc.tokens = min(spec.burst, proc.tokens + (now - proc.token_time) * spec.rate_limit)
            proc.token_time = now
            if proc.tokens < 1.0:
                job[_END], job[_OUTCOME] = now, "rate_limited"
                return
            proc.tokens -= 1.0
        limit = spec.queue_limit
        if limit is not None and (len(proc.queue) >= limit or proc.blocked):
            if spec.admission == "reject":
                job[_END], job[_OUTCOME] = now, "queue_full"
                return
            if spec.admission == "block":
                proc.blocked.append(job)
                self.queued.add(1)
                if self.spread is not None:
                    self.job_process[job[0]] = proc
                return
            old = proc.queue.popleft()  # shed-oldest
            old[_END], old[_OUTCOME] = now, "dropped_oldest"
            self.job_process.pop(old[0], None)
            self.queued.add(-1)
        if self.spread is not None:
            self.job_process[job[0]] = proc
        if proc.free and self.queued.value == 0:
            # a handler is idle and nobody waits anywhere: straight to it. Queueing and taking
            # the job at once would add 0 * (now - last) to the queue level's area, so skipping
            # that is exact; it saves two Level.add calls per command on an unloaded pool.
            proc.free -= 1
            self._start(job, now)
            return
        proc.queue.append(job)
        self.queued.add(1)
        if proc.free:
            proc.free -= 1
            self._take(proc)

    # -- handlers ---------------------------------------------------------------------------------
    def _command(self, job: list[Any]) -> Command:
        """The domain's sampler for the job's kind, on its key (seq: the job's number)."""
        draw = self.draw
        draw.index, draw.seq = job[2], job[0]
        return self.samplers[job[1]](draw)

    # -- handlers: SimPy timeouts with callbacks (no process per handler or command) --------------
    def _take(self, proc: _Process) -> None:
        """A free handler of ``proc`` takes its next queued command and decides it."""
        job = proc.queue.popleft()
        if proc.blocked:  # room freed: the longest-blocked caller gets in
            proc.queue.append(proc.blocked.popleft())
        now = self.env.now
        self.queued.add(-1)
        self._start(job, now)

    def _start(self, job: list[Any], now: float) -> None:
        """A handler (already counted out of ``free``) starts on ``job`` at ``now``."""
        busy = self.busy  # Level.add(1), inlined: this runs once per command
        busy.area += busy.value * (now - busy.last)
        busy.last = now
        busy.value += 1
        job[_START] = now
        draw = self.draw  # self._command(job), inlined: once per command
        draw.index, draw.seq = job[2], job[0]
        self._decide(job, self.samplers[job[1]](draw))

    def _decide(self, job: list[Any], cmd: Command) -> None:
        """Run the handler on a private copy now; append after the service time."""
        timeout = self.env.timeout(self.service())
        try:
            decision = self.engine.bus.decide(cmd)
        except CommandRefused:
            job[_OUTCOME] = "refused"
            timeout.callbacks.append(lambda _: self._done(job))
            return
        except CqrsLabError:
            job[_OUTCOME] = "error"
            timeout.callbacks.append(lambda _: self._done(job))
            return
        timeout.callbacks.append(lambda _: self._commit(job, cmd, decision))

    def _commit(self, job: list[Any], cmd: Command, decision: Decision) -> None:
        try:
            result = decision.commit()
        except ConcurrencyError:  # another handler appended to the stream meanwhile
            job[_RETRIES] += 1
            if job[_RETRIES] > self.spec.max_retries:
                job[_OUTCOME] = "conflict"
                self._done(job)
            else:
                self._decide(job, cmd)
            return
        job[_OUTCOME], job[_POSITION] = "accepted", result.position
        if self.on_accepted is not None:
            self.on_accepted(job[2], result.position)
        self._done(job)

    def _done(self, job: list[Any]) -> None:
        job[_END] = now = self.env.now
        busy = self.busy  # Level.add(-1), inlined: this runs once per command
        busy.area += busy.value * (now - busy.last)
        busy.last = now
        busy.value -= 1
        proc = self.processes[0] if self.spread is None else self.job_process.pop(job[0])
        if proc.queue:
            self._take(proc)
        else:
            proc.free += 1
