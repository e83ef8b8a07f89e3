"""Locust users for any domain served by ``cqrs-lab serve --domain REF``.

Run it directly (closed model: users with exponential think times)::

    locust -f cqrs_lab/load/locustfile.py --host http://127.0.0.1:8000 --headless -u 20 -t 30s \\
        --domain cqrs_lab.domains.inventory

(``loadtests/locustfile.py`` re-exports this file.) Open model (a target arrival rate of user
tasks, Poisson, one schedule per kind of user in each Locust process, whose users, a fixed
pool, each take the next send time when free; a task is one request, except a SessionUser's
write-then-two-reads): add ``--rate 200``. Shapes (step, spike, soak, knee):
``CQRS_LAB_SHAPE=knee locust -f ...``; the shape varies the users (closed) or the arrival rate
(open, with ``--rate`` as the peak).

The users are built from the domain's workload (``--domain``, default the bank): before the
run the population is created with the workload's ``setup`` command (409, already there, is
fine); then

- :class:`WriterUser` sends the command mix (``--mix``, default the workload's) over
  Zipf-skewed keys (``--zipf-s``, 0: uniform): ``POST /commands/{Command}`` with the fields
  the workload's seeded sampler drew;
- :class:`ReaderUser` sends the workload's reads, ``GET /queries/{Query}?field=value``,
  without a consistency token;
- :class:`SessionUser` writes, then reads the key it wrote with the token (``--rw-wait``
  seconds of server-side waiting, stale answers refused) and without it.

With ``--records-dir DIR`` every request's exact latency and every operation's history
record (with the key it touched) are written there from Locust's ``request`` event (see
:mod:`cqrs_lab.load.records`); ``cqrs-lab loadtest`` does this.
"""

from __future__ import annotations

import itertools
import os
import random
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import FastHttpUser, LoadTestShape, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from cqrs_lab.errors import ConfigError
from cqrs_lab.load.locust_options import add_options, traffic_of
from cqrs_lab.load.records import RunRecorder, status_of
from cqrs_lab.load.shapes import OpenPacer, Profile, SharedPacer, shape_tick
from cqrs_lab.load.traffic import Generator, Read, Traffic, Write
from cqrs_lab.load.traffic import create_keys as _create_keys

_STATE: dict[str, Any] = {}  # this process's traffic and recorder
_T0: list[float] = []  # monotonic time this process's test started
_USERS = itertools.count(1)  # user numbers in this process (seed the user's generators)
_REQUEST_IDS = itertools.count(1)  # this process's requests (X-Request-Id: pid-n)
_WORKER_SPAN = 1_000_000  # user numbers of Locust worker k start at k * this + 1
#: the open model's schedules in this process, one per kind of user, shared by its users
_PACERS: dict[str, SharedPacer] = {}
#: sequence numbers unique across users and Locust processes (ids such as a transfer's)
_SEQS: Iterator[int] = (os.getpid() * 10_000_000 + n for n in itertools.count(1))
SHAPE = os.environ.get("CQRS_LAB_SHAPE", "").strip()
_EVENTS: Any = events  # Locust's event hooks (untyped)


