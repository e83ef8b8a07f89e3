"""Invariants of an engine's read side, with the evidence for every violation.

Each function takes an :class:`~cqrs_lab.core.Engine` and the
:class:`~cqrs_lab.checks.application_log.ApplicationLog` that was attached to it and returns a
:class:`~cqrs_lab.checks.report.CheckReport`. The simulation runs the same engine with the
same recorder, so a simulated run is checked the same way (pass its engine and log).

What each delivery semantics promises (``PROMISES``): at-most-once never applies twice but
may lose what a crash had in flight; at-least-once never loses but may apply twice;
effectively-once does neither. A violated promise is a ``fail``; a property that was not
promised and does not hold is ``info``. A double application to a projection that is not
idempotent is a double *effect* and fails under any semantics: it corrupts the read model.

>>> from cqrs_lab.core import Engine, ManualClock
>>> from cqrs_lab.domains import bank
>>> from cqrs_lab.checks.application_log import ApplicationLog
>>> log = ApplicationLog()
>>> engine = Engine(clock=ManualClock(), seed=3, recorder=log)
>>> log.attach(engine)
>>> _ = bank.install(engine)
>>> _ = engine.dispatch(bank.OpenAccount("a1", "ann", 10))
>>> quiesce(engine)
>>> check_engine(engine, log).ok
True
"""

from __future__ import annotations

from cqrs_lab.checks.application_log import ApplicationLog
from cqrs_lab.checks.base import (
    PROMISES,
    Promises,
    env_dict,
    fold,
    given,
    handled,
    promises_of,
    quiesce,
    read_models,
    unverifiable,
)
from cqrs_lab.checks.consumers import check_consumers
from cqrs_lab.checks.order import check_application_order, check_log_streams
from cqrs_lab.checks.report import CheckReport, Violation, verdict
from cqrs_lab.core import Engine, Envelope, Projection, Saga, Subscription
from cqrs_lab.core.arguments import check_bool

__all__ = [
    "PROMISES",
    "Promises",
    "check_application_order",
    "check_consumers",
    "check_convergence",
    "check_domain_invariants",
    "check_engine",
    "check_log_streams",
    "check_no_double_effect",
    "check_no_loss",
    "check_record_explains_model",
    "fold",
    "quiesce",
    "read_models",
]


def _diff(name: str, actual: Projection, expected: Projection, what: str) -> list[Violation]:
    out = []
    have, want = actual.state(), expected.state()
    for table in sorted(set(have) | set(want)):
        a, w = have.get(table, {}), want.get(table, {})
        for key in sorted(set(a) | set(w), key=repr):
            if a.get(key) != w.get(key):
                out.append(
                    Violation(
                        f"{name}.{table}[{key!r}] differs from {what}",
                        ({"read_model": a.get(key), what: w.get(key)},),
                    )
                )
    return out


def _fold_diff(
    engine: Engine, name: str, consumer: Projection, envelopes: list[Envelope], what: str
) -> list[Violation]:
    """:func:`_diff` against the fold of ``envelopes``; a handler that raises while folding
    is one violation naming its error (the consumers check names the events it parked)."""
    try:
        twin = fold(engine, consumer, envelopes)
    except Exception as exc:  # the projection's own bug: report it, keep checking the rest
        return [
            Violation(
                f"{name}: cannot be checked, folding the log through its handler raises "
                f"{type(exc).__name__}: {exc}",
                ({"projection": name, "error": f"{type(exc).__name__}: {exc}"},),
            )
        ]
    return _diff(name, consumer, twin, what)


def _quiet(engine: Engine, subs: list[Subscription]) -> list[Violation]:
    head = engine.store.head_position
    return [
        Violation(
            f"{s.name} is not at quiescence (position {s.position} of {head}"
            f"{', crashed' if s.crashed else ''}); call quiesce(engine) first",
            ({"subscription": s.name, "position": s.position, "head": head},),
        )
        for s in subs
        if s.crashed or not s.idle or s.position < head
    ]


