"""An independent record of what every subscription did: the evidence the checks count.

:class:`ApplicationLog` implements the core's
:class:`~cqrs_lab.core.subscription.SubscriptionRecorder` protocol. Pass it to the engine
(``Engine(recorder=log)``) and :meth:`ApplicationLog.attach` the engine, and it keeps, per
subscription and global position, every delivery, application, rollback of an
effectively-once unit, skip (duplicate, dead-lettered) and crash (with what it lost).

The checks count applications here, not in the read model: a read model can hide a double
application (an idempotent write) or show a bug in the projection itself; the log cannot.

Rebuilds: an in-place rebuild empties the read model, so applications before it no longer
count. The log tags every record with the subscription's rebuild count (``epoch``), read
from the attached engine, and the checks count only the current epoch. A *shadow* rebuild
applies events through a private subscription the core does not report, so after one the
log cannot vouch for that subscription (:meth:`ApplicationLog.verifiable` is False).

>>> from cqrs_lab.core import Engine, ManualClock
>>> from cqrs_lab.domains import bank
>>> log = ApplicationLog()
>>> engine = Engine(clock=ManualClock(), seed=1, recorder=log)
>>> log.attach(engine)
>>> app = bank.install(engine, saga=False, statements=False)
>>> _ = engine.dispatch(bank.OpenAccount("a1", "ann", 5))
>>> _ = engine.run_until_idle()
>>> log.net_applications("balances")
{1: 1}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from cqrs_lab.core.messages import Envelope

if TYPE_CHECKING:  # pragma: no cover
    from cqrs_lab.core.engine import Engine

from cqrs_lab.errors import ConfigError

__all__ = ["ApplicationLog", "Kind", "Record"]

Kind = Literal["delivered", "applied", "skipped", "rolled_back", "crashed", "lost"]


@dataclass(frozen=True, slots=True)
class Record:
    """One observation. ``position`` is 0 for a crash (the lost events follow as ``lost``)."""

    seq: int
    kind: Kind
    subscription: str
    position: int
    stream_id: str
    stream_version: int
    event_type: str
    time: float
    epoch: int
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ApplicationLog:
    """Records every delivery, application, rollback, skip and crash, per subscription.

    Implements ``SubscriptionRecorder``: ``delivered``, ``applied``, ``skipped``,
    ``rolled_back`` and ``crashed`` are called by the core. Read it with
    :meth:`net_applications`, :meth:`applied_sequence`, :meth:`lost_positions`,
    :meth:`records` or :meth:`to_frame` (pandas).
    """

    def __init__(self) -> None:
        self._records: list[Record] = []
        self._engine: Engine | None = None
        # (subscription, epoch) -> envelopes applied and not rolled back, in order
        self._sequence: dict[tuple[str, int], list[Envelope]] = {}

    # -- wiring -------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        """Read rebuild counts from ``engine`` so in-place rebuilds start a new epoch."""
        self._engine = engine

    def check_wired(self, engine: Engine) -> None:
        """Refuse to judge ``engine`` from a log that did not watch it as it ran: one that
        recorded nothing while the engine applied events (not given as its ``recorder``),
        or one not attached to it once a rebuild happened (its re-applications would look
        like double effects)."""
        applied = sum(s.applied for s in engine.subscriptions.values())
        if not self._records and applied:
            raise ConfigError(
                f"the ApplicationLog recorded nothing while the engine applied {applied} events: "
                "give it to the engine as Engine(recorder=log) before the run"
            )
        rebuilt = any(s.rebuilds for s in engine.subscriptions.values())
        if rebuilt and self._engine is not engine:
            raise ConfigError(
                "the ApplicationLog is not attached to this engine and a rebuild happened: "
                "log.attach(engine) before the run, so a rebuild's applications start anew"
            )

    def _epoch(self, sub: str) -> int:
        engine = self._engine
        if engine is None:
            return 0
        s = engine.subscriptions.get(sub)
        return 0 if s is None else s.rebuilds

    def _add(
        self, kind: Kind, sub: str, env: Envelope | None, now: float, reason: str = ""
    ) -> None:
        epoch = self._epoch(sub)
        if env is None:
            rec = Record(len(self._records), kind, sub, 0, "", 0, "", now, epoch, reason)
        else:
            rec = Record(
                len(self._records), kind, sub, env.position, env.stream_id,
                env.stream_version, env.event_type, now, epoch, reason,
            )  # fmt: skip
        self._records.append(rec)

    # -- SubscriptionRecorder -------------------------------------------------------------
    def delivered(self, sub: str, env: Envelope, now: float) -> None:
        self._add("delivered", sub, env, now)

    def applied(self, sub: str, env: Envelope, now: float) -> None:
        self._add("applied", sub, env, now)
        self._sequence.setdefault((sub, self._epoch(sub)), []).append(env)

    def skipped(self, sub: str, env: Envelope, now: float, reason: str) -> None:
        self._add("skipped", sub, env, now, reason)

    def rolled_back(self, sub: str, envs: list[Envelope], now: float) -> None:
        seq = self._sequence.get((sub, self._epoch(sub)), [])
        for env in reversed(envs):  # a unit is the tail of what was applied
            self._add("rolled_back", sub, env, now)
            for i in range(len(seq) - 1, -1, -1):
                if seq[i].position == env.position:
                    del seq[i]
                    break

    def crashed(self, sub: str, now: float, lost: list[Envelope]) -> None:
        self._add("crashed", sub, None, now, f"{len(lost)} in flight lost")
        for env in lost:
            self._add("lost", sub, env, now)

    # -- reading --------------------------------------------------------------------------
    def records(self, subscription: str | None = None) -> list[Record]:
        """Every record (of one subscription), oldest first."""
        recs = self._records
        return (
            list(recs)
            if subscription is None
            else [r for r in recs if r.subscription == subscription]
        )

    def current_epoch(self, sub: str) -> int:
        return self._epoch(sub)

    def applied_sequence(self, sub: str) -> list[Envelope]:
        """Envelopes applied in the current epoch and not rolled back, in application order."""
        return list(self._sequence.get((sub, self._epoch(sub)), []))

    def net_applications(self, sub: str) -> dict[int, int]:
        """Position -> applications that still count (current epoch, rollbacks undone)."""
        return dict(sorted(Counter(e.position for e in self.applied_sequence(sub)).items()))

    def positions(self, sub: str, kind: Kind) -> set[int]:
        """Positions with a ``kind`` record for ``sub`` in the current epoch."""
        epoch = self._epoch(sub)
        return {
            r.position for r in self._records
            if r.subscription == sub and r.kind == kind and r.epoch == epoch
        }  # fmt: skip

    def lost_positions(self, sub: str) -> set[int]:
        """Positions a crash lost (at-most-once: taken and not handled), current epoch."""
        return self.positions(sub, "lost")

    def dead_lettered(self, sub: str) -> set[int]:
        epoch = self._epoch(sub)
        return {
            r.position for r in self._records
            if r.subscription == sub and r.kind == "skipped" and r.reason == "dead-lettered"
            and r.epoch == epoch
        }  # fmt: skip

    def verifiable(self, sub: str) -> bool:
        """False while or after a shadow rebuild fed ``sub``'s read model behind the log's
        back (an in-place rebuild since then makes it verifiable again)."""
        engine = self._engine
        s = engine.subscriptions.get(sub) if engine is not None else None
        if s is None:
            return True
        if s.shadow is not None:
            return False
        # an in-place rebuild leaves ``rebuilding_since`` set; a shadow swap clears it
        return not (s.rebuilds > 0 and s.rebuilding_since is None)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per subscription, how many records of each kind (every epoch)."""
        out: dict[str, dict[str, int]] = {}
        for r in self._records:
            row = out.setdefault(r.subscription, {})
            row[r.kind] = row.get(r.kind, 0) + 1
        return out

    def to_frame(self) -> Any:
        """The records as a pandas DataFrame (one row per record)."""
        import pandas as pd

        columns = [
            "seq", "kind", "subscription", "position", "stream_id", "stream_version",
            "event_type", "time", "epoch", "reason",
        ]  # fmt: skip
        return pd.DataFrame([r.to_dict() for r in self._records], columns=columns)

    def __len__(self) -> int:
        return len(self._records)
