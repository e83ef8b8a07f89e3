"""One simulation run: the real engine with its clock on SimPy's ``env.now``.

>>> from cqrs_lab.sim import builtin_scenario, simulate
>>> result = simulate(builtin_scenario("baseline"), duration=2.0)
>>> int(result.summary["commands"].iloc[0]) > 0
True
"""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable, Generator
from typing import Any

import simpy

from cqrs_lab.core import (
    CallableClock,
    Draw,
    Engine,
    EventRegistry,
    Projection,
    RecorderFanout,
    Saga,
    SequentialIds,
    SubscriptionRecorder,
    install,
)
from cqrs_lab.display import show_progress
from cqrs_lab.sim import incidents
from cqrs_lab.sim.application_rows import ApplicationRecorder
from cqrs_lab.sim.arrivals import KeyChooser, MixChooser, arrival_times
from cqrs_lab.sim.autoscale import autoscaler
from cqrs_lab.sim.clients import ClientPool
from cqrs_lab.sim.commands import CommandSide
from cqrs_lab.sim.consumers import GroupDriver
from cqrs_lab.sim.event_loop import Cores, EventLoop
from cqrs_lab.sim.event_loops import LoopCommandSide, Replica, replicate
from cqrs_lab.sim.loop_speed import LoopSpeed
from cqrs_lab.sim.readers import ReadSide
from cqrs_lab.sim.results import SimResult, build_result
from cqrs_lab.sim.scenario import Scenario, workload_of
from cqrs_lab.sim.scenario_parts import ServerSpec
from cqrs_lab.sim.sim_store import DelayedSimStore, SimStore

__all__ = ["Simulation", "simulate"]


def _stream_seed(seed: int, name: str) -> random.Random:
    """An independent random stream per part of the model (common random numbers)."""
    return random.Random((seed << 32) ^ zlib.crc32(name.encode()))


def _loop_speed(sv: ServerSpec, rng: random.Random, duration: float) -> LoopSpeed | None:
    """A loop's wandering speed (``[server] speed_sd``), or None when constant."""
    return LoopSpeed(sv.speed_sd, sv.speed_time, rng, duration) if sv.speed_sd > 0 else None


