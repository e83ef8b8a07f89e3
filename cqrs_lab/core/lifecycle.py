"""Crashes, restarts, rebuilds and dead letters of a subscription (a part of its class,
:class:`SubscriptionLifecycle`; the rebuilds themselves are in :mod:`cqrs_lab.core.rebuilds`).

A crash loses what was in flight as the semantics dictate (``policy.crash``) and stops the
subscription until :meth:`SubscriptionLifecycle.restart`, which resumes from the checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cqrs_lab.core import rebuilds as _rebuilds
from cqrs_lab.core.arguments import check_bool
from cqrs_lab.core.deadletters import DeadLetter
from cqrs_lab.core.intake import SubscriptionIntake
from cqrs_lab.core.messages import Envelope
from cqrs_lab.core.readmodel import UndoLog
from cqrs_lab.errors import ConfigError, ConsumerCrashed

if TYPE_CHECKING:
    from cqrs_lab.core.subscription import Subscription

__all__ = ["SubscriptionLifecycle"]


class SubscriptionLifecycle(SubscriptionIntake):
    """Crashes, restarts, rebuilds and dead letters of a
    :class:`~cqrs_lab.core.subscription.Subscription` (which sets the attributes below)."""

    lost: int
    crashes: int
    attempts: int
    retry_at: float | None
    undo: UndoLog
    unit: list[Envelope]
    shadow: Subscription | None
    rebuilding_since: float | None

    def crash(self) -> None:
        """Crash now (between events): in-flight work is lost as the semantics dictate."""
        if not self.crashed:
            self._crash(None)

    def _crash(self, crash: ConsumerCrashed | None) -> None:
        now = self.clock.now()
        in_flight = list(self.inbox)
        self.inbox.clear()
        self.inbox_mixed = False
        if self.transport is not None:
            self.transport.clear()
        lost = self.policy.crash(self._sub, in_flight)
        self.lost += len(lost)
        self.undo.clear()
        self.unit.clear()
        self.retry_at = None
        self.attempts = 0
        self.crashed = True
        self.crashes += 1
        if self.recorder is not None:
            self.recorder.crashed(self.name, now, lost)

    def restart(self) -> None:
        """Come back after a crash and resume from the checkpoint."""
        if not self.crashed:
            return
        self.crashed = False
        self.fetched = self._sub.checkpoint
        if self.partition is not None:
            self._skip_foreign()

    # -- rebuilds and dead letters (in :mod:`cqrs_lab.core.rebuilds`) ------------------------
    def rebuild(self, *, shadow: bool = False) -> None:
        """Replay the projection from position 0.

        In place: the read model empties at once and refills (readers see partial data).
        Shadow: a second copy catches up beside the live one, which keeps serving, and takes
        its place in one step when it has caught up.

        A partition shares its read model with the other partitions of its view: it is
        rebuilt with them, by its group (emptied alone, the others' rows would be lost).
        """
        shadow = check_bool(
            shadow, "shadow", "True (a shadow copy) or False (in place)", where="rebuild"
        )
        if self.partition is not None and self.partition[1] > 1:
            group = self.name.rsplit("/", 1)[0]
            raise ConfigError(
                f"{self.name!r} shares its read model with the other partitions of {group!r}: "
                f"rebuild them together, engine.groups[{group!r}].rebuild() (in place)"
            )
        _rebuilds.rebuild(self._sub, shadow=shadow)

    @property
    def shadow_rebuilding(self) -> bool:
        """A shadow copy is catching up beside the live read model."""
        return self.shadow is not None

    def advance_rebuild(self) -> int:
        """Step the shadow copy by one batch (for drivers that give each batch a duration);
        it takes the live model's place once caught up. Returns the shadow's progress."""
        return _rebuilds.advance_shadow(self._sub) if self.shadow is not None else 0

    @property
    def rebuilding(self) -> bool:
        return self.shadow is not None or (
            self.rebuilding_since is not None and self._sub.position < self.store.head_position
        )

    def replay_dead_letter(self, letter_id: str) -> DeadLetter:
        """Apply a parked event again; on success it leaves the store (else it stays)."""
        return _rebuilds.replay_dead_letter(self._sub, letter_id)

    def stats(self) -> dict[str, Any]:
        """Counters and positions, as plain data."""
        return _rebuilds.stats(self._sub)
