"""Recorders: observers of every delivery, application, skip, rollback and crash.

The checks (:mod:`cqrs_lab.checks`) and the simulation's tables are recorders; a
subscription takes one (or a :class:`RecorderFanout` of several).
"""

from __future__ import annotations

from typing import Protocol

from cqrs_lab.core.messages import Envelope

__all__ = ["RecorderFanout", "SubscriptionRecorder"]


class SubscriptionRecorder(Protocol):
    """Observes every delivery, application, skip and crash (the checks and the simulation)."""

    def delivered(self, sub: str, env: Envelope, now: float) -> None: ...

    def applied(self, sub: str, env: Envelope, now: float) -> None: ...

    def skipped(self, sub: str, env: Envelope, now: float, reason: str) -> None: ...

    def rolled_back(self, sub: str, envs: list[Envelope], now: float) -> None: ...

    def crashed(self, sub: str, now: float, lost: list[Envelope]) -> None: ...


class RecorderFanout:
    """Passes every observation to several recorders (the simulation's tables and the checks).

    >>> fan = RecorderFanout([])
    >>> fan.crashed("balances", 0.0, [])
    """

    def __init__(self, recorders: list[SubscriptionRecorder]) -> None:
        self.recorders = list(recorders)

    def delivered(self, sub: str, env: Envelope, now: float) -> None:
        for r in self.recorders:
            r.delivered(sub, env, now)

    def applied(self, sub: str, env: Envelope, now: float) -> None:
        for r in self.recorders:
            r.applied(sub, env, now)

    def skipped(self, sub: str, env: Envelope, now: float, reason: str) -> None:
        for r in self.recorders:
            r.skipped(sub, env, now, reason)

    def rolled_back(self, sub: str, envs: list[Envelope], now: float) -> None:
        for r in self.recorders:
            r.rolled_back(sub, envs, now)

    def crashed(self, sub: str, now: float, lost: list[Envelope]) -> None:
        for r in self.recorders:
            r.crashed(sub, now, lost)
