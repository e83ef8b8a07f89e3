"""The simulation's :class:`~cqrs_lab.core.SubscriptionRecorder`: one row per event application.

Each row says which projection and partition applied which event, when it was committed
(``committed_s``, the store's ``recorded_at``) and applied (``applied_s``), the lag
(``lag_s``), how many times that event had been delivered to the
projection by then, whether the projection had already applied it (a duplicate effect),
whether a crash later undid the application (``rolled_back``) and whether it was part of a
rebuild (``replay``). Lost (at-most-once) and dead-lettered events are counted.

>>> rec = ApplicationRecorder()
>>> rec.counts()["lost"]
0
"""

from __future__ import annotations

from typing import Any

from cqrs_lab.core import Envelope

__all__ = ["APPLICATION_COLUMNS", "ApplicationRecorder"]

APPLICATION_COLUMNS = (
    "projection",
    "partition",
    "position",
    "stream",
    "event_type",
    "committed_s",
    "applied_s",
    "lag_s",
    "delivery_count",
    "duplicate",
    "rolled_back",
    "replay",
)


class _Proj:
    __slots__ = ("applied", "delivered", "last_row", "level", "name", "replay_upto")

    def __init__(self, name: str) -> None:
        self.name = name
        self.level: Any = None
        self.delivered: dict[int, int] = {}
        self.applied: set[int] = set()
        self.last_row: dict[int, int] = {}
        self.replay_upto = 0


class ApplicationRecorder:
    """Builds the per-application table; implements the core's recorder protocol."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self._subs: dict[str, tuple[_Proj, int]] = {}
        self._projs: dict[str, _Proj] = {}
        self.lost = self.dead_lettered = self.duplicates_skipped = self.crashes = 0
        self.rolled_back_count = 0
        self.incidents: list[tuple[float, str, str, str]] = []

    def _sub(self, sub: str) -> tuple[_Proj, int]:
        found = self._subs.get(sub)
        if found is None:
            name, _, part = sub.partition("/p")
            proj = self._projs.get(name)
            if proj is None:
                proj = self._projs[name] = _Proj(name)
            found = self._subs[sub] = (proj, int(part) if part.isdigit() else 0)
        return found

    # -- the SubscriptionRecorder protocol ------------------------------------------------------
    # delivered and applied run once per event: they look the subscription up in ``_subs``
    # directly and call ``_sub`` only the first time (a method call saved per event)
    def delivered(self, sub: str, env: Envelope, now: float) -> None:
        d = (self._subs.get(sub) or self._sub(sub))[0].delivered
        p = env.position
        d[p] = d.get(p, 0) + 1

    def applied(self, sub: str, env: Envelope, now: float) -> None:
        proj, part = self._subs.get(sub) or self._sub(sub)
        p = env.position
        dup = p in proj.applied
        if not dup:
            proj.applied.add(p)
            level = proj.level
            if level is not None and p > proj.replay_upto:
                # level.add(-1) of a sim ``Level``, inlined: this runs once per event
                t = level.env.now
                level.area += level.value * (t - level.last)
                level.last = t
                level.value -= 1
        committed = env.recorded_at
        proj.last_row[p] = len(self.rows)
        self.rows.append(
            [
                proj.name,
                part,
                p,
                env.stream_id,
                env.event_type,
                committed,
                now,
                now - committed,
                proj.delivered.get(p, 1),
                dup,
                False,
                p <= proj.replay_upto,
            ]
        )

    def skipped(self, sub: str, env: Envelope, now: float, reason: str) -> None:
        if reason == "dead-lettered":
            self.dead_lettered += 1
            level = self._sub(sub)[0].level
            if level is not None:
                level.add(-1)
            self.incidents.append((now, "dead-lettered", sub, f"event {env.position}"))
        else:
            self.duplicates_skipped += 1

    def rolled_back(self, sub: str, envs: list[Envelope], now: float) -> None:
        proj = self._sub(sub)[0]
        for env in envs:
            p = env.position
            if p in proj.applied and proj.level is not None:
                proj.level.add(1)
            proj.applied.discard(p)
            row = proj.last_row.get(p)
            if row is not None:
                self.rows[row][10] = True
            self.rolled_back_count += 1

    def crashed(self, sub: str, now: float, lost: list[Envelope]) -> None:
        self.crashes += 1
        self.lost += len(lost)
        level = self._sub(sub)[0].level
        if lost and level is not None:
            level.add(-len(lost))

    # -- driver hooks ---------------------------------------------------------------------------
    def track(self, projection: str, level: Any) -> None:
        """Count first applications of ``projection`` down on ``level`` (a ``Level``)."""
        proj = self._projs.get(projection) or self._projs.setdefault(projection, _Proj(projection))
        proj.level = level

    def begin_rebuild(self, projection: str, upto: int) -> None:
        """Applications of positions <= ``upto`` from now on are a rebuild's replay."""
        proj = self._projs.get(projection) or self._projs.setdefault(projection, _Proj(projection))
        proj.applied.clear()
        proj.replay_upto = upto

    def applied_positions(self, projection: str) -> set[int]:
        """Positions whose application currently stands (not undone) in ``projection``."""
        proj = self._projs.get(projection)
        return set(proj.applied) if proj is not None else set()

    def counts(self) -> dict[str, int]:
        return {
            "lost": self.lost,
            "dead_lettered": self.dead_lettered,
            "duplicates_skipped": self.duplicates_skipped,
            "crashes": self.crashes,
            "rolled_back": self.rolled_back_count,
        }