def check_convergence(
    engine: Engine, log: ApplicationLog | None = None, *, ordered: bool | None = None
) -> CheckReport:
    """After quiescence every read model equals the fold of the whole log.

    Promised when the semantics promises no loss, and a double application cannot explain a
    difference (the semantics promises none, the projection is idempotent, or ``log`` counted
    none), and neither can an out-of-order one (order is promised, see
    :func:`check_application_order`, or ``log`` saw none). Events parked in the dead-letter
    store for the read model are left out of the fold, as :func:`check_no_loss` excuses
    them (:func:`~cqrs_lab.checks.check_consumers` is the check that fails on them; once
    replayed they are folded again). Sagas are left to the invariants
    their domain declares (:func:`check_domain_invariants`): folding one would dispatch
    commands.
    """
    report = CheckReport("convergence")
    everything = engine.store.read_all()
    order = check_application_order(engine, log, ordered=True) if log is not None else None
    for name, subs in read_models(engine).items():
        consumer = subs[0].consumer
        if isinstance(consumer, Saga):
            continue
        names = {s.name for s in subs}
        # an event parked in the dead-letter store is not in the read model, and says so
        # there (check_consumers fails on it): excused here, as check_no_loss excuses it
        parked = {
            d.envelope.position for d in engine.dead_letters.list() if d.subscription in names
        }
        log_of = everything if not parked else [e for e in everything if e.position not in parked]
        found = _quiet(engine, subs) or _fold_diff(engine, name, consumer, log_of, "fold")
        p = promises_of(subs[0])
        doubled = log is None or any(
            n > 1 for s in subs for n in log.net_applications(s.name).values()
        )
        reordered = order is None or bool(order[f"application order: {name}"].violations)
        if log is not None and not all(log.verifiable(s.name) for s in subs):
            doubled = reordered = True  # the log cannot tell; rely on the promises alone
        in_order = (
            ordered if ordered is not None else not any(s.transport_faults_seen for s in subs)
        )
        report.add(
            verdict(
                f"convergence: {name}", found,
                promised=p.no_loss and (p.no_double or consumer.idempotent or not doubled)
                and (in_order or not reordered),
                ok=f"equals the fold of {len(log_of)} events"
                + (f" ({len(parked)} dead-lettered excused)" if parked else ""),
                bad="{n} rows differ from the fold of the log",
            )
        )  # fmt: skip
    return report


def check_record_explains_model(engine: Engine, log: ApplicationLog) -> CheckReport:
    """Each read model equals the fold of what the log says was applied to it, in order.

    True at every step, under every semantics: the application log is then a faithful
    independent record, and the other checks may count against it.
    """
    report = CheckReport("application record")
    for name, subs in read_models(engine).items():
        consumer = subs[0].consumer
        if isinstance(consumer, Saga):
            continue
        if (hidden := unverifiable(f"application record: {name}", subs, log)) is not None:
            report.add(hidden)
            continue
        seq = [env for s in subs for env in log.applied_sequence(s.name)]
        found = _fold_diff(engine, name, consumer, seq, "recorded")
        report.add(
            verdict(
                f"application record: {name}", found,
                ok=f"read model equals the fold of its {len(seq)} recorded applications",
                bad="{n} rows the recorded applications do not explain",
            )
        )  # fmt: skip
    return report


def check_no_loss(engine: Engine, log: ApplicationLog) -> CheckReport:
    """After quiescence every event a projection handles was applied (or dead-lettered).

    Promised by at-least-once and effectively-once. Under at-most-once a loss is allowed only
    where a crash reported it lost; a loss nobody reported fails.
    """
    report = CheckReport("no loss")
    for name, subs in read_models(engine).items():
        if (hidden := unverifiable(f"no loss: {name}", subs, log)) is not None:
            report.add(hidden)
            continue
        found = list(_quiet(engine, subs))
        applied = {p for s in subs for p in log.net_applications(s.name)}
        parked = {p for s in subs for p in log.dead_lettered(s.name)}
        reported = {p for s in subs for p in log.lost_positions(s.name)}
        unreported = 0
        for env in handled(engine, subs[0].consumer):
            if env.position in applied or env.position in parked:
                continue
            said = env.position in reported
            unreported += not said
            found.append(
                Violation(
                    f"{name}: event {env.position} was never applied",
                    (env_dict(env, reported_lost_by_crash=said),),
                )
            )
        promised = promises_of(subs[0]).no_loss or unreported > 0
        report.add(
            verdict(
                f"no loss: {name}", found, promised=promised,
                ok="every handled event applied", bad="{n} events never applied",
                measures={"lost": len(found) - len(_quiet(engine, subs))},
            )
        )  # fmt: skip
    return report


