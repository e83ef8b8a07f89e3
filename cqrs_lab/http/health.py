"""What the served app knows about its consumers: the subscription recorder, failing
projections and readiness.

A projection whose handler raises is retried with backoff and its event parked as a dead
letter; the engine keeps going, so the failure is easy to miss. A projection is *failing*
while it retries an event its handler raised on, or once it has parked
:data:`FAILING_STREAK` events in a row with none applied in between (one poison event, once
parked, is a dead letter to look at, not a broken consumer). :class:`ServedRecorder` (the
recorder of every subscription of the app) counts those streaks. ``/readyz`` answers 503
naming the failing projections and their last error, and ``/metrics`` reports
``cqrs_projection_failing`` and ``cqrs_projection_errors``.

>>> from cqrs_lab.core import Envelope
>>> rec = ServedRecorder()
>>> env = Envelope("e1", "s", 1, 7, "Pinged", 1, None, "c1", "c1", 0.0, {})
>>> for _ in range(FAILING_STREAK):
...     rec.skipped("pings", env, 0.0, "dead-lettered")
>>> rec.parked
{'pings': (2, 7)}
>>> rec.applied("pings", env, 0.1)
>>> rec.parked
{}
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cqrs_lab.core import Engine, Envelope
from cqrs_lab.errors import StoreFailure
from cqrs_lab.http.projection_log import ProjectionLogger
from cqrs_lab.http.stages import StageTimings

__all__ = ["FAILING_STREAK", "ServedRecorder", "errors_of", "readiness_check"]

#: events parked in a row, none applied in between, that make a projection failing
FAILING_STREAK = 2


class ServedRecorder(ProjectionLogger):
    """The app's subscription recorder: logs (:class:`ProjectionLogger`), remembers which
    projections parked their last events, and samples lag into ``stages`` when given."""

    def __init__(self, stages: StageTimings | None = None, logger: logging.Logger | None = None):
        super().__init__(logger)
        self.stages = stages
        #: projection -> (events parked in a row, the position of the last), reset when it
        #: applies one
        self.parked: dict[str, tuple[int, int]] = {}

    def applied(self, sub: str, env: Envelope, now: float) -> None:
        if self.parked:
            self.parked.pop(sub, None)
        if self.stages is not None:
            self.stages.lag(sub, env, now)
        super().applied(sub, env, now)

    def skipped(self, sub: str, env: Envelope, now: float, reason: str) -> None:
        if reason == "dead-lettered":
            streak = self.parked.get(sub, (0, 0))[0]
            self.parked[sub] = (streak + 1, env.position)
        super().skipped(sub, env, now, reason)

    def failing(self, engine: Engine) -> dict[str, str]:
        """Projection -> why it is failing: retrying an event its handler raised on, or its
        last :data:`FAILING_STREAK` or more events were parked as dead letters."""
        out = {}
        for name, sub in engine.subscriptions.items():
            if sub.crashed:
                continue  # down, which readiness reports on its own
            streak, last = self.parked.get(name, (0, 0))
            if sub.attempts > 0 or streak >= FAILING_STREAK:
                what = (
                    f"retrying an event (attempt {sub.attempts})"
                    if sub.attempts > 0
                    else f"parked its last {streak} events as dead letters (the last at {last})"
                )
                out[name] = (
                    f"projection {name} is failing: {sub.last_error}; {what}, "
                    f"{errors_of(sub)} handler errors so far (see /dead-letters)"
                )
        return out


def errors_of(sub: Any) -> int:
    """How many times the projection's handler raised (each retry or parking is one)."""
    return int(sub.retries + sub.dead_lettered)


def readiness_check(
    engine: Engine,
    alive: Callable[[], bool],
    recorder: ServedRecorder,
    max_lag: int,
    catch_up: dict[str, int],
) -> Callable[[], tuple[bool, list[str]]]:
    """``/readyz``'s verdict: ready, or the reasons it is not (one sentence each).

    ``catch_up``: per projection, the position it must reach after a restart (the head at
    start-up, or where it had got before); below it, the node is catching up."""

    def readiness() -> tuple[bool, list[str]]:
        reasons = []
        try:
            head = engine.store.head_position
        except StoreFailure as exc:
            return False, [f"the event store failed: {exc}"]
        failing = recorder.failing(engine)
        for name, sub in engine.subscriptions.items():
            if sub.crashed:
                reasons.append(f"projection {name} is down")
            elif name in failing:
                reasons.append(failing[name])
            elif head - sub.position > max_lag:
                reasons.append(
                    f"projection {name} lags {head - sub.position} positions (bound {max_lag})"
                )
            elif sub.position < min(catch_up.get(name, 0), head):
                reasons.append(
                    f"projection {name} is catching up after a restart (replaying the log): "
                    f"at {sub.position} of {catch_up[name]}"
                )
        if not alive():
            reasons.append("the engine driver is not running")
        return not reasons, reasons

    return readiness
