"""A consumer group: one projection fed by P partition subscriptions (keyed by stream).

Events of one stream always go to the same partition (a stable CRC32 of the stream id), so
per-stream order holds within a partition while partitions progress independently, as in a
Kafka consumer group. The projection has applied every event up to :attr:`position`.
"""

from __future__ import annotations

import math
from typing import Any

from cqrs_lab.core import rebuilds as _rebuilds
from cqrs_lab.core.arguments import check_bool
from cqrs_lab.core.projections import Projection
from cqrs_lab.core.subscription import Subscription
from cqrs_lab.errors import ConfigError

__all__ = ["SubscriptionGroup"]

_SUMMED = (
    "delivered", "applied", "ignored", "duplicates_skipped", "duplicates_applied", "dropped",
    "retries", "dead_lettered", "dead_letters", "crashes", "lost",
)  # fmt: skip


class SubscriptionGroup:
    """The partitions of one projection. Members are ordinary :class:`Subscription` objects."""

    def __init__(self, name: str, members: list[Subscription]) -> None:
        self.name = name
        self.members = members

    @property
    def consumer(self) -> Projection:
        return self.members[0].consumer

    @property
    def position(self) -> int:
        """Every event up to here has been dealt with by its partition."""
        return min(m.position for m in self.members)

    @property
    def checkpoint(self) -> int:
        return min(m.checkpoint for m in self.members)

    def backlog(self) -> int:
        return self.members[0].store.head_position - self.position

    def lag_seconds(self) -> float:
        return max(m.lag_seconds() for m in self.members)

    def next_due(self) -> float | None:
        due = [t for m in self.members if (t := m.next_due()) is not None]
        return min(due) if due else None

    @property
    def idle(self) -> bool:
        return all(m.idle for m in self.members)

    def pump(self) -> int:
        return sum(m.pump() for m in self.members)

    def crash(self) -> None:
        for m in self.members:
            m.crash()

    def restart(self) -> None:
        for m in self.members:
            m.restart()

    def rebuild(self, *, shadow: bool = False) -> None:
        """In-place rebuild of the shared read model by every partition (a shadow copy is
        a single subscription's: the partitions' is refused)."""
        shadow = check_bool(
            shadow,
            "shadow",
            "True or False (a partitioned view rebuilds in place: False)",
            where="rebuild",
        )
        if shadow:
            raise ConfigError(
                f"{self.name!r} has {len(self.members)} partitions: it rebuilds in place "
                "(shadow=False); a shadow copy needs a view in one subscription"
            )
        for m in self.members:
            _rebuilds.rebuild(m)

    def stats(self) -> dict[str, Any]:
        parts = [m.stats() for m in self.members]
        out: dict[str, Any] = {
            "name": self.name,
            "delivery": parts[0]["delivery"],
            "partitions": len(parts),
            "position": self.position,
            "checkpoint": self.checkpoint,
            "head": parts[0]["head"],
            "backlog": self.backlog(),
            "lag_seconds": self.lag_seconds(),
            "lag_p99_seconds": max(
                (p["lag_p99_seconds"] for p in parts if not math.isnan(p["lag_p99_seconds"])),
                default=math.nan,
            ),
        }
        for key in _SUMMED:
            out[key] = sum(p[key] for p in parts)
        out["crashed"] = any(p["crashed"] for p in parts)
        out["rebuilding"] = any(p["rebuilding"] for p in parts)
        return out
