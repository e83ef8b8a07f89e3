"""Locust drivers for the cqrs-lab HTTP deployment (the bank).

Run it directly (closed model: users with exponential think times)::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 20 -r 20 -t 30s

Open model (a target arrival rate of user tasks, paced with Poisson waits by a fixed pool
of users; a task is one request, except a SessionUser's write-then-two-reads)::

    locust -f loadtests/locustfile.py --host ... --headless -u 50 -r 50 -t 30s --rate 200

Shapes (step, spike, soak, knee): ``CQRS_LAB_SHAPE=knee locust -f ... -u 50 -t 60s``; the shape
varies the users (closed) or the arrival rate (open, with ``--rate`` as the peak).

User classes (choose with positional names, e.g. ``WriterUser SessionUser``):

- :class:`WriterUser`: a weighted command mix (``--mix``) over Zipf-skewed accounts;
- :class:`ReaderUser`: reads balances, no consistency token;
- :class:`SessionUser`: writes, then reads its account with the token (``--rw-wait``
  seconds of server-side waiting, stale answers refused) and without it.

With ``--records-dir DIR`` every request's exact latency and every operation's history
record are written there from Locust's ``request`` event (see :mod:`cqrs_lab.load.records`;
each request's context carries its history fields); ``cqrs-lab loadtest`` does this.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import random
import time
import urllib.parse
from typing import Any

from locust import FastHttpUser, LoadTestShape, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from cqrs_lab.load.records import RunRecorder, status_of
from cqrs_lab.load.shapes import OpenPacer, Profile
from cqrs_lab.load.workload import CommandMix, ZipfAccounts, account_id, parse_mix

_RECORDER: RunRecorder | None = None
_T0: list[float] = []  # monotonic time this process's test started
_IDS = itertools.count(1)  # transfer ids
_USERS = itertools.count(1)  # user numbers in this process (seed the user's generators)
SHAPE = os.environ.get("CQRS_LAB_SHAPE", "").strip()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="open model: user tasks per second in total (0: closed model)",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="closed model: mean think time between tasks, seconds",
    )
    parser.add_argument("--accounts", type=int, default=1000, help="accounts opened and used")
    parser.add_argument("--zipf-s", type=float, default=1.1, help="Zipf skew (0: uniform)")
    parser.add_argument("--mix", default="deposit=6,withdraw=3,transfer=1", help="writer mix")
    parser.add_argument(
        "--rw-wait",
        type=float,
        default=5.0,
        help="seconds the server may wait for a token-carrying read",
    )
    parser.add_argument("--records-dir", default="", help="write raw requests and history here")
    parser.add_argument("--lab-seed", type=int, default=0, help="seed of the generators")
    parser.add_argument("--skip-setup", action="store_true", help="accounts already exist")
    # filled in by the master from -u and -t: Locust forwards only custom options to workers
    parser.add_argument("--lab-users", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--lab-run-time", type=float, default=0.0, help=argparse.SUPPRESS)


@events.init.add_listener
def _init(environment: Environment, **_: Any) -> None:
    global _RECORDER
    opts = environment.parsed_options
    if opts is None:
        return
    if not isinstance(environment.runner, WorkerRunner):
        if opts.rate > 0 and not opts.num_users:
            raise SystemExit("--rate (open model) needs -u USERS: the pool that paces the rate")
        opts.lab_users = opts.lab_users or opts.num_users or 0
        opts.lab_run_time = opts.lab_run_time or float(opts.run_time or 0)
    parse_mix(opts.mix)  # fail early on a bad mix
    if opts.records_dir and not isinstance(environment.runner, MasterRunner):
        role = "worker" if isinstance(environment.runner, WorkerRunner) else "local"
        tag = f"{role}-{os.getpid()}"
        _RECORDER = RunRecorder(opts.records_dir, process=tag)
        environment.events.request.add_listener(_RECORDER.on_request)


@events.test_start.add_listener
def _setup(environment: Environment, **_: Any) -> None:
    opts = environment.parsed_options
    if environment.runner is None or isinstance(environment.runner, WorkerRunner):
        return  # workers: the master (or the local runner) opens the accounts
    if opts is None or opts.skip_setup or not environment.host:
        return
    url = urllib.parse.urlsplit(environment.host)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=10)
    try:
        for i in range(opts.accounts):
            body = f'{{"account_id": "{account_id(i)}", "owner": "o{i}", "opening_balance": 10000}}'
            conn.request("POST", "/accounts", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status not in (201, 409):
                raise SystemExit(f"opening {account_id(i)} failed: HTTP {resp.status}")
    finally:
        conn.close()
    _T0[:] = [time.monotonic()]  # the open model's schedule starts after the setup


@events.test_stop.add_listener
def _flush(**_: Any) -> None:
    if _RECORDER is not None:
        _RECORDER.flush()


@events.quitting.add_listener
def _close(**_: Any) -> None:
    if _RECORDER is not None:
        _RECORDER.close()


def _position(resp: Any, header: str) -> int | None:
    raw = (resp.headers or {}).get(header) if resp is not None else None
    return int(raw) if raw is not None and str(raw).isdigit() else None


class LabUser(FastHttpUser):
    """Shared parts: options, seeded generators, pacing (open or closed) and history."""

    abstract = True
    kind = "user"
    network_timeout = 15.0
    connection_timeout = 5.0

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        uid = next(_USERS)
        self.session = f"{self.kind}-{os.getpid()}-{uid}"
        self.rng = random.Random(f"{opts.lab_seed if opts else 0}-{self.kind}-{uid}")
        self.accounts = ZipfAccounts(
            opts.accounts if opts else 1000, opts.zipf_s if opts else 1.1, self.rng
        )
        self.mix = CommandMix(parse_mix(opts.mix if opts else "deposit=1"), self.rng)
        self.rw_wait = opts.rw_wait if opts else 5.0
        self.think = opts.think if opts else 1.0
        self.scheduled: float | None = None
        self.pacer: OpenPacer | None = None
        if not _T0:
            _T0.append(time.monotonic())
        if opts is not None and opts.rate > 0:
            duration = float(opts.lab_run_time or opts.run_time or 3600)
            users = int(opts.lab_users or opts.num_users or 1)
            profile = Profile(SHAPE or "constant", peak=opts.rate, duration=duration)
            self.pacer = OpenPacer(profile, 1.0 / max(1, users), self.rng)
            self._sleep_until_scheduled(self.pacer)

    def _sleep_until_scheduled(self, pacer: OpenPacer) -> None:
        now = time.monotonic() - _T0[0]
        nxt = pacer.next_send(now)
        self.scheduled = _T0[0] + nxt if nxt != float("inf") else None
        if self.scheduled is None:
            self._sleep(3600.0)  # the profile is over; Locust's run time stops us
        elif nxt > now:
            self._sleep(nxt - now)

    def _sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)

    def wait_time(self) -> float:
        if self.pacer is None:
            return self.rng.expovariate(1.0 / self.think) if self.think > 0 else 0.0
        self._sleep_until_scheduled(self.pacer)
        return 0.0

    def context(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def _ctx(self, session: str, op: str, key: str, **extra: Any) -> dict[str, Any]:
        """The request's context: the history record's fields, and the open model's
        scheduled send time for the first request of a cycle."""
        sched, self.scheduled = self.scheduled, None
        ctx = {"session": session, "op": op, "key": key, **extra}
        return {"scheduled": sched, **ctx} if sched is not None else ctx

    def write(self, session: str | None = None) -> tuple[str, int | None]:
        """One command of the mix; returns (account, consistency token or None)."""
        kind = self.mix()
        i = self.accounts.index()
        acct = account_id(i)
        amount = self.rng.randint(1, 100)
        sess = session or self.session
        if kind == "transfer":
            tid = f"t-{self.session}-{next(_IDS)}"
            body = {
                "transfer_id": tid,
                "source": acct,
                "target": self.accounts.other(i),
                "amount": amount,
            }
            ctx = self._ctx(sess, "write", f"transfer:{tid}", value=amount)
            self.client.post("/transfers", json=body, name="transfer", context=ctx)
            return acct, None
        path = "deposits" if kind == "deposit" else "withdrawals"
        ctx = self._ctx(sess, "write", acct, value=amount if kind == "deposit" else -amount)
        resp = self.client.post(
            f"/accounts/{acct}/{path}", json={"amount": amount}, name=kind, context=ctx
        )
        return acct, _position(resp, "X-Consistency-Token") if status_of(resp) < 300 else None

    def read(self, acct: str, session: str, token: int | None = None) -> None:
        """Read the account: with ``token``, the server waits (up to ``--rw-wait``) until
        the read model has reached it and refuses a stale answer."""
        if token is None:
            ctx = self._ctx(session, "read", acct)
            self.client.get(f"/accounts/{acct}", name="read", context=ctx)
            return
        self.client.get(
            f"/accounts/{acct}?wait={self.rw_wait:g}&stale=refuse",
            name="read-token",
            headers={"X-Consistency-Token": str(token)},
            context=self._ctx(session, "read", acct, token=token),
        )


class WriterUser(LabUser):
    """Sends the command mix (deposit, withdraw, transfer) over Zipf-skewed accounts."""

    weight = 5
    kind = "writer"

    @task
    def command(self) -> None:
        self.write()


class ReaderUser(LabUser):
    """Reads balances of Zipf-skewed accounts, accepting whatever the read model has."""

    weight = 4
    kind = "reader"

    @task
    def balance(self) -> None:
        self.read(self.accounts(), self.session)


class SessionUser(LabUser):
    """Read-after-write: a deposit or withdrawal, then a read with its token and one without.

    The token-carrying read is recorded in the session's history (the checker judges
    read-your-writes on it); the plain read in ``<session>/plain``, so the staleness a
    client sees without the token is measured rather than reported as a violation.
    """

    weight = 1
    kind = "session"

    @task
    def write_then_read(self) -> None:
        acct, token = self.write()
        if token is None:
            return
        self.read(acct, self.session, token)
        self.read(acct, f"{self.session}/plain", None)


class _LabShape(LoadTestShape):
    """Users (closed) or a fixed user pool (open) following a :class:`Profile`."""

    abstract = True
    use_common_options = True
    shape = "constant"

    def profile(self) -> Profile:
        opts = self.runner.environment.parsed_options
        duration = float(opts.run_time or 60)
        peak = opts.rate if opts.rate > 0 else float(opts.num_users or 10)
        return Profile(self.shape, peak=peak, duration=duration)

    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options
        p = self.profile()
        t = self.get_run_time()
        if t >= p.duration:
            return None
        if opts.rate > 0:  # open model: the pool stays; the pacers follow the profile
            users = int(opts.num_users)
            return users, float(users)
        return p.users(t), float(max(1, p.users(t)))


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
    """A linear ramp to the peak: where throughput stops following load is the knee."""

    abstract = SHAPE != "knee"
    shape = "knee"
