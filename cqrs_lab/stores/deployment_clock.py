"""The clock of a deployment of several processes over one PostgreSQL store.

Events carry the time they were recorded, and a process that applies another process's event
measures its lag as ``now - recorded_at``; idempotency records and stored responses expire by
the same times. So every process of a deployment (``serve --workers N``, ``cqrs-lab
project``) must read one clock. A per-process monotonic clock does not do: each starts at 0
(at the log's last recorded time, to keep time moving forward across restarts), so two
workers started 150 ms apart disagreed by 150 ms, and the lag of each other's events came out
150 ms off, negative one way. The wall clock is the one every process shares, on one machine
or several (keep those NTP-synchronised: lag is then right up to their drift); it is never
read below the log's last recorded time when the process started, so a clock set back (or a
log from a faster one) cannot record an event before the ones it already holds.

>>> clock = DeploymentClock(floor=0.0)
>>> abs(clock.now() - time.time()) < 1.0
True
>>> DeploymentClock(floor=time.time() + 3600).now() > time.time()
True
"""

from __future__ import annotations

import time

__all__ = ["DeploymentClock"]


class DeploymentClock:
    """Seconds of the wall clock, never below ``floor`` (see the module)."""

    __slots__ = ("floor",)

    def __init__(self, floor: float = 0.0) -> None:
        self.floor = floor

    def now(self) -> float:
        t = time.time()
        return t if t > self.floor else self.floor