class Simulation:
    """Builds the engine, installs the scenario's domain and starts every SimPy process.

    The domain is wired by the one :func:`cqrs_lab.core.install` (its events, upcasters,
    handlers, the scenario's views and their queries); each view is fed by a consumer group
    driven in SimPy time. ``run()`` advances to the scenario's duration and returns a
    :class:`SimResult`. ``recorder`` also observes every delivery and application (e.g. the
    checks' ``ApplicationLog``, so the invariants can be checked on the run).
    """

    def __init__(self, scenario: Scenario, recorder: SubscriptionRecorder | None = None) -> None:
        self.scenario = s = scenario
        self.domain = domain = s.resolved_domain
        self.workload = workload = workload_of(domain, s.source)
        self.params = params = s.params()
        self.env = env = simpy.Environment()
        self.recorder = ApplicationRecorder()
        # env.now without a Python frame: its property returns ``env._now`` (SimPy 4), read
        # here directly (the engine reads the clock several times per command)
        clock = CallableClock(functools.partial(getattr, env, "_now"))
        ids = SequentialIds()
        registry = EventRegistry()
        delayed = s.commands.commit_visibility.mean > 0
        store_class = DelayedSimStore if delayed else SimStore
        self.store = store = store_class(clock, ids, registry)
        self.engine = engine = Engine(
            clock=clock,
            rng=_stream_seed(s.seed, "engine"),
            ids=ids,
            store=store,
            registry=registry,
            recorder=self.recorder
            if recorder is None
            else RecorderFanout([self.recorder, recorder]),
        )
        attach = getattr(recorder, "attach", None)
        if attach is not None:  # the checks' ApplicationLog follows rebuilds through the engine
            attach(engine)
        self.incidents: list[tuple[float, str, str, str]] = []
        self.drivers: list[GroupDriver] = []
        specs = {p.name: p for p in s.projections}

        def consumer_group(name: str, proj: Projection) -> Any:
            spec = specs[name]
            driver = GroupDriver(env, engine, proj, spec, _stream_seed(s.seed, name), self.incident)
            if s.poison:
                incidents.poison_guard(driver)
            self.drivers.append(driver)
            if spec.autoscale is not None:
                env.process(autoscaler(env, driver, spec.autoscale))
            return driver.group

        self.installed = install(engine, domain, views=list(specs), subscribe=consumer_group)
        self.projections: dict[str, Projection] = self.installed.views
        # [server] with N processes: processes 1..N-1 keep their own replicas of the views
        self.replicas: list[Replica] = []
        if s.server is not None:
            for k in range(1, s.commands.processes):
                rep = replicate(env, engine, domain, specs, k, _stream_seed(s.seed, f"replica-{k}"),
                                self.incident)  # fmt: skip
                self.replicas.append(rep)
                self.drivers += rep.drivers.values()
        self._setup()
        store.drivers = tuple(self.drivers)
        engine.pump()  # what the setup created is in every read model at the start
        if isinstance(store, DelayedSimStore):
            visibility = _stream_seed(s.seed, "visibility")
            store.delay_visibility(env, s.commands.commit_visibility.sampler(visibility))
        self.recorder.rows.clear()
        for d in self.drivers:
            self.recorder.track(d.name, d.outstanding)
        self.reads: ReadSide | None = None
        if s.reads is not None:
            self.reads = ReadSide(
                env,
                engine,
                engine.groups[s.reads.projection],
                s.reads,
                workload.read_for(s.reads.projection).sample,
                Draw(random.Random(0), workload, keys=s.workload.population, params=params),
                _stream_seed(s.seed, "reads"),
                s.duration,
            )
        after = self.reads.after_write if self.reads is not None else None
        draw = Draw(random.Random(0), workload, keys=s.workload.population, params=params)
        self.loop: EventLoop | None = None
        self.loops: list[EventLoop] = []
        if s.server is None:
            self.commands = CommandSide(
                env, engine, s.commands, workload, draw, _stream_seed(s.seed, "commands"), after
            )
        else:
            self._loops(s.server, draw, after)
        self._arrivals()
        if s.poison:
            draw = Draw(_stream_seed(s.seed, "poison"), workload, keys=1, params=params)
            env.process(
                incidents.poison(env, engine, s.poison, workload.kinds, draw, self.incident)
            )
        if s.drift is not None:
            env.process(
                incidents.drift(
                    env,
                    engine,
                    s.drift,
                    incidents.drifted_event(s, domain),
                    self.drivers,
                    _stream_seed(s.seed, "drift"),
                    self.incident,
                )
            )
        if s.rebuild is not None:
            driver = next(d for d in self.drivers if d.name == s.rebuild.projection)
            env.process(
                incidents.rebuild(env, engine, s.rebuild, driver, self.recorder, self.incident)
            )
        self.samples: list[list[Any]] = []
        env.process(self._monitor())

    def _loops(self, sv: ServerSpec, draw: Draw, after: Callable[[int, int], None] | None) -> None:
        """The served processes as event loops ([server]; :mod:`cqrs_lab.sim.event_loops`):
        process 0 runs the engine's views, process k its replicas."""
        s, env = self.scenario, self.env
        cores = Cores(sv.cores) if sv.cores is not None else None
        speed = _loop_speed(sv, _stream_seed(s.seed, "speed"), s.duration)  # the machine's
        self.loops = loops = [
            EventLoop(
                env,
                sv.cold,
                sv.cold_time,
                sv.cpus,
                sv.period,
                cores,
                speed,
                sv.quota_carry,
                sv.repeats,
            )
            for _ in range(s.commands.processes)
        ]
        self.loop = loops[0]
        reads = self.reads
        if reads is not None and len(loops) > 1:  # a read-back goes where the write went

            def after(key: int, pos: int) -> None:
                reads.after_write(key, pos, cmds.current)

        cmds: LoopCommandSide
        self.commands = cmds = LoopCommandSide(
            env, self.engine, s.commands, sv, loops, self.workload, draw,
            _stream_seed(s.seed, "commands"), after, self.store,
        )  # fmt: skip
        if sv.clients > 0:  # the load generator's users, shared by commands and reads
            cmds.clients = ClientPool(sv.clients)
            if reads is not None:
                reads.clients = cmds.clients
        replicas = {id(d): r.index for r in self.replicas for d in r.drivers.values()}
        for d in self.drivers:
            d.process = replicas.get(id(d), 0)
            if len(loops) > 1 and isinstance(d.projection, Saga):
                continue  # several processes: the sagas run in a worker of their own
            d.loop = loops[d.process]
            d.poll = sv.poll if len(loops) > 1 else 0.0
            if sv.pump_wait.mean > 0:
                d.pump_wait = sv.pump_wait.sampler(_stream_seed(s.seed, f"pump-wait-{d.name}"))
            d.pump_wait_per_event = sv.pump_wait_per_event
            if cmds.other is not None and sv.database_cpu > 0:
                d.database = functools.partial(cmds.other.spend, sv.database_cpu)
        if reads is not None:
            reads.loops = loops
            reads.request = sv.request.sampler(_stream_seed(s.seed, "read-requests"))
            if sv.transport.mean > 0:
                reads.transport = sv.transport.sampler(_stream_seed(s.seed, "read-transport"))
                reads.transport_chill = sv.transport_chill
            if len(loops) > 1:
                reads.spread = _stream_seed(s.seed, "read-spread")
                reads.replicas = [(reads.group, {})] + [
                    (r.drivers[reads.spec.projection].group, r.answers or {}) for r in self.replicas
                ]

    def incident(self, kind: str, where: str, detail: str) -> None:
        self.incidents.append((self.env.now, kind, where, detail))

    def _setup(self) -> None:
        """The workload's setup command for each key, before t=0 (recorded at time 0).

        The setup sampler is told the key's index; its ``seq`` is 0 (the run's commands are
        numbered from 1).
        """
        setup = self.workload.setup
        if setup is None:
            return
        n = self.scenario.workload.population
        draw = Draw(
            _stream_seed(self.scenario.seed, "setup"), self.workload, keys=n, params=self.params
        )
        dispatch = self.engine.bus.dispatch
        for i in range(n):
            draw.index = i
            dispatch(setup(draw))

    def _arrivals(self) -> None:
        """Schedule arrivals as a chain of SimPy timeouts with callbacks (no process)."""
        s = self.scenario
        env, arrive = self.env, self.commands.arrive
        keys = KeyChooser(s.workload, _stream_seed(s.seed, "keys"))
        kinds: Callable[[], str] = MixChooser(s.mix(), _stream_seed(s.seed, "mix"))
        times = arrival_times(s.workload.arrivals, _stream_seed(s.seed, "arrivals"), s.duration)
        if s.workload.arrivals.process == "trace":
            trace = iter(s.workload.arrivals.trace)
            kinds = lambda: next(trace)[1]  # noqa: E731 - the recorded kinds, in order

        timeout = env.timeout

        def fire(_: simpy.Event) -> None:
            arrive(kinds(), keys())
            t = next(times, None)
            if t is not None:
                timeout(t - env.now).callbacks.append(fire)

        first = next(times, None)
        if first is not None:
            timeout(first).callbacks.append(fire)

    def _monitor(self) -> Generator[simpy.Event, Any, None]:
        """Samples the state at the end of each bucket (for the time-series table)."""
        env, bucket = self.env, self.scenario.bucket
        n = 0
        while True:
            n += 1
            yield env.timeout(n * bucket - env.now)
            self.sample()

    def sample(self) -> None:
        """One row of the time series: queue, busy integrals, backlog, lag, consumers."""
        env, cmd = self.env, self.commands
        now = env.now
        row: list[Any] = [now, cmd.waiting, cmd.busy.area_at(now)]
        for d in self.drivers:
            g = d.group
            row += [g.backlog(), g.lag_seconds(), d.alive_count, d.busy.area_at(now)]
        self.samples.append(row)

    def run(self) -> SimResult:
        """Run to the scenario's duration and collect the tables."""
        until = self.scenario.duration
        if show_progress() and until >= 60:  # a bar for long runs, in simulated seconds
            from tqdm.auto import tqdm

            with tqdm(total=until, unit="sim s", desc=self.scenario.name) as bar:
                for step in range(1, 51):
                    at = until * step / 50
                    self.env.run(until=at)
                    bar.n = at  # set, not summed: 50 float steps passed the total (a warning)
                    bar.refresh()
        else:
            self.env.run(until=until)
        if not self.samples or self.samples[-1][0] < until - 1e-9:
            self.sample()  # the last bucket ends at the duration (SimPy stops before it)
        return build_result(self)


def simulate(
    scenario: Scenario,
    *,
    seed: int | None = None,
    duration: float | None = None,
    recorder: SubscriptionRecorder | None = None,
) -> SimResult:
    """Run ``scenario`` (optionally with another ``seed`` or ``duration``) and return its result.

    ``recorder`` (optional) observes the run's subscriptions too (see :class:`Simulation`).
    It never touches the process's garbage collector: the ``cqrs-lab`` commands tune it
    around the runs they start (:func:`cqrs_lab.sim.cli.fewer_collections`).
    """
    changes: dict[str, Any] = {}
    if seed is not None:
        changes["seed"] = seed
    if duration is not None:
        changes["duration"] = duration
        if scenario.bucket > duration:
            changes["bucket"] = duration
    if changes:
        scenario = scenario.with_(**changes)
    return Simulation(scenario, recorder).run()
