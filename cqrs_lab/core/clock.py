"""Clocks: the only way time enters the engine.

The engine asks a :class:`Clock` what time it is and never sleeps. Drivers choose the clock:
:class:`ManualClock` for tests and notebooks, ``CallableClock(lambda: env.now)`` for SimPy, and
:class:`MonotonicClock` for the real HTTP deployment. Times are seconds as floats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from cqrs_lab.core.arguments import check_real

__all__ = ["CallableClock", "Clock", "ManualClock", "MonotonicClock"]

_INF = math.inf


@runtime_checkable
class Clock(Protocol):
    """Tells the current time in seconds."""

    def now(self) -> float: ...


class ManualClock:
    """A clock that moves only when told to.

    >>> clock = ManualClock()
    >>> clock.advance(1.5)
    >>> clock.now()
    1.5
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = check_real(
            start, "start", "seconds, a finite number", where="ManualClock", low=-_INF
        )

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if (type(seconds) is not float and type(seconds) is not int) or not 0 <= seconds < _INF:
            seconds = check_real(
                seconds, "seconds", "a finite number >= 0: a clock cannot go back", where="advance"
            )
        self._now += seconds

    def advance_to(self, when: float) -> None:
        """Move to ``when`` if it is later than now (earlier times are ignored)."""
        if (type(when) is not float and type(when) is not int) or not -_INF < when < _INF:
            when = check_real(
                when, "when", "seconds, a finite number", where="advance_to", low=-_INF
            )
        if when > self._now:
            self._now = float(when)


class CallableClock:
    """Wraps any zero-argument callable, such as ``lambda: env.now`` in SimPy."""

    __slots__ = ("now",)

    def __init__(self, read: Callable[[], float]) -> None:
        self.now = read


class MonotonicClock:
    """Seconds from :func:`time.monotonic`, for the real-time driver. Never the wall clock."""

    __slots__ = ("_origin",)

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin
