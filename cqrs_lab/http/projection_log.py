"""The served process's log of what its projections did (``--log-projections``)."""

from __future__ import annotations

import logging

from cqrs_lab.core import Envelope

__all__ = ["ProjectionLogger"]


class ProjectionLogger:
    """A subscription recorder that logs each applied event with its correlation id.

    Logs at DEBUG to ``cqrs_lab.http.projections`` (``--log-projections`` turns it on), so
    one command can be followed from its HTTP request to its read-model update.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger if logger is not None else logging.getLogger("cqrs_lab.http.projections")

    def delivered(self, sub: str, env: Envelope, now: float) -> None:
        pass

    def applied(self, sub: str, env: Envelope, now: float) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "projection %s applied %s at position %d correlation_id=%s traceparent=%s",
                sub,
                env.event_type,
                env.position,
                env.correlation_id,
                env.metadata.get("traceparent", "-"),
            )

    def skipped(self, sub: str, env: Envelope, now: float, reason: str) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "projection %s skipped position %d (%s) correlation_id=%s",
                sub,
                env.position,
                reason,
                env.correlation_id,
            )

    def rolled_back(self, sub: str, envs: list[Envelope], now: float) -> None:
        self.log.info("projection %s rolled back %d events", sub, len(envs))

    def crashed(self, sub: str, now: float, lost: list[Envelope]) -> None:
        self.log.warning("projection %s crashed; %d in-flight events lost", sub, len(lost))
