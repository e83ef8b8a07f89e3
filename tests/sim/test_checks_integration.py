"""The consistency checks' invariants hold on simulated runs (the same engine, the same log)."""

from __future__ import annotations

import pytest

from cqrs_lab.checks import ApplicationLog, check_engine
from cqrs_lab.sim import CrashSpec, Dist, SimResult, builtin_scenario, simulate


def _run(delivery: str, log: ApplicationLog) -> SimResult:
    s = builtin_scenario().with_(duration=5.0, reads=None, slos=()).with_rate(300.0)
    extra = {"checkpoint_interval": 0.5} if delivery == "at-least-once" else {}
    s = s.with_projection(
        "balances",
        delivery=delivery,
        per_batch=Dist.fixed(0.01),
        crash=CrashSpec(Dist("exponential", 1.0), Dist.fixed(0.2)),
        **extra,
    )
    return simulate(s, recorder=log)


def _drain(result: SimResult) -> None:
    for sub in result.engine.subscriptions.values():
        sub.restart()
    result.engine.pump()


def _status(report: object, name: str, projection: str) -> str:
    found = [
        r.status
        for r in report.results  # type: ignore[attr-defined]
        if f"{r.name}: {r.summary}".startswith(f"{name}: {projection}")
    ]
    assert len(found) == 1, (name, projection)
    return found[0]


@pytest.mark.parametrize("delivery", ["effectively-once", "at-least-once", "at-most-once"])
def test_engine_invariants_on_a_simulated_run_with_crashes(delivery: str) -> None:
    log = ApplicationLog()
    result = _run(delivery, log)
    log.attach(result.engine)
    summary = result.summary_dict()
    assert summary["consumer_crashes"] > 0
    assert check_engine(result.engine, log, quiescent=False).ok or delivery == "at-least-once"
    _drain(result)
    report = check_engine(result.engine, log)
    # statements is fed effectively-once in every run: all its checks pass
    for check in ("no double effect", "no loss", "convergence", "application order"):
        assert _status(report, check, "statements") == "pass"
    lost = set().union(*(log.lost_positions(n) for n in result.engine.subscriptions))
    if delivery == "effectively-once":
        assert report.ok, report.to_text()
        assert not lost and summary["duplicated_applied"] == 0
    elif delivery == "at-least-once":
        assert _status(report, "no loss", "balances") == "pass"
        assert _status(report, "no double effect", "balances") == "fail"
        assert summary["duplicated_applied"] > 0 and not lost
    else:
        assert _status(report, "no double effect", "balances") == "pass"
        assert _status(report, "no loss", "balances") == "info"
        # two independent recorders agree on how many events the crashes lost
        assert len(lost) == summary["lost"] > 0
