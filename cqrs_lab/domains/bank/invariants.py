"""The bank's invariants: every transfer ends, and money is conserved.

Declared on the bank's :class:`~cqrs_lab.core.Domain`, so the checks run them on any engine,
simulation or server the bank is installed on.

Read from the event log (the truth), so a saga that moved money twice or never finished
shows however its own read model looks.

>>> from cqrs_lab.core import Engine, ManualClock
>>> from cqrs_lab.domains import bank
>>> engine = Engine(clock=ManualClock(), seed=2)
>>> _ = bank.install(engine)
>>> for a in ("a", "b"): _ = engine.dispatch(bank.OpenAccount(a, a, 50))
>>> _ = engine.dispatch(bank.RequestTransfer("t1", "a", "b", 20))
>>> _ = engine.run_until_idle()
>>> check_sagas(engine).ok
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cqrs_lab.checks.report import CheckReport, Violation, verdict
from cqrs_lab.core import Engine, RawEvent
from cqrs_lab.domains.bank.messages import (
    Deposited,
    TransferCompensated,
    TransferCompleted,
    TransferFailed,
    TransferRequested,
    Withdrawn,
)
from cqrs_lab.domains.bank.views import TransferSaga

__all__ = ["TransferTrace", "check_sagas", "trace_transfers"]

_TERMINAL = {
    TransferCompleted: "completed",
    TransferCompensated: "compensated",
    TransferFailed: "failed",
}


@dataclass
class TransferTrace:
    """What the log says happened to one transfer."""

    transfer_id: str
    source: str
    target: str
    amount: int
    requested_at: int
    outcomes: list[str] = field(default_factory=list)
    debits: list[int] = field(default_factory=list)  # positions of Withdrawn from source
    credits: list[int] = field(default_factory=list)  # positions of Deposited to target
    refunds: list[int] = field(default_factory=list)  # positions of Deposited back to source
    net: int = 0  # money in minus money out over every account

    def expected(self) -> tuple[int, int, int] | None:
        """(debits, credits, refunds) a finished transfer must show, None while unfinished."""
        if not self.outcomes:
            return None
        return {"completed": (1, 1, 0), "compensated": (1, 0, 1), "failed": (0, 0, 0)}[
            self.outcomes[0]
        ]


def trace_transfers(engine: Engine) -> dict[str, TransferTrace]:
    """Every requested transfer and the money movements carrying its id, from the log."""
    traces: dict[str, TransferTrace] = {}
    for env in engine.store.read_all():
        e = env.payload
        if type(e) is RawEvent:
            e = engine.store.registry.decode(e)
        if isinstance(e, TransferRequested):
            traces[e.transfer_id] = TransferTrace(
                e.transfer_id, e.source, e.target, e.amount, env.position
            )
            continue
        tid = getattr(e, "transfer_id", None)
        t = traces.get(tid) if isinstance(tid, str) else None
        if t is None:
            continue
        if type(e) in _TERMINAL:
            t.outcomes.append(_TERMINAL[type(e)])
        elif isinstance(e, Withdrawn):
            t.net -= e.amount
            if e.account_id == t.source:
                t.debits.append(env.position)
        elif isinstance(e, Deposited):
            t.net += e.amount
            (t.credits if e.account_id == t.target else t.refunds).append(env.position)
    return traces


def check_sagas(engine: Engine) -> CheckReport:
    """Every started transfer ends completed, compensated or failed, exactly once; a finished
    transfer moved exactly its money (debit and credit, or debit and refund, or nothing), so
    the total is conserved; the saga's read model agrees with the log."""
    report = CheckReport("sagas")
    sagas = [s for s in engine.subscriptions.values() if isinstance(s.consumer, TransferSaga)]
    if not sagas:
        return report
    traces = trace_transfers(engine)
    unfinished, money, model = [], [], []
    kept = {  # a saga forgets only once its table of ended transfers is full: those kept
        s.name: s.consumer.ended if len(s.consumer.ended) >= s.consumer.keep_ended else None
        for s in sagas
        if isinstance(s.consumer, TransferSaga)  # all of them (for the type checker)
    }
    for t in traces.values():
        ev = {
            "transfer": t.transfer_id, "amount": t.amount, "outcomes": t.outcomes,
            "debits": t.debits, "credits": t.credits, "refunds": t.refunds, "net": t.net,
        }  # fmt: skip
        want = t.expected()
        if want is None or len(t.outcomes) > 1:
            unfinished.append(
                Violation(f"transfer {t.transfer_id} ended {len(t.outcomes)} times", (ev,))
            )
            continue
        got = (len(t.debits), len(t.credits), len(t.refunds))
        if got != want or t.net != 0:
            money.append(
                Violation(
                    f"transfer {t.transfer_id} {t.outcomes[0]} with {got[0]} debits, {got[1]} "
                    f"credits, {got[2]} refunds (want {want}); net {t.net:+d}",
                    (ev,),
                )
            )
        for s in sagas:
            row = s.consumer.tables[0].get(t.transfer_id)
            ended = kept[s.name]
            if row is None and t.outcomes and ended is not None and t.transfer_id not in ended:
                continue  # it ended long ago: the saga keeps only its newest ended ones
            status = row.get("status") if isinstance(row, dict) else None
            if status != t.outcomes[0]:
                model.append(
                    Violation(
                        f"{s.name}: transfer {t.transfer_id} shows {status!r}, log says "
                        f"{t.outcomes[0]!r}",
                        (ev,),
                    )
                )
    no_loss = all(s.policy.name != "at-most-once" for s in sagas)
    report.add(
        verdict(
            "sagas: every transfer ends", unfinished, promised=no_loss,
            ok=f"{len(traces)} transfers each ended once", bad="{n} transfers did not end once",
        )
    )  # fmt: skip
    report.add(
        verdict(
            "sagas: money conserved", money, ok="every finished transfer moved exactly its amount",
            bad="{n} finished transfers moved the wrong money",
        )
    )  # fmt: skip
    report.add(
        verdict(
            "sagas: read model agrees", model, promised=no_loss,
            ok="the saga's table matches the log", bad="{n} transfers shown wrongly",
        )
    )  # fmt: skip
    return report