def _init(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None:
        return
    if not isinstance(environment.runner, WorkerRunner):
        if opts.rate > 0 and not opts.num_users:
            raise SystemExit("--rate (open model) needs -u USERS: the pool that paces the rate")
        opts.lab_users = opts.lab_users or opts.num_users or 0
        opts.lab_run_time = opts.lab_run_time or opts.lab_duration or float(opts.run_time or 0)
    try:
        _STATE["traffic"] = traffic_of(opts)
    except ConfigError as exc:
        raise SystemExit(f"cqrs-lab locustfile: {exc}") from None
    if opts.records_dir and not isinstance(environment.runner, MasterRunner):
        role = "worker" if isinstance(environment.runner, WorkerRunner) else "local"
        recorder = RunRecorder(opts.records_dir, process=f"{role}-{os.getpid()}")
        _STATE["recorder"] = recorder
        hooks: Any = environment.events
        hooks.request.add_listener(recorder.on_request)


def _traffic(environment: Environment) -> Traffic:
    if "traffic" not in _STATE:  # a worker whose options arrived after init
        _STATE["traffic"] = traffic_of(environment.parsed_options)
    traffic: Traffic = _STATE["traffic"]
    return traffic


def create_keys(host: str, traffic: Traffic, timeout: float = 10.0) -> int:
    """:func:`cqrs_lab.load.traffic.create_keys`, raising SystemExit (Locust's way to stop)."""
    try:
        return _create_keys(host, traffic, timeout)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def _setup(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if environment.runner is None or isinstance(environment.runner, WorkerRunner):
        return  # workers: the master (or the local runner) creates the keys
    if opts is not None and opts.lab_duration > 0:
        _stop_after(environment, opts.lab_duration)
    if opts is None or opts.skip_setup or not environment.host:
        return
    create_keys(environment.host, _traffic(environment))
    _T0[:] = [time.monotonic()]  # the open model's schedule starts after the setup


def _stop_after(environment: Environment, seconds: float) -> None:
    """Stop the test ``seconds`` from now. Locust's own ``-t`` timer is armed against the
    event loop's cached clock, which the start-up leaves stale (measured: ``-t 4s`` gave
    2.8 s of load on a busy machine), so ``cqrs-lab loadtest`` times the run here, on a
    refreshed clock, and gives ``-t`` a margin as a backstop."""
    gevent.get_hub().loop.update_now()
    runner = environment.runner

    def stop() -> None:
        if runner is not None:
            runner.stop()
            runner.quit()

    gevent.spawn_later(seconds, stop)


def _flush(**_: Any) -> None:
    if "recorder" in _STATE:
        _STATE["recorder"].flush()


def _close(**_: Any) -> None:
    if "recorder" in _STATE:
        _STATE["recorder"].close()


_EVENTS.init_command_line_parser.add_listener(add_options)
_EVENTS.init.add_listener(_init)
_EVENTS.test_start.add_listener(_setup)
_EVENTS.test_stop.add_listener(_flush)
_EVENTS.quitting.add_listener(_close)


def _position(resp: Any, header: str) -> int | None:
    raw = (resp.headers or {}).get(header) if resp is not None else None
    return int(raw) if raw is not None and str(raw).isdigit() else None


def _kind_pacer(kind: str) -> SharedPacer:
    """This process's open-model schedule for the users of one ``kind``: their own Poisson
    schedules merged, each send taken by whichever of them is free (see
    :class:`~cqrs_lab.load.shapes.SharedPacer`; one per kind, so each kind sends its share
    whatever its answers take)."""
    pacer = _PACERS.get(kind)
    if pacer is None:
        pacer = _PACERS[kind] = SharedPacer()
    return pacer


class LabUser(FastHttpUser):
    """Shared parts: options, the seeded generator, pacing (open or closed) and history."""

    abstract = True
    kind = "user"
    network_timeout = 15.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        # user numbers differ between Locust processes (a worker's index, 0 alone, set by
        # the master before users start), so their seeded streams do too
        worker = max(0, getattr(self.environment.runner, "worker_index", 0))
        uid = next(_USERS) + _WORKER_SPAN * worker
        self.session = f"{self.kind}-{os.getpid()}-{uid}"
        seed = f"{opts.lab_seed if opts else 0}-{self.kind}"
        self.gen: Generator = _traffic(self.environment).generator(seed, uid, _SEQS)
        self.rng = self.gen.rng
        self.rw_wait = opts.rw_wait if opts else 5.0
        self.think = opts.think if opts else 1.0
        self.scheduled: float | None = None
        self.pacer: SharedPacer | None = None
        if not _T0:
            _T0.append(time.monotonic())
        if opts is not None and opts.rate > 0:
            duration = float(opts.lab_run_time or opts.run_time or 3600)
            users = int(opts.lab_users or opts.num_users or 1)
            profile = Profile(SHAPE or "constant", peak=opts.rate, duration=duration)
            own = OpenPacer(profile, 1.0 / max(1, users), random.Random(f"{seed}-pace-{uid}"))
            self.pacer = _kind_pacer(self.kind)
            self.pacer.join(own, time.monotonic() - _T0[0])
            self._sleep_until_scheduled(self.pacer)

    def _sleep_until_scheduled(self, pacer: SharedPacer) -> None:
        now = time.monotonic() - _T0[0]
        nxt = pacer.next_send()
        self.scheduled = _T0[0] + nxt if nxt != float("inf") else None
        if self.scheduled is None:
            self._sleep(3600.0)  # the profile is over; Locust's run time stops us
        elif nxt > now:
            self._sleep(nxt - now)

    def _sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def wait_time(self) -> float:
        if self.pacer is None:
            return self.rng.expovariate(1.0 / self.think) if self.think > 0 else 0.0
        self._sleep_until_scheduled(self.pacer)
        return 0.0

    def _ctx(self, session: str, op: str, key: str, **extra: Any) -> dict[str, Any]:
        """The request's context: the user kind, the history record's fields, its id (sent
        as ``X-Request-Id``: the server's stage timings name the request by it) and the open
        model's scheduled send time for the first request of a cycle."""
        sched, self.scheduled = self.scheduled, None
        ctx = {"kind": self.kind, "session": session, "op": op, "key": key,
               "request_id": f"{os.getpid()}-{next(_REQUEST_IDS)}", **extra}  # fmt: skip
        return {"scheduled": sched, **ctx} if sched is not None else ctx

    def write(self, session: str | None = None) -> tuple[Write, int | None]:
        """One command of the mix; returns it and its consistency token (None if refused)."""
        w = self.gen.write()
        ctx = self._ctx(session or self.session, "write", w.key, value=w.kind)
        resp = self.client.post(
            w.path, json=w.body, name=w.kind, context=ctx,
            headers={"X-Request-Id": ctx["request_id"]},
        )  # fmt: skip
        ok = 200 <= status_of(resp) < 300
        return w, _position(resp, "X-Consistency-Token") if ok else None

    def read(self, r: Read, session: str, token: int | None = None) -> None:
        """Send the query: with ``token``, the server waits (up to ``--rw-wait``) until the
        read model has reached it and refuses a stale answer."""
        if token is None:
            path = f"{r.path}?{urllib.parse.urlencode(r.params)}"
            ctx = self._ctx(session, "read", r.key)
            headers = {"X-Request-Id": ctx["request_id"]}
            self.client.get(path, name="read", context=ctx, headers=headers)
            return
        params = {**r.params, "wait": f"{self.rw_wait:g}", "stale": "refuse"}
        ctx = self._ctx(session, "read", r.key, token=token)
        self.client.get(
            f"{r.path}?{urllib.parse.urlencode(params)}",
            name="read-token",
            headers={"X-Consistency-Token": str(token), "X-Request-Id": ctx["request_id"]},
            context=ctx,
        )


class WriterUser(LabUser):
    """Sends the domain's command mix over Zipf-skewed keys."""

    weight = 5
    kind = "writer"

    @task
    def command(self) -> None:
        self.write()


class ReaderUser(LabUser):
    """Sends the workload's reads on Zipf-skewed keys, accepting whatever the view has.

    Each view's reads are a session of their own (``<session>/<view>``): two views move
    independently, so monotonic reads are judged per view."""

    weight = 4
    kind = "reader"

    @task
    def query(self) -> None:
        r = self.gen.read()
        if r is not None:
            self.read(r, f"{self.session}/{r.view}")


class SessionUser(LabUser):
    """Read-after-write: a command, then a read of its key with its token and one without.

    The read goes to the workload's first read. The token-carrying read is recorded in the
    session's history (the checker judges read-your-writes on it); the plain read in
    ``<session>/plain``, so the staleness a client sees without the token is measured
    rather than reported as a violation.
    """

    weight = 1
    kind = "session"

    @task
    def write_then_read(self) -> None:
        w, token = self.write()
        reads = self.gen.traffic.workload.reads
        if token is None or not reads:
            return
        r = self.gen.read(w.index, reads[0].view)
        if r is not None:
            self.read(r, self.session, token)
            self.read(r, f"{self.session}/plain", None)


class _LabShape(LoadTestShape):
    """Users (closed) or a fixed user pool (open) following a :class:`Profile`."""

    abstract = True
    use_common_options = True
    shape = "constant"

    def _opts(self) -> Any:
        runner: Any = self.runner
        return runner.environment.parsed_options

    def profile(self) -> Profile:
        opts = self._opts()
        duration = float(opts.lab_duration or opts.run_time or 60)
        peak = opts.rate if opts.rate > 0 else float(opts.num_users or 10)
        return Profile(self.shape, peak=peak, duration=duration)

    def tick(self) -> tuple[int, float] | None:
        opts = self._opts()
        elapsed: Any = self.get_run_time
        pool = int(opts.num_users) if opts.rate > 0 else None
        return shape_tick(self.profile(), float(elapsed()), pool)


class StepShape(_LabShape):
    """Load in equal steps up to the peak."""

    abstract = SHAPE != "step"
    shape = "step"


class SpikeShape(_LabShape):
    """A base load with a spike to the peak in the middle of the run."""

    abstract = SHAPE != "spike"
    shape = "spike"


class SoakShape(_LabShape):
    """A short ramp, then the peak held for the whole run."""

    abstract = SHAPE != "soak"
    shape = "soak"


class KneeShape(_LabShape):
    """A geometric staircase to the peak: where throughput stops following load is the knee."""

    abstract = SHAPE != "knee"
    shape = "knee"
