"""Load profiles (step, spike, soak, knee) and open-model pacing, independent of Locust.

A profile maps seconds since the test started to a *level*: in the closed model the level is
a number of users; in the open model it is a target arrival rate (tasks per second) that
a fixed pool of users paces itself to with Poisson (exponential) waits between *scheduled*
send times. Locust's ``LoadTestShape`` classes in ``loadtests/locustfile.py`` are thin
wrappers; the maths lives here so it can be tested and shared by every worker process.

>>> p = Profile("step", peak=100.0, duration=40.0, steps=4)
>>> [p.level(t) for t in (0.0, 10.0, 39.0)]
[25.0, 50.0, 100.0]
>>> [round(lvl) for _, _, lvl in knee_steps(Profile("knee", peak=500.0, duration=20.0))]
[100, 150, 224, 334, 500]
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

from cqrs_lab.errors import ConfigError

__all__ = ["SHAPES", "OpenPacer", "Profile", "SharedPacer", "knee_steps", "shape_tick"]

#: profile names: constant, step, spike, soak, knee
SHAPES = ("constant", "step", "spike", "soak", "knee")


@dataclass(frozen=True)
class Profile:
    """A load profile: ``name`` (one of :data:`SHAPES`), its ``peak`` level and ``duration``.

    - constant: ``peak`` throughout;
    - step: ``steps`` equal steps up to ``peak``;
    - spike: ``base`` (fraction of peak) with ``peak`` for the middle ``spike_fraction``;
    - soak: a short ramp (10% of the run) to ``peak``, then held (finds leaks and drift);
    - knee: a geometric staircase of ``steps`` equal steps from ``base * peak`` to ``peak``
      (by default 5 steps, each 1.5 times the one before, from a fifth of the peak): an
      open-model ramp to find where throughput stops following the offered load (the knee;
      :mod:`cqrs_lab.load.knee` measures it step by step).
    """

    name: str = "constant"
    peak: float = 10.0
    duration: float = 60.0
    steps: int = 5
    base: float = 0.2
    spike_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.name not in SHAPES:
            raise ConfigError(f"shape={self.name!r}: choose one of {', '.join(SHAPES)}")
        if not (math.isfinite(self.peak) and self.peak > 0):
            raise ConfigError(f"peak={self.peak!r}: a level (users or requests/s) > 0")
        if not (math.isfinite(self.duration) and self.duration > 0):
            raise ConfigError(f"duration={self.duration!r}: seconds > 0")
        if self.steps < 1:
            raise ConfigError(f"steps={self.steps!r}: a whole number >= 1")
        if not 0 <= self.base <= 1 or not 0 < self.spike_fraction < 1:
            raise ConfigError("base: a fraction in [0, 1]; spike_fraction: a fraction in (0, 1)")
        if self.name == "knee" and self.base <= 0:
            raise ConfigError(f"base={self.base!r}: the knee's first step, a fraction of peak > 0")

    def level(self, t: float) -> float:
        """The target level at ``t`` seconds (0 at or after the end)."""
        if t >= self.duration or t < 0:
            return 0.0
        x = t / self.duration
        if self.name == "step":
            return self.peak * (min(int(x * self.steps), self.steps - 1) + 1) / self.steps
        if self.name == "spike":
            lo = (1 - self.spike_fraction) / 2
            return self.peak if lo <= x < 1 - lo else self.peak * self.base
        if self.name == "soak":
            return self.peak * min(1.0, max(x / 0.1, 1 / self.steps))
        if self.name == "knee":
            k = min(int(x * self.steps), self.steps - 1)
            up = (self.steps - 1 - k) / (self.steps - 1) if self.steps > 1 else 0.0
            return float(self.peak * self.base**up)
        return self.peak

    def users(self, t: float) -> int:
        """The level as a whole number of users (at least 1 while the run lasts)."""
        lvl = self.level(t)
        return 0 if lvl <= 0 else max(1, round(lvl))


class OpenPacer:
    """Open-model pacing: Poisson send times at a share of the target rate.

    The schedule advances from the previous *scheduled* time, not from when the last
    response came back, so a slow server does not slow the offered load down (no
    coordinated omission); how late a send was against its schedule is reported as
    lateness. ``share`` is this schedule's fraction of the total rate (1 / users for one
    user's); the users of a Locust process pool theirs in a :class:`SharedPacer`.

    >>> pacer = OpenPacer(Profile("constant", peak=10.0, duration=5.0), 0.5, random.Random(1))
    >>> first = pacer.next_send(0.0)
    >>> 0.0 < first < 5.0
    True
    """

    def __init__(self, profile: Profile, share: float, rng: random.Random) -> None:
        if not 0 < share <= 1:
            raise ConfigError(f"share={share!r}: a user's fraction of the rate, in (0, 1]")
        self.profile = profile
        self.share = share
        self.rng = rng
        self.scheduled: float | None = None

    def next_send(self, t: float) -> float:
        """The next scheduled send time (seconds since start) after the previous one.

        Returns ``inf`` when the profile has ended. Where the rate is zero, time jumps
        forward in small slices until it is positive again.
        """
        now = t if self.scheduled is None else self.scheduled
        while now < self.profile.duration:
            rate = self.profile.level(now) * self.share
            if rate > 0:
                now += self.rng.expovariate(rate)
                if now < self.profile.duration:
                    self.scheduled = now
                    return now
                break
            now += 0.1
        self.scheduled = math.inf
        return math.inf


class SharedPacer:
    """The send times of several users' :class:`OpenPacer` schedules, merged and taken by
    whichever user is free: each call to :meth:`next_send` gives the earliest scheduled time
    not yet taken. The offered load is what the users' own schedules make it (each joins with
    its own, from when it joins), but a send is late only when every user sharing the
    schedule is waiting for an answer, not whenever the one whose schedule it was is.

    >>> shared = SharedPacer()
    >>> profile = Profile("constant", peak=10.0, duration=5.0)
    >>> for k in range(2):
    ...     shared.join(OpenPacer(profile, 0.5, random.Random(k)), 0.0)
    >>> sends = list(iter(shared.next_send, math.inf))
    >>> sends == sorted(sends) and 20 < len(sends) < 80
    True
    """

    def __init__(self) -> None:
        self._pacers: list[OpenPacer] = []
        self._due: list[tuple[float, int]] = []  # (next send time, pacer), a heap

    def join(self, pacer: OpenPacer, t: float) -> None:
        """A user's schedule joins, its first send drawn from ``t`` (seconds since start)."""
        self._pacers.append(pacer)
        first = pacer.next_send(t)
        if first != math.inf:
            heapq.heappush(self._due, (first, len(self._pacers) - 1))

    def next_send(self) -> float:
        """The earliest send time not yet taken (``inf`` when every schedule has ended): the
        schedules advance from their own scheduled times, never from the caller's clock."""
        if not self._due:
            return math.inf
        due, k = heapq.heappop(self._due)
        following = self._pacers[k].next_send(due)
        if following != math.inf:
            heapq.heappush(self._due, (following, k))
        return due


def knee_steps(profile: Profile) -> list[tuple[float, float, float]]:
    """The steps of a ``knee`` (or ``step``) profile: (start s, end s, level), in order."""
    width = profile.duration / profile.steps
    return [
        (i * width, (i + 1) * width, profile.level((i + 0.5) * width)) for i in range(profile.steps)
    ]


def shape_tick(profile: Profile, t: float, pool: int | None = None) -> tuple[int, float] | None:
    """What a Locust ``LoadTestShape.tick`` answers ``t`` seconds into the run: (users,
    spawn rate), or None once the profile is over. Closed model (``pool`` None): the
    profile's users. Open model: the fixed ``pool`` of users stays, and their pacers follow
    the profile instead.

    >>> p = Profile("step", peak=40.0, duration=40.0, steps=4)
    >>> shape_tick(p, 25.0), shape_tick(p, 25.0, pool=13), shape_tick(p, 40.0)
    ((30, 30.0), (13, 13.0), None)
    """
    if t >= profile.duration:
        return None
    if pool is not None:
        return pool, float(pool)
    users = profile.users(t)
    return users, float(max(1, users))
