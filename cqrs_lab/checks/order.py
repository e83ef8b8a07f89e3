"""Order: the log's stream versions, and the order in which consumers applied them.

>>> from cqrs_lab.core import Engine, ManualClock
>>> from cqrs_lab.domains import bank
>>> engine = Engine(clock=ManualClock(), seed=1)
>>> _ = bank.install(engine)
>>> _ = engine.dispatch(bank.OpenAccount("a", "ann", 1))
>>> check_log_streams(engine).status
'pass'
"""

from __future__ import annotations

from cqrs_lab.checks.application_log import ApplicationLog
from cqrs_lab.checks.base import env_dict, handled, read_models, unverifiable
from cqrs_lab.checks.report import CheckReport, CheckResult, Violation, verdict
from cqrs_lab.core import Engine

__all__ = ["check_application_order", "check_log_streams"]


def check_log_streams(engine: Engine) -> CheckResult:
    """The log itself: every stream's versions run 1, 2, 3... in increasing global order."""
    last: dict[str, tuple[int, int]] = {}
    found = []
    for env in engine.store.read_all():
        version, pos = last.get(env.stream_id, (0, 0))
        if env.stream_version != version + 1 or env.position <= pos:
            found.append(
                Violation(
                    f"stream {env.stream_id}: version {env.stream_version} follows {version}",
                    (env_dict(env, previous_version=version, previous_position=pos),),
                )
            )
        last[env.stream_id] = (env.stream_version, env.position)
    return verdict(
        "stream versions", found, ok=f"{len(last)} streams contiguous and ordered",
        bad="{n} events break their stream's version sequence",
    )  # fmt: skip


def check_application_order(
    engine: Engine, log: ApplicationLog, *, ordered: bool | None = None
) -> CheckReport:
    """Each event is applied only after its stream's earlier handled events (or their loss).

    Promised (``ordered=None``) when the subscription never had transport faults on: a delayed
    or reordered delivery may legitimately overtake. Pass ``ordered`` to override.
    """
    report = CheckReport("application order")
    where = {e.position: (e.stream_id, e.stream_version) for e in engine.store.read_all()}
    for name, subs in read_models(engine).items():
        if (hidden := unverifiable(f"application order: {name}", subs, log)) is not None:
            report.add(hidden)
            continue
        versions_of: dict[str, list[int]] = {}  # stream -> handled versions, ascending
        for env in handled(engine, subs[0].consumer):
            versions_of.setdefault(env.stream_id, []).append(env.stream_version)
        found = []
        for s in subs:
            applied = log.applied_sequence(s.name)
            # a loss excuses a gap only if the event really stayed lost
            lost = log.lost_positions(s.name) - {e.position for e in applied}
            excused = lost | log.dead_lettered(s.name)
            done = {where[p] for p in excused if p in where}
            nxt: dict[str, int] = {}  # stream -> index of its first version not yet done
            for env in applied:
                sid, v = env.stream_id, env.stream_version
                done.add((sid, v))
                versions = versions_of.get(sid, [])
                i = nxt.get(sid, 0)
                while i < len(versions) and (sid, versions[i]) in done:
                    i += 1
                nxt[sid] = i
                if i < len(versions) and versions[i] < v:
                    found.append(
                        Violation(
                            f"{s.name}: {sid} v{v} applied before v{versions[i]}",
                            (env_dict(env, missing_version=versions[i]),),
                        )
                    )
        promised = (
            ordered if ordered is not None else not any(s.transport_faults_seen for s in subs)
        )
        report.add(
            verdict(
                f"application order: {name}", found, promised=promised,
                ok="every stream applied in version order",
                bad="{n} events applied ahead of an earlier event of their stream",
            )
        )  # fmt: skip
    return report
