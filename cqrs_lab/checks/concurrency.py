"""Optimistic concurrency: concurrent writers interleaved, and the no-lost-update check.

:func:`interleave` drives several writers through ``CommandBus.decide()`` (read the
aggregate, run the handler) and ``Decision.commit()`` (append with the version read as the
expected version) in the order a schedule gives, so two writers can read the same version
and race to append. :func:`check_no_lost_update` then asks of every accepted write: did it
land directly on the version it read? If a write based on version *v* is stored at
*v* + 2, the write in between was overwritten by a decision that never saw it: a lost update.

>>> from cqrs_lab.core import Engine, ManualClock
>>> from cqrs_lab.domains import bank
>>> engine = Engine(clock=ManualClock(), seed=0)
>>> _ = bank.install(engine)
>>> _ = engine.dispatch(bank.OpenAccount("a", "ann", 100))
>>> w = [[bank.Withdraw("a", 60)], [bank.Withdraw("a", 60)]]
>>> writes = interleave(engine, w, [0, 1, 0, 1, 1, 1])
>>> [x.outcome for x in writes]
['accepted', 'conflict', 'refused']
>>> check_no_lost_update(engine, writes).ok
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cqrs_lab.checks.report import CheckReport, Violation, verdict
from cqrs_lab.core import Command, Decision, Engine
from cqrs_lab.errors import CommandRefused, ConcurrencyError, ConfigError

__all__ = ["Write", "check_no_lost_update", "interleave"]


@dataclass(frozen=True, slots=True)
class Write:
    """One attempt of one writer: what it read and what became of it."""

    writer: int
    command: Command
    outcome: Literal["accepted", "conflict", "refused"]
    stream_id: str = ""
    read_version: int = 0
    first_version: int = 0  # stream version of its first stored event (accepted only)
    event_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "writer": self.writer, "command": repr(self.command), "outcome": self.outcome,
            "stream": self.stream_id, "read_version": self.read_version,
            "stored_at_version": self.first_version,
        }  # fmt: skip


def interleave(
    engine: Engine, writers: Sequence[Sequence[Command]], schedule: Sequence[int]
) -> list[Write]:
    """Run ``writers`` (one command list each) by ``schedule``, a list of writer indexes.

    A writer's turn decides its next command if it holds no decision, else commits the one
    it holds. A conflict is recorded and the command is decided afresh on the writer's next
    turn (a client retry); a refusal moves on to the next command.
    """
    n = len(writers)
    queues = [list(w) for w in writers]
    held: list[tuple[Decision, str, int] | None] = [None] * n
    out: list[Write] = []
    for turn, i in enumerate(schedule):
        if not 0 <= i < n:
            raise ConfigError(f"schedule[{turn}]={i}: pass a writer index in 0..{n - 1}")
        h = held[i]
        if h is None:
            if not queues[i]:
                continue
            cmd = queues[i][0]
            try:
                d = engine.bus.decide(cmd)
            except CommandRefused:
                queues[i].pop(0)
                out.append(Write(i, cmd, "refused"))
                continue
            agg = d.uow.changed()
            held[i] = (d, agg.id if agg else "", agg.version if agg else 0)
            continue
        d, stream, read = h
        held[i] = None
        try:
            r = d.commit()
        except ConcurrencyError:
            out.append(Write(i, d.command, "conflict", stream, read))
            continue
        queues[i].pop(0)
        first = r.events[0].stream_version if r.events else 0
        ids = tuple(e.event_id for e in r.events)
        out.append(Write(i, d.command, "accepted", stream, read, first, ids))
    return out


def check_no_lost_update(engine: Engine, writes: Sequence[Write]) -> CheckReport:
    """Every accepted write is stored right after the version it read, as it was decided."""
    found = []
    accepted = [w for w in writes if w.outcome == "accepted" and w.event_ids]
    for w in accepted:
        stored = engine.store.read_stream(w.stream_id, w.first_version - 1)
        ids = tuple(e.event_id for e in stored[: len(w.event_ids)])
        if w.first_version != w.read_version + 1 or ids != w.event_ids:
            between = [
                x.to_dict() for x in accepted
                if x is not w and x.stream_id == w.stream_id
                and w.read_version < x.first_version < w.first_version
            ]  # fmt: skip
            found.append(
                Violation(
                    f"writer {w.writer} read {w.stream_id} at v{w.read_version} but its write "
                    f"was stored at v{w.first_version}: {len(between)} write(s) in between lost",
                    (w.to_dict(), *between),
                )
            )
    report = CheckReport("optimistic concurrency")
    report.add(
        verdict(
            "no lost update", found,
            ok=f"{len(accepted)} accepted writes each based on the version they replaced",
            bad="{n} writes overwrote a version they never read",
            measures={"accepted": len(accepted),
                      "conflicts": sum(w.outcome == "conflict" for w in writes)},
        )
    )  # fmt: skip
    return report