def check_no_double_effect(engine: Engine, log: ApplicationLog) -> CheckReport:
    """No event applied twice (counted in the log, rollbacks undone, current epoch).

    Fails when the semantics promises no double application, or when the projection is not
    idempotent (a double application is then a double effect); else ``info``.
    """
    report = CheckReport("no double effect")
    by_pos = {e.position: e for e in engine.store.read_all()}
    for name, subs in read_models(engine).items():
        if (hidden := unverifiable(f"no double effect: {name}", subs, log)) is not None:
            report.add(hidden)
            continue
        consumer = subs[0].consumer
        found = []
        for s in subs:
            for pos, n in log.net_applications(s.name).items():
                if n > 1:
                    env = by_pos[pos]
                    found.append(
                        Violation(
                            f"{name}: event {pos} applied {n} times",
                            (env_dict(env, subscription=s.name, applications=n),),
                        )
                    )
        promised = promises_of(subs[0]).no_double or not consumer.idempotent
        report.add(
            verdict(
                f"no double effect: {name}", found, promised=promised,
                ok="no event applied twice", bad="{n} events applied more than once",
                measures={"double": len(found)},
            )
        )  # fmt: skip
    return report


def check_engine(
    engine: Engine, log: ApplicationLog, *, ordered: bool | None = None, quiescent: bool = True
) -> CheckReport:
    """Every invariant at once. ``quiescent=False`` runs only the checks valid mid-run.

    A consumer that keeps failing (events parked, or stuck behind the head on an error) fails
    here too (:func:`~cqrs_lab.checks.consumers.check_consumers`), naming the error.
    """
    from cqrs_lab.checks.positions import check_positions

    given(engine, "check_engine", log)
    if ordered is not None:
        ordered = check_bool(
            ordered,
            "ordered",
            "True, False, or None (in order unless a faulty transport was seen)",
            where="check_engine",
        )
    quiescent = check_bool(quiescent, "quiescent", "True or False", where="check_engine")
    log.check_wired(engine)
    report = CheckReport("engine invariants", [check_log_streams(engine)])
    report.extend(check_consumers(engine, quiescent=quiescent))
    report.extend(check_record_explains_model(engine, log))
    report.extend(check_positions(engine, log))
    report.extend(check_no_double_effect(engine, log))
    if quiescent:
        report.extend(check_no_loss(engine, log))
        report.extend(check_application_order(engine, log, ordered=ordered))
        report.extend(check_convergence(engine, log, ordered=ordered))
        report.extend(check_domain_invariants(engine))
    return report


def check_domain_invariants(engine: Engine) -> CheckReport:
    """Every invariant declared by the domains installed on ``engine`` (valid when quiet).

    A domain declares what must hold for it (a ledger: every transfer ends, money is
    conserved); its check returns a report whose results are added here as they are. A check
    that raises is a failed result named after the domain and the invariant.
    """
    report = CheckReport("domain invariants")
    for installed in engine.installed:
        for inv in installed.domain.invariants:
            try:
                found = inv.check(engine)
            except Exception as exc:  # a broken invariant must not hide the other results
                report.add(
                    verdict(
                        f"{installed.domain.name}: {inv.name}",
                        [Violation(f"the check raised {type(exc).__name__}: {exc}")],
                        ok="",
                        bad="the invariant's check raised an exception",
                    )
                )
                continue
            report.extend(found)
    return report
