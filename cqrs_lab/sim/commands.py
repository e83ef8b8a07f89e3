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
        self.queue: deque[list[Any]] = deque()
        self.blocked: deque[list[Any]] = deque()
        self.free = spec.handlers  # idle handlers
        self.queued = Level(env)  # waiting (queue + blocked)
        self.busy = Level(env)
        self.service = spec.service.sampler(random.Random(rng.getrandbits(64)))
        draw.rng = random.Random(rng.getrandbits(64))  # the payloads' own stream
        self.draw = draw
        self.samplers = {k.name: k.sample for k in workload.kinds}
        self.on_accepted = on_accepted
        self.tokens = float(spec.burst)
        self.token_time = 0.0

    # -- admission ------------------------------------------------------------------------------
    def arrive(self, kind: str, key: int) -> None:
        now = self.env.now
        job = [len(self.rows) + 1, kind, key, now, None, None, None, 0, None]
        self.rows.append(job)
        spec = self.spec
        if spec.rate_limit is not None:
            self.tokens = min(spec.burst, self.tokens + (now - self.token_time) * spec.rate_limit)
            self.token_time = now
            if self.tokens < 1.0:
                job[_END], job[_OUTCOME] = now, "rate_limited"
                return
            self.tokens -= 1.0
        limit = spec.queue_limit
        if limit is not None and (len(self.queue) >= limit or self.blocked):
            if spec.admission == "reject":
                job[_END], job[_OUTCOME] = now, "queue_full"
                return
            if spec.admission == "block":
                self.blocked.append(job)
                self.queued.add(1)
                return
            old = self.queue.popleft()  # shed-oldest
            old[_END], old[_OUTCOME] = now, "dropped_oldest"
            self.queued.add(-1)
        self.queue.append(job)
        self.queued.add(1)
        if self.free:
            self.free -= 1
            self._take()

    # -- handlers ---------------------------------------------------------------------------------
    def _command(self, job: list[Any]) -> Command:
        """The domain's sampler for the job's kind, on its key (seq: the job's number)."""
        draw = self.draw
        draw.index, draw.seq = job[2], job[0]
        return self.samplers[job[1]](draw)

    # -- handlers: SimPy timeouts with callbacks (no process per handler or command) --------------
    def _take(self) -> None:
        """A free handler takes the next queued command and decides it."""
        job = self.queue.popleft()
        if self.blocked:  # room freed: the longest-blocked caller gets in
            self.queue.append(self.blocked.popleft())
        now = self.env.now
        self.queued.add(-1)
        busy = self.busy  # Level.add(1), inlined: this runs once per command
        busy.area += busy.value * (now - busy.last)
        busy.last = now
        busy.value += 1
        job[_START] = now
        self._decide(job, self._command(job))

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
        job[_END] = self.env.now
        self.busy.add(-1)
        if self.queue:
            self._take()
        else:
            self.free += 1
